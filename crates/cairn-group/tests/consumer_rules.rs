//! The consumer group protocol's rules (KIP-848), one at a time, against the coordinator.

use std::collections::BTreeSet;

use cairn_group::consumer::{Assignment, TopicId};
use cairn_group::*;

const G: &str = "g";

fn tid(name: &str) -> TopicId {
    let mut id = [7u8; 16];
    for (i, b) in name.bytes().enumerate() {
        id[i % 16] = b;
    }
    id
}

fn topics(list: &[(&str, i32)]) -> TopicsSnapshot {
    TopicsSnapshot::new(list.iter().map(|(n, p)| TopicInfo {
        id: tid(n),
        name: n.to_string(),
        partitions: *p,
    }))
}

struct T {
    c: GroupCoordinator,
    now: i64,
    topics: TopicsSnapshot,
    log: Vec<Record>,
}

fn setup() -> T {
    T {
        c: GroupCoordinator::with_id_seed(GroupConfig::default(), 3),
        now: 1_000,
        topics: topics(&[("a", 6), ("b", 2)]),
        log: Vec::new(),
    }
}

fn join(member: &str, names: &[&str]) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: G.into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(names.iter().map(|s| s.to_string()).collect()),
        topic_partitions: Some(vec![]),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        api_version: 1,
        ..ConsumerHeartbeat::default()
    }
}

fn beat(member: &str, epoch: i32, owned: &Assignment) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: G.into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        topic_partitions: Some(flat(owned)),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        api_version: 1,
        ..ConsumerHeartbeat::default()
    }
}

fn flat(a: &Assignment) -> Vec<(TopicId, Vec<i32>)> {
    a.iter()
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .collect()
}

fn of(list: &[(TopicId, Vec<i32>)]) -> Assignment {
    list.iter()
        .map(|(t, ps)| (*t, ps.iter().copied().collect::<BTreeSet<i32>>()))
        .filter(|(_, ps)| !ps.is_empty())
        .collect()
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

impl T {
    fn hb(&mut self, req: ConsumerHeartbeat) -> Result<ConsumerHeartbeatResponse, GroupError> {
        let (r, fx) = self.c.consumer_heartbeat(self.now, req, &self.topics);
        self.log.extend(fx.records);
        r
    }

    fn tick(&mut self, ms: i64) -> Effects {
        self.now += ms;
        let fx = self.c.tick(self.now);
        self.log.extend(fx.records.clone());
        fx
    }

    fn describe(&self) -> ConsumerGroupDescription {
        self.c.describe_consumer_group(G).expect("a consumer group")
    }

    fn member(&self, id: &str) -> ConsumerMemberDescription {
        self.describe()
            .members
            .into_iter()
            .find(|m| m.member_id == id)
            .expect("member")
    }

    fn commit(
        &mut self,
        member: &str,
        epoch: i32,
        version: i16,
        parts: &[(&str, i32)],
    ) -> CommitResult {
        let req = OffsetCommit {
            group_id: G.into(),
            member_id: member.into(),
            group_instance_id: None,
            generation_id: epoch,
            retention_time_ms: -1,
            api_version: version,
            partitions: parts
                .iter()
                .map(|(t, p)| CommitPartition {
                    topic: t.to_string(),
                    partition: *p,
                    offset: 5,
                    leader_epoch: -1,
                    metadata: None,
                })
                .collect(),
        };
        let (r, fx) = self.c.commit_offsets(self.now, req);
        self.log.extend(fx.records);
        r
    }

    fn restart(&mut self) {
        let mut c = GroupCoordinator::with_id_seed(GroupConfig::default(), 4);
        for r in &self.log {
            c.replay(self.now, r.tag, &r.key, r.value.as_deref())
                .unwrap();
        }
        c.finish_load(self.now);
        self.c = c;
    }
}

#[test]
fn first_member_gets_everything_at_epoch_one() {
    let mut t = setup();
    let r = t.hb(join("m1", &["a", "b"])).unwrap();
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5_000);
    assert_eq!(count(&of(&r.assignment.unwrap())), 8);
    let d = t.describe();
    assert_eq!(
        (d.state, d.group_epoch, d.assignment_epoch),
        ("Stable", 1, 1)
    );
    assert_eq!(d.assignor_name, "uniform");
    // A heartbeat that changes nothing writes nothing and carries no assignment.
    let owned = t.member("m1").assignment;
    let before = t.log.len();
    let r = t.hb(beat("m1", 1, &owned)).unwrap();
    assert_eq!((r.member_epoch, r.assignment), (1, None));
    assert_eq!(t.log.len(), before);
}

