//! Request decoding, bounded by the bytes received.
//!
//! The protocol crate decodes an array by reserving `count × element size` before it reads a
//! single element, so a 26-byte frame claiming 2^31-1 topics asks for tens of gigabytes, and a
//! failed allocation aborts the process (it is not a panic, nothing can catch it). Rather than
//! fork the crate, every frame is first walked against the layout of its request
//! ([`layout`]): each string, byte string, array count and tagged field is checked against the
//! bytes actually left, and the memory the crate's decode will reserve, plus what the handler
//! builds to answer each entry, is added up and held under [`decode_limit`] of the frame's size.
//! Only a frame that passes is handed to the crate, whose allocations are then bounded by
//! construction.
//!
//! The walk reads nothing it keeps and allocates nothing, so it costs one pass over the frame's
//! structure (lengths are skipped, not read).

pub mod layout;
pub mod old_produce;

use std::panic::AssertUnwindSafe;

use anyhow::{anyhow, bail};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use crate::versions::served;
/// The version range served for an API (the one table, re-exported for tests and fuzzing).
pub use crate::versions::served as served_range;
use layout::{Layout, Ty};

/// Decoding a request and building its answer may reserve at most this many times the frame's
/// size...
pub const AMPLIFICATION: usize = 32;
/// ...plus this much, so ordinary requests (describing a few thousand groups with short names)
/// are never refused for their fixed costs.
pub const FLOOR: usize = 1024 * 1024;

/// The most a `frame_len`-byte request may reserve to be decoded and answered.
pub fn decode_limit(frame_len: usize) -> usize {
    FLOOR.saturating_add(AMPLIFICATION.saturating_mul(frame_len))
}

/// The crate keeps unknown tagged fields in a `BTreeMap<i32, Bytes>`; charge one node (about 400
/// bytes for a leaf, more for an inner node) for every few entries, and one for the first.
const TAG_NODE: usize = 512;
const TAGS_PER_NODE: usize = 5;

/// Why a frame was refused before decoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("request frame of {0} bytes is too short for a header")]
    Short(usize),
    #[error("{what} at byte {at} needs {need} bytes but only {left} are left")]
    Truncated {
        what: &'static str,
        at: usize,
        need: u64,
        left: usize,
    },
    #[error("negative length {len} for {what} at byte {at}")]
    Negative {
        what: &'static str,
        at: usize,
        len: i64,
    },
    #[error(
        "array at byte {at} claims {count} elements of at least {min} bytes each, \
         but only {left} bytes are left"
    )]
    Count {
        at: usize,
        count: u64,
        min: usize,
        left: usize,
    },
    #[error(
        "decoding would reserve more than {limit} bytes for a {frame_len}-byte frame \
         (array at byte {at})"
    )]
    TooCostly {
        at: usize,
        frame_len: usize,
        limit: usize,
    },
    #[error(
        "tagged field {tag} at byte {at} declares {declared} bytes but its value takes {actual}"
    )]
    TagSize {
        tag: u32,
        at: usize,
        declared: usize,
        actual: usize,
    },
    #[error("API key {0} is not served by this broker")]
    NotServed(i16),
}

/// What a frame that passed [`check_request`] will cost to decode.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    pub api_key: i16,
    pub version: i16,
    /// Upper bound of the bytes the crate's decode reserves, plus what answering the request's
    /// entries is expected to build.
    pub reserve: usize,
    /// Bytes of the frame the header and body occupy (the crate ignores any after them).
    pub consumed: usize,
}

/// Walks `frame` (header and body, without the size prefix) against its request layout.
pub fn check_request(frame: &[u8]) -> Result<Checked, WireError> {
    if frame.len() < 8 {
        return Err(WireError::Short(frame.len()));
    }
    let key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let key = ApiKey::try_from(key_raw).map_err(|_| WireError::NotServed(key_raw))?;
    let body = layout::request(key).ok_or(WireError::NotServed(key_raw))?;
    let mut w = Walker {
        buf: frame,
        pos: 0,
        end: frame.len(),
        reserve: 0,
        limit: decode_limit(frame.len()),
    };
    // The header's client id is a plain nullable string even in flexible header versions.
    w.structure(&layout::HEADER, 1)?;
    if key.request_header_version(version) >= 2 {
        w.tagged_fields(&[], version)?;
    }
    w.structure(body, version)?;
    Ok(Checked {
        api_key: key_raw,
        version,
        reserve: w.reserve,
        consumed: w.pos,
    })
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Where the current (tagged) value ends; the frame's end outside tagged fields.
    end: usize,
    reserve: usize,
    limit: usize,
}

