//! A group whose metadata record would not fit `__consumer_offsets` (its `max.message.bytes`)
//! keeps no state it could not write: the SyncGroup round fails as Kafka's does and the group
//! rebalances again.

use cairn_group::consumer_protocol::{encode_subscription, Subscription};
use cairn_group::records::{batch_size, decode_group_value, decode_key, RecordKey};
use cairn_group::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn cfg(max_record_batch_bytes: usize) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        max_record_batch_bytes,
        ..GroupConfig::default()
    }
}

/// A subscription padded with `user_data` to roughly `bytes`.
fn fat_sub(bytes: usize) -> Vec<u8> {
    encode_subscription(&Subscription {
        topics: vec!["t".into()],
        user_data: Some(vec![0xab; bytes]),
        generation_id: -1,
        ..Default::default()
    })
}

fn join_req(member: &str, instance: Option<&str>, metadata: Vec<u8>) -> JoinGroup {
    JoinGroup {
        group_id: "g".into(),
        member_id: member.into(),
        group_instance_id: instance.map(str::to_string),
        client_id: "c".into(),
        client_host: "/h".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), metadata)],
        api_version: 3,
    }
}

fn sync_req(member: &str, generation: i32, a: Vec<(String, Vec<u8>)>) -> SyncGroup {
    SyncGroup {
        group_id: "g".into(),
        member_id: member.into(),
        generation_id: generation,
        assignments: a,
        ..Default::default()
    }
}

fn join_reply(fx: &Effects, token: ReplyToken) -> Option<Result<JoinResponse, GroupError>> {
    fx.replies.iter().find_map(|(t, r)| match r {
        Reply::Join(j) if *t == token => Some(j.clone()),
        _ => None,
    })
}

fn sync_reply(fx: &Effects, token: ReplyToken) -> Option<Result<SyncResponse, GroupError>> {
    fx.replies.iter().find_map(|(t, r)| match r {
        Reply::Sync(s) if *t == token => Some(s.clone()),
        _ => None,
    })
}

/// `n` members with `meta_bytes` of metadata each join one round; returns the member ids
/// (leader first), the generation, and every record written so far.
fn join_round(
    c: &mut GroupCoordinator,
    n: usize,
    meta_bytes: usize,
) -> (Vec<String>, i32, Vec<Record>) {
    let mut log = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..n {
        let token = 100 + i as u64;
        let fx = c.join_group(0, token, join_req("", None, fat_sub(meta_bytes)));
        log.extend(fx.records.iter().cloned());
        tokens.push(token);
        // The first member's join completes at once (no delay, alone in the group): send
        // the others in while it is still preparing by making it rejoin below.
        if i == 0 {
            let j = join_reply(&fx, token).unwrap().unwrap();
            let fx = c.sync_group(0, 1, sync_req(&j.member_id, j.generation_id, vec![]));
            log.extend(fx.records.iter().cloned());
            assert!(sync_reply(&fx, 1).unwrap().is_ok(), "one small member fits");
        }
    }
    // Everyone but the first is parked in the join; the first rejoins to complete the round.
    let first = c.describe_group("g").unwrap().members[0].member_id.clone();
    let fx = c.join_group(1, 99, join_req(&first, None, fat_sub(meta_bytes)));
    log.extend(fx.records.iter().cloned());
    let mut ids = Vec::new();
    let mut generation = -1;
    let mut leader = String::new();
    for token in std::iter::once(99).chain(tokens.into_iter().skip(1)) {
        let j = join_reply(&fx, token).unwrap().unwrap();
        generation = j.generation_id;
        leader = j.leader.clone();
        ids.push(j.member_id);
    }
    ids.sort_by_key(|id| *id != leader);
    (ids, generation, log)
}

