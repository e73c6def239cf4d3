//! Kafka's `__consumer_offsets` records of consumer groups (key types 3 to 8).
//!
//! A key is its type (the key "version") followed by its fields in the classic, non-flexible
//! encoding. A value is a version (0 is written) followed by its fields in the flexible
//! encoding, each struct ending with a tagged-field section; unknown tags are skipped, so values
//! written by later versions that only add tagged fields are read.

use super::{Assignment, TopicId};
use crate::records::{Reader, RecordError, Writer};

pub const GROUP_METADATA: i16 = 3;
pub const PARTITION_METADATA: i16 = 4;
pub const MEMBER_METADATA: i16 = 5;
pub const TARGET_ASSIGNMENT_METADATA: i16 = 6;
pub const TARGET_ASSIGNMENT_MEMBER: i16 = 7;
pub const CURRENT_MEMBER_ASSIGNMENT: i16 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerKey {
    GroupMetadata { group: String },
    PartitionMetadata { group: String },
    MemberMetadata { group: String, member: String },
    TargetAssignmentMetadata { group: String },
    TargetAssignmentMember { group: String, member: String },
    CurrentMemberAssignment { group: String, member: String },
}

impl ConsumerKey {
    pub fn group(&self) -> &str {
        match self {
            ConsumerKey::GroupMetadata { group }
            | ConsumerKey::PartitionMetadata { group }
            | ConsumerKey::MemberMetadata { group, .. }
            | ConsumerKey::TargetAssignmentMetadata { group }
            | ConsumerKey::TargetAssignmentMember { group, .. }
            | ConsumerKey::CurrentMemberAssignment { group, .. } => group,
        }
    }
}

pub fn encode_key(k: &ConsumerKey) -> Vec<u8> {
    let mut w = Writer::default();
    let (t, group, member) = match k {
        ConsumerKey::GroupMetadata { group } => (GROUP_METADATA, group, None),
        ConsumerKey::PartitionMetadata { group } => (PARTITION_METADATA, group, None),
        ConsumerKey::MemberMetadata { group, member } => (MEMBER_METADATA, group, Some(member)),
        ConsumerKey::TargetAssignmentMetadata { group } => {
            (TARGET_ASSIGNMENT_METADATA, group, None)
        }
        ConsumerKey::TargetAssignmentMember { group, member } => {
            (TARGET_ASSIGNMENT_MEMBER, group, Some(member))
        }
        ConsumerKey::CurrentMemberAssignment { group, member } => {
            (CURRENT_MEMBER_ASSIGNMENT, group, Some(member))
        }
    };
    w.i16(t);
    w.string(group, false);
    if let Some(m) = member {
        w.string(m, false);
    }
    w.buf
}

