//! Rebalance history: one record per rebalance, with its cause, phase times from `now`,
//! member counts and partitions moved (from real consumer-protocol assignments).

use cairn_group::consumer_protocol::{
    encode_assignment, encode_subscription, Assignment, Subscription,
};
use cairn_group::*;

const SESSION: i32 = 60_000;
const REBALANCE: i32 = 30_000;
const G: &str = "g";

fn cfg() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

fn sub(topics: &[&str]) -> Vec<u8> {
    encode_subscription(&Subscription {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        generation_id: -1,
        ..Default::default()
    })
}

/// A consumer-protocol assignment of partitions of topic "t".
fn assign(parts: &[i32]) -> Vec<u8> {
    encode_assignment(&Assignment {
        version: 0,
        partitions: vec![("t".into(), parts.to_vec())],
        user_data: None,
    })
}

struct H {
    c: GroupCoordinator,
    next_token: ReplyToken,
}

impl H {
    fn new() -> Self {
        H::with(cfg())
    }

    fn with(config: GroupConfig) -> Self {
        H {
            c: GroupCoordinator::new(config),
            next_token: 0,
        }
    }

    fn token(&mut self) -> ReplyToken {
        self.next_token += 1;
        self.next_token
    }

    /// A v3 join (no MEMBER_ID_REQUIRED round trip).
    fn join_with(
        &mut self,
        now: i64,
        member: &str,
        instance: Option<&str>,
        protocols: Vec<(String, Vec<u8>)>,
    ) -> (ReplyToken, Effects) {
        let t = self.token();
        let req = JoinGroup {
            group_id: G.into(),
            member_id: member.into(),
            group_instance_id: instance.map(str::to_string),
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            protocol_type: "consumer".into(),
            protocols,
            api_version: 3,
        };
        let fx = self.c.join_group(now, t, req);
        (t, fx)
    }

    fn join(&mut self, now: i64, member: &str) -> (ReplyToken, Effects) {
        self.join_with(now, member, None, vec![("range".into(), sub(&["t"]))])
    }

    fn sync(
        &mut self,
        now: i64,
        member: &str,
        generation: i32,
        a: Vec<(String, Vec<u8>)>,
    ) -> Effects {
        let t = self.token();
        let req = SyncGroup {
            group_id: G.into(),
            member_id: member.into(),
            generation_id: generation,
            assignments: a,
            ..Default::default()
        };
        let fx = self.c.sync_group(now, t, req);
        assert!(
            matches!(sync_reply(&fx, t), None | Some(Ok(_))),
            "sync refused: {fx:?}"
        );
        fx
    }

    fn heartbeat(&mut self, now: i64, member: &str, generation: i32) {
        let _ = self.c.heartbeat(
            now,
            Heartbeat {
                group_id: G.into(),
                member_id: member.into(),
                group_instance_id: None,
                generation_id: generation,
            },
        );
    }

    fn history(&self) -> Vec<RebalanceRecord> {
        self.c.rebalance_history(G)
    }

    fn last(&self) -> RebalanceRecord {
        self.history().pop().expect("a record")
    }

    /// A alone at generation 1 owning t-0..3 (joined at 0, synced at 10), then B joins at
    /// 1000, A rejoins at 1400 and syncs at 1500 (A: 0,1; B: 2,3), B syncs at 1600.
    fn stable_pair(&mut self) -> (String, String) {
        let (t, fx) = self.join(0, "");
        let a = join_reply(&fx, t).unwrap().unwrap().member_id;
        self.sync(10, &a, 1, vec![(a.clone(), assign(&[0, 1, 2, 3]))]);
        let (tb, fx) = self.join(1000, "");
        assert!(join_reply(&fx, tb).is_none(), "B waits for A");
        let (ta, fx) = self.join(1400, &a);
        let b = join_reply(&fx, tb).unwrap().unwrap().member_id;
        assert_eq!(join_reply(&fx, ta).unwrap().unwrap().generation_id, 2);
        let plan = vec![(a.clone(), assign(&[0, 1])), (b.clone(), assign(&[2, 3]))];
        let fx = self.sync(1500, &a, 2, plan);
        assert_eq!(
            fx.rebalances.len(),
            1,
            "the rebalance ends with the leader's sync"
        );
        self.sync(1600, &b, 2, vec![]);
        (a, b)
    }
}

