//! Seeded simulation of the transaction coordinator: a `TxnCoordinator` inside a
//! `cairn_runtime::Shard` over an in-memory `__transaction_state` log that fails and crashes,
//! transactional producers, and data partitions modelled as sequences of data and markers.
//!
//! Every step of a transaction's end is its own step here (EndTxn, each partition's marker,
//! the completion), and a crash may come between any two: the process dies, the log keeps what
//! a crash keeps (in the fsync mode the synced records plus a random part of the rest), a
//! fresh coordinator replays it, and the prepared transactions it finds are finished again.
//!
//! Checked after every step:
//! (a) no aborted data is visible: no record of a transaction whose producer was told it
//!     aborted (or that was fenced) sits before a COMMIT marker;
//! (b) a partition never gets a COMMIT and an ABORT marker for the same transaction;
//! (c) the coordinator's durable view equals the replay of the durable log;
//! (d) a transaction whose EndTxn(commit) was acknowledged is never prepared to abort.
//! At the end, with faults off and every job finished: (e) all data of acknowledged commits
//! is visible and nothing is left pending.
//!
//! Rerun one seed with `SIM_SEED=<n> cargo test -p cairn-txn --test simulation`; more seeds
//! with `SIM_SEEDS=<count>`.

use std::collections::{BTreeMap, HashMap};

use cairn_runtime::memlog::{Fault, MemLog};
use cairn_runtime::{Delivery, RecordLog, Shard, WriteResult};
use cairn_txn::{MarkerJob, TopicPartition, TxnConfig, TxnCoordinator, TxnState};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

const PARTITIONS: i32 = 4;
const IDS: usize = 3;
const TIMEOUT_MS: i32 = 5_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// `uid`: which transaction (producer-side number) wrote it.
    Data {
        pid: i64,
        epoch: i16,
        uid: u64,
    },
    Marker {
        pid: i64,
        epoch: i16,
        commit: bool,
    },
}

#[derive(Default, Clone)]
struct Client {
    producer: Option<(i64, i16)>,
    /// The producer-side number of the open transaction, and its partitions.
    txn: Option<(u64, Vec<i32>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Committed,
    Aborted,
}

/// The markers each (partition, producer, transaction) got, in order (true: COMMIT).
type Markers = BTreeMap<(usize, i64, u64), Vec<bool>>;

struct Sim {
    rng: Rng,
    sync: bool,
    now: i64,
    log: MemLog,
    shard: Shard<TxnCoordinator>,
    parts: Vec<Vec<Entry>>,
    /// Highest epoch each partition saw per producer (markers fence older epochs).
    fenced: Vec<HashMap<i64, i16>>,
    clients: Vec<Client>,
    /// What producers were told of each transaction (uid).
    told: HashMap<u64, Outcome>,
    /// Marker jobs in flight, with the partitions still to mark.
    jobs: Vec<(MarkerJob, Vec<TopicPartition>)>,
    next_uid: u64,
    next_pid: i64,
    trace: bool,
}

fn config() -> TxnConfig {
    TxnConfig {
        max_timeout_ms: 60_000,
        id_expiration_ms: 3_600_000,
        abort_check_interval_ms: 1_000,
        remove_expired_interval_ms: 60_000,
    }
}

fn replayed(log: &MemLog) -> TxnCoordinator {
    let mut c = TxnCoordinator::new(config());
    log.load(&mut |_, _, k, v| c.replay(k, v).expect("own record"))
        .expect("load");
    c
}

impl Sim {
    fn new(seed: u64, sync: bool) -> Sim {
        let log = MemLog::new();
        let shard = Shard::new(replayed(&log), sync);
        Sim {
            rng: Rng(seed ^ 0x7A7A_0000 ^ u64::from(sync)),
            sync,
            now: 1_000_000,
            log,
            shard,
            parts: vec![Vec::new(); PARTITIONS as usize],
            fenced: vec![HashMap::new(); PARTITIONS as usize],
            clients: vec![Client::default(); IDS],
            told: HashMap::new(),
            jobs: Vec::new(),
            next_uid: 1,
            next_pid: 1000,
            trace: std::env::var("SIM_TRACE").is_ok(),
        }
    }

    /// Runs one request and its write at once; a write may fail (nothing kept).
    fn run<T>(
        &mut self,
        faults: bool,
        f: impl FnOnce(&mut TxnCoordinator, i64) -> (T, cairn_runtime::Output<()>),
    ) -> Option<T> {
        let now = self.now;
        let mut out = None;
        let (seq, mut d) = self.shard.handle(|c| {
            let (t, o) = f(c, now);
            out = Some(t);
            o
        });
        if let Some(w) = self.shard.next_write() {
            if faults && self.rng.chance(0.1) {
                self.log.inject(if self.sync && self.rng.chance(0.5) {
                    Fault::Sync
                } else {
                    Fault::Append
                });
            }
            let r = w.perform(&self.log, now);
            if let WriteResult::FailedUncertain(_) = r {
                unreachable!("no truncate faults here");
            }
            d.extend(self.shard.write_done(w, r));
        }
        let done = d.contains(&Delivery::Done(seq));
        done.then(|| out.expect("handled"))
    }

