//! Seeded simulation of the coordinator runtime: the group coordinator inside a
//! `cairn_runtime::Shard`, writing to an in-memory log that fails, stalls and crashes.
//!
//! The client population is the one of `simulation.rs` (members joining, syncing, heartbeating,
//! leaving and crashing, member and simple commits, clock advances, topic growth; here also
//! DeleteGroups and topic deletion), but every request goes through `Shard::handle`, and
//! answers reach a client only when the shard releases them. Writes are performed by this driver against a `MemLog`, in both durability
//! modes, with injected storage faults: failed appends, failed syncs, failed syncs whose tail
//! cannot be removed (the shard goes offline and is rebuilt from its log), slow writes (more
//! requests are handled while one is in flight; in the fsync mode, records that are appended
//! but not yet synced), batches the log refuses as too large, and process and machine crashes
//! that keep only part of the log, after which a fresh coordinator replays what survived.
//!
//! Checked after every step:
//! (a) no acknowledged commit is lost: what OffsetFetch returns is exactly the acknowledged
//!     commits (and the removals that were acknowledged), also after every crash and replay;
//! (b) the durable view (OffsetFetch, DescribeGroups of Stable/Empty groups) equals the replay
//!     of the durable log prefix; with nothing pending, the in-memory recorded state equals the
//!     replay of the whole log, and no undo information is left;
//! (c) no answer leaves before its records are durable: when a request is released, its
//!     records are in the log, in place, and synced in the fsync mode;
//! (d) no partition is owned twice in a stable generation;
//! (e) a failed write leaves nothing: after it the log holds exactly the acknowledged writes
//!     and the state equals their replay (part of (b)).
//! (f) transactions: producers commit offsets inside transactions (TxnOffsetCommit) into the
//!     simple group, a consumer group and a group only transactions use, interleaved with
//!     plain commits, deletions and crashes, and end them with COMMIT or ABORT markers. The
//!     pending offsets the durable records hold are exactly the acknowledged ones (and never
//!     served); an offset a durable COMMIT settled is served from then on (part of (a), also
//!     across crashes); an aborted one never is.
//!
//! A failure names its seed and mode; rerun one seed with
//! `SIM_SEED=<n> cargo test -p cairn-group --test runtime_simulation`, more with
//! `SIM_SEEDS=<count>`, longer runs with `SIM_STEPS=<steps>`; `SIM_TRACE=1` prints every
//! step and delivery.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use common::*;

use cairn_group::records::{self, decode_key, decode_offset_value, ControlType, RecordKey};
use cairn_group::*;
use cairn_runtime::memlog::{Fault, MemLog};
use cairn_runtime::{
    BatchTag, Delivery, LogFault, LogRecord, Output, RecordLog, Seq, Shard, Write, WriteResult,
};

/// A log that refuses less than the coordinator believes fits (some seeds): a group record of
/// two fat members passes the coordinator's check and is refused by the log.
const SMALL_LOG_BATCH: usize = 5_000;
const DEFAULT_SEEDS: u64 = 100;
const DEFAULT_STEPS: usize = 300;

/// What the driver remembers of a request until the shard answers it.
enum Kind {
    Join {
        ci: usize,
        token: ReplyToken,
    },
    Sync {
        ci: usize,
        token: ReplyToken,
    },
    Heartbeat {
        ci: usize,
        member_id: String,
        generation: i32,
    },
    /// A TxnOffsetCommit of producer `pid`.
    TxnCommit {
        pid: i64,
        group: String,
        offsets: Vec<(String, i32, i64)>,
    },
    /// A transaction marker for producer `pid`.
    Marker {
        pid: i64,
        commit: bool,
    },
    /// `expected`: the error the visible state implies, when nothing was pending at issue.
    Commit {
        group: String,
        offset: i64,
        expected: Option<Option<GroupError>>,
        simple: bool,
    },
    Other,
}

/// The request's own result, stashed by the handler closure.
enum Stash {
    Commit(CommitResult),
    TxnCommit(TxnCommitResult),
    Heartbeat(Result<(), GroupError>),
    None,
}

struct Pending {
    kind: Kind,
    stash: Stash,
    records: Vec<LogRecord>,
    /// Where its records landed: `[start, end)` log offsets.
    range: Option<(i64, i64)>,
    at: i64,
    from_tick: bool,
}

struct InFlight {
    write: Write,
    seqs: Vec<Seq>,
    /// In the fsync mode, a slow write may be appended already and wait for its sync.
    appended_at: Option<i64>,
    due: u64,
}

type OffsetKey = (String, String, i32);
/// Acknowledged pending offsets: producer id → key → (offset, commit time).
type PendingModel = BTreeMap<i64, BTreeMap<OffsetKey, (i64, i64)>>;

/// Producer ids of the simulated transactional producers.
const PRODUCERS: [i64; 3] = [1, 2, 3];
/// A group only transactions commit to.
const TXN_GROUP: &str = "txg";

struct Sim {
    seed: u64,
    sync: bool,
    rng: Rng,
    now: i64,
    step_no: u64,
    fault_rate: f64,
    log: MemLog,
    shard: Shard<GroupCoordinator>,
    pending: BTreeMap<Seq, Pending>,
    /// Seqs whose records wait for a write, in order.
    unwritten: VecDeque<Seq>,
    inflight: Option<InFlight>,
    /// Log records the shard was told are durable (a prefix of the log).
    acked: Vec<LogRecord>,
    /// Replay of `acked`, kept incrementally.
    shadow: GroupCoordinator,
    /// Which request's output answered a token last.
    reply_origin: HashMap<ReplyToken, Seq>,
    /// Keys written by requests whose outcome is unknown (failed but possibly kept): the values
    /// a replay may legitimately show besides the acknowledged one.
    uncertain: BTreeMap<OffsetKey, Vec<Option<(i64, i64)>>>,
    clients: Vec<Client>,
    topics: BTreeMap<String, i32>,
    next_token: ReplyToken,
    model: BTreeMap<OffsetKey, (i64, i64)>,
    /// Offsets of open transactions whose TxnOffsetCommit was acknowledged.
    model_pending: PendingModel,
    /// Log position of the record behind each acknowledged committed offset and pending
    /// offset: a COMMIT only replaces a committed offset whose record is older.
    model_pos: BTreeMap<OffsetKey, i64>,
    pending_pos: BTreeMap<(i64, OffsetKey), i64>,
    /// Pending offsets written by requests whose outcome is unknown: `Some(offset)` a commit
    /// that may have been kept, `None` a marker or tombstone that may have dropped it.
    uncertain_pending: BTreeMap<(i64, OffsetKey), Vec<Option<i64>>>,
    generations: HashMap<String, i32>,
    memberships: HashMap<(String, i32), Vec<String>>,
    restarts: u64,
    stats: Stats,
}

