//! Rule-by-rule tests of the classic protocol and offset manager through the public façade.

use cairn_group::consumer_protocol::{encode_subscription, Subscription};
use cairn_group::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn cfg() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

fn sub(topics: &[&str]) -> Vec<u8> {
    encode_subscription(&Subscription {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        generation_id: -1,
        ..Default::default()
    })
}

fn join_req(group: &str, member: &str, version: i16) -> JoinGroup {
    JoinGroup {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/h".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), sub(&["t"]))],
        api_version: version,
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

fn commit(group: &str, member: &str, generation: i32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        generation_id: generation,
        retention_time_ms: -1,
        api_version: 8,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: 3,
            metadata: Some("m".into()),
        }],
    }
}

fn sync_req(group: &str, member: &str, generation: i32, a: Vec<(String, Vec<u8>)>) -> SyncGroup {
    SyncGroup {
        group_id: group.into(),
        member_id: member.into(),
        generation_id: generation,
        assignments: a,
        ..Default::default()
    }
}

/// One member joins (v3, no MEMBER_ID_REQUIRED) and syncs: a Stable group at generation 1.
fn stable_single(c: &mut GroupCoordinator) -> String {
    let fx = c.join_group(0, 1, join_req("g", "", 3));
    let j = join_reply(&fx, 1).unwrap().unwrap();
    assert_eq!(j.generation_id, 1);
    assert_eq!(j.leader, j.member_id);
    let fx = c.sync_group(
        0,
        2,
        sync_req("g", &j.member_id, 1, vec![(j.member_id.clone(), vec![7])]),
    );
    assert_eq!(sync_reply(&fx, 2).unwrap().unwrap().assignment, vec![7]);
    assert_eq!(fx.records.len(), 1, "leader sync persists the group");
    j.member_id
}

#[test]
fn member_id_required_then_join() {
    let mut c = GroupCoordinator::new(cfg());
    let fx = c.join_group(0, 1, join_req("g", "", 4));
    let id = match join_reply(&fx, 1).unwrap() {
        Err(GroupError::MemberIdRequired { member_id }) => member_id,
        other => panic!("{other:?}"),
    };
    assert!(id.starts_with("c-"));
    assert_eq!(fx.records.len(), 1, "new group persisted");
    let fx = c.join_group(1, 2, join_req("g", &id, 4));
    let j = join_reply(&fx, 2).unwrap().unwrap();
    assert_eq!((j.member_id.as_str(), j.generation_id), (id.as_str(), 1));
    assert_eq!(j.members.len(), 1);
}

#[test]
fn validation_errors() {
    let mut c = GroupCoordinator::new(cfg());
    let mut r = join_req("", "", 5);
    assert_eq!(
        join_reply(&c.join_group(0, 1, r.clone()), 1),
        Some(Err(GroupError::InvalidGroupId))
    );
    r.group_id = "g".into();
    r.session_timeout_ms = 1000;
    assert_eq!(
        join_reply(&c.join_group(0, 1, r.clone()), 1),
        Some(Err(GroupError::InvalidSessionTimeout))
    );
    r.session_timeout_ms = SESSION;
    r.member_id = "ghost".into();
    assert_eq!(
        join_reply(&c.join_group(0, 1, r.clone()), 1),
        Some(Err(GroupError::UnknownMemberId))
    );
    r.member_id = String::new();
    r.protocols.clear();
    assert_eq!(
        join_reply(&c.join_group(0, 1, r), 1),
        Some(Err(GroupError::InconsistentGroupProtocol))
    );
    assert!(c.list_groups().is_empty());
}

#[test]
fn inconsistent_protocol_against_members() {
    let mut c = GroupCoordinator::new(cfg());
    stable_single(&mut c);
    let mut r = join_req("g", "", 3);
    r.protocols = vec![("roundrobin".into(), vec![])];
    assert_eq!(
        join_reply(&c.join_group(0, 9, r.clone()), 9),
        Some(Err(GroupError::InconsistentGroupProtocol))
    );
    r.protocol_type = "connect".into();
    r.protocols = vec![("range".into(), vec![])];
    assert_eq!(
        join_reply(&c.join_group(0, 9, r), 9),
        Some(Err(GroupError::InconsistentGroupProtocol))
    );
}

