//! The server-side assignor's own cost, measured in process: `uniform` over a large consumer
//! group (by default 1,000 members, 1,000 topics, 50,000 partitions, everyone subscribed to
//! everything), fresh and after one member joins; beside it, in the same run, a baseline that
//! only deals the same partitions out round-robin (no stickiness, no balancing), so the ratio
//! says what the assignor's logic costs on this machine now.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cairn_group::consumer::assignor::{self, MemberSpec};
use cairn_group::consumer::{Assignment, TopicId};

pub struct AssignorRun {
    pub members: usize,
    pub topics: usize,
    pub partitions: usize,
    /// Medians.
    pub fresh: Duration,
    pub join: Duration,
    pub baseline: Duration,
    /// Partitions that changed owner when one member joined.
    pub moved: usize,
}

fn topic_id(i: usize) -> TopicId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    id
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The baseline: partitions dealt to members in turn.
fn round_robin(
    members: &[MemberSpec],
    topics: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::new()))
        .collect();
    let ids: Vec<&String> = members.iter().map(|m| &m.member_id).collect();
    let mut i = 0;
    for (t, n) in topics {
        for p in 0..*n {
            out.get_mut(ids[i % ids.len()])
                .expect("member")
                .entry(*t)
                .or_default()
                .insert(p);
            i += 1;
        }
    }
    out
}

pub fn run(members: usize, topics: usize, partitions: usize, repeat: usize) -> AssignorRun {
    let per_topic = (partitions / topics.max(1)).max(1) as i32;
    let topic_map: BTreeMap<TopicId, i32> = (0..topics).map(|i| (topic_id(i), per_topic)).collect();
    let all: BTreeSet<TopicId> = topic_map.keys().copied().collect();
    let spec = |i: usize, current: Assignment| MemberSpec {
        member_id: format!("member-{i:05}"),
        instance_id: None,
        rack_id: None,
        topics: all.clone(),
        current,
    };
    let mut specs: Vec<MemberSpec> = (0..members).map(|i| spec(i, Assignment::new())).collect();
    let uniform = assignor::by_name("uniform").expect("uniform");
    let mut fresh = Vec::new();
    let mut baseline = Vec::new();
    let mut result = BTreeMap::new();
    for _ in 0..repeat.max(1) {
        // Taken in turns so that both see the same machine.
        let t = Instant::now();
        result = uniform.assign(&specs, &topic_map);
        fresh.push(t.elapsed());
        let t = Instant::now();
        let rr = round_robin(&specs, &topic_map);
        baseline.push(t.elapsed());
        std::hint::black_box(rr);
    }
    // One member joins a group that holds the fresh assignment.
    for s in &mut specs {
        s.current = result.get(&s.member_id).cloned().unwrap_or_default();
    }
    specs.push(spec(members, Assignment::new()));
    let mut join = Vec::new();
    let mut after = BTreeMap::new();
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        after = uniform.assign(&specs, &topic_map);
        join.push(t.elapsed());
    }
    let owner = |a: &BTreeMap<String, Assignment>| -> BTreeMap<(TopicId, i32), String> {
        a.iter()
            .flat_map(|(m, parts)| {
                parts
                    .iter()
                    .flat_map(move |(t, ps)| ps.iter().map(move |p| ((*t, *p), m.clone())))
            })
            .collect()
    };
    let (before, now) = (owner(&result), owner(&after));
    let moved = now
        .iter()
        .filter(|(k, m)| before.get(*k) != Some(*m))
        .count();
    AssignorRun {
        members,
        topics,
        partitions: topics * per_topic as usize,
        fresh: median(fresh),
        join: median(join),
        baseline: median(baseline),
        moved,
    }
}

pub fn print(r: &AssignorRun) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "assignor: uniform over {} members, {} topics, {} partitions (everyone subscribed to every topic)",
        r.members, r.topics, r.partitions
    );
    println!(
        "  fresh assignment   {:>8.2} ms   (round-robin baseline {:.2} ms, ratio {:.2})",
        ms(r.fresh),
        ms(r.baseline),
        ms(r.fresh) / ms(r.baseline).max(1e-9)
    );
    println!(
        "  one member joins   {:>8.2} ms   ({} partitions move to it)",
        ms(r.join),
        r.moved
    );
}

pub fn to_json(r: &AssignorRun) -> serde_json::Value {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    serde_json::json!({
        "members": r.members,
        "topics": r.topics,
        "partitions": r.partitions,
        "fresh_ms": ms(r.fresh),
        "join_ms": ms(r.join),
        "baseline_ms": ms(r.baseline),
        "moved": r.moved,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_small_run_assigns_and_counts_moves() {
        let r = super::run(10, 10, 100, 1);
        assert_eq!(r.partitions, 100);
        // The eleventh member takes about a tenth: at least 9 partitions move, at most 10.
        assert!((9..=10).contains(&r.moved), "{}", r.moved);
    }
}
