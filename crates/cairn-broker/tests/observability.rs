//! The HTTP listener over an in-process broker: health, lag JSON against the truth, metrics,
//! a group in the middle of a rebalance and its history.

mod common;

use cairn_log::batch::{encode_plain, PlainRecord};
use std::time::Duration;

use bytes::Bytes;
use cairn_broker::{Broker, BrokerOptions};
use cairn_config::BrokerConfig;
use cairn_group::consumer_protocol::{
    encode_assignment, encode_subscription, Assignment, Subscription,
};
use common::{call, s};
use kafka_protocol::messages::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn batch(n: usize, ts: i64) -> Bytes {
    let values: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    let recs: Vec<PlainRecord> = values
        .iter()
        .map(|v| PlainRecord {
            key: None,
            value: Some(v.as_bytes()),
            timestamp: ts,
        })
        .collect();
    encode_plain(&recs).freeze()
}

async fn produce(sock: &mut TcpStream, partition: i32, n: usize, ts: i64) {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s("t")))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch(n, ts))),
            ])]);
    let r = call(sock, &req, 9).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

async fn commit(
    sock: &mut TcpStream,
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(i32, i64)],
) {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|&(p, o)| {
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                        })
                        .collect(),
                ),
        ]);
    let r = call(sock, &req, 8).await;
    for p in &r.topics[0].partitions {
        assert_eq!(p.error_code, 0);
    }
}

fn join_req(member: &str) -> JoinGroupRequest {
    let sub = Subscription {
        version: 0,
        topics: vec!["t".into()],
        ..Default::default()
    };
    JoinGroupRequest::default()
        .with_group_id(GroupId(s("live")))
        .with_member_id(s(member))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(60_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(Bytes::from(encode_subscription(&sub)))])
}

/// GET over a fresh connection; (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

async fn get_json(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get(addr, path).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

/// Polls a group's detail until `ok` holds (snapshots are taken every 100 ms here).
async fn wait_group(addr: std::net::SocketAddr, group: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, v) = get_json(addr, &format!("/api/groups/{group}")).await;
        if status == 200 && ok(&v) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("group {group} never matched: {last}");
}

