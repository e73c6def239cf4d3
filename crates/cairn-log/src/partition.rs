//! One partition's durable log: a directory of segments, each a `.log` file of
//! raw batches plus a sparse offset index and a time index.
//!
//! Invariants that keep recovery cheap:
//! - only the last (active) segment can hold data that was never fsynced, because
//!   a segment is fsynced (with its indexes) before the next one is created;
//! - the in-memory indexes are authoritative while open; index files are a
//!   cache that open() validates and rebuilds when in doubt.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tracing::{debug, error, info, warn};

use crate::batch::{self, BatchError, BatchView, HEADER_SIZE};

mod compact;
mod producers;
mod scan;
mod txn;
use compact::CleanerState;
pub use compact::CompactStats;
use producers::{ProducerStates, Staged, Verdict};
pub use txn::{AbortedTxn, OpenTxn};
use txn::{TxnBatch, TxnIndex};

use crate::control::MarkerKind;
pub use scan::Damage;
use scan::{readable_until, scan_segment, skip_holes, Bounds};

const LOG_SUFFIX: &str = "log";
const INDEX_SUFFIX: &str = "index";
const TIME_INDEX_SUFFIX: &str = "timeindex";
const CLEAN_MARKER: &str = "clean_shutdown";
const OFFSET_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;
/// Relative offsets and positions are stored as u32; Kafka caps both at i32::MAX.
const MAX_RELATIVE: i64 = i32::MAX as i64;

/// How record timestamps are assigned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// Per-partition settings, mirroring the Kafka topic configs of the same names.
#[derive(Clone, Debug)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub index_interval_bytes: u32,
    pub max_message_bytes: u32,
    pub timestamp_type: TimestampType,
    /// `cleanup.policy` includes `compact`: [`PartitionLog::compact`] keeps the newest record per key.
    pub cleanup_compact: bool,
    /// `cleanup.policy` includes `delete`: retention deletes old segments. Like Kafka, a
    /// compact-only topic keeps its segments however old or large.
    pub cleanup_delete: bool,
    /// `delete.retention.ms`: how long compaction keeps tombstones (null values).
    pub delete_retention_ms: i64,
    /// `compression.type` other than `producer`: client batches in another codec are
    /// recompressed into this one, as Kafka's broker does.
    pub compression: Option<batch::Codec>,
}

impl Default for LogConfig {
    fn default() -> Self {
        const WEEK_MS: i64 = 7 * 24 * 60 * 60 * 1000;
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: WEEK_MS,
            retention_ms: WEEK_MS,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            cleanup_compact: false,
            cleanup_delete: true,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            compression: None,
        }
    }
}

impl LogConfig {
    /// The most uncompressed record bytes one batch (or one append) may inflate to.
    pub fn max_uncompressed_bytes(&self) -> usize {
        batch::max_uncompressed_bytes(self.max_message_bytes)
    }
}

/// Outcome of a successful append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker-assigned timestamp, or -1 for CreateTime partitions.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    pub record_count: u32,
    /// The append was a retry of batches already in the log (same producer, epoch and
    /// sequences): nothing was written and the offsets are those of the original.
    pub duplicate: bool,
}

/// Whole batches returned by a read.
#[derive(Clone, Debug)]
pub struct ReadResult {
    pub data: Bytes,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

#[derive(thiserror::Error, Debug)]
pub enum LogError {
    #[error("offset {requested} out of range [{start}, {end}]")]
    OffsetOutOfRange {
        requested: i64,
        start: i64,
        end: i64,
    },
    #[error("corrupt batch: {0}")]
    CorruptBatch(String),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    #[error("batch of {size} bytes exceeds the maximum of {max}")]
    MessageTooLarge { size: usize, max: u32 },
    /// Compressed records that inflate past the bound derived from `max.message.bytes`.
    #[error("records inflate to more than {limit} bytes")]
    InflatesTooLarge { limit: usize },
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    #[error("producer {producer_id}: epoch {epoch} is older than the current {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
}

impl From<BatchError> for LogError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::UnsupportedMagic(m) => LogError::UnsupportedMagic(m),
            BatchError::InvalidRecords(_) => LogError::InvalidRecord(e.to_string()),
            BatchError::Truncated { .. }
            | BatchError::BadLength(_)
            | BatchError::CrcMismatch { .. }
            | BatchError::UnknownCompression(_)
            | BatchError::Decompression(_) => LogError::CorruptBatch(e.to_string()),
            BatchError::TooLarge { limit } => LogError::InflatesTooLarge { limit },
        }
    }
}

fn segment_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

/// The log start offset DeleteRecords set, as `<offset> <crc32c of the offset's digits>`.
const LOG_START_FILE: &str = "log-start-offset";

fn log_start_line(offset: i64) -> String {
    let digits = offset.to_string();
    format!("{digits} {:08x}\n", crc32c::crc32c(digits.as_bytes()))
}

/// The recorded log start, or 0. A damaged file is reported and ignored: the hidden records
/// show again (until retention deletes them) rather than the partition failing to open.
fn read_log_start(dir: &Path) -> i64 {
    let path = dir.join(LOG_START_FILE);
    let Ok(text) = fs::read(&path) else {
        return 0;
    };
    let parsed = std::str::from_utf8(&text).ok().and_then(|t| {
        let (digits, crc) = t.trim_end().split_once(' ')?;
        let offset: i64 = digits.parse().ok().filter(|o| *o >= 0)?;
        (u32::from_str_radix(crc, 16).ok()? == crc32c::crc32c(digits.as_bytes())).then_some(offset)
    });
    match parsed {
        Some(o) => o,
        None => {
            warn!(file = %path.display(), "damaged log start offset file ignored: records deleted by DeleteRecords may show again");
            0
        }
    }
}

/// Records the log start durably: a temporary file, synced, renamed over the old one.
fn write_log_start(dir: &Path, offset: i64) -> io::Result<()> {
    cairn_durable::replace(dir, LOG_START_FILE, log_start_line(offset).as_bytes())
}

/// Sparse lookup structures of one segment, rebuilt identically by `track`
/// whether batches arrive through append or a recovery scan.
#[derive(Default, Clone, PartialEq, Eq, Debug)]
struct Indexes {
    /// (relative base offset of a batch, file position of that batch).
    offsets: Vec<(u32, u32)>,
    /// (batch max timestamp, relative base offset), added whenever a batch raises the segment's max.
    times: Vec<(i64, u32)>,
    bytes_since_entry: u64,
}

impl Indexes {
    fn track(&mut self, base: i64, pos: u64, view: &BatchView<impl AsRef<[u8]>>, interval: u32) {
        let (offset, size, ts) = (view.base_offset(), view.size() as u64, view.max_timestamp());
        self.track_raw(base, pos, offset, size, ts, interval);
    }

    fn track_raw(&mut self, base: i64, pos: u64, offset: i64, size: u64, ts: i64, interval: u32) {
        let rel = (offset - base) as u32;
        if self.bytes_since_entry >= interval as u64 {
            self.offsets.push((rel, pos as u32));
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += size;
        if ts > self.times.last().map_or(-1, |e| e.0) {
            self.times.push((ts, rel));
        }
    }

    /// File position to start scanning from for relative offset `rel`.
    fn position_for(&self, rel: u32) -> u64 {
        let i = self.offsets.partition_point(|e| e.0 <= rel);
        if i == 0 {
            0
        } else {
            self.offsets[i - 1].1 as u64
        }
    }

    fn max_timestamp(&self) -> Option<(i64, u32)> {
        self.times.last().copied()
    }
}

struct Segment {
    base: i64,
    log: Arc<File>,
    index_file: File,
    time_file: File,
    size: u64,
    next_offset: i64,
    idx: Indexes,
    /// Entries already persisted to the index files.
    offsets_written: usize,
    times_written: usize,
    /// Max timestamp of the first batch, the reference for time-based rolling.
    first_batch_ts: Option<i64>,
    /// Broker clock at the first append seen by this process; the fallback
    /// reference when batches carry no timestamps.
    created_ms: Option<i64>,
    /// Damaged byte ranges found on open; reads and scans jump over them.
    holes: Vec<(u64, u64)>,
}

impl Segment {
    fn open_files(dir: &Path, base: i64, truncate: bool) -> io::Result<(File, File, File)> {
        let open = |suffix: &str, trunc: bool| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(trunc)
                .open(segment_path(dir, base, suffix))
        };
        Ok((
            open(LOG_SUFFIX, truncate)?,
            open(INDEX_SUFFIX, truncate)?,
            open(TIME_INDEX_SUFFIX, truncate)?,
        ))
    }

