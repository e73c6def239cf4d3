//! The façade the broker calls: every group of this broker, timers and replay.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cairn_runtime::{BatchTag, Seq, Token};

use crate::classic::prepare_rebalance;
use crate::error::GroupError;
use crate::group::{Group, Member, OffsetEntry};
use crate::history::{self, Cx};
use crate::records::{self, KeyRef, RecordError};
use crate::types::{
    Effects, GroupConfig, GroupDescription, GroupListing, GroupState, MemberDescription,
    RebalanceCause, RebalanceRecord, Replayed, Reply,
};

pub use crate::history::HISTORY_PER_GROUP;

pub struct GroupCoordinator {
    pub(crate) config: GroupConfig,
    pub(crate) groups: BTreeMap<String, Group>,
    id_seed: u64,
    id_counter: u64,
    next_expiry_check: Option<i64>,
    /// The `seq` of the next rebalance record.
    pub(crate) rebalance_seq: u64,
    /// How to undo what requests not yet durable changed, oldest first (see [`Undo`]).
    undo: VecDeque<Undo>,
    /// The request whose changes are being recorded in `undo`, if any.
    scope: Option<Seq>,
    /// Groups already saved in `undo` for the current scope.
    saved: BTreeSet<String>,
    /// Every request before the current one is final (see `Coordinator::earlier_final`).
    pub(crate) earlier_final: bool,
    /// The current request skipped saving a group (see `save_unless_final`).
    skipped_save: bool,
    /// Reused to look offsets up while replaying, so a commit to a partition already known
    /// allocates no key.
    replay_key: (String, i32),
    /// Offsets committed inside transactions whose marker has not been replayed yet, per
    /// producer id: invisible to every read until a COMMIT marker makes them committed.
    pub(crate) txn_pending: BTreeMap<i64, BTreeMap<TxnKey, OffsetEntry>>,
    /// Counts offset records replayed, to order them (see [`OffsetEntry::record_seq`]). Not
    /// undone: only the order matters, and later records get larger numbers either way.
    record_seq: u64,
    /// Compiled subscription regexes of consumer groups, by pattern (a pure cache).
    pub(crate) regex_cache: std::collections::HashMap<String, regex::Regex>,
}

/// (group, topic, partition) of a pending transactional offset.
pub(crate) type TxnKey = (String, String, i32);

/// One step back. A request saves a group the first time it touches it (everything but its
/// offsets, which are saved key by key as records replace them), so reverting restores the
/// group and its session state (parked requests, timers, history) exactly.
#[derive(Debug)]
enum Undo {
    Group {
        seq: Seq,
        id: String,
        /// `None`: the group did not exist.
        before: Option<Box<Group>>,
    },
    Offset {
        seq: Seq,
        group: String,
        topic: String,
        partition: i32,
        before: Option<OffsetEntry>,
    },
    /// A pending transactional offset of one producer, saved like committed offsets.
    TxnOffset {
        seq: Seq,
        producer_id: i64,
        key: TxnKey,
        before: Option<OffsetEntry>,
    },
}

impl Undo {
    fn seq(&self) -> Seq {
        match self {
            Undo::Group { seq, .. } | Undo::Offset { seq, .. } | Undo::TxnOffset { seq, .. } => {
                *seq
            }
        }
    }
}

