//! Zero-copy access to Kafka record batches (magic 2).
//!
//! Layout of the batch header (all big-endian):
//!
//! | offset | field                |
//! |--------|----------------------|
//! | 0      | baseOffset i64       |
//! | 8      | batchLength i32      |
//! | 12     | partitionLeaderEpoch |
//! | 16     | magic i8             |
//! | 17     | crc u32              |
//! | 21     | attributes i16       |
//! | 23     | lastOffsetDelta i32  |
//! | 27     | baseTimestamp i64    |
//! | 35     | maxTimestamp i64     |
//! | 43     | producerId i64       |
//! | 51     | producerEpoch i16    |
//! | 53     | baseSequence i32     |
//! | 57     | recordCount i32      |
//! | 61     | records...           |
//!
//! `batchLength` counts the bytes after the length field itself; the CRC-32C
//! covers everything from `attributes` to the end of the batch, so the base
//! offset and leader epoch can be rewritten without touching the checksum.

use std::borrow::Cow;
use std::io::{self, Read};
use std::ops::{ControlFlow, Range};

use bytes::Bytes;

/// Size of the fixed v2 batch header.
pub const HEADER_SIZE: usize = 61;
/// Bytes preceding the part counted by `batchLength` (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// The only record format this crate stores.
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET: usize = 0;
const LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

/// Attribute bits.
pub const COMPRESSION_MASK: i16 = 0x07;
pub const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
pub const TRANSACTIONAL_BIT: i16 = 1 << 4;
pub const CONTROL_BIT: i16 = 1 << 5;

/// Why a byte range is not a usable record batch.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    #[error("truncated batch: need {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("invalid batch length {0}")]
    BadLength(i32),
    #[error("unsupported magic {0}")]
    UnsupportedMagic(i8),
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    #[error("decompression failed: {0}")]
    Decompression(String),
    #[error("invalid records: {0}")]
    InvalidRecords(String),
    #[error("records inflate to more than {limit} bytes")]
    TooLarge { limit: usize },
}

/// Compression codec named by attribute bits 0-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn from_attributes(attributes: i16) -> Result<Compression, BatchError> {
        match (attributes & COMPRESSION_MASK) as u8 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }
}

fn get_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn get_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn get_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A view over one record batch.
///
/// Header accessors need only the first [`HEADER_SIZE`] bytes, so the view can
/// also wrap a header that was read on its own (e.g. while scanning a file).
/// Methods that look past the header (`verify_crc`, `records_region`) require
/// the whole batch; [`BatchView::is_complete`] tells whether it is present.
#[derive(Clone, Copy, Debug)]
pub struct BatchView<B> {
    buf: B,
}

