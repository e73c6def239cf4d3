//! Hand-written codecs for the `__consumer_offsets` key and value formats.
//!
//! Keys start with an int16 record type, values with an int16 value version. Classic versions
//! use int16-length strings and int32-length arrays/bytes; flexible versions (offset value v4,
//! group value v4) use compact (unsigned-varint) lengths and tagged-field sections.

use std::fmt;

/// Offset commit key type written by current brokers (type 0 is the legacy spelling).
pub const OFFSET_KEY_TYPE: i16 = 1;
/// Classic group metadata key type.
pub const GROUP_KEY_TYPE: i16 = 2;
/// Offset value version we write normally.
pub const OFFSET_VALUE_VERSION: i16 = 3;
/// Offset value version we write when an explicit expire timestamp must be kept.
pub const OFFSET_VALUE_VERSION_WITH_EXPIRY: i16 = 1;
/// Group value version we write.
pub const GROUP_VALUE_VERSION: i16 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    Truncated,
    InvalidString,
    NegativeLength,
    UnsupportedVersion(i16),
    Malformed(&'static str),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Truncated => write!(f, "record is truncated"),
            RecordError::InvalidString => write!(f, "string is not valid UTF-8"),
            RecordError::NegativeLength => write!(f, "negative length for a non-nullable field"),
            RecordError::UnsupportedVersion(v) => write!(f, "unsupported value version {v}"),
            RecordError::Malformed(what) => write!(f, "malformed record: {what}"),
        }
    }
}

impl std::error::Error for RecordError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// Key type 0 or 1; `key_type` keeps which, so a tombstone can echo the exact key bytes.
    Offset {
        key_type: i16,
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// A record type this crate does not handle (KIP-848, share, streams, or future types).
    Unknown {
        key_type: i16,
    },
}

/// A key decoded without copying: its strings borrow from the record (for replay, where most
/// keys name a group and partition already in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRef<'a> {
    Offset {
        key_type: i16,
        group: &'a str,
        topic: &'a str,
        partition: i32,
    },
    Group {
        group: &'a str,
    },
    Unknown {
        key_type: i16,
    },
}

impl KeyRef<'_> {
    pub fn to_owned_key(&self) -> RecordKey {
        match *self {
            KeyRef::Offset {
                key_type,
                group,
                topic,
                partition,
            } => RecordKey::Offset {
                key_type,
                group: group.to_owned(),
                topic: topic.to_owned(),
                partition,
            },
            KeyRef::Group { group } => RecordKey::Group {
                group: group.to_owned(),
            },
            KeyRef::Unknown { key_type } => RecordKey::Unknown { key_type },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when absent (v0–v2 carry no epoch).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only v1 stores it; set when a legacy commit asked for an explicit retention.
    pub expire_timestamp: Option<i64>,
    /// v4 tagged field 0.
    pub topic_id: Option<[u8; 16]>,
}

impl OffsetValue {
    /// The version Kafka 3.x/4.0 would write for this value.
    pub fn preferred_version(&self) -> i16 {
        if self.expire_timestamp.is_some() {
            OFFSET_VALUE_VERSION_WITH_EXPIRY
        } else {
            OFFSET_VALUE_VERSION
        }
    }
}

/// An offset value decoded without copying: the metadata borrows from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetValueRef<'a> {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: &'a str,
    pub commit_timestamp: i64,
    pub expire_timestamp: Option<i64>,
    pub topic_id: Option<[u8; 16]>,
}