#[test]
fn a_partition_moves_only_after_its_owner_revoked_it() {
    let mut t = setup();
    let r1 = t.hb(join("m1", &["a"])).unwrap();
    let owned1 = of(&r1.assignment.unwrap());
    assert_eq!(count(&owned1), 6);
    // m2 joins: epoch 2; it gets nothing yet, every partition is still m1's.
    let r2 = t.hb(join("m2", &["a"])).unwrap();
    assert_eq!(r2.member_epoch, 2);
    assert!(of(&r2.assignment.unwrap()).is_empty());
    assert_eq!(t.member("m2").state, "unreleased_partitions");
    // m1 still reports all six: it is asked to give three up and stays at epoch 1.
    let r = t.hb(beat("m1", 1, &owned1)).unwrap();
    assert_eq!(r.member_epoch, 1);
    let kept = of(&r.assignment.unwrap());
    assert_eq!(count(&kept), 3);
    let m1 = t.member("m1");
    assert_eq!(m1.state, "unrevoked_partitions");
    assert_eq!(count(&m1.pending_revocation), 3);
    assert_eq!(t.describe().state, "Reconciling");
    // m2 asks again: still nothing, m1 has not let go.
    let r = t.hb(beat("m2", 2, &Assignment::new())).unwrap();
    assert!(r.assignment.is_none_or(|a| a.is_empty()));
    // m1 acknowledges: epoch 2, and then m2 gets the three.
    let r = t.hb(beat("m1", 1, &kept)).unwrap();
    assert_eq!(r.member_epoch, 2);
    let r = t.hb(beat("m2", 2, &Assignment::new())).unwrap();
    let got = of(&r.assignment.unwrap());
    assert_eq!(count(&got), 3);
    for (tp, ps) in &got {
        assert!(ps.is_disjoint(kept.get(tp).unwrap_or(&BTreeSet::new())));
    }
    assert_eq!(t.describe().state, "Stable");
    // History: one record per epoch bump; the last reconciled.
    let h = t.c.rebalance_history(G);
    assert_eq!(h.last().unwrap().generation, Some(2));
    assert_eq!(h.last().unwrap().outcome, RebalanceOutcome::Stable);
    assert_eq!(h.last().unwrap().cause.kind(), "member_joined");
    assert_eq!(h.last().unwrap().members_before, 1);
    assert_eq!(h.last().unwrap().members_after, Some(2));
}

