//! The JSON API's shape for both group types, through the listener with a stand-in broker:
//! `/api/groups` names each group's type, and a consumer group's page carries its epochs, its
//! members' epochs, states, current and target assignments, the partitions still moving, and
//! how long each epoch's reconciliation took.

use std::sync::Arc;
use std::time::Duration;

use cairn_http::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct FakeBroker;

fn tp(topic: &str, partitions: &[i32]) -> TopicPartitions {
    TopicPartitions {
        topic: topic.into(),
        partitions: partitions.to_vec(),
    }
}

fn overview(group: &str, group_type: &'static str, state: &'static str) -> GroupOverview {
    let consumer = group_type == "consumer";
    GroupOverview {
        group: group.into(),
        group_type,
        state,
        protocol_type: "consumer".into(),
        assignor: Some(if consumer { "uniform" } else { "range" }.into()),
        generation: 7,
        group_epoch: consumer.then_some(7),
        assignment_epoch: consumer.then_some(7),
        members: 2,
        partitions: 2,
        uncommitted_partitions: 0,
        total_lag: 5,
        max_lag: 5,
        max_lag_seconds: 1.5,
        status: "ok",
    }
}

fn rebalance() -> Rebalance {
    Rebalance {
        seq: 3,
        cause: "member_joined",
        cause_detail: Some("m2".into()),
        from_generation: 6,
        generation: Some(7),
        started_ms: 1_000,
        join_completed_ms: Some(1_002),
        completed_ms: Some(1_180),
        preparing_ms: Some(2),
        completing_ms: Some(178),
        reconciliation_ms: Some(178),
        total_ms: Some(180),
        members_before: 1,
        members_after: Some(2),
        partitions_moved: Some(1),
        outcome: "stable",
    }
}

impl BrokerView for FakeBroker {
    fn health(&self) -> Health {
        Health {
            serving: true,
            stores_loaded: true,
            groups_loaded: true,
            lag_snapshot_ms: Some(0),
            version: "test",
        }
    }
    fn groups(&self) -> GroupsPage {
        GroupsPage {
            snapshot_ms: Some(0),
            refresh_ms: 1000,
            groups: vec![
                overview("classic-g", "classic", "Stable"),
                overview("cg", "consumer", "Reconciling"),
            ],
        }
    }
    fn group(&self, id: &str) -> Option<GroupDetail> {
        (id == "cg").then(|| GroupDetail {
            overview: overview("cg", "consumer", "Reconciling"),
            snapshot_ms: Some(0),
            leader: None,
            member_list: vec![
                MemberInfo {
                    member_id: "m1".into(),
                    client_id: "c1".into(),
                    client_host: "/127.0.0.1".into(),
                    instance_id: None,
                    assignment: vec![tp("t", &[0])],
                    member_epoch: Some(6),
                    member_protocol: Some("consumer"),
                    member_state: Some("unrevoked_partitions"),
                    subscribed_topics: Some(vec!["t".into()]),
                    subscribed_regex: None,
                    target_assignment: Some(vec![tp("t", &[0])]),
                    pending_assignment: Some(vec![]),
                    pending_revocation: Some(vec![tp("t", &[1])]),
                },
                MemberInfo {
                    member_id: "m2".into(),
                    client_id: "c2".into(),
                    client_host: "/127.0.0.1".into(),
                    instance_id: Some("i2".into()),
                    assignment: vec![],
                    member_epoch: Some(7),
                    member_protocol: Some("classic"),
                    member_state: Some("unreleased_partitions"),
                    subscribed_topics: Some(vec![]),
                    subscribed_regex: Some("t.*".into()),
                    target_assignment: Some(vec![tp("t", &[1])]),
                    pending_assignment: Some(vec![tp("t", &[1])]),
                    pending_revocation: Some(vec![]),
                },
            ],
            partitions: vec![PartitionLag {
                topic: "t".into(),
                partition: 1,
                committed_offset: Some(5),
                log_start_offset: 0,
                log_end_offset: 10,
                lag: Some(5),
                lag_seconds: Some(1.5),
                owner: Some("m1".into()),
                target_owner: Some("m2".into()),
                status: "ok",
            }],
            lag_history: vec![(0, 5)],
            rebalances: vec![rebalance()],
        })
    }
    fn rebalances(&self, id: &str) -> Option<Vec<Rebalance>> {
        (id == "cg").then(|| vec![rebalance()])
    }
    fn topics(&self) -> Vec<TopicInfo> {
        Vec::new()
    }
    fn metrics(&self) -> String {
        "# EOF\n".into()
    }
}