impl OffsetValueRef<'_> {
    pub fn to_owned_value(&self) -> OffsetValue {
        OffsetValue {
            offset: self.offset,
            leader_epoch: self.leader_epoch,
            metadata: self.metadata.to_owned(),
            commit_timestamp: self.commit_timestamp,
            expire_timestamp: self.expire_timestamp,
            topic_id: self.topic_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when absent (v0/v1).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

// ---------------------------------------------------------------------------------------------
// Writer

#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    pub(crate) fn string(&mut self, s: &str, flexible: bool) {
        if flexible {
            self.uvarint(s.len() as u64 + 1);
        } else {
            self.i16(s.len() as i16);
        }
        self.buf.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn nullable_string(&mut self, s: Option<&str>, flexible: bool) {
        match s {
            Some(s) => self.string(s, flexible),
            None if flexible => self.uvarint(0),
            None => self.i16(-1),
        }
    }
    pub(crate) fn bytes(&mut self, b: &[u8], flexible: bool) {
        if flexible {
            self.uvarint(b.len() as u64 + 1);
        } else {
            self.i32(b.len() as i32);
        }
        self.buf.extend_from_slice(b);
    }
    pub(crate) fn array_len(&mut self, n: usize, flexible: bool) {
        if flexible {
            self.uvarint(n as u64 + 1);
        } else {
            self.i32(n as i32);
        }
    }
    pub(crate) fn no_tags(&mut self) {
        self.uvarint(0);
    }
}

// ---------------------------------------------------------------------------------------------
// Reader

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() - self.pos < n {
            return Err(RecordError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub(crate) fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError::Malformed("varint too long"))
    }
    /// Length prefix; `None` means null.
    pub(crate) fn len(&mut self, flexible: bool, wide: bool) -> Result<Option<usize>, RecordError> {
        let n: i64 = if flexible {
            // 0 is null; a hostile length past i64 is simply too long (never an overflow).
            match self.uvarint()? {
                0 => -1,
                v => i64::try_from(v - 1).unwrap_or(i64::MAX),
            }
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        if n < 0 {
            return Ok(None);
        }
        let n = n as usize;
        // Reject lengths longer than the rest of the buffer before allocating anything.
        if n > self.buf.len() - self.pos {
            return Err(RecordError::Truncated);
        }
        Ok(Some(n))
    }
    pub(crate) fn nullable_str(&mut self, flexible: bool) -> Result<Option<&'a str>, RecordError> {
        match self.len(flexible, false)? {
            None => Ok(None),
            Some(n) => std::str::from_utf8(self.take(n)?)
                .map(Some)
                .map_err(|_| RecordError::InvalidString),
        }
    }
    pub(crate) fn str(&mut self, flexible: bool) -> Result<&'a str, RecordError> {
        self.nullable_str(flexible)?
            .ok_or(RecordError::NegativeLength)
    }
    pub(crate) fn nullable_string(
        &mut self,
        flexible: bool,
    ) -> Result<Option<String>, RecordError> {
        Ok(self.nullable_str(flexible)?.map(str::to_owned))
    }
    pub(crate) fn string(&mut self, flexible: bool) -> Result<String, RecordError> {
        self.str(flexible).map(str::to_owned)
    }
    pub(crate) fn bytes(&mut self, flexible: bool) -> Result<Vec<u8>, RecordError> {
        match self.len(flexible, true)? {
            None => Err(RecordError::NegativeLength),
            Some(n) => Ok(self.take(n)?.to_vec()),
        }
    }
    pub(crate) fn array_len(&mut self, flexible: bool) -> Result<usize, RecordError> {
        self.len(flexible, true)?.ok_or(RecordError::NegativeLength)
    }
    /// Reads a tagged-field section, handing each (tag, data) to `f`; unknown tags are skipped.
    pub(crate) fn tags(
        &mut self,
        mut f: impl FnMut(u64, &'a [u8]) -> Result<(), RecordError>,
    ) -> Result<(), RecordError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let data = self.take(size)?;
            f(tag, data)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

pub fn encode_offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(OFFSET_KEY_TYPE);
    w.string(group, false);
    w.string(topic, false);
    w.i32(partition);
    w.buf
}

/// Bytes of a v2 record batch header: everything before the first record.
const BATCH_HEADER_BYTES: usize = 61;

/// Bytes of a zigzag varint (Kafka's varint and varlong encodings).
fn varint_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

/// The size of `records` written as one uncompressed v2 batch, every record with the batch's
/// timestamp and no headers: how the broker writes the coordinator's records. Lets the
/// coordinator know, before changing any state, whether the log will take the record.
pub fn batch_size<'a>(records: impl IntoIterator<Item = &'a crate::types::Record>) -> usize {
    let mut total = BATCH_HEADER_BYTES;
    for (i, r) in records.into_iter().enumerate() {
        let value_len = r.value.as_ref().map_or(-1, |v| v.len() as i64);
        let body = 1 // attributes
            + varint_len(0) // timestamp delta
            + varint_len(i as i64) // offset delta
            + varint_len(r.key.len() as i64)
            + r.key.len()
            + varint_len(value_len)
            + value_len.max(0) as usize
            + varint_len(0); // header count
        total += varint_len(body as i64) + body;
    }
    total
}

