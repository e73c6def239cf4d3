//! `range`: each topic's partitions cut into contiguous ranges, one per subscriber.
//!
//! As in Kafka 4.x's server-side range assignor, the result depends only on who subscribes to
//! what, not on the current assignment: members are ranked static members first (by instance
//! id), then the rest by member id, and every topic is cut in that rank order. Members that
//! subscribe to the same topics with the same partition counts thus get the same partition
//! numbers of each (co-partitioning), and a static member that rejoins with a new member id gets
//! its old ranges back.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::{Assignment, Assignor, MemberSpec, Table};
use crate::consumer::TopicId;

/// Kafka's server-side `range` assignor.
#[derive(Debug, Default, Clone, Copy)]
pub struct RangeAssignor;

/// Static members first, ordered by instance id; then dynamic members by member id.
fn rank(a: &MemberSpec, b: &MemberSpec) -> Ordering {
    match (&a.instance_id, &b.instance_id) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.member_id.cmp(&b.member_id)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    }
}

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(
        &self,
        members: &[MemberSpec],
        topics: &BTreeMap<TopicId, i32>,
    ) -> BTreeMap<String, Assignment> {
        let mut table = Table::new(topics);
        let mut ranked: Vec<usize> = (0..members.len()).collect();
        ranked.sort_by(|&a, &b| rank(&members[a], &members[b]));

        // Subscribers of each topic, in rank order.
        let mut subscribers: Vec<Vec<u32>> = vec![Vec::new(); table.ids.len()];
        for &m in &ranked {
            for t in table.indices(&members[m].topics) {
                subscribers[t].push(m as u32);
            }
        }

        for (t, subs) in subscribers.iter().enumerate() {
            if subs.is_empty() {
                continue;
            }
            let n = table.partitions(t);
            let quota = n / subs.len();
            let extra = n % subs.len();
            let mut start = 0;
            for (i, &m) in subs.iter().enumerate() {
                let end = start + quota + usize::from(i < extra);
                table.owner[t][start..end].fill(m);
                start = end;
            }
        }
        table.into_assignments(members)
    }
}