#[test]
fn heartbeat_and_sync_errors() {
    let mut c = GroupCoordinator::new(cfg());
    let hb = |m: &str, g: i32| Heartbeat {
        group_id: "g".into(),
        member_id: m.into(),
        group_instance_id: None,
        generation_id: g,
    };
    assert_eq!(c.heartbeat(0, hb("x", 0)), Err(GroupError::UnknownMemberId));
    let m = stable_single(&mut c);
    assert_eq!(c.heartbeat(1, hb(&m, 1)), Ok(()));
    assert_eq!(
        c.heartbeat(1, hb(&m, 0)),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.heartbeat(1, hb("other", 1)),
        Err(GroupError::UnknownMemberId)
    );
    let fx = c.sync_group(1, 5, sync_req("g", &m, 2, vec![]));
    assert_eq!(sync_reply(&fx, 5), Some(Err(GroupError::IllegalGeneration)));
    let mut s = sync_req("g", &m, 1, vec![]);
    s.protocol_name = Some("roundrobin".into());
    assert_eq!(
        sync_reply(&c.sync_group(1, 6, s), 6),
        Some(Err(GroupError::InconsistentGroupProtocol))
    );
    // Stable follower/leader sync returns the stored assignment.
    let fx = c.sync_group(1, 7, sync_req("g", &m, 1, vec![]));
    assert_eq!(sync_reply(&fx, 7).unwrap().unwrap().assignment, vec![7]);
}

#[test]
fn second_member_triggers_rebalance_and_heartbeat_sees_it() {
    let mut c = GroupCoordinator::new(cfg());
    let m1 = stable_single(&mut c);
    let fx = c.join_group(10, 3, join_req("g", "", 3));
    assert!(fx.replies.is_empty(), "new member parks");
    assert_eq!(
        c.describe_group("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    let hb = Heartbeat {
        group_id: "g".into(),
        member_id: m1.clone(),
        group_instance_id: None,
        generation_id: 1,
    };
    assert_eq!(c.heartbeat(11, hb), Err(GroupError::RebalanceInProgress));
    // Commits for the old generation are still allowed while preparing.
    let (r, _) = c.commit_offsets(11, commit("g", &m1, 1, 5));
    assert_eq!(r.error, None);
    let fx = c.join_group(12, 4, join_req("g", &m1, 3));
    let a = join_reply(&fx, 3).unwrap().unwrap();
    let b = join_reply(&fx, 4).unwrap().unwrap();
    assert_eq!((a.generation_id, b.generation_id), (2, 2));
    assert_eq!(b.leader, m1);
    assert_eq!(b.members.len(), 2);
    assert!(a.members.is_empty());
    // CompletingRebalance: commits refused, follower sync parks until the leader's arrives.
    let (r, _) = c.commit_offsets(13, commit("g", &m1, 2, 6));
    assert_eq!(r.error, Some(GroupError::RebalanceInProgress));
    let fx = c.sync_group(13, 5, sync_req("g", &a.member_id, 2, vec![]));
    assert!(fx.replies.is_empty());
    let fx = c.sync_group(14, 6, sync_req("g", &m1, 2, vec![(m1.clone(), vec![1])]));
    assert_eq!(
        sync_reply(&fx, 5).unwrap().unwrap().assignment,
        Vec::<u8>::new()
    );
    assert_eq!(sync_reply(&fx, 6).unwrap().unwrap().assignment, vec![1]);
    assert_eq!(c.describe_group("g").unwrap().state, GroupState::Stable);
    let (r, _) = c.commit_offsets(15, commit("g", &m1, 1, 6));
    assert_eq!(r.error, Some(GroupError::IllegalGeneration));
}

#[test]
fn session_expiry_and_leave() {
    let mut c = GroupCoordinator::new(cfg());
    let m = stable_single(&mut c);
    assert_eq!(c.next_deadline(), Some(SESSION as i64));
    let fx = c.tick(SESSION as i64);
    // The only member expired: the group rebalances to Empty and is persisted.
    let d = c.describe_group("g").unwrap();
    assert_eq!((d.state, d.generation_id), (GroupState::Empty, 2));
    assert_eq!(fx.records.len(), 1);
    let (r, _) = c.leave_group(
        1,
        LeaveGroup {
            group_id: "g".into(),
            members: vec![LeavingMember {
                member_id: m,
                group_instance_id: None,
            }],
        },
    );
    assert_eq!(r.members[0].1, Err(GroupError::UnknownMemberId));
    let (r, _) = c.leave_group(
        1,
        LeaveGroup {
            group_id: "nope".into(),
            members: vec![],
        },
    );
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
}

#[test]
fn initial_rebalance_delay_extends() {
    let mut c = GroupCoordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 3000,
        ..cfg()
    });
    let fx = c.join_group(0, 1, join_req("g", "", 3));
    assert!(fx.replies.is_empty());
    assert_eq!(c.next_deadline(), Some(3000));
    let _ = c.join_group(2000, 2, join_req("g", "", 3));
    let fx = c.tick(3000);
    assert!(
        fx.replies.is_empty(),
        "a member joined during the delay: extended"
    );
    assert_eq!(c.next_deadline(), Some(6000));
    let fx = c.tick(6000);
    assert_eq!(fx.replies.len(), 2);
    assert_eq!(c.describe_group("g").unwrap().generation_id, 1);
}