fn group_records(log: &[Record]) -> Vec<GroupValueSummary> {
    log.iter()
        .filter(|r| matches!(decode_key(&r.key), Ok(RecordKey::Group { .. })))
        .filter_map(|r| r.value.as_ref())
        .map(|v| {
            let g = decode_group_value(v).unwrap();
            GroupValueSummary {
                generation: g.generation,
                members: g.members.len(),
            }
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq)]
struct GroupValueSummary {
    generation: i32,
    members: usize,
}

#[test]
fn too_large_assignment_fails_every_parked_member_and_rebalances() {
    // Three members of ~20 KB each cannot be stored in 50 KB.
    let mut c = GroupCoordinator::new(cfg(50_000));
    let (ids, generation, mut log) = join_round(&mut c, 3, 20_000);
    assert_eq!(generation, 2);
    // Followers sync first (parked), then the leader brings the assignment.
    for (i, id) in ids.iter().enumerate().skip(1) {
        let fx = c.sync_group(2, 10 + i as u64, sync_req(id, generation, vec![]));
        assert!(fx.replies.is_empty(), "follower parked");
    }
    let plan = ids.iter().map(|id| (id.clone(), vec![1, 2, 3])).collect();
    let fx = c.sync_group(2, 10, sync_req(&ids[0], generation, plan));
    assert!(
        fx.records.is_empty(),
        "nothing that cannot be written is emitted"
    );
    log.extend(fx.records.iter().cloned());
    for i in 0..ids.len() {
        assert_eq!(
            sync_reply(&fx, 10 + i as u64),
            Some(Err(GroupError::UnknownServerError)),
            "member {i}"
        );
    }
    let d = c.describe_group("g").unwrap();
    assert_eq!(d.state, GroupState::PreparingRebalance);
    assert!(d.members.iter().all(|m| m.assignment.is_empty()));
    let last = c.rebalance_history("g").pop().unwrap();
    assert_eq!(last.outcome, RebalanceOutcome::InProgress);
    assert_eq!(last.cause.kind(), "other");
    // A member that syncs late is told to rejoin, as in any rebalance.
    let fx = c.sync_group(3, 20, sync_req(&ids[1], generation, vec![]));
    assert_eq!(
        sync_reply(&fx, 20),
        Some(Err(GroupError::RebalanceInProgress))
    );
    // The log holds only the written states: the one-member generation 1, never generation 2.
    assert_eq!(
        group_records(&log).last(),
        Some(&GroupValueSummary {
            generation: 1,
            members: 1
        })
    );
    let mut r = GroupCoordinator::new(cfg(50_000));
    for rec in &log {
        r.replay(4, rec.tag, &rec.key, rec.value.as_deref())
            .unwrap();
    }
    let _ = r.finish_load(4);
    let d = r.describe_group("g").unwrap();
    assert_eq!(
        (d.state, d.generation_id, d.members.len()),
        (GroupState::Stable, 1, 1)
    );
}

#[test]
fn leader_first_then_followers_are_sent_back_to_join() {
    let mut c = GroupCoordinator::new(cfg(50_000));
    let (ids, generation, _) = join_round(&mut c, 3, 20_000);
    let plan = ids.iter().map(|id| (id.clone(), vec![9])).collect();
    let fx = c.sync_group(2, 10, sync_req(&ids[0], generation, plan));
    assert_eq!(
        sync_reply(&fx, 10),
        Some(Err(GroupError::UnknownServerError))
    );
    assert!(fx.records.is_empty());
    for (i, id) in ids.iter().enumerate().skip(1) {
        let fx = c.sync_group(2, 10 + i as u64, sync_req(id, generation, vec![]));
        assert_eq!(
            sync_reply(&fx, 10 + i as u64),
            Some(Err(GroupError::RebalanceInProgress))
        );
    }
    // Everyone rejoins: a new generation, which fails the same way (Kafka loops too).
    let mut fx = Effects::default();
    for (i, id) in ids.iter().enumerate() {
        fx = c.join_group(3, 30 + i as u64, join_req(id, None, fat_sub(20_000)));
    }
    let j = join_reply(&fx, 30 + ids.len() as u64 - 1).unwrap().unwrap();
    assert_eq!(j.generation_id, generation + 1);
}

#[test]
fn the_limit_is_the_batch_the_log_would_be_given() {
    // Find the exact size of the Stable record, then run the same round with the limit at
    // that size (fits) and one byte below (refused).
    let mut probe = GroupCoordinator::new(cfg(usize::MAX));
    let (ids, generation, _) = join_round(&mut probe, 2, 1_000);
    let plan: Vec<(String, Vec<u8>)> = ids.iter().map(|id| (id.clone(), vec![7])).collect();
    for id in &ids[1..] {
        let _ = probe.sync_group(2, 11, sync_req(id, generation, vec![]));
    }
    let fx = probe.sync_group(2, 10, sync_req(&ids[0], generation, plan));
    assert_eq!(fx.records.len(), 1);
    let size = batch_size(&fx.records);
    for (limit, fits) in [(size, true), (size - 1, false)] {
        let mut c = GroupCoordinator::with_id_seed(cfg(limit), 0);
        let (ids, generation, _) = join_round(&mut c, 2, 1_000);
        let plan: Vec<(String, Vec<u8>)> = ids.iter().map(|id| (id.clone(), vec![7])).collect();
        for id in &ids[1..] {
            let _ = c.sync_group(2, 11, sync_req(id, generation, vec![]));
        }
        let fx = c.sync_group(2, 10, sync_req(&ids[0], generation, plan));
        assert_eq!(fx.records.len(), usize::from(fits), "limit {limit}");
        assert_eq!(sync_reply(&fx, 10).unwrap().is_ok(), fits, "limit {limit}");
        let state = c.describe_group("g").unwrap().state;
        let want = if fits {
            GroupState::Stable
        } else {
            GroupState::PreparingRebalance
        };
        assert_eq!(state, want, "limit {limit}");
    }
}

#[test]
fn static_replacement_that_cannot_be_written_is_undone() {
    // A static member alone: its record fits. Its restart brings metadata too large to store.
    let mut c = GroupCoordinator::new(cfg(10_000));
    let fx = c.join_group(0, 1, join_req("", Some("i1"), fat_sub(100)));
    let j = join_reply(&fx, 1).unwrap().unwrap();
    let fx = c.sync_group(
        0,
        2,
        sync_req(&j.member_id, 1, vec![(j.member_id.clone(), vec![4])]),
    );
    assert_eq!(fx.records.len(), 1);
    let fx = c.join_group(1, 3, join_req("", Some("i1"), fat_sub(20_000)));
    assert_eq!(
        join_reply(&fx, 3),
        Some(Err(GroupError::UnknownServerError))
    );
    assert!(fx.records.is_empty());
    // The old member is still the member, with its assignment, and still works.
    let d = c.describe_group("g").unwrap();
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, j.member_id);
    assert_eq!(d.members[0].assignment, vec![4]);
    assert_eq!(d.leader.as_deref(), Some(j.member_id.as_str()));
    let hb = Heartbeat {
        group_id: "g".into(),
        member_id: j.member_id.clone(),
        group_instance_id: Some("i1".into()),
        generation_id: 1,
    };
    assert_eq!(c.heartbeat(2, hb), Ok(()));
    // A restart with metadata that fits replaces it as before.
    let fx = c.join_group(3, 4, join_req("", Some("i1"), fat_sub(100)));
    let j2 = join_reply(&fx, 4).unwrap().unwrap();
    assert_ne!(j2.member_id, j.member_id);
    assert_eq!(fx.records.len(), 1);
}