pub fn encode_group_key(group: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(GROUP_KEY_TYPE);
    w.string(group, false);
    w.buf
}

pub fn decode_key(bytes: &[u8]) -> Result<RecordKey, RecordError> {
    decode_key_ref(bytes).map(|k| k.to_owned_key())
}

/// Like [`decode_key`] but borrowing the strings from `bytes`.
pub fn decode_key_ref(bytes: &[u8]) -> Result<KeyRef<'_>, RecordError> {
    let mut r = Reader::new(bytes);
    let key_type = r.i16()?;
    let key = match key_type {
        0 | 1 => KeyRef::Offset {
            key_type,
            group: r.str(false)?,
            topic: r.str(false)?,
            partition: r.i32()?,
        },
        2 => KeyRef::Group {
            group: r.str(false)?,
        },
        other => return Ok(KeyRef::Unknown { key_type: other }),
    };
    // A key with bytes left over is not one we wrote; reading it as a shorter key could make it
    // stand for another group's record.
    if r.pos != bytes.len() {
        return Err(RecordError::Malformed("trailing bytes after the key"));
    }
    Ok(key)
}

// ---------------------------------------------------------------------------------------------
// Transaction markers

/// The outcome a transaction marker (Kafka's control record) carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

/// Kafka's control record key: int16 version 0, int16 type (0 = ABORT, 1 = COMMIT).
pub fn encode_control_key(kind: ControlType) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(0);
    w.i16(match kind {
        ControlType::Abort => 0,
        ControlType::Commit => 1,
    });
    w.buf
}

/// Reads a control key. Kafka reads the type of any version and ignores what follows; we do
/// the same, and refuse types other than ABORT and COMMIT (no other marker touches offsets).
pub fn decode_control_key(bytes: &[u8]) -> Result<ControlType, RecordError> {
    let mut r = Reader::new(bytes);
    let _version = r.i16()?;
    match r.i16()? {
        0 => Ok(ControlType::Abort),
        1 => Ok(ControlType::Commit),
        _ => Err(RecordError::Malformed("control record type")),
    }
}

/// Kafka's end-transaction marker value: int16 version 0, int32 coordinator epoch.
pub fn encode_control_value(coordinator_epoch: i32) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(0);
    w.i32(coordinator_epoch);
    w.buf
}

/// The coordinator epoch of a marker value.
pub fn decode_control_value(bytes: &[u8]) -> Result<i32, RecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if version < 0 {
        return Err(RecordError::UnsupportedVersion(version));
    }
    r.i32()
}

// ---------------------------------------------------------------------------------------------
// Offset values

pub fn encode_offset_value(v: &OffsetValue, version: i16) -> Result<Vec<u8>, RecordError> {
    let mut w = Writer::default();
    w.i16(version);
    match version {
        0 | 2 => {
            w.i64(v.offset);
            w.string(&v.metadata, false);
            w.i64(v.commit_timestamp);
        }
        1 => {
            w.i64(v.offset);
            w.string(&v.metadata, false);
            w.i64(v.commit_timestamp);
            w.i64(v.expire_timestamp.unwrap_or(-1));
        }
        3 => {
            w.i64(v.offset);
            w.i32(v.leader_epoch);
            w.string(&v.metadata, false);
            w.i64(v.commit_timestamp);
        }
        4 => {
            w.i64(v.offset);
            w.i32(v.leader_epoch);
            w.string(&v.metadata, true);
            w.i64(v.commit_timestamp);
            match v.topic_id {
                Some(id) => {
                    w.uvarint(1);
                    w.uvarint(0);
                    w.uvarint(16);
                    w.buf.extend_from_slice(&id);
                }
                None => w.no_tags(),
            }
        }
        other => return Err(RecordError::UnsupportedVersion(other)),
    }
    Ok(w.buf)
}

