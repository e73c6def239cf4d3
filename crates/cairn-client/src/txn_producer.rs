//! Idempotent and transactional producing with the original transaction
//! protocol: the coordinator found with FindCoordinator (key type 1),
//! InitProducerId, AddPartitionsToTxn once per partition per transaction,
//! batches carrying producer id, epoch and per-partition sequences, and
//! EndTxn. Also read_committed fetches, which drop the records of aborted
//! transactions as Kafka's consumer does.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, InitProducerIdRequest, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kafka_protocol::ResponseError;

use crate::client::{topic_name, Client, ProduceAck};
use crate::connection::Connection;
use crate::error::{within, Error, Result};
use crate::records::{
    batch_record_count, decode_records, encode_batch_as, restamp_batch, split_batches,
    ConsumedRecord, ProduceRecord, ProducerIdentity,
};

/// AddPartitionsToTxn v4+ is the brokers' batched form; clients send v3 or lower.
const ADD_PARTITIONS_MAX_VERSION: i16 = 3;
/// EndTxn v5 belongs to KIP-890 part 2 (an epoch bump per transaction).
const END_TXN_MAX_VERSION: i16 = 4;
/// How long the coordinator's transient answers (loading, concurrent
/// transactions while markers are written, moved) are retried.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// Retries start fast because the usual cause, the previous transaction's
/// markers still being written, lasts about a round trip; Kafka's producer
/// waits 20 ms, the cap here.
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
const MAX_BACKOFF: Duration = Duration::from_millis(20);

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Sequence numbers per partition, as Kafka counts them: the first batch of
/// a fresh producer id starts at 0, each batch advances by its record count,
/// and the count wraps from `i32::MAX` to 0.
#[derive(Debug, Default, Clone)]
pub struct Sequences {
    next: HashMap<(String, i32), i32>,
}

impl Sequences {
    /// The base sequence for a batch of `count` records, advancing past it.
    pub fn take(&mut self, topic: &str, partition: i32, count: i32) -> i32 {
        let slot = self.next.entry((topic.to_string(), partition)).or_insert(0);
        let base = *slot;
        *slot = advance(base, count);
        base
    }

    /// The base sequence the next batch of a partition will get.
    pub fn peek(&self, topic: &str, partition: i32) -> i32 {
        self.next
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
    }
}

fn advance(base: i32, count: i32) -> i32 {
    let next = base as i64 + count as i64;
    if next > i32::MAX as i64 {
        (next - i32::MAX as i64 - 1) as i32
    } else {
        next as i32
    }
}

/// What the producer waited for, so a benchmark can say where time went.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProducerStats {
    /// Answers of CONCURRENT_TRANSACTIONS (or the coordinator loading) that were retried.
    pub retries: u64,
    /// AddPartitionsToTxn requests that succeeded.
    pub add_partitions: u64,
    /// Time spent in AddPartitionsToTxn, retries included.
    pub add_partitions_time: Duration,
}

/// An idempotent producer, or a transactional one when it has a
/// transactional id. Batches are stamped with sequences in the order they
/// are sent, and a broker answers one connection's requests in order, so
/// several batches may be in flight per partition. After a failed produce
/// the sequences no longer match the broker's; start a new producer then.
pub struct TransactionalProducer {
    client: Arc<Client>,
    transactional_id: Option<String>,
    producer_id: i64,
    producer_epoch: i16,
    /// The transaction coordinator (transactional producers only).
    coordinator: Option<Arc<Connection>>,
    sequences: Sequences,
    /// Partitions added to the open transaction.
    in_txn: BTreeSet<(String, i32)>,
    stats: ProducerStats,
}

impl TransactionalProducer {
    /// An idempotent producer: a producer id from InitProducerId without a
    /// transactional id.
    pub async fn idempotent(client: Arc<Client>) -> Result<TransactionalProducer> {
        let conn = client.bootstrap_connection().await?;
        let (producer_id, producer_epoch) =
            init_producer_id(&client, &conn, None, -1, &mut 0).await?;
        Ok(TransactionalProducer {
            client,
            transactional_id: None,
            producer_id,
            producer_epoch,
            coordinator: None,
            sequences: Sequences::default(),
            in_txn: BTreeSet::new(),
            stats: ProducerStats::default(),
        })
    }

