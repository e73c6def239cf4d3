//! Seeded simulation: random schedules of joins, rejoins, leaves, crashes, slow members,
//! commits (valid and stale), clock advances, topic growth and broker restarts, with the
//! protocol invariants (and the rebalance history's: bounded, ordered seqs, ordered phase times,
//! newer generations for finished rebalances, each end reported once) checked after every step.
//! Some members carry fat subscription metadata, so that some groups' records exceed the
//! offsets topic's batch limit: no group may then report a state that was not written. A failure names its seed; rerun one seed with
//! `SIM_SEED=<n> cargo test -p cairn-group --test simulation`; run more with `SIM_SEEDS=<count>`.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::*;

use cairn_group::records::{self, decode_group_value, decode_key, RecordKey};
use cairn_group::*;

struct Sim {
    seed: u64,
    rng: Rng,
    now: i64,
    coord: GroupCoordinator,
    /// Incremental replay of every record, compared with the live coordinator each step.
    shadow: GroupCoordinator,
    log: Vec<Record>,
    clients: Vec<Client>,
    topics: BTreeMap<String, i32>,
    next_token: ReplyToken,
    /// (group, topic, partition) → (offset, commit time): every acknowledged commit.
    model: BTreeMap<(String, String, i32), (i64, i64)>,
    /// Highest generation seen per group in this coordinator incarnation.
    generations: HashMap<String, i32>,
    /// Highest generation persisted per group (group records in the log).
    persisted_generation: HashMap<String, i32>,
    /// Membership handed to the leader per (group, generation) in this incarnation: one
    /// generation id must name one membership.
    memberships: HashMap<(String, i32), Vec<String>>,
    /// Seqs of the rebalances reported as ended in this coordinator incarnation.
    reported_rebalances: BTreeSet<u64>,
    restarts: u64,
    stats: Stats,
}

#[derive(Default, Debug)]
struct Stats {
    stable_syncs: u64,
    acked_commits: u64,
    refused_commits: u64,
    restarts: u64,
    expirations: u64,
    /// SyncGroup answers refused because the group record would not fit.
    refused_too_large: u64,
    /// Calls whose records the simulated log refused as too large.
    log_refusals: u64,
    /// Ended rebalances by outcome, and by cause kind.
    rebalance_outcomes: BTreeMap<String, u64>,
    rebalance_causes: BTreeMap<&'static str, u64>,
}

impl Driver for Sim {
    fn context(&self) -> String {
        format!("seed {} (t={})", self.seed, self.now)
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
        let fx = self.coord.join_group(self.now, token, req);
        self.apply(fx, false);
    }

    fn sync(&mut self, ci: usize) {
        let token = self.token();
        let req = self.clients[ci].sync(token);
        let fx = self.coord.sync_group(self.now, token, req);
        self.apply(fx, false);
    }

    fn heartbeat(&mut self, ci: usize) {
        let req = self.clients[ci].heartbeat();
        let r = self.coord.heartbeat(self.now, req);
        self.clients[ci].last_heartbeat = self.now;
        if let Err(e) = r {
            self.clients[ci].on_error(e);
        }
    }

