//! Offsets committed inside transactions (TxnOffsetCommit, KIP-447 fencing) and the markers
//! that settle them, through the public façade.

use std::collections::BTreeMap;

use cairn_group::consumer_protocol::{encode_subscription, Subscription};
use cairn_group::records::{self, ControlType};
use cairn_group::*;
use cairn_runtime::{BatchTag, Coordinator};

const PID: i64 = 4000;
const EPOCH: i16 = 2;

fn cfg() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

fn txn(group: &str, pid: i64, parts: &[(&str, i32, i64)]) -> TxnOffsetCommit {
    let mut topics: Vec<(String, Vec<TxnOffsetPartition>)> = Vec::new();
    for (t, p, o) in parts {
        let part = TxnOffsetPartition {
            partition: *p,
            offset: *o,
            leader_epoch: 1,
            metadata: Some(format!("m{o}")),
        };
        match topics.iter_mut().find(|(n, _)| n == t) {
            Some((_, ps)) => ps.push(part),
            None => topics.push((t.to_string(), vec![part])),
        }
    }
    TxnOffsetCommit {
        group_id: group.into(),
        transactional_id: format!("tx-{pid}"),
        producer_id: pid,
        producer_epoch: EPOCH,
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        topics,
    }
}

fn plain_commit(group: &str, topic: &str, partition: i32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        group_id: group.into(),
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        retention_time_ms: -1,
        api_version: 8,
        partitions: vec![CommitPartition {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: None,
        }],
    }
}

fn fetched(c: &GroupCoordinator, group: &str, topic: &str, partition: i32) -> i64 {
    c.fetch_offsets(group, Some(&[(topic.to_string(), partition)]))
        .partitions[0]
        .offset
}

fn all_ok(r: &TxnCommitResult) -> bool {
    r.iter().all(|(_, ps)| ps.iter().all(|(_, r)| r.is_ok()))
}

fn errors(r: &TxnCommitResult) -> Vec<(String, i32, Option<GroupError>)> {
    r.iter()
        .flat_map(|(t, ps)| ps.iter().map(|(p, r)| (t.clone(), *p, r.clone().err())))
        .collect()
}

/// A coordinator that replayed `log` from scratch: what a restart would serve.
fn reload(log: &[Record]) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(cfg());
    for r in log {
        c.replay(0, r.tag, &r.key, r.value.as_deref()).unwrap();
    }
    c.finish_load(0);
    c
}

type Pending = BTreeMap<(i64, String, String, i32), records::OffsetValue>;

fn recorded(c: &GroupCoordinator) -> (BTreeMap<String, RecordedGroup>, Pending) {
    (c.recorded_state(), c.recorded_pending())
}

#[test]
fn pending_until_commit_marker_then_committed() {
    let mut c = GroupCoordinator::new(cfg());
    let mut log = Vec::new();
    let (r, fx) = c.txn_offset_commit(10, &txn("g", PID, &[("t", 0, 42), ("t", 1, 7)]));
    assert!(all_ok(&r), "{r:?}");
    // The unknown group is created (plain metadata record), the offsets are the producer's.
    assert_eq!(fx.records.len(), 3);
    assert_eq!(fx.records[0].tag, BatchTag::Plain);
    for rec in &fx.records[1..] {
        assert_eq!(
            rec.tag,
            BatchTag::Transactional {
                producer_id: PID,
                producer_epoch: EPOCH
            }
        );
    }
    log.extend(fx.records);
    let groups: Vec<_> = c.list_groups().into_iter().map(|l| l.group_id).collect();
    assert_eq!(groups, vec!["g".to_string()]);
    assert_eq!(c.describe_group("g").unwrap().state, GroupState::Empty);

    // Pending: not served, in no listing of the group's offsets, but known as pending.
    assert_eq!(fetched(&c, "g", "t", 0), -1);
    assert!(c.fetch_offsets("g", None).partitions.is_empty());
    assert!(c.has_pending("g", "t", 0) && c.has_pending("g", "t", 1));
    assert!(!c.has_pending("g", "t", 2) && !c.has_pending("other", "t", 0));

    let fx = c.complete_transaction(20, PID, EPOCH, true, 5);
    assert_eq!(fx.records.len(), 1);
    let m = &fx.records[0];
    assert_eq!(
        m.tag,
        BatchTag::Control {
            producer_id: PID,
            producer_epoch: EPOCH
        }
    );
    assert_eq!(m.key, vec![0, 0, 0, 1], "control key v0, type COMMIT");
    assert_eq!(m.value.as_deref(), Some(&[0, 0, 0, 0, 0, 5][..]));
    log.extend(fx.records);

    assert_eq!(fetched(&c, "g", "t", 0), 42);
    assert_eq!(fetched(&c, "g", "t", 1), 7);
    let f = c.fetch_offsets("g", Some(&[("t".to_string(), 0)]));
    assert_eq!(f.partitions[0].metadata, "m42");
    assert_eq!(f.partitions[0].leader_epoch, 1);
    assert!(!c.has_pending("g", "t", 0));
    assert!(c.recorded_pending().is_empty());
    assert_eq!(recorded(&reload(&log)), recorded(&c));
}

