//! Online migration between the classic and the consumer group protocols: a live classic
//! group upgraded by a consumer-protocol member, classic members working inside a consumer
//! group, and the way back when the last consumer-protocol member leaves.

use std::collections::{BTreeMap, BTreeSet};

use cairn_group::consumer::{Assignment, TopicId};
use cairn_group::consumer_protocol::{
    decode_assignment, encode_assignment, encode_subscription, group_by_topic, Assignment as Wire,
    Subscription,
};
use cairn_group::*;

const G: &str = "g";
const SESSION: i32 = 10_000;
const REBALANCE: i32 = 20_000;

fn tid(name: &str) -> TopicId {
    let mut id = [9u8; 16];
    for (i, b) in name.bytes().enumerate() {
        id[i % 16] = b;
    }
    id
}

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

struct T {
    c: GroupCoordinator,
    now: i64,
    topics: TopicsSnapshot,
    log: Vec<Record>,
    token: ReplyToken,
    /// Replies not yet taken, by token.
    replies: BTreeMap<ReplyToken, Reply>,
}

fn setup(cfg: GroupConfig) -> T {
    T {
        c: GroupCoordinator::with_id_seed(cfg, 11),
        now: 1_000,
        topics: TopicsSnapshot::new([TopicInfo {
            id: tid("a"),
            name: "a".into(),
            partitions: 6,
        }]),
        log: Vec::new(),
        token: 0,
        replies: BTreeMap::new(),
    }
}

fn subscription(owned: &[(String, i32)], protocol_version: i16) -> Vec<u8> {
    encode_subscription(&Subscription {
        version: protocol_version,
        topics: vec!["a".into()],
        user_data: None,
        owned_partitions: group_by_topic(owned.iter().cloned()),
        generation_id: -1,
        rack_id: None,
    })
}

fn parts(a: &Assignment) -> BTreeSet<i32> {
    a.get(&tid("a")).cloned().unwrap_or_default()
}

/// A classic client's view: its id, generation and partitions.
#[derive(Clone, Debug, Default)]
struct Classic {
    id: String,
    generation: i32,
    owned: Vec<(String, i32)>,
    protocol: String,
}

impl T {
    fn effects(&mut self, fx: Effects) {
        self.log.extend(fx.records);
        for (t, r) in fx.replies {
            self.replies.insert(t, r);
        }
    }

    fn hb(&mut self, req: ConsumerHeartbeat) -> Result<ConsumerHeartbeatResponse, GroupError> {
        let (r, fx) = self.c.consumer_heartbeat(self.now, req, &self.topics);
        self.effects(fx);
        r
    }

    fn consumer_join(&mut self, id: &str) -> ConsumerHeartbeatResponse {
        self.hb(ConsumerHeartbeat {
            group_id: G.into(),
            member_id: id.into(),
            member_epoch: 0,
            rebalance_timeout_ms: REBALANCE,
            subscribed_topic_names: Some(vec!["a".into()]),
            topic_partitions: Some(vec![]),
            client_id: "new".into(),
            client_host: "/h".into(),
            api_version: 1,
            ..ConsumerHeartbeat::default()
        })
        .expect("consumer member joins")
    }

    /// A consumer-protocol member leaves for good (epoch -1).
    fn consumer_leave(&mut self, id: &str) {
        self.hb(ConsumerHeartbeat {
            group_id: G.into(),
            member_id: id.into(),
            member_epoch: -1,
            rebalance_timeout_ms: -1,
            api_version: 1,
            ..ConsumerHeartbeat::default()
        })
        .expect("left");
    }

    fn consumer_beat(
        &mut self,
        id: &str,
        epoch: i32,
        owned: &BTreeSet<i32>,
    ) -> ConsumerHeartbeatResponse {
        self.hb(ConsumerHeartbeat {
            group_id: G.into(),
            member_id: id.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            topic_partitions: Some(vec![(tid("a"), owned.iter().copied().collect())]),
            client_id: "new".into(),
            client_host: "/h".into(),
            api_version: 1,
            ..ConsumerHeartbeat::default()
        })
        .expect("heartbeat")
    }

