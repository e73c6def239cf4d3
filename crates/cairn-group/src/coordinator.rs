//! The façade the broker calls: every group of this broker, timers and replay.

use std::collections::BTreeMap;

use crate::classic::prepare_rebalance;
use crate::error::GroupError;
use crate::group::{Group, Member, OffsetEntry};
use crate::history::{self, Cx};
use crate::records::{self, RecordError, RecordKey};
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
        }
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

    pub fn list_groups(&self) -> Vec<GroupListing> {
        self.groups
            .values()
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                state: g.state,
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
            })
            .collect()
    }

    pub fn describe_group(&self, id: &str) -> Option<GroupDescription> {
        let g = self.groups.get(id)?;
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

    /// Fires every timer due at `now`.
    pub fn tick(&mut self, now: i64) -> Effects {
        self.arm_expiry(now);
        let mut fx = Effects::default();
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            self.fire_group_timers(&id, now, &mut fx);
        }
        if self.next_expiry_check.is_some_and(|t| t <= now) {
            self.next_expiry_check = Some(now + self.config.offsets_retention_check_interval_ms);
            self.expire_offsets(now, &mut fx);
        }
        fx
    }

    /// The earliest time at which `tick` has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let mut best = self.next_expiry_check;
        let mut consider = |t: Option<i64>| {
            if let Some(t) = t {
                best = Some(best.map_or(t, |b| b.min(t)));
            }
        };
        for g in self.groups.values() {
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
        }
        best
    }

    /// Applies one `__consumer_offsets` record while loading: offsets and group state replace what
    /// was there, tombstones remove it.
    pub fn replay(
        &mut self,
        now: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<Replayed, RecordError> {
        match records::decode_key(key)? {
            RecordKey::Unknown { key_type } => Ok(Replayed::Unknown(key_type)),
            RecordKey::Offset {
                group,
                topic,
                partition,
                ..
            } => {
                match value {
                    Some(v) => {
                        let entry = OffsetEntry::from_value(records::decode_offset_value(v)?);
                        // Offsets of an unknown group make it a simple group.
                        let g = self
                            .groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, now));
                        g.offsets.insert((topic, partition), entry);
                    }
                    None => {
                        if let Some(g) = self.groups.get_mut(&group) {
                            g.offsets.remove(&(topic, partition));
                        }
                    }
                }
                Ok(Replayed::Offset)
            }
            RecordKey::Group { group } => {
                match value {
                    Some(v) => {
                        let gv = records::decode_group_value(v)?;
                        let g = self
                            .groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, now));
                        load_group_value(g, gv);
                    }
                    None => {
                        let keep_offsets = self.groups.get(&group).map(|g| g.offsets.clone());
                        self.groups.remove(&group);
                        if let Some(offsets) = keep_offsets.filter(|o| !o.is_empty()) {
                            // Offsets outlive a group tombstone only if written out of
                            // order; keep them reachable as a simple group.
                            let mut g = Group::new(&group, now);
                            g.offsets = offsets;
                            self.groups.insert(group, g);
                        }
                    }
                }
                Ok(Replayed::Group)
            }
        }
    }

    /// Ends a load: groups become Stable (with members) or Empty, session timers restart.
    pub fn finish_load(&mut self, now: i64) -> Effects {
        self.arm_expiry(now);
        let mut fx = Effects::default();
        let mut cx = Cx::new(&self.config, &mut self.rebalance_seq);
        for g in self.groups.values_mut() {
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
        self.next_expiry_check = None;
        fx
    }
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