pub fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordError> {
    decode_offset_value_ref(bytes).map(|v| v.to_owned_value())
}

/// Like [`decode_offset_value`] but borrowing the metadata from `bytes`.
pub fn decode_offset_value_ref(bytes: &[u8]) -> Result<OffsetValueRef<'_>, RecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    let mut v = OffsetValueRef {
        offset: 0,
        leader_epoch: -1,
        metadata: "",
        commit_timestamp: -1,
        expire_timestamp: None,
        topic_id: None,
    };
    match version {
        0..=2 => {
            v.offset = r.i64()?;
            v.metadata = r.str(false)?;
            v.commit_timestamp = r.i64()?;
            if version == 1 {
                let e = r.i64()?;
                // -1 is "no explicit expiry" in v1 records written without a retention.
                v.expire_timestamp = (e >= 0).then_some(e);
            }
        }
        3 | 4 => {
            let flexible = version == 4;
            v.offset = r.i64()?;
            v.leader_epoch = r.i32()?;
            v.metadata = r.str(flexible)?;
            v.commit_timestamp = r.i64()?;
            if flexible {
                let mut topic_id = None;
                r.tags(|tag, data| {
                    if tag == 0 {
                        let id: [u8; 16] = data
                            .try_into()
                            .map_err(|_| RecordError::Malformed("topic id is not 16 bytes"))?;
                        topic_id = Some(id);
                    }
                    Ok(())
                })?;
                v.topic_id = topic_id;
            }
        }
        other => return Err(RecordError::UnsupportedVersion(other)),
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Group values

pub fn encode_group_value(g: &GroupValue, version: i16) -> Result<Vec<u8>, RecordError> {
    if !(0..=4).contains(&version) {
        return Err(RecordError::UnsupportedVersion(version));
    }
    let flex = version >= 4;
    let mut w = Writer::default();
    w.i16(version);
    w.string(&g.protocol_type, flex);
    w.i32(g.generation);
    w.nullable_string(g.protocol.as_deref(), flex);
    w.nullable_string(g.leader.as_deref(), flex);
    if version >= 2 {
        w.i64(g.current_state_timestamp);
    }
    w.array_len(g.members.len(), flex);
    for m in &g.members {
        w.string(&m.member_id, flex);
        if version >= 3 {
            w.nullable_string(m.group_instance_id.as_deref(), flex);
        }
        w.string(&m.client_id, flex);
        w.string(&m.client_host, flex);
        if version >= 1 {
            w.i32(m.rebalance_timeout);
        }
        w.i32(m.session_timeout);
        w.bytes(&m.subscription, flex);
        w.bytes(&m.assignment, flex);
        if flex {
            w.no_tags();
        }
    }
    if flex {
        w.no_tags();
    }
    Ok(w.buf)
}

pub fn decode_group_value(bytes: &[u8]) -> Result<GroupValue, RecordError> {
    let mut r = Reader::new(bytes);
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        return Err(RecordError::UnsupportedVersion(version));
    }
    let flex = version >= 4;
    let protocol_type = r.string(flex)?;
    let generation = r.i32()?;
    let protocol = r.nullable_string(flex)?;
    let leader = r.nullable_string(flex)?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let n = r.array_len(flex)?;
    let mut members = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let member_id = r.string(flex)?;
        let group_instance_id = if version >= 3 {
            r.nullable_string(flex)?
        } else {
            None
        };
        let client_id = r.string(flex)?;
        let client_host = r.string(flex)?;
        let rebalance_timeout = if version >= 1 { Some(r.i32()?) } else { None };
        let session_timeout = r.i32()?;
        let subscription = r.bytes(flex)?;
        let assignment = r.bytes(flex)?;
        if flex {
            r.tags(|_, _| Ok(()))?;
        }
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            // v0 had a single timeout that served both purposes.
            rebalance_timeout: rebalance_timeout.unwrap_or(session_timeout),
            session_timeout,
            subscription,
            assignment,
        });
    }
    if flex {
        r.tags(|_, _| Ok(()))?;
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_with_trailing_bytes_are_refused() {
        let mut k = super::encode_group_key("victim");
        assert!(super::decode_key(&k).is_ok());
        k.extend_from_slice(b"tail");
        assert!(super::decode_key(&k).is_err());
        let mut k = super::encode_offset_key("g", "t", 3);
        k.push(0);
        assert!(super::decode_key(&k).is_err());
    }

    use super::*;

    fn offset_value() -> OffsetValue {
        OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "meta".into(),
            commit_timestamp: 1_000,
            expire_timestamp: None,
            topic_id: None,
        }
    }

    fn group_value() -> GroupValue {
        GroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("c-1".into()),
            current_state_timestamp: 5_000,
            members: vec![MemberValue {
                member_id: "c-1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300_000,
                session_timeout: 45_000,
                subscription: vec![0, 1, 2],
                assignment: vec![9],
            }],
        }
    }

    #[test]
    fn offset_key_bytes() {
        let k = encode_offset_key("g", "t", 3);
        assert_eq!(k, vec![0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(
            decode_key(&k).unwrap(),
            RecordKey::Offset {
                key_type: 1,
                group: "g".into(),
                topic: "t".into(),
                partition: 3
            }
        );
        // Legacy type 0 decodes the same way.
        let legacy = [0, 0, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3];
        assert!(matches!(
            decode_key(&legacy).unwrap(),
            RecordKey::Offset {
                key_type: 0,
                partition: 3,
                ..
            }
        ));
    }

    #[test]
    fn group_and_unknown_keys() {
        let k = encode_group_key("grp");
        assert_eq!(k, vec![0, 2, 0, 3, b'g', b'r', b'p']);
        assert_eq!(
            decode_key(&k).unwrap(),
            RecordKey::Group {
                group: "grp".into()
            }
        );
        assert_eq!(
            decode_key(&[0, 5, 0, 0]).unwrap(),
            RecordKey::Unknown { key_type: 5 }
        );
        assert_eq!(decode_key(&[0]), Err(RecordError::Truncated));
        assert_eq!(decode_key(&[0, 1, 0, 9, b'g']), Err(RecordError::Truncated));
    }

    #[test]
    fn offset_value_v3_bytes() {
        let b = encode_offset_value(&offset_value(), 3).unwrap();
        let mut want = vec![0, 3];
        want.extend_from_slice(&42i64.to_be_bytes());
        want.extend_from_slice(&7i32.to_be_bytes());
        want.extend_from_slice(&[0, 4, b'm', b'e', b't', b'a']);
        want.extend_from_slice(&1000i64.to_be_bytes());
        assert_eq!(b, want);
        assert_eq!(decode_offset_value(&b).unwrap(), offset_value());
    }

    #[test]
    fn offset_value_v0_v1_v2_bytes() {
        let mut v0 = vec![0, 0];
        v0.extend_from_slice(&42i64.to_be_bytes());
        v0.extend_from_slice(&[0, 1, b'x']);
        v0.extend_from_slice(&99i64.to_be_bytes());
        let d = decode_offset_value(&v0).unwrap();
        assert_eq!(
            (d.offset, d.leader_epoch, d.metadata.as_str()),
            (42, -1, "x")
        );
        assert_eq!((d.commit_timestamp, d.expire_timestamp), (99, None));

        let mut v2 = v0.clone();
        v2[1] = 2;
        assert_eq!(decode_offset_value(&v2).unwrap(), d);

        let mut v1 = v0.clone();
        v1[1] = 1;
        v1.extend_from_slice(&500i64.to_be_bytes());
        let d1 = decode_offset_value(&v1).unwrap();
        assert_eq!(d1.expire_timestamp, Some(500));
        let mut with_exp = d1.clone();
        with_exp.leader_epoch = 5; // v1 cannot carry it
        assert_eq!(with_exp.preferred_version(), 1);
        assert_eq!(encode_offset_value(&with_exp, 1).unwrap(), v1);
        // Truncated v1 (missing the expire timestamp) is an error, not a panic.
        assert_eq!(
            decode_offset_value(&v1[..v1.len() - 3]),
            Err(RecordError::Truncated)
        );
    }

    #[test]
    fn offset_value_v4_bytes() {
        let mut v = offset_value();
        let b = encode_offset_value(&v, 4).unwrap();
        let mut want = vec![0, 4];
        want.extend_from_slice(&42i64.to_be_bytes());
        want.extend_from_slice(&7i32.to_be_bytes());
        want.extend_from_slice(&[5, b'm', b'e', b't', b'a']);
        want.extend_from_slice(&1000i64.to_be_bytes());
        want.push(0);
        assert_eq!(b, want);
        assert_eq!(decode_offset_value(&b).unwrap(), v);

        v.topic_id = Some([0xab; 16]);
        let b = encode_offset_value(&v, 4).unwrap();
        assert_eq!(&b[b.len() - 19..b.len() - 16], &[1, 0, 16]);
        assert_eq!(decode_offset_value(&b).unwrap(), v);

        // An unknown tag is skipped.
        let mut unknown = want.clone();
        unknown.pop();
        unknown.extend_from_slice(&[1, 9, 2, 0xff, 0xff]);
        assert_eq!(decode_offset_value(&unknown).unwrap(), offset_value());
    }

    #[test]
    fn offset_value_bad_version() {
        assert_eq!(
            decode_offset_value(&[0, 9]),
            Err(RecordError::UnsupportedVersion(9))
        );
        assert!(encode_offset_value(&offset_value(), 5).is_err());
    }

    #[test]
    fn group_value_roundtrip_all_versions() {
        for version in 0..=4 {
            let mut g = group_value();
            if version < 3 {
                g.members[0].group_instance_id = None;
            }
            if version < 2 {
                g.current_state_timestamp = -1;
            }
            if version < 1 {
                g.members[0].rebalance_timeout = g.members[0].session_timeout;
            }
            let b = encode_group_value(&g, version).unwrap();
            assert_eq!(decode_group_value(&b).unwrap(), g, "version {version}");
        }
    }

    #[test]
    fn group_value_v3_bytes() {
        let b = encode_group_value(&group_value(), 3).unwrap();
        let mut want = vec![0, 3];
        want.extend_from_slice(&[0, 8]);
        want.extend_from_slice(b"consumer");
        want.extend_from_slice(&3i32.to_be_bytes());
        want.extend_from_slice(&[0, 5]);
        want.extend_from_slice(b"range");
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(b"c-1");
        want.extend_from_slice(&5000i64.to_be_bytes());
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(b"c-1");
        want.extend_from_slice(&[0, 2, b'i', b'1']);
        want.extend_from_slice(&[0, 1, b'c']);
        want.extend_from_slice(&[0, 10]);
        want.extend_from_slice(b"/127.0.0.1");
        want.extend_from_slice(&300_000i32.to_be_bytes());
        want.extend_from_slice(&45_000i32.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 3, 0, 1, 2]);
        want.extend_from_slice(&[0, 0, 0, 1, 9]);
        assert_eq!(b, want);
    }

    #[test]
    fn group_value_v4_and_v0_bytes() {
        // Empty group, as written when a group becomes Empty.
        let empty = GroupValue {
            protocol_type: String::new(),
            generation: 1,
            protocol: None,
            leader: None,
            current_state_timestamp: 77,
            members: vec![],
        };
        let mut want = vec![0, 4, 1];
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&[0, 0]);
        want.extend_from_slice(&77i64.to_be_bytes());
        want.extend_from_slice(&[1, 0]);
        assert_eq!(encode_group_value(&empty, 4).unwrap(), want);
        assert_eq!(decode_group_value(&want).unwrap(), empty);

        // v0 member: no instance id, no rebalance timeout (it defaults to the session timeout).
        let mut v0 = vec![0, 0, 0, 0];
        v0.extend_from_slice(&2i32.to_be_bytes());
        v0.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        v0.extend_from_slice(&1i32.to_be_bytes());
        v0.extend_from_slice(&[0, 1, b'm', 0, 1, b'c', 0, 1, b'h']);
        v0.extend_from_slice(&10_000i32.to_be_bytes());
        v0.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        let g = decode_group_value(&v0).unwrap();
        assert_eq!(g.generation, 2);
        assert_eq!(g.current_state_timestamp, -1);
        assert_eq!(g.members[0].rebalance_timeout, 10_000);
        assert_eq!(g.members[0].member_id, "m");
    }

    #[test]
    fn borrowed_key_round_trips_and_points_into_the_record() {
        let k = encode_offset_key("grp-é", "topic", 17);
        let r = decode_key_ref(&k).unwrap();
        assert_eq!(
            r,
            KeyRef::Offset {
                key_type: 1,
                group: "grp-é",
                topic: "topic",
                partition: 17
            }
        );
        let KeyRef::Offset { group, topic, .. } = r else {
            unreachable!()
        };
        let range = k.as_ptr_range();
        assert!(range.contains(&group.as_ptr()) && range.contains(&topic.as_ptr()));
        assert_eq!(r.to_owned_key(), decode_key(&k).unwrap());

        let g = encode_group_key("grp");
        assert_eq!(decode_key_ref(&g).unwrap(), KeyRef::Group { group: "grp" });
        assert_eq!(
            decode_key_ref(&[0, 7, 1, 2]).unwrap(),
            KeyRef::Unknown { key_type: 7 }
        );
    }

    #[test]
    fn borrowed_offset_value_round_trips_every_version() {
        for version in 0..=4 {
            let mut v = offset_value();
            if version < 3 {
                v.leader_epoch = -1;
            }
            if version == 1 {
                v.expire_timestamp = Some(9_000);
            }
            if version == 4 {
                v.topic_id = Some([7; 16]);
            }
            let b = encode_offset_value(&v, version).unwrap();
            let r = decode_offset_value_ref(&b).unwrap();
            assert_eq!(r.to_owned_value(), v, "version {version}");
            assert_eq!(decode_offset_value(&b).unwrap(), v, "version {version}");
            assert!(b.as_ptr_range().contains(&r.metadata.as_ptr()));
        }
    }

    #[test]
    fn borrowed_decoders_refuse_hostile_bytes_like_the_owned_ones() {
        let key = encode_offset_key("g", "t", 3);
        let value = encode_offset_value(&offset_value(), 4).unwrap();
        // Every strict prefix is an error, never a panic, and owned and borrowed agree.
        for cut in 0..key.len() {
            let (r, o) = (decode_key_ref(&key[..cut]), decode_key(&key[..cut]));
            assert!(r.is_err(), "key prefix {cut}");
            assert_eq!(r.map(|k| k.to_owned_key()), o);
        }
        for cut in 0..value.len() {
            let (r, o) = (
                decode_offset_value_ref(&value[..cut]),
                decode_offset_value(&value[..cut]),
            );
            assert!(r.is_err(), "value prefix {cut}");
            assert_eq!(r.map(|v| v.to_owned_value()), o);
        }
        // Lengths beyond the record, invalid UTF-8, trailing bytes after a key.
        assert_eq!(
            decode_key_ref(&[0, 1, 0x7f, 0xff, b'g']),
            Err(RecordError::Truncated)
        );
        assert_eq!(
            decode_key_ref(&[0, 2, 0, 2, 0xc3, 0x28]),
            Err(RecordError::InvalidString)
        );
        assert_eq!(
            decode_key_ref(&[0, 2, 0, 1, b'g', 0]),
            Err(RecordError::Malformed("trailing bytes after the key"))
        );
        assert_eq!(
            decode_key_ref(&[0, 1, 0xff, 0xff, 0, 1, b't', 0, 0, 0, 0]),
            Err(RecordError::NegativeLength)
        );
        let mut v4 = value.clone();
        v4[14] = 0xff; // compact metadata length: a varint running past the record
        assert!(decode_offset_value_ref(&v4).is_err());
        // Every single-byte change is decoded or refused, never a panic.
        for at in 0..value.len() {
            let mut bad = value.clone();
            bad[at] ^= 0xa5;
            assert_eq!(
                decode_offset_value_ref(&bad).map(|v| v.to_owned_value()),
                decode_offset_value(&bad)
            );
        }
    }

    #[test]
    fn group_value_garbage_is_an_error() {
        assert!(decode_group_value(&[0, 3, 0]).is_err());
        assert!(decode_group_value(&[0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]).is_err());
        let mut huge = vec![0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        huge.extend_from_slice(&0i64.to_be_bytes());
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_group_value(&huge), Err(RecordError::Truncated));
    }
}
