//! Seeded simulation: random schedules of joins, rejoins, leaves, crashes, slow members,
//! commits (valid and stale), clock advances, topic growth and broker restarts, with the
//! protocol invariants (and the rebalance history's: bounded, ordered seqs, ordered phase times,
//! newer generations for finished rebalances, each end reported once) checked after every step.
//! Some members carry fat subscription metadata, so that some groups' records exceed the
//! offsets topic's batch limit: no group may then report a state that was not written. A failure names its seed; rerun one seed with
//! `SIM_SEED=<n> cargo test -p cairn-group --test simulation`; run more with `SIM_SEEDS=<count>`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_group::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, group_by_topic,
    Assignment, Subscription,
};
use cairn_group::records::{self, decode_group_value, decode_key, RecordKey};
use cairn_group::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 20_000;
const HEARTBEAT_EVERY: i64 = 3_000;
const RETENTION: i64 = 120_000;
const GROUPS: [&str; 2] = ["g0", "g1"];
const SIMPLE: &str = "simple";
/// The simulated offsets topic's `max.message.bytes`: two fat members fit, three do not.
const MAX_BATCH: usize = 8_000;
/// User data carried by a fat member's subscription.
const FAT_USER_DATA: usize = 3_000;

/// SplitMix64-based PRNG; tiny and reproducible.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Needs to (re)join.
    Idle,
    Joining,
    /// Join answered; must send SyncGroup.
    NeedSync,
    Syncing,
    Stable,
    /// Stopped: no heartbeats, no requests.
    Crashed,
}

struct Client {
    group: &'static str,
    client_id: String,
    instance_id: Option<String>,
    api_version: i16,
    topics: Vec<String>,
    member_id: String,
    generation: i32,
    phase: Phase,
    waiting: Option<ReplyToken>,
    /// Set on the leader: the assignment to send with SyncGroup.
    leader_plan: Option<Vec<(String, Vec<u8>)>>,
    assignment: Vec<(String, i32)>,
    last_heartbeat: i64,
    slow: bool,
    /// Joins with `FAT_USER_DATA` bytes of subscription user data.
    fat: bool,
    next_offset: i64,
}

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

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        offsets_retention_ms: RETENTION,
        offsets_retention_check_interval_ms: 10_000,
        max_record_batch_bytes: MAX_BATCH,
        ..GroupConfig::default()
    }
}

