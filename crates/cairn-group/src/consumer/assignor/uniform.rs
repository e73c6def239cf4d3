//! `uniform` (the default): as balanced as the subscriptions allow, and sticky.
//!
//! Follows the shape of Kafka 4.x's uniform assignor. When every member subscribes to the same
//! topics, each gets `total / members` partitions and `total % members` of them one more; a
//! member keeps as many of its current partitions as that allows, so a join or a leave moves
//! only about one member's share. When subscriptions differ, members first keep what they may
//! still own, free partitions go to the least loaded subscriber, and then partitions move, topic
//! by topic, from the most to the least loaded subscriber until no move improves the balance.
//! Racks are not considered.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::{Assignment, Assignor, MemberSpec, Table, NOBODY};
use crate::consumer::TopicId;

/// Kafka's server-side `uniform` assignor.
#[derive(Debug, Default, Clone, Copy)]
pub struct UniformAssignor;

/// Upper bound on balancing passes over all topics (heterogeneous case); each pass that moves
/// nothing ends the loop earlier. Every move strictly improves the balance, so this only bounds
/// time on pathological inputs.
const MAX_BALANCE_PASSES: usize = 16;

impl Assignor for UniformAssignor {
    fn name(&self) -> &'static str {
        "uniform"
    }

    fn assign(
        &self,
        members: &[MemberSpec],
        topics: &BTreeMap<TopicId, i32>,
    ) -> BTreeMap<String, Assignment> {
        let mut table = Table::new(topics);
        if let Some(first) = members.first() {
            if members.iter().all(|m| m.topics == first.topics) {
                homogeneous(members, &mut table);
            } else {
                heterogeneous(members, &mut table);
            }
        }
        table.into_assignments(members)
    }
}

/// Gives member `m` every partition of its current assignment that still exists, that it still
/// subscribes to (`subscribed`) and that no earlier member already claimed (the caller may pass
/// overlapping current assignments: the first member in order keeps the partition). Returns the
/// partitions it kept, in (topic, partition) order.
fn keep_current(
    table: &mut Table,
    m: usize,
    member: &MemberSpec,
    subscribed: impl Fn(usize, &TopicId) -> bool,
) -> Vec<(u32, u32)> {
    let mut kept = Vec::new();
    for (id, parts) in &member.current {
        let Some(t) = table.index(id) else { continue };
        if !subscribed(t, id) {
            continue;
        }
        let owners = &mut table.owner[t];
        for &p in parts {
            if p < 0 {
                continue;
            }
            if let Some(owner) = owners.get_mut(p as usize) {
                if *owner == NOBODY {
                    *owner = m as u32;
                    kept.push((t as u32, p as u32));
                }
            }
        }
    }
    kept
}

/// Every member subscribes to the same topics: counts differ by at most one.
fn homogeneous(members: &[MemberSpec], table: &mut Table) {
    let mut subscribed = vec![false; table.ids.len()];
    let mut total = 0usize;
    for t in table.indices(&members[0].topics) {
        subscribed[t] = true;
        total += table.partitions(t);
    }
    let n = members.len();
    let min_quota = total / n;
    let mut extras = total % n;

    let mut kept: Vec<Vec<(u32, u32)>> = members
        .iter()
        .enumerate()
        .map(|(m, member)| keep_current(table, m, member, |t, _| subscribed[t]))
        .collect();

    // Members already holding more than the minimum are the cheapest place for the extra
    // partitions: giving an extra to one of them saves a move.
    let mut quota = vec![min_quota; n];
    for m in 0..n {
        if extras == 0 {
            break;
        }
        if kept[m].len() > min_quota {
            quota[m] += 1;
            extras -= 1;
        }
    }
    for (held, &q) in kept.iter_mut().zip(&quota) {
        let keep = q.min(held.len());
        for (t, p) in held.drain(keep..) {
            table.owner[t as usize][p as usize] = NOBODY;
        }
    }

    // Free partitions in (topic, partition) order, so a member receives neighbouring ones.
    let mut free = Vec::new();
    for (t, owners) in table.owner.iter().enumerate() {
        if subscribed[t] {
            free.extend(
                owners
                    .iter()
                    .enumerate()
                    .filter(|(_, &o)| o == NOBODY)
                    .map(|(p, _)| (t, p)),
            );
        }
    }
    let mut free = free.into_iter();
    let mut give = |table: &mut Table, m: usize| {
        let (t, p) = free.next().expect("partition counts add up");
        table.owner[t][p] = m as u32;
    };
    // Up to the minimum first, then the remaining extras to members that have none yet.
    for (m, held) in kept.iter().enumerate() {
        for _ in held.len()..min_quota {
            give(table, m);
        }
    }
    for (m, &q) in quota.iter().enumerate() {
        if extras == 0 {
            break;
        }
        if q == min_quota {
            give(table, m);
            extras -= 1;
        }
    }
    debug_assert!(free.next().is_none(), "every partition is assigned");
}