#[derive(Default, Debug, Clone)]
struct Stats {
    steps: u64,
    writes: u64,
    slow_writes: u64,
    appended_early: u64,
    max_pending: usize,
    failed_appends: u64,
    failed_syncs: u64,
    uncertain_writes: u64,
    log_refusals: u64,
    reverted_requests: u64,
    orphaned_replies: u64,
    refused_offline: u64,
    reloads: u64,
    process_crashes: u64,
    machine_crashes: u64,
    lost_unacked_records: u64,
    kept_uncertain: u64,
    acked_commits: u64,
    refused_commits: u64,
    stable_syncs: u64,
    expirations: u64,
    groups_deleted: u64,
    txn_commits_acked: u64,
    commit_markers: u64,
    abort_markers: u64,
    txn_offsets_committed: u64,
    txn_offsets_aborted: u64,
    txn_offsets_dropped_by_tombstone: u64,
    txn_offsets_superseded: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.writes += o.writes;
        self.slow_writes += o.slow_writes;
        self.appended_early += o.appended_early;
        self.max_pending = self.max_pending.max(o.max_pending);
        self.failed_appends += o.failed_appends;
        self.failed_syncs += o.failed_syncs;
        self.uncertain_writes += o.uncertain_writes;
        self.log_refusals += o.log_refusals;
        self.reverted_requests += o.reverted_requests;
        self.orphaned_replies += o.orphaned_replies;
        self.refused_offline += o.refused_offline;
        self.reloads += o.reloads;
        self.process_crashes += o.process_crashes;
        self.machine_crashes += o.machine_crashes;
        self.lost_unacked_records += o.lost_unacked_records;
        self.kept_uncertain += o.kept_uncertain;
        self.acked_commits += o.acked_commits;
        self.refused_commits += o.refused_commits;
        self.stable_syncs += o.stable_syncs;
        self.expirations += o.expirations;
        self.groups_deleted += o.groups_deleted;
        self.txn_commits_acked += o.txn_commits_acked;
        self.commit_markers += o.commit_markers;
        self.abort_markers += o.abort_markers;
        self.txn_offsets_committed += o.txn_offsets_committed;
        self.txn_offsets_aborted += o.txn_offsets_aborted;
        self.txn_offsets_dropped_by_tombstone += o.txn_offsets_dropped_by_tombstone;
        self.txn_offsets_superseded += o.txn_offsets_superseded;
    }
}

impl Driver for Sim {
    fn context(&self) -> String {
        format!(
            "seed {} sync={} (step {}, t={})",
            self.seed, self.sync, self.step_no, self.now
        )
    }
    fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
    fn clients(&self) -> &[Client] {
        &self.clients
    }
    fn now(&self) -> i64 {
        self.now
    }

    fn join(&mut self, ci: usize) {
        let token = self.token();
        let version = if self.rng.chance(0.5) { 3 } else { 0 };
        let req = self.clients[ci].join(token, version);
        let now = self.now;
        self.submit(Kind::Join { ci, token }, false, |c| {
            (c.join_group(now, token, req), Stash::None)
        });
    }

    fn sync(&mut self, ci: usize) {
        let token = self.token();
        let req = self.clients[ci].sync(token);
        let now = self.now;
        self.submit(Kind::Sync { ci, token }, false, |c| {
            (c.sync_group(now, token, req), Stash::None)
        });
    }

    fn heartbeat(&mut self, ci: usize) {
        let c = &mut self.clients[ci];
        let req = c.heartbeat();
        c.last_heartbeat = self.now;
        let kind = Kind::Heartbeat {
            ci,
            member_id: c.member_id.clone(),
            generation: c.generation,
        };
        let now = self.now;
        self.submit(kind, false, |c| {
            (Effects::default(), Stash::Heartbeat(c.heartbeat(now, req)))
        });
    }

    fn member_commit(&mut self, ci: usize, stale: bool) {
        let mut generation = self.clients[ci].generation;
        if stale {
            generation -= 1 + self.rng.below(2) as i32;
        }
        let parts = self.clients[ci].commit_partitions();
        // Only meaningful when nothing is pending: then the visible state is the whole state.
        let expected = (self.shard.pending() == 0)
            .then(|| expected_commit_error(self.shard.coord(), &self.clients[ci], generation));
        let step = 1 + self.rng.below(50) as i64;
        let c = &mut self.clients[ci];
        c.next_offset += step;
        let offset = c.next_offset;
        let req = c.commit(generation, &parts, offset);
        let kind = Kind::Commit {
            group: c.group.to_string(),
            offset,
            expected,
            simple: false,
        };
        let now = self.now;
        self.submit(kind, false, |c| {
            let (r, fx) = c.commit_offsets(now, req);
            (fx, Stash::Commit(r))
        });
    }
}

fn to_log(records: &[Record]) -> Vec<LogRecord> {
    records
        .iter()
        .map(|r| LogRecord {
            key: r.key.clone(),
            value: r.value.clone(),
            tag: r.tag,
        })
        .collect()
}

/// The committed offset a record stores, if it is a plain offset record (or a tombstone, of
/// any batch): `Some(None)` for a tombstone.
fn offset_of(r: &LogRecord) -> Option<(OffsetKey, Option<(i64, i64)>)> {
    match r.tag {
        BatchTag::Control { .. } => return None,
        BatchTag::Transactional { .. } if r.value.is_some() => return None,
        _ => {}
    }
    match decode_key(&r.key).expect("own key") {
        RecordKey::Offset {
            group,
            topic,
            partition,
            ..
        } => {
            let v = r.value.as_ref().map(|v| {
                let v = decode_offset_value(v).expect("own value");
                (v.offset, v.commit_timestamp)
            });
            Some(((group, topic, partition), v))
        }
        _ => None,
    }
}

/// A coordinator rebuilt from `records` (replay only: what records say).
fn replayed(records: &[LogRecord], now: i64, id_seed: u64) -> GroupCoordinator {
    let mut c = GroupCoordinator::with_id_seed(config(), id_seed);
    for r in records {
        c.replay(now, r.tag, &r.key, r.value.as_deref())
            .expect("replay");
    }
    c
}

/// Records a crash or a failed machine does not take back: in the fsync mode only synced
/// records; otherwise everything appended (the operating system has it).
fn durable_records(log: &MemLog, sync: bool) -> Vec<LogRecord> {
    let keep = if sync {
        log.crash(0)
    } else {
        log.crash(usize::MAX)
    };
    keep.records().into_iter().map(|(_, r)| r).collect()
}