impl<B: AsRef<[u8]>> BatchView<B> {
    /// Wraps `buf`, which must hold at least a full header of a magic 2 batch
    /// whose length field is plausible.
    pub fn new(buf: B) -> Result<BatchView<B>, BatchError> {
        let b = buf.as_ref();
        if b.len() < LOG_OVERHEAD + 5 {
            return Err(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: b.len(),
            });
        }
        let magic = b[MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        let length = get_i32(b, LENGTH);
        if length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(length));
        }
        if b.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                needed: HEADER_SIZE,
                available: b.len(),
            });
        }
        Ok(BatchView { buf })
    }

    /// Like [`BatchView::new`] but also requires `buf` to be exactly one whole batch.
    pub fn new_complete(buf: B) -> Result<BatchView<B>, BatchError> {
        let view = BatchView::new(buf)?;
        let have = view.buf.as_ref().len();
        if have != view.size() {
            if have < view.size() {
                return Err(BatchError::Truncated {
                    needed: view.size(),
                    available: have,
                });
            }
            return Err(BatchError::BadLength(view.batch_length()));
        }
        Ok(view)
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    pub fn into_inner(self) -> B {
        self.buf
    }

    pub fn base_offset(&self) -> i64 {
        get_i64(self.as_bytes(), BASE_OFFSET)
    }

    pub fn batch_length(&self) -> i32 {
        get_i32(self.as_bytes(), LENGTH)
    }

    /// Total size of the batch on the wire, including the 12 byte log overhead.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length() as usize
    }

    pub fn is_complete(&self) -> bool {
        self.as_bytes().len() >= self.size()
    }

    pub fn partition_leader_epoch(&self) -> i32 {
        get_i32(self.as_bytes(), LEADER_EPOCH)
    }

    pub fn magic(&self) -> i8 {
        self.as_bytes()[MAGIC] as i8
    }

    pub fn crc(&self) -> u32 {
        get_i32(self.as_bytes(), CRC) as u32
    }

    pub fn attributes(&self) -> i16 {
        get_i16(self.as_bytes(), ATTRIBUTES)
    }

    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_attributes(self.attributes())
    }

    /// True when the batch's timestamps are broker-assigned (LogAppendTime).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }

    pub fn last_offset_delta(&self) -> i32 {
        get_i32(self.as_bytes(), LAST_OFFSET_DELTA)
    }

    /// Saturating: a damaged or hostile header may hold any base offset, and reading it must
    /// not overflow (validation refuses such a batch; readers only step past it).
    pub fn last_offset(&self) -> i64 {
        self.base_offset()
            .saturating_add(i64::from(self.last_offset_delta()))
    }

    /// The offset following this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    pub fn base_timestamp(&self) -> i64 {
        get_i64(self.as_bytes(), BASE_TIMESTAMP)
    }

    pub fn max_timestamp(&self) -> i64 {
        get_i64(self.as_bytes(), MAX_TIMESTAMP)
    }

    pub fn producer_id(&self) -> i64 {
        get_i64(self.as_bytes(), PRODUCER_ID)
    }

    pub fn producer_epoch(&self) -> i16 {
        get_i16(self.as_bytes(), PRODUCER_EPOCH)
    }

    pub fn base_sequence(&self) -> i32 {
        get_i32(self.as_bytes(), BASE_SEQUENCE)
    }

    /// Sequence number of the last record, wrapping like Kafka does.
    pub fn last_sequence(&self) -> i32 {
        let base = self.base_sequence();
        if base < 0 {
            return base;
        }
        let last = base as i64 + self.last_offset_delta() as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }

    pub fn record_count(&self) -> i32 {
        get_i32(self.as_bytes(), RECORD_COUNT)
    }

    /// CRC-32C over the checksummed part of the batch. Requires a complete batch.
    pub fn compute_crc(&self) -> u32 {
        let end = self.size().min(self.as_bytes().len());
        crc32c::crc32c(&self.as_bytes()[ATTRIBUTES..end])
    }

    /// Whether the stored checksum matches; false for an incomplete batch.
    pub fn verify_crc(&self) -> bool {
        self.is_complete() && self.compute_crc() == self.crc()
    }

    /// Like [`BatchView::verify_crc`] but reporting both values.
    pub fn check_crc(&self) -> Result<(), BatchError> {
        if !self.is_complete() {
            return Err(BatchError::Truncated {
                needed: self.size(),
                available: self.as_bytes().len(),
            });
        }
        let computed = self.compute_crc();
        if computed != self.crc() {
            return Err(BatchError::CrcMismatch {
                stored: self.crc(),
                computed,
            });
        }
        Ok(())
    }

    /// The (possibly compressed) bytes following the header.
    pub fn records_region(&self) -> &[u8] {
        let end = self.size().min(self.as_bytes().len());
        &self.as_bytes()[HEADER_SIZE..end]
    }

    /// The uncompressed records region: borrowed when the batch is not compressed, otherwise
    /// inflated in memory, refusing to grow past `limit` bytes. For callers that need the record
    /// bytes themselves (compaction); validation streams instead, see [`BatchView::for_each_record`].
    pub fn decompressed_records(&self, limit: usize) -> Result<Cow<'_, [u8]>, BatchError> {
        let region = self.records_region();
        let codec = self.compression()?;
        if codec == Compression::None {
            return Ok(Cow::Borrowed(region));
        }
        let mut out = Vec::new();
        self.inflate_into(codec, limit, &mut out)?;
        Ok(Cow::Owned(out))
    }

    /// Inflates the compressed records region into `out` (cleared first, its capacity reused),
    /// refusing to grow past `limit` bytes.
    fn inflate_into(
        &self,
        codec: Compression,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), BatchError> {
        self.check_count_fits(limit)?;
        let region = self.records_region();
        out.clear();
        out.reserve(region.len().saturating_mul(4).min(limit));
        inflate(codec, region, limit)?
            .read_to_end(out)
            .map_err(|e| io_error(codec, e))?;
        Ok(())
    }

    /// A record count that could not fit in `limit` uncompressed bytes is refused before
    /// anything is inflated.
    fn check_count_fits(&self, limit: usize) -> Result<usize, BatchError> {
        let count = self.record_count();
        let Ok(count) = usize::try_from(count) else {
            return Err(BatchError::InvalidRecords(format!(
                "negative record count {count}"
            )));
        };
        if count.saturating_mul(MIN_RECORD_SIZE) > limit {
            return Err(BatchError::TooLarge { limit });
        }
        Ok(count)
    }

    /// Parses the records of a complete batch one at a time, decompressing as it goes, and
    /// checks that exactly `recordCount` well-formed records are present. Memory stays constant
    /// whatever the records declare: keys, values and headers are skipped, never buffered.
    /// A compressed batch whose records inflate past `limit` bytes is refused with
    /// [`BatchError::TooLarge`]. `f` may stop the walk early (then trailing data is not checked).
    ///
    /// Returns how many uncompressed bytes were read.
    pub fn for_each_record(
        &self,
        limit: usize,
        mut f: impl FnMut(&RecordInfo) -> ControlFlow<()>,
    ) -> Result<u64, BatchError> {
        let mut f = |r: &RecordInfo, _: &Placement| f(r);
        let region = self.records_region();
        let codec = self.compression()?;
        if codec == Compression::None {
            let count = usize::try_from(self.record_count()).map_err(|_| {
                BatchError::InvalidRecords(format!("negative record count {}", self.record_count()))
            })?;
            let mut input = SliceInput {
                buf: region,
                pos: 0,
            };
            walk_records(&mut input, count, &mut f)?;
            return Ok(input.position());
        }
        let count = self.check_count_fits(limit)?;
        let mut input = ReadInput::new(inflate(codec, region, limit)?, codec);
        walk_records(&mut input, count, &mut f)?;
        Ok(input.position())
    }

    /// Parses every record (see [`BatchView::for_each_record`]) into a list.
    pub fn records(&self, limit: usize) -> Result<Vec<RecordInfo>, BatchError> {
        let mut out = Vec::new();
        self.for_each_record(limit, |r| {
            out.push(r.clone());
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// The first record, in order, whose (offset, timestamp as a consumer sees it) satisfies
    /// `pred`. For LogAppendTime batches every record carries the batch's max timestamp.
    pub fn find_record(
        &self,
        limit: usize,
        mut pred: impl FnMut(i64, i64) -> bool,
    ) -> Result<Option<(i64, i64)>, BatchError> {
        let base_offset = self.base_offset();
        let base_ts = self.base_timestamp();
        let append_time = self.is_log_append_time().then(|| self.max_timestamp());
        let mut found = None;
        self.for_each_record(limit, |r| {
            let ts = append_time.unwrap_or(base_ts.wrapping_add(r.timestamp_delta));
            let offset = base_offset + r.offset_delta as i64;
            if pred(offset, ts) {
                found = Some((offset, ts));
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
        Ok(found)
    }

    /// Timestamp of each record as a consumer would see it: for LogAppendTime
    /// batches every record carries the batch's max timestamp.
    pub fn record_timestamps(&self, limit: usize) -> Result<Vec<(i64, i64)>, BatchError> {
        let mut out = Vec::new();
        self.find_record(limit, |o, t| {
            out.push((o, t));
            false
        })?;
        Ok(out)
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> BatchView<B> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }

    /// Rewrites the base offset. Not covered by the CRC, so nothing else changes.
    pub fn set_base_offset(&mut self, offset: i64) {
        self.bytes_mut()[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&offset.to_be_bytes());
    }

    /// Rewrites the partition leader epoch (also outside the CRC).
    pub fn set_partition_leader_epoch(&mut self, epoch: i32) {
        self.bytes_mut()[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
    }

    /// Sets the max timestamp and refreshes the CRC. Requires a complete batch.
    pub fn set_max_timestamp(&mut self, ts: i64) {
        self.bytes_mut()[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&ts.to_be_bytes());
        self.update_crc();
    }

    /// Sets the attributes and refreshes the CRC. Requires a complete batch.
    pub fn set_attributes(&mut self, attributes: i16) {
        self.bytes_mut()[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        self.update_crc();
    }

    /// Marks the batch as LogAppendTime stamped with `ts`, with a single CRC update.
    pub fn set_log_append_time(&mut self, ts: i64) {
        let attributes = self.attributes() | TIMESTAMP_TYPE_BIT;
        self.bytes_mut()[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        self.bytes_mut()[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&ts.to_be_bytes());
        self.update_crc();
    }

    /// Recomputes and stores the CRC.
    pub fn update_crc(&mut self) {
        let crc = self.compute_crc();
        self.bytes_mut()[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Builds an uncompressed batch holding a subset of `original`'s records, as the
/// log cleaner does. `records` are raw records (length prefix included) taken
/// from the original's decompressed region, in order, with their deltas intact:
/// base offset, base timestamp and producer fields stay, so every record keeps
/// its offset and timestamp. The last offset delta becomes that of the last kept
/// record, so a batch never ends past its last real record (readers that resume
/// after the last record they saw then never land on a batch with nothing new).
/// CreateTime batches get their max timestamp recomputed, which the time index
/// relies on. `kept` must not be empty.
pub fn rebuild_batch(original: &BatchView<&[u8]>, kept: &[(&RecordInfo, &[u8])]) -> Vec<u8> {
    let last = kept
        .last()
        .expect("a rebuilt batch keeps at least one record");
    let body: usize = kept.iter().map(|(_, raw)| raw.len()).sum();
    let mut out = Vec::with_capacity(HEADER_SIZE + body);
    out.extend_from_slice(&original.as_bytes()[..HEADER_SIZE]);
    for (_, raw) in kept {
        out.extend_from_slice(raw);
    }
    let put_i32 = |out: &mut Vec<u8>, at: usize, v: i32| {
        out[at..at + 4].copy_from_slice(&v.to_be_bytes());
    };
    put_i32(&mut out, LENGTH, (HEADER_SIZE - LOG_OVERHEAD + body) as i32);
    put_i32(&mut out, LAST_OFFSET_DELTA, last.0.offset_delta);
    put_i32(&mut out, RECORD_COUNT, kept.len() as i32);
    let attributes = original.attributes() & !COMPRESSION_MASK;
    out[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    if !original.is_log_append_time() {
        let base_ts = original.base_timestamp();
        let max_ts = kept
            .iter()
            .map(|(r, _)| base_ts.wrapping_add(r.timestamp_delta))
            .max()
            .expect("non-empty");
        out[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_ts.to_be_bytes());
    }
    BatchView::new(&mut out[..])
        .expect("header copied from a valid batch")
        .update_crc();
    out
}

/// Splits a buffer of concatenated batches. Yields an error (and then stops)
/// at the first torn or malformed batch.
pub fn batches(buf: &[u8]) -> Batches<'_> {
    Batches {
        buf,
        pos: 0,
        failed: false,
    }
}

/// Iterator returned by [`batches`].
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Batches<'a> {
    /// Byte position of the next batch within the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<BatchView<&'a [u8]>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let result = split_one(rest);
        match &result {
            Ok(view) => self.pos += view.size(),
            Err(_) => self.failed = true,
        }
        Some(result)
    }
}

fn split_one(rest: &[u8]) -> Result<BatchView<&[u8]>, BatchError> {
    if rest.len() < LOG_OVERHEAD {
        return Err(BatchError::Truncated {
            needed: LOG_OVERHEAD,
            available: rest.len(),
        });
    }
    let length = get_i32(rest, LENGTH);
    // Enough to reach the magic byte; anything shorter cannot be a batch of any version.
    if length < 5 {
        return Err(BatchError::BadLength(length));
    }
    let size = LOG_OVERHEAD + length as usize;
    if rest.len() < size {
        return Err(BatchError::Truncated {
            needed: size,
            available: rest.len(),
        });
    }
    BatchView::new_complete(&rest[..size])
}

/// Smallest possible encoded record: length, attributes, timestamp delta, offset delta, key
/// length, value length and header count, one byte each. A record count needing more bytes
/// than a batch may hold is refused before anything is parsed.
pub const MIN_RECORD_SIZE: usize = 7;

/// How far the uncompressed records of one batch may exceed `max.message.bytes` (which Kafka
/// applies to the batch as stored, i.e. compressed). Ordinary data compresses 2-20x; the factor
/// leaves room for very repetitive payloads while bounding the work a small batch can ask for.
pub const MAX_INFLATION: usize = 64;

/// The most uncompressed record bytes one batch may carry under a `max.message.bytes` of
/// `max_message_bytes`. Never below 64 MiB, so a topic with a tiny limit can still take a
/// compressed record that is larger than that limit when inflated (Kafka accepts those).
pub fn max_uncompressed_bytes(max_message_bytes: u32) -> usize {
    (max_message_bytes as usize)
        .max(1 << 20)
        .saturating_mul(MAX_INFLATION)
}

/// The io error a [`Capped`] reader returns once its limit is passed.
#[derive(Debug)]
struct PastLimit(usize);

impl std::fmt::Display for PastLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "more than {} uncompressed bytes", self.0)
    }
}

impl std::error::Error for PastLimit {}

fn io_error(codec: Compression, e: io::Error) -> BatchError {
    if let Some(limit) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<PastLimit>())
    {
        return BatchError::TooLarge { limit: limit.0 };
    }
    BatchError::Decompression(format!("{codec:?}: {e}"))
}

/// Fails a read that would take the total output past `limit`.
struct Capped<R> {
    inner: R,
    limit: usize,
    left: usize,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > self.left {
            return Err(io::Error::other(PastLimit(self.limit)));
        }
        self.left -= n;
        Ok(n)
    }
}

/// A decompressing reader over a compressed records region, failing past `limit` output bytes.
/// Gzip, zstd and lz4 decode as a stream (constant memory besides the codec's own window);
/// snappy decodes one block at a time, each checked against the limit before it is allocated.
fn inflate(
    codec: Compression,
    region: &[u8],
    limit: usize,
) -> Result<Box<dyn Read + '_>, BatchError> {
    let fail = |e| io_error(codec, e);
    let inner: Box<dyn Read + '_> = match codec {
        Compression::None => Box::new(region),
        // Like Java's GZIPInputStream, concatenated gzip members are one stream.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(region)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(region).map_err(fail)?)
        }
        Compression::Lz4 => Box::new(lz4::Decoder::new(region).map_err(fail)?),
        Compression::Snappy => Box::new(SnappyReader::new(region, limit)),
    };
    Ok(Box::new(Capped {
        inner,
        limit,
        left: limit,
    }))
}

/// The framing Kafka's Java clients write around snappy blocks (snappy-java's stream format):
/// a 16-byte header, then blocks each prefixed by a big-endian u32 length. Other producers
/// (librdkafka) send one raw snappy block.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_SIZE: usize = 16;
/// A snappy copy element emits at most 64 bytes for 3 input bytes; a block declaring more
/// output than that is corrupt and must not size an allocation.
fn snappy_max_output(compressed: usize) -> usize {
    compressed.saturating_mul(64) / 3 + 64
}

struct SnappyReader<'a> {
    rest: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    pos: usize,
    left: usize,
    limit: usize,
}

