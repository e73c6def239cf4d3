//! Helpers shared by the broker's wire-level tests: start a broker on a free port, send one
//! request and read its answer, build producer batches, produce.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use cairn_broker::{Broker, BrokerOptions};
use cairn_config::BrokerConfig;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn start_with(dir: &std::path::Path, settings: &[(&str, &str)]) -> Broker {
    let pairs: BTreeMap<String, String> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Broker::start(BrokerOptions {
        listen: Some("127.0.0.1:0".into()),
        data_dir: dir.to_path_buf(),
        config: BrokerConfig::from_pairs(pairs).unwrap(),
    })
    .await
    .unwrap()
}

pub async fn start(dir: &std::path::Path) -> Broker {
    start_with(dir, &[]).await
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Sends one request over any stream (plain or TLS) and reads its answer; `None` if the
/// broker closed the connection instead.
pub async fn send<S, R>(sock: &mut S, req: &R, version: i16) -> Option<R::Response>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: Request,
{
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(3)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")))
        .encode(&mut b, R::header_version(version))
        .unwrap();
    req.encode(&mut b, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(b.len() as i32);
    frame.extend_from_slice(&b);
    sock.write_all(&frame).await.ok()?;
    sock.flush().await.ok()?;
    let n = tokio::time::timeout(Duration::from_secs(10), sock.read_i32())
        .await
        .expect("an answer or a close within 10 s")
        .ok()?;
    let mut buf = vec![0u8; n as usize];
    sock.read_exact(&mut buf).await.ok()?;
    let mut resp = Bytes::from(buf);
    let hv = ApiKey::try_from(R::KEY)
        .unwrap()
        .response_header_version(version);
    ResponseHeader::decode(&mut resp, hv).unwrap();
    Some(R::Response::decode(&mut resp, version).unwrap())
}

/// Like [`send`], for a request that must be answered.
pub async fn call<R: Request>(sock: &mut TcpStream, req: &R, version: i16) -> R::Response {
    send(sock, req, version).await.expect("a response")
}

/// An uncompressed v2 batch of producer `pid`/`epoch` with sequences from `seq`; transactional
/// if asked.
pub fn producer_batch(
    pid: i64,
    epoch: i16,
    seq: i32,
    values: &[&str],
    transactional: bool,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1_000,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// (error, base offset) of producing `records` to `partition` of `topic` with acks=all.
pub async fn produce_to(
    sock: &mut TcpStream,
    topic: &str,
    partition: i32,
    records: Bytes,
    transactional_id: Option<&str>,
) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_transactional_id(transactional_id.map(|t| TransactionalId(s(t))))
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])]);
    let r = call(sock, &req, 9).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Creates `topic` with `partitions` partitions.
pub async fn create_topic(sock: &mut TcpStream, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    let r = call(sock, &req, 5).await;
    assert_eq!(r.topics[0].error_code, 0, "create {topic}");
}