    /// A transactional producer: finds the coordinator of `transactional_id`
    /// and initializes it with `transaction_timeout`, which fences any
    /// earlier producer with the same id.
    pub async fn init(
        client: Arc<Client>,
        transactional_id: &str,
        transaction_timeout: Duration,
    ) -> Result<TransactionalProducer> {
        let timeout_ms = transaction_timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut retries = 0;
        let deadline = Instant::now() + RETRY_FOR;
        let (coordinator, producer_id, producer_epoch) = loop {
            let coordinator = txn_coordinator(&client, transactional_id).await?;
            match init_producer_id(
                &client,
                &coordinator,
                Some(transactional_id),
                timeout_ms,
                &mut retries,
            )
            .await
            {
                Ok((id, epoch)) => break (coordinator, id, epoch),
                Err(e) if moved(&e) && Instant::now() < deadline => {
                    retries += 1;
                    tokio::time::sleep(MAX_BACKOFF).await;
                }
                Err(e) => return Err(e),
            }
        };
        Ok(TransactionalProducer {
            client,
            transactional_id: Some(transactional_id.to_string()),
            producer_id,
            producer_epoch,
            coordinator: Some(coordinator),
            sequences: Sequences::default(),
            in_txn: BTreeSet::new(),
            stats: ProducerStats {
                retries,
                ..ProducerStats::default()
            },
        })
    }

    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }

    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }

    pub fn transactional_id(&self) -> Option<&str> {
        self.transactional_id.as_deref()
    }

    pub fn stats(&self) -> ProducerStats {
        self.stats
    }

    /// The base sequence the next batch to a partition will carry.
    pub fn next_sequence(&self, topic: &str, partition: i32) -> i32 {
        self.sequences.peek(topic, partition)
    }

    /// Whether a transaction is open (some partition was added since the last EndTxn).
    pub fn in_transaction(&self) -> bool {
        !self.in_txn.is_empty()
    }

    /// Adds partitions to the open transaction (which begins with the first
    /// one); partitions already in it are not sent again.
    pub async fn add_partitions(&mut self, topic: &str, partitions: &[i32]) -> Result<()> {
        let Some(txn_id) = self.transactional_id.clone() else {
            return Ok(());
        };
        let mut fresh: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| !self.in_txn.contains(&(topic.to_string(), *p)))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        if fresh.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let deadline = started + RETRY_FOR;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let conn = self.coordinator_connection().await?;
            let version =
                conn.version_at_most::<AddPartitionsToTxnRequest>(ADD_PARTITIONS_MAX_VERSION)?;
            let req = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(sb(&txn_id)))
                .with_v3_and_below_producer_id(ProducerId(self.producer_id))
                .with_v3_and_below_producer_epoch(self.producer_epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(fresh.clone())]);
            let what = || format!("add {topic} {fresh:?} to transaction {txn_id}");
            let resp = within(
                self.client.wait_limit(),
                what,
                conn.send_versioned(req, version),
            )
            .await?;
            // The first refused partition explains the others (OPERATION_NOT_ATTEMPTED).
            let mut codes: Vec<i16> = resp
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| t.results_by_partition.iter())
                .map(|p| p.partition_error_code)
                .filter(|c| *c != 0)
                .collect();
            codes.sort_by_key(|c| (*c == ResponseError::OperationNotAttempted.code(), *c));
            let outcome = match codes.first() {
                None => Ok(()),
                Some(&code) => Error::check_code(code, None, what),
            };
            match outcome {
                Ok(()) => break,
                Err(e) if retriable(&e) && Instant::now() < deadline => {
                    self.stats.retries += 1;
                    if moved(&e) {
                        self.coordinator = None;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
        for p in fresh {
            self.in_txn.insert((topic.to_string(), p));
        }
        self.stats.add_partitions += 1;
        self.stats.add_partitions_time += started.elapsed();
        Ok(())
    }

    /// Stamps an encoded batch (from [`crate::records::encode_batch`]) with
    /// this producer's identity and the partition's next sequence and sends
    /// it; the returned future resolves to the broker's answer. A
    /// transactional producer adds the partition to the transaction first
    /// if it is not in it yet.
    pub async fn send_batch(
        &mut self,
        topic: &str,
        partition: i32,
        batch: &[u8],
        acks: i16,
    ) -> Result<impl Future<Output = Result<ProduceAck>> + Send + 'static> {
        let count = batch_record_count(batch)
            .filter(|c| *c > 0)
            .ok_or_else(|| Error::Records(anyhow::anyhow!("not a record batch")))?;
        self.add_partitions(topic, &[partition]).await?;
        let identity = self.identity(topic, partition, count);
        let stamped = restamp_batch(batch, identity)?;
        self.submit(topic, partition, stamped, acks).await
    }

    /// Encodes `records` as one batch of this producer and sends it, as
    /// [`Self::send_batch`] does.
    pub async fn send(
        &mut self,
        topic: &str,
        partition: i32,
        records: &[ProduceRecord],
        acks: i16,
    ) -> Result<impl Future<Output = Result<ProduceAck>> + Send + 'static> {
        let count = i32::try_from(records.len())
            .map_err(|_| Error::Records(anyhow::anyhow!("too many records for one batch")))?;
        self.add_partitions(topic, &[partition]).await?;
        let identity = self.identity(topic, partition, count);
        let batch = encode_batch_as(records, Compression::None, Some(identity))?;
        self.submit(topic, partition, batch, acks).await
    }

    fn identity(&mut self, topic: &str, partition: i32, count: i32) -> ProducerIdentity {
        ProducerIdentity {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.sequences.take(topic, partition, count),
            transactional: self.transactional_id.is_some(),
        }
    }

    async fn submit(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
    ) -> Result<impl Future<Output = Result<ProduceAck>> + Send + 'static> {
        self.client
            .submit_produce_as(
                topic,
                partition,
                batch,
                acks,
                self.transactional_id.as_deref(),
            )
            .await
    }

    /// Commits the open transaction. Every produce of it must have been
    /// answered first, as Kafka's producer flushes before EndTxn. Without an
    /// open transaction there is nothing to send.
    pub async fn commit(&mut self) -> Result<()> {
        self.end(true).await
    }

    /// Aborts the open transaction.
    pub async fn abort(&mut self) -> Result<()> {
        self.end(false).await
    }

    async fn end(&mut self, commit: bool) -> Result<()> {
        let Some(txn_id) = self.transactional_id.clone() else {
            return Err(Error::Protocol(
                "an idempotent producer has no transaction to end".to_string(),
            ));
        };
        if self.in_txn.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + RETRY_FOR;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let conn = self.coordinator_connection().await?;
            let version = conn.version_at_most::<EndTxnRequest>(END_TXN_MAX_VERSION)?;
            let req = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(sb(&txn_id)))
                .with_producer_id(ProducerId(self.producer_id))
                .with_producer_epoch(self.producer_epoch)
                .with_committed(commit);
            let what = || {
                let verb = if commit { "commit" } else { "abort" };
                format!("{verb} transaction {txn_id}")
            };
            let resp = within(
                self.client.wait_limit(),
                what,
                conn.send_versioned(req, version),
            )
            .await?;
            match Error::check_code(resp.error_code, None, what) {
                Ok(()) => break,
                Err(e) if retriable(&e) && Instant::now() < deadline => {
                    self.stats.retries += 1;
                    if moved(&e) {
                        self.coordinator = None;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
        self.in_txn.clear();
        Ok(())
    }

    async fn coordinator_connection(&mut self) -> Result<Arc<Connection>> {
        if let Some(conn) = self.coordinator.as_ref().filter(|c| !c.is_closed()) {
            return Ok(conn.clone());
        }
        let txn_id = self.transactional_id.clone().unwrap_or_default();
        let conn = txn_coordinator(&self.client, &txn_id).await?;
        self.coordinator = Some(conn.clone());
        Ok(conn)
    }
}

/// Errors after which the same request may succeed shortly.
fn retriable(e: &Error) -> bool {
    matches!(
        e.kafka_error(),
        Some(
            ResponseError::ConcurrentTransactions
                | ResponseError::CoordinatorLoadInProgress
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::NotCoordinator
        )
    )
}

/// Errors that mean the coordinator must be looked up again.
fn moved(e: &Error) -> bool {
    matches!(
        e.kafka_error(),
        Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable)
    )
}

