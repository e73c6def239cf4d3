//! IncrementalAlterConfigs, AlterConfigs, DescribeConfigs and ListConfigResources against an
//! in-process broker: Kafka's error codes for bad input, and changes that act and persist.

use std::path::Path;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use cairn_broker::{Broker, BrokerOptions};
use cairn_config::BrokerConfig;
use cairn_log::batch::{encode_plain, PlainRecord};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC: i16 = 3;

async fn start(dir: &Path, extra: &[(&str, &str)]) -> Broker {
    let pairs = extra.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Broker::start(BrokerOptions {
        listen: Some("127.0.0.1:0".into()),
        data_dir: dir.to_path_buf(),
        config: BrokerConfig::from_pairs(pairs).unwrap(),
    })
    .await
    .unwrap()
}

async fn call<R: Request>(sock: &mut TcpStream, req: &R, version: i16) -> R::Response {
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("configs-test")))
        .encode(&mut b, R::header_version(version))
        .unwrap();
    req.encode(&mut b, version).unwrap();
    let mut framed = BytesMut::new();
    framed.put_i32(b.len() as i32);
    framed.extend_from_slice(&b);
    sock.write_all(&framed).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read_i32())
        .await
        .expect("a response in time")
        .unwrap();
    let mut buf = vec![0u8; n as usize];
    sock.read_exact(&mut buf).await.unwrap();
    let mut resp = Bytes::from(buf);
    let hv = ApiKey::try_from(R::KEY)
        .unwrap()
        .response_header_version(version);
    ResponseHeader::decode(&mut resp, hv).unwrap();
    R::Response::decode(&mut resp, version).unwrap()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn create_topic(sock: &mut TcpStream, name: &str) {
    let r = call(
        sock,
        &CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(name)))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]),
        5,
    )
    .await;
    assert_eq!(r.topics[0].error_code, 0);
}

/// One resource of an IncrementalAlterConfigs request: (key, op, value).
fn inc(
    ty: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> incremental_alter_configs_request::AlterConfigsResource {
    incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(ty)
        .with_resource_name(s(name))
        .with_configs(
            ops.iter()
                .map(|(k, op, v)| {
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s(k))
                        .with_config_operation(*op)
                        .with_value(v.map(s))
                })
                .collect(),
        )
}

async fn incremental(
    sock: &mut TcpStream,
    resources: Vec<incremental_alter_configs_request::AlterConfigsResource>,
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let r = call(
        sock,
        &IncrementalAlterConfigsRequest::default()
            .with_resources(resources)
            .with_validate_only(validate_only),
        1,
    )
    .await;
    r.responses
        .into_iter()
        .map(|x| (x.error_code, x.error_message.map(|m| m.to_string())))
        .collect()
}

async fn describe(
    sock: &mut TcpStream,
    ty: i8,
    name: &str,
) -> Vec<describe_configs_response::DescribeConfigsResourceResult> {
    let r = call(
        sock,
        &DescribeConfigsRequest::default()
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(ty)
                    .with_resource_name(s(name))
                    .with_configuration_keys(None),
            ])
            .with_include_synonyms(true)
            .with_include_documentation(true),
        4,
    )
    .await;
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
    r.results.into_iter().next().unwrap().configs
}

fn entry<'a>(
    configs: &'a [describe_configs_response::DescribeConfigsResourceResult],
    name: &str,
) -> &'a describe_configs_response::DescribeConfigsResourceResult {
    configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} not described"))
}

fn produce(topic: &str, value_len: usize) -> ProduceRequest {
    let value = vec![b'x'; value_len];
    let rec = PlainRecord {
        key: None,
        value: Some(&value),
        timestamp: 1,
    };
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(encode_plain(&[rec]).freeze())),
            ])])
}