impl Sim {
    fn new(seed: u64, sync: bool) -> Self {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xC0FFEE ^ u64::from(sync));
        let clients = clients(&mut rng);
        let topics = initial_topics();
        let fault_rate = [0.0, 0.02, 0.05, 0.1][rng.below(4) as usize];
        let log = if rng.chance(0.3) {
            MemLog::with_max_batch_bytes(SMALL_LOG_BATCH)
        } else {
            MemLog::with_max_batch_bytes(MAX_BATCH)
        };
        let coord = GroupCoordinator::with_id_seed(config(), seed);
        Sim {
            seed,
            sync,
            rng,
            now: 0,
            step_no: 0,
            fault_rate,
            log,
            shard: Shard::new(coord, sync),
            pending: BTreeMap::new(),
            unwritten: VecDeque::new(),
            inflight: None,
            acked: Vec::new(),
            shadow: GroupCoordinator::new(config()),
            reply_origin: HashMap::new(),
            uncertain: BTreeMap::new(),
            clients,
            topics,
            next_token: 1,
            model: BTreeMap::new(),
            model_pending: BTreeMap::new(),
            model_pos: BTreeMap::new(),
            pending_pos: BTreeMap::new(),
            uncertain_pending: BTreeMap::new(),
            generations: HashMap::new(),
            memberships: HashMap::new(),
            restarts: 0,
            stats: Stats::default(),
        }
    }

    fn token(&mut self) -> ReplyToken {
        self.next_token += 1;
        self.next_token
    }

    /// Runs one request through the shard. `f` calls the coordinator's handler and stashes
    /// the request's own result; its answer reaches the client only on `Done`.
    fn submit(
        &mut self,
        kind: Kind,
        from_tick: bool,
        f: impl FnOnce(&mut GroupCoordinator) -> (Effects, Stash),
    ) {
        let now = self.now;
        let mut records = Vec::new();
        let mut stash = Stash::None;
        let mut tokens = Vec::new();
        let (seq, d) = self.shard.handle(|c| {
            let (fx, s) = f(c);
            stash = s;
            records = to_log(&fx.records);
            tokens = fx.replies.iter().map(|(t, _)| *t).collect();
            Output {
                records: records.clone(),
                replies: fx.replies,
            }
        });
        let failed_now = d
            .iter()
            .any(|x| matches!(x, Delivery::Failed(s, _) if *s == seq));
        if !records.is_empty() && !failed_now {
            self.unwritten.push_back(seq);
        }
        for t in tokens {
            self.reply_origin.insert(t, seq);
        }
        self.pending.insert(
            seq,
            Pending {
                kind,
                stash,
                records,
                range: None,
                at: now,
                from_tick,
            },
        );
        self.deliver(d);
        self.stats.max_pending = self.stats.max_pending.max(self.shard.pending());
    }

    fn deliver(&mut self, d: Vec<Delivery<Reply>>) {
        if std::env::var("SIM_TRACE").is_ok() {
            for x in &d {
                match x {
                    Delivery::Reply(t, _) => eprintln!("  reply {t}"),
                    other => eprintln!("  {other:?}"),
                }
            }
        }
        for x in d {
            match x {
                Delivery::Done(seq) => self.on_done(seq),
                Delivery::Failed(seq, fault) => self.on_failed(seq, fault),
                Delivery::Reply(token, r) => {
                    // (c) a parked request's answer leaves after the request that decided it.
                    if let Some(origin) = self.reply_origin.get(&token) {
                        check!(
                            self,
                            !self.pending.contains_key(origin),
                            "reply to {token} released before its request {origin}"
                        );
                    }
                    let Some(ci) = self.clients.iter().position(|c| c.waiting == Some(token))
                    else {
                        continue;
                    };
                    self.clients[ci].waiting = None;
                    match r {
                        Reply::Join(r) => self.on_join(ci, r),
                        Reply::Sync(r) => self.on_sync(ci, r),
                    }
                }
                Delivery::Orphaned(token, _) => {
                    self.stats.orphaned_replies += 1;
                    if let Some(ci) = self.clients.iter().position(|c| c.waiting == Some(token)) {
                        self.clients[ci].waiting = None;
                        self.clients[ci].on_error(GroupError::NotCoordinator);
                    }
                }
            }
        }
    }

    fn on_done(&mut self, seq: Seq) {
        let p = self
            .pending
            .remove(&seq)
            .unwrap_or_else(|| panic!("seed {}: unknown seq {seq} done", self.seed));
        // (c) released only once its records are in the log, in place, and durable.
        if !p.records.is_empty() {
            let Some((start, end)) = p.range else {
                panic!(
                    "seed {} sync={} step {}: request {seq} answered before its records were written",
                    self.seed, self.sync, self.step_no
                );
            };
            let log: Vec<LogRecord> = self.log.records().into_iter().map(|(_, r)| r).collect();
            check!(
                self,
                log.get(start as usize..end as usize) == Some(&p.records[..]),
                "request {seq} answered but its records are not at {start}..{end}"
            );
            let durable = durable_records(&self.log, self.sync).len() as i64;
            check!(
                self,
                durable >= end,
                "request {seq} answered before its records were synced ({durable} < {end})"
            );
        }
        // Where each offset this request wrote landed in the log.
        let mut positions: BTreeMap<OffsetKey, i64> = BTreeMap::new();
        if let Some((start, _)) = p.range {
            for (i, r) in p.records.iter().enumerate() {
                if r.value.is_some() && !matches!(r.tag, BatchTag::Control { .. }) {
                    if let Some((k, _)) = pending_of(r) {
                        positions.insert(k, start + i as i64);
                    }
                }
            }
        }
        // Removals the coordinator made (retention, OffsetDelete, group deletion) are final.
        for r in &p.records {
            if let (Ok(RecordKey::Group { group }), None) = (decode_key(&r.key), &r.value) {
                // A deleted group starts its generations again.
                self.stats.groups_deleted += 1;
                self.generations.remove(&group);
                self.memberships.retain(|(g, _), _| *g != group);
            }
            if let Some((k, None)) = offset_of(r) {
                // A tombstone drops what open transactions hold for the partition.
                for m in self.model_pending.values_mut() {
                    if m.remove(&k).is_some() {
                        self.stats.txn_offsets_dropped_by_tombstone += 1;
                    }
                }
                self.pending_pos.retain(|(_, pk), _| *pk != k);
                self.model_pos.remove(&k);
                if let Some((_, at)) = self.model.remove(&k) {
                    if p.from_tick {
                        self.stats.expirations += 1;
                    }
                    // Retention counts from the commit only in a simple group. In an Empty
                    // consumer group it counts from when the group became empty, which after a
                    // load is the time in its last record: a commit made during a rebalance that
                    // was never written may expire sooner (as in Kafka).
                    if p.from_tick && k.0 == SIMPLE {
                        check!(
                            self,
                            p.at - at >= RETENTION,
                            "offset {k:?} committed at {at} expired early"
                        );
                    }
                }
            }
        }
        match (p.kind, p.stash) {
            (
                Kind::TxnCommit {
                    pid,
                    group,
                    offsets,
                },
                Stash::TxnCommit(res),
            ) => {
                let results: Vec<_> = res
                    .iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |(p, r)| (t.clone(), *p, r.clone())))
                    .collect();
                check!(
                    self,
                    results.len() == offsets.len() && results.iter().all(|(_, _, r)| r.is_ok()),
                    "transactional commit of {pid} to {group} refused: {results:?}"
                );
                self.stats.txn_commits_acked += 1;
                let m = self.model_pending.entry(pid).or_default();
                for (t, part, o) in offsets {
                    let k = (group.clone(), t, part);
                    self.pending_pos.insert((pid, k.clone()), positions[&k]);
                    m.insert(k, (o, p.at));
                }
            }
            (Kind::Marker { pid, commit }, _) => {
                let settled = self.model_pending.remove(&pid).unwrap_or_default();
                if commit {
                    self.stats.commit_markers += 1;
                    for (k, v) in settled {
                        let pos = self
                            .pending_pos
                            .remove(&(pid, k.clone()))
                            .expect("position");
                        // A plain commit written after the transaction's record stays.
                        if self.model_pos.get(&k).is_some_and(|c| *c > pos) {
                            self.stats.txn_offsets_superseded += 1;
                            continue;
                        }
                        self.stats.txn_offsets_committed += 1;
                        self.model.insert(k.clone(), v);
                        self.model_pos.insert(k, pos);
                    }
                } else {
                    self.pending_pos.retain(|(ppid, _), _| *ppid != pid);
                    self.stats.abort_markers += 1;
                    self.stats.txn_offsets_aborted += settled.len() as u64;
                }
            }
            (
                Kind::Commit {
                    group,
                    offset,
                    expected,
                    simple,
                },
                Stash::Commit(res),
            ) => {
                if let Some(expected) = expected {
                    check!(
                        self,
                        res.error == expected,
                        "commit to {group}: got {:?}, expected {expected:?}",
                        res.error
                    );
                }
                if simple {
                    check!(
                        self,
                        res.error.is_none(),
                        "simple commit refused: {:?}",
                        res.error
                    );
                }
                if res.error.is_none() {
                    self.stats.acked_commits += 1;
                    for (t, part, r) in res.partitions {
                        check!(self, r.is_ok(), "partition error {r:?}");
                        let k = (group.clone(), t, part);
                        self.model_pos.insert(k.clone(), positions[&k]);
                        self.model.insert(k, (offset, p.at));
                    }
                } else {
                    self.stats.refused_commits += 1;
                }
            }
            (
                Kind::Heartbeat {
                    ci,
                    member_id,
                    generation,
                },
                Stash::Heartbeat(Err(e)),
            ) => {
                let c = &self.clients[ci];
                if c.member_id == member_id && c.generation == generation {
                    self.clients[ci].on_error(e);
                }
            }
            _ => {}
        }
    }

    fn on_failed(&mut self, seq: Seq, fault: LogFault) {
        let p = self
            .pending
            .remove(&seq)
            .unwrap_or_else(|| panic!("seed {}: unknown seq {seq} failed", self.seed));
        // A failed write drops every request queued behind it as well.
        self.unwritten.retain(|s| *s != seq);
        if matches!(fault, LogFault::TooLarge { .. }) {
            self.stats.log_refusals += 1;
        }
        if self.shard.offline().is_some() && p.records.is_empty() && p.range.is_none() {
            self.stats.refused_offline += 1;
        } else {
            self.stats.reverted_requests += 1;
        }
        match p.kind {
            Kind::Join { ci, token } | Kind::Sync { ci, token }
                if self.clients[ci].waiting == Some(token) =>
            {
                self.clients[ci].waiting = None;
                self.clients[ci].on_error(GroupError::NotCoordinator);
            }
            Kind::Commit { .. } => self.stats.refused_commits += 1,
            _ => {}
        }
    }

    fn on_join(&mut self, ci: usize, r: Result<JoinResponse, GroupError>) {
        let j = match r {
            Ok(j) => j,
            Err(e) => return self.clients[ci].on_error(e),
        };
        let group = self.clients[ci].group;
        check!(self, note_membership(&mut self.memberships, group, &j));
        self.clients[ci].on_joined(&j, self.now, &self.topics);
    }

    fn on_sync(&mut self, ci: usize, r: Result<SyncResponse, GroupError>) {
        match r {
            Ok(s) => {
                self.clients[ci].on_synced(&s, self.now);
                self.stats.stable_syncs += 1;
            }
            Err(e) => self.clients[ci].on_error(e),
        }
    }

    fn simple_commit(&mut self) {
        let t = if self.rng.chance(0.5) { "t0" } else { "t1" };
        let p = self.rng.below(2) as i32;
        let offset = self.rng.below(1000) as i64;
        let req = simple_commit(t, p, offset);
        let kind = Kind::Commit {
            group: SIMPLE.into(),
            offset,
            expected: None,
            simple: true,
        };
        let now = self.now;
        self.submit(kind, false, |c| {
            let (r, fx) = c.commit_offsets(now, req);
            (fx, Stash::Commit(r))
        });
    }

    /// A transactional producer commits one or two offsets inside its transaction.
    fn txn_commit(&mut self) {
        let pid = PRODUCERS[self.rng.below(PRODUCERS.len() as u64) as usize];
        let group = match self.rng.below(10) {
            0..=5 => SIMPLE,
            6..=7 => TXN_GROUP,
            _ => GROUPS[0],
        };
        let mut offsets: Vec<(String, i32, i64)> = Vec::new();
        for _ in 0..1 + self.rng.below(2) {
            let t = if self.rng.chance(0.5) { "t0" } else { "t1" };
            let p = self.rng.below(2) as i32;
            if !offsets.iter().any(|(ot, op, _)| ot == t && *op == p) {
                offsets.push((t.to_string(), p, 1000 + self.rng.below(1000) as i64));
            }
        }
        let req = TxnOffsetCommit {
            group_id: group.to_string(),
            transactional_id: format!("tx{pid}"),
            producer_id: pid,
            producer_epoch: 0,
            // Consumer-group-less producers send no member, as older clients do.
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            topics: offsets
                .iter()
                .map(|(t, p, o)| {
                    let part = TxnOffsetPartition {
                        partition: *p,
                        offset: *o,
                        leader_epoch: -1,
                        metadata: None,
                    };
                    (t.clone(), vec![part])
                })
                .collect(),
        };
        let kind = Kind::TxnCommit {
            pid,
            group: group.to_string(),
            offsets,
        };
        let now = self.now;
        self.submit(kind, false, |c| {
            let (r, fx) = c.txn_offset_commit(now, &req);
            (fx, Stash::TxnCommit(r))
        });
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let now = self.now;
        self.submit(Kind::Other, true, |c| (c.tick(now), Stash::None));
        self.send_heartbeats();
    }

    /// Queues a storage fault for the operation about to run, at the seed's rate.
    fn maybe_fault(&mut self, kinds: &[Fault]) {
        if kinds.is_empty() || !self.rng.chance(self.fault_rate) {
            return;
        }
        let f = kinds[self.rng.below(kinds.len() as u64) as usize];
        self.log.inject(f);
        // A sync that fails and a tail that cannot be removed: the uncertain case.
        if f == Fault::Sync && self.rng.chance(0.3) {
            self.log.inject(Fault::Truncate);
        }
    }

    /// Performs writes: at once, or (slow) some steps later, with requests handled meanwhile.
    fn pump(&mut self) {
        loop {
            if let Some(f) = &self.inflight {
                if f.due > self.step_no {
                    return;
                }
                let f = self.inflight.take().expect("in flight");
                self.finish_write(f);
                continue;
            }
            let Some(write) = self.shard.next_write() else {
                return;
            };
            self.stats.writes += 1;
            let mut seqs = Vec::new();
            for batch in &write.batches {
                let seq = self
                    .unwritten
                    .pop_front()
                    .unwrap_or_else(|| panic!("seed {}: write of unknown records", self.seed));
                check!(
                    self,
                    self.pending[&seq].records == *batch,
                    "write batch of request {seq} is not its records"
                );
                seqs.push(seq);
            }
            check!(self, write.sync == self.sync, "write mode differs");
            let slow = self.rng.chance(0.3);
            let due = self.step_no + if slow { 1 + self.rng.below(4) } else { 0 };
            if slow {
                self.stats.slow_writes += 1;
            }
            let mut f = InFlight {
                write,
                seqs,
                appended_at: None,
                due,
            };
            if slow && self.rng.chance(0.5) {
                // Appended now, reported later: the records sit in the log before the shard
                // knows (in the fsync mode they are not durable until the sync that follows;
                // without fsync this is the broker appending outside the shard's lock).
                self.maybe_fault(&[Fault::Append]);
                let start = self.log.end_offset();
                match self.log.append(&f.write.batches, self.now) {
                    Ok(_) => {
                        self.stats.appended_early += 1;
                        self.place(&f.seqs, start);
                        f.appended_at = Some(start);
                    }
                    Err(e) => {
                        self.count_fault(&e);
                        let d = self.shard.write_done(f.write, WriteResult::Failed(e));
                        self.deliver(d);
                        continue;
                    }
                }
            }
            if slow {
                self.inflight = Some(f);
                return;
            }
            self.finish_write(f);
        }
    }

    fn place(&mut self, seqs: &[Seq], start: i64) {
        let mut at = start;
        for s in seqs {
            let p = self.pending.get_mut(s).expect("pending");
            let n = p.records.len() as i64;
            p.range = Some((at, at + n));
            at += n;
        }
    }

    fn count_fault(&mut self, e: &LogFault) {
        match e {
            LogFault::TooLarge { .. } => {}
            LogFault::Storage(s) if s.contains("sync") => self.stats.failed_syncs += 1,
            _ => self.stats.failed_appends += 1,
        }
    }

    fn finish_write(&mut self, f: InFlight) {
        let result = match f.appended_at {
            Some(_) if !self.sync => WriteResult::Durable,
            Some(start) => {
                self.maybe_fault(&[Fault::Sync]);
                match self.log.sync() {
                    Ok(()) => WriteResult::Durable,
                    Err(e) => match self.log.truncate(start) {
                        Ok(()) => WriteResult::Failed(e),
                        Err(_) => WriteResult::FailedUncertain(e),
                    },
                }
            }
            None => {
                let kinds: &[Fault] = if self.sync {
                    &[Fault::Append, Fault::Sync]
                } else {
                    &[Fault::Append]
                };
                self.maybe_fault(kinds);
                let start = self.log.end_offset();
                let r = f.write.perform(&self.log, self.now);
                if matches!(r, WriteResult::Durable | WriteResult::FailedUncertain(_)) {
                    self.place(&f.seqs, start);
                }
                r
            }
        };
        match &result {
            WriteResult::Durable => {
                for s in &f.seqs {
                    let p = &self.pending[s];
                    self.acked.extend(p.records.iter().cloned());
                    for r in &p.records {
                        self.shadow
                            .replay(self.now, r.tag, &r.key, r.value.as_deref())
                            .expect("replay");
                    }
                }
            }
            WriteResult::Failed(e) => self.count_fault(e),
            WriteResult::FailedUncertain(e) => {
                self.count_fault(e);
                self.stats.uncertain_writes += 1;
                // The log may keep these records: a replay may show them.
                for s in &f.seqs {
                    let recs = self.pending[s].records.clone();
                    self.note_uncertain(&recs);
                }
            }
        }
        let d = self.shard.write_done(f.write, result);
        self.deliver(d);
    }

    fn note_uncertain(&mut self, records: &[LogRecord]) {
        for r in records {
            match r.tag {
                BatchTag::Transactional { producer_id, .. } if r.value.is_some() => {
                    if let Some((k, Some((o, _)))) = pending_of(r) {
                        self.uncertain_pending
                            .entry((producer_id, k))
                            .or_default()
                            .push(Some(o));
                    }
                }
                BatchTag::Control { producer_id, .. } => {
                    let commit = r.key == records::encode_control_key(ControlType::Commit);
                    // Whatever the producer may hold pending may be settled by it.
                    let mut held: Vec<(OffsetKey, Option<i64>)> = self
                        .model_pending
                        .get(&producer_id)
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), Some(v.0)))
                        .collect();
                    for ((pid, k), vs) in &self.uncertain_pending {
                        if *pid == producer_id {
                            held.extend(vs.iter().map(|v| (k.clone(), *v)));
                        }
                    }
                    for (k, v) in held {
                        self.uncertain_pending
                            .entry((producer_id, k.clone()))
                            .or_default()
                            .push(None);
                        if let (true, Some(o)) = (commit, v) {
                            // The time is not compared, only the offset.
                            self.uncertain.entry(k).or_default().push(Some((o, 0)));
                        }
                    }
                }
                _ => {
                    if let Some((k, v)) = offset_of(r) {
                        if v.is_none() {
                            let holders: Vec<i64> = self
                                .model_pending
                                .iter()
                                .filter(|(_, m)| m.contains_key(&k))
                                .map(|(pid, _)| *pid)
                                .chain(
                                    self.uncertain_pending
                                        .keys()
                                        .filter(|(_, uk)| *uk == k)
                                        .map(|(pid, _)| *pid),
                                )
                                .collect();
                            for pid in holders {
                                self.uncertain_pending
                                    .entry((pid, k.clone()))
                                    .or_default()
                                    .push(None);
                            }
                        }
                        self.uncertain.entry(k).or_default().push(v);
                    }
                }
            }
        }
    }

    /// Replaces the state by the replay of `self.log` (after a crash, or to bring an offline
    /// shard back), and settles the outcome of requests that failed uncertainly.
    fn rebuild(&mut self) -> GroupCoordinator {
        self.restarts += 1;
        // A load serves what the log holds; make it durable first, or a later crash could
        // take back what was served.
        self.log.sync().expect("sync before load");
        let records: Vec<LogRecord> = self.log.records().into_iter().map(|(_, r)| r).collect();
        let mut fresh = replayed(&records, self.now, self.seed ^ (self.restarts << 40));
        let fx = fresh.finish_load(self.now);
        check!(self, fx.records.is_empty(), "loading wrote records");
        // (a) every acknowledged commit survived; the uncertain ones may have, or not.
        let live = offsets_of(&fresh);
        for (k, v) in std::mem::take(&mut self.uncertain) {
            let now_v = live.get(&k).copied();
            let acked = self.model.get(&k).copied();
            if now_v.map(|x| x.0) == acked.map(|x| x.0) {
                continue;
            }
            check!(
                self,
                v.iter().any(|c| c.map(|x| x.0) == now_v.map(|x| x.0)),
                "{k:?} is {now_v:?} after replay: neither acknowledged {acked:?} nor attempted {v:?}"
            );
            self.stats.kept_uncertain += 1;
            match now_v {
                Some(x) => self.model.insert(k, x),
                None => self.model.remove(&k),
            };
        }
        // (f) every acknowledged pending offset survived unless an uncertain request may have
        // replaced or settled it; nothing else is pending.
        let live_pending = flat_pending(&fresh);
        let acked_pending: BTreeMap<(i64, OffsetKey), i64> = self
            .model_pending
            .iter()
            .flat_map(|(pid, m)| m.iter().map(move |(k, v)| ((*pid, k.clone()), v.0)))
            .collect();
        let uncertain_pending = std::mem::take(&mut self.uncertain_pending);
        let keys: BTreeSet<&(i64, OffsetKey)> =
            live_pending.keys().chain(acked_pending.keys()).collect();
        for k in keys {
            let now_v = live_pending.get(k).map(|x| x.0);
            let acked = acked_pending.get(k).copied();
            if now_v == acked {
                continue;
            }
            let tried = uncertain_pending.get(k).cloned().unwrap_or_default();
            check!(
                self,
                tried.contains(&now_v),
                "pending {k:?} is {now_v:?} after replay: neither acknowledged {acked:?} nor attempted {tried:?}"
            );
            self.stats.kept_uncertain += 1;
        }
        self.model_pending.clear();
        for ((pid, k), v) in live_pending {
            self.model_pending.entry(pid).or_default().insert(k, v);
        }
        (self.model_pos, self.pending_pos) = log_positions(&records);
        self.acked = records;
        self.shadow = replayed(&self.acked, self.now, 0);
        for c in &mut self.clients {
            c.disconnected();
        }
        self.generations.clear();
        self.memberships.clear();
        self.reply_origin.clear();
        fresh
    }

    /// The process (or, in the fsync mode, the machine) dies; a new one loads what the log
    /// kept.
    fn crash(&mut self) {
        let appended = self.log.records().len();
        let synced = durable_records(&self.log, true).len();
        let machine = self.sync && self.rng.chance(0.5);
        let extra = if machine {
            self.stats.machine_crashes += 1;
            self.rng.below((appended - synced) as u64 + 1) as usize
        } else {
            self.stats.process_crashes += 1;
            usize::MAX
        };
        self.log = if machine || !self.sync {
            self.log.crash(extra)
        } else {
            // A process crash leaves what it appended in the operating system's cache, not
            // yet on disk: the next process finds it, unsynced.
            let kept = self.log.crash(0);
            let tail: Vec<Vec<LogRecord>> = self.log.records()[synced..]
                .iter()
                .map(|(_, r)| vec![r.clone()])
                .collect();
            kept.append(&tail, self.now)
                .expect("re-append the cached tail");
            kept
        };
        self.stats.lost_unacked_records += (appended - self.log.records().len()) as u64;
        // Requests in flight die with the process; what they wrote may have survived.
        let pending: Vec<Vec<LogRecord>> =
            self.pending.values().map(|p| p.records.clone()).collect();
        for recs in pending {
            self.note_uncertain(&recs);
        }
        self.pending.clear();
        self.unwritten.clear();
        self.inflight = None;
        let fresh = self.rebuild();
        self.shard = Shard::new(fresh, self.sync);
    }

    /// Brings an offline shard back: its log is made durable as it stands (so that nothing
    /// the rebuilt state shows can be taken back by a crash), then replayed.
    fn reload(&mut self) {
        if self.log.sync().is_err() {
            return; // still failing: stay offline, try again later
        }
        self.stats.reloads += 1;
        check!(
            self,
            self.shard.pending() == 0,
            "offline shard with pending requests"
        );
        check!(
            self,
            self.pending.is_empty(),
            "offline with requests unanswered"
        );
        let fresh = self.rebuild();
        self.shard.reload(fresh);
    }

    fn step(&mut self) {
        self.step_no += 1;
        if std::env::var("SIM_TRACE").is_ok() {
            let d = self.shard.coord().describe_group("g0");
            eprintln!(
                "step {} t={} pending={} undo={} g0={:?}",
                self.step_no,
                self.now,
                self.shard.pending(),
                self.shard.coord().undo_len(),
                d.map(|d| (d.state, d.generation_id))
            );
        }
        self.stats.steps += 1;
        self.progress_clients();
        match self.rng.below(100) {
            0..=27 => {
                let ms = self.rng.below(4_000) as i64;
                self.advance(ms);
            }
            28..=47 => self.commit_in_generation(),
            48..=53 => self.commit_maybe_stale(),
            54..=61 => self.simple_commit(),
            62..=65 => {
                let ci = self.pick_client();
                self.clients[ci].crash();
            }
            66..=71 => {
                let ci = self.pick_client();
                self.clients[ci].restart();
            }
            72..=75 => {
                let ci = self.pick_client();
                if let Some(req) = self.clients[ci].leave() {
                    let now = self.now;
                    self.submit(Kind::Other, false, |c| {
                        let (_, fx) = c.leave_group(now, req);
                        (fx, Stash::None)
                    });
                    self.clients[ci].left();
                }
            }
            76..=77 => {
                let t = if self.rng.chance(0.5) { "t0" } else { "t1" };
                *self.topics.get_mut(t).unwrap() += 1;
                let now = self.now;
                self.submit(Kind::Other, false, |c| {
                    (c.on_topic_partitions_changed(now, t), Stash::None)
                });
            }
            78 => self.crash(),
            80..=81 => {
                let p = self.rng.below(2) as i32;
                let now = self.now;
                self.submit(Kind::Other, false, |c| {
                    let (_, fx) = c.delete_offsets(now, SIMPLE, &[("t1".into(), p)]);
                    (fx, Stash::None)
                });
            }
            82..=84 => {
                let ms = 5_000 + self.rng.below(40_000) as i64;
                self.advance(ms);
            }
            85..=86 => {
                // Mostly the simple group; a consumer group only goes when it is Empty.
                let id = if self.rng.chance(0.7) {
                    SIMPLE
                } else {
                    GROUPS[self.rng.below(2) as usize]
                };
                let now = self.now;
                self.submit(Kind::Other, false, |c| {
                    let (_, fx) = c.delete_groups(now, &[id.to_string()]);
                    (fx, Stash::None)
                });
            }
            88..=92 => self.txn_commit(),
            93..=95 => {
                let pid = PRODUCERS[self.rng.below(PRODUCERS.len() as u64) as usize];
                let commit = self.rng.chance(0.6);
                let now = self.now;
                self.submit(Kind::Marker { pid, commit }, false, |c| {
                    (c.complete_transaction(now, pid, 0, commit, 1), Stash::None)
                });
            }
            87 => {
                // The topic is deleted (and at once recreated, as the clients keep using it).
                let now = self.now;
                self.submit(Kind::Other, false, |c| {
                    (c.on_topic_deleted(now, "t1"), Stash::None)
                });
            }
            _ => {}
        }
        self.pump();
        if self.shard.offline().is_some() && self.rng.chance(0.5) {
            self.reload();
        }
    }

    fn check_invariants(&mut self) {
        // (b)/(e) the log's durable prefix is what the shard was told is durable, and the
        // log holds nothing else unless a write is in flight.
        let log: Vec<LogRecord> = self.log.records().into_iter().map(|(_, r)| r).collect();
        let durable = durable_records(&self.log, self.sync);
        check!(
            self,
            durable.len() >= self.acked.len() && log[..self.acked.len()] == self.acked[..],
            "acknowledged writes are not a durable prefix of the log ({} durable, {} acked)",
            durable.len(),
            self.acked.len()
        );
        let appended_in_flight = self
            .inflight
            .as_ref()
            .is_some_and(|f| f.appended_at.is_some());
        if !appended_in_flight && self.shard.offline().is_none() {
            check!(
                self,
                log.len() == self.acked.len(),
                "the log holds {} records beyond the acknowledged writes",
                log.len() - self.acked.len()
            );
        }
        let coord = self.shard.coord();
        if self.shard.pending() == 0 && self.shard.offline().is_none() {
            check!(
                self,
                coord.undo_len() == 0,
                "undo left with nothing pending: {}",
                coord.undo_len()
            );
            check!(
                self,
                coord.recorded_pending() == self.shadow.recorded_pending(),
                "pending transactional offsets differ from the replay of the log"
            );
            let live = coord.recorded_state();
            let replay = self.shadow.recorded_state();
            if live != replay {
                let diff: Vec<&String> = live
                    .keys()
                    .chain(replay.keys())
                    .filter(|k| live.get(*k) != replay.get(*k))
                    .collect();
                panic!(
                    "seed {} sync={} (step {}): recorded state differs from the replay of the log in {diff:?}",
                    self.seed, self.sync, self.step_no
                );
            }
        }
        // (b) the durable view is the replay of the durable records; (a) it is exactly what was
        // acknowledged.
        let mut want = acknowledged_offsets(&self.model);
        let mut groups: BTreeSet<String> = want.keys().cloned().collect();
        groups.extend(coord.list_groups().into_iter().map(|g| g.group_id));
        groups.extend(self.shadow.list_groups().into_iter().map(|g| g.group_id));
        for g in groups {
            let live = served_offsets(coord, &g);
            let expected = want.remove(&g).unwrap_or_default();
            check!(
                self,
                live == expected,
                "offsets of {g}: served {live:?} != acknowledged {expected:?}"
            );
            check!(
                self,
                self.shadow.fetch_offsets(&g, None) == coord.fetch_offsets(&g, None),
                "offsets of {g} served differ from the replay of the durable log"
            );
        }
        // (f) the durable pending offsets are exactly the acknowledged ones, and the durable view
        // of a running coordinator says the same.
        let shadow_pending: BTreeMap<(i64, OffsetKey), i64> = flat_pending(&self.shadow)
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let acked_pending: BTreeMap<(i64, OffsetKey), i64> = self
            .model_pending
            .iter()
            .flat_map(|(pid, m)| m.iter().map(move |(k, v)| ((*pid, k.clone()), v.0)))
            .collect();
        check!(
            self,
            shadow_pending == acked_pending,
            "pending offsets in the durable log {shadow_pending:?} != acknowledged {acked_pending:?}"
        );
        if self.shard.offline().is_none() {
            for (_, (g, t, p)) in shadow_pending.keys() {
                check!(
                    self,
                    coord.has_pending(g, t, *p),
                    "{g}/{t}/{p} durably pending but not reported so"
                );
            }
            for (_, (g, t, p)) in flat_pending(coord).keys() {
                check!(
                    self,
                    coord.has_pending(g, t, *p) == self.shadow.has_pending(g, t, *p),
                    "has_pending({g}, {t}, {p}) differs from the durable log"
                );
            }
        }
        // (b) a Stable or Empty group shows exactly what the durable records say; other
        // states are rebalances in progress, which are never written.
        check!(self, shows_only_written(coord, &self.shadow));
        // (d) no partition owned twice in a stable generation, by the coordinator or by the
        // clients that believe they are in it; generations never go back.
        check!(
            self,
            check_generations_and_ownership(
                self.shard.coord(),
                &mut self.generations,
                &self.clients
            )
        );
    }

    /// Lets every write finish without faults, so the run ends on a settled state.
    fn settle(&mut self) {
        self.fault_rate = 0.0;
        for _ in 0..20 {
            if let Some(f) = self.inflight.as_mut() {
                f.due = 0;
            }
            self.pump();
            if self.shard.offline().is_some() {
                self.reload();
            }
            if self.inflight.is_none() && self.shard.pending() == 0 {
                break;
            }
        }
    }
}

