//! Wire-level tests of idempotent producers: InitProducerId and Produce sequence checks.

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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(dir: &std::path::Path) -> Broker {
    Broker::start(BrokerOptions {
        listen: Some("127.0.0.1:0".into()),
        data_dir: dir.to_path_buf(),
        config: BrokerConfig::from_pairs(BTreeMap::<String, String>::new()).unwrap(),
    })
    .await
    .unwrap()
}

async fn call<R: Request>(sock: &mut TcpStream, req: &R, version: i16) -> R::Response {
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(3)
        .with_client_id(Some(StrBytes::from_static_str("idempotence-test")))
        .encode(&mut b, R::header_version(version))
        .unwrap();
    req.encode(&mut b, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(b.len() as i32);
    frame.extend_from_slice(&b);
    sock.write_all(&frame).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read_i32())
        .await
        .unwrap()
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

fn batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
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

/// (error, base offset) of producing `records` to partition 0 of `topic` with acks=all.
async fn produce(sock: &mut TcpStream, topic: &str, records: Bytes) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records)),
            ])]);
    let r = call(sock, &req, 9).await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

async fn init_pid(sock: &mut TcpStream, txn: Option<&str>, version: i16) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(txn.map(|t| TransactionalId(StrBytes::from_string(t.into()))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    call(sock, &req, version).await
}

async fn log_end(sock: &mut TcpStream, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ])]);
    let r = call(sock, &req, 5).await;
    r.topics[0].partitions[0].offset
}

#[tokio::test]
async fn init_producer_id_and_sequence_checks_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut s = TcpStream::connect(broker.local_addr).await.unwrap();
    let mut pids = Vec::new();
    for v in 0..=5 {
        let r = init_pid(&mut s, None, v).await;
        assert_eq!((r.error_code, r.producer_epoch), (0, 0), "v{v}");
        pids.push(r.producer_id.0);
    }
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 6, "producer ids repeat: {pids:?}");

    let r = init_pid(&mut s, Some("txn"), 4).await;
    assert_eq!(r.error_code, 53);
    assert_eq!(r.producer_id.0, -1);
    assert_eq!(init_pid(&mut s, Some(""), 4).await.error_code, 42);

    let pid = pids[0];
    // Metadata auto-creates the topic (auto.create.topics.enable defaults to true).
    let md = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str("idem"))))]))
        .with_allow_auto_topic_creation(true);
    call(&mut s, &md, 12).await;
    let first = batch(pid, 0, 0, &["a", "b"]);
    assert_eq!(produce(&mut s, "idem", first.clone()).await, (0, 0));
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 0, 2, &["c"])).await,
        (0, 2)
    );
    assert_eq!(produce(&mut s, "idem", first).await, (0, 0));
    assert_eq!(log_end(&mut s, "idem").await, 3);
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 0, 7, &["x"])).await.0,
        45
    );
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 1, 0, &["d"])).await,
        (0, 3)
    );
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 0, 3, &["x"])).await.0,
        47
    );
    assert_eq!(log_end(&mut s, "idem").await, 4);
    drop(s);
    broker.shutdown().await.unwrap();

    // After a restart the id high-water mark keeps new ids above all earlier ones.
    let broker = start(dir.path()).await;
    let mut s = TcpStream::connect(broker.local_addr).await.unwrap();
    let r = init_pid(&mut s, None, 3).await;
    assert!(r.producer_id.0 > *pids.last().unwrap());
    assert_eq!(
        produce(&mut s, "idem", batch(pid, 1, 0, &["d"])).await,
        (0, 3)
    );
    assert_eq!(log_end(&mut s, "idem").await, 4);
    drop(s);
    broker.shutdown().await.unwrap();
}