#[test]
fn epochs_are_fenced_as_kafka_does() {
    let mut t = setup();
    let r = t.hb(join("m1", &["a"])).unwrap();
    let owned = of(&r.assignment.unwrap());
    assert_eq!(
        t.hb(beat("m1", 5, &owned)),
        Err(GroupError::FencedMemberEpoch)
    );
    t.hb(join("m2", &["a"])).unwrap();
    // m1 revokes and moves to epoch 2 (previous 1).
    let r = t.hb(beat("m1", 1, &owned)).unwrap();
    let kept = of(&r.assignment.unwrap());
    let r = t.hb(beat("m1", 1, &kept)).unwrap();
    assert_eq!(r.member_epoch, 2);
    // The answer was lost: epoch 1 with a subset of its assignment is accepted...
    assert!(t.hb(beat("m1", 1, &kept)).is_ok());
    // ...but not with partitions it no longer has, nor an older epoch.
    assert_eq!(
        t.hb(beat("m1", 1, &owned)),
        Err(GroupError::FencedMemberEpoch)
    );
    // Epoch 0 is a join, and a join needs a full request.
    assert!(matches!(
        t.hb(beat("m1", 0, &Assignment::new())),
        Err(GroupError::InvalidRequest(_))
    ));
    assert_eq!(
        t.hb(beat("nobody", 1, &Assignment::new())),
        Err(GroupError::UnknownMemberId)
    );
    let mut other = beat("m1", 1, &Assignment::new());
    other.group_id = "missing".into();
    assert_eq!(t.hb(other), Err(GroupError::GroupIdNotFound));
}

#[test]
fn bad_requests_are_refused_before_anything_changes() {
    let mut t = setup();
    let mut r = join("m1", &["a"]);
    r.rebalance_timeout_ms = -1;
    assert!(matches!(t.hb(r), Err(GroupError::InvalidRequest(_))));
    let mut r = join("", &["a"]);
    r.api_version = 1;
    assert!(matches!(t.hb(r), Err(GroupError::InvalidRequest(_))));
    let mut r = join("m1", &["a"]);
    r.subscribed_topic_names = None;
    assert!(matches!(t.hb(r), Err(GroupError::InvalidRequest(_))));
    let mut r = join("m1", &["a"]);
    r.topic_partitions = Some(vec![(tid("a"), vec![0])]);
    assert!(matches!(t.hb(r), Err(GroupError::InvalidRequest(_))));
    let mut r = join("m1", &["a"]);
    r.server_assignor = Some("sticky".into());
    assert_eq!(t.hb(r), Err(GroupError::UnsupportedAssignor));
    let mut r = join("m1", &[]);
    r.subscribed_topic_names = None;
    r.subscribed_topic_regex = Some("a(".into());
    assert!(matches!(
        t.hb(r),
        Err(GroupError::InvalidRegularExpression(_))
    ));
    assert!(t.log.is_empty());
    assert!(t.c.describe_consumer_group(G).is_err());
    // v0 lets the broker name the member.
    let mut r = join("", &["a"]);
    r.api_version = 0;
    let resp = t.hb(r).unwrap();
    assert!(!resp.member_id.is_empty());
}

#[test]
fn static_member_leaves_for_a_while_and_comes_back() {
    let mut t = setup();
    let mut r = join("s1", &["a"]);
    r.instance_id = Some("i1".into());
    let got = of(&t.hb(r).unwrap().assignment.unwrap());
    let mut r = join("d1", &["a"]);
    r.instance_id = None;
    t.hb(r).unwrap();
    let epoch = t.describe().group_epoch;
    // Temporary leave: the assignment is kept, epoch -2, no new group epoch.
    let mut leave = beat("s1", 1, &got);
    leave.member_epoch = -2;
    leave.instance_id = Some("i1".into());
    assert_eq!(t.hb(leave).unwrap().member_epoch, -2);
    assert_eq!(t.describe().group_epoch, epoch);
    assert_eq!(t.member("s1").member_epoch, -2);
    // Someone else with the same instance while the old one is still active is refused.
    let mut r = join("d2", &["a"]);
    r.instance_id = Some("i1".into());
    // (the old one is away: this is the restart, with a new member id)
    let resp = t.hb(r).unwrap();
    assert_eq!(resp.member_id, "d2");
    assert_eq!(
        t.describe().group_epoch,
        epoch,
        "a static rejoin moves nothing"
    );
    let d = t.describe();
    assert!(d.members.iter().all(|m| m.member_id != "s1"));
    let d2 = t.member("d2");
    assert_eq!(
        d2.assignment, d2.target_assignment,
        "it takes the old incarnation's place"
    );
    // A second incarnation while d2 is active: refused.
    let mut r = join("d3", &["a"]);
    r.instance_id = Some("i1".into());
    assert_eq!(t.hb(r), Err(GroupError::UnreleasedInstanceId));
    // The instance with another member id.
    let mut r = beat("d1", 2, &Assignment::new());
    r.instance_id = Some("i1".into());
    assert_eq!(t.hb(r), Err(GroupError::FencedInstanceId));
}