    fn create(dir: &Path, base: i64) -> io::Result<Segment> {
        let (log, index_file, time_file) = Segment::open_files(dir, base, true)?;
        Ok(Segment {
            base,
            log: Arc::new(log),
            index_file,
            time_file,
            size: 0,
            next_offset: base,
            idx: Indexes::default(),
            offsets_written: 0,
            times_written: 0,
            first_batch_ts: None,
            created_ms: None,
            holes: Vec::new(),
        })
    }

    /// Appends index entries not yet in the files. No fsync: the files are rebuildable.
    fn write_new_index_entries(&mut self) -> io::Result<()> {
        if self.offsets_written < self.idx.offsets.len() {
            let mut buf = Vec::new();
            for &(rel, pos) in &self.idx.offsets[self.offsets_written..] {
                buf.extend_from_slice(&rel.to_be_bytes());
                buf.extend_from_slice(&pos.to_be_bytes());
            }
            self.index_file
                .write_all_at(&buf, (self.offsets_written * OFFSET_ENTRY) as u64)?;
            self.offsets_written = self.idx.offsets.len();
        }
        if self.times_written < self.idx.times.len() {
            let mut buf = Vec::new();
            for &(ts, rel) in &self.idx.times[self.times_written..] {
                buf.extend_from_slice(&ts.to_be_bytes());
                buf.extend_from_slice(&rel.to_be_bytes());
            }
            self.time_file
                .write_all_at(&buf, (self.times_written * TIME_ENTRY) as u64)?;
            self.times_written = self.idx.times.len();
        }
        Ok(())
    }

    /// Replaces both index files with the in-memory indexes.
    fn rewrite_index_files(&mut self) -> io::Result<()> {
        self.index_file.set_len(0)?;
        self.time_file.set_len(0)?;
        self.offsets_written = 0;
        self.times_written = 0;
        self.write_new_index_entries()
    }

    fn sync_all_files(&mut self) -> io::Result<()> {
        self.write_new_index_entries()?;
        self.log.sync_data()?;
        self.index_file.sync_data()?;
        self.time_file.sync_data()
    }

    fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.idx
            .max_timestamp()
            .map(|(ts, rel)| (ts, self.base + rel as i64))
    }

    /// Largest timestamp for retention, falling back to the file's mtime when
    /// the batches carry no timestamps.
    fn retention_timestamp(&self) -> i64 {
        if let Some((ts, _)) = self.idx.max_timestamp() {
            return ts;
        }
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(i64::MAX, |d| d.as_millis() as i64)
    }

    fn delete_files(&self, dir: &Path) {
        // The log goes first: index files without a log are swept on open.
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let path = segment_path(dir, self.base, suffix);
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    warn!(segment = self.base, error = %e, "failed to delete segment file");
                }
            }
        }
    }
}

fn read_file_if_exists(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses index files, returning None if they are missing or implausible.
fn load_indexes(dir: &Path, base: i64, log_size: u64) -> io::Result<Option<Indexes>> {
    let (Some(raw_off), Some(raw_time)) = (
        read_file_if_exists(&segment_path(dir, base, INDEX_SUFFIX))?,
        read_file_if_exists(&segment_path(dir, base, TIME_INDEX_SUFFIX))?,
    ) else {
        return Ok(None);
    };
    if raw_off.len() % OFFSET_ENTRY != 0 || raw_time.len() % TIME_ENTRY != 0 {
        return Ok(None);
    }
    let offsets: Vec<(u32, u32)> = raw_off
        .chunks_exact(OFFSET_ENTRY)
        .map(|c| {
            (
                u32::from_be_bytes(c[0..4].try_into().expect("4")),
                u32::from_be_bytes(c[4..8].try_into().expect("4")),
            )
        })
        .collect();
    let times: Vec<(i64, u32)> = raw_time
        .chunks_exact(TIME_ENTRY)
        .map(|c| {
            (
                i64::from_be_bytes(c[0..8].try_into().expect("8")),
                u32::from_be_bytes(c[8..12].try_into().expect("4")),
            )
        })
        .collect();
    let offsets_ok = offsets
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
        && offsets.iter().all(|e| (e.1 as u64) < log_size);
    let times_ok = times.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
        && times.first().is_none_or(|e| e.0 >= 0);
    if !offsets_ok || !times_ok {
        return Ok(None);
    }
    Ok(Some(Indexes {
        offsets,
        times,
        bytes_since_entry: 0,
    }))
}

fn read_header(file: &File, pos: u64) -> io::Result<[u8; HEADER_SIZE]> {
    let mut header = [0u8; HEADER_SIZE];
    file.read_exact_at(&mut header, pos)?;
    Ok(header)
}

/// Opens one segment and checks every batch in it (see `scan`). The indexes come from that
/// scan; the index files are rewritten when they differ, and failing to write them (a full disk)
/// costs only a warning: they are a cache rebuilt on every open. Returns the damage found.
fn recover_segment(
    dir: &Path,
    bounds: Bounds,
    interval: u32,
) -> Result<(Segment, Vec<Damage>), LogError> {
    let base = bounds.base;
    let (log, index_file, time_file) = Segment::open_files(dir, base, false)?;
    let file_size = log.metadata()?.len();
    let scan = scan_segment(&log, file_size, bounds, interval)?;
    let holes = scan.holes();
    if scan.valid_end < file_size {
        // Only the active segment's damaged tail is cut, as Kafka's recovery does: appends
        // continue where the intact data ends. Shrinking a file needs no free space.
        log.set_len(scan.valid_end)?;
        log.sync_all()?;
    }
    let mut seg = Segment {
        base,
        log: Arc::new(log),
        index_file,
        time_file,
        size: scan.valid_end,
        next_offset: scan.next_offset,
        idx: scan.idx,
        offsets_written: 0,
        times_written: 0,
        first_batch_ts: scan.first_ts.filter(|&ts| ts >= 0),
        created_ms: None,
        holes,
    };
    let on_disk = load_indexes(dir, base, file_size).ok().flatten();
    let current = Indexes {
        bytes_since_entry: 0,
        ..seg.idx.clone()
    };
    if on_disk.as_ref() == Some(&current) {
        seg.offsets_written = seg.idx.offsets.len();
        seg.times_written = seg.idx.times.len();
    } else {
        debug!(segment = base, dir = %dir.display(), "writing index files");
        let written = seg
            .rewrite_index_files()
            .and_then(|()| seg.index_file.sync_data())
            .and_then(|()| seg.time_file.sync_data());
        if let Err(e) = written {
            warn!(segment = base, dir = %dir.display(), error = %e,
                "cannot write index files; serving from the in-memory index");
        }
    }
    Ok((seg, scan.damage))
}

/// The log end written into the clean-shutdown marker (empty in markers of older versions).
fn recorded_end(marker: &Path) -> Option<i64> {
    let text = fs::read_to_string(marker).ok()?;
    text.trim().strip_prefix("log_end=")?.parse().ok()
}

/// After a clean shutdown the log must end where the marker says. If the last segment ends
/// earlier, its end was lost to damage: the damage found there (or a new entry if the file was
/// simply cut short) is completed with the offsets lost, and the recorded end is returned.
fn lost_end(
    base: i64,
    size: u64,
    end: i64,
    recorded: Option<i64>,
    damage: &mut Vec<Damage>,
) -> Option<i64> {
    let recorded = recorded.filter(|&r| r > end)?;
    match damage.iter_mut().rev().find(|d| d.truncated && d.segment == base) {
        Some(d) => d.end_offset = Some(recorded),
        None => damage.push(Damage {
            segment: base,
            start_pos: size,
            end_pos: size,
            first_offset: end,
            end_offset: Some(recorded),
            reason: format!("the segment ends at offset {end}, but the log ended at {recorded} at the clean shutdown"),
            truncated: true,
        }),
    }
    Some(recorded)
}

/// Logs one line per damaged range, loudly: a range that lost acknowledged data is an error.
fn report_damage(dir: &Path, damage: &[Damage], clean: bool) {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    let (topic, partition) = name.rsplit_once('-').unwrap_or((name, "?"));
    for d in damage {
        let lost = match d.end_offset {
            Some(end) => format!("{}..{}", d.first_offset, end),
            None => format!("{}..(unknown)", d.first_offset),
        };
        if d.truncated && !clean {
            // The expected leftover of a crash mid-write, cut as Kafka's recovery cuts it.
            warn!(
                topic,
                partition,
                segment = d.segment,
                position = d.start_pos,
                bytes = d.end_pos - d.start_pos,
                "{}; cut the torn tail of the active segment",
                d.reason
            );
        } else if d.truncated {
            error!(topic, partition, segment = d.segment, position = d.start_pos,
                bytes = d.end_pos - d.start_pos, offsets_lost = %lost,
                "damaged data at the end of the active segment after a clean shutdown: {}; cut it off", d.reason);
        } else {
            error!(topic, partition, segment = d.segment, position = d.start_pos,
                bytes = d.end_pos - d.start_pos, offsets_lost = %lost,
                "damaged data in segment: {}; reads skip to the next intact batch", d.reason);
        }
    }
}

/// How much of the log's tail is scanned on open to rebuild producer state. Retries come within
/// seconds of the original, so the newest batches are the ones whose duplicates matter.
const PRODUCER_SCAN_BYTES: u64 = 16 << 20;

/// Rebuilds idempotent-producer state from the batch headers of the log's last
/// `PRODUCER_SCAN_BYTES` (the active segment, and the one before it if the active one is
/// smaller). Headers only: one small read per batch. Compacted topics scan only the active
/// segment, because compaction rewrites batches and their last offset delta, which would give a
/// wrong last sequence; the active segment is never compacted.
fn rebuild_producers(segments: &[Segment], compacted: bool) -> Result<ProducerStates, LogError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut states = ProducerStates::default();
    let mut budget = PRODUCER_SCAN_BYTES;
    let mut chosen = Vec::new();
    for seg in segments.iter().rev() {
        if budget == 0 || (compacted && !chosen.is_empty()) {
            break;
        }
        // Start on a batch boundary from the offset index, at or after the budget's reach.
        let want = seg.size.saturating_sub(budget);
        let start = if want == 0 {
            0
        } else {
            let i = seg.idx.offsets.partition_point(|e| (e.1 as u64) < want);
            seg.idx.offsets.get(i).map_or(seg.size, |e| e.1 as u64)
        };
        budget = budget.saturating_sub(seg.size);
        chosen.push((seg, start));
    }
    // Oldest first, so newer batches and epochs win.
    for (seg, start) in chosen.into_iter().rev() {
        let mut pos = skip_holes(&seg.holes, start);
        while pos + HEADER_SIZE as u64 <= seg.size {
            let header = read_header(&seg.log, pos)?;
            let Ok(view) = BatchView::new(&header[..]) else {
                break;
            };
            states.replay(&view, now_ms);
            pos = skip_holes(&seg.holes, pos + view.size() as u64);
        }
    }
    Ok(states)
}

