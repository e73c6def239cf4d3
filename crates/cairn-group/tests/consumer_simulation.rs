//! Seeded simulation of consumer groups (KIP-848): clients join, heartbeat, acknowledge or
//! delay revocations, change subscriptions (names and regexes), leave for good or (static
//! members) for a while, and crash; topics are created and grow; writes fail (the request is
//! undone, as the runtime does) and the broker restarts from its log.
//!
//! Some clients speak the classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup; eager
//! or cooperative), so the group migrates online: a consumer-protocol member joining a live
//! classic group upgrades it, classic members live inside the consumer group, and the group
//! turns classic again when its last consumer-protocol member leaves (the migration policy is
//! drawn per seed). While the group is classic, its classic members elect a leader that
//! assigns ranges.
//!
//! Checked after every step:
//! (a) no partition is held by two members (assigned or still being revoked), and every
//!     client that is still a member holds only what the coordinator gives it or still
//!     waits for it to revoke;
//! (b) a failed write leaves the group exactly as it was;
//! (c) the live state equals a fresh coordinator's replay of the log (either group type);
//! and, every so often, once every member has heartbeated until the group is Stable:
//! (d) every partition of every subscribed topic is assigned, to exactly one member
//!     subscribed to it, and members' assignments equal their targets.
//!
//! A failure names its seed; rerun one with `SIM_SEED=<n>`, more with `SIM_SEEDS=<count>`,
//! longer with `SIM_STEPS=<steps>`; `SIM_TRACE=1` (with `--nocapture`) prints every step.

use std::collections::{BTreeMap, BTreeSet};

use cairn_group::consumer::{Assignment, TopicId};
use cairn_group::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, group_by_topic,
    Assignment as Wire, Subscription,
};
use cairn_group::*;
use cairn_runtime::{BatchTag, Coordinator};

const GROUP: &str = "sim";
const SESSION_MS: i32 = 45_000;
const REBALANCE_MS: i32 = 30_000;
/// Classic members' session timeout.
const CLASSIC_SESSION_MS: i32 = 10_000;

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
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => (0..std::env::var("SIM_SEEDS").map_or(default, |n| n.parse().expect("number")))
            .collect(),
    }
}

fn topic_id(name: &str) -> TopicId {
    let mut id = [0u8; 16];
    for (i, b) in name.bytes().enumerate() {
        id[i % 16] ^= b.wrapping_mul(31).wrapping_add(i as u8);
    }
    id[15] = id[15].wrapping_add(1);
    id
}

#[derive(Debug, Clone)]
struct Client {
    member_id: String,
    instance_id: Option<String>,
    /// 0: not in the group.
    epoch: i32,
    /// What it consumes now.
    owned: Assignment,
    /// Partitions the coordinator asked it to give up, which it holds on to for a while.
    revoking: Assignment,
    names: Option<Vec<String>>,
    regex: Option<String>,
    assignor: Option<String>,
    crashed: bool,
    /// Static member that left for a while (epoch -2 sent).
    away: bool,
    incarnation: u32,
    /// Set for a client of the classic protocol.
    classic: Option<ClassicClient>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Must (re)join.
    Idle,
    Joining(ReplyToken),
    /// Joined; must sync (the plan, if it leads a classic group, is kept aside).
    NeedSync,
    Syncing(ReplyToken),
    Stable,
}

#[derive(Debug, Clone)]
struct ClassicClient {
    generation: i32,
    phase: Phase,
    /// Reports its partitions when rejoining and gives up only what it loses (else it gives
    /// everything up before rejoining).
    cooperative: bool,
    plan: Vec<(String, Vec<u8>)>,
    /// The topics changed since its leader's plan: rejoin once synced.
    stale: bool,
}

struct Sim {
    seed: u64,
    step: usize,
    now: i64,
    rng: Rng,
    coord: GroupCoordinator,
    log: Vec<Record>,
    topics: BTreeMap<String, i32>,
    clients: Vec<Client>,
    seq: u64,
    /// Bumped with every topic change (never 0).
    topics_gen: u64,
    policy: MigrationPolicy,
    token: ReplyToken,
    /// Answers to parked requests, until their clients take them.
    inbox: BTreeMap<ReplyToken, Reply>,
}