/// SplitMix64: a bijective mixer, so distinct inputs give distinct outputs.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl GroupCoordinator {
    /// A coordinator whose member ids derive from `id_seed` (the broker passes a random
    /// seed; tests pass a fixed one for determinism).
    pub fn with_id_seed(config: GroupConfig, id_seed: u64) -> Self {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            id_seed,
            id_counter: 0,
            next_expiry_check: None,
            rebalance_seq: 0,
            undo: VecDeque::new(),
            scope: None,
            saved: BTreeSet::new(),
            earlier_final: false,
            skipped_save: false,
            replay_key: (String::new(), 0),
            txn_pending: BTreeMap::new(),
            record_seq: 0,
            regex_cache: std::collections::HashMap::new(),
        }
    }

    /// Remembers `id` as it is now, once per request, so the request can be undone.
    pub(crate) fn save(&mut self, id: &str) {
        let Some(seq) = self.scope else { return };
        if self.saved.contains(id) {
            return;
        }
        self.saved.insert(id.to_string());
        let before = self
            .groups
            .get_mut(id)
            .map(|g| Box::new(g.clone_without_offsets()));
        self.undo.push_back(Undo::Group {
            seq,
            id: id.to_string(),
            before,
        });
    }

    /// Saves `id` unless the request cannot be undone: every earlier request is final and
    /// the caller knows this request writes no records (checked when its effects are applied).
    pub(crate) fn save_unless_final(&mut self, id: &str) {
        if self.earlier_final && self.scope.is_some() {
            self.skipped_save = true;
        } else {
            self.save(id);
        }
    }

    /// Applies a handler's records through [`Self::replay`]: the one way recorded state
    /// changes, the same path a load takes.
    pub(crate) fn apply(&mut self, now: i64, fx: &Effects) {
        debug_assert!(
            !self.skipped_save || fx.records.is_empty(),
            "a request expected to write nothing wrote records: {:?}",
            fx.records.first().map(|r| &r.group_id)
        );
        for r in &fx.records {
            let replayed = self.replay(now, r.tag, &r.key, r.value.as_deref());
            debug_assert!(replayed.is_ok(), "own record must replay: {replayed:?}");
        }
    }

    /// The group as the durable records leave it: before the first request not yet durable
    /// touched it.
    pub(crate) fn committed_group(&self, id: &str) -> Option<&Group> {
        for u in &self.undo {
            if let Undo::Group {
                id: gid, before, ..
            } = u
            {
                if gid == id {
                    return before.as_deref();
                }
            }
        }
        self.groups.get(id)
    }

    /// A committed offset as the durable records leave it.
    pub(crate) fn committed_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<&OffsetEntry> {
        for u in &self.undo {
            if let Undo::Offset {
                group: g,
                topic: t,
                partition: p,
                before,
                ..
            } = u
            {
                if g == group && t == topic && *p == partition {
                    return before.as_ref();
                }
            }
        }
        self.groups
            .get(group)?
            .offsets
            .get(&(topic.to_string(), partition))
    }

    /// Every committed offset of a group as the durable records leave it.
    pub(crate) fn committed_offsets(&self, group: &str) -> BTreeMap<(String, i32), OffsetEntry> {
        let mut out = self
            .groups
            .get(group)
            .map(|g| g.offsets.clone())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        for u in &self.undo {
            if let Undo::Offset {
                group: g,
                topic,
                partition,
                before,
                ..
            } = u
            {
                if g == group && seen.insert((topic.clone(), *partition)) {
                    let key = (topic.clone(), *partition);
                    match before {
                        Some(e) => {
                            out.insert(key, e.clone());
                        }
                        None => {
                            out.remove(&key);
                        }
                    }
                }
            }
        }
        out
    }

    /// A producer's pending offset as the durable records leave it.
    fn committed_txn_offset(&self, producer_id: i64, key: &TxnKey) -> Option<&OffsetEntry> {
        for u in &self.undo {
            if let Undo::TxnOffset {
                producer_id: pid,
                key: k,
                before,
                ..
            } = u
            {
                if *pid == producer_id && k == key {
                    return before.as_ref();
                }
            }
        }
        self.txn_pending.get(&producer_id)?.get(key)
    }

    /// Whether an open transaction holds an offset for this partition of the group, as the
    /// durable records leave it (OffsetFetch with `require_stable` answers
    /// UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (group.to_string(), topic.to_string(), partition);
        let mut pids: BTreeSet<i64> = self
            .txn_pending
            .iter()
            .filter(|(_, m)| m.contains_key(&key))
            .map(|(pid, _)| *pid)
            .collect();
        for u in &self.undo {
            if let Undo::TxnOffset {
                producer_id,
                key: k,
                ..
            } = u
            {
                if *k == key {
                    pids.insert(*producer_id);
                }
            }
        }
        pids.into_iter()
            .any(|pid| self.committed_txn_offset(pid, &key).is_some())
    }

    /// Whether any open transaction holds an offset of the group (current state).
    pub(crate) fn group_has_pending(&self, group: &str) -> bool {
        self.txn_pending
            .values()
            .any(|m| m.keys().any(|(g, _, _)| g == group))
    }

    /// Whether any open transaction holds this partition's offset (current state).
    pub(crate) fn partition_has_pending(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.txn_pending.values().any(|m| {
            m.keys()
                .any(|(g, t, p)| g == group && t == topic && *p == partition)
        })
    }

    /// Every pending transactional offset, by (producer id, group, topic, partition): the part
    /// of the recorded state that [`Self::recorded_state`] leaves out.
    pub fn recorded_pending(&self) -> BTreeMap<(i64, String, String, i32), records::OffsetValue> {
        self.txn_pending
            .iter()
            .flat_map(|(pid, m)| {
                m.iter()
                    .map(|((g, t, p), e)| ((*pid, g.clone(), t.clone(), *p), e.to_value()))
            })
            .collect()
    }

    /// Sets or removes one pending transactional offset, saving what it replaces.
    fn set_txn_offset(&mut self, producer_id: i64, key: TxnKey, entry: Option<OffsetEntry>) {
        let before = match entry {
            Some(e) => self
                .txn_pending
                .entry(producer_id)
                .or_default()
                .insert(key.clone(), e),
            None => {
                let m = self.txn_pending.get_mut(&producer_id);
                let before = m.and_then(|m| m.remove(&key));
                if self
                    .txn_pending
                    .get(&producer_id)
                    .is_some_and(|m| m.is_empty())
                {
                    self.txn_pending.remove(&producer_id);
                }
                before
            }
        };
        if let Some(seq) = self.scope {
            self.undo.push_back(Undo::TxnOffset {
                seq,
                producer_id,
                key,
                before,
            });
        }
    }

    /// Ids of every group that exists now or in the durable view.
    fn all_group_ids(&self) -> BTreeSet<&str> {
        let mut ids: BTreeSet<&str> = self.groups.keys().map(String::as_str).collect();
        for u in &self.undo {
            if let Undo::Group { id, .. } = u {
                ids.insert(id);
            }
        }
        ids
    }

    /// Requests handled but not yet durable leave undo entries; tests use this to check that
    /// a durable state has none.
    pub fn undo_len(&self) -> usize {
        self.undo.len()
    }

    /// The parts of the state that records describe, per group: the last metadata record and
    /// the committed offsets. Two coordinators that replayed the same records agree on it.
    pub fn recorded_state(&self) -> BTreeMap<String, RecordedGroup> {
        self.groups
            .iter()
            .map(|(id, g)| {
                let offsets = g
                    .offsets
                    .iter()
                    .map(|((t, p), e)| ((t.clone(), *p), e.to_value()))
                    .collect();
                let rec = RecordedGroup {
                    metadata: g.stored.clone(),
                    offsets,
                };
                (id.clone(), rec)
            })
            .collect()
    }

    pub fn new(config: GroupConfig) -> Self {
        Self::with_id_seed(config, 0)
    }

    /// How many rebalance records each group keeps (see [`Self::rebalance_history`]).
    pub const HISTORY_PER_GROUP: usize = HISTORY_PER_GROUP;

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Follows a change of the offsets topic's `max.message.bytes`.
    pub fn set_max_record_batch_bytes(&mut self, bytes: usize) {
        self.config.max_record_batch_bytes = bytes;
    }

    /// The group's recent rebalances, oldest first, the one in progress (if any) last; at
    /// most [`HISTORY_PER_GROUP`]. Empty for an unknown group.
    ///
    /// The history lives only in this coordinator's memory: it is not written to
    /// `__consumer_offsets`, so a restart or an `unload` forgets it, and it is dropped with
    /// the group when the group is deleted or expires.
    pub fn rebalance_history(&self, group_id: &str) -> Vec<RebalanceRecord> {
        self.groups
            .get(group_id)
            .map(|g| g.history.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A UUID-formatted, never-repeating (per seed) identifier.
    pub(crate) fn next_uuid(&mut self) -> String {
        let n = self.id_counter;
        self.id_counter += 1;
        let hi = splitmix64(self.id_seed ^ n.wrapping_mul(2));
        let lo = splitmix64(self.id_seed ^ n.wrapping_mul(2).wrapping_add(1));
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }

    pub(crate) fn arm_expiry(&mut self, now: i64) {
        if self.next_expiry_check.is_none() {
            self.next_expiry_check = Some(now + self.config.offsets_retention_check_interval_ms);
        }
    }

    /// Every group as durable records leave it (a group whose creation is not yet durable is
    /// not listed; one whose deletion is not yet durable still is).
    pub fn list_groups(&self) -> Vec<GroupListing> {
        self.all_group_ids()
            .into_iter()
            .filter_map(|id| self.committed_group(id))
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                state: g.state,
                state_name: g
                    .consumer
                    .as_deref()
                    .map_or(g.state.name(), |cg| cg.state_name()),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                group_type: if g.consumer.is_some() {
                    crate::types::GroupType::Consumer
                } else {
                    crate::types::GroupType::Classic
                },
            })
            .collect()
    }

    /// The group as it was before the first request not yet durable touched it. A Stable or
    /// Empty group is therefore always one whose record is durable; a rebalance in progress
    /// (which Kafka never writes) shows the generation it is completing.
    /// `None` for a consumer group too: DescribeGroups speaks of classic groups only (see
    /// [`Self::describe_consumer_group`]).
    pub fn describe_group(&self, id: &str) -> Option<GroupDescription> {
        let g = self.committed_group(id).filter(|g| g.consumer.is_none())?;
        let stable = g.state == GroupState::Stable;
        let proto = g.protocol_name.clone().unwrap_or_default();
        Some(GroupDescription {
            group_id: g.id.clone(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { proto.clone() } else { String::new() },
            generation_id: g.generation,
            leader: g.leader.clone(),
            members: g
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&proto)
                    } else {
                        Vec::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        })
    }

    /// The group as its last metadata record describes it: what a load would show (Stable
    /// with the recorded members, or Empty). `None` if no group of that id is known.
    pub fn describe_recorded(&self, id: &str) -> Option<GroupDescription> {
        let g = self.groups.get(id)?;
        let Some(v) = &g.stored else {
            return Some(GroupDescription {
                group_id: g.id.clone(),
                state: GroupState::Empty,
                protocol_type: String::new(),
                protocol: String::new(),
                generation_id: 0,
                leader: None,
                members: Vec::new(),
            });
        };
        let stable = !v.members.is_empty();
        Some(GroupDescription {
            group_id: g.id.clone(),
            state: if stable {
                GroupState::Stable
            } else {
                GroupState::Empty
            },
            protocol_type: v.protocol_type.clone(),
            protocol: if stable {
                v.protocol.clone().unwrap_or_default()
            } else {
                String::new()
            },
            generation_id: v.generation,
            leader: v.leader.clone(),
            members: v
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.subscription.clone(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// Fires every timer due at `now`.
    pub fn tick(&mut self, now: i64) -> Effects {
        self.arm_expiry(now);
        let mut fx = Effects::default();
        let due: Vec<String> = self
            .groups
            .values()
            .filter(|g| group_deadline(g).is_some_and(|d| d <= now))
            .map(|g| g.id.clone())
            .collect();
        for id in due {
            self.save(&id);
            if self.groups.get(&id).is_some_and(|g| g.consumer.is_some()) {
                self.fire_consumer_timers(&id, now, &mut fx);
            } else {
                self.fire_group_timers(&id, now, &mut fx);
            }
        }
        if self.next_expiry_check.is_some_and(|t| t <= now) {
            self.next_expiry_check = Some(now + self.config.offsets_retention_check_interval_ms);
            self.expire_offsets(now, &mut fx);
        }
        self.apply(now, &fx);
        fx
    }

    /// The earliest time at which `tick` has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let mut best = self.next_expiry_check;
        for t in self.groups.values().filter_map(group_deadline) {
            best = Some(best.map_or(t, |b| b.min(t)));
        }
        best
    }

    /// Applies one `__consumer_offsets` record: offsets and the group's metadata record
    /// replace what was there, tombstones remove it. The only way recorded state changes:
    /// loading calls it for every stored record, and every handler's records go through it.
    /// Session state (members parked in a rebalance, timers) is not recorded; a load rebuilds
    /// it from the last metadata record in [`Self::finish_load`].
    ///
    /// `tag` is the batch the record came in: an offset in a producer's transactional batch
    /// stays pending until that producer's marker (a control record) commits or drops it.
    pub fn replay(
        &mut self,
        now: i64,
        tag: BatchTag,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<Replayed, RecordError> {
        if let BatchTag::Control { producer_id, .. } = tag {
            return self.replay_marker(producer_id, key, value);
        }
        // Offset commits are nearly every record: decoded without copying, and the group and
        // topic copied into the maps only when they are not there yet.
        let (group, topic, partition) = match records::decode_key_ref(key)? {
            KeyRef::Unknown { key_type } => {
                return match crate::consumer::records::decode_key(key)? {
                    Some(k) => self.replay_consumer(now, k, value),
                    None => Ok(Replayed::Unknown(key_type)),
                };
            }
            KeyRef::Group { group } => {
                let group = group.to_string();
                return self.replay_group(now, group, value);
            }
            KeyRef::Offset {
                group,
                topic,
                partition,
                ..
            } => (group, topic, partition),
        };
        let mut entry = value
            .map(|v| {
                records::decode_offset_value_ref(v)
                    .map(|r| OffsetEntry::from_value(r.to_owned_value()))
            })
            .transpose()?;
        if let Some(e) = &mut entry {
            self.record_seq += 1;
            e.record_seq = self.record_seq;
        }
        if entry.is_some() && !self.groups.contains_key(group) {
            // Offsets of an unknown group make it a simple group (transactional ones too, as
            // Kafka's replay does).
            self.save(group);
            self.groups
                .insert(group.to_string(), Group::new(group, now));
        }
        if let (BatchTag::Transactional { producer_id, .. }, Some(e)) = (tag, &entry) {
            let key = (group.to_string(), topic.to_string(), partition);
            self.set_txn_offset(producer_id, key, Some(e.clone()));
            return Ok(Replayed::Offset);
        }
        if entry.is_none() && !self.txn_pending.is_empty() {
            // A tombstone also drops what open transactions hold for the partition, so a
            // later COMMIT cannot bring a deleted offset back (Kafka does the same).
            let key = (group.to_string(), topic.to_string(), partition);
            let holders: Vec<i64> = self
                .txn_pending
                .iter()
                .filter(|(_, m)| m.contains_key(&key))
                .map(|(pid, _)| *pid)
                .collect();
            for pid in holders {
                self.set_txn_offset(pid, key.clone(), None);
            }
        }
        self.put_offset(group, topic, partition, entry)
    }

    /// A transaction marker: COMMIT turns every pending offset of the producer into a
    /// committed one, as a plain offset record would; ABORT drops them.
    fn replay_marker(
        &mut self,
        producer_id: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<Replayed, RecordError> {
        let kind = records::decode_control_key(key)?;
        if let Some(v) = value {
            records::decode_control_value(v)?;
        }
        let Some(pending) = self.txn_pending.get(&producer_id) else {
            return Ok(Replayed::Marker);
        };
        let pending: Vec<(TxnKey, OffsetEntry)> = pending
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for (k, e) in pending {
            self.set_txn_offset(producer_id, k.clone(), None);
            if kind != records::ControlType::Commit {
                continue;
            }
            // A group deleted meanwhile takes its pending offsets with it; a plain commit
            // written after the transaction's record wins over it (both as Kafka does).
            let Some(g) = self.groups.get(&k.0) else {
                continue;
            };
            let newer = g
                .offsets
                .get(&(k.1.clone(), k.2))
                .is_some_and(|c| c.record_seq > e.record_seq);
            if !newer {
                self.put_offset(&k.0, &k.1, k.2, Some(e))?;
            }
        }
        Ok(Replayed::Marker)
    }

    /// Sets or removes one committed offset, saving what it replaces.
    fn put_offset(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        entry: Option<OffsetEntry>,
    ) -> Result<Replayed, RecordError> {
        let Some(g) = self.groups.get_mut(group) else {
            return Ok(Replayed::Offset);
        };
        let k = &mut self.replay_key;
        k.0.clear();
        k.0.push_str(topic);
        k.1 = partition;
        let before = match (entry, g.offsets.get_mut(&*k)) {
            (Some(e), Some(slot)) => Some(std::mem::replace(slot, e)),
            (Some(e), None) => g.offsets.insert(k.clone(), e),
            (None, _) => g.offsets.remove(&*k),
        };
        if let Some(seq) = self.scope {
            self.undo.push_back(Undo::Offset {
                seq,
                group: group.to_string(),
                topic: topic.to_string(),
                partition,
                before,
            });
        }
        Ok(Replayed::Offset)
    }

    fn replay_group(
        &mut self,
        now: i64,
        group: String,
        value: Option<&[u8]>,
    ) -> Result<Replayed, RecordError> {
        self.save(&group);
        match value {
            Some(v) => {
                let gv = records::decode_group_value(v)?;
                let g = self
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, now));
                g.stored = Some(gv);
            }
            None => {
                let keep_offsets = self
                    .groups
                    .get_mut(&group)
                    .map(|g| std::mem::take(&mut g.offsets));
                self.groups.remove(&group);
                if let Some(offsets) = keep_offsets.filter(|o| !o.is_empty()) {
                    // Offsets outlive a group tombstone only if written out of order; keep
                    // them reachable as a simple group.
                    let mut g = Group::new(&group, now);
                    g.offsets = offsets;
                    self.groups.insert(group, g);
                }
            }
        }
        Ok(Replayed::Group)
    }

    /// Ends a load: groups become Stable (with members) or Empty, session timers restart.
    pub fn finish_load(&mut self, now: i64) -> Effects {
        self.arm_expiry(now);
        let mut fx = Effects::default();
        let mut cx = Cx::new(&self.config, &mut self.rebalance_seq);
        for g in self.groups.values_mut() {
            if let Some(cg) = g.consumer.as_deref_mut() {
                crate::consumer::loaded(cg, now, cx.cfg.consumer_session_timeout_ms);
                history::loaded(g);
                continue;
            }
            if let Some(gv) = g.stored.clone() {
                load_group_value(g, gv);
            }
            for m in &mut g.members {
                m.session_deadline = now + i64::from(m.session_timeout_ms);
            }
            g.state = if g.members.is_empty() {
                GroupState::Empty
            } else {
                GroupState::Stable
            };
            g.subscribed = g.compute_subscribed();
            history::loaded(g);
            if g.members.len() > cx.cfg.max_size {
                prepare_rebalance(g, now, &mut cx, &mut fx, RebalanceCause::GroupLoaded);
            }
        }
        self.apply(now, &fx);
        fx
    }

    /// Leadership of the offsets partitions was lost: fail every parked request with
    /// NOT_COORDINATOR and forget all state (rebalance history included). Rebalances in
    /// progress end as `Unloaded`, without a completion time.
    pub fn unload(&mut self) -> Effects {
        let mut fx = Effects::default();
        for g in self.groups.values_mut() {
            g.state = GroupState::Dead;
            history::unloaded(g, &mut fx);
            for m in &mut g.members {
                if let Some(t) = m.join_waiter.take() {
                    fx.replies
                        .push((t, Reply::Join(Err(GroupError::NotCoordinator))));
                }
                if let Some(t) = m.sync_waiter.take() {
                    fx.replies
                        .push((t, Reply::Sync(Err(GroupError::NotCoordinator))));
                }
            }
        }
        self.groups.clear();
        self.txn_pending.clear();
        self.next_expiry_check = None;
        fx
    }
}

/// The earliest time at which one of the group's timers fires.
fn group_deadline(g: &Group) -> Option<i64> {
    if let Some(cg) = g.consumer.as_deref() {
        return crate::consumer::deadline(cg);
    }
    let mut best: Option<i64> = None;
    let mut consider = |t: Option<i64>| {
        if let Some(t) = t {
            best = Some(best.map_or(t, |b| b.min(t)));
        }
    };
    consider(g.pending.values().min().copied());
    consider(g.join_deadline);
    consider(g.sync_deadline);
    for m in &g.members {
        if m.join_waiter.is_some() {
            consider(m.new_member_deadline);
        } else if m.sync_waiter.is_none() {
            consider(Some(m.session_deadline));
        }
    }
    best
}

fn load_group_value(g: &mut Group, gv: records::GroupValue) {
    g.protocol_type = Some(gv.protocol_type).filter(|t| !t.is_empty());
    g.generation = gv.generation;
    g.protocol_name = gv.protocol;
    g.leader = gv.leader;
    g.state_timestamp = (gv.current_state_timestamp >= 0).then_some(gv.current_state_timestamp);
    let proto = g.protocol_name.clone();
    g.members = gv
        .members
        .into_iter()
        .map(|m| Member {
            id: m.member_id,
            instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout,
            rebalance_timeout_ms: m.rebalance_timeout,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            // Only the chosen protocol's metadata is stored.
            protocols: proto
                .iter()
                .map(|p| (p.clone(), m.subscription.clone()))
                .collect(),
            assignment: m.assignment,
            join_waiter: None,
            sync_waiter: None,
            session_deadline: 0,
            new_member_deadline: None,
        })
        .collect();
    g.state = if g.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    g.pending.clear();
    g.pending_sync.clear();
    g.join_deadline = None;
    g.initial_delay = None;
    g.sync_deadline = None;
    g.subscribed = g.compute_subscribed();
}

/// What records say of one group (see [`GroupCoordinator::recorded_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedGroup {
    pub metadata: Option<records::GroupValue>,
    pub offsets: BTreeMap<(String, i32), records::OffsetValue>,
}

impl cairn_runtime::Coordinator for GroupCoordinator {
    type Reply = Reply;

    fn begin(&mut self, seq: Seq) {
        self.scope = Some(seq);
        self.saved.clear();
        self.earlier_final = false;
        self.skipped_save = false;
    }

    fn earlier_final(&mut self, all_final: bool) {
        self.earlier_final = all_final;
    }

    fn forget_through(&mut self, seq: Seq) {
        while self.undo.front().is_some_and(|u| u.seq() <= seq) {
            self.undo.pop_front();
        }
    }

    fn revert_from(&mut self, seq: Seq) {
        while self.undo.back().is_some_and(|u| u.seq() >= seq) {
            match self.undo.pop_back().expect("back") {
                Undo::Offset {
                    group,
                    topic,
                    partition,
                    before,
                    ..
                } => {
                    let key = (topic, partition);
                    match (self.groups.get_mut(&group), before) {
                        (Some(g), Some(e)) => {
                            g.offsets.insert(key, e);
                        }
                        (Some(g), None) => {
                            g.offsets.remove(&key);
                        }
                        (None, Some(e)) => {
                            // The group was removed later in the same request; its saved
                            // copy (restored next) takes these offsets back.
                            let mut g = Group::new(&group, 0);
                            g.offsets.insert(key, e);
                            self.groups.insert(group, g);
                        }
                        (None, None) => {}
                    }
                }
                Undo::TxnOffset {
                    producer_id,
                    key,
                    before,
                    ..
                } => match before {
                    Some(e) => {
                        self.txn_pending
                            .entry(producer_id)
                            .or_default()
                            .insert(key, e);
                    }
                    None => {
                        if let Some(m) = self.txn_pending.get_mut(&producer_id) {
                            m.remove(&key);
                            if m.is_empty() {
                                self.txn_pending.remove(&producer_id);
                            }
                        }
                    }
                },
                Undo::Group { id, before, .. } => {
                    let offsets = self.groups.remove(&id).map(|g| g.offsets);
                    if let Some(mut g) = before {
                        g.offsets = offsets.unwrap_or_default();
                        self.groups.insert(id, *g);
                    } else {
                        debug_assert!(offsets.is_none_or(|o| o.is_empty()));
                    }
                }
            }
        }
        self.scope = None;
        self.saved.clear();
    }

    fn is_parked(&self, token: Token) -> bool {
        self.groups.values().any(|g| g.parks(token))
    }
}
