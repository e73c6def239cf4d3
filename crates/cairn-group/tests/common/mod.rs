//! What the two seeded simulations (`simulation.rs`, `runtime_simulation.rs`) share: the
//! client population and its protocol model (requests it sends, how it takes answers), the
//! leader's range assignor, and the invariants both check. Each simulation keeps its own
//! driver: how requests reach the coordinator and how records become durable.
//!
//! The random draws stay where the drivers make them (the order of draws is what a seed
//! replays), so nothing here takes the `Rng` except the population's set-up.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_group::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, group_by_topic,
    Assignment, Subscription,
};
use cairn_group::*;

pub const SESSION: i32 = 10_000;
pub const REBALANCE: i32 = 20_000;
pub const HEARTBEAT_EVERY: i64 = 3_000;
pub const RETENTION: i64 = 120_000;
pub const GROUPS: [&str; 2] = ["g0", "g1"];
pub const SIMPLE: &str = "simple";
/// The coordinator's idea of the offsets topic's `max.message.bytes`: two fat members fit,
/// three do not.
pub const MAX_BATCH: usize = 8_000;
/// User data carried by a fat member's subscription.
pub const FAT_USER_DATA: usize = 3_000;

/// Panics with the simulation's context (seed, time, ...) when `$cond` is false; with two
/// arguments, when the `Result` is an error.
macro_rules! check {
    ($sim:expr, $cond:expr, $($arg:tt)*) => {
        if !$cond {
            panic!("{}: {}", $sim.context(), format!($($arg)*));
        }
    };
    ($sim:expr, $res:expr) => {
        if let Err(e) = $res {
            panic!("{}: {e}", $sim.context());
        }
    };
}

pub fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        offsets_retention_ms: RETENTION,
        offsets_retention_check_interval_ms: 10_000,
        max_record_batch_bytes: MAX_BATCH,
        ..GroupConfig::default()
    }
}

/// The seeds to run: `SIM_SEED=<n>` alone, else `0..SIM_SEEDS` (or `0..default`).
pub fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("SIM_SEEDS")
                .map_or(default, |n| n.parse().expect("SIM_SEEDS is a number"));
            (0..n).collect()
        }
    }
}

/// SplitMix64-based PRNG; tiny and reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
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

pub struct Client {
    pub group: &'static str,
    pub client_id: String,
    pub instance_id: Option<String>,
    pub api_version: i16,
    pub topics: Vec<String>,
    pub member_id: String,
    pub generation: i32,
    pub phase: Phase,
    pub waiting: Option<ReplyToken>,
    /// Set on the leader: the assignment to send with SyncGroup.
    pub leader_plan: Option<Vec<(String, Vec<u8>)>>,
    pub assignment: Vec<(String, i32)>,
    pub last_heartbeat: i64,
    pub slow: bool,
    /// Joins with `FAT_USER_DATA` bytes of subscription user data.
    pub fat: bool,
    pub next_offset: i64,
}

/// Four clients per group in `GROUPS`, some static, some slow, some fat.
pub fn clients(rng: &mut Rng) -> Vec<Client> {
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
    clients
}

/// The topics the clients subscribe to, with their partition counts.
pub fn initial_topics() -> BTreeMap<String, i32> {
    let mut topics = BTreeMap::new();
    topics.insert("t0".to_string(), 3);
    topics.insert("t1".to_string(), 2);
    topics
}

