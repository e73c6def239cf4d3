//! The shard's promises, on a toy coordinator (a key-value map whose requests can park):
//! replies leave only once their records are durable, in request order; a failed write undoes
//! its requests and the ones queued behind it; a write whose outcome is uncertain takes the
//! shard offline until it is rebuilt from its log.

use std::collections::{BTreeMap, BTreeSet};

use cairn_runtime::memlog::{Fault, MemLog};
use cairn_runtime::{
    Coordinator, Delivery, LogFault, LogRecord, Output, RecordLog, Seq, Shard, Token, WriteResult,
};

enum Step {
    Kv(Vec<u8>, Option<Vec<u8>>),
    Parked(Token, bool),
}

/// Replays `key = value` records.
#[derive(Default)]
struct Toy {
    kv: BTreeMap<Vec<u8>, Vec<u8>>,
    parked: BTreeSet<Token>,
    undo: Vec<(Seq, Step)>,
    scope: Option<Seq>,
}

impl Toy {
    fn park(&mut self, t: Token, on: bool) {
        if let Some(s) = self.scope {
            self.undo
                .push((s, Step::Parked(t, self.parked.contains(&t))));
        }
        if on {
            self.parked.insert(t);
        } else {
            self.parked.remove(&t);
        }
    }

    /// The one way recorded state changes: handlers apply their records through it, and a
    /// load replays the log with it.
    fn replay(&mut self, key: &[u8], value: Option<&[u8]>) {
        let before = match value {
            Some(v) => self.kv.insert(key.to_vec(), v.to_vec()),
            None => self.kv.remove(key),
        };
        if let Some(s) = self.scope {
            self.undo.push((s, Step::Kv(key.to_vec(), before)));
        }
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.kv
            .get(k.as_bytes())
            .map(|v| std::str::from_utf8(v).unwrap())
    }

    fn loaded(log: &MemLog) -> Toy {
        let mut t = Toy::default();
        log.load(&mut |_, _, k, v| t.replay(k, v)).unwrap();
        t
    }
}

impl Coordinator for Toy {
    type Reply = String;
    fn begin(&mut self, seq: Seq) {
        self.scope = Some(seq);
    }

    fn forget_through(&mut self, seq: Seq) {
        self.undo.retain(|(s, _)| *s > seq);
    }

    fn revert_from(&mut self, seq: Seq) {
        while self.undo.last().is_some_and(|(s, _)| *s >= seq) {
            match self.undo.pop().unwrap().1 {
                Step::Kv(k, Some(v)) => {
                    self.kv.insert(k, v);
                }
                Step::Kv(k, None) => {
                    self.kv.remove(&k);
                }
                Step::Parked(t, true) => {
                    self.parked.insert(t);
                }
                Step::Parked(t, false) => {
                    self.parked.remove(&t);
                }
            }
        }
        self.scope = None;
    }

    fn is_parked(&self, token: Token) -> bool {
        self.parked.contains(&token)
    }
}