macro_rules! check {
    ($sim:expr, $cond:expr, $($arg:tt)*) => {
        if !$cond {
            panic!("seed {} (t={}): {}", $sim.seed, $sim.now, format!($($arg)*));
        }
    };
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xC0FFEE);
        let mut clients = Vec::new();
        for (gi, group) in GROUPS.iter().enumerate() {
            for ci in 0..4 {
                let static_member = rng.chance(0.3);
                let topics = if ci % 2 == 0 {
                    vec!["t0".to_string(), "t1".to_string()]
                } else {
                    vec!["t0".to_string()]
                };
                clients.push(Client {
                    group,
                    client_id: format!("c{gi}{ci}"),
                    instance_id: static_member.then(|| format!("inst-{gi}-{ci}")),
                    api_version: if rng.chance(0.5) { 5 } else { 3 },
                    topics,
                    member_id: String::new(),
                    generation: -1,
                    phase: Phase::Idle,
                    waiting: None,
                    leader_plan: None,
                    assignment: Vec::new(),
                    last_heartbeat: 0,
                    slow: rng.chance(0.2),
                    fat: rng.chance(0.3),
                    next_offset: 0,
                });
            }
        }
        let mut topics = BTreeMap::new();
        topics.insert("t0".to_string(), 3);
        topics.insert("t1".to_string(), 2);
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
                .replay(self.now, &rec.key, rec.value.as_deref())
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

    fn on_error(&mut self, ci: usize, e: GroupError) {
        let c = &mut self.clients[ci];
        c.assignment.clear();
        match e {
            GroupError::MemberIdRequired { member_id } => {
                c.member_id = member_id;
                c.phase = Phase::Idle;
            }
            GroupError::UnknownMemberId => {
                c.member_id.clear();
                c.generation = -1;
                c.phase = Phase::Idle;
            }
            // Java treats fencing as fatal for the instance.
            GroupError::FencedInstanceId => c.phase = Phase::Crashed,
            _ => c.phase = Phase::Idle,
        }
    }

    fn on_join(&mut self, ci: usize, r: Result<JoinResponse, GroupError>) {
        let j = match r {
            Ok(j) => j,
            Err(e) => return self.on_error(ci, e),
        };
        if j.leader == j.member_id {
            let mut ids: Vec<String> = j.members.iter().map(|m| m.member_id.clone()).collect();
            ids.sort();
            let key = (self.clients[ci].group.to_string(), j.generation_id);
            // A replaced static member legitimately renames a member within a generation.
            if !j.skip_assignment {
                if let Some(prev) = self.memberships.get(&key) {
                    check!(
                        self,
                        *prev == ids,
                        "generation {key:?} reused: {prev:?} then {ids:?}"
                    );
                }
            }
            self.memberships.insert(key, ids);
        }
        let c = &mut self.clients[ci];
        c.member_id = j.member_id.clone();
        c.generation = j.generation_id;
        c.phase = Phase::NeedSync;
        c.last_heartbeat = self.now;
        c.leader_plan = None;
        if j.leader == j.member_id && !j.skip_assignment {
            c.leader_plan = Some(range_assign(&j.members, &self.topics));
        }
    }

    fn on_sync(&mut self, ci: usize, r: Result<SyncResponse, GroupError>) {
        match r {
            Ok(s) => {
                let c = &mut self.clients[ci];
                c.phase = Phase::Stable;
                c.last_heartbeat = self.now;
                c.assignment = if s.assignment.is_empty() {
                    Vec::new()
                } else {
                    decode_assignment(&s.assignment).unwrap().topic_partitions()
                };
                self.stats.stable_syncs += 1;
            }
            Err(e) => {
                if e == GroupError::UnknownServerError {
                    self.stats.refused_too_large += 1;
                }
                self.on_error(ci, e)
            }
        }
    }

    fn join(&mut self, ci: usize) {
        let token = self.token();
        let c = &mut self.clients[ci];
        let version = if self.rng.chance(0.5) { 3 } else { 0 };
        let metadata = encode_subscription(&Subscription {
            version,
            topics: c.topics.clone(),
            generation_id: -1,
            user_data: c.fat.then(|| vec![0x5a; FAT_USER_DATA]),
            ..Default::default()
        });
        let req = JoinGroup {
            group_id: c.group.to_string(),
            member_id: c.member_id.clone(),
            group_instance_id: c.instance_id.clone(),
            client_id: c.client_id.clone(),
            client_host: "/sim".into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), metadata)],
            api_version: c.api_version,
        };
        c.phase = Phase::Joining;
        c.waiting = Some(token);
        let fx = self.coord.join_group(self.now, token, req);
        self.apply(fx, false);
    }

    fn sync(&mut self, ci: usize) {
        let token = self.token();
        let c = &mut self.clients[ci];
        let req = SyncGroup {
            group_id: c.group.to_string(),
            member_id: c.member_id.clone(),
            group_instance_id: c.instance_id.clone(),
            generation_id: c.generation,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: c.leader_plan.take().unwrap_or_default(),
        };
        c.phase = Phase::Syncing;
        c.waiting = Some(token);
        let fx = self.coord.sync_group(self.now, token, req);
        self.apply(fx, false);
    }

    fn heartbeat(&mut self, ci: usize) {
        let c = &self.clients[ci];
        let req = Heartbeat {
            group_id: c.group.to_string(),
            member_id: c.member_id.clone(),
            group_instance_id: c.instance_id.clone(),
            generation_id: c.generation,
        };
        let r = self.coord.heartbeat(self.now, req);
        self.clients[ci].last_heartbeat = self.now;
        if let Err(e) = r {
            self.on_error(ci, e);
        }
    }

    /// The error the coordinator must give this member commit, from its visible state.
    fn expected_commit_error(&self, ci: usize, generation: i32) -> Option<GroupError> {
        let c = &self.clients[ci];
        let Some(d) = self.coord.describe_group(c.group) else {
            return (generation >= 0).then_some(GroupError::IllegalGeneration);
        };
        if generation < 0 && d.state == GroupState::Empty {
            return None;
        }
        let owner = match &c.instance_id {
            Some(i) => d
                .members
                .iter()
                .find(|m| m.group_instance_id.as_ref() == Some(i))
                .map(|m| m.member_id.clone()),
            None => d
                .members
                .iter()
                .find(|m| m.member_id == c.member_id)
                .map(|m| m.member_id.clone()),
        };
        match owner {
            None => return Some(GroupError::UnknownMemberId),
            Some(o) if o != c.member_id => return Some(GroupError::FencedInstanceId),
            _ => {}
        }
        if generation != d.generation_id {
            return Some(GroupError::IllegalGeneration);
        }
        (d.state == GroupState::CompletingRebalance).then_some(GroupError::RebalanceInProgress)
    }

    fn member_commit(&mut self, ci: usize, stale: bool) {
        let c = &self.clients[ci];
        let mut generation = c.generation;
        if stale {
            generation -= 1 + self.rng.below(2) as i32;
        }
        let parts: Vec<(String, i32)> = if c.assignment.is_empty() {
            vec![("t0".into(), 0)]
        } else {
            c.assignment.clone()
        };
        let expected = self.expected_commit_error(ci, generation);
        let c = &mut self.clients[ci];
        c.next_offset += 1 + self.rng.below(50) as i64;
        let offset = c.next_offset;
        let req = OffsetCommit {
            group_id: c.group.to_string(),
            member_id: c.member_id.clone(),
            group_instance_id: c.instance_id.clone(),
            generation_id: generation,
            retention_time_ms: -1,
            api_version: 8,
            partitions: parts
                .iter()
                .map(|(t, p)| CommitPartition {
                    topic: t.clone(),
                    partition: *p,
                    offset,
                    leader_epoch: 0,
                    metadata: Some(format!("by {}", c.client_id)),
                })
                .collect(),
        };
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

    fn simple_commit(&mut self) {
        let t = if self.rng.chance(0.5) { "t0" } else { "t1" };
        let p = self.rng.below(2) as i32;
        let offset = self.rng.below(1000) as i64;
        let req = OffsetCommit {
            group_id: SIMPLE.into(),
            member_id: String::new(),
            group_instance_id: None,
            generation_id: -1,
            retention_time_ms: -1,
            api_version: 9,
            partitions: vec![CommitPartition {
                topic: t.into(),
                partition: p,
                offset,
                leader_epoch: -1,
                metadata: None,
            }],
        };
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
                .replay(self.now, &rec.key, rec.value.as_deref())
                .unwrap();
        }
        self.coord = fresh;
        // Parked requests die with the connections; clients retry their join.
        for c in &mut self.clients {
            if c.waiting.take().is_some() {
                c.phase = Phase::Idle;
            }
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
        for ci in 0..self.clients.len() {
            let c = &self.clients[ci];
            let due = matches!(c.phase, Phase::Stable | Phase::NeedSync)
                && self.now - c.last_heartbeat >= HEARTBEAT_EVERY;
            if due && (!c.slow || self.rng.chance(0.35)) {
                self.heartbeat(ci);
            }
        }
    }

    fn step(&mut self) {
        // Clients make progress on what they were doing.
        for ci in 0..self.clients.len() {
            let p = if self.clients[ci].slow { 0.15 } else { 0.6 };
            if !self.rng.chance(p) {
                continue;
            }
            match self.clients[ci].phase {
                Phase::Idle => self.join(ci),
                Phase::NeedSync => self.sync(ci),
                _ => {}
            }
        }
        match self.rng.below(100) {
            0..=29 => {
                let ms = self.rng.below(4_000) as i64;
                self.advance(ms);
            }
            30..=49 => {
                let ci = self.rng.below(self.clients.len() as u64) as usize;
                if self.clients[ci].phase == Phase::Stable {
                    self.member_commit(ci, false);
                }
            }
            50..=56 => {
                let ci = self.rng.below(self.clients.len() as u64) as usize;
                if self.clients[ci].generation >= 0 && self.clients[ci].phase != Phase::Crashed {
                    let stale = self.rng.chance(0.7);
                    self.member_commit(ci, stale);
                }
            }
            57..=62 => self.simple_commit(),
            63..=66 => {
                // Crash: stop everything (static members keep their identity on restart).
                let ci = self.rng.below(self.clients.len() as u64) as usize;
                let c = &mut self.clients[ci];
                c.phase = Phase::Crashed;
                c.waiting = None;
                c.assignment.clear();
                if c.instance_id.is_none() {
                    c.member_id.clear();
                }
            }
            67..=72 => {
                // Crashed clients come back: dynamic ones as new members, static ones
                // with an empty member id and their instance id (replacement).
                let ci = self.rng.below(self.clients.len() as u64) as usize;
                let c = &mut self.clients[ci];
                if c.phase == Phase::Crashed {
                    c.member_id.clear();
                    c.generation = -1;
                    c.phase = Phase::Idle;
                }
            }
            73..=76 => {
                let ci = self.rng.below(self.clients.len() as u64) as usize;
                let c = &self.clients[ci];
                if c.phase != Phase::Crashed && !c.member_id.is_empty() {
                    let req = LeaveGroup {
                        group_id: c.group.to_string(),
                        members: vec![LeavingMember {
                            member_id: c.member_id.clone(),
                            group_instance_id: c.instance_id.clone(),
                        }],
                    };
                    let (_, fx) = self.coord.leave_group(self.now, req);
                    self.apply(fx, false);
                    let c = &mut self.clients[ci];
                    c.member_id.clear();
                    c.generation = -1;
                    c.assignment.clear();
                    c.waiting = None;
                    c.phase = Phase::Crashed;
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
        for g in self.coord.list_groups() {
            if !matches!(g.state, GroupState::Stable | GroupState::Empty) {
                continue;
            }
            let live = self.coord.describe_group(&g.group_id).unwrap();
            let Some(written) = self.shadow.describe_recorded(&g.group_id) else {
                panic!(
                    "seed {} (t={}): {} is {:?} but was never written",
                    self.seed, self.now, g.group_id, g.state
                );
            };
            let summary = |d: &GroupDescription| {
                let mut m: Vec<(String, Vec<u8>)> = d
                    .members
                    .iter()
                    .map(|m| (m.member_id.clone(), m.assignment.clone()))
                    .collect();
                m.sort();
                (d.generation_id, d.leader.clone(), m)
            };
            check!(
                self,
                summary(&live) == summary(&written),
                "{} is {:?} as {:?} but the log says {:?}",
                g.group_id,
                g.state,
                summary(&live),
                summary(&written)
            );
        }
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
        for g in self.coord.list_groups() {
            let d = self.coord.describe_group(&g.group_id).unwrap();
            // (5) generations only increase within an incarnation.
            let seen = self
                .generations
                .entry(g.group_id.clone())
                .or_insert(d.generation_id);
            check!(
                self,
                d.generation_id >= *seen,
                "generation of {} went back",
                g.group_id
            );
            *seen = d.generation_id;
            // (1) the coordinator's Stable assignment has no partition twice.
            if d.state == GroupState::Stable {
                let mut owned = BTreeSet::new();
                for m in &d.members {
                    if m.assignment.is_empty() {
                        continue;
                    }
                    for tp in decode_assignment(&m.assignment).unwrap().topic_partitions() {
                        check!(
                            self,
                            owned.insert(tp.clone()),
                            "{tp:?} assigned twice in {}",
                            g.group_id
                        );
                    }
                }
                // ... and neither do clients that believe they are in that generation.
                let mut held = BTreeSet::new();
                for c in &self.clients {
                    // A client whose member was removed (and whose group may since have been
                    // deleted and recreated, restarting generations) is not in this generation.
                    let member = d.members.iter().any(|m| m.member_id == c.member_id);
                    if member
                        && c.group == g.group_id
                        && c.phase == Phase::Stable
                        && c.generation == d.generation_id
                    {
                        for tp in &c.assignment {
                            check!(
                                self,
                                held.insert(tp.clone()),
                                "clients share {tp:?} in {}",
                                g.group_id
                            );
                        }
                    }
                }
            }
        }
        // (2) every acknowledged commit is visible; nothing else is.
        let mut want: BTreeMap<String, BTreeMap<(String, i32), i64>> = BTreeMap::new();
        for ((g, t, p), (o, _)) in &self.model {
            want.entry(g.clone())
                .or_default()
                .insert((t.clone(), *p), *o);
        }
        let mut groups: BTreeSet<String> = want.keys().cloned().collect();
        groups.extend(self.coord.list_groups().into_iter().map(|g| g.group_id));
        for g in groups {
            let live: BTreeMap<(String, i32), i64> = self
                .coord
                .fetch_offsets(&g, None)
                .partitions
                .into_iter()
                .map(|f| ((f.topic, f.partition), f.offset))
                .collect();
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

/// The client-side range assignor: per topic, contiguous ranges over sorted members.
fn range_assign(members: &[JoinMember], topics: &BTreeMap<String, i32>) -> Vec<(String, Vec<u8>)> {
    let subs: Vec<(String, Vec<String>)> = members
        .iter()
        .map(|m| {
            (
                m.member_id.clone(),
                decode_subscription(&m.metadata).unwrap().topics,
            )
        })
        .collect();
    let mut out: BTreeMap<String, Vec<(String, i32)>> = BTreeMap::new();
    for (topic, &n) in topics {
        let mut who: Vec<&String> = subs
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        who.sort();
        if who.is_empty() {
            continue;
        }
        let k = who.len() as i32;
        let (per, extra) = (n / k, n % k);
        let mut next = 0;
        for (i, m) in who.iter().enumerate() {
            let count = per + i32::from((i as i32) < extra);
            for p in next..next + count {
                out.entry((*m).clone())
                    .or_default()
                    .push((topic.clone(), p));
            }
            next += count;
        }
    }
    subs.iter()
        .map(|(m, _)| {
            let parts = out.remove(m).unwrap_or_default();
            let a = Assignment {
                version: 0,
                partitions: group_by_topic(parts),
                user_data: None,
            };
            (m.clone(), encode_assignment(&a))
        })
        .collect()
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
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("SIM_SEEDS")
                .map_or(200, |n| n.parse().expect("SIM_SEEDS is a number"));
            (0..n).collect()
        }
    };
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