fn join_reply(fx: &Effects, token: ReplyToken) -> Option<Result<JoinResponse, GroupError>> {
    fx.replies.iter().find_map(|(t, r)| match r {
        Reply::Join(j) if *t == token => Some(j.clone()),
        _ => None,
    })
}

fn sync_reply(fx: &Effects, token: ReplyToken) -> Option<Result<SyncResponse, GroupError>> {
    fx.replies.iter().find_map(|(t, r)| match r {
        Reply::Sync(s) if *t == token => Some(s.clone()),
        _ => None,
    })
}

/// The rebalance started by `trigger` with A (and B, when given) rejoining and A syncing.
fn rejoin_and_sync(
    h: &mut H,
    now: i64,
    members: &[&str],
    generation: i32,
    plan: Vec<(String, Vec<u8>)>,
) {
    for m in members {
        h.join(now, m);
    }
    assert_eq!(
        h.c.describe_group(G).unwrap().state,
        GroupState::CompletingRebalance
    );
    h.sync(now + 5, members[0], generation, plan);
}

#[test]
fn first_rebalance_is_member_joined_with_times_and_moves() {
    let mut h = H::new();
    let (t, fx) = h.join(100, "");
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    assert!(fx.rebalances.is_empty(), "still in progress");
    let r = h.last();
    assert_eq!(
        r.cause,
        RebalanceCause::MemberJoined {
            member_id: a.clone()
        }
    );
    assert_eq!(r.cause.kind(), "member_joined");
    assert_eq!((r.seq, r.from_generation, r.generation), (0, 0, Some(1)));
    assert_eq!(
        (r.started_ms, r.join_completed_ms, r.completed_ms),
        (100, Some(100), None)
    );
    assert_eq!((r.members_before, r.members_after), (0, Some(1)));
    assert_eq!(r.outcome, RebalanceOutcome::InProgress);

    let fx = h.sync(130, &a, 1, vec![(a.clone(), assign(&[0, 1, 2]))]);
    let done = h.last();
    assert_eq!(fx.rebalances, vec![done.clone()]);
    assert_eq!(done.outcome, RebalanceOutcome::Stable);
    assert_eq!(done.completed_ms, Some(130));
    assert_eq!(
        (done.preparing_ms(), done.completing_ms(), done.total_ms()),
        (Some(0), Some(30), Some(30))
    );
    assert_eq!(done.partitions_moved, Some(3), "all newly assigned");
    // Followers' syncs and heartbeats end nothing more.
    let fx = h.sync(140, &a, 1, vec![]);
    assert!(fx.rebalances.is_empty());
}

#[test]
fn member_joined_durations_and_partitions_moved() {
    let mut h = H::new();
    let (a, b) = h.stable_pair();
    let hist = h.history();
    assert_eq!(hist.len(), 2);
    let r = &hist[1];
    assert_eq!(
        r.cause,
        RebalanceCause::MemberJoined {
            member_id: b.clone()
        }
    );
    assert_eq!((r.from_generation, r.generation), (1, Some(2)));
    assert_eq!(
        (r.started_ms, r.join_completed_ms, r.completed_ms),
        (1000, Some(1400), Some(1500))
    );
    assert_eq!(
        (r.preparing_ms(), r.completing_ms(), r.total_ms()),
        (Some(400), Some(100), Some(500))
    );
    assert_eq!((r.members_before, r.members_after), (1, Some(2)));
    assert_eq!(r.partitions_moved, Some(2), "t-2 and t-3 went from A to B");
    assert_eq!(r.outcome, RebalanceOutcome::Stable);
    assert!(hist[0].seq < hist[1].seq);
    let _ = a;
}