#[test]
fn rebalance_timeout_drops_members_that_did_not_rejoin() {
    let mut c = GroupCoordinator::new(cfg());
    let m1 = stable_single(&mut c);
    let fx = c.join_group(100, 3, join_req("g", "", 3));
    assert!(fx.replies.is_empty());
    // m1 keeps heartbeating but never rejoins.
    let hb = Heartbeat {
        group_id: "g".into(),
        member_id: m1,
        group_instance_id: None,
        generation_id: 1,
    };
    assert_eq!(c.heartbeat(5000, hb), Err(GroupError::RebalanceInProgress));
    let fx = c.tick(100 + REBALANCE as i64);
    let j = join_reply(&fx, 3).unwrap().unwrap();
    assert_eq!(j.leader, j.member_id);
    assert_eq!(c.describe_group("g").unwrap().members.len(), 1);
}

#[test]
fn sync_timeout_removes_silent_members() {
    let mut c = GroupCoordinator::new(cfg());
    let fx = c.join_group(0, 1, join_req("g", "", 3));
    let j = join_reply(&fx, 1).unwrap().unwrap();
    assert_eq!(
        c.describe_group("g").unwrap().state,
        GroupState::CompletingRebalance
    );
    let _ = c.heartbeat(
        5_000,
        Heartbeat {
            group_id: "g".into(),
            member_id: j.member_id.clone(),
            group_instance_id: None,
            generation_id: 1,
        },
    );
    let fx = c.tick(REBALANCE as i64);
    let d = c.describe_group("g").unwrap();
    assert_eq!((d.state, d.members.len()), (GroupState::Empty, 0));
    assert_eq!(fx.records.len(), 1);
}

#[test]
fn new_member_guard() {
    let mut c = GroupCoordinator::new(GroupConfig {
        new_member_join_timeout_ms: 1_000,
        ..cfg()
    });
    let m1 = stable_single(&mut c);
    let _ = c.join_group(0, 3, join_req("g", "", 3));
    // m1 keeps heartbeating, so the join phase waits for the rebalance timeout;
    // the new member is expired by the guard first.
    let _ = c.heartbeat(
        500,
        Heartbeat {
            group_id: "g".into(),
            member_id: m1,
            group_instance_id: None,
            generation_id: 1,
        },
    );
    let fx = c.tick(1_000);
    assert_eq!(join_reply(&fx, 3), Some(Err(GroupError::UnknownMemberId)));
}

#[test]
fn static_member_replacement_keeps_generation() {
    let mut c = GroupCoordinator::new(cfg());
    let mut r = join_req("g", "", 5);
    r.group_instance_id = Some("i1".into());
    let fx = c.join_group(0, 1, r.clone());
    let j = join_reply(&fx, 1).unwrap().unwrap();
    assert!(j.member_id.starts_with("i1-"));
    let _ = c.sync_group(
        0,
        2,
        sync_req("g", &j.member_id, 1, vec![(j.member_id.clone(), vec![4])]),
    );
    // Restart: a new member id for the same instance, no rebalance.
    let fx = c.join_group(1, 3, r.clone());
    let j2 = join_reply(&fx, 3).unwrap().unwrap();
    assert_ne!(j2.member_id, j.member_id);
    assert_eq!(j2.generation_id, 1);
    assert!(j2.skip_assignment);
    assert_eq!(fx.records.len(), 1);
    let fx = c.sync_group(1, 4, sync_req("g", &j2.member_id, 1, vec![]));
    assert_eq!(sync_reply(&fx, 4).unwrap().unwrap().assignment, vec![4]);
    // The old identity is fenced.
    let hb = Heartbeat {
        group_id: "g".into(),
        member_id: j.member_id.clone(),
        group_instance_id: Some("i1".into()),
        generation_id: 1,
    };
    assert_eq!(c.heartbeat(2, hb), Err(GroupError::FencedInstanceId));
    // The admin removes the static member by instance id alone.
    let (res, _) = c.leave_group(
        3,
        LeaveGroup {
            group_id: "g".into(),
            members: vec![LeavingMember {
                member_id: String::new(),
                group_instance_id: Some("i1".into()),
            }],
        },
    );
    assert_eq!(res.members[0].1, Ok(()));
    assert_eq!(c.describe_group("g").unwrap().state, GroupState::Empty);
}

