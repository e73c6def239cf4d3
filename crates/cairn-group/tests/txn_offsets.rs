//! Offsets committed inside transactions (TxnOffsetCommit), in a runtime shard over an
//! in-memory `__consumer_offsets` that fails and crashes: unit rules first, then a seeded
//! simulation.
//!
//! The simulation interleaves plain commits, transactional commits of two producers and their
//! COMMIT/ABORT markers, failed appends and syncs, and crashes that keep what a crash keeps.
//! Checked after every step: (a) what OffsetFetch shows equals the replay of the durable log;
//! (b) it is exactly what the acknowledged plain commits and the acknowledged COMMIT markers
//! say (last writer wins, in log order): an offset of an aborted transaction, or of one whose
//! marker is not durable, is never shown; (c) `has_pending` is true exactly for the partitions
//! with a durable, unsettled transactional commit.

#[allow(dead_code, unused_macros)]
mod common;

use std::collections::BTreeMap;

use cairn_group::*;
use cairn_runtime::memlog::{Fault, MemLog};
use cairn_runtime::{BatchTag, Delivery, LogRecord, Output, RecordLog, Shard, WriteResult};
use common::{config, seeds, Rng};

const GROUP: &str = "g";
const TOPIC: &str = "t";

fn txn_commit(pid: i64, partition: i32, offset: i64) -> TxnOffsetCommit {
    TxnOffsetCommit {
        group_id: GROUP.into(),
        transactional_id: format!("tx-{pid}"),
        producer_id: pid,
        producer_epoch: 0,
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        topics: vec![(
            TOPIC.into(),
            vec![TxnOffsetPartition {
                partition,
                offset,
                leader_epoch: -1,
                metadata: None,
            }],
        )],
    }
}

fn to_output(fx: Effects) -> Output<Reply> {
    Output {
        records: fx
            .records
            .into_iter()
            .map(|r| LogRecord {
                key: r.key,
                value: r.value,
                tag: r.tag,
            })
            .collect(),
        replies: fx.replies,
    }
}

fn replayed(log: &MemLog) -> GroupCoordinator {
    let mut c = GroupCoordinator::with_id_seed(config(), 1);
    log.load(&mut |_, tag, k, v| {
        c.replay(0, tag, k, v).expect("own record");
    })
    .unwrap();
    c
}

fn shown(c: &GroupCoordinator) -> BTreeMap<i32, i64> {
    c.fetch_offsets(GROUP, None)
        .partitions
        .into_iter()
        .filter(|f| f.offset >= 0)
        .map(|f| (f.partition, f.offset))
        .collect()
}

#[test]
fn pending_until_the_marker_then_applied_or_dropped() {
    let mut c = GroupCoordinator::new(config());
    let (r, fx) = c.txn_offset_commit(1, &txn_commit(7, 0, 10));
    assert!(r[0].1[0].1.is_ok());
    assert!(fx
        .records
        .iter()
        .any(|r| matches!(r.tag, BatchTag::Transactional { producer_id: 7, .. })));
    assert!(shown(&c).is_empty());
    assert!(c.has_pending(GROUP, TOPIC, 0));
    let fx = c.complete_transaction(2, 7, 0, true, 0);
    assert!(matches!(
        fx.records[0].tag,
        BatchTag::Control { producer_id: 7, .. }
    ));
    assert_eq!(shown(&c), BTreeMap::from([(0, 10)]));
    assert!(!c.has_pending(GROUP, TOPIC, 0));
    c.txn_offset_commit(3, &txn_commit(7, 0, 20));
    c.complete_transaction(4, 7, 0, false, 0);
    assert_eq!(shown(&c), BTreeMap::from([(0, 10)]));
    // A marker with nothing pending changes nothing.
    c.complete_transaction(5, 9, 0, true, 0);
    assert_eq!(shown(&c), BTreeMap::from([(0, 10)]));
}

#[test]
fn kip_447_checks_member_and_generation() {
    let mut c = GroupCoordinator::new(config());
    let mut req = txn_commit(7, 0, 10);
    req.member_id = "nobody".into();
    let (r, fx) = c.txn_offset_commit(1, &req);
    assert_eq!(r[0].1[0].1, Err(GroupError::UnknownMemberId));
    assert!(fx.records.is_empty());
    let mut req = txn_commit(7, 0, 10);
    req.generation_id = 3;
    let (r, _) = c.txn_offset_commit(1, &req);
    assert_eq!(r[0].1[0].1, Err(GroupError::IllegalGeneration));
    let mut req = txn_commit(7, 0, 10);
    req.topics[0].1[0].metadata = Some("x".repeat(10_000));
    let (r, _) = c.txn_offset_commit(1, &req);
    assert_eq!(r[0].1[0].1, Err(GroupError::OffsetMetadataTooLarge));
}