#[test]
fn abort_marker_drops_pending_and_keeps_the_committed_offset() {
    let mut c = GroupCoordinator::new(cfg());
    let mut log = Vec::new();
    let (_, fx) = c.commit_offsets(0, plain_commit("g", "t", 0, 5));
    log.extend(fx.records);
    let (r, fx) = c.txn_offset_commit(1, &txn("g", PID, &[("t", 0, 99)]));
    assert!(all_ok(&r));
    assert_eq!(fx.records.len(), 1, "the group exists: offsets only");
    log.extend(fx.records);
    assert_eq!(fetched(&c, "g", "t", 0), 5, "pending never shows");
    let fx = c.complete_transaction(2, PID, EPOCH, false, 0);
    assert_eq!(
        fx.records[0].key,
        vec![0, 0, 0, 0],
        "control key v0, type ABORT"
    );
    log.extend(fx.records);
    assert_eq!(fetched(&c, "g", "t", 0), 5);
    assert!(!c.has_pending("g", "t", 0));
    // A COMMIT after the ABORT has nothing left to commit.
    log.extend(c.complete_transaction(3, PID, EPOCH, true, 0).records);
    assert_eq!(fetched(&c, "g", "t", 0), 5);
    assert_eq!(recorded(&reload(&log)), recorded(&c));
}

#[test]
fn markers_settle_only_their_producer_and_are_written_even_when_nothing_is_pending() {
    let mut c = GroupCoordinator::new(cfg());
    let mut log = Vec::new();
    log.extend(
        c.txn_offset_commit(0, &txn("g", 1, &[("t", 0, 10)]))
            .1
            .records,
    );
    log.extend(
        c.txn_offset_commit(0, &txn("g", 2, &[("t", 0, 20)]))
            .1
            .records,
    );
    log.extend(
        c.txn_offset_commit(0, &txn("h", 2, &[("u", 3, 30)]))
            .1
            .records,
    );
    // Producer 1 writes again before its marker: the later value wins.
    log.extend(
        c.txn_offset_commit(0, &txn("g", 1, &[("t", 0, 11)]))
            .1
            .records,
    );

    let fx = c.complete_transaction(1, 1, EPOCH, true, 0);
    assert_eq!(fx.records.len(), 1);
    log.extend(fx.records);
    assert_eq!(fetched(&c, "g", "t", 0), 11);
    assert!(c.has_pending("g", "t", 0), "producer 2 still holds it");
    assert_eq!(fetched(&c, "h", "u", 3), -1);

    // Producer 2's marker spans both groups; its g/t/0 record is older than producer 1's
    // (now committed), so that one stays, as in Kafka.
    log.extend(c.complete_transaction(2, 2, EPOCH, true, 0).records);
    assert_eq!(fetched(&c, "g", "t", 0), 11);
    assert_eq!(fetched(&c, "h", "u", 3), 30);

    // A marker sent again (the transaction coordinator retries after a restart) is written
    // and changes nothing.
    let before = recorded(&c);
    let fx = c.complete_transaction(3, 2, EPOCH, true, 0);
    assert_eq!(fx.records.len(), 1);
    log.extend(fx.records);
    assert_eq!(recorded(&c), before);
    assert_eq!(recorded(&reload(&log)), recorded(&c));
}

#[test]
fn pending_offsets_survive_a_restart_and_are_settled_after_it() {
    let mut c = GroupCoordinator::new(cfg());
    let mut log = Vec::new();
    log.extend(
        c.txn_offset_commit(0, &txn("g", PID, &[("t", 0, 8)]))
            .1
            .records,
    );
    let mut restarted = reload(&log);
    assert!(restarted.has_pending("g", "t", 0));
    assert_eq!(fetched(&restarted, "g", "t", 0), -1);
    let fx = restarted.complete_transaction(1, PID, EPOCH, true, 0);
    log.extend(fx.records);
    assert_eq!(fetched(&restarted, "g", "t", 0), 8);
    assert_eq!(fetched(&reload(&log), "g", "t", 0), 8);
}