fn rec(k: &str, v: &str) -> LogRecord {
    LogRecord::plain(k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
}

/// A request that writes `records`, parks `park` and answers `answer`.
fn req(
    records: Vec<LogRecord>,
    park: Option<Token>,
    answer: Option<Token>,
) -> impl FnOnce(&mut Toy) -> Output<String> {
    move |c: &mut Toy| {
        for r in &records {
            c.replay(&r.key, r.value.as_deref());
        }
        if let Some(t) = park {
            c.park(t, true);
        }
        let mut replies = Vec::new();
        if let Some(t) = answer {
            c.park(t, false);
            replies.push((t, format!("answer {t}")));
        }
        Output { records, replies }
    }
}

/// A request that writes `key = value` and answers nothing.
fn put(key: &str, value: &str) -> impl FnOnce(&mut Toy) -> Output<String> {
    req(vec![rec(key, value)], None, None)
}

/// Performs the shard's next write against `log` and returns what it released.
fn write(shard: &mut Shard<Toy>, log: &MemLog) -> Vec<Delivery<String>> {
    let w = shard.next_write().expect("a write is due");
    let r = w.perform(log, 0);
    shard.write_done(w, r)
}

fn synced(log: &MemLog) -> usize {
    log.crash(0).records().len()
}

/// `d` releases exactly the failure of request `seq`.
fn assert_failed_alone(d: &[Delivery<String>], seq: Seq) {
    assert!(
        matches!(d[..], [Delivery::Failed(s, _)] if s == seq),
        "{d:?}"
    );
}

/// The shard serves a new write, and its state is the replay of its log.
fn assert_keeps_serving(shard: &mut Shard<Toy>, log: &MemLog) {
    let (seq, _) = shard.handle(put("a", "3"));
    assert_eq!(write(shard, log), vec![Delivery::Done(seq)]);
    assert_eq!(Toy::loaded(log).kv, shard.coord().kv);
}

/// An fsync-mode shard whose log durably holds `a = 1`, with a request that writes `a = 2`
/// queued and the log's next sync set to fail; returns that request's seq.
fn overwrite_whose_sync_fails() -> (MemLog, Shard<Toy>, Seq) {
    let log = MemLog::new();
    let mut shard = Shard::new(Toy::default(), true);
    shard.handle(put("a", "1"));
    write(&mut shard, &log);
    let (seq, _) = shard.handle(put("a", "2"));
    log.inject(Fault::Sync);
    (log, shard, seq)
}

#[test]
fn replies_wait_until_their_records_are_durable() {
    for sync in [false, true] {
        let log = MemLog::new();
        let mut shard = Shard::new(Toy::default(), sync);
        let (s1, d) = shard.handle(req(vec![], Some(7), None));
        assert_eq!(
            d,
            vec![Delivery::Done(s1)],
            "nothing to write: answered at once"
        );
        let (s2, d) = shard.handle(req(vec![rec("a", "1")], None, Some(7)));
        assert!(d.is_empty(), "{d:?}");
        // Later requests see the change at once.
        assert_eq!(shard.coord().get("a"), Some("1"));
        let w = shard.next_write().unwrap();
        assert_eq!(w.sync, sync);
        assert!(
            shard.next_write().is_none(),
            "one write in flight at a time"
        );
        // Performed but not yet reported: still nothing leaves.
        assert_eq!(w.perform(&log, 0), WriteResult::Durable);
        assert_eq!(log.records().len(), 1);
        if sync {
            assert_eq!(
                synced(&log),
                1,
                "the write syncs before it is reported durable"
            );
        }
        assert_eq!(shard.pending(), 1);
        let d = shard.write_done(w, WriteResult::Durable);
        assert_eq!(
            d,
            vec![Delivery::Done(s2), Delivery::Reply(7, "answer 7".into())]
        );
        assert_eq!(shard.pending(), 0);
        assert!(
            shard.coord().undo.is_empty(),
            "durable requests keep no undo"
        );
    }
}

#[test]
fn answers_leave_in_request_order() {
    let log = MemLog::new();
    let mut shard = Shard::new(Toy::default(), true);
    let (s1, _) = shard.handle(put("a", "1"));
    let w1 = shard.next_write().unwrap();
    // While the first write is in flight: one request with records, then one without (a
    // read-only request or a heartbeat) that must not overtake it, then a parked answer.
    let (s2, d) = shard.handle(req(vec![rec("b", "2")], Some(9), None));
    assert!(d.is_empty());
    let (s3, d) = shard.handle(req(vec![], None, None));
    assert!(
        d.is_empty(),
        "a request without records waits behind earlier writes: {d:?}"
    );
    let (s4, d) = shard.handle(req(vec![], None, Some(9)));
    assert!(d.is_empty());
    let r = w1.perform(&log, 0);
    assert_eq!(shard.write_done(w1, r), vec![Delivery::Done(s1)]);
    let w2 = shard.next_write().unwrap();
    assert_eq!(w2.records(), 1);
    let r = w2.perform(&log, 0);
    assert_eq!(
        shard.write_done(w2, r),
        vec![
            Delivery::Done(s2),
            Delivery::Done(s3),
            Delivery::Done(s4),
            Delivery::Reply(9, "answer 9".into())
        ]
    );
    let keys: Vec<Vec<u8>> = log.records().into_iter().map(|(_, r)| r.key).collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn records_of_many_requests_share_one_write() {
    let log = MemLog::new();
    let mut shard = Shard::new(Toy::default(), true);
    let (s1, _) = shard.handle(put("a", "1"));
    let (s2, _) = shard.handle(req(vec![rec("b", "1"), rec("c", "1")], None, None));
    let w = shard.next_write().unwrap();
    assert_eq!(w.batches.len(), 2, "one batch per request");
    assert_eq!(w.records(), 3);
    let r = w.perform(&log, 0);
    assert_eq!(
        shard.write_done(w, r),
        vec![Delivery::Done(s1), Delivery::Done(s2)]
    );
}

#[test]
fn a_failed_append_undoes_its_requests_and_those_behind_it() {
    let log = MemLog::new();
    let mut shard = Shard::new(Toy::default(), false);
    shard.handle(req(vec![rec("a", "1")], Some(7), None));
    write(&mut shard, &log);
    // Answers the durably parked 7: after the undo, 7 is parked again, not orphaned.
    let (s2, _) = shard.handle(req(vec![rec("a", "2")], None, Some(7)));
    // Parks 8 and answers it within the failed requests: 8 is orphaned.
    let (s3, _) = shard.handle(req(vec![rec("b", "1")], Some(8), None));
    let w = shard.next_write().unwrap();
    let (s4, _) = shard.handle(req(vec![rec("c", "1")], None, Some(8)));
    let (s5, _) = shard.handle(req(vec![], None, None));
    assert_eq!(shard.coord().get("a"), Some("2"));
    log.inject(Fault::Append);
    let r = w.perform(&log, 0);
    let fault = LogFault::Storage("injected append failure".into());
    assert_eq!(r, WriteResult::Failed(fault.clone()));
    let d = shard.write_done(w, r);
    assert_eq!(
        d,
        vec![
            Delivery::Failed(s2, fault.clone()),
            Delivery::Failed(s3, fault.clone()),
            Delivery::Failed(s4, fault.clone()),
            Delivery::Orphaned(8, fault.clone()),
            Delivery::Failed(s5, fault.clone()),
        ]
    );
    let c = shard.coord();
    assert_eq!(
        (c.get("a"), c.get("b"), c.get("c")),
        (Some("1"), None, None)
    );
    assert!(c.is_parked(7) && !c.is_parked(8));
    assert!(c.undo.is_empty());
    assert_eq!(
        log.records().len(),
        1,
        "nothing of the failed write remains"
    );
    assert!(
        shard.next_write().is_none(),
        "queued records were dropped with their requests"
    );
    assert_keeps_serving(&mut shard, &log);
}

#[test]
fn a_failed_sync_removes_the_appended_tail() {
    let (log, mut shard, s2) = overwrite_whose_sync_fails();
    let d = write(&mut shard, &log);
    assert_failed_alone(&d, s2);
    assert_eq!(shard.coord().get("a"), Some("1"));
    assert_eq!(log.records().len(), 1);
    assert!(shard.offline().is_none());
}

#[test]
fn an_uncertain_write_takes_the_shard_offline_until_reloaded() {
    let (log, mut shard, s2) = overwrite_whose_sync_fails();
    log.inject(Fault::Truncate);
    let w = shard.next_write().unwrap();
    let r = w.perform(&log, 0);
    assert!(matches!(r, WriteResult::FailedUncertain(_)), "{r:?}");
    let d = shard.write_done(w, r);
    assert_failed_alone(&d, s2);
    assert!(shard.offline().is_some());
    // Memory holds the durable state; the log may hold more, unsynced.
    assert_eq!(shard.coord().get("a"), Some("1"));
    assert_eq!((log.records().len(), synced(&log)), (2, 1));
    // Offline: requests fail at once and change nothing.
    let (s3, d) = shard.handle(put("z", "1"));
    assert_failed_alone(&d, s3);
    assert_eq!(shard.coord().get("z"), None);
    assert!(shard.next_write().is_none());
    // Rebuild from the log, made durable first so nothing served can be taken back.
    log.sync().unwrap();
    shard.reload(Toy::loaded(&log));
    assert!(shard.offline().is_none());
    assert_eq!(
        shard.coord().get("a"),
        Some("2"),
        "the uncertain write survived"
    );
    assert_keeps_serving(&mut shard, &log);
}

#[test]
fn a_batch_the_log_refuses_fails_the_whole_write() {
    let log = MemLog::with_max_batch_bytes(8);
    let mut shard = Shard::new(Toy::default(), false);
    let (s1, _) = shard.handle(put("a", "1"));
    let (s2, _) = shard.handle(put("big", "0123456789"));
    let d = write(&mut shard, &log);
    let fault = LogFault::TooLarge { size: 13, max: 8 };
    assert_eq!(
        d,
        vec![
            Delivery::Failed(s1, fault.clone()),
            Delivery::Failed(s2, fault)
        ]
    );
    assert!(shard.coord().kv.is_empty());
    assert!(log.records().is_empty());
}

#[test]
fn a_fenced_write_takes_the_shard_offline() {
    let log = MemLog::new();
    let mut shard = Shard::new(Toy::default(), false);
    log.inject(Fault::Fenced);
    let (s1, d) = shard.handle(put("a", "1"));
    assert!(d.is_empty());
    let w = shard.next_write().unwrap();
    let r = w.perform(&log, 0);
    assert!(
        matches!(r, WriteResult::FailedUncertain(LogFault::Fenced(_))),
        "{r:?}"
    );
    let d = shard.write_done(w, r);
    assert_failed_alone(&d, s1);
    assert!(shard.offline().is_some());
    assert_eq!(shard.coord().get("a"), None);
    let (s2, d) = shard.handle(put("b", "1"));
    assert_failed_alone(&d, s2);
}