impl Walker<'_> {
    fn left(&self) -> usize {
        self.end - self.pos
    }

    fn skip(&mut self, n: u64, what: &'static str) -> Result<(), WireError> {
        if n > self.left() as u64 {
            return Err(WireError::Truncated {
                what,
                at: self.pos,
                need: n,
                left: self.left(),
            });
        }
        self.pos += n as usize;
        Ok(())
    }

    fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let at = self.pos;
        self.skip(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[at..at + N]);
        Ok(out)
    }

    /// Kafka's unsigned varint, read exactly as the crate reads it: at most five bytes, and bits
    /// beyond 32 dropped.
    fn varint(&mut self, what: &'static str) -> Result<u32, WireError> {
        let mut value = 0u32;
        for i in 0..5 {
            let [b] = self.fixed::<1>(what)?;
            value |= ((b & 0x7f) as u32) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// A length: compact (varint, 0 = null) in flexible versions, else `i16`/`i32` with -1 = null.
    fn length(&mut self, flexible: bool, wide: bool, what: &'static str) -> Result<u64, WireError> {
        let at = self.pos;
        let n: i64 = if flexible {
            self.varint(what)? as i64 - 1
        } else if wide {
            i32::from_be_bytes(self.fixed::<4>(what)?) as i64
        } else {
            i16::from_be_bytes(self.fixed::<2>(what)?) as i64
        };
        match n {
            -1 => Ok(0),
            n if n < -1 => Err(WireError::Negative { what, at, len: n }),
            n => Ok(n as u64),
        }
    }

    fn charge(&mut self, bytes: u64, at: usize) -> Result<(), WireError> {
        let total = (self.reserve as u64).saturating_add(bytes);
        if total > self.limit as u64 {
            return Err(WireError::TooCostly {
                at,
                frame_len: self.buf.len(),
                limit: self.limit,
            });
        }
        self.reserve = total as usize;
        Ok(())
    }

    fn structure(&mut self, l: &Layout, version: i16) -> Result<(), WireError> {
        let flexible = version >= l.flexible_from;
        for f in l.fields {
            if version >= f.from && version <= f.to {
                self.value(&f.ty, version, flexible)?;
            }
        }
        if flexible {
            self.tagged_fields(l.tagged, version)?;
        }
        Ok(())
    }

    fn value(&mut self, ty: &Ty, version: i16, flexible: bool) -> Result<(), WireError> {
        match ty {
            Ty::I8 | Ty::Bool => self.skip(1, "int8"),
            Ty::I16 => self.skip(2, "int16"),
            Ty::I32 => self.skip(4, "int32"),
            Ty::I64 => self.skip(8, "int64"),
            Ty::Uuid => self.skip(16, "uuid"),
            Ty::Str => {
                let n = self.length(flexible, false, "string length")?;
                self.skip(n, "string")
            }
            Ty::Bytes => {
                let n = self.length(flexible, true, "bytes length")?;
                self.skip(n, "bytes")
            }
            Ty::Struct(l) => self.structure(l, version),
            Ty::NullableStruct(l) => {
                let at = self.pos;
                self.skip(1, "struct marker")?;
                if (self.buf[at] as i8) < 0 {
                    return Ok(());
                }
                self.structure(l, version)
            }
            Ty::Array(elem, answer) => self.array(elem, *answer, version, flexible),
            Ty::Structs(l) => self.array(&Ty::Struct(l), l.answer, version, flexible),
        }
    }

    fn array(
        &mut self,
        elem: &Ty,
        answer: usize,
        version: i16,
        flexible: bool,
    ) -> Result<(), WireError> {
        let at = self.pos;
        let count = self.length(flexible, true, "array length")?;
        let min = min_size(elem, version, flexible);
        if count.saturating_mul(min as u64) > self.left() as u64 {
            return Err(WireError::Count {
                at,
                count,
                min,
                left: self.left(),
            });
        }
        // Charged before the elements are walked, so a count of zero-sized elements cannot
        // make the walk itself long.
        self.charge(count.saturating_mul((elem.mem() + answer) as u64), at)?;
        for _ in 0..count {
            self.value(elem, version, flexible)?;
        }
        Ok(())
    }

    fn tagged_fields(&mut self, known: &[layout::Tagged], version: i16) -> Result<(), WireError> {
        let at = self.pos;
        let count = self.varint("tagged field count")? as u64;
        // A tag and a size take at least a byte each.
        if count.saturating_mul(2) > self.left() as u64 {
            return Err(WireError::Count {
                at,
                count,
                min: 2,
                left: self.left(),
            });
        }
        if count > 0 {
            let nodes = 1 + count / TAGS_PER_NODE as u64;
            self.charge(nodes * TAG_NODE as u64, at)?;
        }
        for _ in 0..count {
            let tag = self.varint("tag")?;
            let size = self.varint("tag size")? as u64;
            let start = self.pos;
            match known.iter().find(|t| t.tag == tag && version >= t.from) {
                // The crate reads a known tag's value by its type, not by the declared size: the
                // two must agree or the rest of the frame would be read from another position.
                Some(t) => {
                    if size > self.left() as u64 {
                        return Err(WireError::Truncated {
                            what: "tagged field",
                            at: start,
                            need: size,
                            left: self.left(),
                        });
                    }
                    let outer = self.end;
                    self.end = start + size as usize;
                    let walked = self.value(&t.ty, version, true);
                    let actual = self.pos - start;
                    let exact = self.pos == self.end;
                    self.end = outer;
                    walked?;
                    if !exact {
                        return Err(WireError::TagSize {
                            tag,
                            at: start,
                            declared: size as usize,
                            actual,
                        });
                    }
                }
                None => self.skip(size, "tagged field")?,
            }
        }
        Ok(())
    }
}

/// The fewest bytes one encoded value of `ty` can take.
fn min_size(ty: &Ty, version: i16, flexible: bool) -> usize {
    match ty {
        Ty::I8 | Ty::Bool => 1,
        Ty::I16 => 2,
        Ty::I32 => 4,
        Ty::I64 => 8,
        Ty::Uuid => 16,
        Ty::Str => {
            if flexible {
                1
            } else {
                2
            }
        }
        Ty::Bytes | Ty::Array(..) | Ty::Structs(_) => {
            if flexible {
                1
            } else {
                4
            }
        }
        Ty::NullableStruct(_) => 1,
        Ty::Struct(l) => {
            let flexible = version >= l.flexible_from;
            let fields: usize = l
                .fields
                .iter()
                .filter(|f| version >= f.from && version <= f.to)
                .map(|f| min_size(&f.ty, version, flexible))
                .sum();
            fields + usize::from(flexible)
        }
    }
}

/// Decoding untrusted bytes must never take the broker down: the protocol crate can panic on a
/// short buffer, so a panic is contained and reported as a malformed request.
fn contained<T: Decodable>(buf: &mut Bytes, version: i16) -> anyhow::Result<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| T::decode(buf, version))) {
        Ok(r) => r,
        Err(_) => Err(anyhow!("truncated or malformed request body")),
    }
}