/// Every pending transactional offset of a coordinator: (producer, key) → (offset, time).
fn flat_pending(c: &GroupCoordinator) -> BTreeMap<(i64, OffsetKey), (i64, i64)> {
    c.recorded_pending()
        .into_iter()
        .map(|((pid, g, t, p), v)| ((pid, (g, t, p)), (v.offset, v.commit_timestamp)))
        .collect()
}

/// Log positions of the records behind the committed and the pending offsets a replay of
/// `records` holds, following the rules the model follows (tombstones drop both, a COMMIT
/// replaces only an older record's offset).
fn log_positions(
    records: &[LogRecord],
) -> (BTreeMap<OffsetKey, i64>, BTreeMap<(i64, OffsetKey), i64>) {
    let mut committed: BTreeMap<OffsetKey, i64> = BTreeMap::new();
    let mut pending: BTreeMap<(i64, OffsetKey), i64> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let pos = i as i64;
        match r.tag {
            BatchTag::Control { producer_id, .. } => {
                let commit = r.key == records::encode_control_key(ControlType::Commit);
                let mine: Vec<(i64, OffsetKey)> = pending
                    .keys()
                    .filter(|(pid, _)| *pid == producer_id)
                    .cloned()
                    .collect();
                for key in mine {
                    let at = pending.remove(&key).expect("pending");
                    if commit && committed.get(&key.1).is_none_or(|c| *c < at) {
                        committed.insert(key.1, at);
                    }
                }
            }
            BatchTag::Transactional { producer_id, .. } if r.value.is_some() => {
                if let Some((k, _)) = pending_of(r) {
                    pending.insert((producer_id, k), pos);
                }
            }
            _ => match offset_of(r) {
                Some((k, Some(_))) => {
                    committed.insert(k, pos);
                }
                Some((k, None)) => {
                    pending.retain(|(_, pk), _| *pk != k);
                    committed.remove(&k);
                }
                None => {}
            },
        }
    }
    (committed, pending)
}