    fn join_req(&self, c: &Classic, protocol_version: i16) -> JoinGroup {
        JoinGroup {
            group_id: G.into(),
            member_id: c.id.clone(),
            group_instance_id: None,
            client_id: "old".into(),
            client_host: "/h".into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols: vec![(c.protocol.clone(), subscription(&c.owned, protocol_version))],
            api_version: 5,
        }
    }

    /// Sends a JoinGroup; returns its token.
    fn join(&mut self, req: JoinGroup) -> ReplyToken {
        self.token += 1;
        let t = self.token;
        let fx = self
            .c
            .join_group_with_topics(self.now, t, req, Some(&self.topics));
        self.effects(fx);
        t
    }

    fn take_join(&mut self, t: ReplyToken) -> Option<Result<JoinResponse, GroupError>> {
        match self.replies.remove(&t)? {
            Reply::Join(r) => Some(r),
            Reply::Sync(r) => panic!("a sync reply to a join: {r:?}"),
        }
    }

    fn sync(
        &mut self,
        c: &Classic,
        plan: Vec<(String, Vec<u8>)>,
    ) -> Result<SyncResponse, GroupError> {
        self.token += 1;
        let t = self.token;
        let fx = self.c.sync_group(
            self.now,
            t,
            SyncGroup {
                group_id: G.into(),
                member_id: c.id.clone(),
                group_instance_id: None,
                generation_id: c.generation,
                protocol_type: Some("consumer".into()),
                protocol_name: Some(c.protocol.clone()),
                assignments: plan,
            },
        );
        self.effects(fx);
        match self.replies.remove(&t) {
            Some(Reply::Sync(r)) => r,
            other => panic!("no sync reply: {other:?}"),
        }
    }

    fn classic_beat(&mut self, c: &Classic) -> Result<(), GroupError> {
        self.c.heartbeat(
            self.now,
            Heartbeat {
                group_id: G.into(),
                member_id: c.id.clone(),
                group_instance_id: None,
                generation_id: c.generation,
            },
        )
    }

    /// A full classic join and sync of `c` into a consumer group (answered at once).
    fn classic_rejoin(&mut self, c: &mut Classic, protocol_version: i16) {
        let t = self.join(self.join_req(c, protocol_version));
        let r = self
            .take_join(t)
            .expect("answered at once")
            .expect("joined");
        assert_eq!(r.leader, "", "no leader in a consumer group");
        assert!(r.members.is_empty());
        c.id = r.member_id;
        c.generation = r.generation_id;
        let s = self.sync(c, vec![]).expect("synced");
        c.owned = decode_assignment(&s.assignment).unwrap().topic_partitions();
    }

    fn tick(&mut self, ms: i64) {
        self.now += ms;
        let fx = self.c.tick(self.now);
        self.effects(fx);
    }

    fn describe(&self) -> ConsumerGroupDescription {
        self.c.describe_consumer_group(G).expect("a consumer group")
    }

    fn restart(&mut self) -> GroupCoordinator {
        let mut c = GroupCoordinator::with_id_seed(config(), 12);
        for r in &self.log {
            c.replay(self.now, r.tag, &r.key, r.value.as_deref())
                .unwrap();
        }
        c.finish_load(self.now);
        c
    }
}