/// A request checked and decoded: its header and typed body.
pub struct Decoded {
    pub key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: Request,
    /// Bytes after the body that the crate did not read (Kafka ignores them too).
    pub trailing: usize,
}

macro_rules! requests {
    ($($k:ident($t:ty)),* $(,)?) => {
        /// The body of a request of an API this broker serves.
        pub enum Request {
            $($k($t)),*
        }

        fn decode_body(key: ApiKey, buf: &mut Bytes, version: i16) -> anyhow::Result<Request> {
            Ok(match key {
                $(ApiKey::$k => Request::$k(contained(buf, version)?),)*
                other => bail!("API {other:?} has no handler"),
            })
        }
    };
}

requests! {
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    Metadata(MetadataRequest),
    ApiVersions(ApiVersionsRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DeleteRecords(DeleteRecordsRequest),
    DescribeLogDirs(DescribeLogDirsRequest),
    DescribeTopicPartitions(DescribeTopicPartitionsRequest),
    ElectLeaders(ElectLeadersRequest),
    AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
    ListPartitionReassignments(ListPartitionReassignmentsRequest),
    DescribeCluster(DescribeClusterRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    ListGroups(ListGroupsRequest),
    DescribeGroups(DescribeGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
    OffsetDelete(OffsetDeleteRequest),
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest),
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest),
    InitProducerId(InitProducerIdRequest),
    AddPartitionsToTxn(AddPartitionsToTxnRequest),
    AddOffsetsToTxn(AddOffsetsToTxnRequest),
    EndTxn(EndTxnRequest),
    TxnOffsetCommit(TxnOffsetCommitRequest),
    DescribeTransactions(DescribeTransactionsRequest),
    ListTransactions(ListTransactionsRequest),
    DescribeProducers(DescribeProducersRequest),
    WriteTxnMarkers(WriteTxnMarkersRequest),
    SaslHandshake(SaslHandshakeRequest),
    SaslAuthenticate(SaslAuthenticateRequest),
    CreateAcls(CreateAclsRequest),
    DescribeAcls(DescribeAclsRequest),
    DeleteAcls(DeleteAclsRequest),
    DescribeUserScramCredentials(DescribeUserScramCredentialsRequest),
    AlterUserScramCredentials(AlterUserScramCredentialsRequest),
    AlterConfigs(AlterConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    ListConfigResources(ListConfigResourcesRequest),
    DescribeClientQuotas(DescribeClientQuotasRequest),
    AlterClientQuotas(AlterClientQuotasRequest),
}

/// Checks a request frame (without its size prefix) against its layout, then decodes it. A
/// version outside the served range is refused here too; the caller answers ApiVersions requests
/// of too high a version before calling this.
pub fn decode_request(frame: Bytes) -> anyhow::Result<Decoded> {
    if frame.len() < 8 {
        return Err(WireError::Short(frame.len()).into());
    }
    let key_raw = (&frame[..2]).get_i16();
    let version = (&frame[2..4]).get_i16();
    let key = ApiKey::try_from(key_raw).map_err(|_| anyhow!("unknown API key {key_raw}"))?;
    let Some((lo, hi)) = served(key) else {
        bail!("API {key:?} is not served by this broker");
    };
    if version < lo || version > hi {
        bail!("{key:?} v{version} is not served (range {lo}..={hi})");
    }
    check_request(&frame).map_err(|e| anyhow!("{key:?} v{version} refused: {e}"))?;
    let mut buf = frame;
    let header: RequestHeader = contained(&mut buf, key.request_header_version(version))?;
    let body = decode_body(key, &mut buf, version)?;
    Ok(Decoded {
        key,
        version,
        header,
        body,
        trailing: buf.len(),
    })
}