    fn id(i: usize) -> String {
        format!("txn-{i}")
    }

    fn step(&mut self) {
        let i = self.rng.below(IDS as u64) as usize;
        let id = Self::id(i);
        match self.rng.below(100) {
            0..=14 => {
                let fresh = self.next_pid;
                self.next_pid += 1;
                let expected = self.clients[i].producer.unwrap_or((-1, -1));
                let r = self.run(true, |c, now| {
                    let (r, out, job) = c.init_producer_id(now, &id, TIMEOUT_MS, expected, fresh);
                    ((r, job), out)
                });
                if let Some((r, job)) = r {
                    if let Some(job) = job {
                        self.fence_client(&job);
                        self.start(job);
                    }
                    if let Ok(p) = r {
                        // A new producer instance: whatever the old one had open is gone.
                        if let Some((uid, _)) = self.clients[i].txn.take() {
                            self.told.entry(uid).or_insert(Outcome::Aborted);
                        }
                        self.clients[i].producer = Some(p);
                    }
                }
            }
            15..=34 => {
                let Some((pid, epoch)) = self.clients[i].producer else {
                    return;
                };
                let p = self.rng.below(PARTITIONS as u64) as i32;
                let tp = TopicPartition::new("t", p);
                let r = self.run(true, |c, now| c.add_partitions(now, &id, pid, epoch, &[tp]));
                if let Some(Ok(())) = r {
                    let uid = self.next_uid;
                    let c = &mut self.clients[i];
                    let txn = c.txn.get_or_insert((uid, Vec::new()));
                    if txn.0 == uid {
                        self.next_uid += 1;
                    }
                    if !txn.1.contains(&p) {
                        txn.1.push(p);
                    }
                }
            }
            35..=59 => {
                // Produce to a partition of the open transaction.
                let (Some((pid, epoch)), Some((uid, ps))) =
                    (self.clients[i].producer, self.clients[i].txn.clone())
                else {
                    return;
                };
                let p = ps[self.rng.below(ps.len() as u64) as usize];
                // The broker's check: the partition must be in the ongoing transaction.
                let held = self
                    .shard
                    .coord()
                    .verify_partitions(&id, pid, epoch, &[TopicPartition::new("t", p)])
                    .is_ok_and(|v| v[0]);
                let newer = self.fenced[p as usize]
                    .get(&pid)
                    .is_some_and(|e| *e > epoch);
                if held && !newer {
                    self.parts[p as usize].push(Entry::Data { pid, epoch, uid });
                }
            }
            60..=74 => {
                let (Some((pid, epoch)), Some((uid, _))) =
                    (self.clients[i].producer, self.clients[i].txn.clone())
                else {
                    return;
                };
                let commit = self.rng.chance(0.6);
                let r = self.run(true, |c, now| c.end_txn(now, &id, pid, epoch, commit));
                match r {
                    Some(Ok(job)) => {
                        self.clients[i].txn = None;
                        let o = if commit {
                            Outcome::Committed
                        } else {
                            Outcome::Aborted
                        };
                        if let Some(prev) = self.told.insert(uid, o) {
                            assert_eq!(prev, o, "told two outcomes for transaction {uid}");
                        }
                        if let Some(job) = job {
                            self.start(job);
                        }
                    }
                    Some(Err(_)) => {
                        // Fenced or not ongoing (the broker aborted it on timeout).
                        self.clients[i].txn = None;
                        self.told.entry(uid).or_insert(Outcome::Aborted);
                    }
                    None => {}
                }
            }
            75..=89 => self.job_step(true),
            90..=94 => {
                self.now += self.rng.below(4_000) as i64;
                let jobs = self.run(true, |c, now| c.tick(now));
                for job in jobs.unwrap_or_default() {
                    self.fence_client(&job);
                    self.start(job);
                }
            }
            _ => self.crash(),
        }
    }

    /// A fenced or timed-out producer's open transaction is aborted.
    fn fence_client(&mut self, job: &MarkerJob) {
        for c in &mut self.clients {
            if c.producer.is_some_and(|(pid, _)| pid == job.producer_id) {
                if let Some((uid, _)) = c.txn.take() {
                    self.told.entry(uid).or_insert(Outcome::Aborted);
                }
            }
        }
    }

    fn start(&mut self, job: MarkerJob) {
        let left = job.partitions.clone();
        self.jobs.push((job, left));
    }