impl Client {
    /// The JoinGroup this client sends, its subscription encoded in `subscription_version`;
    /// the client now waits for `token`.
    pub fn join(&mut self, token: ReplyToken, subscription_version: i16) -> JoinGroup {
        let metadata = encode_subscription(&Subscription {
            version: subscription_version,
            topics: self.topics.clone(),
            generation_id: -1,
            user_data: self.fat.then(|| vec![0x5a; FAT_USER_DATA]),
            ..Default::default()
        });
        self.phase = Phase::Joining;
        self.waiting = Some(token);
        JoinGroup {
            group_id: self.group.to_string(),
            member_id: self.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
            client_id: self.client_id.clone(),
            client_host: "/sim".into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), metadata)],
            api_version: self.api_version,
        }
    }

    /// The SyncGroup this client sends (with the leader's plan, if any); the client now waits
    /// for `token`.
    pub fn sync(&mut self, token: ReplyToken) -> SyncGroup {
        self.phase = Phase::Syncing;
        self.waiting = Some(token);
        SyncGroup {
            group_id: self.group.to_string(),
            member_id: self.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
            generation_id: self.generation,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: self.leader_plan.take().unwrap_or_default(),
        }
    }

    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            group_id: self.group.to_string(),
            member_id: self.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
            generation_id: self.generation,
        }
    }

    /// Whether a heartbeat is due at `now` (a slow client may still skip it).
    pub fn heartbeat_due(&self, now: i64) -> bool {
        matches!(self.phase, Phase::Stable | Phase::NeedSync)
            && now - self.last_heartbeat >= HEARTBEAT_EVERY
    }

    /// What a member commit covers: the assignment, or a partition it does not own.
    pub fn commit_partitions(&self) -> Vec<(String, i32)> {
        if self.assignment.is_empty() {
            vec![("t0".into(), 0)]
        } else {
            self.assignment.clone()
        }
    }

    /// A member commit of `offset` on `parts` in `generation` (possibly stale).
    pub fn commit(&self, generation: i32, parts: &[(String, i32)], offset: i64) -> OffsetCommit {
        OffsetCommit {
            group_id: self.group.to_string(),
            member_id: self.member_id.clone(),
            group_instance_id: self.instance_id.clone(),
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
                    metadata: Some(format!("by {}", self.client_id)),
                })
                .collect(),
        }
    }

    /// The LeaveGroup of a client that has a member id and is not crashed.
    pub fn leave(&self) -> Option<LeaveGroup> {
        if self.phase == Phase::Crashed || self.member_id.is_empty() {
            return None;
        }
        Some(LeaveGroup {
            group_id: self.group.to_string(),
            members: vec![LeavingMember {
                member_id: self.member_id.clone(),
                group_instance_id: self.instance_id.clone(),
            }],
        })
    }

    /// After its LeaveGroup was handled (answers it released included), the client stops.
    pub fn left(&mut self) {
        self.member_id.clear();
        self.generation = -1;
        self.assignment.clear();
        self.waiting = None;
        self.phase = Phase::Crashed;
    }

    /// Stops everything; a static member keeps its identity for its restart.
    pub fn crash(&mut self) {
        self.phase = Phase::Crashed;
        self.waiting = None;
        self.assignment.clear();
        if self.instance_id.is_none() {
            self.member_id.clear();
        }
    }

    /// A crashed client comes back: a dynamic one as a new member, a static one with an empty
    /// member id and its instance id (replacement).
    pub fn restart(&mut self) {
        if self.phase == Phase::Crashed {
            self.member_id.clear();
            self.generation = -1;
            self.phase = Phase::Idle;
        }
    }

    /// The coordinator restarted: a parked request died with its connection, and the client
    /// joins again.
    pub fn disconnected(&mut self) {
        if self.waiting.take().is_some() {
            self.phase = Phase::Idle;
        }
    }

    pub fn on_error(&mut self, e: GroupError) {
        self.assignment.clear();
        match e {
            GroupError::MemberIdRequired { member_id } => {
                self.member_id = member_id;
                self.phase = Phase::Idle;
            }
            GroupError::UnknownMemberId => {
                self.member_id.clear();
                self.generation = -1;
                self.phase = Phase::Idle;
            }
            // Java treats fencing as fatal for the instance.
            GroupError::FencedInstanceId => self.phase = Phase::Crashed,
            _ => self.phase = Phase::Idle,
        }
    }

    /// Takes a successful join: the leader plans the assignment unless told to skip it.
    pub fn on_joined(&mut self, j: &JoinResponse, now: i64, topics: &BTreeMap<String, i32>) {
        self.member_id = j.member_id.clone();
        self.generation = j.generation_id;
        self.phase = Phase::NeedSync;
        self.last_heartbeat = now;
        self.leader_plan = None;
        if j.leader == j.member_id && !j.skip_assignment {
            self.leader_plan = Some(range_assign(&j.members, topics));
        }
    }

    /// Takes a successful sync: the client owns its assignment.
    pub fn on_synced(&mut self, s: &SyncResponse, now: i64) {
        self.phase = Phase::Stable;
        self.last_heartbeat = now;
        self.assignment = if s.assignment.is_empty() {
            Vec::new()
        } else {
            decode_assignment(&s.assignment).unwrap().topic_partitions()
        };
    }
}