/// The pending offset a transactional record stores.
fn pending_of(r: &LogRecord) -> Option<(OffsetKey, Option<(i64, i64)>)> {
    match decode_key(&r.key).expect("own key") {
        RecordKey::Offset {
            group,
            topic,
            partition,
            ..
        } => {
            let v = r.value.as_ref().map(|v| {
                let v = decode_offset_value(v).expect("own value");
                (v.offset, v.commit_timestamp)
            });
            Some(((group, topic, partition), v))
        }
        _ => None,
    }
}

/// Every committed offset a coordinator serves: (group, topic, partition) → (offset, time).
fn offsets_of(c: &GroupCoordinator) -> BTreeMap<OffsetKey, (i64, i64)> {
    let mut out = BTreeMap::new();
    for (g, rec) in c.recorded_state() {
        for ((t, p), v) in rec.offsets {
            out.insert((g.clone(), t, p), (v.offset, v.commit_timestamp));
        }
    }
    out
}

fn run_seed(seed: u64, sync: bool, steps: usize) -> Stats {
    let mut sim = Sim::new(seed, sync);
    for _ in 0..steps {
        sim.step();
        sim.check_invariants();
    }
    sim.settle();
    sim.check_invariants();
    // Final crash and replay: everything acknowledged must survive.
    sim.crash();
    sim.check_invariants();
    sim.stats
}