    fn member_commit(&mut self, ci: usize, stale: bool) {
        let mut generation = self.clients[ci].generation;
        if stale {
            generation -= 1 + self.rng.below(2) as i32;
        }
        let parts = self.clients[ci].commit_partitions();
        let expected = expected_commit_error(&self.coord, &self.clients[ci], generation);
        let c = &mut self.clients[ci];
        c.next_offset += 1 + self.rng.below(50) as i64;
        let offset = c.next_offset;
        let req = c.commit(generation, &parts, offset);
        let group = c.group.to_string();
        let (res, fx) = self.coord.commit_offsets(self.now, req);
        check!(
            self,
            res.error == expected,
            "commit by client {ci} gen {generation}: got {:?}, expected {expected:?}",
            res.error
        );
        self.apply(fx, false);
        if res.error.is_none() {
            self.stats.acked_commits += 1;
            for (t, p, r) in res.partitions {
                check!(self, r.is_ok(), "partition error {r:?}");
                self.model.insert((group.clone(), t, p), (offset, self.now));
            }
        } else {
            self.stats.refused_commits += 1;
        }
    }
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xC0FFEE);
        let clients = clients(&mut rng);
        let topics = initial_topics();
        Sim {
            seed,
            rng,
            now: 0,
            coord: GroupCoordinator::with_id_seed(config(), seed),
            shadow: GroupCoordinator::new(config()),
            log: Vec::new(),
            clients,
            topics,
            next_token: 1,
            model: BTreeMap::new(),
            generations: HashMap::new(),
            persisted_generation: HashMap::new(),
            memberships: HashMap::new(),
            reported_rebalances: BTreeSet::new(),
            restarts: 0,
            stats: Stats::default(),
        }
    }

    fn token(&mut self) -> ReplyToken {
        self.next_token += 1;
        self.next_token
    }

    /// Records first (they are "durable" at once), then replies.
    fn apply(&mut self, fx: Effects, from_tick: bool) {
        for r in &fx.rebalances {
            check!(
                self,
                r.outcome != RebalanceOutcome::InProgress,
                "in-progress rebalance reported: {r:?}"
            );
            check!(
                self,
                self.reported_rebalances.insert(r.seq),
                "rebalance reported twice: {r:?}"
            );
            check_record(self, r);
            *self
                .stats
                .rebalance_outcomes
                .entry(format!("{:?}", r.outcome))
                .or_default() += 1;
            *self
                .stats
                .rebalance_causes
                .entry(r.cause.kind())
                .or_default() += 1;
        }
        // The broker writes one call's records as one batch (per offsets partition); the log
        // refuses a batch over the limit, and then nothing is written and every reply of the
        // call is an error. Invariant (7) catches a coordinator that kept such a state.
        let mut fx = fx;
        if records::batch_size(&fx.records) > MAX_BATCH {
            self.stats.log_refusals += 1;
            fx.records.clear();
            for (_, reply) in &mut fx.replies {
                *reply = match reply {
                    Reply::Join(_) => Reply::Join(Err(GroupError::UnknownServerError)),
                    Reply::Sync(_) => Reply::Sync(Err(GroupError::UnknownServerError)),
                };
            }
        }
        for rec in fx.records {
            self.shadow
                .replay(self.now, rec.tag, &rec.key, rec.value.as_deref())
                .unwrap_or_else(|e| panic!("seed {}: bad record: {e}", self.seed));
            match decode_key(&rec.key).unwrap() {
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                    ..
                } => {
                    if rec.value.is_none() {
                        let k = (group, topic, partition);
                        if let Some((_, at)) = self.model.remove(&k) {
                            if from_tick {
                                self.stats.expirations += 1;
                                check!(
                                    self,
                                    self.now - at >= RETENTION,
                                    "offset {k:?} committed at {at} expired early"
                                );
                            }
                        }
                    }
                }
                RecordKey::Group { group } => match &rec.value {
                    Some(v) => {
                        let g = decode_group_value(v).unwrap().generation;
                        let p = self.persisted_generation.entry(group.clone()).or_insert(g);
                        check!(self, g >= *p, "persisted generation went back for {group}");
                        *p = g;
                    }
                    None => {
                        self.persisted_generation.remove(&group);
                        self.generations.remove(&group);
                        self.memberships.retain(|(g, _), _| *g != group);
                    }
                },
                RecordKey::Unknown { .. } => unreachable!(),
            }
            self.log.push(rec);
        }
        for (token, reply) in fx.replies {
            let Some(ci) = self.clients.iter().position(|c| c.waiting == Some(token)) else {
                continue; // superseded or lost
            };
            self.clients[ci].waiting = None;
            match reply {
                Reply::Join(r) => self.on_join(ci, r),
                Reply::Sync(r) => self.on_sync(ci, r),
            }
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
            Err(e) => {
                if e == GroupError::UnknownServerError {
                    self.stats.refused_too_large += 1;
                }
                self.clients[ci].on_error(e)
            }
        }
    }

    fn simple_commit(&mut self) {
        let t = if self.rng.chance(0.5) { "t0" } else { "t1" };
        let p = self.rng.below(2) as i32;
        let offset = self.rng.below(1000) as i64;
        let req = simple_commit(t, p, offset);
        let (res, fx) = self.coord.commit_offsets(self.now, req);
        check!(
            self,
            res.error.is_none(),
            "simple commit refused: {:?}",
            res.error
        );
        self.apply(fx, false);
        self.model
            .insert((SIMPLE.into(), t.into(), p), (offset, self.now));
    }

    fn restart_broker(&mut self) {
        self.restarts += 1;
        self.stats.restarts += 1;
        if self.rng.chance(0.5) {
            self.compact_log();
        }
        let mut fresh = GroupCoordinator::with_id_seed(config(), self.seed ^ (self.restarts << 40));
        for rec in &self.log {
            fresh
                .replay(self.now, rec.tag, &rec.key, rec.value.as_deref())
                .unwrap();
        }
        self.coord = fresh;
        // Parked requests die with the connections; clients retry their join.
        for c in &mut self.clients {
            c.disconnected();
        }
        self.generations.clear();
        self.reported_rebalances.clear();
        // Unpersisted generations are legitimately handed out again after a restart.
        self.memberships.clear();
        let fx = self.coord.finish_load(self.now);
        self.apply(fx, false);
        for g in self.coord.list_groups() {
            if let Some(p) = self.persisted_generation.get(&g.group_id) {
                let d = self.coord.describe_group(&g.group_id).unwrap();
                check!(self, d.generation_id == *p, "replayed generation differs");
            }
        }
    }

    /// Log compaction: the newest record per key survives, in log order; some final
    /// tombstones are dropped, as the cleaner eventually does.
    fn compact_log(&mut self) {
        let mut last: HashMap<Vec<u8>, usize> = HashMap::new();
        for (i, r) in self.log.iter().enumerate() {
            last.insert(r.key.clone(), i);
        }
        let drop_tombstones = self.rng.chance(0.5);
        let log = std::mem::take(&mut self.log);
        self.log = log
            .into_iter()
            .enumerate()
            .filter(|(i, r)| last[&r.key] == *i && !(drop_tombstones && r.value.is_none()))
            .map(|(_, r)| r)
            .collect();
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let fx = self.coord.tick(self.now);
        self.apply(fx, true);
        self.send_heartbeats();
    }

    fn step(&mut self) {
        // Clients make progress on what they were doing.
        self.progress_clients();
        match self.rng.below(100) {
            0..=29 => {
                let ms = self.rng.below(4_000) as i64;
                self.advance(ms);
            }
            30..=49 => self.commit_in_generation(),
            50..=56 => self.commit_maybe_stale(),
            57..=62 => self.simple_commit(),
            63..=66 => {
                // Crash: stop everything (static members keep their identity on restart).
                let ci = self.pick_client();
                self.clients[ci].crash();
            }
            67..=72 => {
                // Crashed clients come back: dynamic ones as new members, static ones
                // with an empty member id and their instance id (replacement).
                let ci = self.pick_client();
                self.clients[ci].restart();
            }
            73..=76 => {
                let ci = self.pick_client();
                if let Some(req) = self.clients[ci].leave() {
                    let (_, fx) = self.coord.leave_group(self.now, req);
                    self.apply(fx, false);
                    self.clients[ci].left();
                }
            }
            77..=78 => {
                let t = if self.rng.chance(0.5) { "t0" } else { "t1" };
                *self.topics.get_mut(t).unwrap() += 1;
                let fx = self.coord.on_topic_partitions_changed(self.now, t);
                self.apply(fx, false);
            }
            79 => self.restart_broker(),
            80..=81 => {
                let p = self.rng.below(2) as i32;
                let (r, fx) = self
                    .coord
                    .delete_offsets(self.now, SIMPLE, &[("t1".into(), p)]);
                self.apply(fx, false);
                if r.is_ok() {
                    self.model.remove(&(SIMPLE.into(), "t1".into(), p));
                }
            }
            82..=84 => {
                // A long pause: sessions and timers expire.
                let ms = 5_000 + self.rng.below(40_000) as i64;
                self.advance(ms);
            }
            _ => {}
        }
    }

    fn check_invariants(&mut self) {
        // (7) no state reported that was not written: a Stable or Empty group is exactly what
        // the replay of the log holds (generation, members, assignments); other states are
        // rebalances in progress, which Kafka never persists either.
        check!(self, shows_only_written(&self.coord, &self.shadow));
        // (6) rebalance history: bounded, ordered, consistent with the group's state, and
        // dropped with the group.
        for id in GROUPS.iter().copied().chain([SIMPLE]) {
            let hist = self.coord.rebalance_history(id);
            check!(
                self,
                hist.len() <= HISTORY_PER_GROUP,
                "history of {id} too long"
            );
            check!(
                self,
                hist.windows(2).all(|w| w[0].seq < w[1].seq),
                "history seqs of {id} not increasing"
            );
            for (i, r) in hist.iter().enumerate() {
                check!(self, r.group_id == id, "record of {} in {id}", r.group_id);
                check_record(self, r);
                if r.outcome == RebalanceOutcome::InProgress {
                    check!(
                        self,
                        i + 1 == hist.len(),
                        "in-progress record not last in {id}"
                    );
                } else {
                    check!(
                        self,
                        self.reported_rebalances.contains(&r.seq),
                        "ended record never reported: {r:?}"
                    );
                }
            }
            let in_progress = hist
                .last()
                .is_some_and(|r| r.outcome == RebalanceOutcome::InProgress);
            match self.coord.describe_group(id) {
                None => check!(self, hist.is_empty(), "{id} is gone but has history"),
                Some(d) => {
                    let rebalancing = matches!(
                        d.state,
                        GroupState::PreparingRebalance | GroupState::CompletingRebalance
                    );
                    check!(
                        self,
                        rebalancing == in_progress,
                        "{id} is {:?} but its last record is {:?}",
                        d.state,
                        hist.last()
                    );
                    if d.state == GroupState::CompletingRebalance {
                        let r = hist.last().unwrap();
                        check!(
                            self,
                            r.generation == Some(d.generation_id)
                                && r.members_after == Some(d.members.len()),
                            "completing record {r:?} does not match the group"
                        );
                    }
                }
            }
        }
        // (5) generations only increase within an incarnation; (1) the coordinator's Stable
        // assignment has no partition twice, and neither do the clients in that generation.
        check!(
            self,
            check_generations_and_ownership(&self.coord, &mut self.generations, &self.clients)
        );
        // (2) every acknowledged commit is visible; nothing else is.
        let mut want = acknowledged_offsets(&self.model);
        let mut groups: BTreeSet<String> = want.keys().cloned().collect();
        groups.extend(self.coord.list_groups().into_iter().map(|g| g.group_id));
        for g in groups {
            let live = served_offsets(&self.coord, &g);
            let expected = want.remove(&g).unwrap_or_default();
            check!(
                self,
                live == expected,
                "offsets of {g}: live {live:?} != acknowledged {expected:?}"
            );
            // (4) the replay of all records has exactly the same offsets.
            let shadow = self.shadow.fetch_offsets(&g, None);
            check!(
                self,
                shadow == self.coord.fetch_offsets(&g, None),
                "replayed offsets of {g} differ"
            );
        }
    }
}