#[test]
fn group_max_size() {
    let mut c = GroupCoordinator::new(GroupConfig {
        max_size: 1,
        ..cfg()
    });
    stable_single(&mut c);
    let fx = c.join_group(0, 9, join_req("g", "", 3));
    assert_eq!(
        join_reply(&fx, 9),
        Some(Err(GroupError::GroupMaxSizeReached))
    );
}

#[test]
fn simple_group_commits_and_fetch() {
    let mut c = GroupCoordinator::new(cfg());
    let (r, fx) = c.commit_offsets(5, commit("s", "", 1, 1));
    assert_eq!(r.error, Some(GroupError::IllegalGeneration));
    assert!(fx.records.is_empty());
    let mut v9 = commit("s", "", 1, 1);
    v9.api_version = 9;
    assert_eq!(
        c.commit_offsets(5, v9).0.error,
        Some(GroupError::GroupIdNotFound)
    );
    let (r, fx) = c.commit_offsets(5, commit("s", "", -1, 42));
    assert_eq!(r.partitions[0].2, Ok(()));
    assert_eq!(fx.records.len(), 2, "simple group record + offset");
    let f = c.fetch_offsets("s", Some(&[("t".into(), 0), ("t".into(), 1)]));
    assert_eq!(
        (f.partitions[0].offset, f.partitions[0].leader_epoch),
        (42, 3)
    );
    assert_eq!(f.partitions[1].offset, -1);
    assert_eq!(c.fetch_offsets("s", None).partitions.len(), 1);
    assert!(c.fetch_offsets("none", None).partitions.is_empty());
    let listing = c.list_groups();
    assert_eq!(listing[0].protocol_type, "");
}

#[test]
fn metadata_too_large_counts_utf16_units() {
    let mut c = GroupCoordinator::new(GroupConfig {
        offset_metadata_max_bytes: 2,
        ..cfg()
    });
    let mut req = commit("s", "", -1, 1);
    req.partitions[0].metadata = Some("éé".into()); // 4 bytes, 2 UTF-16 units: fine
    req.partitions.push(CommitPartition {
        topic: "t".into(),
        partition: 1,
        offset: 1,
        leader_epoch: -1,
        metadata: Some("abc".into()),
    });
    let (r, fx) = c.commit_offsets(0, req);
    assert_eq!(r.partitions[0].2, Ok(()));
    assert_eq!(r.partitions[1].2, Err(GroupError::OffsetMetadataTooLarge));
    assert_eq!(fx.records.len(), 2);
}

#[test]
fn commit_validation_order() {
    let mut c = GroupCoordinator::new(cfg());
    let m = stable_single(&mut c);
    assert_eq!(
        c.commit_offsets(1, commit("g", "", -1, 1)).0.error,
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.commit_offsets(1, commit("g", "zzz", 1, 1)).0.error,
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        c.commit_offsets(1, commit("g", &m, 7, 1)).0.error,
        Some(GroupError::IllegalGeneration)
    );
    assert_eq!(c.commit_offsets(1, commit("g", &m, 1, 1)).0.error, None);
}