#[test]
fn runtime_simulation() {
    let seeds = seeds(DEFAULT_SEEDS);
    let steps = std::env::var("SIM_STEPS")
        .map_or(DEFAULT_STEPS, |n| n.parse().expect("SIM_STEPS is a number"));
    let mut totals = [Stats::default(), Stats::default()];
    for &seed in &seeds {
        for (i, sync) in [false, true].into_iter().enumerate() {
            let s = run_seed(seed, sync, steps);
            totals[i].add(&s);
        }
    }
    eprintln!(
        "runtime simulation: {} seeds x {steps} steps x 2 modes",
        seeds.len()
    );
    eprintln!("  append-only mode: {:?}", totals[0]);
    eprintln!("  fsync mode:       {:?}", totals[1]);
    if seeds.len() < 20 {
        return; // a single seed replayed by hand need not cover everything
    }
    let mut all = totals[0].clone();
    all.add(&totals[1]);
    // The schedule must actually reach every fault and recovery path.
    assert!(all.acked_commits > 500, "{all:?}");
    assert!(all.stable_syncs > 500, "{all:?}");
    assert!(all.slow_writes > 100, "{all:?}");
    assert!(all.max_pending > 3, "{all:?}");
    for t in &totals {
        assert!(t.appended_early > 20, "{t:?}");
    }
    assert!(all.failed_appends > 10, "{all:?}");
    assert!(totals[1].failed_syncs > 10, "{:?}", totals[1]);
    assert!(totals[1].uncertain_writes > 2, "{:?}", totals[1]);
    assert!(all.reloads > 2, "{all:?}");
    assert!(all.log_refusals > 2, "{all:?}");
    assert!(all.reverted_requests > 20, "{all:?}");
    assert!(all.process_crashes > 10, "{all:?}");
    assert!(totals[1].machine_crashes > 5, "{:?}", totals[1]);
    assert!(totals[1].lost_unacked_records > 0, "{:?}", totals[1]);
    assert!(totals[1].kept_uncertain > 0, "{:?}", totals[1]);
    assert!(all.expirations > 0, "{all:?}");
    assert!(all.groups_deleted > 10, "{all:?}");
    assert!(all.txn_commits_acked > 200, "{all:?}");
    assert!(all.txn_offsets_committed > 100, "{all:?}");
    assert!(all.txn_offsets_aborted > 50, "{all:?}");
    assert!(all.txn_offsets_dropped_by_tombstone > 0, "{all:?}");
    assert!(all.txn_offsets_superseded > 0, "{all:?}");
}