/// Subscriptions differ: each partition can go only to its topic's subscribers.
fn heterogeneous(members: &[MemberSpec], table: &mut Table) {
    let topics = table.ids.len();
    let mut subscribers: Vec<Vec<u32>> = vec![Vec::new(); topics];
    for (m, member) in members.iter().enumerate() {
        for t in table.indices(&member.topics) {
            subscribers[t].push(m as u32);
        }
    }
    let mut size: Vec<usize> = members
        .iter()
        .enumerate()
        .map(|(m, member)| keep_current(table, m, member, |_, id| member.topics.contains(id)).len())
        .collect();

    // Topics with the most partitions per subscriber first: they constrain the balance most,
    // and smaller ones fill in the gaps afterwards. Ties: fewer subscribers, then topic id.
    let mut order: Vec<usize> = (0..topics)
        .filter(|&t| !subscribers[t].is_empty())
        .collect();
    order.sort_by(|&a, &b| {
        let (pa, sa) = (table.partitions(a) as u64, subscribers[a].len() as u64);
        let (pb, sb) = (table.partitions(b) as u64, subscribers[b].len() as u64);
        (pb * sa)
            .cmp(&(pa * sb))
            .then(sa.cmp(&sb))
            .then(table.ids[a].cmp(&table.ids[b]))
    });

    // Free partitions to the least loaded subscriber (ties: first member).
    for &t in &order {
        let mut heap: BinaryHeap<Reverse<(usize, u32)>> = subscribers[t]
            .iter()
            .map(|&m| Reverse((size[m as usize], m)))
            .collect();
        for owner in table.owner[t].iter_mut().filter(|o| **o == NOBODY) {
            let Reverse((s, m)) = heap.pop().expect("topic has subscribers");
            *owner = m;
            size[m as usize] = s + 1;
            heap.push(Reverse((s + 1, m)));
        }
    }

    // Kept partitions may leave some subscribers far ahead of others: move partitions from the
    // most to the least loaded subscriber of each topic while that narrows the gap.
    for _ in 0..MAX_BALANCE_PASSES {
        let mut moved = false;
        for &t in &order {
            if subscribers[t].len() >= 2 {
                moved |= balance_topic(table, t, &subscribers[t], &mut size);
            }
        }
        if !moved {
            break;
        }
    }
}

/// One topic's share of the balancing; true if it moved anything.
fn balance_topic(table: &mut Table, t: usize, subs: &[u32], size: &mut [usize]) -> bool {
    // Usually nothing to do: check that cheaply before building the per-member lists.
    let least = subs.iter().map(|&m| size[m as usize]).min().unwrap_or(0);
    let most = table.owner[t]
        .iter()
        .filter(|&&o| o != NOBODY)
        .map(|&o| size[o as usize])
        .max()
        .unwrap_or(0);
    if most <= least + 1 {
        return false;
    }
    // Partitions of this topic held by each subscriber (position in `subs`), highest last: a
    // member gives up the partition it received last, else its highest one.
    let mut held: Vec<Vec<u32>> = vec![Vec::new(); subs.len()];
    let position = |m: u32| subs.binary_search(&m).ok();
    for (p, &o) in table.owner[t].iter().enumerate() {
        if let Some(i) = position(o) {
            held[i].push(p as u32);
        }
    }
    let mut moved = false;
    loop {
        // Most loaded subscriber that still holds some of this topic (ties: last member), and
        // least loaded subscriber (ties: first member).
        let mut from: Option<usize> = None;
        let mut to = 0usize;
        for i in 0..subs.len() {
            let s = size[subs[i] as usize];
            if !held[i].is_empty() && from.is_none_or(|f| s >= size[subs[f] as usize]) {
                from = Some(i);
            }
            if s < size[subs[to] as usize] {
                to = i;
            }
        }
        let Some(from) = from else { return moved };
        let (giver, taker) = (subs[from] as usize, subs[to] as usize);
        if size[giver] <= size[taker] + 1 {
            return moved;
        }
        let p = held[from].pop().expect("giver holds a partition");
        held[to].push(p);
        table.owner[t][p as usize] = taker as u32;
        size[giver] -= 1;
        size[taker] += 1;
        moved = true;
    }
}
