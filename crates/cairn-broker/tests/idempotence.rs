//! Wire-level tests of idempotent producers: InitProducerId and Produce sequence checks.

mod common;

use bytes::Bytes;
use common::{call, produce_to, producer_batch, start};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::net::TcpStream;

fn batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Bytes {
    producer_batch(pid, epoch, seq, values, false)
}

async fn produce(sock: &mut TcpStream, topic: &str, records: Bytes) -> (i16, i64) {
    produce_to(sock, topic, 0, records, None).await
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

    // A transactional id keeps its producer id; each new instance bumps the epoch.
    let r = init_pid(&mut s, Some("txn"), 4).await;
    assert_eq!((r.error_code, r.producer_epoch), (0, 0));
    let again = init_pid(&mut s, Some("txn"), 4).await;
    assert_eq!(
        (again.error_code, again.producer_id, again.producer_epoch),
        (0, r.producer_id, 1)
    );
    assert!(!pids.contains(&r.producer_id.0));
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
