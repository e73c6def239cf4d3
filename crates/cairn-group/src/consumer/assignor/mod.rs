//! Server-side assignors (`group.consumer.assignors`): `uniform` and `range`.
//!
//! Both are pure functions of the members' subscriptions, their current target assignments and
//! the partition counts, so the coordinator can rerun them on replay and get the same answer.

mod range;
mod uniform;

use std::collections::{BTreeMap, BTreeSet};

use super::{Assignment, TopicId};

pub use range::RangeAssignor;
pub use uniform::UniformAssignor;

/// One member as an assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// Topics it subscribes to (already resolved from names/regex by the caller; only topics that exist).
    pub topics: BTreeSet<TopicId>,
    /// Its current target assignment (for stickiness); may name topics/partitions that no longer exist or it no longer subscribes to: ignore those.
    pub current: Assignment,
}

pub trait Assignor: Send + Sync {
    fn name(&self) -> &'static str;
    /// `members` sorted by member_id; `topics`: partition count of every topic some member subscribes to.
    /// Returns one entry per member (possibly empty assignment). Must be deterministic.
    fn assign(
        &self,
        members: &[MemberSpec],
        topics: &BTreeMap<TopicId, i32>,
    ) -> BTreeMap<String, Assignment>;
}

static UNIFORM: UniformAssignor = UniformAssignor;
static RANGE: RangeAssignor = RangeAssignor;

/// The assignor called `name` ("uniform", "range"), if the broker has it.
pub fn by_name(name: &str) -> Option<&'static dyn Assignor> {
    match name {
        "uniform" => Some(&UNIFORM),
        "range" => Some(&RANGE),
        _ => None,
    }
}

/// Every assignor the broker offers; `group.consumer.assignors` may name only these.
pub const NAMES: [&str; 2] = ["uniform", "range"];

/// No member owns the partition (yet).
const NOBODY: u32 = u32::MAX;

/// The topics an assignment can use, numbered in id order, with who owns each partition.
/// Working on indices and flat vectors keeps large groups (thousands of members and topics)
/// fast; maps are built only once, for the answer.
struct Table {
    ids: Vec<TopicId>,
    /// `owner[t][p]`: index of the member given partition `p` of topic `t`, or `NOBODY`.
    owner: Vec<Vec<u32>>,
}

impl Table {
    /// Topics with a positive partition count; others have nothing to assign.
    fn new(topics: &BTreeMap<TopicId, i32>) -> Self {
        let mut ids = Vec::with_capacity(topics.len());
        let mut owner = Vec::with_capacity(topics.len());
        for (id, &count) in topics {
            if count > 0 {
                ids.push(*id);
                owner.push(vec![NOBODY; count as usize]);
            }
        }
        Table { ids, owner }
    }

    fn index(&self, id: &TopicId) -> Option<usize> {
        self.ids.binary_search(id).ok()
    }

    /// Indices of the topics in `ids` that the table has, walking both sorted lists together
    /// (cheaper than a search per topic when members subscribe to thousands of topics).
    fn indices<'a>(&'a self, ids: &'a BTreeSet<TopicId>) -> impl Iterator<Item = usize> + 'a {
        let mut next = 0;
        ids.iter().filter_map(move |id| {
            while next < self.ids.len() && self.ids[next] < *id {
                next += 1;
            }
            (next < self.ids.len() && self.ids[next] == *id).then_some(next)
        })
    }

    fn partitions(&self, t: usize) -> usize {
        self.owner[t].len()
    }

    /// The answer: one entry per member, in the map form the coordinator stores.
    fn into_assignments(self, members: &[MemberSpec]) -> BTreeMap<String, Assignment> {
        let mut per_member: Vec<Vec<(usize, Vec<i32>)>> = vec![Vec::new(); members.len()];
        for (t, owners) in self.owner.iter().enumerate() {
            for (p, &m) in owners.iter().enumerate() {
                if m == NOBODY {
                    continue;
                }
                let topics = &mut per_member[m as usize];
                match topics.last_mut() {
                    Some((last, parts)) if *last == t => parts.push(p as i32),
                    _ => topics.push((t, vec![p as i32])),
                }
            }
        }
        members
            .iter()
            .zip(per_member)
            .map(|(member, topics)| {
                let assignment = topics
                    .into_iter()
                    .map(|(t, parts)| (self.ids[t], parts.into_iter().collect()))
                    .collect();
                (member.member_id.clone(), assignment)
            })
            .collect()
    }
}