/// Times are ordered, and a rebalance that reached Stable produced a newer generation.
fn check_record(sim: &Sim, r: &RebalanceRecord) {
    let times = [Some(r.started_ms), r.join_completed_ms, r.completed_ms];
    let present: Vec<i64> = times.iter().flatten().copied().collect();
    check!(
        sim,
        present.windows(2).all(|w| w[0] <= w[1]),
        "rebalance times out of order: {r:?}"
    );
    check!(
        sim,
        r.started_ms <= sim.now,
        "rebalance from the future: {r:?}"
    );
    if r.outcome == RebalanceOutcome::Stable || r.outcome == RebalanceOutcome::Emptied {
        check!(
            sim,
            r.generation.is_some_and(|g| g > r.from_generation)
                && r.completed_ms.is_some()
                && r.join_completed_ms.is_some()
                && r.members_after.is_some(),
            "finished rebalance without a new generation: {r:?}"
        );
    }
    if r.outcome == RebalanceOutcome::Stable {
        // The simulated leader's range assignment always decodes.
        check!(sim, r.partitions_moved.is_some(), "moves unknown: {r:?}");
    }
    if r.join_completed_ms.is_none() {
        check!(sim, r.generation.is_none(), "generation before join: {r:?}");
    }
}

fn run_seed(seed: u64, steps: usize) -> Stats {
    let mut sim = Sim::new(seed);
    for _ in 0..steps {
        sim.step();
        sim.check_invariants();
    }
    // Final restart from the log: the state must survive.
    sim.restart_broker();
    sim.check_invariants();
    sim.stats
}

