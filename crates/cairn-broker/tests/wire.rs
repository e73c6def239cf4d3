//! Wire-level tests against an in-process broker: raw frames, including hostile ones.

use cairn_log::batch::{encode_plain, PlainRecord};
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use cairn_broker::{Broker, BrokerOptions};
use cairn_config::BrokerConfig;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(extra: &[(&str, &str)]) -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut pairs: Vec<(String, String)> = vec![
        ("num.partitions".into(), "2".into()),
        ("socket.request.max.bytes".into(), "1048576".into()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = BrokerConfig::from_pairs(pairs).unwrap();
    let broker = Broker::start(BrokerOptions {
        listen: Some("127.0.0.1:0".into()),
        data_dir: dir.path().to_path_buf(),
        config,
    })
    .await
    .unwrap();
    (broker, dir)
}

async fn raw_frame(sock: &mut TcpStream, payload: &[u8]) {
    let mut b = BytesMut::new();
    b.put_i32(payload.len() as i32);
    b.extend_from_slice(payload);
    sock.write_all(&b).await.unwrap();
}

async fn read_frame(sock: &mut TcpStream) -> Option<Bytes> {
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read_i32())
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; n as usize];
    sock.read_exact(&mut buf).await.ok()?;
    Some(Bytes::from(buf))
}

async fn call<R: Request>(sock: &mut TcpStream, req: &R, version: i16) -> R::Response {
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")))
        .encode(&mut b, R::header_version(version))
        .unwrap();
    req.encode(&mut b, version).unwrap();
    raw_frame(sock, &b).await;
    let mut resp = read_frame(sock).await.expect("a response");
    let hv = ApiKey::try_from(R::KEY)
        .unwrap()
        .response_header_version(version);
    let h = ResponseHeader::decode(&mut resp, hv).unwrap();
    assert_eq!(h.correlation_id, 7);
    R::Response::decode(&mut resp, version).unwrap()
}

async fn closed(sock: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), sock.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

fn batch(values: &[&str], base_ts: i64) -> Bytes {
    let keys: Vec<String> = (0..values.len()).map(|i| format!("k{i}")).collect();
    let recs: Vec<PlainRecord> = values
        .iter()
        .enumerate()
        .map(|(i, v)| PlainRecord {
            key: Some(keys[i].as_bytes()),
            value: Some(v.as_bytes()),
            timestamp: base_ts + i as i64 * 1000,
        })
        .collect();
    encode_plain(&recs).freeze()
}

fn produce_req(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records)),
            ])])
}

async fn create_topic(sock: &mut TcpStream, name: &str, parts: i32) {
    let r = call(
        sock,
        &CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.into())))
                .with_num_partitions(parts)
                .with_replication_factor(1),
        ]),
        5,
    )
    .await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