/// Rebuilds the transaction index from the whole log: every batch header, and the one record of
/// each control batch (its key says COMMIT or ABORT). Damaged ranges are stepped over.
fn rebuild_txns(segments: &[Segment]) -> Result<TxnIndex, LogError> {
    let mut txns = TxnIndex::default();
    for seg in segments {
        let mut pos = skip_holes(&seg.holes, 0);
        while pos + HEADER_SIZE as u64 <= seg.size {
            let header = read_header(&seg.log, pos)?;
            let Ok(view) = BatchView::new(&header[..]) else {
                break;
            };
            let size = view.size() as u64;
            let meaning = if view.is_control() {
                if pos + size > seg.size {
                    break;
                }
                let mut full = vec![0u8; size as usize];
                seg.log.read_exact_at(&mut full, pos)?;
                let full = BatchView::new(&full[..])?;
                TxnBatch::of(&full)
            } else {
                TxnBatch::of(&view)
            };
            if let Some(t) = meaning {
                let offsets = view.next_offset() - view.base_offset();
                txns.apply(&TxnIndex::stage(
                    t,
                    view.base_offset(),
                    view.max_timestamp(),
                    offsets,
                ));
            }
            pos = skip_holes(&seg.holes, pos + size);
        }
    }
    Ok(txns)
}

struct Inner {
    /// Sorted by base offset; the last one is active.
    segments: Vec<Segment>,
    /// True while the clean-shutdown marker exists on disk.
    marker_present: bool,
    /// Idempotent producers' sequences, checked and updated with offset assignment.
    producers: ProducerStates,
    /// Open and aborted transactions, for the last stable offset and read_committed fetches.
    txns: TxnIndex,
    /// The log start moved by DeleteRecords (recorded in `LOG_START_FILE`): records below it
    /// are hidden until retention deletes their segment. 0 when never moved.
    floor: i64,
}

impl Inner {
    /// The first offset a reader may see.
    fn start(&self) -> i64 {
        self.segments[0].base.max(self.floor)
    }

    fn active(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has a segment")
    }

    /// Index of the segment that would hold `offset`.
    fn segment_index(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base <= offset)
            .saturating_sub(1)
    }
}

/// A snapshot of where to read, taken under the lock and used after releasing it.
struct ReadPlan {
    file: Arc<File>,
    start_pos: u64,
    limit: u64,
    /// The segment's damaged ranges, never read.
    holes: Vec<(u64, u64)>,
}

/// The durable log of one partition. Cheap reads, serialized appends.
pub struct PartitionLog {
    dir: PathBuf,
    config: RwLock<LogConfig>,
    inner: Mutex<Inner>,
    /// Held by compaction, retention and close, which replace or delete non-active
    /// segments; appends and reads never take it.
    cleaner: Mutex<CleanerState>,
    start: AtomicI64,
    end: AtomicI64,
    /// What open() found damaged, for the start-up report.
    damage: Vec<Damage>,
}

/// What an append is about to add, for the roll decision.
struct Incoming {
    bytes: u64,
    offsets: i64,
    max_ts: i64,
    now_ms: i64,
}

/// Per-batch facts gathered during validation, before taking the lock.
/// An append's validated batches and the max timestamps to rewrite (batch index, true value).
type Validated = (Vec<Pending>, Vec<(usize, i64)>);

struct Pending {
    pos: usize,
    /// Uncompressed size of the records region, as validation measured it.
    inflated: u64,
    max_ts: i64,
    size: usize,
    offsets: i64,
    records: u32,
    producer: Option<producers::Incoming>,
    /// What the batch means for transactions (transactional data or a marker).
    txn: Option<TxnBatch>,
}