/// The model: plain commits and markers in log order.
#[derive(Clone, Default)]
struct Model {
    committed: BTreeMap<i32, i64>,
    pending: BTreeMap<i64, BTreeMap<i32, i64>>,
}

impl Model {
    fn plain(&mut self, p: i32, o: i64) {
        self.committed.insert(p, o);
    }
    fn txn(&mut self, pid: i64, p: i32, o: i64) {
        self.pending.entry(pid).or_default().insert(p, o);
    }
    fn marker(&mut self, pid: i64, commit: bool) {
        if let Some(m) = self.pending.remove(&pid) {
            if commit {
                self.committed.extend(m);
            }
        }
    }
    fn has_pending(&self, p: i32) -> bool {
        self.pending.values().any(|m| m.contains_key(&p))
    }
}

#[test]
fn seeded_transactional_offsets_survive_faults_and_crashes() {
    for sync in [true, false] {
        for seed in seeds(60) {
            let mut rng = Rng(seed ^ 0x7E57 ^ u64::from(sync));
            let mut log = MemLog::new();
            let mut shard = Shard::new(replayed(&log), sync);
            // What the log holds durably, as a model; rebuilt from the acknowledged steps.
            let mut durable = Model::default();
            let mut now = 1_000;
            for step in 0..300 {
                now += 10;
                let pid = 1 + rng.below(2) as i64;
                let p = rng.below(3) as i32;
                let o = rng.below(1000) as i64;
                let pick = rng.below(100);
                if pick >= 90 {
                    // Crash: a process crash keeps everything appended, a machine crash (fsync
                    // mode) the synced records plus some of the rest.
                    let extra = if sync {
                        rng.below(3) as usize
                    } else {
                        usize::MAX
                    };
                    log = log.crash(extra);
                    shard = Shard::new(replayed(&log), sync);
                    // Only the acknowledged (durable) state survives, and everything after it
                    // that the crash kept: rebuild the model from the log itself.
                    durable = model_of(&log);
                } else {
                    let mut next = durable.clone();
                    let (seq, mut d) = shard.handle(|c| {
                        let fx = match pick {
                            0..=29 => {
                                next.plain(p, o);
                                c.commit_offsets(now, simple_commit(TOPIC, p, o)).1
                            }
                            30..=69 => {
                                next.txn(pid, p, o);
                                c.txn_offset_commit(now, &txn_commit(pid, p, o)).1
                            }
                            _ => {
                                let commit = rng.chance(0.6);
                                next.marker(pid, commit);
                                c.complete_transaction(now, pid, 0, commit, 0)
                            }
                        };
                        to_output(fx)
                    });
                    if let Some(w) = shard.next_write() {
                        if rng.chance(0.15) {
                            log.inject(if sync && rng.chance(0.5) {
                                Fault::Sync
                            } else {
                                Fault::Append
                            });
                        }
                        let r = w.perform(&log, now);
                        assert!(!matches!(r, WriteResult::FailedUncertain(_)));
                        d.extend(shard.write_done(w, r));
                    }
                    if d.contains(&Delivery::Done(seq)) {
                        durable = next;
                    }
                }
                let c = shard.coord();
                let ctx = format!("seed {seed} sync {sync} step {step}");
                // (a)
                assert_eq!(shown(c), shown(&replayed(&log)), "{ctx}: served != replay");
                // (b)
                assert_eq!(shown(c), durable.committed, "{ctx}: served != acknowledged");
                // (c)
                for q in 0..3 {
                    assert_eq!(
                        c.has_pending(GROUP, TOPIC, q),
                        durable.has_pending(q),
                        "{ctx}: pending {q}"
                    );
                }
            }
        }
    }
}

/// The model the log's records describe.
fn model_of(log: &MemLog) -> Model {
    let mut m = Model::default();
    for (_, r) in log.records() {
        match r.tag {
            BatchTag::Control { producer_id, .. } => m.marker(
                producer_id,
                cairn_group::records::decode_marker_key(&r.key).unwrap(),
            ),
            tag => {
                if let Ok(cairn_group::records::RecordKey::Offset { partition, .. }) =
                    cairn_group::records::decode_key(&r.key)
                {
                    let v = cairn_group::records::decode_offset_value(r.value.as_ref().unwrap())
                        .unwrap();
                    match tag {
                        BatchTag::Transactional { producer_id, .. } => {
                            m.txn(producer_id, partition, v.offset)
                        }
                        _ => m.plain(partition, v.offset),
                    }
                }
            }
        }
    }
    m
}

fn simple_commit(topic: &str, partition: i32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        group_id: GROUP.into(),
        ..common::simple_commit(topic, partition, offset)
    }
}