/// The broker's topics; `generation` changes with them, as the broker's does.
fn snapshot(topics: &BTreeMap<String, i32>, generation: u64) -> TopicsSnapshot {
    let mut s = TopicsSnapshot::new(topics.iter().map(|(n, p)| TopicInfo {
        id: topic_id(n),
        name: n.clone(),
        partitions: *p,
    }));
    s.generation = generation;
    s
}

fn config(policy: MigrationPolicy) -> GroupConfig {
    GroupConfig {
        consumer_session_timeout_ms: SESSION_MS,
        consumer_max_size: 8,
        initial_rebalance_delay_ms: 0,
        migration: policy,
        ..GroupConfig::default()
    }
}

fn replay(log: &[Record], now: i64, policy: MigrationPolicy) -> GroupCoordinator {
    let mut c = GroupCoordinator::with_id_seed(config(policy), 1);
    for r in log {
        c.replay(now, r.tag, &r.key, r.value.as_deref())
            .expect("own record replays");
    }
    c.finish_load(now);
    c
}

fn union(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = a.clone();
    for (t, ps) in b {
        out.entry(*t).or_default().extend(ps);
    }
    out.retain(|_, ps| !ps.is_empty());
    out
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = ps
            .iter()
            .filter(|p| !b.get(t).is_some_and(|x| x.contains(p)))
            .copied()
            .collect();
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

fn of(list: &[(TopicId, Vec<i32>)]) -> Assignment {
    list.iter()
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .filter(|(_, ps): &(TopicId, BTreeSet<i32>)| !ps.is_empty())
        .collect()
}

fn subset(a: &Assignment, b: &Assignment) -> bool {
    minus(a, b).is_empty()
}

impl Sim {
    fn context(&self) -> String {
        format!("seed {} step {} at {} ms", self.seed, self.step, self.now)
    }

    fn describe(&self) -> Option<ConsumerGroupDescription> {
        self.coord.describe_consumer_group(GROUP).ok()
    }

    /// One request in its own runtime scope; the write fails with `fail`, and is then
    /// undone.
    fn run<T>(
        &mut self,
        fail: bool,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> (T, Effects),
    ) -> Option<T> {
        self.seq += 1;
        let seq = self.seq;
        let before = self.describe();
        self.coord.begin(seq);
        let (out, fx) = f(&mut self.coord, self.now);
        if fail && !fx.records.is_empty() {
            self.coord.revert_from(seq);
            let after = self.describe();
            assert_eq!(
                before,
                after,
                "{}: a failed write left changes",
                self.context()
            );
            return None;
        }
        self.log.extend(fx.records);
        self.inbox.extend(fx.replies);
        self.coord.forget_through(seq);
        Some(out)
    }

    /// One heartbeat of client `ci`; `subscription`: it sends its subscription (it changed),
    /// else it does sometimes, as clients resend unchanged fields after errors.
    fn heartbeat(&mut self, ci: usize, fail: bool, subscription: bool) {
        let c = self.clients[ci].clone();
        if c.crashed || c.away {
            return;
        }
        if c.classic.is_some() {
            return self.classic_step(ci);
        }
        let joining = c.epoch == 0;
        let owned: Assignment = union(&c.owned, &c.revoking);
        let req = ConsumerHeartbeat {
            group_id: GROUP.into(),
            member_id: c.member_id.clone(),
            member_epoch: c.epoch,
            instance_id: c.instance_id.clone(),
            rack_id: None,
            rebalance_timeout_ms: if joining { REBALANCE_MS } else { -1 },
            // A changed subscription names both fields (an empty one clears it).
            subscribed_topic_names: if subscription {
                Some(c.names.clone().unwrap_or_default())
            } else if joining || self.rng.chance(30) {
                c.names.clone()
            } else {
                None
            },
            subscribed_topic_regex: if subscription {
                Some(c.regex.clone().unwrap_or_default())
            } else if joining || self.rng.chance(30) {
                c.regex.clone()
            } else {
                None
            },
            server_assignor: c.assignor.clone(),
            topic_partitions: Some(
                owned
                    .iter()
                    .map(|(t, ps)| (*t, ps.iter().copied().collect()))
                    .collect(),
            ),
            client_id: "sim".into(),
            client_host: "/127.0.0.1".into(),
            api_version: 1,
        };
        let snap = snapshot(&self.topics, self.topics_gen);
        let Some(r) = self.run(fail, |co, now| co.consumer_heartbeat(now, req, &snap)) else {
            return;
        };
        let cl = &mut self.clients[ci];
        match r {
            Ok(resp) => {
                cl.epoch = resp.member_epoch;
                if let Some(a) = resp.assignment {
                    let a = of(&a);
                    // Partitions taken away: given up now, or (sometimes) held a while.
                    let lost = minus(&cl.owned, &a);
                    cl.revoking = union(&cl.revoking, &lost);
                    cl.owned = a;
                }
            }
            // GROUP_ID_NOT_FOUND: a live classic group it may not upgrade, or its group
            // turned classic again.
            Err(
                GroupError::FencedMemberEpoch
                | GroupError::UnknownMemberId
                | GroupError::GroupIdNotFound,
            ) => {
                cl.epoch = 0;
                cl.owned.clear();
                cl.revoking.clear();
            }
            Err(GroupError::UnreleasedInstanceId | GroupError::GroupMaxSizeReached) => {}
            Err(e) => panic!("{}: unexpected heartbeat error {e:?}", self.context()),
        }
    }

    /// Every member holds what it has and what it is revoking; nobody else holds it.
    fn check_ownership(&self) {
        let Some(d) = self.describe() else { return };
        let mut holder: BTreeMap<(TopicId, i32), String> = BTreeMap::new();
        for m in &d.members {
            for (t, ps) in union(&m.assignment, &m.pending_revocation) {
                for p in ps {
                    if let Some(other) = holder.insert((t, p), m.member_id.clone()) {
                        panic!(
                            "{}: partition {p} held by {other} and {}",
                            self.context(),
                            m.member_id
                        );
                    }
                }
            }
            assert!(
                m.pending_revocation.is_empty() || m.state == "unrevoked_partitions",
                "{}: revoking outside unrevoked_partitions",
                self.context()
            );
        }
        for c in &self.clients {
            if c.crashed || c.epoch <= 0 {
                continue;
            }
            let Some(m) = d.members.iter().find(|m| m.member_id == c.member_id) else {
                continue;
            };
            if m.member_epoch != c.epoch {
                continue;
            }
            let mine = union(&c.owned, &c.revoking);
            let broker = union(&m.assignment, &m.pending_revocation);
            assert!(
                subset(&mine, &broker),
                "{}: client {} consumes {mine:?}, broker gives {broker:?}",
                self.context(),
                c.member_id
            );
        }
    }

    fn check_replay(&self) {
        let fresh = replay(&self.log, self.now, self.policy);
        let live = self.describe();
        let replayed = fresh.describe_consumer_group(GROUP).ok();
        assert_eq!(live, replayed, "{}: replay differs", self.context());
        // A classic group: what its record says (its members, generation and assignments).
        assert_eq!(
            self.coord.recorded_state().get(GROUP),
            fresh.recorded_state().get(GROUP),
            "{}: the classic record differs on replay",
            self.context()
        );
    }

    fn names_of(&self, a: &Assignment) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for n in self.topics.keys() {
            if let Some(ps) = a.get(&topic_id(n)) {
                out.extend(ps.iter().map(|p| (n.clone(), *p)));
            }
        }
        out
    }

    fn ids_of(&self, pairs: &[(String, i32)]) -> Assignment {
        let mut out = Assignment::new();
        for (t, p) in pairs {
            if self.topics.get(t).is_some_and(|n| p < n) {
                out.entry(topic_id(t)).or_default().insert(*p);
            }
        }
        out
    }

    /// The classic leader's plan: ranges of each topic over the members subscribed to it.
    fn range_plan(&self, members: &[JoinMember]) -> Vec<(String, Vec<u8>)> {
        let mut subs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in members {
            let topics = decode_subscription(&m.metadata)
                .map(|s| s.topics)
                .unwrap_or_default();
            subs.insert(m.member_id.clone(), topics);
        }
        let mut plan: BTreeMap<String, Vec<(String, i32)>> =
            subs.keys().map(|m| (m.clone(), Vec::new())).collect();
        for (t, n) in &self.topics {
            let who: Vec<&String> = subs
                .iter()
                .filter(|(_, ts)| ts.contains(t))
                .map(|(m, _)| m)
                .collect();
            let k = who.len() as i32;
            for (i, m) in who.iter().enumerate() {
                let i = i as i32;
                for p in (i * n / k.max(1))..((i + 1) * n / k.max(1)) {
                    plan.get_mut(*m).unwrap().push((t.clone(), p));
                }
            }
        }
        plan.into_iter()
            .map(|(m, ps)| {
                let wire = Wire {
                    version: 1,
                    partitions: group_by_topic(ps),
                    user_data: None,
                };
                (m, encode_assignment(&wire))
            })
            .collect()
    }

    /// One move of a classic client: join, sync or heartbeat, as its phase says.
    fn classic_step(&mut self, ci: usize) {
        self.deliver();
        let c = self.clients[ci].clone();
        let cc = c.classic.clone().expect("classic");
        match cc.phase {
            Phase::Joining(_) | Phase::Syncing(_) => {}
            Phase::Idle => {
                if !cc.cooperative {
                    self.clients[ci].owned.clear();
                }
                let owned = self.names_of(&self.clients[ci].owned);
                let sub = Subscription {
                    version: 1,
                    topics: c.names.clone().unwrap_or_default(),
                    user_data: None,
                    owned_partitions: group_by_topic(owned),
                    generation_id: -1,
                    rack_id: None,
                };
                let req = JoinGroup {
                    group_id: GROUP.into(),
                    member_id: c.member_id.clone(),
                    group_instance_id: None,
                    client_id: "sim".into(),
                    client_host: "/127.0.0.1".into(),
                    session_timeout_ms: CLASSIC_SESSION_MS,
                    rebalance_timeout_ms: REBALANCE_MS,
                    protocol_type: "consumer".into(),
                    protocols: vec![("range".into(), encode_subscription(&sub))],
                    api_version: 5,
                };
                self.token += 1;
                let tok = self.token;
                let snap = snapshot(&self.topics, self.topics_gen);
                self.run(false, |co, now| {
                    ((), co.join_group_with_topics(now, tok, req, Some(&snap)))
                });
                self.clients[ci].classic.as_mut().unwrap().phase = Phase::Joining(tok);
            }
            Phase::NeedSync => {
                let req = SyncGroup {
                    group_id: GROUP.into(),
                    member_id: c.member_id.clone(),
                    group_instance_id: None,
                    generation_id: cc.generation,
                    protocol_type: Some("consumer".into()),
                    protocol_name: Some("range".into()),
                    assignments: cc.plan.clone(),
                };
                self.token += 1;
                let tok = self.token;
                self.run(false, |co, now| ((), co.sync_group(now, tok, req)));
                self.clients[ci].classic.as_mut().unwrap().phase = Phase::Syncing(tok);
            }
            Phase::Stable => {
                let req = Heartbeat {
                    group_id: GROUP.into(),
                    member_id: c.member_id.clone(),
                    group_instance_id: None,
                    generation_id: cc.generation,
                };
                let r = self
                    .run(false, |co, now| {
                        (co.heartbeat(now, req), Effects::default())
                    })
                    .expect("a heartbeat writes nothing");
                match r {
                    Ok(()) => {}
                    Err(GroupError::RebalanceInProgress) => {
                        self.clients[ci].classic.as_mut().unwrap().phase = Phase::Idle;
                    }
                    Err(
                        GroupError::UnknownMemberId
                        | GroupError::IllegalGeneration
                        | GroupError::CoordinatorNotAvailable,
                    ) => self.reset_classic(ci),
                    Err(e) => panic!(
                        "{}: unexpected classic heartbeat error {e:?}",
                        self.context()
                    ),
                }
            }
        }
        self.deliver();
    }

    /// A classic client that lost its membership: it starts over with no partitions.
    fn reset_classic(&mut self, ci: usize) {
        let cl = &mut self.clients[ci];
        cl.member_id.clear();
        cl.owned.clear();
        cl.epoch = 0;
        let cc = cl.classic.as_mut().unwrap();
        cc.phase = Phase::Idle;
        cc.generation = -1;
    }

    /// Hands parked answers to the classic clients waiting for them.
    fn deliver(&mut self) {
        for ci in 0..self.clients.len() {
            let Some(cc) = self.clients[ci].classic.clone() else {
                continue;
            };
            let tok = match cc.phase {
                Phase::Joining(t) | Phase::Syncing(t) => t,
                _ => continue,
            };
            let Some(reply) = self.inbox.remove(&tok) else {
                continue;
            };
            match reply {
                Reply::Join(Ok(r)) => {
                    let plan = if r.members.is_empty() {
                        Vec::new()
                    } else {
                        self.range_plan(&r.members)
                    };
                    let cl = &mut self.clients[ci];
                    cl.member_id = r.member_id;
                    let cc = cl.classic.as_mut().unwrap();
                    cc.generation = r.generation_id;
                    cc.plan = plan;
                    cc.stale = false;
                    cc.phase = Phase::NeedSync;
                }
                Reply::Join(Err(GroupError::MemberIdRequired { member_id })) => {
                    let cl = &mut self.clients[ci];
                    cl.member_id = member_id;
                    cl.classic.as_mut().unwrap().phase = Phase::Idle;
                }
                Reply::Join(Err(
                    GroupError::RebalanceInProgress | GroupError::GroupMaxSizeReached,
                ))
                | Reply::Sync(Err(GroupError::RebalanceInProgress)) => {
                    self.clients[ci].classic.as_mut().unwrap().phase = Phase::Idle;
                }
                Reply::Join(Err(GroupError::UnknownMemberId | GroupError::IllegalGeneration))
                | Reply::Sync(Err(GroupError::UnknownMemberId | GroupError::IllegalGeneration)) => {
                    self.reset_classic(ci)
                }
                Reply::Sync(Ok(r)) => {
                    let pairs = decode_assignment(&r.assignment)
                        .map(|a| a.topic_partitions())
                        .unwrap_or_default();
                    let owned = self.ids_of(&pairs);
                    let cl = &mut self.clients[ci];
                    cl.owned = owned;
                    let cc = cl.classic.as_mut().unwrap();
                    cl.epoch = cc.generation;
                    cc.phase = if cc.stale { Phase::Idle } else { Phase::Stable };
                    cc.stale = false;
                }
                other => panic!("{}: unexpected classic answer {other:?}", self.context()),
            }
        }
    }

    fn classic_group(&self) -> Option<GroupDescription> {
        self.coord
            .describe_group(GROUP)
            .filter(|d| !d.members.is_empty())
    }

    /// Lets every live member heartbeat (acknowledging at once) until the group is Stable,
    /// then checks the assignment covers every subscribed partition once.
    fn settle_and_check(&mut self) {
        for c in &mut self.clients {
            c.revoking.clear();
        }
        // Members of crashed or departed clients leave when their sessions end, while the
        // live ones keep heartbeating.
        for _ in 0..12 {
            for ci in 0..self.clients.len() {
                if !self.clients[ci].crashed && !self.clients[ci].away {
                    self.heartbeat(ci, false, false);
                    self.clients[ci].revoking.clear();
                }
            }
            self.now += 5_000;
            let _ = self.run(false, |co, now| ((), co.tick(now)));
        }
        for _ in 0..80 {
            for ci in 0..self.clients.len() {
                if !self.clients[ci].crashed && !self.clients[ci].away {
                    self.heartbeat(ci, false, false);
                    self.clients[ci].revoking.clear();
                }
            }
            if self.settled() {
                break;
            }
            // Classic rebalances may wait for a member's join timer.
            self.now += 500;
            let _ = self.run(false, |co, now| ((), co.tick(now)));
        }
        if let Some(d) = self.classic_group() {
            return self.check_classic(d);
        }
        let Some(d) = self.describe() else { return };
        if d.members.is_empty() {
            return;
        }
        assert_eq!(
            d.state,
            "Stable",
            "{}: no convergence: {d:?}",
            self.context()
        );
        let mut seen: BTreeMap<(TopicId, i32), &str> = BTreeMap::new();
        for m in &d.members {
            assert_eq!(m.assignment, m.target_assignment, "{}", self.context());
            for (t, ps) in &m.assignment {
                for p in ps {
                    assert!(seen.insert((*t, *p), &m.member_id).is_none());
                }
            }
        }
        // Every partition of every topic someone subscribes to is assigned.
        let names: BTreeSet<String> = d
            .members
            .iter()
            .flat_map(|m| {
                let re = m
                    .subscribed_topic_regex
                    .as_ref()
                    .map(|r| cairn_group::consumer::compile_regex(r).unwrap());
                self.topics
                    .keys()
                    .filter(move |n| {
                        m.subscribed_topic_names.contains(n)
                            || re.as_ref().is_some_and(|re| re.is_match(n))
                    })
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        for n in names {
            for p in 0..self.topics[&n] {
                assert!(
                    seen.contains_key(&(topic_id(&n), p)),
                    "{}: {n}-{p} unassigned in {d:?}",
                    self.context()
                );
            }
        }
    }

    /// Live classic clients, and whether each has synced.
    fn classic_clients_synced(&self) -> bool {
        self.clients
            .iter()
            .filter(|c| c.classic.is_some() && !c.crashed)
            .all(|c| c.classic.as_ref().unwrap().phase == Phase::Stable)
    }

    fn settled(&self) -> bool {
        if let Some(d) = self.classic_group() {
            return d.state == GroupState::Stable && self.classic_clients_synced();
        }
        self.describe()
            .is_some_and(|d| d.state == "Stable" || d.state == "Empty")
            && self.classic_clients_synced()
    }

    /// A Stable classic group: its members are the live classic clients of its generation,
    /// and their partitions cover every subscribed partition exactly once.
    fn check_classic(&self, d: GroupDescription) {
        assert_eq!(
            d.state,
            GroupState::Stable,
            "{}: classic group not stable: {d:?}",
            self.context()
        );
        let mut seen: BTreeMap<(TopicId, i32), &str> = BTreeMap::new();
        let mut names: BTreeSet<String> = BTreeSet::new();
        for m in &d.members {
            let c = self
                .clients
                .iter()
                .find(|c| c.member_id == m.member_id && !c.crashed)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: member {} is no live client",
                        self.context(),
                        m.member_id
                    )
                });
            assert_eq!(
                c.epoch,
                d.generation_id,
                "{}: {} not in the generation",
                self.context(),
                c.member_id
            );
            names.extend(c.names.clone().unwrap_or_default());
            for (t, ps) in &c.owned {
                for p in ps {
                    assert!(
                        seen.insert((*t, *p), &c.member_id).is_none(),
                        "{}: partition {p} owned twice in the classic group",
                        self.context()
                    );
                }
            }
        }
        for n in names {
            let Some(count) = self.topics.get(&n) else {
                continue;
            };
            for p in 0..*count {
                assert!(
                    seen.contains_key(&(topic_id(&n), p)),
                    "{}: {n}-{p} unowned in {d:?}",
                    self.context()
                );
            }
        }
    }

    fn step(&mut self) {
        self.step += 1;
        let fail = self.rng.chance(8);
        let action = self.rng.below(100);
        if std::env::var("SIM_TRACE").is_ok() {
            let consumer = self
                .describe()
                .map(|d| (d.state, d.group_epoch, d.members.len()));
            let classic = self
                .coord
                .describe_group(GROUP)
                .map(|d| (d.state, d.generation_id, d.members.len()));
            eprintln!(
                "step {} action {action} fail {fail} group {consumer:?} classic {classic:?}",
                self.step
            );
        }
        match action {
            0..=49 => {
                let ci = self.rng.below(self.clients.len() as u64) as usize;
                self.heartbeat(ci, fail, false);
                // Most revocations are acknowledged by the next heartbeat.
                if self.rng.chance(70) {
                    self.clients[ci].revoking.clear();
                }
            }
            50..=54 => {
                let ci = self.rng.below(self.clients.len() as u64) as usize;
                let c = self.clients[ci].clone();
                if c.classic.is_some() && !c.crashed && !c.member_id.is_empty() {
                    let req = LeaveGroup {
                        group_id: GROUP.into(),
                        members: vec![LeavingMember {
                            member_id: c.member_id.clone(),
                            group_instance_id: None,
                        }],
                    };
                    if self.run(fail, |co, now| co.leave_group(now, req)).is_some() {
                        self.reset_classic(ci);
                    }
                    return;
                }
                if c.crashed || c.epoch <= 0 || c.classic.is_some() {
                    return;
                }
                let temporary = c.instance_id.is_some() && self.rng.chance(50);
                let req = ConsumerHeartbeat {
                    group_id: GROUP.into(),
                    member_id: c.member_id.clone(),
                    member_epoch: if temporary { -2 } else { -1 },
                    instance_id: c.instance_id.clone(),
                    rebalance_timeout_ms: -1,
                    api_version: 1,
                    ..ConsumerHeartbeat::default()
                };
                let snap = snapshot(&self.topics, self.topics_gen);
                if let Some(r) = self.run(fail, |co, now| co.consumer_heartbeat(now, req, &snap)) {
                    if r.is_ok() {
                        let cl = &mut self.clients[ci];
                        cl.owned.clear();
                        cl.revoking.clear();
                        cl.epoch = 0;
                        cl.away = temporary;
                    }
                }
            }
            55..=59 => {
                // Crash: the process stops; a static member comes back later.
                let ci = self.rng.below(self.clients.len() as u64) as usize;
                let cl = &mut self.clients[ci];
                cl.crashed = true;
                cl.owned.clear();
                cl.revoking.clear();
                if let Some(cc) = cl.classic.as_mut() {
                    cc.phase = Phase::Idle;
                }
            }
            60..=64 => {
                // A crashed or away client starts again (a dynamic one with a new id).
                let ci = self.rng.below(self.clients.len() as u64) as usize;
                let cl = &mut self.clients[ci];
                if cl.crashed || cl.away {
                    cl.crashed = false;
                    cl.away = false;
                    cl.epoch = 0;
                    cl.incarnation += 1;
                    cl.member_id = format!("m{ci}-{}", cl.incarnation);
                    if cl.classic.is_some() {
                        self.reset_classic(ci);
                    }
                }
            }
            65..=69 => {
                let ci = self.rng.below(self.clients.len() as u64) as usize;
                let (mut names, mut regex) = self.subscription();
                if let Some(cc) = self.clients[ci].classic.as_mut() {
                    // A classic client names its topics, and rejoins to change them.
                    if !matches!(cc.phase, Phase::Stable | Phase::Idle) {
                        return;
                    }
                    cc.phase = Phase::Idle;
                    names = Some(names.unwrap_or_else(|| vec!["t0".into(), "t1".into()]));
                    regex = None;
                    let cl = &mut self.clients[ci];
                    cl.names = names;
                    cl.regex = regex;
                    return;
                }
                let cl = &mut self.clients[ci];
                cl.names = names;
                cl.regex = regex;
                // The client sends its new subscription with its next heartbeat: make
                // that a full one by rejoining the subscription fields.
                if cl.epoch > 0 {
                    self.heartbeat(ci, fail, true);
                }
            }
            70..=74 => {
                self.topics_gen += 1;
                // Classic clients see new partitions in their metadata and rejoin (the
                // classic coordinator does not look at topics).
                for c in &mut self.clients {
                    if let Some(cc) = c.classic.as_mut() {
                        if cc.phase == Phase::Stable {
                            cc.phase = Phase::Idle;
                        } else {
                            cc.stale = true;
                        }
                    }
                }
                let n = self.topics.len();
                if self.rng.chance(50) && n < 6 {
                    self.topics
                        .insert(format!("t{n}"), 1 + self.rng.below(4) as i32);
                } else {
                    let names: Vec<String> = self.topics.keys().cloned().collect();
                    let t = &names[self.rng.below(names.len() as u64) as usize];
                    let p = self.topics[t];
                    if p < 16 {
                        self.topics
                            .insert(t.clone(), p + 1 + self.rng.below(3) as i32);
                    }
                }
            }
            75..=89 => {
                self.now += 1 + self.rng.below(20_000) as i64;
                let _ = self.run(fail, |co, now| ((), co.tick(now)));
            }
            90..=93 => {
                // Broker restart: a new coordinator loads the log.
                self.coord = replay(&self.log, self.now, self.policy);
                // Requests in flight die with the connection; classic clients join again.
                self.inbox.clear();
                for c in &mut self.clients {
                    if let Some(cc) = c.classic.as_mut() {
                        if matches!(cc.phase, Phase::Joining(_) | Phase::Syncing(_)) {
                            cc.phase = Phase::Idle;
                        }
                    }
                }
            }
            _ => {
                if !fail {
                    self.settle_and_check();
                }
            }
        }
    }

    fn subscription(&mut self) -> (Option<Vec<String>>, Option<String>) {
        match self.rng.below(4) {
            0 => (None, Some("t[0-9]+".into())),
            1 => (None, Some("t[02468]".into())),
            2 => (Some(vec!["t0".into(), "t1".into()]), None),
            _ => (Some(vec!["t0".into()]), None),
        }
    }
}