impl PartitionLog {
    /// Opens (creating if absent) the partition directory and recovers it.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, LogError> {
        fs::create_dir_all(dir)?;
        let marker = dir.join(CLEAN_MARKER);
        let clean = marker.exists();
        let clean_end = if clean { recorded_end(&marker) } else { None };

        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((stem, suffix)) = name.split_once('.') else {
                continue;
            };
            let parsed = (stem.len() == 20)
                .then(|| stem.parse::<i64>().ok())
                .flatten();
            match (parsed, suffix) {
                (Some(base), LOG_SUFFIX) => bases.push(base),
                (Some(base), INDEX_SUFFIX | TIME_INDEX_SUFFIX) => {
                    index_files.push((base, entry.path()))
                }
                _ if name.ends_with(".deleted") || name.ends_with(".tmp") => {
                    let _ = fs::remove_file(entry.path());
                }
                _ => {}
            }
        }
        bases.sort_unstable();
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                debug!(path = %path.display(), "removing orphan index file");
                let _ = fs::remove_file(&path);
            }
        }

        let interval = config.index_interval_bytes;
        let dense = !config.cleanup_compact;
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        let mut damage = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            let (seg, found) = recover_segment(dir, Bounds::of(&bases, i, dense), interval)?;
            // Compaction merges segments by renaming the merged file over the first one and
            // then deleting the rest; a crash in between leaves those rest behind, starting
            // inside the merged segment's range. Their surviving records are in it already.
            if let Some(prev) = segments.last() {
                if !last && seg.base < prev.next_offset {
                    warn!(
                        segment = base,
                        dir = %dir.display(),
                        previous_end = prev.next_offset,
                        "segment overlaps its predecessor (interrupted compaction); removing it"
                    );
                    seg.delete_files(dir);
                    continue;
                }
                if dense && seg.base > prev.next_offset && prev.holes.is_empty() {
                    warn!(dir = %dir.display(), segment = base, missing = %format!("{}..{}", prev.next_offset, seg.base),
                        "offsets missing between segments");
                }
            }
            damage.extend(found);
            segments.push(seg);
        }
        if segments.is_empty() {
            segments.push(Segment::create(dir, 0)?);
            cairn_durable::sync_dir(dir)?;
        }
        let last = segments.last().expect("non-empty");
        if let Some(lost) = lost_end(
            last.base,
            last.size,
            last.next_offset,
            clean_end,
            &mut damage,
        ) {
            // The offsets the lost tail held must never be handed out again: appends continue
            // in a new segment at the end recorded at the clean shutdown.
            match Segment::create(dir, lost).and_then(|s| cairn_durable::sync_dir(dir).map(|()| s))
            {
                Ok(seg) => segments.push(seg),
                Err(e) => error!(dir = %dir.display(), error = %e,
                    "cannot start a segment at the recorded log end; new records will reuse lost offsets"),
            }
        }
        report_damage(dir, &damage, clean);
        if clean {
            // A crash from here on must be detected, so the removal has to be durable.
            fs::remove_file(&marker)?;
            cairn_durable::sync_dir(dir)?;
        }
        let end = segments.last().expect("non-empty").next_offset;
        // Never past the end: a tail lost to a crash cannot hold the start up.
        let floor = read_log_start(dir).min(end);
        let start = segments[0].base.max(floor);
        let producers = rebuild_producers(&segments, config.cleanup_compact)?;
        let txns = rebuild_txns(&segments)?;
        info!(dir = %dir.display(), segments = segments.len(), start, end, clean,
            producers = producers.len(), open_transactions = txns.open().len(),
            "partition log opened");
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            inner: Mutex::new(Inner {
                segments,
                marker_present: false,
                producers,
                txns,
                floor,
            }),
            cleaner: Mutex::new(CleanerState::default()),
            start: AtomicI64::new(start),
            end: AtomicI64::new(end),
            damage,
        })
    }

    /// Damaged ranges found when the log was opened (see [`Damage`]).
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.start.load(Ordering::Acquire)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.end.load(Ordering::Acquire)
    }

    /// The last stable offset: the first offset of the oldest transaction still open here, or
    /// the log end; never below the log start. read_committed readers stop there.
    pub fn last_stable_offset(&self) -> i64 {
        let inner = self.inner.lock();
        let end = inner.segments.last().expect("non-empty").next_offset;
        let start = self.log_start_offset();
        inner.txns.first_open().map_or(end, |f| f.clamp(start, end))
    }

    /// Aborted transactions overlapping `[from, to)`, by first offset.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.inner.lock().txns.aborted_between(from, to)
    }

    /// How many offsets in `[from, to)` hold nothing a consumer is given: transaction markers,
    /// and the records of transactions aborted within the range. Lag leaves them out, so a
    /// group that consumed everything committed has none.
    pub fn hidden_offsets(&self, from: i64, to: i64) -> i64 {
        self.inner.lock().txns.hidden_between(from, to)
    }

    /// Transactions open here, oldest first.
    pub fn open_transactions(&self) -> Vec<OpenTxn> {
        self.inner.lock().txns.open()
    }

    /// Writes a COMMIT or ABORT marker (a control batch of the producer, as Kafka's
    /// transaction coordinator has it written) and ends the producer's transaction here; an
    /// ABORT of an open transaction is recorded as aborted. A marker for a producer with
    /// nothing open is still written (markers are re-sent after a coordinator restart) and
    /// changes nothing. An epoch older than the producer's newest here is refused.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        kind: MarkerKind,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<i64, LogError> {
        let (key, value) = crate::control::encode_marker(kind, coordinator_epoch);
        let record = batch::PlainRecord {
            key: Some(&key),
            value: Some(&value),
            timestamp: now_ms,
        };
        let buf = batch::encode_tagged(&[record], Some((producer_id, producer_epoch)), true);
        Ok(self.append_internal(&buf, now_ms)?.base_offset)
    }

    pub fn size_bytes(&self) -> u64 {
        self.inner.lock().segments.iter().map(|s| s.size).sum()
    }

    /// Number of segment files, mostly of interest to tests and metrics.
    pub fn segment_count(&self) -> usize {
        self.inner.lock().segments.len()
    }

    /// Validates one producer batch, returning its offset count, record count
    /// and the true max record timestamp. `inflate_budget` is what compressed batches of this
    /// append may still inflate to; a compressed batch's uncompressed size is taken from it.
    fn validate(
        view: &BatchView<&[u8]>,
        max_bytes: u32,
        inflate_budget: &mut usize,
    ) -> Result<(i64, u32, i64, u64), LogError> {
        if view.size() > max_bytes as usize {
            return Err(LogError::MessageTooLarge {
                size: view.size(),
                max: max_bytes,
            });
        }
        view.check_crc()?;
        let count = view.record_count();
        if count <= 0 {
            return Err(LogError::InvalidRecord(format!(
                "batch record count {count}"
            )));
        }
        if view.last_offset_delta() != count - 1 {
            return Err(LogError::InvalidRecord(format!(
                "last offset delta {} does not match record count {count}",
                view.last_offset_delta()
            )));
        }
        // Parsing (and for compressed batches, decompressing) every record is what
        // makes the per-record offset and timestamp lookups trustworthy later.
        let base_ts = view.base_timestamp();
        let mut max_ts = -1i64;
        let mut next = 0i32;
        let mut bad_delta = None;
        let compressed = view.compression()? != batch::Compression::None;
        let walked = view.for_each_record(*inflate_budget, |r| {
            if r.offset_delta != next {
                bad_delta = Some((next, r.offset_delta));
                return ControlFlow::Break(());
            }
            next += 1;
            max_ts = max_ts.max(base_ts.wrapping_add(r.timestamp_delta));
            ControlFlow::Continue(())
        });
        let inflated = match walked {
            Ok(n) => n,
            Err(e) => {
                // How far it got is unknown; count the worst case, what it was allowed.
                if compressed {
                    *inflate_budget = 0;
                }
                return Err(e.into());
            }
        };
        if compressed {
            *inflate_budget = inflate_budget.saturating_sub(inflated as usize);
        }
        if let Some((i, delta)) = bad_delta {
            return Err(LogError::InvalidRecord(format!(
                "record {i} has offset delta {delta}"
            )));
        }
        Ok((count as i64, count as u32, max_ts, inflated))
    }

    /// Validates every batch of an append; `inflate_budget` is shared by the compressed batches.
    fn validate_all(
        batches: &[u8],
        config: &LogConfig,
        now_ms: i64,
        inflate_budget: &mut usize,
        check_producers: bool,
    ) -> Result<Validated, LogError> {
        let append_time = config.timestamp_type == TimestampType::LogAppendTime;
        let mut pending = Vec::new();
        let mut fixes = Vec::new();
        let mut iter = batch::batches(batches);
        loop {
            let pos = iter.position();
            let Some(view) = iter.next() else { break };
            let view = view?;
            let (offsets, records, max_ts, inflated) =
                Self::validate(&view, config.max_message_bytes, inflate_budget)?;
            let producer = if check_producers {
                producers::Incoming::of(&view)
            } else {
                None
            };
            // Markers are the transaction coordinator's to write, as in Kafka.
            if check_producers && view.is_control() {
                return Err(LogError::InvalidRecord(
                    "control batches cannot be produced by clients".into(),
                ));
            }
            let txn = TxnBatch::of(&view);
            // The broker's own control batches are markers: one COMMIT or ABORT record.
            if view.is_control()
                && (view.record_count() != 1 || !matches!(txn, Some(TxnBatch::Marker { .. })))
            {
                return Err(LogError::InvalidRecord(
                    "a control batch must hold one COMMIT or ABORT marker".into(),
                ));
            }
            if let Some(b) = &producer {
                // Kafka refuses these too: an idempotent batch without a sequence cannot be checked.
                if b.first_seq < 0 {
                    return Err(LogError::InvalidRecord(format!(
                        "batch of producer {} has sequence {}",
                        b.producer_id, b.first_seq
                    )));
                }
            }
            // Later timestamp lookups rely on the header's max timestamp being the true one.
            if !append_time && view.max_timestamp() != max_ts {
                fixes.push((pending.len(), max_ts));
            }
            pending.push(Pending {
                pos,
                max_ts: if append_time { now_ms } else { max_ts },
                size: view.size(),
                offsets,
                records,
                inflated,
                producer,
                txn,
            });
        }
        Ok((pending, fixes))
    }

    /// Checks `batches` exactly as [`PartitionLog::append`] would under `config`, writing
    /// nothing: the fuzzer holds this path to its memory bound without a partition on disk.
    pub fn validate_batches(batches: &[u8], config: &LogConfig) -> Result<(), LogError> {
        let mut budget = config.max_uncompressed_bytes();
        Self::validate_all(batches, config, 0, &mut budget, true).map(|_| ())
    }

    /// Validates, assigns offsets and writes `batches` as one unit.
    pub fn append(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let mut unlimited = usize::MAX;
        self.append_within(batches, now_ms, &mut unlimited)
    }

    /// Like [`PartitionLog::append`], but the compressed batches may inflate to no more than
    /// `inflate_budget` bytes in all (besides the topic's own bound); what they inflated is taken
    /// from it, and a compressed batch refused while inflating uses up the whole allowance. The
    /// broker shares one budget across a produce request's partitions, so small bombs spread
    /// over many partitions cannot add up.
    pub fn append_within(
        &self,
        batches: &[u8],
        now_ms: i64,
        inflate_budget: &mut usize,
    ) -> Result<AppendInfo, LogError> {
        self.append_checked(batches, now_ms, inflate_budget, true)
    }

    /// Appends batches written by the broker itself (a coordinator's records, which may carry
    /// a producer id for offsets committed in a transaction, or transaction markers): they are
    /// validated like any batch, but have no sequence to check.
    pub fn append_internal(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let mut unlimited = usize::MAX;
        self.append_checked(batches, now_ms, &mut unlimited, false)
    }

    fn append_checked(
        &self,
        batches: &[u8],
        now_ms: i64,
        inflate_budget: &mut usize,
        check_producers: bool,
    ) -> Result<AppendInfo, LogError> {
        if batches.is_empty() {
            return Err(LogError::InvalidRecord("empty record set".into()));
        }
        let config = self.config();
        let append_time = config.timestamp_type == TimestampType::LogAppendTime;

        // Validation runs before taking the lock so reads are not held up by decompression.
        let allowance = config.max_uncompressed_bytes().min(*inflate_budget);
        let mut left = allowance;
        let validated = Self::validate_all(batches, &config, now_ms, &mut left, check_producers);
        *inflate_budget -= allowance - left;
        let (mut pending, fixes) = validated?;
        let mut buf = batches.to_vec();
        for (i, max_ts) in fixes {
            let p = &pending[i];
            BatchView::new(&mut buf[p.pos..p.pos + p.size])?.set_max_timestamp(max_ts);
        }
        if append_time {
            for p in &pending {
                BatchView::new(&mut buf[p.pos..p.pos + p.size])?.set_log_append_time(now_ms);
            }
        }
        // Only client batches: the broker's own records and markers stay as written (Kafka
        // does not compress control batches that arrive uncompressed either).
        if let (Some(target), true) = (config.compression, check_producers) {
            buf = Self::recompress_all(buf, &mut pending, target, &config)?;
        }
        let total_offsets: i64 = pending.iter().map(|p| p.offsets).sum();
        let record_count: u32 = pending.iter().map(|p| p.records).sum();
        let incoming_max_ts = pending.iter().map(|p| p.max_ts).max().unwrap_or(-1);

        let mut inner = self.inner.lock();
        // Sequence checks happen under the lock, before anything is written, so a batch is
        // checked against exactly the state its offsets follow. Rolling never changes the next
        // offset, so the offsets staged here are the ones assigned below.
        let mut staged: Staged = Vec::new();
        let mut txn_staged = Vec::new();
        let mut next = inner.segments.last().expect("non-empty").next_offset;
        for p in &pending {
            inner
                .txns
                .check(&txn_staged, p.producer.map(|b| b.producer_id), p.txn)?;
            if let Some(t) = p.txn {
                txn_staged.push(TxnIndex::stage(t, next, p.max_ts, p.offsets));
            }
            if let Some(b) = &p.producer {
                match inner.producers.check(&staged, b)? {
                    Verdict::Append => {}
                    // Like Kafka, a duplicate answers the whole append with the original's offsets.
                    Verdict::Duplicate(m) => {
                        debug!(dir = %self.dir.display(), producer_id = b.producer_id,
                            first_seq = m.first_seq, base_offset = m.base_offset, "duplicate batch");
                        return Ok(AppendInfo {
                            base_offset: m.base_offset,
                            last_offset: m.last_offset,
                            log_append_time: -1,
                            log_start_offset: self.log_start_offset(),
                            record_count: 0,
                            duplicate: true,
                        });
                    }
                }
                let entry =
                    inner
                        .producers
                        .staged_after(&staged, b, next, next + p.offsets - 1, now_ms);
                staged.push(entry);
            }
            next += p.offsets;
        }
        if inner.marker_present {
            fs::remove_file(self.dir.join(CLEAN_MARKER))?;
            cairn_durable::sync_dir(&self.dir)?;
            inner.marker_present = false;
        }
        let incoming = Incoming {
            bytes: buf.len() as u64,
            offsets: total_offsets,
            max_ts: incoming_max_ts,
            now_ms,
        };
        self.maybe_roll(&mut inner, &config, &incoming)?;
        let seg = inner.active();
        let base_offset = seg.next_offset;
        let mut next = base_offset;
        for p in &pending {
            BatchView::new(&mut buf[p.pos..p.pos + p.size])?.set_base_offset(next);
            next += p.offsets;
        }
        if let Err(e) = seg.log.write_all_at(&buf, seg.size) {
            // Drop whatever part made it so a later append starts on a clean boundary.
            let _ = seg.log.set_len(seg.size);
            return Err(e.into());
        }
        for p in &pending {
            let view = BatchView::new(&buf[p.pos..p.pos + p.size])?;
            seg.idx.track(
                seg.base,
                seg.size + p.pos as u64,
                &view,
                config.index_interval_bytes,
            );
        }
        if seg.size == 0 {
            let first = pending[0].max_ts;
            seg.first_batch_ts = (first >= 0).then_some(first);
        }
        seg.created_ms.get_or_insert(now_ms);
        seg.size += buf.len() as u64;
        seg.next_offset = next;
        inner.producers.commit(staged, now_ms);
        for t in &txn_staged {
            inner.txns.apply(t);
        }
        // The active segment's index files are written at roll and close only: after a crash
        // the active segment is rescanned and its indexes rebuilt anyway, so per-append index
        // writes would buy nothing but syscalls.
        self.end.store(next, Ordering::Release);
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: if append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset(),
            record_count,
            duplicate: false,
        })
    }

    /// Rewrites the batches whose codec is not `target`, moving the others as they are, and
    /// updates each batch's position and size. Runs after validation, so every batch is known
    /// to inflate within the topic's bound; a rewritten batch larger than `max.message.bytes`
    /// is refused with MESSAGE_TOO_LARGE, as Kafka refuses it after recompression.
    fn recompress_all(
        buf: Vec<u8>,
        pending: &mut [Pending],
        target: batch::Codec,
        config: &LogConfig,
    ) -> Result<Vec<u8>, LogError> {
        let differs = |p: &Pending| -> Result<bool, LogError> {
            let view = BatchView::new(&buf[p.pos..p.pos + p.size])?;
            Ok(!view.is_control() && view.compression()? != target.compression)
        };
        let mut any = false;
        for p in pending.iter() {
            any |= differs(p)?;
        }
        if !any {
            return Ok(buf);
        }
        let max = config.max_message_bytes as usize;
        let mut out = Vec::with_capacity(buf.len());
        for p in pending.iter_mut() {
            let at = out.len();
            if differs(p)? {
                let view = BatchView::new(&buf[p.pos..p.pos + p.size])?;
                let Some(rewritten) = batch::recompress(
                    &view,
                    target,
                    p.inflated,
                    config.max_uncompressed_bytes(),
                    max,
                )?
                else {
                    return Err(LogError::MessageTooLarge {
                        size: max + 1,
                        max: config.max_message_bytes,
                    });
                };
                out.extend_from_slice(&rewritten);
            } else {
                out.extend_from_slice(&buf[p.pos..p.pos + p.size]);
            }
            p.pos = at;
            p.size = out.len() - at;
        }
        Ok(out)
    }

    fn maybe_roll(
        &self,
        inner: &mut Inner,
        config: &LogConfig,
        incoming: &Incoming,
    ) -> Result<(), LogError> {
        let seg = inner.active();
        if seg.size == 0 {
            return Ok(());
        }
        // Like Kafka, age is measured in record time when both sides have timestamps,
        // so producers replaying old data do not cause a roll per append.
        let age = match seg.first_batch_ts {
            Some(first) if incoming.max_ts >= 0 => incoming.max_ts.saturating_sub(first),
            _ => seg
                .created_ms
                .map_or(0, |c| incoming.now_ms.saturating_sub(c)),
        };
        let new_size = seg.size + incoming.bytes;
        let reason = if new_size > config.segment_bytes {
            "size"
        } else if new_size > MAX_RELATIVE as u64 {
            "position overflow"
        } else if seg.next_offset + incoming.offsets - 1 - seg.base > MAX_RELATIVE {
            "offset overflow"
        } else if age > config.segment_ms {
            "age"
        } else {
            return Ok(());
        };
        // Sync before creating the successor so only the active segment can be torn.
        seg.sync_all_files()?;
        let next = seg.next_offset;
        debug!(dir = %self.dir.display(), new_base = next, reason, "rolling segment");
        inner.segments.push(Segment::create(&self.dir, next)?);
        cairn_durable::sync_dir(&self.dir)?;
        Ok(())
    }

    /// Locates the segment and index position for `offset`, under the lock.
    /// Also returns the log end offset seen under the same lock, so a read's high watermark never
    /// runs ahead of the data it returns.
    fn plan_read(&self, offset: i64) -> Result<(Option<ReadPlan>, i64), LogError> {
        let inner = self.inner.lock();
        let start = inner.start();
        let end = inner.segments.last().expect("non-empty").next_offset;
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                start,
                end,
            });
        }
        if offset == end {
            return Ok((None, end));
        }
        let mut i = inner.segment_index(offset);
        // A gap left by a truncated older segment or by compaction (which can also leave
        // the first segment empty): continue with the next one.
        while (offset >= inner.segments[i].next_offset || inner.segments[i].size == 0)
            && i + 1 < inner.segments.len()
        {
            i += 1;
        }
        let seg = &inner.segments[i];
        let rel = (offset - seg.base).clamp(0, MAX_RELATIVE) as u32;
        Ok((
            Some(ReadPlan {
                file: seg.log.clone(),
                start_pos: seg.idx.position_for(rel),
                limit: seg.size,
                holes: seg.holes.clone(),
            }),
            end,
        ))
    }

    /// Finds the batch containing `offset` (or the first one after it) at or
    /// after `plan.start_pos`; returns its position and header.
    fn find_batch(
        plan: &ReadPlan,
        offset: i64,
    ) -> Result<Option<(u64, [u8; HEADER_SIZE])>, LogError> {
        // Index positions and batch ends are intact batch boundaries, and damaged ranges start
        // at such boundaries, so hopping over them keeps the walk on intact batches.
        let mut pos = skip_holes(&plan.holes, plan.start_pos);
        while pos + HEADER_SIZE as u64 <= plan.limit {
            let header = read_header(&plan.file, pos)?;
            let view = BatchView::new(&header[..])?;
            if view.last_offset() >= offset {
                return Ok(Some((pos, header)));
            }
            pos = skip_holes(&plan.holes, pos + view.size() as u64);
        }
        Ok(None)
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes` but at least one.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        self.read_limited(offset, max_bytes, true)
    }

    /// Like [`PartitionLog::read`], but the first batch is returned beyond `max_bytes` only when
    /// `first_batch_always` (Kafka's `minOneMessage`, granted to the first partition of a fetch
    /// that has data); otherwise a first batch larger than `max_bytes` gives empty data.
    pub fn read_limited(
        &self,
        offset: i64,
        max_bytes: usize,
        first_batch_always: bool,
    ) -> Result<ReadResult, LogError> {
        self.read_bounded(offset, max_bytes, first_batch_always, i64::MAX)
    }

    /// Like [`PartitionLog::read_limited`], but only batches that start below `max_offset`
    /// (read_committed readers pass the last stable offset, which is always a batch start).
    pub fn read_bounded(
        &self,
        offset: i64,
        max_bytes: usize,
        first_batch_always: bool,
        max_offset: i64,
    ) -> Result<ReadResult, LogError> {
        let (plan, hw) = self.plan_read(offset)?;
        let empty = |log: &Self| ReadResult {
            data: Bytes::new(),
            log_start_offset: log.log_start_offset(),
            high_watermark: hw,
        };
        let Some(plan) = plan else {
            return Ok(empty(self));
        };
        let Some((pos, header)) = Self::find_batch(&plan, offset)? else {
            return Ok(empty(self));
        };
        let first = BatchView::new(&header[..])?;
        let first_size = first.size() as u64;
        if (first_size > max_bytes as u64 && !first_batch_always)
            || first.base_offset() >= max_offset
        {
            return Ok(empty(self));
        }
        // Never past the next damaged range: a read ends at it, the next one starts after it.
        let available = readable_until(&plan.holes, pos, plan.limit) - pos;
        let want = (max_bytes as u64).min(available).max(first_size);
        let mut data = vec![0u8; want as usize];
        plan.file.read_exact_at(&mut data, pos)?;
        // Keep whole batches only, below the bound.
        let mut keep = 0;
        for view in batch::batches(&data) {
            match view {
                Ok(v) if v.base_offset() < max_offset => keep += v.size(),
                _ => break,
            }
        }
        data.truncate(keep.max(first_size as usize));
        Ok(ReadResult {
            data: Bytes::from(data),
            log_start_offset: self.log_start_offset(),
            high_watermark: hw,
        })
    }

    /// Timestamp of the record at `offset` as a consumer would see it (LogAppendTime batches: the
    /// batch's append time). A record removed by compaction gives the next record's timestamp, an
    /// offset below the log start the first record's: the age of the oldest record still
    /// unconsumed is what lag in seconds measures. `None` at or past the log end.
    pub fn timestamp_at(&self, offset: i64) -> Result<Option<i64>, LogError> {
        let mut offset = offset.max(self.log_start_offset());
        // Bounded: each round moves past one batch; compaction rarely empties more than a few.
        for _ in 0..64 {
            if offset >= self.log_end_offset() {
                return Ok(None);
            }
            let plan = match self.plan_read(offset) {
                Ok((Some(p), _)) => p,
                Ok((None, _)) => return Ok(None),
                // Retention moved the start past us meanwhile: start over from the new start.
                Err(LogError::OffsetOutOfRange { start, .. }) if offset < start => {
                    offset = start;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some((pos, header)) = Self::find_batch(&plan, offset)? else {
                return Ok(None);
            };
            let size = BatchView::new(&header[..])?.size();
            let mut data = vec![0u8; size];
            plan.file.read_exact_at(&mut data, pos)?;
            let view = BatchView::new_complete(&data[..])?;
            if view.is_log_append_time() {
                return Ok(Some(view.max_timestamp()));
            }
            let limit = self.config().max_uncompressed_bytes();
            if let Some((_, ts)) = view.find_record(limit, |o, _| o >= offset)? {
                return Ok(Some(ts));
            }
            offset = view.next_offset();
        }
        Ok(None)
    }

    /// Reads the complete batch whose base offset is `base_offset` in the segment
    /// described by `plan`.
    fn read_batch_at(plan: &ReadPlan, base_offset: i64) -> Result<Option<Vec<u8>>, LogError> {
        let Some((pos, header)) = Self::find_batch(plan, base_offset)? else {
            return Ok(None);
        };
        let size = BatchView::new(&header[..])?.size();
        let mut data = vec![0u8; size];
        plan.file.read_exact_at(&mut data, pos)?;
        Ok(Some(data))
    }

    /// The first record whose timestamp is >= `ts`, with its timestamp.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        // The time index lists every batch that raised the running max timestamp,
        // so the first entry >= ts names exactly the first batch holding such a record.
        let candidate = {
            let inner = self.inner.lock();
            let mut found = None;
            for seg in &inner.segments {
                let i = seg.idx.times.partition_point(|e| e.0 < ts);
                if let Some(&(_, rel)) = seg.idx.times.get(i) {
                    let plan = ReadPlan {
                        file: seg.log.clone(),
                        start_pos: seg.idx.position_for(rel),
                        limit: seg.size,
                        holes: seg.holes.clone(),
                    };
                    found = Some((plan, seg.base + rel as i64));
                    break;
                }
            }
            found
        };
        let Some((plan, batch_offset)) = candidate else {
            return Ok(None);
        };
        let Some(data) = Self::read_batch_at(&plan, batch_offset)? else {
            return Ok(None);
        };
        let view = BatchView::new_complete(&data[..])?;
        let limit = self.config().max_uncompressed_bytes();
        let found = view.find_record(limit, |_, t| t >= ts)?;
        Ok(found)
    }

    /// Offset and timestamp of the (first) record with the largest timestamp.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let candidate = {
            let inner = self.inner.lock();
            let mut best: Option<(i64, i64, usize)> = None;
            for (i, seg) in inner.segments.iter().enumerate() {
                if let Some((ts, off)) = seg.max_timestamp() {
                    if best.is_none_or(|b| ts > b.0) {
                        best = Some((ts, off, i));
                    }
                }
            }
            best.map(|(ts, off, i)| {
                let seg = &inner.segments[i];
                let plan = ReadPlan {
                    file: seg.log.clone(),
                    start_pos: seg.idx.position_for((off - seg.base) as u32),
                    limit: seg.size,
                    holes: seg.holes.clone(),
                };
                (plan, off, ts)
            })
        };
        let Some((plan, batch_offset, max_ts)) = candidate else {
            return Ok(None);
        };
        let Some(data) = Self::read_batch_at(&plan, batch_offset)? else {
            return Ok(None);
        };
        let view = BatchView::new_complete(&data[..])?;
        let limit = self.config().max_uncompressed_bytes();
        let found = view
            .find_record(limit, |_, t| t == max_ts)?
            .unwrap_or((view.base_offset(), max_ts));
        Ok(Some(found))
    }

    /// DeleteRecords: moves the log start up to `before` (-1: the log end), hiding every record
    /// below it and deleting the segments wholly below it. The new start is on disk before
    /// this returns. Returns the log start (Kafka's low watermark) afterwards; a `before` at
    /// or below the start changes nothing. Refused on a topic without `delete` in its
    /// cleanup policy, as Kafka refuses it.
    pub fn delete_records(&self, before: i64) -> Result<i64, LogError> {
        if !self.config().cleanup_delete {
            return Err(LogError::PolicyViolation(
                "records of a topic whose cleanup.policy does not include delete cannot be deleted"
                    .into(),
            ));
        }
        let _cleaner = self.cleaner.lock();
        let mut inner = self.inner.lock();
        let start = inner.start();
        let end = inner.segments.last().expect("non-empty").next_offset;
        let target = if before == -1 { end } else { before };
        if target < 0 || target > end {
            return Err(LogError::OffsetOutOfRange {
                requested: before,
                start,
                end,
            });
        }
        if target <= start {
            return Ok(start);
        }
        write_log_start(&self.dir, target)?;
        inner.floor = target;
        self.start.store(target, Ordering::Release);
        inner.txns.drop_before(target);
        // Whole segments below the new start go; the active one always stays.
        let doomed = inner
            .segments
            .iter()
            .take(inner.segments.len() - 1)
            .take_while(|s| s.next_offset <= target)
            .count();
        let removed: Vec<Segment> = inner.segments.drain(..doomed).collect();
        drop(inner);
        for seg in &removed {
            seg.delete_files(&self.dir);
        }
        if !removed.is_empty() {
            cairn_durable::sync_dir(&self.dir)?;
        }
        info!(dir = %self.dir.display(), log_start = target, deleted_segments = removed.len(), "records deleted");
        Ok(target)
    }

    /// Deletes whole non-active segments past the time or size limit.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let config = self.config();
        if !config.cleanup_delete || (config.retention_ms < 0 && config.retention_bytes < 0) {
            return Ok(0);
        }
        let _cleaner = self.cleaner.lock();
        let mut inner = self.inner.lock();
        let mut total: u64 = inner.segments.iter().map(|s| s.size).sum();
        let mut doomed = 0;
        while doomed + 1 < inner.segments.len() {
            let seg = &inner.segments[doomed];
            let expired = config.retention_ms >= 0
                && now_ms.saturating_sub(seg.retention_timestamp()) > config.retention_ms;
            // Like Kafka, never delete so much that the log drops below retention.bytes.
            let oversized = config.retention_bytes >= 0
                && total.saturating_sub(seg.size) >= config.retention_bytes as u64;
            if !(expired || oversized) {
                break;
            }
            total -= seg.size;
            doomed += 1;
        }
        if doomed == 0 {
            return Ok(0);
        }
        let removed: Vec<Segment> = inner.segments.drain(..doomed).collect();
        let start = inner.start();
        self.start.store(start, Ordering::Release);
        inner.txns.drop_before(start);
        drop(inner);
        for seg in &removed {
            seg.delete_files(&self.dir);
        }
        info!(dir = %self.dir.display(), deleted = doomed, log_start = start, "retention deleted segments");
        Ok(doomed)
    }

    /// Removes the active segment's records from `offset` on: the tail of an append whose
    /// sync failed, so that the log again holds only what its writer acknowledged. `offset`
    /// must be a batch boundary inside the active segment (a writer truncates right after its
    /// own append, which never spans segments). Producer state is not rewound: the internal
    /// writers that use this write without producer ids.
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        let seg = inner.active();
        if offset == seg.next_offset {
            return Ok(());
        }
        if offset < seg.base || offset > seg.next_offset {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                start: seg.base,
                end: seg.next_offset,
            });
        }
        let rel = (offset - seg.base) as u32;
        let mut pos = seg.idx.position_for(rel);
        loop {
            if pos + HEADER_SIZE as u64 > seg.size {
                return Err(LogError::InvalidRecord(format!(
                    "no batch starts at offset {offset}"
                )));
            }
            let header = read_header(&seg.log, pos)?;
            let view = BatchView::new(&header[..])?;
            if view.base_offset() == offset {
                break;
            }
            if view.base_offset() > offset {
                return Err(LogError::InvalidRecord(format!(
                    "offset {offset} is inside a batch"
                )));
            }
            pos += view.size() as u64;
        }
        seg.log.set_len(pos)?;
        seg.log.sync_data()?;
        seg.size = pos;
        seg.next_offset = offset;
        seg.idx.offsets.retain(|e| (e.1 as u64) < pos);
        seg.idx.times.retain(|e| e.1 < rel);
        seg.offsets_written = seg.offsets_written.min(seg.idx.offsets.len());
        seg.times_written = seg.times_written.min(seg.idx.times.len());
        if pos == 0 {
            seg.first_batch_ts = None;
        }
        self.end.store(offset, Ordering::Release);
        // The removed tail may have opened or ended transactions: read them again from what
        // is left (rare: only after a failed sync).
        inner.txns = rebuild_txns(&inner.segments)?;
        Ok(())
    }

    /// Makes everything appended so far durable; returns the durable end offset.
    pub fn sync(&self) -> Result<i64, LogError> {
        // Older segments were synced when they were rolled, so the active file is enough.
        let (file, end) = {
            let inner = self.inner.lock();
            let seg = inner.segments.last().expect("non-empty");
            (seg.log.clone(), seg.next_offset)
        };
        file.sync_data()?;
        Ok(end)
    }

    /// Flushes everything and records a clean shutdown for the next open.
    pub fn close(&self) -> Result<(), LogError> {
        // Waits for a running compaction so the clean marker covers its last swap.
        let _cleaner = self.cleaner.lock();
        let mut inner = self.inner.lock();
        let seg = inner.active();
        // Index files are a cache rebuilt on open: a full disk must not keep the log from
        // closing cleanly, as long as the data itself is durable.
        if let Err(e) = seg.write_new_index_entries() {
            warn!(dir = %self.dir.display(), error = %e, "cannot write index entries at close");
        }
        seg.log.sync_data()?;
        let _ = seg.index_file.sync_data();
        let _ = seg.time_file.sync_data();
        if !inner.marker_present {
            // Without the marker the next open only logs a cut tail as a crash leftover rather
            // than as damage; every segment is checked either way, so failing here is harmless.
            // The log end goes into the marker so the next open can tell if damage cut it short.
            let end = inner.segments.last().expect("non-empty").next_offset;
            let written = File::create(self.dir.join(CLEAN_MARKER))
                .and_then(|mut m| {
                    io::Write::write_all(&mut m, format!("log_end={end}\n").as_bytes())?;
                    m.sync_all()
                })
                .and_then(|()| cairn_durable::sync_dir(&self.dir));
            match written {
                Ok(()) => inner.marker_present = true,
                Err(e) => {
                    warn!(dir = %self.dir.display(), error = %e, "cannot write the clean-shutdown marker")
                }
            }
        }
        Ok(())
    }
}

/// One segment as `cairn check` saw it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SegmentReport {
    pub base: i64,
    pub bytes: u64,
    pub batches: u64,
    /// Offset after the segment's last intact batch.
    pub next_offset: i64,
    /// The index files differ from the batches (missing, torn or stale); the broker rebuilds
    /// them on start, so this is not damage.
    pub index_rebuild: bool,
}

/// The read-only check of one partition directory: the same scan the broker runs on open.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PartitionCheck {
    pub clean_shutdown: bool,
    pub segments: Vec<SegmentReport>,
    pub log_start: i64,
    pub log_end: i64,
    /// Damaged ranges: data that was written and cannot be served.
    pub damage: Vec<Damage>,
    /// A torn tail of the active segment without a clean shutdown: the normal leftover of a crash
    /// mid-write, which the broker cuts on start.
    pub torn_tail: Option<Damage>,
}

impl PartitionLog {
    /// Checks a partition directory without changing anything in it. `compacted`: the topic's
    /// `cleanup.policy` includes `compact` (gaps between batches are then legal).
    pub fn check(dir: &Path, compacted: bool, interval: u32) -> io::Result<PartitionCheck> {
        let clean = dir.join(CLEAN_MARKER).exists();
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
                continue;
            };
            if stem.len() == 20 {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        let dense = !compacted;
        let mut out = PartitionCheck {
            clean_shutdown: clean,
            segments: Vec::new(),
            log_start: bases.first().copied().unwrap_or(0),
            log_end: 0,
            damage: Vec::new(),
            torn_tail: None,
        };
        let mut prev_end: Option<i64> = None;
        for (i, &base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            let bounds = Bounds::of(&bases, i, dense);
            let file = File::open(segment_path(dir, base, LOG_SUFFIX))?;
            let size = file.metadata()?.len();
            // Left behind by an interrupted compaction; the broker removes it on start.
            if !last && prev_end.is_some_and(|end| base < end) {
                continue;
            }
            let scan = scan_segment(&file, size, bounds, interval)?;
            let on_disk = load_indexes(dir, base, size).ok().flatten();
            let current = Indexes {
                bytes_since_entry: 0,
                ..scan.idx.clone()
            };
            out.segments.push(SegmentReport {
                base,
                bytes: size,
                batches: scan.batches,
                next_offset: scan.next_offset,
                index_rebuild: on_disk.as_ref() != Some(&current),
            });
            for d in scan.damage {
                if d.truncated && !clean {
                    out.torn_tail = Some(d);
                } else {
                    out.damage.push(d);
                }
            }
            prev_end = Some(scan.next_offset);
            out.log_end = scan.next_offset;
            if last {
                let clean_end = if clean {
                    recorded_end(&dir.join(CLEAN_MARKER))
                } else {
                    None
                };
                if let Some(end) = lost_end(
                    base,
                    scan.valid_end,
                    scan.next_offset,
                    clean_end,
                    &mut out.damage,
                ) {
                    out.log_end = end;
                }
            }
        }
        Ok(out)
    }
}