/// Two classic members in a Stable classic group, three partitions each (the leader's range
/// plan).
fn classic_group(t: &mut T) -> (Classic, Classic) {
    let mut a = Classic {
        protocol: "range".into(),
        ..Classic::default()
    };
    let mut b = a.clone();
    for c in [&mut a, &mut b] {
        let tok = t.join(t.join_req(c, 1));
        match t.take_join(tok) {
            Some(Err(GroupError::MemberIdRequired { member_id })) => c.id = member_id,
            other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
        }
    }
    let ta = t.join(t.join_req(&a, 1));
    let ta_done = t.take_join(ta);
    let tb = t.join(t.join_req(&b, 1));
    // a was answered already (it formed generation 1) or now with b; either way drive both
    // through until both are in the same generation.
    let mut ra = ta_done;
    let mut rb = t.take_join(tb);
    if ra.is_none() {
        ra = t.take_join(ta);
    }
    if let Some(Ok(r)) = &ra {
        if rb.is_none() {
            // b's join started a new rebalance: a must rejoin.
            a.generation = r.generation_id;
            assert_eq!(t.classic_beat(&a), Err(GroupError::RebalanceInProgress));
            let ta2 = t.join(t.join_req(&a, 1));
            ra = t.take_join(ta2);
            rb = t.take_join(tb);
        }
    }
    let ra = ra.expect("a answered").expect("a joined");
    let rb = rb.expect("b answered").expect("b joined");
    assert_eq!(ra.generation_id, rb.generation_id);
    a.generation = ra.generation_id;
    b.generation = rb.generation_id;
    let (leader, follower) = if ra.leader == a.id {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let plan = |ps: &[i32]| {
        encode_assignment(&Wire {
            version: 1,
            partitions: vec![("a".into(), ps.to_vec())],
            user_data: None,
        })
    };
    let plan = vec![
        (leader.id.clone(), plan(&[0, 1, 2])),
        (follower.id.clone(), plan(&[3, 4, 5])),
    ];
    // The follower's sync parks until the leader's arrives.
    t.token += 1;
    let ft = t.token;
    let fx = t.c.sync_group(
        t.now,
        ft,
        SyncGroup {
            group_id: G.into(),
            member_id: follower.id.clone(),
            group_instance_id: None,
            generation_id: follower.generation,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: vec![],
        },
    );
    t.effects(fx);
    let s = t.sync(leader, plan).expect("leader synced");
    leader.owned = decode_assignment(&s.assignment).unwrap().topic_partitions();
    let s = match t.replies.remove(&ft) {
        Some(Reply::Sync(Ok(s))) => s,
        other => panic!("follower not answered: {other:?}"),
    };
    follower.owned = decode_assignment(&s.assignment).unwrap().topic_partitions();
    assert_eq!(t.c.describe_group(G).unwrap().state, GroupState::Stable);
    (a, b)
}

fn owned_set(c: &Classic) -> BTreeSet<i32> {
    c.owned.iter().map(|(_, p)| *p).collect()
}

/// No partition is held by two members, as the coordinator sees it.
fn assert_exclusive(t: &T) {
    let d = t.describe();
    let mut seen = BTreeSet::new();
    for m in &d.members {
        for p in parts(&m.assignment)
            .iter()
            .chain(&parts(&m.pending_revocation))
        {
            assert!(seen.insert(*p), "partition {p} held twice: {d:?}");
        }
    }
}

#[test]
fn a_live_classic_group_is_upgraded_and_downgraded_in_place() {
    let mut t = setup(config());
    let (mut a, mut b) = classic_group(&mut t);
    let generation = a.generation;
    // Offsets committed by a classic member before the upgrade.
    let commit = |member: &Classic, version: i16, generation: i32| OffsetCommit {
        group_id: G.into(),
        member_id: member.id.clone(),
        group_instance_id: None,
        generation_id: generation,
        retention_time_ms: -1,
        api_version: version,
        partitions: vec![CommitPartition {
            topic: "a".into(),
            partition: member.owned[0].1,
            offset: 17,
            leader_epoch: -1,
            metadata: None,
        }],
    };
    let (r, fx) = t.c.commit_offsets(t.now, commit(&a, 8, a.generation));
    t.effects(fx);
    assert!(r.partitions.iter().all(|p| p.2.is_ok()));

    // A consumer-protocol member joins the live classic group: it becomes a consumer group
    // at the classic generation + 1, and the classic members keep what they had.
    let rc = t.consumer_join("c");
    assert_eq!(rc.member_epoch, generation + 1);
    assert!(t.c.describe_group(G).is_none(), "no longer a classic group");
    let d = t.describe();
    assert_eq!(d.group_epoch, generation + 1);
    assert_eq!(d.members.len(), 3);
    let classic: Vec<_> = d.members.iter().filter(|m| m.member_type == 0).collect();
    assert_eq!(classic.len(), 2);
    for m in &classic {
        assert_eq!(
            m.member_epoch, generation,
            "classic members keep their generation"
        );
    }
    assert_exclusive(&t);
    let c_owned: BTreeSet<i32> = BTreeSet::new();
    assert!(
        rc.assignment.is_none_or(|a| a.is_empty()),
        "nothing is free yet"
    );

    // The classic members are told to rejoin; their heartbeats keep them alive meanwhile.
    assert_eq!(t.classic_beat(&a), Err(GroupError::RebalanceInProgress));
    assert_eq!(t.classic_beat(&b), Err(GroupError::RebalanceInProgress));

    // a is cooperative: it rejoins still owning its partitions, is asked to give one up.
    let before_a = owned_set(&a);
    t.classic_rejoin(&mut a, 1);
    assert_eq!(a.generation, generation, "still revoking: the old epoch");
    assert!(owned_set(&a).is_subset(&before_a));
    assert!(owned_set(&a).len() < before_a.len());
    assert_exclusive(&t);
    // Having revoked, it rejoins again and reaches the group's epoch.
    assert_eq!(t.classic_beat(&a), Err(GroupError::RebalanceInProgress));
    t.classic_rejoin(&mut a, 1);
    assert_eq!(a.generation, generation + 1);
    assert_eq!(t.classic_beat(&a), Ok(()));
    // b is eager: it gave everything up before rejoining.
    b.owned.clear();
    t.classic_rejoin(&mut b, 1);
    assert_eq!(b.generation, generation + 1);
    assert_exclusive(&t);
    // The consumer-protocol member picks up what was released.
    let r = t.consumer_beat("c", rc.member_epoch, &c_owned);
    let got: BTreeSet<i32> = r
        .assignment
        .map(|l| l.into_iter().flat_map(|(_, ps)| ps).collect())
        .unwrap_or_default();
    assert_eq!(got.len(), 2, "a third of six");
    assert_exclusive(&t);
    // b may have been waiting for partitions a still held: a heartbeat tells it to collect.
    if t.classic_beat(&b).is_err() {
        t.classic_rejoin(&mut b, 1);
    }
    let all: BTreeSet<i32> = owned_set(&a)
        .into_iter()
        .chain(owned_set(&b))
        .chain(got.iter().copied())
        .collect();
    assert_eq!(all.len(), 6, "every partition owned");
    assert_eq!(
        owned_set(&a).len() + owned_set(&b).len() + got.len(),
        6,
        "and once"
    );
    assert_eq!(t.describe().state, "Stable");

    // A classic member commits with its generation (its member epoch), at any version.
    let (r, fx) = t.c.commit_offsets(t.now, commit(&b, 7, b.generation));
    t.effects(fx);
    assert!(r.partitions.iter().all(|p| p.2.is_ok()), "{r:?}");
    let (r, _) = t.c.commit_offsets(t.now, commit(&b, 7, b.generation - 1));
    assert!(
        matches!(r.error, Some(GroupError::IllegalGeneration))
            || r.partitions
                .iter()
                .all(|p| p.2 == Err(GroupError::IllegalGeneration)),
        "{r:?}"
    );

    // A transactional commit names the generation too; a stale one is ILLEGAL_GENERATION for
    // a classic member (STALE_MEMBER_EPOCH is the consumer protocol's word).
    let txn = |generation: i32| TxnOffsetCommit {
        group_id: G.into(),
        transactional_id: "tx".into(),
        producer_id: 7,
        producer_epoch: 0,
        generation_id: generation,
        member_id: b.id.clone(),
        group_instance_id: None,
        topics: vec![(
            "a".into(),
            vec![TxnOffsetPartition {
                partition: 0,
                offset: 3,
                leader_epoch: -1,
                metadata: None,
            }],
        )],
    };
    let (r, _) = t.c.txn_offset_commit(t.now, &txn(b.generation - 1));
    assert_eq!(r[0].1[0].1, Err(GroupError::IllegalGeneration));

    // The state survives a restart: classic members and their protocols are recorded.
    let reloaded = t.restart();
    let d1 = t.describe();
    let d2 = reloaded.describe_consumer_group(G).unwrap();
    assert_eq!(d1, d2);

    // The consumer-protocol member leaves: the group turns classic again and rebalances.
    let mut leave = ConsumerHeartbeat {
        group_id: G.into(),
        member_id: "c".into(),
        member_epoch: -1,
        client_id: "new".into(),
        client_host: "/h".into(),
        api_version: 1,
        ..ConsumerHeartbeat::default()
    };
    leave.rebalance_timeout_ms = -1;
    t.hb(leave).unwrap();
    assert!(t.c.describe_consumer_group(G).is_err());
    let cd = t.c.describe_group(G).expect("a classic group again");
    assert_eq!(cd.state, GroupState::PreparingRebalance);
    assert_eq!(cd.members.len(), 2);
    assert_eq!(t.classic_beat(&a), Err(GroupError::RebalanceInProgress));
    // Both rejoin the classic way; a leader is elected and assigns.
    let ta = t.join(t.join_req(&a, 1));
    let tb = t.join(t.join_req(&b, 1));
    let ra = t.take_join(ta).expect("answered").expect("joined");
    let rb = t.take_join(tb).expect("answered").expect("joined");
    assert_eq!(ra.generation_id, rb.generation_id);
    assert!(ra.generation_id > generation + 1);
    assert!(!ra.leader.is_empty());
    // Offsets committed before and during the migration are still there.
    let fetched = t.c.fetch_offsets(G, None);
    assert!(fetched.partitions.iter().any(|p| p.offset == 17));
    // And the classic record of the downgraded group replays.
    let reloaded = t.restart();
    assert!(reloaded.describe_consumer_group(G).is_err());
    assert!(reloaded.describe_group(G).is_some());
}

#[test]
fn the_policy_decides_which_way_a_group_may_go() {
    // Disabled: a consumer-protocol member cannot join a live classic group.
    let mut t = setup(GroupConfig {
        migration: MigrationPolicy::Disabled,
        ..config()
    });
    classic_group(&mut t);
    let r = t.hb(ConsumerHeartbeat {
        group_id: G.into(),
        member_id: "c".into(),
        member_epoch: 0,
        rebalance_timeout_ms: REBALANCE,
        subscribed_topic_names: Some(vec!["a".into()]),
        topic_partitions: Some(vec![]),
        api_version: 1,
        ..ConsumerHeartbeat::default()
    });
    assert_eq!(r, Err(GroupError::GroupIdNotFound));
    assert!(
        t.c.describe_group(G).is_some(),
        "the classic group is untouched"
    );

    // Upgrade only: the group stays a consumer group when its last consumer member leaves.
    let mut t = setup(GroupConfig {
        migration: MigrationPolicy::Upgrade,
        ..config()
    });
    classic_group(&mut t);
    t.consumer_join("c");
    t.consumer_leave("c");
    let d = t.describe();
    assert_eq!(d.members.len(), 2);
    assert!(d.members.iter().all(|m| m.member_type == 0));
}

#[test]
fn classic_members_are_fenced_by_their_join_sync_and_session_timers() {
    let mut t = setup(config());
    let (a, mut b) = classic_group(&mut t);
    t.consumer_join("c");
    // a never rejoins after being told to: fenced after its rebalance timeout.
    assert_eq!(t.classic_beat(&a), Err(GroupError::RebalanceInProgress));
    // b rejoins but never syncs.
    b.owned.clear();
    let tb = t.join(t.join_req(&b, 1));
    let rb = t.take_join(tb).unwrap().unwrap();
    b.id = rb.member_id;
    // Keep both sessions alive past the rebalance timeout.
    for _ in 0..(REBALANCE / 5_000 + 1) {
        t.tick(5_000);
        let _ = t.classic_beat(&a);
        let _ = t.classic_beat(&Classic {
            generation: rb.generation_id,
            ..b.clone()
        });
    }
    let d = t.describe();
    let ids: Vec<_> = d.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec!["c"], "both classic members fenced: {d:?}");
    assert_exclusive(&t);
    // The session of a classic member is its own (10 s here, not the group's 45 s).
    let mut t = setup(config());
    classic_group(&mut t);
    t.consumer_join("c");
    for _ in 0..3 {
        t.tick(4_000);
        let d = t.describe();
        let c = d.members.iter().find(|m| m.member_id == "c").unwrap();
        let _ = t.consumer_beat("c", c.member_epoch, &parts(&c.assignment));
    }
    let d = t.describe();
    assert_eq!(d.members.len(), 1, "silent classic members expire: {d:?}");
}