#[test]
fn member_left() {
    let mut h = H::new();
    let (a, b) = h.stable_pair();
    let (_, fx) = h.c.leave_group(
        5000,
        LeaveGroup {
            group_id: G.into(),
            members: vec![LeavingMember {
                member_id: b.clone(),
                group_instance_id: None,
            }],
        },
    );
    assert!(fx.rebalances.is_empty());
    let r = h.last();
    assert_eq!(r.cause, RebalanceCause::MemberLeft { member_id: b });
    assert_eq!(r.cause.kind(), "member_left");
    assert_eq!(
        (r.started_ms, r.members_before, r.from_generation),
        (5000, 2, 2)
    );
    rejoin_and_sync(
        &mut h,
        5200,
        &[&a],
        3,
        vec![(a.clone(), assign(&[0, 1, 2, 3]))],
    );
    let r = h.last();
    assert_eq!((r.members_after, r.partitions_moved), (Some(1), Some(2)));
    assert_eq!((r.preparing_ms(), r.completing_ms()), (Some(200), Some(5)));
}

#[test]
fn last_member_leaving_empties_the_group() {
    let mut h = H::new();
    let (t, fx) = h.join(0, "");
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    h.sync(10, &a, 1, vec![(a.clone(), assign(&[0, 1]))]);
    let (_, fx) = h.c.leave_group(
        900,
        LeaveGroup {
            group_id: G.into(),
            members: vec![LeavingMember {
                member_id: a.clone(),
                group_instance_id: None,
            }],
        },
    );
    let r = h.last();
    assert_eq!(fx.rebalances, vec![r.clone()]);
    assert_eq!(r.outcome, RebalanceOutcome::Emptied);
    assert_eq!((r.from_generation, r.generation), (1, Some(2)));
    assert_eq!(
        (r.started_ms, r.join_completed_ms, r.completed_ms),
        (900, Some(900), Some(900))
    );
    assert_eq!((r.members_before, r.members_after), (1, Some(0)));
    assert_eq!(r.partitions_moved, Some(2), "no longer assigned");
    // A newcomer starts from nothing: everything it gets counts as moved.
    let (t, fx) = h.join(2000, "");
    let c = join_reply(&fx, t).unwrap().unwrap().member_id;
    h.sync(2010, &c, 3, vec![(c.clone(), assign(&[0, 1]))]);
    let r = h.last();
    assert_eq!((r.members_before, r.partitions_moved), (0, Some(2)));
}

#[test]
fn session_timeout_via_tick() {
    let mut h = H::new();
    let (a, b) = h.stable_pair();
    h.heartbeat(50_000, &a, 2);
    let deadline = 1600 + i64::from(SESSION);
    let fx = h.c.tick(deadline - 1);
    assert!(fx.is_empty());
    let fx = h.c.tick(deadline);
    assert!(fx.rebalances.is_empty());
    let r = h.last();
    assert_eq!(r.cause, RebalanceCause::SessionTimeout { member_id: b });
    assert_eq!(r.cause.kind(), "session_timeout");
    assert_eq!(
        (r.started_ms, r.from_generation, r.members_before),
        (deadline, 2, 2)
    );
    rejoin_and_sync(
        &mut h,
        deadline + 700,
        &[&a],
        3,
        vec![(a.clone(), assign(&[0, 1, 2, 3]))],
    );
    let r = h.last();
    assert_eq!(r.outcome, RebalanceOutcome::Stable);
    assert_eq!((r.preparing_ms(), r.total_ms()), (Some(700), Some(705)));
}