#[test]
fn sessions_and_rebalance_timeouts_fence_members() {
    let mut t = setup();
    let owned = of(&t.hb(join("m1", &["a"])).unwrap().assignment.unwrap());
    t.hb(join("m2", &["a"])).unwrap();
    // m1 is asked to revoke and never does: fenced after its rebalance timeout (30 s).
    let r = t.hb(beat("m1", 1, &owned)).unwrap();
    assert_eq!(r.member_epoch, 1);
    t.tick(10_000);
    t.hb(beat("m2", 2, &Assignment::new())).unwrap();
    t.tick(21_000);
    assert!(t.describe().members.iter().all(|m| m.member_id != "m1"));
    let h = t.c.rebalance_history(G);
    assert_eq!(h.last().unwrap().cause.kind(), "member_fenced");
    assert_eq!(
        (
            h.last().unwrap().members_before,
            h.last().unwrap().members_after
        ),
        (2, Some(1))
    );
    // m2 now gets everything.
    let r = t.hb(beat("m2", 2, &Assignment::new())).unwrap();
    assert_eq!(count(&of(&r.assignment.unwrap())), 6);
    // m2 stops heartbeating: gone after the session timeout (45 s).
    t.tick(44_000);
    assert_eq!(t.describe().members.len(), 1);
    t.tick(2_000);
    assert_eq!(t.describe().state, "Empty");
    assert_eq!(
        t.c.rebalance_history(G).last().unwrap().cause.kind(),
        "session_timeout"
    );
}