#[tokio::test]
async fn topic_changes_are_checked_and_act_on_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[]).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut sock, "t").await;

    let mut bad = Vec::new();
    for r in [
        inc(TOPIC, "nope", &[("retention.ms", 0, Some("1000"))]),
        inc(TOPIC, "t", &[("no.such.key", 0, Some("1"))]),
        inc(TOPIC, "t", &[("retention.ms", 0, Some("soon"))]),
    ] {
        bad.extend(incremental(&mut sock, vec![r], false).await);
    }
    assert_eq!(bad[0].0, UNKNOWN_TOPIC);
    assert_eq!(
        bad[1],
        (
            INVALID_CONFIG,
            Some("Unknown topic config name: no.such.key".into())
        )
    );
    assert_eq!(bad[2].0, INVALID_CONFIG);
    // A resource named twice fails both times, INVALID_REQUEST.
    let dup = incremental(
        &mut sock,
        vec![
            inc(TOPIC, "t", &[("retention.ms", 0, Some("1000"))]),
            inc(TOPIC, "t", &[("retention.ms", 0, Some("2000"))]),
        ],
        false,
    )
    .await;
    assert!(dup.iter().all(|d| d.0 == INVALID_REQUEST), "{dup:?}");
    for ops in [
        vec![("retention.ms", 0, Some("-2"))],
        vec![("retention.ms", 2, Some("5"))],
        vec![("max.message.bytes", 3, Some("5"))],
        vec![("segment.bytes", 0, Some("99999999999"))],
        vec![("cleanup.policy", 0, Some("shred"))],
    ] {
        let r = incremental(&mut sock, vec![inc(TOPIC, "t", &ops)], false).await;
        assert_eq!(r[0].0, INVALID_CONFIG, "{ops:?}: {r:?}");
    }
    let r = incremental(
        &mut sock,
        vec![inc(
            TOPIC,
            "t",
            &[("retention.ms", 0, Some("1")), ("retention.ms", 1, None)],
        )],
        false,
    )
    .await;
    assert_eq!(r[0].0, INVALID_REQUEST);
    let described = describe(&mut sock, TOPIC, "t").await;
    assert_eq!(entry(&described, "retention.ms").config_source, 5);

    // validate_only changes nothing.
    let r = incremental(
        &mut sock,
        vec![inc(TOPIC, "t", &[("max.message.bytes", 0, Some("200"))])],
        true,
    )
    .await;
    assert_eq!(r[0], (0, None));
    let p = call(&mut sock, &produce("t", 500), 9).await;
    assert_eq!(p.responses[0].partition_responses[0].error_code, 0);

    // A real change reaches the live partition: a 500-byte record is now too large.
    let r = incremental(
        &mut sock,
        vec![inc(
            TOPIC,
            "t",
            &[
                ("max.message.bytes", 0, Some("200")),
                ("cleanup.policy", 2, Some("compact")),
            ],
        )],
        false,
    )
    .await;
    assert_eq!(r[0], (0, None));
    let p = call(&mut sock, &produce("t", 500), 9).await;
    assert_eq!(p.responses[0].partition_responses[0].error_code, 10);
    let described = describe(&mut sock, TOPIC, "t").await;
    let mmb = entry(&described, "max.message.bytes");
    assert_eq!(
        mmb.value.as_ref().map(|v| v.to_string()).as_deref(),
        Some("200")
    );
    assert_eq!(mmb.config_source, 1);
    assert_eq!(mmb.synonyms[0].source, 1);
    assert_eq!(mmb.synonyms[1].name.as_str(), "message.max.bytes");
    let policy = entry(&described, "cleanup.policy");
    assert_eq!(
        policy.value.as_ref().map(|v| v.to_string()).as_deref(),
        Some("delete,compact")
    );
    assert!(!policy.read_only);

    // Legacy AlterConfigs replaces the whole set: the override not named goes away.
    let r = call(
        &mut sock,
        &AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(s("t"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("3600000")))]),
        ]),
        2,
    )
    .await;
    assert_eq!(r.responses[0].error_code, 0);
    let described = describe(&mut sock, TOPIC, "t").await;
    assert_eq!(entry(&described, "max.message.bytes").config_source, 5);
    assert_eq!(entry(&described, "retention.ms").config_source, 1);
    let p = call(&mut sock, &produce("t", 500), 9).await;
    assert_eq!(p.responses[0].partition_responses[0].error_code, 0);
    broker.shutdown().await.unwrap();

    // Topic overrides are in the data directory.
    let broker = start(dir.path(), &[]).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    let described = describe(&mut sock, TOPIC, "t").await;
    let ret = entry(&described, "retention.ms");
    assert_eq!(
        ret.value.as_ref().map(|v| v.to_string()).as_deref(),
        Some("3600000")
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn dynamic_broker_configs_take_effect_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[("message.max.bytes", "100000")]).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut sock, "t").await;

    let bad = incremental(
        &mut sock,
        vec![
            inc(BROKER, "7", &[("message.max.bytes", 0, Some("300"))]),
            inc(BROKER, "x", &[("message.max.bytes", 0, Some("300"))]),
        ],
        false,
    )
    .await;
    assert_eq!(
        bad[0],
        (
            INVALID_REQUEST,
            Some("Unexpected broker id, expected 1, but received 7".into())
        )
    );
    assert_eq!(bad[1].0, INVALID_REQUEST);
    for (ops, code, text) in [
        (
            vec![("num.partitions", 0, Some("3"))],
            INVALID_REQUEST,
            "Cannot update these configs dynamically: Set(num.partitions)",
        ),
        (
            vec![("advertised.listeners", 0, Some("PLAINTEXT://h:1"))],
            INVALID_REQUEST,
            "Cannot update these configs dynamically",
        ),
        (
            vec![("no.such.key", 0, Some("1"))],
            INVALID_CONFIG,
            "no.such.key",
        ),
        (
            vec![("message.max.bytes", 0, Some("big"))],
            INVALID_REQUEST,
            "message.max.bytes",
        ),
        (
            vec![("log.retention.ms", 0, Some("-7"))],
            INVALID_REQUEST,
            "log.retention.ms",
        ),
        (
            vec![("message.max.bytes", 2, Some("1"))],
            INVALID_CONFIG,
            "append is not allowed",
        ),
    ] {
        let r = incremental(&mut sock, vec![inc(BROKER, "1", &ops)], false).await;
        assert_eq!(r[0].0, code, "{ops:?}: {r:?}");
        assert!(r[0].1.as_deref().unwrap_or("").contains(text), "{r:?}");
    }

    // Cluster default, then this broker's own value over it.
    let r = incremental(
        &mut sock,
        vec![inc(BROKER, "", &[("message.max.bytes", 0, Some("300"))])],
        false,
    )
    .await;
    assert_eq!(r[0], (0, None));
    let p = call(&mut sock, &produce("t", 500), 9).await;
    assert_eq!(p.responses[0].partition_responses[0].error_code, 10);
    let r = incremental(
        &mut sock,
        vec![inc(BROKER, "1", &[("message.max.bytes", 0, Some("5000"))])],
        false,
    )
    .await;
    assert_eq!(r[0], (0, None));
    let p = call(&mut sock, &produce("t", 500), 9).await;
    assert_eq!(p.responses[0].partition_responses[0].error_code, 0);

    let described = describe(&mut sock, BROKER, "1").await;
    let mmb = entry(&described, "message.max.bytes");
    assert_eq!(
        mmb.value.as_ref().map(|v| v.to_string()).as_deref(),
        Some("5000")
    );
    assert_eq!(mmb.config_source, 2);
    let sources: Vec<i8> = mmb.synonyms.iter().map(|s| s.source).collect();
    assert_eq!(sources, vec![2, 3, 4, 5]);
    assert!(!mmb.read_only);
    assert!(entry(&described, "advertised.listeners").read_only);
    assert!(entry(&described, "num.partitions").read_only);
    assert_eq!(entry(&described, "num.partitions").config_type, 3);
    assert!(entry(&described, "num.partitions").documentation.is_some());
    let defaults = describe(&mut sock, BROKER, "").await;
    assert_eq!(defaults.len(), 1);
    assert_eq!(defaults[0].config_source, 3);
    broker.shutdown().await.unwrap();

    // After a restart both levels are back, in the same precedence.
    let broker = start(dir.path(), &[("message.max.bytes", "100000")]).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    let described = describe(&mut sock, BROKER, "1").await;
    let mmb = entry(&described, "message.max.bytes");
    assert_eq!(
        mmb.value.as_ref().map(|v| v.to_string()).as_deref(),
        Some("5000")
    );
    // Deleting this broker's value leaves the cluster default in force.
    let r = incremental(
        &mut sock,
        vec![inc(BROKER, "1", &[("message.max.bytes", 1, None)])],
        false,
    )
    .await;
    assert_eq!(r[0], (0, None));
    let p = call(&mut sock, &produce("t", 500), 9).await;
    assert_eq!(p.responses[0].partition_responses[0].error_code, 10);

    let list = call(
        &mut sock,
        &ListConfigResourcesRequest::default().with_resource_types(vec![TOPIC, BROKER]),
        1,
    )
    .await;
    assert_eq!(list.error_code, 0);
    let names: Vec<(i8, String)> = list
        .config_resources
        .iter()
        .map(|r| (r.resource_type, r.resource_name.to_string()))
        .collect();
    assert_eq!(names, vec![(TOPIC, "t".into()), (BROKER, "1".into())]);
    let v0 = call(&mut sock, &ListConfigResourcesRequest::default(), 0).await;
    assert_eq!((v0.error_code, v0.config_resources.len()), (0, 0));
    broker.shutdown().await.unwrap();

    // A damaged file stops the start with a clear error instead of running without it.
    std::fs::write(dir.path().join("broker-configs.json"), "{oops").unwrap();
    let err = Broker::start(BrokerOptions {
        listen: Some("127.0.0.1:0".into()),
        data_dir: dir.path().to_path_buf(),
        config: BrokerConfig::from_pairs(Vec::<(String, String)>::new()).unwrap(),
    })
    .await
    .err()
    .expect("refuses to start");
    assert!(
        format!("{err:#}").contains("broker-configs.json"),
        "{err:#}"
    );
}
