//! Rebalance history: one [`RebalanceRecord`] per rebalance of a group, kept in memory only
//! (nothing here is written to `__consumer_offsets`), at most [`HISTORY_PER_GROUP`] per group
//! and dropped with the group.
//!
//! The protocol code calls in at the four moments that matter: a rebalance starts
//! (`start`), its join phase completes (`join_completed`), the group becomes Stable
//! (`became_stable`) or Empty (`emptied`); `unloaded` ends whatever is in progress.

use std::collections::{BTreeMap, BTreeSet};

use crate::consumer_protocol::decode_assignment;
use crate::group::Group;
use crate::types::{Effects, GroupConfig, RebalanceCause, RebalanceOutcome, RebalanceRecord};

/// How many rebalance records each group keeps, the in-progress one included.
pub const HISTORY_PER_GROUP: usize = 32;

/// Who owns each partition in a consumer-protocol assignment (owner = instance id for static
/// members, member id otherwise). A set, so a (faulty) double assignment still compares.
pub(crate) type Owners = BTreeMap<(String, i32), BTreeSet<String>>;

/// What the protocol functions need from the coordinator besides the group itself.
pub(crate) struct Cx<'a> {
    pub cfg: &'a GroupConfig,
    seq: &'a mut u64,
}

impl<'a> Cx<'a> {
    pub fn new(cfg: &'a GroupConfig, seq: &'a mut u64) -> Self {
        Cx { cfg, seq }
    }

    fn next_seq(&mut self) -> u64 {
        let s = *self.seq;
        *self.seq += 1;
        s
    }
}

fn in_progress(g: &mut Group) -> Option<&mut RebalanceRecord> {
    std::sync::Arc::make_mut(&mut g.history)
        .back_mut()
        .filter(|r| r.outcome == RebalanceOutcome::InProgress)
}

/// Ends the in-progress record, if any, and reports it.
fn end(g: &mut Group, outcome: RebalanceOutcome, completed_ms: Option<i64>, fx: &mut Effects) {
    if let Some(r) = in_progress(g) {
        r.outcome = outcome;
        r.completed_ms = completed_ms;
        fx.rebalances.push(r.clone());
    }
}

/// The group entered PreparingRebalance because of `cause`. A rebalance still in progress
/// ends as Superseded.
pub(crate) fn start(
    g: &mut Group,
    now: i64,
    cx: &mut Cx<'_>,
    cause: RebalanceCause,
    fx: &mut Effects,
) {
    end(g, RebalanceOutcome::Superseded, Some(now), fx);
    let history = std::sync::Arc::make_mut(&mut g.history);
    while history.len() >= HISTORY_PER_GROUP {
        history.pop_front();
    }
    let record = RebalanceRecord {
        group_id: g.id.clone(),
        seq: cx.next_seq(),
        cause,
        from_generation: g.generation,
        generation: None,
        started_ms: now,
        join_completed_ms: None,
        completed_ms: None,
        members_before: g.generation_members,
        members_after: None,
        partitions_moved: None,
        outcome: RebalanceOutcome::InProgress,
    };
    history.push_back(record);
}

/// The join phase completed: the group has a new generation (and is CompletingRebalance or
/// Empty).
pub(crate) fn join_completed(g: &mut Group, now: i64) {
    g.generation_members = g.members.len();
    let (generation, members) = (g.generation, g.members.len());
    if let Some(r) = in_progress(g) {
        r.join_completed_ms = Some(now);
        r.generation = Some(generation);
        r.members_after = Some(members);
    }
}

/// A consumer group's epoch moved to `epoch`: its target assignment is computed at once, so
/// the record goes straight to reconciling.
pub(crate) fn epoch_bumped(g: &mut Group, now: i64, epoch: i32, members: usize) {
    if let Some(r) = in_progress(g) {
        r.from_generation = epoch - 1;
        r.join_completed_ms = Some(now);
        r.generation = Some(epoch);
        r.members_after = Some(members);
    }
}

/// The join phase completed with nobody left: the group is Empty.
pub(crate) fn emptied(g: &mut Group, now: i64, fx: &mut Effects) {
    settle_assignment(g);
    // Nobody owns anything now, whatever protocol the next members speak.
    g.stable_owners = Some(Owners::new());
    end(g, RebalanceOutcome::Emptied, Some(now), fx);
}

/// The leader's assignment arrived: the group is Stable.
pub(crate) fn became_stable(g: &mut Group, now: i64, fx: &mut Effects) {
    settle_assignment(g);
    end(g, RebalanceOutcome::Stable, Some(now), fx);
}

/// The coordinator is giving the group up.
pub(crate) fn unloaded(g: &mut Group, fx: &mut Effects) {
    end(g, RebalanceOutcome::Unloaded, None, fx);
}