#[tokio::test]
async fn unknown_api_versions_version_gets_v0_answer() {
    let (broker, _d) = start(&[]).await;
    let mut s = TcpStream::connect(broker.local_addr).await.unwrap();
    // ApiVersions v99 with a v2 header: key, version, correlation id, client id, no tags.
    let mut b = BytesMut::new();
    b.put_i16(18);
    b.put_i16(99);
    b.put_i32(42);
    b.put_i16(-1);
    b.put_u8(0);
    raw_frame(&mut s, &b).await;
    let mut resp = read_frame(&mut s).await.unwrap();
    assert_eq!(resp.get_i32(), 42);
    let body = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(body.error_code, 35);
    assert!(body
        .api_keys
        .iter()
        .any(|k| k.api_key == 18 && k.max_version == 4));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn hostile_frames_close_only_their_connection() {
    let (broker, _d) = start(&[]).await;
    let mut good = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut good, "t", 1).await;

    // Oversized frame (over socket.request.max.bytes).
    let mut s = TcpStream::connect(broker.local_addr).await.unwrap();
    s.write_all(&200_000_000i32.to_be_bytes()).await.unwrap();
    assert!(closed(&mut s).await);
    // Negative size.
    let mut s = TcpStream::connect(broker.local_addr).await.unwrap();
    s.write_all(&(-5i32).to_be_bytes()).await.unwrap();
    assert!(closed(&mut s).await);
    // Unknown API key.
    let mut s = TcpStream::connect(broker.local_addr).await.unwrap();
    raw_frame(&mut s, &[0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff]).await;
    assert!(closed(&mut s).await);
    // Truncated Metadata body.
    let mut s = TcpStream::connect(broker.local_addr).await.unwrap();
    raw_frame(&mut s, &[0, 3, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 9]).await;
    assert!(closed(&mut s).await);
    // Garbage.
    let mut s = TcpStream::connect(broker.local_addr).await.unwrap();
    raw_frame(&mut s, b"\x01\x02").await;
    assert!(closed(&mut s).await);

    // The well-behaved connection is still served.
    let r = call(&mut good, &produce_req("t", batch(&["a", "b"], 1000)), 7).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn corrupt_crc_is_refused_and_nothing_written() {
    let (broker, _d) = start(&[]).await;
    let mut s = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut s, "c", 1).await;
    let good = batch(&["x"], 5);
    let mut bad = BytesMut::from(&good[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let r = call(&mut s, &produce_req("c", bad.freeze()), 7).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 2);
    let r = call(&mut s, &produce_req("c", good), 7).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn produce_fetch_and_offsets_for_times() {
    let (broker, _d) = start(&[]).await;
    let mut s = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut s, "rt", 1).await;
    for v in [7i16, 9, 12] {
        let r = call(&mut s, &produce_req("rt", batch(&["a", "b", "c"], 1000)), v).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let fetch = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("rt")))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(4)
                .with_partition_max_bytes(1 << 20)])]);
    let md = call(&mut s, &MetadataRequest::default().with_topics(None), 12).await;
    let mut by_id = fetch.clone();
    by_id.topics[0].topic_id = md.topics[0].topic_id;
    for v in [4i16, 11, 12, 16] {
        // From v13 topics are named by id only.
        let req = if v >= 13 { &by_id } else { &fetch };
        let r = call(&mut s, req, v).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.high_watermark, 9);
        let mut data = p.records.clone().unwrap();
        let mut offsets = Vec::new();
        while data.has_remaining() {
            let set = RecordBatchDecoder::decode(&mut data).unwrap();
            offsets.extend(set.records.iter().map(|r| r.offset));
        }
        // The batch containing offset 4 starts at 3; the whole batch and the next come back.
        assert_eq!(offsets, vec![3, 4, 5, 6, 7, 8]);
    }
    let lo = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("rt")))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(1500),
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(99_999),
            ]),
    ]);
    let r = call(&mut s, &lo, 5).await;
    let ps = &r.responses_or_topics();
    assert_eq!((ps[0].offset, ps[0].timestamp), (1, 2000));
    assert_eq!(ps[1].offset, 9);
    assert_eq!(ps[2].offset, -1);

    // Out of range.
    let mut far = fetch.clone();
    far.topics[0].partitions[0].fetch_offset = 50;
    let r = call(&mut s, &far, 11).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 1);
    broker.shutdown().await.unwrap();
}

trait Flat {
    fn responses_or_topics(&self) -> Vec<list_offsets_response::ListOffsetsPartitionResponse>;
}
impl Flat for ListOffsetsResponse {
    fn responses_or_topics(&self) -> Vec<list_offsets_response::ListOffsetsPartitionResponse> {
        self.topics
            .iter()
            .flat_map(|t| t.partitions.clone())
            .collect()
    }
}

#[tokio::test]
async fn data_survives_restart_and_ids_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for round in 0..2 {
        let broker = Broker::start(BrokerOptions {
            listen: Some("127.0.0.1:0".into()),
            data_dir: dir.path().to_path_buf(),
            config: BrokerConfig::from_pairs(BTreeMap::<String, String>::new()).unwrap(),
        })
        .await
        .unwrap();
        let mut s = TcpStream::connect(broker.local_addr).await.unwrap();
        if round == 0 {
            create_topic(&mut s, "keep", 1).await;
            call(&mut s, &produce_req("keep", batch(&["a", "b"], 1)), 9).await;
        }
        let md = call(&mut s, &MetadataRequest::default().with_topics(None), 12).await;
        ids.push((md.cluster_id.clone(), md.topics[0].topic_id));
        let r = call(&mut s, &produce_req("keep", batch(&["c"], 1)), 9).await;
        assert_eq!(
            r.responses[0].partition_responses[0].base_offset,
            2 + round as i64
        );
        broker.shutdown().await.unwrap();
    }
    assert_eq!(ids[0], ids[1]);
}