#[test]
fn classic_joins_that_do_not_fit_are_refused() {
    let mut t = setup(config());
    classic_group(&mut t);
    t.consumer_join("c");
    // A new classic member speaking `protocol`, of protocol type `kind`: its join's answer.
    let mut answer = |protocol: &str, kind: &str| {
        let mut req = t.join_req(
            &Classic {
                protocol: protocol.into(),
                ..Classic::default()
            },
            1,
        );
        req.protocol_type = kind.into();
        let tok = t.join(req);
        t.take_join(tok)
    };
    // Another protocol type; a protocol no classic member speaks.
    let refused = Some(Err(GroupError::InconsistentGroupProtocol));
    assert_eq!(answer("range", "connect"), refused);
    assert_eq!(answer("roundrobin", "consumer"), refused);
    // A new member is asked for its id first, as in a classic group.
    assert!(matches!(
        answer("range", "consumer"),
        Some(Err(GroupError::MemberIdRequired { .. }))
    ));
    // A consumer-protocol member does not speak SyncGroup.
    let r = t.sync(
        &Classic {
            id: "c".into(),
            generation: t.describe().group_epoch,
            protocol: "range".into(),
            ..Classic::default()
        },
        vec![],
    );
    assert_eq!(r, Err(GroupError::UnknownMemberId));
}