impl<'a> SnappyReader<'a> {
    fn new(region: &'a [u8], limit: usize) -> SnappyReader<'a> {
        let framed = region.len() >= XERIAL_HEADER_SIZE && region.starts_with(XERIAL_MAGIC);
        SnappyReader {
            rest: if framed {
                &region[XERIAL_HEADER_SIZE..]
            } else {
                region
            },
            framed,
            block: Vec::new(),
            pos: 0,
            left: limit,
            limit,
        }
    }

    /// Decodes the next block; false when there is none.
    fn next_block(&mut self) -> io::Result<bool> {
        let corrupt = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        if self.rest.is_empty() {
            return Ok(false);
        }
        let compressed = if self.framed {
            let Some((len, tail)) = self.rest.split_first_chunk::<4>() else {
                return Err(corrupt("truncated snappy block length".into()));
            };
            let len = u32::from_be_bytes(*len) as usize;
            if tail.len() < len {
                return Err(corrupt(format!("snappy block of {len} bytes truncated")));
            }
            let (block, tail) = tail.split_at(len);
            self.rest = tail;
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let out_len = snap::raw::decompress_len(compressed).map_err(|e| corrupt(e.to_string()))?;
        if out_len > self.left {
            return Err(io::Error::other(PastLimit(self.limit)));
        }
        if out_len > snappy_max_output(compressed.len()) {
            return Err(corrupt(format!(
                "snappy block of {} bytes declares {out_len} uncompressed",
                compressed.len()
            )));
        }
        self.left -= out_len;
        self.block.clear();
        self.block.resize(out_len, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(|e| corrupt(e.to_string()))?;
        self.pos = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Where [`walk_records`] reads from: a plain slice, or a decompressing stream.
trait RecordInput {
    /// The next byte, None at the end of the input.
    fn byte(&mut self) -> Result<Option<u8>, BatchError>;
    /// Skips `n` bytes; false if the input ended first.
    fn skip(&mut self, n: usize) -> Result<bool, BatchError>;
    /// Bytes consumed so far.
    fn position(&self) -> u64;
    fn at_end(&mut self) -> Result<bool, BatchError>;
}

struct SliceInput<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl RecordInput for SliceInput<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        let b = self.buf.get(self.pos).copied();
        self.pos += b.is_some() as usize;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<bool, BatchError> {
        if self.buf.len() - self.pos < n {
            self.pos = self.buf.len();
            return Ok(false);
        }
        self.pos += n;
        Ok(true)
    }

    fn position(&self) -> u64 {
        self.pos as u64
    }

    fn at_end(&mut self) -> Result<bool, BatchError> {
        Ok(self.pos == self.buf.len())
    }
}

/// A small window over a decompressing reader, so records never need the whole output.
struct ReadInput<R> {
    inner: R,
    codec: Compression,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Bytes of the stream before `buf[0]`.
    base: u64,
}

const READ_WINDOW: usize = 16 * 1024;

impl<R: Read> ReadInput<R> {
    fn new(inner: R, codec: Compression) -> ReadInput<R> {
        ReadInput {
            inner,
            codec,
            buf: vec![0u8; READ_WINDOW].into_boxed_slice(),
            pos: 0,
            len: 0,
            base: 0,
        }
    }

    /// Refills the window once it is used up; false at the end of the stream.
    fn fill(&mut self) -> Result<bool, BatchError> {
        if self.pos < self.len {
            return Ok(true);
        }
        self.base += self.len as u64;
        self.pos = 0;
        self.len = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => {
                    self.len = n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(self.codec, e)),
            }
        }
    }
}

impl<R: Read> RecordInput for ReadInput<R> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        if !self.fill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(b))
    }

    fn skip(&mut self, mut n: usize) -> Result<bool, BatchError> {
        while n > 0 {
            if !self.fill()? {
                return Ok(false);
            }
            let step = n.min(self.len - self.pos);
            self.pos += step;
            n -= step;
        }
        Ok(true)
    }

    fn position(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn at_end(&mut self) -> Result<bool, BatchError> {
        Ok(!self.fill()?)
    }
}

/// Reads the fields of one record, never past its declared end.
struct Fields<'a, I> {
    input: &'a mut I,
    end: u64,
}

impl<I: RecordInput> Fields<'_, I> {
    fn fail(&self, what: &str) -> BatchError {
        BatchError::InvalidRecords(format!("{what} at byte {}", self.input.position()))
    }

    fn byte(&mut self) -> Result<u8, BatchError> {
        if self.input.position() >= self.end {
            return Err(self.fail("field overruns record"));
        }
        self.input
            .byte()?
            .ok_or_else(|| self.fail("unexpected end"))
    }

    /// Zigzag varint of at most `max_bytes` bytes.
    fn varlong(&mut self, max_bytes: usize) -> Result<i64, BatchError> {
        let mut raw: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte()?;
            raw |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(self.fail("varint too long"))
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        let v = self.varlong(5)?;
        i32::try_from(v).map_err(|_| self.fail("varint out of range"))
    }

    /// A length-prefixed field; -1 means null when `nullable`.
    fn bytes_field(&mut self, nullable: bool) -> Result<i32, BatchError> {
        let len = self.varint()?;
        if len < 0 {
            if len == -1 && nullable {
                return Ok(len);
            }
            return Err(self.fail("negative length"));
        }
        if self.end - self.input.position() < len as u64 {
            return Err(self.fail("field overruns record"));
        }
        if !self.input.skip(len as usize)? {
            return Err(self.fail("unexpected end"));
        }
        Ok(len)
    }
}