/// The connection to the coordinator of a transactional id (the lookup retries while the
/// broker is still creating or loading its transaction state).
async fn txn_coordinator(client: &Client, txn_id: &str) -> Result<Arc<Connection>> {
    let node = client.find_transaction_coordinator(txn_id).await?.node_id;
    if !client.metadata().brokers.contains_key(&node) {
        client.refresh_metadata(None).await?;
    }
    client.broker_connection(node).await
}

/// InitProducerId, retrying CONCURRENT_TRANSACTIONS (a previous
/// transaction of the id still completing) and a loading coordinator.
async fn init_producer_id(
    client: &Client,
    conn: &Connection,
    txn_id: Option<&str>,
    timeout_ms: i32,
    retries: &mut u64,
) -> Result<(i64, i16)> {
    let version = conn.version_for::<InitProducerIdRequest>()?;
    let deadline = Instant::now() + RETRY_FOR;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(txn_id.map(|t| TransactionalId(sb(t))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let what = || match txn_id {
            Some(t) => format!("init producer id for {t}"),
            None => "init producer id".to_string(),
        };
        let resp = within(client.wait_limit(), what, conn.send_versioned(req, version)).await?;
        match Error::check_code(resp.error_code, None, what) {
            Ok(()) => return Ok((resp.producer_id.0, resp.producer_epoch)),
            Err(e)
                if matches!(
                    e.kafka_error(),
                    Some(
                        ResponseError::ConcurrentTransactions
                            | ResponseError::CoordinatorLoadInProgress
                    )
                ) && Instant::now() < deadline =>
            {
                *retries += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }
}

/// One fetch at an isolation level, decoded.
#[derive(Clone, Debug)]
pub struct IsolatedFetch {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    /// Data records, without control records or those of aborted transactions.
    pub records: Vec<ConsumedRecord>,
    /// Where to fetch next: past the last whole batch returned, control
    /// batches and skipped ones included.
    pub next_offset: i64,
    /// Size of the record data the broker sent.
    pub bytes: usize,
}

impl Client {
    /// Fetches one partition read_committed (`true`) or read_uncommitted and
    /// decodes it as a consumer of that isolation level sees it.
    pub async fn fetch_isolated(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
        read_committed: bool,
    ) -> Result<IsolatedFetch> {
        let raw = self
            .fetch_raw_isolated(
                topic,
                partition,
                offset,
                max_bytes,
                max_wait_ms,
                read_committed as i8,
            )
            .await?;
        let (records, next_offset) =
            decode_committed(&raw.records, offset, &raw.aborted_transactions)?;
        Ok(IsolatedFetch {
            high_watermark: raw.high_watermark,
            last_stable_offset: raw.last_stable_offset,
            records,
            next_offset: next_offset.max(offset),
            bytes: raw.records.len(),
        })
    }
}

const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;
/// Control record type of an ABORT marker (COMMIT is 1).
const ABORT_MARKER: i16 = 0;

/// Decodes fetched batches as a read_committed consumer does: records of a
/// producer's batches are dropped from the first offset of one of its
/// `aborted` transactions (producer id, first offset) until its ABORT
/// marker; control records are never returned. With no aborted
/// transactions this is a read_uncommitted decode. Also returns the offset
/// after the last whole batch (`from_offset` when there is none).
pub fn decode_committed(
    data: &Bytes,
    from_offset: i64,
    aborted: &[(i64, i64)],
) -> Result<(Vec<ConsumedRecord>, i64)> {
    let mut pending: Vec<(i64, i64)> = aborted.to_vec();
    pending.sort_by_key(|&(_, first)| first);
    let mut pending = pending.into_iter().peekable();
    let mut aborting: HashSet<i64> = HashSet::new();
    let mut out = Vec::new();
    let mut next = from_offset;
    for batch in split_batches(data)? {
        let base = i64::from_be_bytes(batch[0..8].try_into().expect("8 bytes"));
        let delta = i32::from_be_bytes(batch[23..27].try_into().expect("4 bytes"));
        let attributes = i16::from_be_bytes(batch[21..23].try_into().expect("2 bytes"));
        let producer_id = i64::from_be_bytes(batch[43..51].try_into().expect("8 bytes"));
        let last = base + delta as i64;
        next = next.max(last + 1);
        let transactional = attributes & ATTR_TRANSACTIONAL != 0;
        if transactional {
            while let Some(&(pid, _)) = pending.peek().filter(|&&(_, first)| first <= last) {
                aborting.insert(pid);
                pending.next();
            }
        }
        if attributes & ATTR_CONTROL != 0 {
            if transactional && is_abort_marker(&batch)? {
                aborting.remove(&producer_id);
            }
            continue;
        }
        if transactional && aborting.contains(&producer_id) {
            continue;
        }
        out.extend(decode_records(&batch, from_offset)?);
    }
    Ok((out, next))
}

fn is_abort_marker(batch: &Bytes) -> Result<bool> {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).map_err(Error::Records)?;
    Ok(set.records.iter().any(|r| {
        r.key
            .as_ref()
            .and_then(|k| k.get(2..4))
            .is_some_and(|t| i16::from_be_bytes([t[0], t[1]]) == ABORT_MARKER)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::encode_batch;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::records::{
        Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType, NO_PARTITION_LEADER_EPOCH,
    };

    fn records(n: usize) -> Vec<ProduceRecord> {
        (0..n)
            .map(|i| ProduceRecord::new(format!("v{i}")).with_timestamp(1000 + i as i64))
            .collect()
    }

    fn header_i64(b: &[u8], at: usize) -> i64 {
        i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
    }
    fn header_i32(b: &[u8], at: usize) -> i32 {
        i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn header_i16(b: &[u8], at: usize) -> i16 {
        i16::from_be_bytes(b[at..at + 2].try_into().unwrap())
    }

    fn identity(seq: i32, transactional: bool) -> ProducerIdentity {
        ProducerIdentity {
            producer_id: 4242,
            producer_epoch: 7,
            base_sequence: seq,
            transactional,
        }
    }

    #[test]
    fn encoded_batches_carry_the_producer() {
        let batch =
            encode_batch_as(&records(3), Compression::None, Some(identity(10, true))).unwrap();
        assert_eq!(header_i64(&batch, 43), 4242);
        assert_eq!(header_i16(&batch, 51), 7);
        assert_eq!(header_i32(&batch, 53), 10);
        assert_eq!(
            header_i16(&batch, 21) & ATTR_TRANSACTIONAL,
            ATTR_TRANSACTIONAL
        );
        let set = RecordBatchDecoder::decode(&mut batch.clone()).unwrap();
        assert_eq!(set.records.len(), 3, "one batch, not split");
        assert!(set.records.iter().all(|r| r.transactional && !r.control));
        let seqs: Vec<i32> = set.records.iter().map(|r| r.sequence).collect();
        assert_eq!(seqs, [10, 11, 12]);

        let idem =
            encode_batch_as(&records(2), Compression::None, Some(identity(0, false))).unwrap();
        assert_eq!(header_i16(&idem, 21) & ATTR_TRANSACTIONAL, 0);
        assert_eq!(header_i32(&idem, 53), 0);
    }

    #[test]
    fn restamping_rewrites_producer_fields_with_a_valid_crc() {
        let plain = encode_batch(&records(4), Compression::None).unwrap();
        let txn = restamp_batch(&plain, identity(100, true)).unwrap();
        assert_eq!(txn.len(), plain.len());
        let set = RecordBatchDecoder::decode(&mut txn.clone()).expect("CRC must still match");
        assert!(set
            .records
            .iter()
            .all(|r| r.transactional && r.producer_id == 4242 && r.producer_epoch == 7));
        let seqs: Vec<i32> = set.records.iter().map(|r| r.sequence).collect();
        assert_eq!(seqs, [100, 101, 102, 103]);
        assert_eq!(batch_record_count(&txn), Some(4));

        // And back to a non-transactional idempotent batch.
        let idem = restamp_batch(&txn, identity(4, false)).unwrap();
        let set = RecordBatchDecoder::decode(&mut idem.clone()).unwrap();
        assert!(set.records.iter().all(|r| !r.transactional));
        assert_eq!(header_i32(&idem, 53), 4);

        let mut broken = BytesMut::from(&plain[..]);
        broken[16] = 1;
        assert!(restamp_batch(&broken, identity(0, false)).is_err());
    }

    #[test]
    fn sequences_advance_per_partition_and_wrap() {
        let mut s = Sequences::default();
        assert_eq!(s.take("t", 0, 5), 0);
        assert_eq!(s.take("t", 0, 3), 5);
        assert_eq!(s.take("t", 1, 2), 0, "each partition counts on its own");
        assert_eq!(s.take("u", 0, 1), 0, "and each topic");
        assert_eq!(s.peek("t", 0), 8);
        let mut w = Sequences::default();
        w.next.insert(("t".to_string(), 0), i32::MAX - 1);
        assert_eq!(w.take("t", 0, 3), i32::MAX - 1);
        assert_eq!(w.peek("t", 0), 1, "after i32::MAX comes 0");
    }

    /// A batch as the broker would hold it at `base_offset`.
    fn at_offset(batch: Bytes, base_offset: i64) -> Bytes {
        let mut b = BytesMut::from(&batch[..]);
        b[..8].copy_from_slice(&base_offset.to_be_bytes());
        b.freeze()
    }

    fn marker(producer_id: i64, commit: bool) -> Bytes {
        let record = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 0,
            key: Some(Bytes::from(vec![0, 0, 0, commit as u8])),
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
            headers: Default::default(),
        };
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, [&record], &options).unwrap();
        buf.freeze()
    }

    fn txn_batch(producer_id: i64, values: &[&str]) -> Bytes {
        let recs: Vec<ProduceRecord> = values
            .iter()
            .map(|v| ProduceRecord::new(v.to_string()))
            .collect();
        let id = ProducerIdentity {
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            transactional: true,
        };
        encode_batch_as(&recs, Compression::None, Some(id)).unwrap()
    }

    #[test]
    fn read_committed_drops_aborted_transactions_and_markers() {
        // 0-1 producer 7 (aborted), 2-3 producer 8 (committed), 4 abort of 7,
        // 5 commit of 8, 6 producer 7 again in a new transaction, 7 its commit.
        let mut data = BytesMut::new();
        data.put_slice(&at_offset(txn_batch(7, &["a0", "a1"]), 0));
        data.put_slice(&at_offset(txn_batch(8, &["c0", "c1"]), 2));
        data.put_slice(&at_offset(marker(7, false), 4));
        data.put_slice(&at_offset(marker(8, true), 5));
        data.put_slice(&at_offset(txn_batch(7, &["b0"]), 6));
        data.put_slice(&at_offset(marker(7, true), 7));
        let data = data.freeze();

        let value =
            |r: &ConsumedRecord| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
        let (committed, next) = decode_committed(&data, 0, &[(7, 0)]).unwrap();
        assert_eq!(
            committed.iter().map(value).collect::<Vec<_>>(),
            ["c0", "c1", "b0"]
        );
        assert_eq!(next, 8, "past the last marker");

        let (all, _) = decode_committed(&data, 0, &[]).unwrap();
        assert_eq!(
            all.iter().map(value).collect::<Vec<_>>(),
            ["a0", "a1", "c0", "c1", "b0"],
            "read_uncommitted keeps aborted data but never markers"
        );
        let (tail, _) = decode_committed(&data, 3, &[]).unwrap();
        assert_eq!(tail.first().map(|r| r.offset), Some(3));
        assert_eq!(decode_committed(&Bytes::new(), 9, &[]).unwrap().1, 9);
    }
}
