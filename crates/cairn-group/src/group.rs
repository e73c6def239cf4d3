//! In-memory state of one classic group, and the helpers the protocol logic shares.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::consumer_protocol::decode_subscription;
use crate::history::Owners;
use crate::records::{self, GroupValue, MemberValue, OffsetValue};
use crate::types::{
    Effects, GroupState, JoinMember, JoinResponse, RebalanceRecord, Record, Reply, ReplyToken,
};

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Vec<u8>)>,
    pub assignment: Vec<u8>,
    pub join_waiter: Option<ReplyToken>,
    pub sync_waiter: Option<ReplyToken>,
    pub session_deadline: i64,
    /// Set while a brand-new member waits in its first join (the 5-minute guard).
    pub new_member_deadline: Option<i64>,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Vec<u8> {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Parked members are alive by definition; only idle ones can expire.
    pub fn session_expired(&self, now: i64) -> bool {
        self.join_waiter.is_none() && self.sync_waiter.is_none() && self.session_deadline <= now
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    pub expire_timestamp: Option<i64>,
    /// Position of the record among those replayed (log order): when a transaction commits,
    /// its offset replaces a committed one only if its record is the later one (Kafka keeps
    /// the most recent record, as compaction of the log would).
    pub record_seq: u64,
}

impl OffsetEntry {
    pub fn to_value(&self) -> OffsetValue {
        OffsetValue {
            offset: self.offset,
            leader_epoch: self.leader_epoch,
            metadata: self.metadata.clone(),
            commit_timestamp: self.commit_timestamp,
            expire_timestamp: self.expire_timestamp,
            topic_id: None,
        }
    }

    pub fn from_value(v: OffsetValue) -> Self {
        OffsetEntry {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata,
            commit_timestamp: v.commit_timestamp,
            expire_timestamp: v.expire_timestamp,
            record_seq: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct InitialDelay {
    pub remaining_ms: i64,
    pub new_member_added: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub state_timestamp: Option<i64>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// In insertion order: leadership passes to the next member in this order.
    pub members: Vec<Member>,
    /// Dynamic members told MEMBER_ID_REQUIRED, with their session deadline.
    pub pending: BTreeMap<String, i64>,
    pub pending_sync: BTreeSet<String>,
    pub join_deadline: Option<i64>,
    pub initial_delay: Option<InitialDelay>,
    pub sync_deadline: Option<i64>,
    pub offsets: BTreeMap<(String, i32), OffsetEntry>,
    /// Topics subscribed by the current generation (consumer protocol only).
    pub subscribed: Option<BTreeSet<String>>,
    /// Rebalances, oldest first; the last one may be in progress (see `history`). Shared with
    /// the copies saved for undo until it changes, which is rarely.
    pub history: std::sync::Arc<VecDeque<RebalanceRecord>>,
    /// Members of the current generation (when its join phase completed, or at load).
    pub generation_members: usize,
    /// Partition owners of the last Stable assignment (empty once the group empties);
    /// `None` when it could not be decoded or the protocol type is not "consumer".
    pub stable_owners: Option<Owners>,
    /// The group's last metadata record, as replayed: what a restart would load. Changed
    /// only by replay.
    pub stored: Option<GroupValue>,
    /// Set for a consumer group (KIP-848): its recorded state and member timers. The classic
    /// fields above then only mirror it (state Empty or Stable, the subscribed topics).
    pub consumer: Option<Box<crate::consumer::ConsumerGroup>>,
}

impl Group {
    pub fn new(id: &str, now: i64) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp: Some(now),
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_deadline: None,
            initial_delay: None,
            sync_deadline: None,
            offsets: BTreeMap::new(),
            subscribed: None,
            history: Default::default(),
            generation_members: 0,
            stable_owners: Some(Owners::new()),
            stored: None,
            consumer: None,
        }
    }

    /// A copy of everything but the committed offsets (which are undone key by key).
    pub fn clone_without_offsets(&mut self) -> Group {
        let offsets = std::mem::take(&mut self.offsets);
        let copy = self.clone();
        self.offsets = offsets;
        copy
    }

    /// Whether `token` is parked in one of this group's members.
    pub fn parks(&self, token: ReplyToken) -> bool {
        self.members
            .iter()
            .any(|m| m.join_waiter == Some(token) || m.sync_waiter == Some(token))
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    pub fn static_member(&self, instance_id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
            .map(|m| m.id.as_str())
    }

    pub fn is_leader(&self, id: &str) -> bool {
        self.leader.as_deref() == Some(id)
    }

    pub fn awaiting_join(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.join_waiter.is_some())
            .count()
    }

    pub fn all_joined(&self) -> bool {
        self.members.iter().all(|m| m.join_waiter.is_some()) && self.pending.is_empty()
    }

    /// The group's rebalance timeout: the largest any member asked for.
    pub fn rebalance_timeout(&self) -> i64 {
        self.members
            .iter()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    pub fn transition(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_timestamp = Some(now);
    }

    /// Kafka's `supportsProtocols`: an empty group takes any well-formed join; otherwise the
    /// type must match and some offered protocol must be supported by every current member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Vec<u8>)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// Candidates are protocols every member supports; each member votes for its most
    /// preferred candidate; most votes wins, ties going to the earliest vote cast.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == n))
            })
            .collect();
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for m in &self.members {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                match votes.iter_mut().find(|(n, _)| n == name) {
                    Some((_, c)) => *c += 1,
                    None => votes.push((name.as_str(), 1)),
                }
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (n, c) in votes {
            if best.is_none_or(|(_, bc)| c > bc) {
                best = Some((n, c));
            }
        }
        best.map(|(n, _)| n.to_string())
    }

    /// Subscribed topics of the current members, when the consumer protocol is in use and
    /// every member's subscription can be read.
    pub fn compute_subscribed(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for m in &self.members {
            let sub = decode_subscription(&m.metadata_for(protocol)).ok()?;
            topics.extend(sub.topics);
        }
        Some(topics)
    }

    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.subscribed.as_ref().is_some_and(|s| s.contains(topic))
    }

    pub fn join_response(&self, member_id: &str) -> JoinResponse {
        let leader = self.leader.clone().unwrap_or_default();
        let members = if self.is_leader(member_id) {
            let proto = self.protocol_name.clone().unwrap_or_default();
            self.members
                .iter()
                .map(|m| JoinMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    metadata: m.metadata_for(&proto),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    /// The group metadata record for the current state (members only outside Empty).
    pub fn metadata_record(&self) -> Record {
        let proto = self.protocol_name.clone().unwrap_or_default();
        let value = GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp.unwrap_or(-1),
            members: self
                .members
                .iter()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: m.metadata_for(&proto),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        };
        Record {
            group_id: self.id.clone(),
            key: records::encode_group_key(&self.id),
            value: Some(
                records::encode_group_value(&value, records::GROUP_VALUE_VERSION)
                    .expect("supported version"),
            ),
            tag: cairn_runtime::BatchTag::Plain,
        }
    }

    /// The group metadata record for the current state if the offsets topic will take it;
    /// otherwise the size of the batch it would need.
    pub fn metadata_record_within(&self, max_batch_bytes: usize) -> Result<Record, usize> {
        let record = self.metadata_record();
        let size = records::batch_size([&record]);
        if size > max_batch_bytes {
            Err(size)
        } else {
            Ok(record)
        }
    }

    /// The records that delete the group: a consumer group's own tombstones, or the classic
    /// group record's.
    pub fn delete_records(&self, out: &mut Vec<Record>) {
        match self.consumer.as_deref() {
            Some(cg) => crate::consumer::tombstones(&self.id, cg, out),
            None => out.push(self.tombstone_record()),
        }
    }

    pub fn tombstone_record(&self) -> Record {
        Record {
            group_id: self.id.clone(),
            key: records::encode_group_key(&self.id),
            value: None,
            tag: cairn_runtime::BatchTag::Plain,
        }
    }

    pub fn offset_record(
        &self,
        topic: &str,
        partition: i32,
        entry: Option<&OffsetEntry>,
    ) -> Record {
        let value = entry.map(|e| {
            let v = e.to_value();
            records::encode_offset_value(&v, v.preferred_version()).expect("supported version")
        });
        Record {
            group_id: self.id.clone(),
            key: records::encode_offset_key(&self.id, topic, partition),
            value,
            tag: cairn_runtime::BatchTag::Plain,
        }
    }

    /// Removes a member, answering its parked requests, and hands leadership on if needed.
    /// The caller decides what the removal means for the group's state.
    pub fn remove_member(&mut self, id: &str, fx: &mut Effects, err: crate::GroupError) -> bool {
        let Some(pos) = self.members.iter().position(|m| m.id == id) else {
            return false;
        };
        let m = self.members.remove(pos);
        if let Some(t) = m.join_waiter {
            fx.replies.push((t, Reply::Join(Err(err.clone()))));
        }
        if let Some(t) = m.sync_waiter {
            fx.replies.push((t, Reply::Sync(Err(err))));
        }
        self.pending_sync.remove(id);
        if self.is_leader(id) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        true
    }
}