#[test]
fn a_classic_member_replacing_the_last_static_consumer_member_downgrades_the_group() {
    let mut t = setup(config());
    let (a, _b) = classic_group(&mut t);
    // A static consumer-protocol member joins (the upgrade): the only consumer-protocol one.
    let r = t
        .hb(ConsumerHeartbeat {
            group_id: G.into(),
            member_id: "s".into(),
            member_epoch: 0,
            instance_id: Some("inst".into()),
            rebalance_timeout_ms: REBALANCE,
            subscribed_topic_names: Some(vec!["a".into()]),
            topic_partitions: Some(vec![]),
            api_version: 1,
            ..ConsumerHeartbeat::default()
        })
        .unwrap();
    assert!(r.member_epoch > 0);
    let target_of_s = t
        .describe()
        .members
        .into_iter()
        .find(|m| m.member_id == "s")
        .unwrap()
        .target_assignment;
    assert_eq!(t.describe().members.len(), 3);
    // The same instance restarts as a classic consumer: it takes the static member's place,
    // and the group, now all classic, turns classic without a rebalance.
    let mut req = t.join_req(
        &Classic {
            protocol: "range".into(),
            ..Classic::default()
        },
        1,
    );
    req.group_instance_id = Some("inst".into());
    let tok = t.join(req);
    let r = t.take_join(tok).unwrap().expect("joined");
    assert!(
        t.c.describe_consumer_group(G).is_err(),
        "a classic group again"
    );
    let d = t.c.describe_group(G).unwrap();
    assert_eq!(d.state, GroupState::Stable, "no rebalance");
    assert_eq!(d.members.len(), 3);
    assert_eq!(d.generation_id, r.generation_id);
    // Its SyncGroup gets what the static member was to get.
    let me = Classic {
        id: r.member_id.clone(),
        generation: r.generation_id,
        protocol: r.protocol_name.clone().unwrap(),
        owned: vec![],
    };
    let s = t.sync(&me, vec![]).expect("synced");
    let got: BTreeSet<i32> = decode_assignment(&s.assignment)
        .unwrap()
        .topic_partitions()
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(got, parts(&target_of_s));
    // a's generation moved with the group's epoch: it rejoins like any classic member.
    assert!(t.classic_beat(&a).is_err());
    let reloaded = t.restart();
    assert!(reloaded.describe_group(G).is_some());
}

#[test]
fn no_downgrade_when_the_classic_record_would_not_fit_the_offsets_topic() {
    let mut t = setup(GroupConfig {
        max_record_batch_bytes: 4_000,
        ..config()
    });
    classic_group(&mut t);
    t.consumer_join("c");
    // The offsets topic's max.message.bytes shrinks below what the classic record needs.
    t.c.set_max_record_batch_bytes(200);
    t.consumer_leave("c");
    let d = t.describe();
    assert_eq!(
        d.members.len(),
        2,
        "still a consumer group, of its classic members"
    );
    assert!(d.members.iter().all(|m| m.member_type == 0));
    // With room again, the group is left as it is until a consumer member comes and goes.
    t.c.set_max_record_batch_bytes(1_048_588);
    t.consumer_join("d");
    t.consumer_leave("d");
    assert!(t.c.describe_group(G).is_some(), "classic again");
}