fn part(g: &Value, p: i64) -> &Value {
    g["partition_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["partition"] == p)
        .unwrap_or_else(|| panic!("partition {p} missing: {g}"))
}

#[tokio::test]
async fn lag_groups_and_metrics_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::from_pairs(vec![
        ("cairn.lag.refresh.ms".to_string(), "100".to_string()),
        (
            "group.initial.rebalance.delay.ms".to_string(),
            "0".to_string(),
        ),
    ])
    .unwrap();
    let broker = Broker::start(BrokerOptions {
        listen: Some("127.0.0.1:0".into()),
        data_dir: dir.path().to_path_buf(),
        config,
    })
    .await
    .unwrap();
    let slot = cairn_http::ViewSlot::new();
    let http = cairn_http::HttpServer::bind("127.0.0.1:0").await.unwrap();
    let addr = http.local_addr;
    tokio::spawn(http.serve(slot.clone(), std::future::pending()));

    // No broker behind the listener yet: not ready.
    let (status, h) = get_json(addr, "/health").await;
    assert_eq!((status, h["serving"].as_bool()), (503, Some(false)));
    slot.set(broker.view());
    let (status, h) = get_json(addr, "/health").await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["stores_loaded"], true);

    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    let created = call(
        &mut sock,
        &CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s("t")))
                .with_num_partitions(3)
                .with_replication_factor(1),
        ]),
        5,
    )
    .await;
    assert_eq!(created.topics[0].error_code, 0);
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    produce(&mut sock, 0, 10, old).await;
    produce(&mut sock, 1, 5, old).await;

    // A simple group: p0 behind by 6 records written a minute ago, p1 caught up.
    commit(&mut sock, "simple", "", -1, &[(0, 4), (1, 5)]).await;
    let g = wait_group(addr, "simple", |g| g["total_lag"] == 6).await;
    assert_eq!(g["state"], "Empty");
    let p0 = part(&g, 0);
    assert_eq!(
        (
            p0["committed_offset"].as_i64(),
            p0["log_end_offset"].as_i64(),
            p0["lag"].as_i64()
        ),
        (Some(4), Some(10), Some(6))
    );
    let secs = p0["lag_seconds"].as_f64().unwrap();
    assert!((59.0..300.0).contains(&secs), "{secs}");
    assert_eq!(part(&g, 1)["lag"], 0);
    assert_eq!(part(&g, 1)["lag_seconds"], 0.0);
    assert_eq!(g["status"], "stopped");
    assert!(!g["lag_history"].as_array().unwrap().is_empty());

    // A consumer group: one member owns every partition, commits only p0.
    let mut m1 = TcpStream::connect(broker.local_addr).await.unwrap();
    let joined = call(&mut m1, &join_req(""), 3).await;
    assert_eq!(joined.error_code, 0);
    let member = joined.member_id.to_string();
    let assignment = Assignment {
        version: 0,
        partitions: vec![("t".into(), vec![0, 1, 2])],
        user_data: None,
    };
    let synced = call(
        &mut m1,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s("live")))
            .with_member_id(s(&member))
            .with_generation_id(joined.generation_id)
            .with_assignments(vec![
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(Bytes::from(encode_assignment(&assignment))),
            ]),
        3,
    )
    .await;
    assert_eq!(synced.error_code, 0);
    commit(&mut sock, "live", &member, joined.generation_id, &[(0, 2)]).await;
    let g = wait_group(addr, "live", |g| {
        g["total_lag"] == 8 && g["state"] == "Stable"
    })
    .await;
    assert_eq!(g["assignor"], "range");
    assert_eq!(g["members"], 1);
    assert_eq!(
        g["member_list"][0]["assignment"][0]["partitions"],
        serde_json::json!([0, 1, 2])
    );
    assert_eq!(g["uncommitted_partitions"], 2);
    assert_eq!(part(&g, 0)["owner"], member.as_str());
    // Assigned, never committed: reported as such, not as lag.
    let p1 = part(&g, 1);
    assert!(p1["committed_offset"].is_null() && p1["lag"].is_null() && p1["lag_seconds"].is_null());
    assert_eq!(p1["log_end_offset"], 5);
    assert_eq!(g["members"], 1);

    // A second member arrives: the group rebalances; lag is still reported beside the state.
    let mut m2 = TcpStream::connect(broker.local_addr).await.unwrap();
    let parked = tokio::spawn(async move { call(&mut m2, &join_req(""), 3).await });
    let g = wait_group(addr, "live", |g| g["state"] == "PreparingRebalance").await;
    assert_eq!(g["total_lag"], 8);
    assert_eq!(part(&g, 0)["lag"], 8);
    assert_eq!(g["assignor"], "range");
    let (status, r) = get_json(addr, "/api/groups/live/rebalances").await;
    assert_eq!(status, 200);
    let history = r["rebalances"].as_array().unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last["outcome"].as_str(), last["cause"].as_str()),
        (Some("in_progress"), Some("member_joined"))
    );
    assert!(history.iter().any(|x| x["outcome"] == "stable"), "{r}");

    let (status, list) = get_json(addr, "/api/groups").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["live", "simple"]);
    let (status, _) = get_json(addr, "/api/groups/nope").await;
    assert_eq!(status, 404);
    let (status, _) = get_json(addr, "/api/groups/nope/rebalances").await;
    assert_eq!(status, 404);
    let (status, topics) = get_json(addr, "/api/topics").await;
    assert_eq!(status, 200);
    let t = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == "t")
        .unwrap();
    assert_eq!(t["partitions"][0]["log_end_offset"], 10);

    let (status, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "kafka_consumergroup_group_lag{group=\"simple\",topic=\"t\",partition=\"0\"} 6",
        "kafka_consumergroup_group_offset{group=\"live\",topic=\"t\",partition=\"0\"} 2",
        "cairn_group_partition_uncommitted{group=\"live\",topic=\"t\",partition=\"1\"} 1",
        "kafka_consumergroup_group_sum_lag{group=\"simple\"} 6",
        "kafka_consumergroup_group_topic_sum_lag{group=\"live\",topic=\"t\"} 8",
        "kafka_partition_latest_offset{topic=\"t\",partition=\"0\"} 10",
        "cairn_group_state{group=\"live\",state=\"PreparingRebalance\"} 1",
        "cairn_group_status{group=\"simple\",status=\"stopped\"} 1",
        "cairn_offset_commits_total 3",
        "cairn_topic_bytes_in_total{topic=\"t\"}",
        "cairn_requests_total{api=\"JoinGroup\"} 1",
        "cairn_connections 3",
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
    assert!(!metrics
        .contains("kafka_consumergroup_group_lag{group=\"live\",topic=\"t\",partition=\"1\"}"));
    assert!(metrics.ends_with("# EOF\n"));
    assert_eq!(
        metrics.matches("# EOF").count(),
        1,
        "one exposition, one EOF"
    );
    // A second scrape of the same snapshot reuses the rendered lag series: same text for them.
    let (_, again) = get(addr, "/metrics").await;
    let lag_part = |m: &str| {
        m.lines()
            .filter(|l| l.starts_with("kafka_consumergroup"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(lag_part(&metrics), lag_part(&again));

    slot.clear();
    broker.shutdown().await.unwrap();
    let _ = parked.await;
}