fn sub() -> Vec<u8> {
    encode_subscription(&Subscription {
        topics: vec!["t".into()],
        generation_id: -1,
        ..Default::default()
    })
}

/// One static member (instance "i1") joined and synced: Stable at generation 1.
fn stable_static(c: &mut GroupCoordinator) -> String {
    let fx = c.join_group(
        0,
        1,
        JoinGroup {
            group_id: "g".into(),
            member_id: String::new(),
            group_instance_id: Some("i1".into()),
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), sub())],
            api_version: 5,
        },
    );
    let member = fx
        .replies
        .iter()
        .find_map(|(_, r)| match r {
            Reply::Join(Ok(j)) => Some(j.member_id.clone()),
            _ => None,
        })
        .expect("joined");
    c.sync_group(
        0,
        2,
        SyncGroup {
            group_id: "g".into(),
            member_id: member.clone(),
            generation_id: 1,
            group_instance_id: Some("i1".into()),
            assignments: vec![(member.clone(), vec![])],
            ..Default::default()
        },
    );
    assert_eq!(c.describe_group("g").unwrap().state, GroupState::Stable);
    member
}

#[test]
fn kip_447_fencing() {
    let mut c = GroupCoordinator::new(cfg());
    let member = stable_static(&mut c);
    let with = |member_id: &str, instance: Option<&str>, generation: i32| {
        let mut r = txn("g", PID, &[("t", 0, 1)]);
        r.member_id = member_id.into();
        r.group_instance_id = instance.map(str::to_string);
        r.generation_id = generation;
        r
    };
    let err = |c: &mut GroupCoordinator, r: TxnOffsetCommit| {
        let (res, fx) = c.txn_offset_commit(1, &r);
        let e = errors(&res)[0].2.clone();
        if e.is_some() {
            assert!(fx.records.is_empty(), "a refused commit writes nothing");
        }
        e
    };
    assert_eq!(
        err(&mut c, with("ghost", None, 1)),
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        err(&mut c, with("other", Some("i1"), 1)),
        Some(GroupError::FencedInstanceId)
    );
    assert_eq!(
        err(&mut c, with(&member, Some("i1"), 2)),
        Some(GroupError::IllegalGeneration)
    );
    assert_eq!(
        err(&mut c, with("", None, 1)),
        Some(GroupError::UnknownMemberId),
        "a generation without a member names no member"
    );
    assert_eq!(err(&mut c, with(&member, Some("i1"), 1)), None);
    // Older clients send neither member nor generation: accepted while the group is Stable.
    assert_eq!(err(&mut c, with("", None, -1)), None);
    assert!(c.has_pending("g", "t", 0));

    assert_eq!(
        err(&mut c, txn("", PID, &[("t", 0, 1)])),
        Some(GroupError::InvalidGroupId)
    );

    // An unknown group is created only by a commit without a generation.
    let mut r = txn("new", PID, &[("t", 0, 1)]);
    r.generation_id = 0;
    assert_eq!(err(&mut c, r), Some(GroupError::IllegalGeneration));
    assert!(c.describe_group("new").is_none());
    // In an Empty group, a commit without a generation is accepted whoever sends it.
    let mut r = txn("empty", PID, &[("t", 0, 1)]);
    r.member_id = "anyone".into();
    assert_eq!(err(&mut c, r.clone()), None);
    assert_eq!(err(&mut c, r), None);
}

#[test]
fn a_plain_commit_written_after_the_transactional_one_wins() {
    let mut c = GroupCoordinator::new(cfg());
    let mut log = Vec::new();
    log.extend(
        c.txn_offset_commit(0, &txn("g", PID, &[("t", 0, 10), ("t", 1, 11)]))
            .1
            .records,
    );
    log.extend(c.commit_offsets(1, plain_commit("g", "t", 0, 3)).1.records);
    log.extend(c.complete_transaction(2, PID, EPOCH, true, 0).records);
    assert_eq!(fetched(&c, "g", "t", 0), 3, "the later plain record stays");
    assert_eq!(fetched(&c, "g", "t", 1), 11);
    assert_eq!(recorded(&reload(&log)), recorded(&c));
    // Compaction keeps only the last record of each key (markers stay): the same answer.
    let mut last: Vec<Record> = Vec::new();
    for r in log.iter().rev() {
        let marker = matches!(r.tag, BatchTag::Control { .. });
        if marker || !last.iter().any(|l| l.key == r.key) {
            last.push(r.clone());
        }
    }
    last.reverse();
    assert_eq!(fetched(&reload(&last), "g", "t", 0), 3);
    assert_eq!(fetched(&reload(&last), "g", "t", 1), 11);
}