#[test]
fn commit_too_large_to_store_is_refused_whole() {
    // 40 partitions with 1 KB of metadata each: ~45 KB of records against a 20 KB limit.
    let mut c = GroupCoordinator::new(cfg(20_000));
    let commit = |n: i32, meta: usize| OffsetCommit {
        group_id: "s".into(),
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        retention_time_ms: -1,
        api_version: 8,
        partitions: (0..n)
            .map(|p| CommitPartition {
                topic: "t".into(),
                partition: p,
                offset: 10 + i64::from(p),
                leader_epoch: -1,
                metadata: Some("m".repeat(meta)),
            })
            .collect(),
    };
    let mut big = commit(40, 1_000);
    // One partition's metadata is over offset.metadata.max.bytes: that error is kept.
    big.partitions[0].metadata = Some("m".repeat(5_000));
    let (res, fx) = c.commit_offsets(0, big);
    assert_eq!(res.error, None);
    assert_eq!(res.partitions[0].2, Err(GroupError::OffsetMetadataTooLarge));
    assert!(res.partitions[1..]
        .iter()
        .all(|(_, _, r)| *r == Err(GroupError::InvalidCommitOffsetSize)));
    // Only the new simple group's own record is written, and no offset is kept.
    assert_eq!(fx.records.len(), 1);
    assert!(batch_size(&fx.records) <= 20_000);
    assert!(c.fetch_offsets("s", None).partitions.is_empty());
    // A commit that fits is stored as before.
    let (res, fx) = c.commit_offsets(1, commit(10, 1_000));
    assert!(res.partitions.iter().all(|(_, _, r)| r.is_ok()));
    assert_eq!(fx.records.len(), 10);
    assert_eq!(c.fetch_offsets("s", None).partitions.len(), 10);
}