/// Parses exactly `count` records from `input`, calling `f` with each; rejects trailing bytes,
/// overruns and malformed varints. Work and memory are bounded by the input's bytes: a record
/// or header count can only make the loop run as long as there are bytes to consume.
fn walk_records<I: RecordInput>(
    input: &mut I,
    count: usize,
    mut f: impl FnMut(&RecordInfo, &Placement) -> ControlFlow<()>,
) -> Result<(), BatchError> {
    for n in 0..count {
        let record_start = input.position();
        let len = {
            let mut outer = Fields {
                input: &mut *input,
                end: u64::MAX,
            };
            outer.varint()?
        };
        if len <= 0 {
            return Err(BatchError::InvalidRecords(format!(
                "non-positive record length at byte {}",
                input.position()
            )));
        }
        let end = input.position() + len as u64;
        let mut r = Fields { input, end };
        let attributes = r.byte()? as i8;
        let timestamp_delta = r.varlong(10)?;
        let offset_delta = r.varint()?;
        let key_len = r.bytes_field(true)?;
        let key_end = r.input.position();
        let value_len = r.bytes_field(true)?;
        let value_end = r.input.position();
        let header_count = r.varint()?;
        if header_count < 0 {
            return Err(r.fail("negative header count"));
        }
        // Each header takes at least two bytes of the record, so the loop ends with the record.
        for _ in 0..header_count {
            r.bytes_field(false)?;
            r.bytes_field(true)?;
        }
        let at = r.input.position();
        if at != end {
            return Err(BatchError::InvalidRecords(format!(
                "record {n} has {} trailing bytes",
                end - at
            )));
        }
        let info = RecordInfo {
            attributes,
            timestamp_delta,
            offset_delta,
            key_len,
            value_len,
            header_count,
        };
        let placed = Placement {
            record: record_start..end,
            key_end,
            value_end,
        };
        if f(&info, &placed).is_break() {
            return Ok(());
        }
    }
    if !input.at_end()? {
        return Err(BatchError::InvalidRecords(format!(
            "bytes after the last of {count} records at byte {}",
            input.position()
        )));
    }
    Ok(())
}

/// Where a record lies in its (uncompressed) records region.
struct Placement {
    /// The whole record, its length prefix included.
    record: Range<u64>,
    /// Where its key field ends.
    key_end: u64,
    /// Where its value field ends.
    value_end: u64,
}

/// The parts of a record this crate cares about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key_len: i32,
    pub value_len: i32,
    pub header_count: i32,
}