#[test]
fn leader_rejoin_and_metadata_change() {
    let mut h = H::new();
    let (a, b) = h.stable_pair();
    h.join(3000, &a);
    let r = h.last();
    assert_eq!(
        r.cause,
        RebalanceCause::LeaderRejoined {
            member_id: a.clone()
        }
    );
    assert_eq!(r.cause.kind(), "leader_rejoined");
    h.join(3100, &b);
    let same = vec![(a.clone(), assign(&[0, 1])), (b.clone(), assign(&[2, 3]))];
    h.sync(3200, &a, 3, same.clone());
    let r = h.last();
    assert_eq!(r.partitions_moved, Some(0), "the same assignment again");

    // A follower with a new subscription.
    let (_, _) = h.join_with(4000, &b, None, vec![("range".into(), sub(&["t", "u"]))]);
    let r = h.last();
    assert_eq!(
        r.cause,
        RebalanceCause::MemberRejoinedWithNewMetadata {
            member_id: b.clone()
        }
    );
    assert_eq!(r.cause.kind(), "member_metadata_changed");
    h.join(4100, &a);
    let swapped = vec![(a.clone(), assign(&[2, 3])), (b.clone(), assign(&[0, 1]))];
    h.sync(4200, &a, 4, swapped);
    assert_eq!(h.last().partitions_moved, Some(4));
    // A follower rejoining with the same metadata changes nothing.
    let before = h.history();
    let (t, fx) = h.join_with(5000, &b, None, vec![("range".into(), sub(&["t", "u"]))]);
    assert!(join_reply(&fx, t).unwrap().is_ok());
    assert_eq!(h.history(), before);
}

#[test]
fn sync_timeout() {
    let mut h = H::new();
    let (t, fx) = h.join(0, "");
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    h.sync(10, &a, 1, vec![(a.clone(), assign(&[0, 1, 2, 3]))]);
    let (tb, _) = h.join(1000, "");
    let (_, fx) = h.join(1400, &a);
    let b = join_reply(&fx, tb).unwrap().unwrap().member_id;
    // Only the leader syncs: Stable, but B never collects its assignment.
    let plan = vec![(a.clone(), assign(&[0, 1])), (b.clone(), assign(&[2, 3]))];
    h.sync(1500, &a, 2, plan);
    let deadline = 1400 + i64::from(REBALANCE);
    let fx = h.c.tick(deadline);
    assert!(fx.rebalances.is_empty());
    let r = h.last();
    assert_eq!(
        r.cause,
        RebalanceCause::SyncTimeout {
            member_ids: vec![b]
        }
    );
    assert_eq!(r.cause.kind(), "sync_timeout");
    assert_eq!((r.started_ms, r.from_generation), (deadline, 2));
}

#[test]
fn rebalance_timeout_with_absent_static_members_and_partitions_added() {
    let mut h = H::new();
    let p = || vec![("range".to_string(), sub(&["t"]))];
    let (t, fx) = h.join_with(0, "", Some("ia"), p());
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    h.sync(10, &a, 1, vec![(a.clone(), assign(&[0, 1]))]);
    let fx = h.c.on_topic_partitions_changed(2000, "t");
    assert!(fx.rebalances.is_empty());
    let r = h.last();
    assert_eq!(
        r.cause,
        RebalanceCause::PartitionsAdded { topic: "t".into() }
    );
    assert_eq!(r.cause.kind(), "partitions_added");
    assert!(h.c.on_topic_partitions_changed(2100, "other").is_empty());
    assert_eq!(
        h.history().len(),
        2,
        "an unsubscribed topic changes nothing"
    );

    // The static member never rejoins within the rebalance timeout: the join phase starts
    // over for it, and the history says why.
    let deadline = 2000 + i64::from(REBALANCE);
    let fx = h.c.tick(deadline);
    let hist = h.history();
    assert_eq!(hist.len(), 3);
    assert_eq!(fx.rebalances, vec![hist[1].clone()]);
    assert_eq!(hist[1].outcome, RebalanceOutcome::Superseded);
    assert_eq!(
        (hist[1].join_completed_ms, hist[1].completed_ms),
        (None, Some(deadline))
    );
    assert_eq!(hist[1].total_ms(), Some(i64::from(REBALANCE)));
    let r = &hist[2];
    assert_eq!(
        r.cause,
        RebalanceCause::RebalanceTimeout {
            member_ids: vec![a.clone()]
        }
    );
    assert_eq!(r.cause.kind(), "rebalance_timeout");
    assert_eq!(
        (r.started_ms, r.from_generation, r.members_before),
        (deadline, 1, 1)
    );
    assert!(hist[1].seq < r.seq);

    h.join_with(deadline + 300, &a, Some("ia"), p());
    h.sync(deadline + 400, &a, 2, vec![(a.clone(), assign(&[0, 1, 2]))]);
    let r = h.last();
    assert_eq!(r.outcome, RebalanceOutcome::Stable);
    assert_eq!(
        (r.generation, r.preparing_ms(), r.completing_ms()),
        (Some(2), Some(300), Some(100))
    );
    assert_eq!(r.partitions_moved, Some(1), "only the new partition t-2");
}

