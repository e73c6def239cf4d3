//! The coordinator's undo and durable view, driven as the runtime drives them: `begin(seq)` before
//! each request, `forget_through` once it is durable, `revert_from` when its write failed.

use cairn_group::consumer_protocol::{encode_subscription, Subscription};
use cairn_group::*;
use cairn_runtime::Coordinator;

fn simple_commit(group: &str, offset: i64) -> OffsetCommit {
    OffsetCommit {
        group_id: group.into(),
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        retention_time_ms: -1,
        api_version: 8,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: None,
        }],
    }
}

fn fetched(c: &GroupCoordinator, group: &str) -> i64 {
    c.fetch_offsets(group, Some(&[("t".to_string(), 0)]))
        .partitions[0]
        .offset
}

fn listed(c: &GroupCoordinator) -> Vec<String> {
    c.list_groups().into_iter().map(|l| l.group_id).collect()
}

/// What a replay of `records` (in order) holds, to compare with the live coordinator.
fn replayed(records: &[Record]) -> std::collections::BTreeMap<String, RecordedGroup> {
    let mut r = GroupCoordinator::new(GroupConfig::default());
    for rec in records {
        r.replay(0, rec.tag, &rec.key, rec.value.as_deref())
            .unwrap();
    }
    r.recorded_state()
}

#[test]
fn commits_are_read_only_once_durable_and_undone_when_their_write_fails() {
    let mut c = GroupCoordinator::new(GroupConfig::default());
    let mut log = Vec::new();
    c.begin(1);
    let (_, fx) = c.commit_offsets(0, simple_commit("g", 5));
    log.extend(fx.records);
    c.forget_through(1);
    assert_eq!(fetched(&c, "g"), 5);

    // Handled, not yet durable: reads still answer the durable offset, and a group that only
    // the pending request created is not listed.
    c.begin(2);
    let (_, fx2) = c.commit_offsets(1, simple_commit("g", 6));
    c.begin(3);
    let (_, fx3) = c.commit_offsets(2, simple_commit("new", 1));
    assert_eq!(fetched(&c, "g"), 5);
    assert_eq!(fetched(&c, "new"), -1);
    assert_eq!(listed(&c), vec!["g".to_string()]);
    assert!(c.undo_len() > 0);

    // Their write failed: everything from request 2 on is undone.
    c.revert_from(2);
    assert_eq!(c.undo_len(), 0);
    assert_eq!(c.recorded_state(), replayed(&log));
    assert_eq!(fetched(&c, "g"), 5);
    assert!(!listed(&c).contains(&"new".to_string()));

    // A later request whose write succeeds is read once durable.
    c.begin(4);
    let (_, fx4) = c.commit_offsets(3, simple_commit("g", 7));
    assert_eq!(fetched(&c, "g"), 5);
    c.forget_through(4);
    log.extend(fx4.records);
    assert_eq!(fetched(&c, "g"), 7);
    assert_eq!(c.recorded_state(), replayed(&log));
    drop((fx2, fx3));
}

/// The SyncGroup of the only member (static instance "i"), leader of generation 1 of "g".
fn leader_sync(member_id: &str) -> SyncGroup {
    SyncGroup {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: Some("i".into()),
        generation_id: 1,
        protocol_type: None,
        protocol_name: None,
        assignments: vec![(member_id.into(), vec![1, 2, 3])],
    }
}

#[test]
fn a_generation_becomes_stable_for_readers_only_once_its_record_is_durable() {
    let mut c = GroupCoordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    let metadata = encode_subscription(&Subscription {
        topics: vec!["t".into()],
        generation_id: -1,
        ..Default::default()
    });
    let join = JoinGroup {
        group_id: "g".into(),
        member_id: String::new(),
        group_instance_id: Some("i".into()),
        client_id: "c".into(),
        client_host: "/h".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), metadata)],
        api_version: 5,
    };
    c.begin(1);
    let fx = c.join_group(0, 1, join);
    c.forget_through(1);
    let Some((_, Reply::Join(Ok(j)))) = fx.replies.first() else {
        panic!("joined at once: {fx:?}")
    };
    let d = c.describe_group("g").unwrap();
    assert_eq!(
        (d.state, d.generation_id),
        (GroupState::CompletingRebalance, 1)
    );

    // The leader's SyncGroup writes the Stable state; until that write is durable readers see
    // the group completing its rebalance.
    c.begin(2);
    let fx = c.sync_group(1, 2, leader_sync(&j.member_id));
    assert!(!fx.records.is_empty());
    assert_eq!(
        c.describe_group("g").unwrap().state,
        GroupState::CompletingRebalance
    );
    // The write failed: the group is back where it was, the leader's sync undone.
    c.revert_from(2);
    assert_eq!(
        c.describe_group("g").unwrap().state,
        GroupState::CompletingRebalance
    );
    assert!(!c.is_parked(2));
    // Retried and durable: now Stable.
    c.begin(3);
    let _ = c.sync_group(2, 3, leader_sync(&j.member_id));
    c.forget_through(3);
    let d = c.describe_group("g").unwrap();
    assert_eq!((d.state, d.generation_id), (GroupState::Stable, 1));
    assert_eq!(d.members[0].assignment, vec![1, 2, 3]);
}
