//! Wire-level tests of the transaction APIs: Kafka's error codes where Kafka returns them
//! (by request version), the transactional produce check, markers, the last stable offset and
//! read_committed fetches with their aborted transactions, and transactional offset commits.

mod common;

use common::{call, create_topic, produce_to, producer_batch, s, start, start_with};
use kafka_protocol::messages::*;
use tokio::net::TcpStream;

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const PRODUCER_FENCED: i16 = 90;

async fn init(sock: &mut TcpStream, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    call(sock, &req, 4).await
}

async fn find_txn_coordinator(sock: &mut TcpStream, id: &str) -> i16 {
    let req = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_key(s(id));
    call(sock, &req, 2).await.error_code
}

async fn add_partitions(
    sock: &mut TcpStream,
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    partitions: &[i32],
    version: i16,
) -> Vec<i16> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(partitions.to_vec()),
        ]);
    let r = call(sock, &req, version).await;
    r.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

async fn verify_partitions(
    sock: &mut TcpStream,
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
        add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(true)
            .with_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(partitions.to_vec()),
            ]),
    ]);
    let r = call(sock, &req, 4).await;
    assert_eq!(r.error_code, 0);
    r.results_by_transaction[0].topic_results[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

async fn end_txn(
    sock: &mut TcpStream,
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
    version: i16,
) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    call(sock, &req, version).await.error_code
}

async fn add_offsets(sock: &mut TcpStream, id: &str, pid: i64, epoch: i16, group: &str) -> i16 {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s(group)));
    call(sock, &req, 3).await.error_code
}

async fn txn_commit_offset(
    sock: &mut TcpStream,
    id: &str,
    pid: i64,
    epoch: i16,
    group: &str,
    topic: &str,
    offset: i64,
) -> i16 {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    call(sock, &req, 3).await.topics[0].partitions[0].error_code
}

/// OffsetFetch v7 (require_stable) of partition 0: (error, offset).
async fn fetch_offset(
    sock: &mut TcpStream,
    group: &str,
    topic: &str,
    require_stable: bool,
) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_require_stable(require_stable)
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![0]),
        ]));
    let r = call(sock, &req, 7).await;
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

/// Fetch v11 of partition 0 from `offset`: (records bytes, high watermark, last stable
/// offset, aborted transactions as (producer id, first offset)).
async fn fetch(
    sock: &mut TcpStream,
    topic: &str,
    offset: i64,
    committed: bool,
) -> (usize, i64, i64, Vec<(i64, i64)>) {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(if committed { 1 } else { 0 })
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let r = call(sock, &req, 11).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (
        p.records.as_ref().map_or(0, |r| r.len()),
        p.high_watermark,
        p.last_stable_offset,
        p.aborted_transactions
            .iter()
            .flatten()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect(),
    )
}