/// `Ok(None)` when the key type is not 3 to 8 (the caller handles other types).
pub fn decode_key(bytes: &[u8]) -> Result<Option<ConsumerKey>, RecordError> {
    let mut r = Reader::new(bytes);
    let t = r.i16()?;
    if !(GROUP_METADATA..=CURRENT_MEMBER_ASSIGNMENT).contains(&t) {
        return Ok(None);
    }
    let group = r.string(false)?;
    let key = match t {
        GROUP_METADATA => ConsumerKey::GroupMetadata { group },
        PARTITION_METADATA => ConsumerKey::PartitionMetadata { group },
        TARGET_ASSIGNMENT_METADATA => ConsumerKey::TargetAssignmentMetadata { group },
        _ => {
            let member = r.string(false)?;
            match t {
                MEMBER_METADATA => ConsumerKey::MemberMetadata { group, member },
                TARGET_ASSIGNMENT_MEMBER => ConsumerKey::TargetAssignmentMember { group, member },
                _ => ConsumerKey::CurrentMemberAssignment { group, member },
            }
        }
    };
    if r.pos != bytes.len() {
        return Err(RecordError::Malformed("trailing bytes after the key"));
    }
    Ok(Some(key))
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMetadataValue {
    pub epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub id: TopicId,
    pub name: String,
    pub partitions: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionMetadataValue {
    pub topics: Vec<TopicMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Set for a member that speaks the classic protocol inside a consumer group (tagged
    /// field 0).
    pub classic: Option<ClassicMemberMetadata>,
}

/// What a classic-protocol member of a consumer group sent in its JoinGroup: its session
/// timeout and its protocols (name, subscription bytes), needed to answer it and to turn the
/// group back into a classic one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassicMemberMetadata {
    pub session_timeout_ms: i32,
    pub protocols: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetAssignmentMetadataValue {
    pub assignment_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetAssignmentMemberValue {
    pub partitions: Assignment,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentMemberAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

const VALUE_VERSION: i16 = 0;

fn start() -> Writer {
    let mut w = Writer::default();
    w.i16(VALUE_VERSION);
    w
}

fn finish(mut w: Writer) -> Vec<u8> {
    w.no_tags();
    w.buf
}

/// Reads the version; every version Kafka writes starts with the fields of version 0.
fn open(bytes: &[u8]) -> Result<Reader<'_>, RecordError> {
    let mut r = Reader::new(bytes);
    let v = r.i16()?;
    if v < 0 {
        return Err(RecordError::Malformed("negative value version"));
    }
    Ok(r)
}

fn close(mut r: Reader<'_>) -> Result<(), RecordError> {
    r.tags(|_, _| Ok(()))?;
    if !r.at_end() {
        return Err(RecordError::Malformed("trailing bytes after the value"));
    }
    Ok(())
}

fn uuid(r: &mut Reader<'_>) -> Result<TopicId, RecordError> {
    Ok(r.take(16)?.try_into().expect("16 bytes"))
}

/// `[]TopicPartitions` (topic id, `[]int32` partitions, tagged fields).
fn write_assignment(w: &mut Writer, a: &Assignment) {
    let topics: Vec<_> = a.iter().filter(|(_, ps)| !ps.is_empty()).collect();
    w.array_len(topics.len(), true);
    for (t, ps) in topics {
        w.buf.extend_from_slice(t);
        w.array_len(ps.len(), true);
        for p in ps {
            w.i32(*p);
        }
        w.no_tags();
    }
}

fn read_assignment(r: &mut Reader<'_>) -> Result<Assignment, RecordError> {
    let n = r.array_len(true)?;
    let mut out = Assignment::new();
    for _ in 0..n {
        let t = uuid(r)?;
        let np = r.array_len(true)?;
        let ps = out.entry(t).or_default();
        for _ in 0..np {
            ps.insert(r.i32()?);
        }
        r.tags(|_, _| Ok(()))?;
    }
    out.retain(|_, ps| !ps.is_empty());
    Ok(out)
}

pub fn encode_group_metadata(v: &GroupMetadataValue) -> Vec<u8> {
    let mut w = start();
    w.i32(v.epoch);
    finish(w)
}

pub fn decode_group_metadata(b: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let mut r = open(b)?;
    let epoch = r.i32()?;
    // Kafka 4.1 adds a metadata hash (a tagged field in later versions); skipped.
    close(r)?;
    Ok(GroupMetadataValue { epoch })
}

pub fn encode_partition_metadata(v: &PartitionMetadataValue) -> Vec<u8> {
    let mut w = start();
    w.array_len(v.topics.len(), true);
    for t in &v.topics {
        w.buf.extend_from_slice(&t.id);
        w.string(&t.name, true);
        w.i32(t.partitions);
        // No rack information.
        w.array_len(0, true);
        w.no_tags();
    }
    finish(w)
}

pub fn decode_partition_metadata(b: &[u8]) -> Result<PartitionMetadataValue, RecordError> {
    let mut r = open(b)?;
    let n = r.array_len(true)?;
    let mut topics = Vec::new();
    for _ in 0..n {
        let id = uuid(&mut r)?;
        let name = r.string(true)?;
        let partitions = r.i32()?;
        let racks = r.array_len(true)?;
        for _ in 0..racks {
            r.i32()?;
            let k = r.array_len(true)?;
            for _ in 0..k {
                r.str(true)?;
            }
            r.tags(|_, _| Ok(()))?;
        }
        r.tags(|_, _| Ok(()))?;
        topics.push(TopicMetadata {
            id,
            name,
            partitions,
        });
    }
    close(r)?;
    Ok(PartitionMetadataValue { topics })
}

pub fn encode_member_metadata(v: &MemberMetadataValue) -> Vec<u8> {
    let mut w = start();
    w.nullable_string(v.instance_id.as_deref(), true);
    w.nullable_string(v.rack_id.as_deref(), true);
    w.string(&v.client_id, true);
    w.string(&v.client_host, true);
    w.array_len(v.subscribed_topic_names.len(), true);
    for n in &v.subscribed_topic_names {
        w.string(n, true);
    }
    w.nullable_string(v.subscribed_topic_regex.as_deref(), true);
    w.i32(v.rebalance_timeout_ms);
    w.nullable_string(v.server_assignor.as_deref(), true);
    match &v.classic {
        None => w.no_tags(),
        Some(c) => {
            let mut t = Writer::default();
            t.i32(c.session_timeout_ms);
            t.array_len(c.protocols.len(), true);
            for (name, metadata) in &c.protocols {
                t.string(name, true);
                t.bytes(metadata, true);
                t.no_tags();
            }
            t.no_tags();
            w.uvarint(1);
            w.uvarint(0);
            w.uvarint(t.buf.len() as u64);
            w.buf.extend_from_slice(&t.buf);
        }
    }
    w.buf
}

fn decode_classic_metadata(b: &[u8]) -> Result<ClassicMemberMetadata, RecordError> {
    let mut r = Reader::new(b);
    let session_timeout_ms = r.i32()?;
    let n = r.array_len(true)?;
    let mut protocols = Vec::new();
    for _ in 0..n {
        let name = r.string(true)?;
        let metadata = r.bytes(true)?;
        r.tags(|_, _| Ok(()))?;
        protocols.push((name, metadata));
    }
    r.tags(|_, _| Ok(()))?;
    if !r.at_end() {
        return Err(RecordError::Malformed(
            "trailing bytes in a classic member's metadata",
        ));
    }
    Ok(ClassicMemberMetadata {
        session_timeout_ms,
        protocols,
    })
}

pub fn decode_member_metadata(b: &[u8]) -> Result<MemberMetadataValue, RecordError> {
    let mut r = open(b)?;
    let instance_id = r.nullable_string(true)?;
    let rack_id = r.nullable_string(true)?;
    let client_id = r.string(true)?;
    let client_host = r.string(true)?;
    let n = r.array_len(true)?;
    let mut subscribed_topic_names = Vec::new();
    for _ in 0..n {
        subscribed_topic_names.push(r.string(true)?);
    }
    let subscribed_topic_regex = r.nullable_string(true)?;
    let rebalance_timeout_ms = r.i32()?;
    let server_assignor = r.nullable_string(true)?;
    let mut classic = None;
    r.tags(|tag, data| {
        if tag == 0 {
            classic = Some(decode_classic_metadata(data)?);
        }
        Ok(())
    })?;
    if !r.at_end() {
        return Err(RecordError::Malformed("trailing bytes after the value"));
    }
    Ok(MemberMetadataValue {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex,
        rebalance_timeout_ms,
        server_assignor,
        classic,
    })
}

pub fn encode_target_metadata(v: &TargetAssignmentMetadataValue) -> Vec<u8> {
    let mut w = start();
    w.i32(v.assignment_epoch);
    finish(w)
}

pub fn decode_target_metadata(b: &[u8]) -> Result<TargetAssignmentMetadataValue, RecordError> {
    let mut r = open(b)?;
    let assignment_epoch = r.i32()?;
    close(r)?;
    Ok(TargetAssignmentMetadataValue { assignment_epoch })
}

pub fn encode_target_member(v: &TargetAssignmentMemberValue) -> Vec<u8> {
    let mut w = start();
    write_assignment(&mut w, &v.partitions);
    finish(w)
}

pub fn decode_target_member(b: &[u8]) -> Result<TargetAssignmentMemberValue, RecordError> {
    let mut r = open(b)?;
    let partitions = read_assignment(&mut r)?;
    close(r)?;
    Ok(TargetAssignmentMemberValue { partitions })
}

pub fn encode_current_assignment(v: &CurrentMemberAssignmentValue) -> Vec<u8> {
    let mut w = start();
    w.i32(v.member_epoch);
    w.i32(v.previous_member_epoch);
    w.buf.push(v.state as u8);
    write_assignment(&mut w, &v.assigned);
    write_assignment(&mut w, &v.pending_revocation);
    finish(w)
}

pub fn decode_current_assignment(b: &[u8]) -> Result<CurrentMemberAssignmentValue, RecordError> {
    let mut r = open(b)?;
    let member_epoch = r.i32()?;
    let previous_member_epoch = r.i32()?;
    let state = r.take(1)?[0] as i8;
    let assigned = read_assignment(&mut r)?;
    let pending_revocation = read_assignment(&mut r)?;
    close(r)?;
    Ok(CurrentMemberAssignmentValue {
        member_epoch,
        previous_member_epoch,
        state,
        assigned,
        pending_revocation,
    })
}