#[test]
fn commits_are_fenced_by_member_epoch_per_partition() {
    let mut t = setup();
    let owned = of(&t.hb(join("m1", &["a"])).unwrap().assignment.unwrap());
    assert!(t
        .commit("m1", 1, 9, &[("a", 0)])
        .partitions
        .iter()
        .all(|p| p.2.is_ok()));
    assert_eq!(
        t.commit("m1", 1, 8, &[("a", 0)]).error,
        Some(GroupError::UnsupportedVersion)
    );
    assert_eq!(
        t.commit("zz", 1, 9, &[("a", 0)]).error,
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        t.commit("", -1, 9, &[("a", 0)]).error,
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        t.commit("m1", 2, 9, &[("a", 0)]).error,
        Some(GroupError::StaleMemberEpoch)
    );
    // m2 joins; m1 revokes and moves to epoch 2 keeping half its partitions.
    t.hb(join("m2", &["a"])).unwrap();
    let kept = of(&t.hb(beat("m1", 1, &owned)).unwrap().assignment.unwrap());
    assert_eq!(t.hb(beat("m1", 1, &kept)).unwrap().member_epoch, 2);
    let kept_p = *kept[&tid("a")].iter().next().unwrap();
    let gone_p = *owned[&tid("a")]
        .iter()
        .find(|p| !kept[&tid("a")].contains(p))
        .unwrap();
    // A commit still naming epoch 1: accepted for a partition held since epoch 1
    // (KIP-1251), refused for one it no longer has.
    let r = t.commit("m1", 1, 9, &[("a", kept_p), ("a", gone_p)]);
    assert_eq!(r.partitions[0].2, Ok(()));
    assert_eq!(r.partitions[1].2, Err(GroupError::StaleMemberEpoch));
    // A fetch names the member and its epoch.
    assert_eq!(t.c.check_consumer_fetch(G, "m1", 2), Ok(()));
    assert_eq!(
        t.c.check_consumer_fetch(G, "m1", 1),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        t.c.check_consumer_fetch(G, "x", 1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(t.c.check_consumer_fetch("classic-or-none", "x", 1), Ok(()));
}

#[test]
fn regex_and_new_partitions_bump_the_group_epoch() {
    let mut t = setup();
    let regex_join = |m: &str| {
        let mut r = join(m, &[]);
        r.subscribed_topic_names = None;
        r.subscribed_topic_regex = Some("a.*".into());
        r
    };
    // As in Kafka, a new regex is resolved after the heartbeat that brings it: its topics
    // come with a later heartbeat.
    let r = t.hb(regex_join("m1")).unwrap();
    assert_eq!((r.member_epoch, r.assignment), (1, Some(vec![])));
    let r = t.hb(beat("m1", 1, &Assignment::new())).unwrap();
    assert_eq!(r.member_epoch, 2);
    let got = of(&r.assignment.unwrap());
    assert_eq!(count(&got), 6, "matches a, not b; whole names only");
    let last_cause = |t: &T| t.c.rebalance_history(G).last().unwrap().cause.kind();
    assert_eq!(last_cause(&t), "regex_resolved");
    // A topic created later that the regex matches comes with the next heartbeat.
    t.topics = topics(&[("a", 6), ("b", 2), ("ab", 3), ("ba", 1)]);
    let r = t.hb(beat("m1", 2, &got)).unwrap();
    assert_eq!(r.member_epoch, 3);
    assert_eq!(count(&of(&r.assignment.unwrap())), 9);
    assert_eq!(last_cause(&t), "regex_resolved");
    t.topics = topics(&[("a", 8), ("b", 2), ("ab", 3), ("ba", 1)]);
    let owned = t.member("m1").assignment;
    let r = t.hb(beat("m1", 3, &owned)).unwrap();
    assert_eq!(
        (r.member_epoch, count(&of(&r.assignment.unwrap()))),
        (4, 11)
    );
    assert_eq!(last_cause(&t), "metadata_changed");
    // A deleted topic leaves the assignment.
    t.topics = topics(&[("a", 8)]);
    let owned = t.member("m1").assignment;
    let r = t.hb(beat("m1", 4, &owned)).unwrap();
    assert_eq!(t.describe().group_epoch, 5);
    // It must first stop consuming the deleted topic's partitions.
    assert_eq!(r.member_epoch, 4);
    let kept = of(&r.assignment.unwrap());
    assert_eq!(kept.keys().collect::<Vec<_>>(), vec![&tid("a")]);
    assert_eq!(t.hb(beat("m1", 4, &kept)).unwrap().member_epoch, 5);
    // Once nobody uses the regex it is forgotten: subscribing again resolves it anew.
    let mut leave = beat("m1", 5, &kept);
    leave.member_epoch = -1;
    t.hb(leave).unwrap();
    let r = t.hb(regex_join("m2")).unwrap();
    assert_eq!(r.assignment, Some(vec![]));
    let r = t
        .hb(beat("m2", r.member_epoch, &Assignment::new()))
        .unwrap();
    assert_eq!(count(&of(&r.assignment.unwrap())), 8);
}

#[test]
fn range_assignor_by_member_choice() {
    let mut t = setup();
    let mut r = join("m1", &["a"]);
    r.server_assignor = Some("range".into());
    t.hb(r).unwrap();
    assert_eq!(t.describe().assignor_name, "range");
}

#[test]
fn groups_survive_a_restart_with_their_epochs() {
    let mut t = setup();
    let owned = of(&t.hb(join("m1", &["a"])).unwrap().assignment.unwrap());
    t.hb(join("m2", &["a", "b"])).unwrap();
    t.hb(beat("m1", 1, &owned)).unwrap();
    let before = t.describe();
    t.restart();
    assert_eq!(t.describe(), before);
    assert_eq!(t.c.list_groups()[0].group_type, GroupType::Consumer);
    assert_eq!(t.c.list_groups()[0].state_name, "Reconciling");
    // The member carries on where it was.
    let kept = t.member("m1").assignment;
    assert_eq!(t.hb(beat("m1", 1, &kept)).unwrap().member_epoch, 2);
}

#[test]
fn deletion_and_offset_deletion() {
    let mut t = setup();
    let owned = of(&t.hb(join("m1", &["a"])).unwrap().assignment.unwrap());
    t.commit("m1", 1, 9, &[("a", 0), ("b", 0)]);
    let (r, _) = t.c.delete_groups(t.now, &[G.to_string()]);
    assert_eq!(r[0].1, Err(GroupError::NonEmptyGroup));
    let (r, fx) =
        t.c.delete_offsets(t.now, G, &[("a".into(), 0), ("b".into(), 0)]);
    t.log.extend(fx.records);
    let r = r.unwrap();
    assert_eq!(r[0].2, Err(GroupError::GroupSubscribedToTopic));
    assert_eq!(r[1].2, Ok(()));
    let mut leave = beat("m1", 1, &owned);
    leave.member_epoch = -1;
    assert_eq!(t.hb(leave).unwrap().member_epoch, -1);
    assert_eq!(t.describe().state, "Empty");
    let (r, fx) = t.c.delete_groups(t.now, &[G.to_string()]);
    t.log.extend(fx.records);
    assert_eq!(r[0].1, Ok(()));
    assert!(t.c.describe_consumer_group(G).is_err());
    t.restart();
    assert!(t.c.list_groups().is_empty());
}

#[test]
fn classic_members_join_consumer_groups_and_empty_groups_convert() {
    let mut t = setup();
    t.hb(join("m1", &["a"])).unwrap();
    assert!(
        t.c.describe_group(G).is_none(),
        "DescribeGroups is for classic groups"
    );
    let join_classic = JoinGroup {
        group_id: G.into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        member_id: String::new(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), vec![0, 0, 0, 0, 0, 0])],
        client_id: "c".into(),
        client_host: "/h".into(),
        api_version: 5,
    };
    // A classic member of another protocol type cannot join it.
    let other_type = JoinGroup {
        protocol_type: "connect".into(),
        ..join_classic.clone()
    };
    let fx = t.c.join_group(t.now, 1, other_type);
    assert!(matches!(
        &fx.replies[0].1,
        Reply::Join(Err(GroupError::InconsistentGroupProtocol))
    ));
    // A classic consumer may (online migration): it is asked for its member id first.
    let fx = t.c.join_group(t.now, 1, join_classic.clone());
    assert!(matches!(
        &fx.replies[0].1,
        Reply::Join(Err(GroupError::MemberIdRequired { .. }))
    ));
    // Empty it: a classic member may now take the group over.
    let mut leave = beat("m1", 1, &Assignment::new());
    leave.member_epoch = -1;
    t.hb(leave).unwrap();
    t.c.commit_offsets(t.now, {
        let mut c = OffsetCommit {
            group_id: G.into(),
            member_id: String::new(),
            group_instance_id: None,
            generation_id: -1,
            retention_time_ms: -1,
            api_version: 9,
            partitions: vec![],
        };
        c.partitions.push(CommitPartition {
            topic: "a".into(),
            partition: 1,
            offset: 42,
            leader_epoch: -1,
            metadata: None,
        });
        c
    });
    let fx = t.c.join_group(t.now, 2, join_classic);
    // The classic protocol's first answer to a new member: it is now a classic group.
    assert!(matches!(
        &fx.replies.first().map(|r| &r.1),
        Some(Reply::Join(Err(GroupError::MemberIdRequired { .. })))
    ));
    assert!(t.c.describe_consumer_group(G).is_err());
    let fetched = t.c.fetch_offsets(G, None);
    assert_eq!(
        fetched.partitions[0].offset, 42,
        "offsets survive the conversion"
    );
}