/// Parses exactly `count` records from an uncompressed records region,
/// rejecting trailing bytes, overruns and malformed varints.
pub fn parse_records(data: &[u8], count: usize) -> Result<Vec<RecordInfo>, BatchError> {
    let mut out = Vec::new();
    walk_records(&mut SliceInput { buf: data, pos: 0 }, count, |r, _| {
        out.push(r.clone());
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

/// Where one record lies in an uncompressed records region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSpan {
    pub info: RecordInfo,
    /// The whole record, including its length prefix, so it can be copied verbatim.
    pub range: Range<usize>,
    /// The key bytes; None for a null key.
    pub key: Option<Range<usize>>,
}

impl RecordSpan {
    /// A null value marks a tombstone in a compacted topic.
    pub fn is_tombstone(&self) -> bool {
        self.info.value_len < 0
    }
}

/// Like [`parse_records`] but also locating each record and its key.
pub fn record_spans(data: &[u8], count: usize) -> Result<Vec<RecordSpan>, BatchError> {
    // Sized by the bytes present, never by the declared count alone.
    let mut out = Vec::with_capacity(count.min(data.len() / MIN_RECORD_SIZE));
    walk_records(&mut SliceInput { buf: data, pos: 0 }, count, |info, at| {
        let key_end = at.key_end as usize;
        out.push(RecordSpan {
            info: info.clone(),
            range: at.record.start as usize..at.record.end as usize,
            key: (info.key_len >= 0).then(|| key_end - info.key_len as usize..key_end),
        });
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

/// One record handed out by [`RecordReader`]. Key and value borrow from the bytes that were
/// read, or, for a compressed batch, from the reader's inflate buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Absolute offset: the batch's base offset plus the record's delta.
    pub offset: i64,
    /// As a consumer sees it: the batch's max timestamp for LogAppendTime batches.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    /// None is a tombstone.
    pub value: Option<&'a [u8]>,
    pub header_count: i32,
    /// The record belongs to a control batch (a transaction marker), not to data.
    pub control: bool,
    /// The batch's producer (-1 without one) and whether it is transactional.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub transactional: bool,
}

/// Where the reader stopped in the bytes of one read (see [`RecordReader::read`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadEnd {
    /// Bytes of whole batches walked: a following read continues after them.
    pub consumed: usize,
    /// The offset after the last whole batch walked, damaged or not; None if there was none.
    pub next_offset: Option<i64>,
    /// Why the walk stopped before the end: a torn or unframed batch (a read that ends inside a
    /// batch is the usual case). None when every byte was walked or the callback stopped it.
    pub stopped: Option<BatchError>,
}

/// A record's place in the records region, kept between validating a batch and handing out its
/// records, so a damaged batch hands out nothing.
#[derive(Clone, Copy)]
struct Located {
    timestamp_delta: i64,
    key_end: usize,
    value_end: usize,
    offset_delta: i32,
    key_len: i32,
    value_len: i32,
    header_count: i32,
}

/// Reads the records of stored batches without copying them: for loaders that replay a log
/// (the group coordinator) and need every key and value, not just the framing. Uses the same
/// record parser as validation. A batch is parsed whole before any of its records is handed out,
/// so a damaged batch yields an error and no records; the caller decides to skip it.
///
/// Memory is bounded and reused across batches: one entry per record of the largest batch (each
/// record takes at least [`MIN_RECORD_SIZE`] bytes, so a count cannot drive it), plus, for
/// compressed batches, the inflated records, refused past the `limit` given to [`RecordReader::new`].
pub struct RecordReader {
    limit: usize,
    verify_crc: bool,
    inflated: Vec<u8>,
    located: Vec<Located>,
}

impl RecordReader {
    /// A reader refusing compressed batches whose records inflate past `limit` bytes
    /// (see [`max_uncompressed_bytes`]). It verifies checksums.
    pub fn new(limit: usize) -> RecordReader {
        RecordReader {
            limit,
            verify_crc: true,
            inflated: Vec::new(),
            located: Vec::new(),
        }
    }

    /// Whether batches are checked against their CRC before their records are read (the default).
    pub fn verify_crc(mut self, verify: bool) -> RecordReader {
        self.verify_crc = verify;
        self
    }

    /// Hands every record of one complete batch to `f`, in order, unless the batch is damaged
    /// (bad CRC, unknown codec, inflating past the limit, malformed records), which is returned
    /// before any record is handed out. `f` may stop early.
    pub fn batch(
        &mut self,
        view: &BatchView<&[u8]>,
        mut f: impl FnMut(&RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, BatchError> {
        if self.verify_crc {
            view.check_crc()?;
        } else if !view.is_complete() {
            return Err(BatchError::Truncated {
                needed: view.size(),
                available: view.as_bytes().len(),
            });
        }
        let count = usize::try_from(view.record_count()).map_err(|_| {
            BatchError::InvalidRecords(format!("negative record count {}", view.record_count()))
        })?;
        let codec = view.compression()?;
        let data: &[u8] = if codec == Compression::None {
            view.records_region()
        } else {
            view.inflate_into(codec, self.limit, &mut self.inflated)?;
            &self.inflated
        };
        let located = &mut self.located;
        located.clear();
        // Sized by the bytes present, never by the declared count alone.
        located.reserve(count.min(data.len() / MIN_RECORD_SIZE));
        walk_records(&mut SliceInput { buf: data, pos: 0 }, count, |info, at| {
            located.push(Located {
                timestamp_delta: info.timestamp_delta,
                key_end: at.key_end as usize,
                value_end: at.value_end as usize,
                offset_delta: info.offset_delta,
                key_len: info.key_len,
                value_len: info.value_len,
                header_count: info.header_count,
            });
            ControlFlow::Continue(())
        })?;
        let base_offset = view.base_offset();
        let base_ts = view.base_timestamp();
        let append_time = view.is_log_append_time().then(|| view.max_timestamp());
        let control = view.is_control();
        let (producer_id, producer_epoch, transactional) = (
            view.producer_id(),
            view.producer_epoch(),
            view.is_transactional(),
        );
        // The parser checked that every field lies within the records region.
        let field = |len: i32, end: usize| (len >= 0).then(|| &data[end - len as usize..end]);
        for l in located.iter() {
            let record = RecordRef {
                offset: base_offset.wrapping_add(l.offset_delta as i64),
                timestamp: append_time.unwrap_or(base_ts.wrapping_add(l.timestamp_delta)),
                key: field(l.key_len, l.key_end),
                value: field(l.value_len, l.value_end),
                header_count: l.header_count,
                control,
                producer_id,
                producer_epoch,
                transactional,
            };
            if f(&record).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Walks the batches in the bytes of one read, handing each record to `on_record` and each
    /// damaged batch (with the reason) to `on_damaged`, then goes on with the next batch. Stops at
    /// the first torn or unframed batch, or when `on_record` breaks.
    pub fn read(
        &mut self,
        data: &[u8],
        mut on_record: impl FnMut(&RecordRef<'_>) -> ControlFlow<()>,
        mut on_damaged: impl FnMut(&BatchView<&[u8]>, BatchError),
    ) -> ReadEnd {
        let mut end = ReadEnd {
            consumed: 0,
            next_offset: None,
            stopped: None,
        };
        let mut split = batches(data);
        for view in &mut split {
            let view = match view {
                Ok(view) => view,
                Err(e) => {
                    end.stopped = Some(e);
                    return end;
                }
            };
            end.consumed += view.size();
            end.next_offset = Some(view.next_offset());
            match self.batch(&view, &mut on_record) {
                Ok(ControlFlow::Continue(())) => {}
                Ok(ControlFlow::Break(())) => return end,
                Err(e) => on_damaged(&view, e),
            }
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hostile header's offsets must not overflow when a reader steps past the batch.
    #[test]
    fn offsets_of_a_hostile_header_saturate() {
        let mut h = vec![0u8; HEADER_SIZE];
        h[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&(i64::MAX - 3).to_be_bytes());
        h[LENGTH..LENGTH + 4].copy_from_slice(&((HEADER_SIZE - LOG_OVERHEAD) as i32).to_be_bytes());
        h[MAGIC] = MAGIC_V2 as u8;
        h[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let view = BatchView::new(&h[..]).unwrap();
        assert_eq!(view.last_offset(), i64::MAX);
        assert_eq!(view.next_offset(), i64::MAX);
        let end = RecordReader::new(1 << 20).read(&h, |_| ControlFlow::Continue(()), |_, _| {});
        assert_eq!(end.next_offset, Some(i64::MAX));
    }
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression as WireCompression, Record, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType as WireTimestampType,
    };

    fn encode(timestamps: &[i64], producer_id: i64, compression: WireCompression) -> Vec<u8> {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, &ts)| Record {
                transactional: producer_id >= 0,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 7,
                producer_id,
                producer_epoch: 3,
                timestamp_type: WireTimestampType::Creation,
                offset: i as i64,
                sequence: 100 + i as i32,
                timestamp: ts,
                key: None,
                value: Some(bytes::Bytes::from(vec![b'x'; i * 10])),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        buf.to_vec()
    }

    #[test]
    fn header_accessors() {
        let raw = encode(&[1000, 1005, 1003], 42, WireCompression::None);
        let v = BatchView::new_complete(&raw[..]).unwrap();
        assert_eq!(v.size(), raw.len());
        assert_eq!(v.base_offset(), 0);
        assert_eq!(v.partition_leader_epoch(), 7);
        assert_eq!(v.magic(), 2);
        assert_eq!(v.last_offset_delta(), 2);
        assert_eq!(v.next_offset(), 3);
        assert_eq!(v.base_timestamp(), 1000);
        assert_eq!(v.max_timestamp(), 1005);
        assert_eq!(v.producer_id(), 42);
        assert_eq!(v.producer_epoch(), 3);
        assert_eq!(v.base_sequence(), 100);
        assert_eq!(v.last_sequence(), 102);
        assert_eq!(v.record_count(), 3);
        assert!(v.is_transactional());
        assert!(!v.is_control());
        assert!(!v.is_log_append_time());
        assert_eq!(v.compression().unwrap(), Compression::None);
        assert!(v.verify_crc());
        let ts = v.record_timestamps(1 << 20).unwrap();
        assert_eq!(ts, vec![(0, 1000), (1, 1005), (2, 1003)]);
    }

    #[test]
    fn compressed_records_parse() {
        for (wire, codec) in [
            (WireCompression::Gzip, Compression::Gzip),
            (WireCompression::Snappy, Compression::Snappy),
            (WireCompression::Lz4, Compression::Lz4),
            (WireCompression::Zstd, Compression::Zstd),
        ] {
            let raw = encode(&[5, 6, 7, 8], -1, wire);
            let v = BatchView::new_complete(&raw[..]).unwrap();
            assert_eq!(v.compression().unwrap(), codec);
            let records = v.records(1 << 20).unwrap();
            assert_eq!(records.len(), 4);
            assert_eq!(records[3].offset_delta, 3);
            assert_eq!(records[3].value_len, 30);
            assert_eq!(records[0].key_len, -1);
        }
    }

    #[test]
    fn setters_keep_crc_valid() {
        let mut raw = encode(&[1, 2], -1, WireCompression::None);
        let mut v = BatchView::new(&mut raw[..]).unwrap();
        v.set_base_offset(1 << 40);
        v.set_partition_leader_epoch(9);
        assert!(v.verify_crc(), "base offset and epoch are outside the crc");
        v.set_log_append_time(77);
        assert!(v.verify_crc());
        assert!(v.is_log_append_time());
        assert_eq!(v.max_timestamp(), 77);
        assert_eq!(v.base_offset(), 1 << 40);
        assert_eq!(v.last_offset(), (1 << 40) + 1);
        assert_eq!(
            v.record_timestamps(1 << 20).unwrap(),
            vec![(1 << 40, 77), ((1 << 40) + 1, 77)]
        );
        v.set_attributes(0);
        v.set_max_timestamp(2);
        assert!(v.verify_crc());
        assert!(!v.is_log_append_time());
    }

    #[test]
    fn iterator_splits_and_stops_at_torn_batch() {
        let a = encode(&[1], -1, WireCompression::None);
        let b = encode(&[2, 3], -1, WireCompression::None);
        let mut buf = a.clone();
        buf.extend(&b);
        let sizes: Vec<usize> = batches(&buf).map(|v| v.unwrap().size()).collect();
        assert_eq!(sizes, vec![a.len(), b.len()]);

        buf.extend(&b[..20]);
        let results: Vec<_> = batches(&buf).collect();
        assert_eq!(results.len(), 3);
        assert!(matches!(results[2], Err(BatchError::Truncated { .. })));

        let mut bad_len = a.clone();
        bad_len[8..12].copy_from_slice(&(-4i32).to_be_bytes());
        assert!(matches!(
            batches(&bad_len).next(),
            Some(Err(BatchError::BadLength(-4)))
        ));
        // A v2 magic with a length too short for the v2 header.
        let mut short = a[..40].to_vec();
        short[8..12].copy_from_slice(&28i32.to_be_bytes());
        assert!(matches!(
            batches(&short).next(),
            Some(Err(BatchError::BadLength(28)))
        ));
        let mut v1 = a.clone();
        v1[16] = 1;
        assert!(matches!(
            batches(&v1).next(),
            Some(Err(BatchError::UnsupportedMagic(1)))
        ));
    }

    #[test]
    fn crc_mismatch_is_reported() {
        let mut raw = encode(&[1, 2], -1, WireCompression::None);
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let v = BatchView::new_complete(&raw[..]).unwrap();
        assert!(!v.verify_crc());
        assert!(matches!(v.check_crc(), Err(BatchError::CrcMismatch { .. })));
    }

    #[test]
    fn record_parser_rejects_malformed_input() {
        let raw = encode(&[1, 2], -1, WireCompression::None);
        let v = BatchView::new_complete(&raw[..]).unwrap();
        let region = v.records_region();
        assert_eq!(parse_records(region, 2).unwrap().len(), 2);
        assert!(parse_records(region, 1).is_err(), "trailing record");
        assert!(parse_records(region, 3).is_err(), "missing record");
        assert!(parse_records(&region[..region.len() - 1], 2).is_err());
        assert!(parse_records(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 1).is_err());
    }

    #[test]
    fn rebuilt_batch_keeps_offsets_timestamps_and_payloads() {
        use kafka_protocol::records::RecordBatchDecoder;
        for compression in [WireCompression::None, WireCompression::Lz4] {
            let records: Vec<Record> = (0..4)
                .map(|i| Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: WireTimestampType::Creation,
                    offset: 10 + i,
                    sequence: 10 + i as i32,
                    timestamp: [500, 900, 700, 800][i as usize],
                    key: (i != 1).then(|| bytes::Bytes::from(format!("key{i}"))),
                    value: (i != 2).then(|| bytes::Bytes::from(format!("value{i}"))),
                    headers: [(
                        kafka_protocol::protocol::StrBytes::from_static_str("h"),
                        Some(bytes::Bytes::from_static(b"hv")),
                    )]
                    .into_iter()
                    .collect(),
                })
                .collect();
            let mut buf = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression,
            };
            RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
            let raw = buf.to_vec();
            let v = BatchView::new_complete(&raw[..]).unwrap();
            let data = v.decompressed_records(1 << 20).unwrap();
            let spans = record_spans(&data, 4).unwrap();
            assert_eq!(spans[1].key, None);
            assert_eq!(&data[spans[0].key.clone().unwrap()], b"key0");
            assert!(spans[2].is_tombstone() && !spans[3].is_tombstone());
            let kept: Vec<_> = [0, 2]
                .iter()
                .map(|&i| (&spans[i].info, &data[spans[i].range.clone()]))
                .collect();
            let rebuilt = rebuild_batch(&v, &kept);
            let r = BatchView::new_complete(&rebuilt[..]).unwrap();
            assert!(r.verify_crc());
            assert_eq!(r.compression().unwrap(), Compression::None);
            assert_eq!((r.base_offset(), r.last_offset()), (10, 12));
            assert_eq!(r.record_count(), 2);
            assert_eq!(r.max_timestamp(), 700, "recomputed from the kept records");
            let mut bytes = bytes::Bytes::from(rebuilt);
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            let got: Vec<_> = set
                .records
                .iter()
                .map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.clone()))
                .collect();
            assert_eq!(
                got,
                vec![
                    (10, 500, Some("key0".into()), Some("value0".into())),
                    (12, 700, Some("key2".into()), None),
                ]
            );
            assert_eq!(set.records[1].headers.len(), 1);
        }
    }

    /// One raw record (length prefix included) with a null key, `value_len` zero bytes and
    /// `headers` empty headers.
    fn raw_record(offset_delta: i64, value_len: usize, headers: usize) -> Vec<u8> {
        fn varint(v: i64, out: &mut Vec<u8>) {
            let mut z = ((v << 1) ^ (v >> 63)) as u64;
            loop {
                let b = (z & 0x7f) as u8;
                z >>= 7;
                if z == 0 {
                    out.push(b);
                    return;
                }
                out.push(b | 0x80);
            }
        }
        let mut body = vec![0u8]; // attributes
        varint(0, &mut body); // timestamp delta
        varint(offset_delta, &mut body);
        varint(-1, &mut body); // null key
        varint(value_len as i64, &mut body);
        body.resize(body.len() + value_len, 0);
        varint(headers as i64, &mut body);
        for _ in 0..headers {
            varint(0, &mut body); // empty key
            varint(-1, &mut body); // null value
        }
        let mut out = Vec::new();
        varint(body.len() as i64, &mut out);
        out.extend(body);
        out
    }

    fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        match codec {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::stream::encode_all(data, 3).unwrap(),
            Compression::Lz4 => {
                let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
                e.write_all(data).unwrap();
                let (out, r) = e.finish();
                r.unwrap();
                out
            }
            Compression::Snappy => snap::raw::Encoder::new().compress_vec(data).unwrap(),
        }
    }

    /// A v2 batch around an already encoded records region, with a valid CRC.
    fn batch_around(codec: Compression, count: i32, region: &[u8]) -> Vec<u8> {
        let attributes: i16 = match codec {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        };
        let mut out = vec![0u8; HEADER_SIZE];
        out[LENGTH..LENGTH + 4]
            .copy_from_slice(&((HEADER_SIZE - LOG_OVERHEAD + region.len()) as i32).to_be_bytes());
        out[MAGIC] = 2;
        out[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        out[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&(count - 1).to_be_bytes());
        out[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&(-1i64).to_be_bytes());
        out[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&count.to_be_bytes());
        out.extend_from_slice(region);
        BatchView::new(&mut out[..]).unwrap().update_crc();
        out
    }

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn compressed_batches_inflating_past_the_limit_are_refused() {
        let limit = 1 << 20;
        // One record of 4 MiB of zeros: a few KB compressed, four times the limit inflated.
        let plain = raw_record(0, 4 << 20, 0);
        for codec in CODECS {
            let raw = batch_around(codec, 1, &compress(codec, &plain));
            assert!(raw.len() < 256 << 10, "{codec:?}: {} bytes", raw.len());
            let v = BatchView::new_complete(&raw[..]).unwrap();
            assert_eq!(
                v.for_each_record(limit, |_| ControlFlow::Continue(())),
                Err(BatchError::TooLarge { limit }),
                "{codec:?}"
            );
            assert_eq!(
                v.decompressed_records(limit).map(|d| d.len()),
                Err(BatchError::TooLarge { limit }),
                "{codec:?}"
            );
            // The same batch is fine under a limit that holds it.
            let inflated = v.for_each_record(8 << 20, |_| ControlFlow::Continue(()));
            assert_eq!(inflated, Ok(plain.len() as u64), "{codec:?}");
        }
    }

    #[test]
    fn many_records_inflating_past_the_limit_are_refused() {
        let limit = 1 << 20;
        let plain: Vec<u8> = (0..2000).flat_map(|i| raw_record(i, 1000, 0)).collect();
        for codec in CODECS {
            let raw = batch_around(codec, 2000, &compress(codec, &plain));
            let v = BatchView::new_complete(&raw[..]).unwrap();
            assert_eq!(
                v.records(limit).map(|r| r.len()),
                Err(BatchError::TooLarge { limit }),
                "{codec:?}"
            );
            assert_eq!(v.records(4 << 20).unwrap().len(), 2000, "{codec:?}");
        }
    }

    #[test]
    fn record_count_that_cannot_fit_is_refused_before_inflating() {
        let limit = 1 << 20;
        let plain = raw_record(0, 10, 0);
        let count = (limit / MIN_RECORD_SIZE + 1) as i32;
        for codec in CODECS {
            let raw = batch_around(codec, count, &compress(codec, &plain));
            let v = BatchView::new_complete(&raw[..]).unwrap();
            assert_eq!(
                v.for_each_record(limit, |_| ControlFlow::Continue(())),
                Err(BatchError::TooLarge { limit })
            );
        }
        // Uncompressed, a count beyond the bytes present is simply invalid, and cheap to find.
        let raw = batch_around(Compression::None, i32::MAX, &plain);
        let v = BatchView::new_complete(&raw[..]).unwrap();
        assert!(matches!(
            v.records(limit),
            Err(BatchError::InvalidRecords(_))
        ));
    }

    #[test]
    fn declared_counts_and_lengths_do_not_drive_allocation() {
        // A header count of 2^31-1 in a 20-byte record fails within the record's bytes.
        let mut rec = raw_record(0, 3, 0);
        let last = rec.len() - 1;
        rec[last] = 0xfe; // zigzag varint 2^31-1 ...
        rec.extend_from_slice(&[0xff, 0xff, 0xff, 0x0f]);
        rec[0] += 4;
        let raw = batch_around(Compression::None, 1, &rec);
        let v = BatchView::new_complete(&raw[..]).unwrap();
        assert!(matches!(
            v.records(1 << 20),
            Err(BatchError::InvalidRecords(_))
        ));
        // A record declaring a 2 GB value in a small compressed batch ends at the stream's end.
        let mut rec = raw_record(0, 0, 0);
        rec.truncate(rec.len() - 2);
        rec[0] = 0xfe; // record length varint: far more than present
        let region = compress(Compression::Zstd, &rec);
        let raw = batch_around(Compression::Zstd, 1, &region);
        let v = BatchView::new_complete(&raw[..]).unwrap();
        assert!(v.records(1 << 20).is_err());
    }

    #[test]
    fn snappy_block_declaring_more_than_it_can_hold_is_corrupt() {
        // A raw snappy block whose length header claims 1 GiB but holds 3 literal bytes.
        let mut block = Vec::new();
        let mut n: u32 = 1 << 30;
        while n >= 0x80 {
            block.push((n as u8) | 0x80);
            n >>= 7;
        }
        block.push(n as u8);
        block.extend_from_slice(&[0x08, b'a', b'b', b'c']);
        let raw = batch_around(Compression::Snappy, 1, &block);
        let v = BatchView::new_complete(&raw[..]).unwrap();
        // Past the limit: refused as too large before any allocation.
        assert_eq!(
            v.records(1 << 20),
            Err(BatchError::TooLarge { limit: 1 << 20 })
        );
        // Within a huge limit: refused as corrupt, still before allocating.
        assert!(matches!(
            v.records(usize::MAX),
            Err(BatchError::Decompression(_))
        ));
    }

    #[test]
    fn java_framed_snappy_is_read_block_by_block() {
        let plain: Vec<u8> = (0..100).flat_map(|i| raw_record(i, 1000, 1)).collect();
        let mut region = XERIAL_MAGIC.to_vec();
        region.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        for chunk in plain.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            region.extend_from_slice(&(block.len() as u32).to_be_bytes());
            region.extend_from_slice(&block);
        }
        let raw = batch_around(Compression::Snappy, 100, &region);
        let v = BatchView::new_complete(&raw[..]).unwrap();
        let records = v.records(1 << 20).unwrap();
        assert_eq!(records.len(), 100);
        assert_eq!(records[99].header_count, 1);
        assert_eq!(v.decompressed_records(1 << 20).unwrap().len(), plain.len());
        assert!(v.records(plain.len() - 1).is_err());
    }

    #[test]
    fn find_record_stops_early() {
        let raw = encode(&[10, 20, 30, 40], -1, WireCompression::Zstd);
        let v = BatchView::new_complete(&raw[..]).unwrap();
        assert_eq!(
            v.find_record(1 << 20, |_, t| t >= 25).unwrap(),
            Some((2, 30))
        );
        assert_eq!(v.find_record(1 << 20, |o, _| o >= 9).unwrap(), None);
    }

    #[test]
    fn limit_derives_from_max_message_bytes() {
        assert_eq!(max_uncompressed_bytes(1_048_588), 1_048_588 * MAX_INFLATION);
        assert_eq!(max_uncompressed_bytes(100), (1 << 20) * MAX_INFLATION);
        assert_eq!(
            max_uncompressed_bytes(u32::MAX),
            u32::MAX as usize * MAX_INFLATION
        );
    }

    #[test]
    fn last_sequence_wraps() {
        let mut raw = encode(&[1, 2, 3], 5, WireCompression::None);
        raw[53..57].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        let v = BatchView::new(&raw[..]).unwrap();
        assert_eq!(v.last_sequence(), 0);
    }

    /// Records with keys, values, nulls and a header, as the reader must hand them back.
    fn sample_records(base: i64, n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: WireTimestampType::Creation,
                offset: base + i as i64,
                sequence: i as i32,
                timestamp: 1000 + (i as i64 * 7) % 5,
                key: (i % 3 != 1).then(|| bytes::Bytes::from(format!("key-{base}-{i}"))),
                value: (i % 4 != 2).then(|| bytes::Bytes::from(vec![b'v'; i * 3])),
                headers: [(
                    kafka_protocol::protocol::StrBytes::from_static_str("h"),
                    Some(bytes::Bytes::from_static(b"hv")),
                )]
                .into_iter()
                .take(i % 2)
                .collect(),
            })
            .collect()
    }

    fn encode_records(records: &[Record], compression: WireCompression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, records, &options).unwrap();
        buf.to_vec()
    }

    type Owned = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, i32, bool);

    fn owned(r: &RecordRef<'_>) -> Owned {
        (
            r.offset,
            r.timestamp,
            r.key.map(<[u8]>::to_vec),
            r.value.map(<[u8]>::to_vec),
            r.header_count,
            r.control,
        )
    }

    fn expected(records: &[Record]) -> Vec<Owned> {
        records
            .iter()
            .map(|r| {
                (
                    r.offset,
                    r.timestamp,
                    r.key.as_ref().map(|k| k.to_vec()),
                    r.value.as_ref().map(|v| v.to_vec()),
                    r.headers.len() as i32,
                    false,
                )
            })
            .collect()
    }

    /// Every record of `data` through [`RecordReader::read`], and the damaged batches' offsets.
    fn read_all(reader: &mut RecordReader, data: &[u8]) -> (Vec<Owned>, Vec<i64>, ReadEnd) {
        let mut got = Vec::new();
        let mut damaged = Vec::new();
        let end = reader.read(
            data,
            |r| {
                got.push(owned(r));
                ControlFlow::Continue(())
            },
            |v, _| damaged.push(v.base_offset()),
        );
        (got, damaged, end)
    }

    #[test]
    fn reader_hands_back_what_was_encoded_for_every_codec() {
        for wire in [
            WireCompression::None,
            WireCompression::Gzip,
            WireCompression::Snappy,
            WireCompression::Lz4,
            WireCompression::Zstd,
        ] {
            let first = sample_records(100, 7);
            let second = sample_records(107, 5);
            let mut data = encode_records(&first, wire);
            data.extend(encode_records(&second, wire));
            let mut reader = RecordReader::new(1 << 20);
            let (got, damaged, end) = read_all(&mut reader, &data);
            let mut want = expected(&first);
            want.extend(expected(&second));
            assert_eq!(got, want, "{wire:?}");
            assert!(damaged.is_empty());
            assert_eq!(
                end,
                ReadEnd {
                    consumed: data.len(),
                    next_offset: Some(112),
                    stopped: None
                }
            );
        }
    }

    #[test]
    fn reader_borrows_uncompressed_records_from_the_input() {
        let records = sample_records(0, 3);
        let data = encode_records(&records, WireCompression::None);
        let range = data.as_ptr_range();
        let view = BatchView::new_complete(&data[..]).unwrap();
        let mut seen = 0;
        let flow = RecordReader::new(1 << 20)
            .batch(&view, |r| {
                for field in [r.key, r.value].into_iter().flatten() {
                    assert!(range.contains(&field.as_ptr()) || field.is_empty());
                }
                seen += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
        assert!(flow.is_continue());
        assert_eq!(seen, 3);
    }

    #[test]
    fn reader_marks_control_batches_and_log_append_time() {
        let mut raw = encode_records(&sample_records(0, 2), WireCompression::None);
        let mut v = BatchView::new(&mut raw[..]).unwrap();
        let attributes = v.attributes() | CONTROL_BIT | TRANSACTIONAL_BIT;
        v.set_attributes(attributes);
        v.set_log_append_time(4242);
        let (got, _, _) = read_all(&mut RecordReader::new(1 << 20), &raw);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|r| r.5 && r.1 == 4242), "{got:?}");
    }

    #[test]
    fn reader_skips_damaged_batches_whole_and_stops_at_a_torn_one() {
        let a = sample_records(0, 3);
        let b = sample_records(3, 4);
        let c = sample_records(7, 2);
        let mut data = encode_records(&a, WireCompression::None);
        let b_at = data.len();
        let b_raw = encode_records(&b, WireCompression::None);
        data.extend(&b_raw);
        let c_raw = encode_records(&c, WireCompression::Zstd);
        data.extend(&c_raw);
        let whole = data.len();
        // A flipped bit in b's last value: its CRC no longer matches.
        let last = b_at + b_raw.len() - 2;
        data[last] ^= 0x40;
        data.extend(&c_raw[..30]);
        let mut reader = RecordReader::new(1 << 20);
        let (got, damaged, end) = read_all(&mut reader, &data);
        let mut want = expected(&a);
        want.extend(expected(&c));
        assert_eq!(got, want);
        assert_eq!(damaged, vec![3]);
        assert_eq!(end.consumed, whole);
        assert_eq!(end.next_offset, Some(9));
        assert!(matches!(end.stopped, Some(BatchError::Truncated { .. })));

        // Without CRC checks the flipped byte is just a different value.
        let (got, damaged, _) = read_all(&mut RecordReader::new(1 << 20).verify_crc(false), &data);
        assert!(damaged.is_empty());
        assert_eq!(got.len(), 9);
    }

    #[test]
    fn reader_hands_out_nothing_from_a_malformed_batch_with_a_valid_crc() {
        let plain: Vec<u8> = (0..5).flat_map(|i| raw_record(i, 4, 0)).collect();
        for (count, region) in [
            (6, plain.clone()),                     // a record missing
            (4, plain.clone()),                     // trailing bytes
            (5, plain[..plain.len() - 1].to_vec()), // last record cut
            (i32::MAX, plain.clone()),              // a count no bytes could hold
            (-1, plain.clone()),
        ] {
            for codec in [Compression::None, Compression::Lz4] {
                let raw = batch_around(codec, count, &compress(codec, &region));
                let v = BatchView::new_complete(&raw[..]).unwrap();
                let mut reader = RecordReader::new(1 << 20);
                let mut seen = 0;
                let r = reader.batch(&v, |_| {
                    seen += 1;
                    ControlFlow::Continue(())
                });
                assert!(r.is_err(), "{count} {codec:?}");
                assert_eq!(seen, 0, "{count} {codec:?}");
                assert!(
                    reader.located.capacity() <= plain.len(),
                    "{count} {codec:?}"
                );
            }
        }
    }

    #[test]
    fn reader_refuses_bombs_within_its_limit() {
        let limit = 1 << 20;
        let plain = raw_record(0, 4 << 20, 0);
        for codec in CODECS {
            let raw = batch_around(codec, 1, &compress(codec, &plain));
            let mut reader = RecordReader::new(limit);
            let (got, damaged, end) = read_all(&mut reader, &raw);
            assert!(got.is_empty() && damaged == vec![0], "{codec:?}");
            assert_eq!(end.consumed, raw.len());
            assert!(reader.inflated.capacity() <= 2 * limit, "{codec:?}");
            let v = BatchView::new_complete(&raw[..]).unwrap();
            assert_eq!(
                reader.batch(&v, |_| ControlFlow::Continue(())),
                Err(BatchError::TooLarge { limit })
            );
        }
    }

    #[test]
    fn reader_callback_can_stop() {
        let mut data = encode_records(&sample_records(0, 4), WireCompression::None);
        data.extend(encode_records(&sample_records(4, 4), WireCompression::Gzip));
        let mut offsets = Vec::new();
        let end = RecordReader::new(1 << 20).read(
            &data,
            |r| {
                offsets.push(r.offset);
                if r.offset == 5 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
            |_, e| panic!("{e}"),
        );
        assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(end.next_offset, Some(8));
        assert_eq!(end.stopped, None);
    }

    #[test]
    fn reader_survives_arbitrary_bytes() {
        // Every prefix and single-byte corruption of a valid read, CRCs refreshed so the parser
        // itself is exercised; nothing may panic and every record handed out lies in the input.
        let mut data = encode_records(&sample_records(0, 5), WireCompression::None);
        data.extend(encode_records(
            &sample_records(5, 3),
            WireCompression::Snappy,
        ));
        let mut reader = RecordReader::new(1 << 16);
        for cut in 0..=data.len() {
            read_all(&mut reader, &data[..cut]);
        }
        for at in 0..data.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[at] ^= flip;
                let mut pos = 0;
                while let Some(Ok(v)) = batches(&bad[pos..]).next() {
                    let size = v.size();
                    BatchView::new(&mut bad[pos..pos + size])
                        .unwrap()
                        .update_crc();
                    pos += size;
                }
                let (got, _, end) = read_all(&mut reader, &bad);
                assert!(end.consumed <= bad.len());
                assert!(got.len() <= bad.len() / MIN_RECORD_SIZE);
            }
        }
    }
}