#[test]
fn static_member_replacement() {
    let mut h = H::new();
    let range = vec![("range".to_string(), sub(&["t"]))];
    let (t, fx) = h.join_with(0, "", Some("ia"), range.clone());
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    h.sync(10, &a, 1, vec![(a.clone(), assign(&[0, 1]))]);
    // Same protocols: the new id takes over without a rebalance.
    let (t, fx) = h.join_with(1000, "", Some("ia"), range.clone());
    let a2 = join_reply(&fx, t).unwrap().unwrap().member_id;
    assert_ne!(a, a2);
    assert_eq!(h.history().len(), 1);
    // A restart offering a preferred new protocol: the group must rebalance.
    let both = vec![
        ("roundrobin".to_string(), sub(&["t"])),
        ("range".to_string(), sub(&["t"])),
    ];
    let (t, fx) = h.join_with(2000, "", Some("ia"), both);
    let a3 = join_reply(&fx, t).unwrap().unwrap().member_id;
    let r = h.last();
    assert_eq!(
        r.cause,
        RebalanceCause::StaticMemberReplaced {
            instance_id: "ia".into()
        }
    );
    assert_eq!(r.cause.kind(), "static_member_replaced");
    assert_eq!((r.from_generation, r.generation), (1, Some(2)));
    h.sync(2050, &a3, 2, vec![(a3.clone(), assign(&[0, 1]))]);
    // The owner of a static member's partitions is its instance id: nothing moved.
    assert_eq!(h.last().partitions_moved, Some(0));
}

#[test]
fn join_during_completing_supersedes() {
    let mut h = H::new();
    let (t, fx) = h.join(0, "");
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    h.sync(10, &a, 1, vec![(a.clone(), assign(&[0, 1]))]);
    h.join(1000, "");
    h.join(1100, &a); // join completes: CompletingRebalance at generation 2
    let (_, fx) = h.join(1250, ""); // a third member arrives before the leader syncs
    let hist = h.history();
    assert_eq!(hist.len(), 3);
    let old = &hist[1];
    assert_eq!(fx.rebalances, vec![old.clone()]);
    assert_eq!(old.outcome, RebalanceOutcome::Superseded);
    assert_eq!(
        (old.generation, old.join_completed_ms, old.completed_ms),
        (Some(2), Some(1100), Some(1250))
    );
    assert_eq!((old.members_after, old.partitions_moved), (Some(2), None));
    let new = &hist[2];
    assert!(matches!(new.cause, RebalanceCause::MemberJoined { .. }));
    assert_eq!(
        (new.from_generation, new.members_before, new.started_ms),
        (2, 2, 1250)
    );
    assert_eq!(new.outcome, RebalanceOutcome::InProgress);
}