#[test]
fn metadata_and_size_limits() {
    let mut c = GroupCoordinator::new(GroupConfig {
        offset_metadata_max_bytes: 4,
        ..cfg()
    });
    let mut r = txn("g", PID, &[("t", 0, 1), ("t", 1, 2)]);
    r.topics[0].1[1].metadata = Some("too long".into());
    let (res, fx) = c.txn_offset_commit(0, &r);
    assert_eq!(
        errors(&res),
        vec![
            ("t".into(), 0, None),
            ("t".into(), 1, Some(GroupError::OffsetMetadataTooLarge))
        ]
    );
    assert_eq!(fx.records.len(), 2, "group record and the one valid offset");
    assert!(c.has_pending("g", "t", 0) && !c.has_pending("g", "t", 1));

    let mut c = GroupCoordinator::new(GroupConfig {
        max_record_batch_bytes: 300,
        ..cfg()
    });
    let parts: Vec<(&str, i32, i64)> = (0..20).map(|p| ("t", p, 1)).collect();
    let (res, fx) = c.txn_offset_commit(0, &txn("g", PID, &parts));
    assert!(fx.records.is_empty());
    assert!(errors(&res)
        .iter()
        .all(|(_, _, e)| *e == Some(GroupError::InvalidCommitOffsetSize)));
    assert!(
        c.list_groups().is_empty(),
        "nothing of a refused commit is kept"
    );
    assert!(!c.has_pending("g", "t", 0));
}

#[test]
fn tombstones_drop_pending_offsets() {
    // OffsetDelete of a partition only a transaction holds.
    let mut c = GroupCoordinator::new(cfg());
    let mut log = Vec::new();
    log.extend(
        c.txn_offset_commit(0, &txn("g", PID, &[("t", 0, 5), ("t", 1, 6)]))
            .1
            .records,
    );
    let (r, fx) = c.delete_offsets(1, "g", &[("t".into(), 0)]);
    assert_eq!(r, Ok(vec![("t".into(), 0, Ok(()))]));
    assert_eq!(fx.records.len(), 1, "a tombstone for the pending partition");
    log.extend(fx.records);
    assert!(!c.has_pending("g", "t", 0) && c.has_pending("g", "t", 1));
    log.extend(c.complete_transaction(2, PID, EPOCH, true, 0).records);
    assert_eq!(
        fetched(&c, "g", "t", 0),
        -1,
        "a deleted offset is not brought back"
    );
    assert_eq!(fetched(&c, "g", "t", 1), 6);
    assert_eq!(recorded(&reload(&log)), recorded(&c));

    // A deleted topic takes the pending offsets on it.
    let mut c = GroupCoordinator::new(cfg());
    c.txn_offset_commit(0, &txn("g", PID, &[("t", 0, 5), ("u", 0, 6)]));
    let fx = c.on_topic_deleted(1, "t");
    assert_eq!(fx.records.len(), 1);
    c.complete_transaction(2, PID, EPOCH, true, 0);
    assert_eq!(fetched(&c, "g", "t", 0), -1);
    assert_eq!(fetched(&c, "g", "u", 0), 6);
}

#[test]
fn delete_groups_takes_pending_offsets_with_the_group() {
    let mut c = GroupCoordinator::new(cfg());
    let mut log = Vec::new();
    log.extend(c.commit_offsets(0, plain_commit("g", "t", 0, 3)).1.records);
    log.extend(
        c.txn_offset_commit(0, &txn("g", PID, &[("t", 0, 5), ("t", 1, 6)]))
            .1
            .records,
    );
    let (r, fx) = c.delete_groups(1, &["g".to_string()]);
    assert_eq!(r, vec![("g".to_string(), Ok(()))]);
    // One tombstone per partition (committed or pending), then the group's.
    assert_eq!(fx.records.len(), 3);
    log.extend(fx.records);
    assert!(!c.has_pending("g", "t", 0) && !c.has_pending("g", "t", 1));
    log.extend(c.complete_transaction(2, PID, EPOCH, true, 0).records);
    assert!(
        c.list_groups().is_empty(),
        "the COMMIT does not recreate the group"
    );
    assert_eq!(fetched(&c, "g", "t", 1), -1);
    assert_eq!(recorded(&reload(&log)), recorded(&c));
}