/// One record for [`encode_plain`].
#[derive(Clone, Copy, Debug)]
pub struct PlainRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
}

/// Encodes `records` as one uncompressed v2 batch without a producer id, offsets 0..n (the log
/// assigns the real ones on append). For internal writers (the group coordinator) and tests.
pub fn encode_plain(records: &[PlainRecord<'_>]) -> bytes::BytesMut {
    encode_tagged(records, None, false)
}

/// Like [`encode_plain`], but the batch may belong to a producer `(id, epoch)`: then it is a
/// transactional batch, or with `control` a control batch (its one record a transaction
/// marker, key and value as the caller encoded them).
pub fn encode_tagged(
    records: &[PlainRecord<'_>],
    producer: Option<(i64, i16)>,
    control: bool,
) -> bytes::BytesMut {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: producer.is_some(),
            control,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch only while offset - sequence stays constant.
            // A marker has no sequence (-1), as Kafka writes it.
            sequence: if control { -1 } else { i as i32 },
            timestamp: r.timestamp,
            key: r.key.map(Bytes::copy_from_slice),
            value: r.value.map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    // Writing uncompressed records into memory has no failure mode.
    .expect("encoding an uncompressed batch");
    buf
}

#[cfg(test)]
mod plain_tests {
    use super::*;

    #[test]
    fn plain_batches_are_one_valid_batch() {
        let recs: Vec<PlainRecord> = (0..5)
            .map(|i| PlainRecord {
                key: Some(b"k"),
                value: if i == 4 { None } else { Some(b"v") },
                timestamp: 1000 + i,
            })
            .collect();
        let buf = encode_plain(&recs);
        let all: Vec<_> = batches(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].verify_crc());
        assert_eq!(all[0].record_count(), 5);
        assert_eq!(all[0].max_timestamp(), 1004);
    }
}

impl Compression {
    /// The codec a `compression.type` value names; `None` for `producer` (keep the batch's own).
    pub fn from_config_name(name: &str) -> Option<Compression> {
        match name {
            "uncompressed" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// A topic's codec with its level (`compression.<codec>.level`; ignored by snappy and none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    pub compression: Compression,
    pub level: i32,
}

/// A writer that fails once more than `limit` bytes were written to it, so the output of a
/// recompression never grows past what the log would accept anyway.
struct CappedWriter {
    out: Vec<u8>,
    limit: usize,
}

/// The io error a [`CappedWriter`] returns once its limit is passed.
#[derive(Debug)]
struct OutputPastLimit;

impl std::fmt::Display for OutputPastLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("recompressed batch too large")
    }
}

impl std::error::Error for OutputPastLimit {}

impl io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            return Err(io::Error::other(OutputPastLimit));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Snappy-java's stream block size; Kafka's Java clients read this framing.
const SNAPPY_BLOCK: usize = 32 * 1024;

/// Writes snappy-java's framing (magic header, then length-prefixed raw snappy blocks), the
/// form Kafka's own broker writes and every client reads.
fn snappy_framed(input: &mut dyn Read, out: &mut CappedWriter) -> io::Result<()> {
    use io::Write;
    out.write_all(XERIAL_MAGIC)?;
    out.write_all(&1i32.to_be_bytes())?;
    out.write_all(&1i32.to_be_bytes())?;
    let mut encoder = snap::raw::Encoder::new();
    let mut block = vec![0u8; SNAPPY_BLOCK];
    let mut packed = vec![0u8; snap::raw::max_compress_len(SNAPPY_BLOCK)];
    loop {
        let mut filled = 0;
        while filled < block.len() {
            let n = input.read(&mut block[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Ok(());
        }
        let n = encoder
            .compress(&block[..filled], &mut packed)
            .map_err(io::Error::other)?;
        out.write_all(&(n as i32).to_be_bytes())?;
        out.write_all(&packed[..n])?;
        if filled < block.len() {
            return Ok(());
        }
    }
}

/// Streams `input` (`size` bytes) through `codec` into `out`.
fn deflate(
    codec: Codec,
    input: &mut dyn Read,
    size: u64,
    out: &mut CappedWriter,
) -> io::Result<()> {
    match codec.compression {
        Compression::None => io::copy(input, out).map(|_| ()),
        Compression::Gzip => {
            // Kafka's default gzip level (-1) is zlib's default.
            let level = match u32::try_from(codec.level) {
                Ok(l) if (1..=9).contains(&l) => flate2::Compression::new(l),
                _ => flate2::Compression::default(),
            };
            let mut enc = flate2::write::GzEncoder::new(out, level);
            io::copy(input, &mut enc)?;
            enc.finish().map(|_| ())
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, codec.level)?;
            // Knowing the size lets zstd size its window and tables to the input rather than
            // to the level's maximum (hundreds of MiB at the highest levels).
            enc.set_pledged_src_size(Some(size))?;
            // The ultra levels (20-22, which zstd's own tool gates behind --ultra) would size
            // their window and tables for up to 1 GiB of memory; level 19's keep them under
            // about 100 MiB while the search strategy stays the level's own.
            if codec.level > 19 {
                use zstd::zstd_safe::CParameter;
                enc.set_parameter(CParameter::WindowLog(23))?;
                enc.set_parameter(CParameter::ChainLog(24))?;
                enc.set_parameter(CParameter::HashLog(22))?;
            }
            io::copy(input, &mut enc)?;
            enc.finish().map(|_| ())
        }
        Compression::Lz4 => {
            // The frame Kafka's own writer produces: 64 KiB independent blocks, no block or
            // content checksums (its reader takes independent blocks only, and some clients'
            // lz4 readers misplace block checksums).
            let mut enc = lz4::EncoderBuilder::new()
                .level(codec.level.max(0) as u32)
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .block_checksum(lz4::liblz4::BlockChecksum::NoBlockChecksum)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(out)?;
            io::copy(input, &mut enc)?;
            let (_, result) = enc.finish();
            result
        }
        Compression::Snappy => snappy_framed(input, out),
    }
}

/// Rewrites a validated batch with its records compressed by `target`, as Kafka's broker does
/// for a topic whose `compression.type` differs from the producer's codec. Every header field
/// stays (offsets, timestamps, producer id, epoch, sequence, transactional flag), so the records
/// keep their deltas; only the codec bits, the length and the CRC change. The source is inflated
/// as a stream (at most `inflate_limit` bytes; `inflated` is its size as validation measured it)
/// and the result may not exceed `max_size` bytes,
/// so memory stays within what the log accepts for one batch: `Ok(None)` when it would.
pub fn recompress(
    view: &BatchView<&[u8]>,
    target: Codec,
    inflated: u64,
    inflate_limit: usize,
    max_size: usize,
) -> Result<Option<Vec<u8>>, BatchError> {
    let source = view.compression()?;
    let mut out = CappedWriter {
        out: Vec::with_capacity(view.size().min(max_size)),
        limit: max_size,
    };
    out.out.extend_from_slice(&view.as_bytes()[..HEADER_SIZE]);
    let mut input = inflate(source, view.records_region(), inflate_limit)?;
    if let Err(e) = deflate(target, &mut input, inflated, &mut out) {
        if e.get_ref()
            .is_some_and(|inner| inner.is::<OutputPastLimit>())
        {
            return Ok(None);
        }
        return Err(io_error(source, e));
    }
    let mut out = out.out;
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[LENGTH..LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let attributes = (view.attributes() & !COMPRESSION_MASK) | target.compression.attribute_bits();
    out[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    BatchView::new(&mut out[..])
        .expect("header copied from a valid batch")
        .update_crc();
    Ok(Some(out))
}