fn run_seed(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let policy = match rng.below(6) {
        0 => MigrationPolicy::Disabled,
        1 => MigrationPolicy::Upgrade,
        2 => MigrationPolicy::Downgrade,
        _ => MigrationPolicy::Bidirectional,
    };
    let mut clients = Vec::new();
    let n = 3 + rng.below(4) as usize;
    for i in 0..n {
        // About a third speak the classic protocol (dynamic members, names only).
        let classic = rng.chance(35).then(|| ClassicClient {
            generation: -1,
            phase: Phase::Idle,
            cooperative: rng.chance(50),
            plan: Vec::new(),
            stale: false,
        });
        let is_static = classic.is_none() && rng.chance(40);
        let (names, regex) = match rng.below(3) {
            0 if classic.is_none() => (None, Some("t[0-9]+".to_string())),
            0 | 1 => (Some(vec!["t0".to_string(), "t1".to_string()]), None),
            _ => (Some(vec!["t0".to_string()]), None),
        };
        let member_id = if classic.is_some() {
            String::new()
        } else {
            format!("m{i}-0")
        };
        clients.push(Client {
            member_id,
            instance_id: is_static.then(|| format!("i{i}")),
            epoch: 0,
            owned: Assignment::new(),
            revoking: Assignment::new(),
            names,
            regex,
            assignor: match rng.below(3) {
                0 => Some("range".to_string()),
                1 => Some("uniform".to_string()),
                _ => None,
            },
            crashed: false,
            away: false,
            incarnation: 0,
            classic,
        });
    }
    let mut sim = Sim {
        seed,
        step: 0,
        now: 1_000_000,
        rng,
        coord: GroupCoordinator::with_id_seed(config(policy), 1),
        log: Vec::new(),
        topics: [("t0".to_string(), 4), ("t1".to_string(), 3)].into(),
        clients,
        seq: 0,
        topics_gen: 1,
        policy,
        token: 0,
        inbox: BTreeMap::new(),
    };
    for _ in 0..steps {
        sim.step();
        sim.check_ownership();
        sim.check_replay();
    }
    sim.settle_and_check();
    // The log holds only plain records.
    assert!(sim.log.iter().all(|r| r.tag == BatchTag::Plain));
}

#[test]
fn consumer_groups_under_churn_faults_and_restarts() {
    let steps = std::env::var("SIM_STEPS").map_or(400, |s| s.parse().expect("number"));
    for seed in seeds(30) {
        run_seed(seed, steps);
    }
}
