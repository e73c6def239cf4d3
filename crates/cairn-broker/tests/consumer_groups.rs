//! KIP-848's consumer group protocol on the wire: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, and what ListGroups, DescribeGroups and OffsetCommit say around them.
//! The tests marked `ignore` drive the coordinator's consumer group state machine and pass once
//! it is in place; the others hold whatever it does.

mod common;

use bytes::BufMut;
use cairn_broker::wire::{self, WireError};
use common::*;
use kafka_protocol::messages::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_REQUEST: i16 = 42;
const INVALID_GROUP_ID: i16 = 24;
const GROUP_ID_NOT_FOUND: i16 = 69;

fn join(group: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(&uuid::Uuid::new_v4().to_string()))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| TopicName(s(t))).collect()))
        .with_topic_partitions(Some(vec![]))
}

fn describe(ids: &[&str]) -> ConsumerGroupDescribeRequest {
    ConsumerGroupDescribeRequest::default()
        .with_group_ids(ids.iter().map(|g| GroupId(s(g))).collect())
        .with_include_authorized_operations(true)
}

async fn api_versions(sock: &mut TcpStream) -> Vec<(i16, i16, i16)> {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(s("wire-test"))
        .with_client_software_version(s("1.0"));
    let r = call(sock, &req, 3).await;
    assert_eq!(r.error_code, 0);
    r.api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect()
}

/// Commits an offset with generation -1: a simple (classic, Empty) group comes to exist.
async fn simple_group(sock: &mut TcpStream, group: &str, topic: &str) {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(7),
                ]),
        ]);
    let r = call(sock, &req, 8).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
}

#[tokio::test]
async fn the_apis_are_advertised_unless_the_consumer_protocol_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    let keys = api_versions(&mut sock).await;
    assert!(keys.contains(&(68, 0, 1)), "{keys:?}");
    assert!(keys.contains(&(69, 0, 1)), "{keys:?}");
    broker.shutdown().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(
        dir.path(),
        &[("group.coordinator.rebalance.protocols", "classic")],
    )
    .await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    let keys = api_versions(&mut sock).await;
    assert!(!keys.iter().any(|k| k.0 == 68 || k.0 == 69), "{keys:?}");
    assert!(keys.iter().any(|k| k.0 == 11), "JoinGroup stays");
    // A client that sends them anyway is told the version is not supported, as Kafka does.
    let r = call(&mut sock, &join("g", &["t"]), 1).await;
    assert_eq!(r.error_code, UNSUPPORTED_VERSION);
    let r = call(&mut sock, &describe(&["g", "h"]), 1).await;
    assert_eq!(r.groups.len(), 2);
    assert!(r.groups.iter().all(|g| g.error_code == UNSUPPORTED_VERSION));
    broker.shutdown().await.unwrap();
}

/// A heartbeat frame (v0, flexible header) whose subscribed topic list claims `count` names.
fn hostile_heartbeat(count: u32) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u32) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut f = Vec::new();
    f.put_i16(68);
    f.put_i16(0);
    f.put_i32(9);
    f.put_i16(4);
    f.extend_from_slice(b"evil");
    f.push(0); // header tags
    f.extend_from_slice(&[2, b'g']); // group id
    f.extend_from_slice(&[1]); // member id ""
    f.put_i32(0); // member epoch
    f.extend_from_slice(&[0, 0]); // instance id, rack id: null
    f.put_i32(30_000);
    varint(&mut f, count.wrapping_add(1)); // compact array length
    f
}