#[test]
fn expiry_keeps_partitions_and_groups_with_pending_offsets() {
    let retention = 1_000;
    let mut c = GroupCoordinator::new(GroupConfig {
        offsets_retention_ms: retention,
        offsets_retention_check_interval_ms: 100,
        ..cfg()
    });
    c.commit_offsets(0, plain_commit("g", "t", 0, 3));
    c.commit_offsets(0, plain_commit("g", "t", 1, 4));
    c.txn_offset_commit(0, &txn("g", PID, &[("t", 0, 5)]));
    c.txn_offset_commit(0, &txn("h", PID, &[("t", 0, 9)]));
    let mut now = 0;
    while now < 5 * retention {
        now += 100;
        c.tick(now);
    }
    assert_eq!(fetched(&c, "g", "t", 0), 3, "held by an open transaction");
    assert_eq!(fetched(&c, "g", "t", 1), -1, "expired");
    let listed: Vec<_> = c.list_groups().into_iter().map(|l| l.group_id).collect();
    assert_eq!(listed, vec!["g".to_string(), "h".to_string()]);

    c.complete_transaction(now, PID, EPOCH, false, 0);
    let until = now + 5 * retention;
    while now < until {
        now += 100;
        c.tick(now);
    }
    assert!(c.list_groups().is_empty(), "once settled, expiry proceeds");
}

#[test]
fn undo_restores_pending_and_committed_offsets_and_reads_stay_durable() {
    let mut c = GroupCoordinator::new(cfg());
    let mut durable = Vec::new();
    c.begin(1);
    durable.extend(c.commit_offsets(0, plain_commit("g", "t", 0, 1)).1.records);
    c.begin(2);
    durable.extend(
        c.txn_offset_commit(0, &txn("g", PID, &[("t", 0, 2)]))
            .1
            .records,
    );
    c.forget_through(2);
    assert!(c.has_pending("g", "t", 0));

    // A newer pending value and the COMMIT, not durable yet: reads show the durable view.
    c.begin(3);
    let fx3 = c
        .txn_offset_commit(1, &txn("g", PID, &[("t", 0, 3), ("t", 1, 4)]))
        .1;
    c.begin(4);
    let fx4 = c.complete_transaction(2, PID, EPOCH, true, 0);
    assert_eq!(fetched(&c, "g", "t", 0), 1);
    assert!(c.has_pending("g", "t", 0), "durable view: still pending");
    assert!(!c.has_pending("g", "t", 1), "not durably pending");

    // The COMMIT's write fails: the pending values come back, the offset is the old one.
    c.revert_from(4);
    let mut with3 = durable.clone();
    with3.extend(fx3.records.clone());
    assert_eq!(recorded(&c), recorded(&reload(&with3)));
    // Then request 3's write fails too.
    c.revert_from(3);
    assert_eq!(recorded(&c), recorded(&reload(&durable)));
    assert_eq!(c.undo_len(), 0);
    assert_eq!(
        c.recorded_pending()
            .values()
            .map(|v| v.offset)
            .collect::<Vec<_>>(),
        vec![2]
    );

    // The same COMMIT again, durable this time.
    c.begin(5);
    durable.extend(c.complete_transaction(3, PID, EPOCH, true, 0).records);
    c.forget_through(5);
    assert_eq!(fetched(&c, "g", "t", 0), 2);
    assert_eq!(recorded(&c), recorded(&reload(&durable)));
    let _ = fx4;
}

#[test]
fn control_record_codec() {
    for (kind, key) in [
        (ControlType::Abort, [0, 0, 0, 0]),
        (ControlType::Commit, [0, 0, 0, 1]),
    ] {
        assert_eq!(records::encode_control_key(kind), key);
        assert_eq!(records::decode_control_key(&key), Ok(kind));
    }
    assert_eq!(
        records::decode_control_value(&records::encode_control_value(-7)),
        Ok(-7)
    );
    assert!(records::decode_control_key(&[0, 0, 0, 2]).is_err());
    assert!(records::decode_control_key(&[0, 0]).is_err());
    assert!(records::decode_control_value(&[0, 0, 1]).is_err());

    // A malformed marker is an error to replay and changes nothing.
    let mut c = GroupCoordinator::new(cfg());
    c.txn_offset_commit(0, &txn("g", PID, &[("t", 0, 1)]));
    let tag = BatchTag::Control {
        producer_id: PID,
        producer_epoch: EPOCH,
    };
    assert!(c.replay(0, tag, &[0, 0, 0, 9], None).is_err());
    assert!(c.has_pending("g", "t", 0));
    assert_eq!(c.replay(0, tag, &[0, 0, 0, 1], None), Ok(Replayed::Marker));
    assert_eq!(fetched(&c, "g", "t", 0), 1);
}