/// A simple group's commit (no member, no generation) of one partition.
pub fn simple_commit(topic: &str, partition: i32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        group_id: SIMPLE.into(),
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        retention_time_ms: -1,
        api_version: 9,
        partitions: vec![CommitPartition {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: None,
        }],
    }
}

/// The error the coordinator must give client `c`'s commit in `generation`, from the state
/// `coord` shows.
pub fn expected_commit_error(
    coord: &GroupCoordinator,
    c: &Client,
    generation: i32,
) -> Option<GroupError> {
    let Some(d) = coord.describe_group(c.group) else {
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

/// Membership handed to a leader, per (group, generation): one generation id must name one
/// membership. Call with every join answer.
pub fn note_membership(
    memberships: &mut HashMap<(String, i32), Vec<String>>,
    group: &str,
    j: &JoinResponse,
) -> Result<(), String> {
    if j.leader != j.member_id {
        return Ok(());
    }
    let mut ids: Vec<String> = j.members.iter().map(|m| m.member_id.clone()).collect();
    ids.sort();
    let key = (group.to_string(), j.generation_id);
    // A replaced static member legitimately renames a member within a generation.
    if !j.skip_assignment {
        if let Some(prev) = memberships.get(&key) {
            if *prev != ids {
                return Err(format!("generation {key:?} reused: {prev:?} then {ids:?}"));
            }
        }
    }
    memberships.insert(key, ids);
    Ok(())
}

/// Every Stable or Empty group of `live` shows exactly what the replay `written` of its
/// records holds (generation, leader, members, assignments); other states are rebalances in
/// progress, which Kafka never persists either.
pub fn shows_only_written(
    live: &GroupCoordinator,
    written: &GroupCoordinator,
) -> Result<(), String> {
    for g in live.list_groups() {
        if !matches!(g.state, GroupState::Stable | GroupState::Empty) {
            continue;
        }
        let shown = live.describe_group(&g.group_id).unwrap();
        let Some(recorded) = written.describe_recorded(&g.group_id) else {
            return Err(format!(
                "{} is {:?} but was never written",
                g.group_id, g.state
            ));
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
        if summary(&shown) != summary(&recorded) {
            return Err(format!(
                "{} is {:?} as {:?} but the log says {:?}",
                g.group_id,
                g.state,
                summary(&shown),
                summary(&recorded)
            ));
        }
    }
    Ok(())
}

/// For every group of `coord`: its generation never goes back within one coordinator
/// (`generations` holds the highest seen), and in a Stable group no partition is owned twice,
/// neither by the coordinator's assignment nor by the clients that believe they are in that
/// generation.
pub fn check_generations_and_ownership(
    coord: &GroupCoordinator,
    generations: &mut HashMap<String, i32>,
    clients: &[Client],
) -> Result<(), String> {
    for g in coord.list_groups() {
        let d = coord.describe_group(&g.group_id).unwrap();
        let seen = generations
            .entry(g.group_id.clone())
            .or_insert(d.generation_id);
        if d.generation_id < *seen {
            return Err(format!("generation of {} went back", g.group_id));
        }
        *seen = d.generation_id;
        if d.state != GroupState::Stable {
            continue;
        }
        let mut owned = BTreeSet::new();
        for m in &d.members {
            if m.assignment.is_empty() {
                continue;
            }
            for tp in decode_assignment(&m.assignment).unwrap().topic_partitions() {
                if !owned.insert(tp.clone()) {
                    return Err(format!("{tp:?} assigned twice in {}", g.group_id));
                }
            }
        }
        let mut held = BTreeSet::new();
        for c in clients {
            // A client whose member was removed (and whose group may since have been deleted
            // and recreated, restarting generations) is not in this generation.
            let member = d.members.iter().any(|m| m.member_id == c.member_id);
            if member
                && c.group == g.group_id
                && c.phase == Phase::Stable
                && c.generation == d.generation_id
            {
                for tp in &c.assignment {
                    if !held.insert(tp.clone()) {
                        return Err(format!("clients share {tp:?} in {}", g.group_id));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The acknowledged commits of `model` ((group, topic, partition) → (offset, time)), as
/// OffsetFetch should show them: per group, (topic, partition) → offset.
pub fn acknowledged_offsets(
    model: &BTreeMap<(String, String, i32), (i64, i64)>,
) -> BTreeMap<String, BTreeMap<(String, i32), i64>> {
    let mut want: BTreeMap<String, BTreeMap<(String, i32), i64>> = BTreeMap::new();
    for ((g, t, p), (o, _)) in model {
        want.entry(g.clone())
            .or_default()
            .insert((t.clone(), *p), *o);
    }
    want
}

/// What `coord` serves for `group` on OffsetFetch: (topic, partition) → offset.
pub fn served_offsets(coord: &GroupCoordinator, group: &str) -> BTreeMap<(String, i32), i64> {
    coord
        .fetch_offsets(group, None)
        .partitions
        .into_iter()
        .map(|f| ((f.topic, f.partition), f.offset))
        .collect()
}

/// The client-side range assignor: per topic, contiguous ranges over sorted members.
pub fn range_assign(
    members: &[JoinMember],
    topics: &BTreeMap<String, i32>,
) -> Vec<(String, Vec<u8>)> {
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

/// What the client model needs of a simulation's driver: its context for failures, its random
/// source and clients, and how each client request reaches the coordinator. The provided
/// methods are the client behaviour both simulations share; which happens when (the
/// schedule) stays with each driver.
pub trait Driver {
    /// Names the run (seed, time, ...) in a failure.
    fn context(&self) -> String;
    fn rng(&mut self) -> &mut Rng;
    fn clients(&self) -> &[Client];
    fn now(&self) -> i64;
    fn join(&mut self, ci: usize);
    fn sync(&mut self, ci: usize);
    fn heartbeat(&mut self, ci: usize);
    /// A commit by client `ci`, in its generation or (`stale`) an older one.
    fn member_commit(&mut self, ci: usize, stale: bool);

    /// Clients make progress on what they were doing: an idle one joins, a joined one syncs;
    /// slow clients seldom move.
    fn progress_clients(&mut self) {
        for ci in 0..self.clients().len() {
            let p = if self.clients()[ci].slow { 0.15 } else { 0.6 };
            if !self.rng().chance(p) {
                continue;
            }
            match self.clients()[ci].phase {
                Phase::Idle => self.join(ci),
                Phase::NeedSync => self.sync(ci),
                _ => {}
            }
        }
    }

    /// Heartbeats of the clients due one; a slow client misses most of them.
    fn send_heartbeats(&mut self) {
        for ci in 0..self.clients().len() {
            let c = &self.clients()[ci];
            let (due, slow) = (c.heartbeat_due(self.now()), c.slow);
            if due && (!slow || self.rng().chance(0.35)) {
                self.heartbeat(ci);
            }
        }
    }

    /// A random client.
    fn pick_client(&mut self) -> usize {
        let n = self.clients().len() as u64;
        self.rng().below(n) as usize
    }

    /// A random client commits in its generation, if it is Stable.
    fn commit_in_generation(&mut self) {
        let ci = self.pick_client();
        if self.clients()[ci].phase == Phase::Stable {
            self.member_commit(ci, false);
        }
    }

    /// A random client that has a generation and runs commits, mostly in a stale generation.
    fn commit_maybe_stale(&mut self) {
        let ci = self.pick_client();
        let c = &self.clients()[ci];
        if c.generation >= 0 && c.phase != Phase::Crashed {
            let stale = self.rng().chance(0.7);
            self.member_commit(ci, stale);
        }
    }
}