#[tokio::test]
async fn a_heartbeat_claiming_a_huge_subscription_is_refused_before_decoding() {
    // Refused by the walk, for its count against the bytes left, before anything is reserved.
    let frame = hostile_heartbeat(u32::MAX - 1);
    match wire::check_request(&frame) {
        Err(WireError::Count { count, .. }) => assert_eq!(count, (u32::MAX - 1) as u64),
        other => panic!("expected a count refusal, got {other:?}"),
    }
    // Names of one byte each fit the frame but not the reserve budget of their answers.
    let mut small = hostile_heartbeat(200_000);
    small.extend(std::iter::repeat_n(1u8, 200_000));
    assert!(matches!(
        wire::check_request(&small),
        Err(WireError::TooCostly { .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    let mut out = Vec::new();
    out.put_i32(frame.len() as i32);
    out.extend_from_slice(&frame);
    sock.write_all(&out).await.unwrap();
    // The broker closes the connection rather than answer.
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), sock.read(&mut buf))
        .await
        .expect("closed within 10 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // And keeps serving others.
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    let keys = api_versions(&mut sock).await;
    assert!(keys.iter().any(|k| k.0 == 68));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn acls_gate_the_heartbeat_and_the_describe() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(
        dir.path(),
        &[
            (
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ),
            // Resources without ACLs stay open, so the two below close just what they name.
            ("allow.everyone.if.no.acl.found", "true"),
        ],
    )
    .await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut sock, "secret", 1).await;
    create_topic(&mut sock, "open", 1).await;
    let acl = |resource_type: i8, name: &str, op: i8| {
        create_acls_request::AclCreation::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_resource_pattern_type(3)
            .with_principal(s("User:bob"))
            .with_host(s("*"))
            .with_operation(op)
            .with_permission_type(3)
    };
    // READ (3) on group "locked" and DESCRIBE (8) on topic "secret", for bob only.
    let r = call(
        &mut sock,
        &CreateAclsRequest::default()
            .with_creations(vec![acl(3, "locked", 3), acl(2, "secret", 8)]),
        3,
    )
    .await;
    assert!(r.results.iter().all(|r| r.error_code == 0), "{r:?}");

    let r = call(&mut sock, &join("locked", &["open"]), 1).await;
    assert_eq!(r.error_code, GROUP_AUTHORIZATION_FAILED);
    // Kafka asks DESCRIBE on every topic the subscription names.
    let r = call(&mut sock, &join("g", &["open", "secret"]), 1).await;
    assert_eq!(r.error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(r.member_id, None);

    // Refused groups come first, each on its own; the others are answered as usual.
    let r = call(&mut sock, &describe(&["g", "locked"]), 1).await;
    assert_eq!(r.groups.len(), 2);
    assert_eq!(r.groups[0].group_id.0.as_str(), "locked");
    assert_eq!(r.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);
    assert!(r.groups[0].members.is_empty());
    assert_eq!(r.groups[1].group_id.0.as_str(), "g");
    assert_eq!(r.groups[1].error_code, GROUP_ID_NOT_FOUND);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn heartbeats_with_a_blank_group_id_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    for id in ["", "  "] {
        let r = call(&mut sock, &join(id, &["t"]), 1).await;
        assert_eq!(r.error_code, INVALID_REQUEST, "{id:?}");
        assert_eq!(
            r.error_message.as_deref(),
            Some("GroupId can't be empty."),
            "{id:?}"
        );
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn describing_groups_that_are_not_consumer_groups() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut sock, "t", 1).await;
    simple_group(&mut sock, "simple", "t").await;

    for v in [0, 1] {
        let r = call(&mut sock, &describe(&["nope", "simple", ""]), v).await;
        assert_eq!(r.groups.len(), 3);
        assert_eq!(r.groups[0].error_code, GROUP_ID_NOT_FOUND);
        assert_eq!(
            r.groups[0].error_message.as_deref(),
            Some("Group nope not found.")
        );
        assert_eq!(r.groups[1].error_code, GROUP_ID_NOT_FOUND);
        assert_eq!(
            r.groups[1].error_message.as_deref(),
            Some("Group simple is not a consumer group.")
        );
        assert_eq!(r.groups[2].error_code, INVALID_GROUP_ID);
    }

    // DescribeGroups says why from v6, and answers Dead without an error before.
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("nope"))]);
    let r = call(&mut sock, &req, 6).await;
    assert_eq!(r.groups[0].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(
        r.groups[0].error_message.as_deref(),
        Some("Group nope not found.")
    );
    assert_eq!(r.groups[0].group_state.as_str(), "Dead");
    let r = call(&mut sock, &req, 5).await;
    assert_eq!(r.groups[0].error_code, 0);
    assert_eq!(r.groups[0].group_state.as_str(), "Dead");
    broker.shutdown().await.unwrap();
}

async fn listed(sock: &mut TcpStream, states: &[&str], types: &[&str]) -> Vec<(String, String)> {
    let req = ListGroupsRequest::default()
        .with_states_filter(states.iter().map(|x| s(x)).collect())
        .with_types_filter(types.iter().map(|x| s(x)).collect());
    let r = call(sock, &req, 5).await;
    assert_eq!(r.error_code, 0);
    let mut out: Vec<(String, String)> = r
        .groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.group_type.to_string()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn list_groups_v5_filters_by_type_and_state_ignoring_case() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut sock, "t", 1).await;
    simple_group(&mut sock, "a", "t").await;
    simple_group(&mut sock, "b", "t").await;
    let both = vec![
        ("a".to_string(), "classic".to_string()),
        ("b".to_string(), "classic".to_string()),
    ];
    assert_eq!(listed(&mut sock, &[], &[]).await, both);
    assert_eq!(listed(&mut sock, &[], &["CLASSIC"]).await, both);
    assert_eq!(listed(&mut sock, &["eMpTy"], &["classic"]).await, both);
    assert_eq!(listed(&mut sock, &[], &["consumer"]).await, vec![]);
    assert_eq!(listed(&mut sock, &[], &["bogus"]).await, vec![]);
    assert_eq!(listed(&mut sock, &["Stable"], &[]).await, vec![]);
    // v4 carries the state but no type.
    let r = call(&mut sock, &ListGroupsRequest::default(), 4).await;
    assert!(r.groups.iter().all(|g| g.group_state.as_str() == "Empty"));
    broker.shutdown().await.unwrap();
}