/// A group was just loaded: its current assignment is the baseline for the next rebalance.
pub(crate) fn loaded(g: &mut Group) {
    g.generation_members = g.members.len();
    g.stable_owners = if g.members.is_empty() {
        Some(Owners::new())
    } else {
        owners(g)
    };
}

/// Compares the group's assignment with the previous Stable one, stores the count on the
/// in-progress record and makes the current assignment the new baseline.
fn settle_assignment(g: &mut Group) {
    let new = owners(g);
    let moved = match (&g.stable_owners, &new) {
        (Some(old), Some(new)) => Some(moved(old, new)),
        _ => None,
    };
    if let Some(r) = in_progress(g) {
        r.partitions_moved = moved;
    }
    g.stable_owners = new;
}

/// Owners of the group's current assignment; `None` unless the protocol type is "consumer"
/// and every non-empty assignment decodes. An empty assignment owns nothing.
pub(crate) fn owners(g: &Group) -> Option<Owners> {
    if let Some(cg) = g.consumer.as_deref() {
        return Some(crate::consumer::owners(cg));
    }
    if g.protocol_type.as_deref() != Some("consumer") {
        return None;
    }
    let mut out = Owners::new();
    for m in &g.members {
        if m.assignment.is_empty() {
            continue;
        }
        let a = decode_assignment(&m.assignment).ok()?;
        let owner = m.instance_id.as_ref().unwrap_or(&m.id);
        for tp in a.topic_partitions() {
            out.entry(tp).or_default().insert(owner.clone());
        }
    }
    Some(out)
}

/// Partitions whose owners differ; a partition present on one side only counts.
pub(crate) fn moved(old: &Owners, new: &Owners) -> usize {
    let keys: BTreeSet<&(String, i32)> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners_of(pairs: &[(&str, i32, &str)]) -> Owners {
        let mut o = Owners::new();
        for (t, p, m) in pairs {
            o.entry((t.to_string(), *p))
                .or_default()
                .insert(m.to_string());
        }
        o
    }

    #[test]
    fn moved_counts_changed_new_and_dropped_partitions() {
        let old = owners_of(&[("t", 0, "a"), ("t", 1, "a"), ("t", 2, "b"), ("u", 0, "b")]);
        let new = owners_of(&[("t", 0, "a"), ("t", 1, "b"), ("t", 2, "b"), ("t", 3, "c")]);
        // t-1 changed owner, t-3 is new, u-0 is no longer assigned.
        assert_eq!(moved(&old, &new), 3);
        assert_eq!(moved(&new, &new), 0);
        assert_eq!(moved(&Owners::new(), &new), 4);
    }

    #[test]
    fn durations() {
        let mut r = RebalanceRecord {
            group_id: "g".into(),
            seq: 0,
            cause: RebalanceCause::GroupLoaded,
            from_generation: 1,
            generation: None,
            started_ms: 100,
            join_completed_ms: None,
            completed_ms: None,
            members_before: 0,
            members_after: None,
            partitions_moved: None,
            outcome: RebalanceOutcome::InProgress,
        };
        assert_eq!(
            (r.preparing_ms(), r.completing_ms(), r.total_ms()),
            (None, None, None)
        );
        r.completed_ms = Some(180);
        assert_eq!(
            (r.preparing_ms(), r.completing_ms(), r.total_ms()),
            (None, None, Some(80))
        );
        r.join_completed_ms = Some(130);
        assert_eq!(
            (r.preparing_ms(), r.completing_ms(), r.total_ms()),
            (Some(30), Some(50), Some(80))
        );
    }

    #[test]
    fn cause_kinds_are_stable() {
        let kinds: Vec<&str> = [
            RebalanceCause::MemberJoined {
                member_id: "m".into(),
            },
            RebalanceCause::MemberRejoinedWithNewMetadata {
                member_id: "m".into(),
            },
            RebalanceCause::LeaderRejoined {
                member_id: "m".into(),
            },
            RebalanceCause::MemberLeft {
                member_id: "m".into(),
            },
            RebalanceCause::SessionTimeout {
                member_id: "m".into(),
            },
            RebalanceCause::RebalanceTimeout { member_ids: vec![] },
            RebalanceCause::SyncTimeout { member_ids: vec![] },
            RebalanceCause::StaticMemberReplaced {
                instance_id: "i".into(),
            },
            RebalanceCause::PartitionsAdded { topic: "t".into() },
            RebalanceCause::TopicDeleted { topic: "t".into() },
            RebalanceCause::GroupLoaded,
            RebalanceCause::Other("x".into()),
        ]
        .iter()
        .map(RebalanceCause::kind)
        .collect();
        assert_eq!(
            kinds,
            [
                "member_joined",
                "member_metadata_changed",
                "leader_rejoined",
                "member_left",
                "session_timeout",
                "rebalance_timeout",
                "sync_timeout",
                "static_member_replaced",
                "partitions_added",
                "topic_deleted",
                "group_loaded",
                "other"
            ]
        );
    }
}