#[test]
fn history_is_bounded_with_increasing_seq() {
    let mut h = H::new();
    let (t, fx) = h.join(0, "");
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    h.sync(0, &a, 1, vec![(a.clone(), assign(&[0]))]);
    let mut ended = 1;
    for i in 0..40 {
        let now = 1000 * (i + 1);
        h.join(now, &a); // the leader rejoins: a rebalance that completes at once
        let fx = h.sync(now + 1, &a, i as i32 + 2, vec![(a.clone(), assign(&[0]))]);
        ended += fx.rebalances.len();
        let hist = h.history();
        assert!(hist.len() <= HISTORY_PER_GROUP);
        assert!(hist.windows(2).all(|w| w[0].seq < w[1].seq));
    }
    assert_eq!(ended, 41, "each ended rebalance reported once");
    let hist = h.history();
    assert_eq!(hist.len(), HISTORY_PER_GROUP);
    assert_eq!(GroupCoordinator::HISTORY_PER_GROUP, 32);
    assert_eq!(hist.first().unwrap().seq, 41 - 32);
    assert_eq!(hist.last().unwrap().seq, 40);
    assert!(hist.iter().all(|r| r.outcome == RebalanceOutcome::Stable));
}

#[test]
fn deleted_group_loses_its_history() {
    let mut h = H::new();
    let (t, fx) = h.join(0, "");
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    h.sync(10, &a, 1, vec![]);
    let (_, _) = h.c.leave_group(
        20,
        LeaveGroup {
            group_id: G.into(),
            members: vec![LeavingMember {
                member_id: a,
                group_instance_id: None,
            }],
        },
    );
    assert_eq!(h.history().len(), 2);
    let (r, _) = h.c.delete_groups(30, &[G.to_string()]);
    assert_eq!(r[0].1, Ok(()));
    assert!(h.history().is_empty());
    assert!(h.c.rebalance_history("never-existed").is_empty());
    // A new group of the same name starts a fresh history (seq keeps counting).
    let (t, fx) = h.join(40, "");
    assert!(join_reply(&fx, t).unwrap().is_ok());
    let hist = h.history();
    assert_eq!(hist.len(), 1);
    assert_eq!((hist[0].seq, hist[0].from_generation), (2, 0));
}

#[test]
fn expired_group_loses_its_history() {
    let config = GroupConfig {
        offsets_retention_ms: 1000,
        offsets_retention_check_interval_ms: 1000,
        ..cfg()
    };
    let mut h = H::with(config);
    let (t, fx) = h.join(0, "");
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    h.sync(10, &a, 1, vec![]);
    h.c.leave_group(
        20,
        LeaveGroup {
            group_id: G.into(),
            members: vec![LeavingMember {
                member_id: a,
                group_instance_id: None,
            }],
        },
    );
    assert_eq!(h.history().len(), 2);
    h.c.tick(5000);
    assert!(h.c.describe_group(G).is_none(), "the empty group expired");
    assert!(h.history().is_empty());
}

#[test]
fn unload_ends_the_rebalance_in_progress() {
    let mut h = H::new();
    let (t, fx) = h.join(0, "");
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    let fx = h.c.unload();
    assert_eq!(fx.rebalances.len(), 1);
    let r = &fx.rebalances[0];
    assert_eq!(r.outcome, RebalanceOutcome::Unloaded);
    assert_eq!(r.cause, RebalanceCause::MemberJoined { member_id: a });
    assert_eq!((r.join_completed_ms, r.completed_ms), (Some(0), None));
    assert!(h.history().is_empty());
}

#[test]
fn loading_an_oversized_group_rebalances_it() {
    // Build a two-member group, keeping its records.
    let mut src = H::new();
    let mut log = Vec::new();
    let (t, fx) = src.join(0, "");
    log.extend(fx.records.clone());
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    let fx = src.sync(10, &a, 1, vec![(a.clone(), assign(&[0, 1, 2, 3]))]);
    log.extend(fx.records);
    let (tb, fx) = src.join(1000, "");
    log.extend(fx.records);
    let (_, fx) = src.join(1400, &a);
    log.extend(fx.records.clone());
    let b = join_reply(&fx, tb).unwrap().unwrap().member_id;
    let plan = vec![(a.clone(), assign(&[0, 1])), (b.clone(), assign(&[2, 3]))];
    let fx = src.sync(1500, &a, 2, plan);
    log.extend(fx.records);

    // Load it into a coordinator that allows one member.
    let mut loaded = GroupCoordinator::new(GroupConfig {
        max_size: 1,
        ..cfg()
    });
    for rec in &log {
        loaded
            .replay(5000, rec.tag, &rec.key, rec.value.as_deref())
            .unwrap();
    }
    assert!(
        loaded.rebalance_history(G).is_empty(),
        "history is not persisted"
    );
    let fx = loaded.finish_load(6000);
    assert!(fx.rebalances.is_empty());
    let hist = loaded.rebalance_history(G);
    assert_eq!(hist.len(), 1);
    let r = &hist[0];
    assert_eq!(r.cause, RebalanceCause::GroupLoaded);
    assert_eq!(r.cause.kind(), "group_loaded");
    assert_eq!(
        (r.seq, r.from_generation, r.members_before, r.started_ms),
        (0, 2, 2, 6000)
    );
}