async fn start() -> std::net::SocketAddr {
    let server = HttpServer::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr;
    let slot = ViewSlot::new();
    slot.set(Arc::new(FakeBroker));
    tokio::spawn(server.serve(slot, std::future::pending()));
    addr
}

async fn get_json(addr: std::net::SocketAddr, path: &str) -> Value {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn group_list_names_the_type_and_epochs() {
    let addr = start().await;
    let page = get_json(addr, "/api/groups").await;
    let groups = page["groups"].as_array().unwrap();
    let classic = &groups[0];
    assert_eq!(classic["type"], "classic");
    assert_eq!(classic["generation"], 7);
    assert!(classic["group_epoch"].is_null() && classic["assignment_epoch"].is_null());
    let cg = &groups[1];
    assert_eq!(cg["type"], "consumer");
    assert_eq!(cg["state"], "Reconciling");
    assert_eq!(
        (cg["group_epoch"].as_i64(), cg["assignment_epoch"].as_i64()),
        (Some(7), Some(7))
    );
    assert_eq!(cg["assignor"], "uniform");
}

#[tokio::test]
async fn consumer_group_page_shows_reconciliation() {
    let addr = start().await;
    let g = get_json(addr, "/api/groups/cg").await;
    assert_eq!(g["type"], "consumer");
    assert_eq!(g["group_epoch"], 7);
    let m = &g["member_list"];
    assert_eq!(m[0]["member_epoch"], 6);
    assert_eq!(m[0]["member_state"], "unrevoked_partitions");
    assert_eq!(m[1]["member_protocol"], "classic");
    assert_eq!(m[0]["assignment"][0]["partitions"], serde_json::json!([0]));
    assert_eq!(
        m[0]["pending_revocation"][0]["partitions"],
        serde_json::json!([1])
    );
    assert_eq!(
        m[1]["target_assignment"][0]["partitions"],
        serde_json::json!([1])
    );
    assert_eq!(m[1]["pending_assignment"][0]["topic"], "t");
    assert_eq!(m[1]["subscribed_regex"], "t.*");
    let p = &g["partition_list"][0];
    assert_eq!(
        (p["owner"].as_str(), p["target_owner"].as_str()),
        (Some("m1"), Some("m2"))
    );
    assert_eq!(g["rebalances"][0]["reconciliation_ms"], 178);
    let r = get_json(addr, "/api/groups/cg/rebalances").await;
    assert_eq!(r["rebalances"][0]["reconciliation_ms"], 178);
    assert_eq!(r["rebalances"][0]["generation"], 7);
}

/// The dashboard reads the fields the API gives (a rename on one side must show here).
#[tokio::test]
async fn dashboard_reads_the_consumer_fields() {
    let addr = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /dashboard/app.js HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let js = String::from_utf8(out).unwrap();
    let detail = serde_json::to_value(FakeBroker.group("cg").unwrap()).unwrap();
    for field in [
        "group_epoch",
        "assignment_epoch",
        "member_epoch",
        "member_state",
        "member_protocol",
        "target_assignment",
        "pending_assignment",
        "pending_revocation",
        "target_owner",
        "reconciliation_ms",
    ] {
        assert!(js.contains(field), "app.js does not read {field}");
        assert!(
            detail.to_string().contains(&format!("\"{field}\"")),
            "the API has no {field}"
        );
    }
}