    /// One marker of one job, or its completion.
    fn job_step(&mut self, faults: bool) {
        if self.jobs.is_empty() {
            return;
        }
        let j = self.rng.below(self.jobs.len() as u64) as usize;
        if let Some(tp) = self.jobs[j].1.pop() {
            let job = &self.jobs[j].0;
            let p = tp.partition as usize;
            let known = self.fenced[p].get(&job.producer_id).copied();
            // A partition refuses a marker of an older epoch than it has seen.
            if known.is_none_or(|e| job.producer_epoch >= e) {
                self.fenced[p].insert(job.producer_id, job.producer_epoch);
                self.parts[p].push(Entry::Marker {
                    pid: job.producer_id,
                    epoch: job.producer_epoch,
                    commit: job.commit,
                });
            }
            return;
        }
        let job = self.jobs[j].0.clone();
        if self
            .run(faults, |c, now| ((), c.markers_written(now, &job)))
            .is_some()
        {
            self.jobs.remove(j);
        }
    }

    fn crash(&mut self) {
        let extra = if self.sync {
            self.rng.below(3) as usize
        } else {
            usize::MAX
        };
        self.log = self.log.crash(extra);
        let coord = replayed(&self.log);
        let jobs = coord.prepared_jobs();
        self.shard = Shard::new(coord, self.sync);
        self.jobs.clear();
        for job in jobs {
            self.start(job);
        }
        if self.trace {
            eprintln!("crash: {} prepared transactions resumed", self.jobs.len());
        }
    }

    /// Per partition: which transactions' data is visible (before a COMMIT marker of its
    /// producer) and which markers each transaction got.
    fn visible(&self) -> (Vec<u64>, Markers) {
        let mut visible = Vec::new();
        let mut markers: BTreeMap<(usize, i64, u64), Vec<bool>> = BTreeMap::new();
        for (p, entries) in self.parts.iter().enumerate() {
            let mut open: HashMap<i64, Vec<u64>> = HashMap::new();
            for e in entries {
                match *e {
                    Entry::Data { pid, uid, .. } => open.entry(pid).or_default().push(uid),
                    Entry::Marker { pid, commit, .. } => {
                        let uids = open.remove(&pid).unwrap_or_default();
                        for uid in &uids {
                            markers.entry((p, pid, *uid)).or_default().push(commit);
                            if commit {
                                visible.push(*uid);
                            }
                        }
                    }
                }
            }
        }
        (visible, markers)
    }

    fn check(&self) {
        let (visible, markers) = self.visible();
        // (a)
        for uid in &visible {
            assert_ne!(
                self.told.get(uid),
                Some(&Outcome::Aborted),
                "aborted transaction {uid} is visible"
            );
        }
        // (b): one transaction's data in a partition is ended by one marker.
        for (k, ms) in &markers {
            let first = ms[0];
            assert!(ms.iter().all(|m| *m == first), "both markers for {k:?}");
        }
        // (c)
        let durable = replayed(&self.log).durable_all();
        let served = self.shard.coord().durable_all();
        let strip = |v: Vec<cairn_txn::TxnMeta>| {
            v.into_iter()
                .map(|mut m| {
                    m.last_producer_epoch = -1;
                    m.prev_producer_id = -1;
                    m
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strip(served),
            strip(durable),
            "durable view != replay of the log"
        );
        // (d)
        for m in self.shard.coord().durable_all() {
            if m.state == TxnState::PrepareAbort {
                for (job, _) in &self.jobs {
                    if job.transactional_id == m.transactional_id
                        && job.producer_epoch == m.producer_epoch
                    {
                        assert!(
                            !job.commit,
                            "a commit job for a transaction prepared to abort"
                        );
                    }
                }
            }
        }
    }

    fn finish(&mut self) {
        // Every open transaction ends (the producers go away; the broker times them out).
        for _ in 0..10_000 {
            if self.jobs.is_empty() {
                self.now += TIMEOUT_MS as i64 + 2_000;
                let jobs = self.run(false, |c, now| c.tick(now)).unwrap_or_default();
                if jobs.is_empty() {
                    break;
                }
                for job in jobs {
                    self.fence_client(&job);
                    self.start(job);
                }
            }
            self.job_step(false);
            self.check();
        }
        assert!(self.jobs.is_empty(), "jobs left unfinished");
        let (visible, _) = self.visible();
        // (e)
        for (uid, o) in &self.told {
            let seen = visible.contains(uid);
            let wrote = self
                .parts
                .iter()
                .flatten()
                .any(|e| matches!(e, Entry::Data { uid: u, .. } if u == uid));
            if *o == Outcome::Committed && wrote {
                assert!(seen, "committed transaction {uid} is not visible");
            }
        }
        for m in self.shard.coord().durable_all() {
            assert!(
                !matches!(
                    m.state,
                    TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
                ),
                "{} left {:?}",
                m.transactional_id,
                m.state
            );
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("SIM_SEED") {
        return vec![s.parse().expect("SIM_SEED")];
    }
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    (0..n).collect()
}

#[test]
fn transactions_survive_crashes_between_every_step() {
    for sync in [true, false] {
        for seed in seeds() {
            let mut sim = Sim::new(seed, sync);
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for _ in 0..400 {
                    sim.step();
                    sim.check();
                }
                sim.finish();
            }));
            if let Err(e) = run {
                panic!("seed {seed} (fsync mode: {sync}) failed: {e:?}");
            }
        }
    }
}