#[test]
fn undecodable_or_foreign_assignments_move_nothing_countable() {
    let mut h = H::new();
    let (t, fx) = h.join(0, "");
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    h.sync(10, &a, 1, vec![(a.clone(), vec![0xff])]);
    assert_eq!(
        h.last().partitions_moved,
        None,
        "a one-byte blob has no version"
    );
    h.join(100, &a);
    h.sync(110, &a, 2, vec![(a.clone(), assign(&[0]))]);
    assert_eq!(
        h.last().partitions_moved,
        None,
        "the previous assignment is unknown"
    );
    h.join(200, &a);
    h.sync(210, &a, 3, vec![(a.clone(), assign(&[0]))]);
    assert_eq!(h.last().partitions_moved, Some(0));

    // Another protocol type: assignments are opaque.
    let mut c = GroupCoordinator::new(cfg());
    let req = JoinGroup {
        group_id: "connect".into(),
        client_id: "w".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "connect".into(),
        protocols: vec![("default".into(), vec![1, 2, 3])],
        api_version: 3,
        ..Default::default()
    };
    let fx = c.join_group(0, 1, req);
    let w = join_reply(&fx, 1).unwrap().unwrap().member_id;
    let fx = c.sync_group(
        5,
        2,
        SyncGroup {
            group_id: "connect".into(),
            member_id: w.clone(),
            generation_id: 1,
            assignments: vec![(w, assign(&[0]))],
            ..Default::default()
        },
    );
    assert_eq!(fx.rebalances.len(), 1);
    assert_eq!(fx.rebalances[0].partitions_moved, None);
}

#[test]
fn effects_count_rebalances() {
    let mut h = H::new();
    let (t, fx) = h.join(0, "");
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    let fx = h.sync(10, &a, 1, vec![]);
    let only = Effects {
        rebalances: fx.rebalances.clone(),
        ..Default::default()
    };
    assert!(
        !only.is_empty(),
        "an ended rebalance is something to handle"
    );
    let mut all = Effects::default();
    assert!(all.is_empty());
    all.extend(only.clone());
    all.extend(only);
    assert_eq!(all.rebalances.len(), 2);
}

#[test]
fn a_loaded_empty_group_counts_moves_from_nothing() {
    // A v4 join creates (and persists) the group before any protocol type is known.
    let mut src = GroupCoordinator::new(cfg());
    let req = JoinGroup {
        group_id: G.into(),
        client_id: "c".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), sub(&["t"]))],
        api_version: 4,
        ..Default::default()
    };
    let fx = src.join_group(0, 1, req);
    assert_eq!(fx.records.len(), 1);
    let mut h = H::new();
    for rec in &fx.records {
        h.c.replay(10, rec.tag, &rec.key, rec.value.as_deref())
            .unwrap();
    }
    h.c.finish_load(10);
    let (t, fx) = h.join(20, "");
    let a = join_reply(&fx, t).unwrap().unwrap().member_id;
    h.sync(30, &a, 1, vec![(a.clone(), assign(&[0, 1]))]);
    assert_eq!(h.last().partitions_moved, Some(2));
}