/// Waits until the partition's last stable offset reaches `want` (markers are written after
/// EndTxn is answered).
async fn wait_lso(sock: &mut TcpStream, topic: &str, want: i64) {
    for _ in 0..200 {
        if fetch(sock, topic, 0, false).await.2 == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("last stable offset of {topic} never reached {want}");
}

#[tokio::test]
async fn transaction_api_errors_are_kafkas() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("transaction.max.timeout.ms", "60000")]).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut sock, "t", 2).await;
    assert_eq!(find_txn_coordinator(&mut sock, "tx").await, 0);
    assert_eq!(
        init(&mut sock, "tx", 60_001).await.error_code,
        INVALID_TRANSACTION_TIMEOUT
    );
    assert_eq!(
        init(&mut sock, "tx", 0).await.error_code,
        INVALID_TRANSACTION_TIMEOUT
    );
    // No producer for this id yet.
    assert_eq!(
        add_partitions(&mut sock, "nobody", 5, 0, "t", &[0], 3).await,
        vec![INVALID_PRODUCER_ID_MAPPING]
    );
    let r = init(&mut sock, "tx", 10_000).await;
    assert_eq!(r.error_code, 0);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    // EndTxn with no transaction going on.
    assert_eq!(
        end_txn(&mut sock, "tx", pid, epoch, true, 3).await,
        INVALID_TXN_STATE
    );
    // Unknown partition: that one is refused, the others not attempted (55).
    assert_eq!(
        add_partitions(&mut sock, "tx", pid, epoch, "t", &[0, 7], 3).await,
        vec![55, 3]
    );
    assert_eq!(
        add_partitions(&mut sock, "tx", pid, epoch, "t", &[0], 3).await,
        vec![0]
    );
    // KIP-890's verify-only form (v4, the brokers' batched shape) adds nothing.
    assert_eq!(
        verify_partitions(&mut sock, "tx", pid, epoch, "t", &[0, 1]).await,
        vec![0, INVALID_TXN_STATE]
    );
    assert_eq!(
        verify_partitions(&mut sock, "tx", pid, epoch - 1, "t", &[0]).await,
        vec![PRODUCER_FENCED]
    );
    // An older epoch is fenced: PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH before.
    assert_eq!(
        add_partitions(&mut sock, "tx", pid, epoch - 1, "t", &[1], 2).await,
        vec![PRODUCER_FENCED]
    );
    assert_eq!(
        add_partitions(&mut sock, "tx", pid, epoch - 1, "t", &[1], 1).await,
        vec![INVALID_PRODUCER_EPOCH]
    );
    // A transactional batch to a partition the transaction does not hold is refused.
    let b = producer_batch(pid, epoch, 0, &["x"], true);
    assert_eq!(
        produce_to(&mut sock, "t", 1, b, Some("tx")).await.0,
        INVALID_TXN_STATE
    );
    let b = producer_batch(pid, epoch, 0, &["x"], true);
    assert_eq!(produce_to(&mut sock, "t", 0, b, Some("tx")).await.0, 0);
    // A new instance while a transaction is open: the old one is aborted first.
    assert_eq!(
        init(&mut sock, "tx", 10_000).await.error_code,
        CONCURRENT_TRANSACTIONS
    );
    let mut again = None;
    for _ in 0..100 {
        let r = init(&mut sock, "tx", 10_000).await;
        if r.error_code == 0 {
            again = Some(r);
            break;
        }
        assert_eq!(r.error_code, CONCURRENT_TRANSACTIONS);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let again = again.expect("the fenced transaction completes");
    assert_eq!(again.producer_id.0, pid);
    // Fenced once by the abort, once more by the new instance.
    assert_eq!(again.producer_epoch, epoch + 2);
    // The old instance's batches are refused as of an old epoch (fatal for clients).
    let b = producer_batch(pid, epoch, 1, &["late"], true);
    assert_eq!(
        produce_to(&mut sock, "t", 0, b, Some("tx")).await.0,
        INVALID_PRODUCER_EPOCH
    );
    // The old instance's EndTxn is fenced.
    assert_eq!(
        end_txn(&mut sock, "tx", pid, epoch, true, 3).await,
        PRODUCER_FENCED
    );
    // Its data was aborted: the last stable offset passed it, read_committed lists it.
    wait_lso(&mut sock, "t", 2).await;
    let (_, hw, lso, aborted) = fetch(&mut sock, "t", 0, true).await;
    assert_eq!((hw, lso), (2, 2));
    assert_eq!(aborted, vec![(pid, 0)]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn read_committed_stops_at_the_open_transaction_and_offsets_wait_for_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    create_topic(&mut sock, "data", 1).await;
    let r = init(&mut sock, "t1", 30_000).await;
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    assert_eq!(
        add_partitions(&mut sock, "t1", pid, epoch, "data", &[0], 3).await,
        vec![0]
    );
    let plain = producer_batch(-1, -1, -1, &["before"], false);
    assert_eq!(produce_to(&mut sock, "data", 0, plain, None).await, (0, 0));
    let b = producer_batch(pid, epoch, 0, &["a", "b"], true);
    assert_eq!(
        produce_to(&mut sock, "data", 0, b, Some("t1")).await,
        (0, 1)
    );
    // read_committed sees only what precedes the open transaction.
    let (bytes_uncommitted, hw, lso, _) = fetch(&mut sock, "data", 0, false).await;
    assert_eq!((hw, lso), (3, 1));
    let (bytes_committed, _, _, aborted) = fetch(&mut sock, "data", 0, true).await;
    assert!(bytes_committed > 0 && bytes_committed < bytes_uncommitted);
    assert!(aborted.is_empty());
    assert_eq!(fetch(&mut sock, "data", 1, true).await.0, 0);
    // Offsets committed inside the transaction stay pending until the marker.
    assert_eq!(add_offsets(&mut sock, "t1", pid, epoch, "g").await, 0);
    assert_eq!(
        txn_commit_offset(&mut sock, "t1", pid, epoch, "g", "data", 3).await,
        0
    );
    assert_eq!(
        fetch_offset(&mut sock, "g", "data", true).await.0,
        UNSTABLE_OFFSET_COMMIT
    );
    assert_eq!(fetch_offset(&mut sock, "g", "data", false).await, (0, -1));
    assert_eq!(end_txn(&mut sock, "t1", pid, epoch, true, 3).await, 0);
    // A retried EndTxn of a completed commit succeeds; an abort now is refused.
    wait_lso(&mut sock, "data", 4).await;
    for _ in 0..100 {
        if fetch_offset(&mut sock, "g", "data", true).await == (0, 3) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(fetch_offset(&mut sock, "g", "data", true).await, (0, 3));
    // The markers are written before the coordinator records the commit complete; until
    // then a retry is answered CONCURRENT_TRANSACTIONS, which clients retry, as with Kafka.
    let mut retried = end_txn(&mut sock, "t1", pid, epoch, true, 3).await;
    for _ in 0..100 {
        if retried != CONCURRENT_TRANSACTIONS {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        retried = end_txn(&mut sock, "t1", pid, epoch, true, 3).await;
    }
    assert_eq!(retried, 0);
    assert_eq!(
        end_txn(&mut sock, "t1", pid, epoch, false, 3).await,
        INVALID_TXN_STATE
    );
    let (_, hw, lso, aborted) = fetch(&mut sock, "data", 0, true).await;
    assert_eq!((hw, lso), (4, 4));
    assert!(aborted.is_empty());
    // Both survive a restart.
    drop(sock);
    broker.shutdown().await.unwrap();
    let broker = start(dir.path()).await;
    let mut sock = TcpStream::connect(broker.local_addr).await.unwrap();
    assert_eq!(fetch_offset(&mut sock, "g", "data", true).await, (0, 3));
    assert_eq!(fetch(&mut sock, "data", 0, true).await.2, 4);
    broker.shutdown().await.unwrap();
}
