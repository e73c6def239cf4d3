//! Seeded simulation of consumer groups (KIP-848): clients join, heartbeat, acknowledge or
//! delay revocations, change subscriptions (names and regexes), leave for good or (static
//! members) for a while, and crash; topics are created and grow; writes fail (the request is
//! undone, as the runtime does) and the broker restarts from its log.
//!
//! Checked after every step:
//! (a) no partition is held by two members (assigned or still being revoked), and every
//!     client that is still a member holds only what the coordinator gives it or still
//!     waits for it to revoke;
//! (b) a failed write leaves the group exactly as it was;
//! (c) the live state equals a fresh coordinator's replay of the log;
//! and, every so often, once every member has heartbeated until the group is Stable:
//! (d) every partition of every subscribed topic is assigned, to exactly one member
//!     subscribed to it, and members' assignments equal their targets.
//!
//! A failure names its seed; rerun one with `SIM_SEED=<n>`, more with `SIM_SEEDS=<count>`,
//! longer with `SIM_STEPS=<steps>`.

use std::collections::{BTreeMap, BTreeSet};

use cairn_group::consumer::{Assignment, TopicId};
use cairn_group::*;
use cairn_runtime::{BatchTag, Coordinator};

const GROUP: &str = "sim";
const SESSION_MS: i32 = 45_000;
const REBALANCE_MS: i32 = 30_000;

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

fn config() -> GroupConfig {
    GroupConfig {
        consumer_session_timeout_ms: SESSION_MS,
        consumer_max_size: 8,
        ..GroupConfig::default()
    }
}

fn replay(log: &[Record], now: i64) -> GroupCoordinator {
    let mut c = GroupCoordinator::with_id_seed(config(), 1);
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
            Err(GroupError::FencedMemberEpoch | GroupError::UnknownMemberId) => {
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
        let fresh = replay(&self.log, self.now);
        let live = self.describe();
        let replayed = fresh.describe_consumer_group(GROUP).ok();
        assert_eq!(live, replayed, "{}: replay differs", self.context());
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
        for _ in 0..40 {
            for ci in 0..self.clients.len() {
                if !self.clients[ci].crashed && !self.clients[ci].away {
                    self.heartbeat(ci, false, false);
                    self.clients[ci].revoking.clear();
                }
            }
            if self
                .describe()
                .is_some_and(|d| d.state == "Stable" || d.state == "Empty")
            {
                break;
            }
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

    fn step(&mut self) {
        self.step += 1;
        let fail = self.rng.chance(8);
        match self.rng.below(100) {
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
                if c.crashed || c.epoch <= 0 {
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
                }
            }
            65..=69 => {
                let ci = self.rng.below(self.clients.len() as u64) as usize;
                let (names, regex) = self.subscription();
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
                self.coord = replay(&self.log, self.now);
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
    let mut clients = Vec::new();
    let n = 3 + rng.below(4) as usize;
    for i in 0..n {
        let is_static = rng.chance(40);
        let (names, regex) = match rng.below(3) {
            0 => (None, Some("t[0-9]+".to_string())),
            1 => (Some(vec!["t0".to_string(), "t1".to_string()]), None),
            _ => (Some(vec!["t0".to_string()]), None),
        };
        clients.push(Client {
            member_id: format!("m{i}-0"),
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
        });
    }
    let mut sim = Sim {
        seed,
        step: 0,
        now: 1_000_000,
        rng,
        coord: GroupCoordinator::with_id_seed(config(), 1),
        log: Vec::new(),
        topics: [("t0".to_string(), 4), ("t1".to_string(), 3)].into(),
        clients,
        seq: 0,
        topics_gen: 1,
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