// What follows needs the coordinator's consumer group state machine.

#[tokio::test]
async fn a_member_joins_is_described_and_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(
        dir.path(),
        &[
            ("group.consumer.min.heartbeat.interval.ms", "1000"),
            ("group.consumer.heartbeat.interval.ms", "3000"),
        ],
    )
    .await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut sock, "t", 3).await;
    let req = join("cg", &["t"]);
    let member = req.member_id.to_string();
    let r = call(&mut sock, &req, 1).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.member_id.as_deref(), Some(member.as_str()));
    assert!(r.member_epoch >= 1);
    assert_eq!(r.heartbeat_interval_ms, 3000, "the broker's setting");
    let owned: Vec<i32> = r
        .assignment
        .iter()
        .flat_map(|a| &a.topic_partitions)
        .flat_map(|t| t.partitions.clone())
        .collect();
    assert_eq!(owned, vec![0, 1, 2], "a lone member gets every partition");

    let d = call(&mut sock, &describe(&["cg"]), 1).await;
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.members.len(), 1);
    let m = &g.members[0];
    assert_eq!(m.member_id.as_str(), member);
    assert_eq!(m.client_id.as_str(), "wire-test");
    assert_eq!(m.client_host.as_str(), "/127.0.0.1");
    assert_eq!(m.member_type, 1);
    let t = &m.target_assignment.topic_partitions[0];
    assert_eq!(t.topic_name.0.as_str(), "t");
    assert_eq!(t.partitions, vec![0, 1, 2], "sorted");
    // No authorizer: every operation a group supports, as Kafka answers (READ, DELETE,
    // DESCRIBE).
    assert_eq!(g.authorized_operations, (1 << 3) | (1 << 6) | (1 << 8));
    // v0 has no member type: it reads back as the default.
    let d = call(&mut sock, &describe(&["cg"]), 0).await;
    assert_eq!(d.groups[0].members[0].member_type, -1);

    // Listed as a consumer group; DescribeGroups refuses it as not classic.
    let l = listed(&mut sock, &[], &["Consumer"]).await;
    assert_eq!(l, vec![("cg".to_string(), "consumer".to_string())]);
    let dg = call(
        &mut sock,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("cg"))]),
        6,
    )
    .await;
    assert_eq!(dg.groups[0].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(
        dg.groups[0].error_message.as_deref(),
        Some("Group cg is not a classic group.")
    );

    // A stale member epoch on OffsetFetch v9 is the group's error.
    let fetch = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("cg")))
            .with_member_id(Some(s(&member)))
            .with_member_epoch(r.member_epoch + 5)
            .with_topics(None),
    ]);
    let f = call(&mut sock, &fetch, 9).await;
    assert_eq!(f.groups[0].error_code, 113, "STALE_MEMBER_EPOCH");

    let leave = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("cg")))
        .with_member_id(s(&member))
        .with_member_epoch(-1);
    let r = call(&mut sock, &leave, 1).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.member_epoch, -1);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn partitions_added_later_reach_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut sock, "grow", 1).await;
    let req = join("cg2", &["grow"]);
    let r = call(&mut sock, &req, 1).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    let epoch = r.member_epoch;
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(s("grow")))
                .with_count(4)
                .with_assignments(None),
        ])
        .with_timeout_ms(5000);
    let g = call(&mut sock, &grow, 3).await;
    assert_eq!(g.results[0].error_code, 0);
    // The next heartbeat sees the new partitions (the topics snapshot is rebuilt).
    let hb = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("cg2")))
        .with_member_id(req.member_id.clone())
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1);
    let r = call(&mut sock, &hb, 1).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert!(r.member_epoch > epoch, "the group epoch moved");
    let owned: Vec<i32> = r
        .assignment
        .iter()
        .flat_map(|a| &a.topic_partitions)
        .flat_map(|t| t.partitions.clone())
        .collect();
    assert_eq!(owned, vec![0, 1, 2, 3]);
    broker.shutdown().await.unwrap();
}