#[test]
fn simulation() {
    let seeds = seeds(200);
    let steps = 400;
    let mut total = Stats::default();
    for seed in seeds {
        let s = run_seed(seed, steps);
        total.stable_syncs += s.stable_syncs;
        total.acked_commits += s.acked_commits;
        total.refused_commits += s.refused_commits;
        total.refused_too_large += s.refused_too_large;
        total.log_refusals += s.log_refusals;
        total.restarts += s.restarts;
        total.expirations += s.expirations;
        for (k, v) in s.rebalance_outcomes {
            *total.rebalance_outcomes.entry(k).or_default() += v;
        }
        for (k, v) in s.rebalance_causes {
            *total.rebalance_causes.entry(k).or_default() += v;
        }
    }
    eprintln!("simulation totals: {total:?}");
    // The schedule must actually exercise the protocol.
    assert!(total.stable_syncs > 1_000, "{total:?}");
    assert!(total.acked_commits > 1_000, "{total:?}");
    assert!(total.refused_commits > 100, "{total:?}");
    assert!(total.expirations > 0, "{total:?}");
    assert!(total.refused_too_large > 10, "{total:?}");
    assert_eq!(
        total.log_refusals, 0,
        "a write the log refuses was asked for: {total:?}"
    );
    for outcome in ["Stable", "Superseded", "Emptied"] {
        assert!(
            total
                .rebalance_outcomes
                .get(outcome)
                .is_some_and(|n| *n > 10),
            "{outcome}: {total:?}"
        );
    }
    for cause in [
        "member_joined",
        "member_left",
        "session_timeout",
        "sync_timeout",
        "partitions_added",
    ] {
        assert!(
            total.rebalance_causes.contains_key(cause),
            "{cause}: {total:?}"
        );
    }
}