#[test]
fn delete_groups_and_offsets() {
    let mut c = GroupCoordinator::new(cfg());
    let m = stable_single(&mut c);
    let _ = c.commit_offsets(1, commit("g", &m, 1, 9));
    let (r, _) = c.delete_groups(1, &["g".into(), "nope".into()]);
    assert_eq!(r[0].1, Err(GroupError::NonEmptyGroup));
    assert_eq!(r[1].1, Err(GroupError::GroupIdNotFound));
    // Stable consumer group: subscribed topic is protected, others can go.
    let (r, _) = c.delete_offsets(1, "g", &[("t".into(), 0), ("u".into(), 0)]);
    let r = r.unwrap();
    assert_eq!(r[0].2, Err(GroupError::GroupSubscribedToTopic));
    assert_eq!(r[1].2, Ok(()));
    let _ = c.leave_group(
        2,
        LeaveGroup {
            group_id: "g".into(),
            members: vec![LeavingMember {
                member_id: m,
                group_instance_id: None,
            }],
        },
    );
    let (r, fx) = c.delete_groups(3, &["g".into()]);
    assert_eq!(r[0].1, Ok(()));
    assert_eq!(fx.records.len(), 2);
    assert!(fx.records.iter().all(|r| r.value.is_none()));
    assert!(c.describe_group("g").is_none());
}

#[test]
fn topic_events() {
    let mut c = GroupCoordinator::new(cfg());
    let m = stable_single(&mut c);
    let _ = c.commit_offsets(1, commit("g", &m, 1, 9));
    let fx = c.on_topic_partitions_changed(2, "other");
    assert!(fx.is_empty());
    let _ = c.on_topic_partitions_changed(2, "t");
    assert_eq!(
        c.describe_group("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    let fx = c.on_topic_deleted(3, "t");
    assert_eq!(fx.records.len(), 1);
    assert_eq!(c.fetch_offsets("g", None).partitions.len(), 0);
}

#[test]
fn retention_for_empty_and_simple_groups() {
    let mut c = GroupCoordinator::new(GroupConfig {
        offsets_retention_ms: 1_000,
        offsets_retention_check_interval_ms: 100,
        ..cfg()
    });
    let _ = c.commit_offsets(0, commit("s", "", -1, 1));
    let m = stable_single(&mut c);
    let _ = c.commit_offsets(0, commit("g", &m, 1, 1));
    let _ = c.tick(1_000);
    assert!(
        c.describe_group("s").is_none(),
        "simple group expired after retention and was deleted"
    );
    assert_eq!(
        c.fetch_offsets("g", None).partitions.len(),
        1,
        "stable group keeps subscribed offsets"
    );
    let _ = c.heartbeat(
        1_000,
        Heartbeat {
            group_id: "g".into(),
            member_id: m.clone(),
            group_instance_id: None,
            generation_id: 1,
        },
    );
    let _ = c.leave_group(
        5_000,
        LeaveGroup {
            group_id: "g".into(),
            members: vec![LeavingMember {
                member_id: m,
                group_instance_id: None,
            }],
        },
    );
    let _ = c.tick(5_500);
    assert_eq!(
        c.fetch_offsets("g", None).partitions.len(),
        1,
        "clock starts when the group became Empty"
    );
    let fx = c.tick(6_000);
    assert!(c.describe_group("g").is_none());
    assert_eq!(fx.records.len(), 2);
}

#[test]
fn replay_rebuilds_state() {
    let mut c = GroupCoordinator::new(cfg());
    let mut log: Vec<Record> = Vec::new();
    let fx = c.join_group(0, 1, join_req("g", "", 3));
    log.extend(fx.records);
    let m = c.describe_group("g").unwrap().members[0].member_id.clone();
    log.extend(
        c.sync_group(0, 2, sync_req("g", &m, 1, vec![(m.clone(), vec![5])]))
            .records,
    );
    let mut req = commit("g", &m, 1, 77);
    req.retention_time_ms = 10_000;
    log.extend(c.commit_offsets(1, req).1.records);
    log.extend(c.commit_offsets(1, commit("s", "", -1, 3)).1.records);
    let mut r = GroupCoordinator::new(cfg());
    for rec in &log {
        r.replay(2, rec.tag, &rec.key, rec.value.as_deref())
            .unwrap();
    }
    let _ = r.finish_load(2);
    assert_eq!(r.fetch_offsets("g", None), c.fetch_offsets("g", None));
    assert_eq!(r.fetch_offsets("s", None), c.fetch_offsets("s", None));
    let d = r.describe_group("g").unwrap();
    assert_eq!(
        (d.state, d.generation_id, d.members[0].assignment.clone()),
        (GroupState::Stable, 1, vec![5])
    );
    assert_eq!(
        r.replay(2, cairn_runtime::BatchTag::Plain, &[0, 9, 0, 0], None),
        Ok(Replayed::Unknown(9))
    );
}
