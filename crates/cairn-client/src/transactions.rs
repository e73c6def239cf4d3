//! Transaction administration, as Kafka's admin client does it for
//! kafka-transactions.sh: ListTransactions on every broker,
//! DescribeTransactions at each transactional id's coordinator,
//! DescribeProducers at a partition's leader, and WriteTxnMarkers to abort
//! a hanging transaction on one partition.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId,
    TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::client::{topic_name, BrokerInfo, Client};
use crate::connection::Connection;
use crate::error::{within, Error, Result};

const ADMIN_REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// How long requests are retried while a coordinator is not ready yet (it
/// creates or loads `__transaction_state` first).
const COORDINATOR_WAIT: Duration = Duration::from_secs(10);
/// FindCoordinator's key type for transactional ids.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The transaction states Kafka's coordinator reports, by the names its
/// tools and ListTransactions use.
pub const TRANSACTION_STATES: &[&str] = &[
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

/// Kafka's name for a transaction state given in any case, with or without
/// `_`/`-` (`complete_commit` → `CompleteCommit`); `None` if unknown.
pub fn parse_state(s: &str) -> Option<&'static str> {
    let norm = |t: &str| {
        t.chars()
            .filter(|c| *c != '_' && *c != '-')
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let want = norm(s.trim());
    TRANSACTION_STATES
        .iter()
        .copied()
        .find(|name| norm(name) == want)
}

/// One transaction as ListTransactions reports it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedTransaction {
    pub transactional_id: String,
    /// The broker that listed it: its transaction coordinator.
    pub coordinator_id: i32,
    pub producer_id: i64,
    pub state: String,
}

/// One transactional id as its coordinator describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    /// Why it could not be described (TRANSACTIONAL_ID_NOT_FOUND, say);
    /// the other fields are then meaningless.
    pub error: Option<ResponseError>,
    /// -1 when the coordinator could not be found.
    pub coordinator_id: i32,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// -1 when no transaction is in progress.
    pub start_time_ms: i64,
    /// The partitions of the current transaction, sorted.
    pub partitions: Vec<(String, i32)>,
}

/// One producer with state on a partition, as its leader reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// -1 when unknown.
    pub coordinator_epoch: i32,
    /// First offset of the producer's open transaction there, -1 if none.
    pub current_txn_start_offset: i64,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Errors a coordinator answers while it is not ready; worth a retry.
fn retriable(e: Option<ResponseError>) -> bool {
    matches!(
        e,
        Some(
            ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress
                | ResponseError::NotCoordinator
        )
    )
}

impl Connection {
    /// FindCoordinator for one transactional id.
    pub async fn find_transaction_coordinator(&self, transactional_id: &str) -> Result<BrokerInfo> {
        self.find_coordinator_of(KEY_TYPE_TRANSACTION, transactional_id, || {
            format!("find the coordinator of transactional id '{transactional_id}'")
        })
        .await
    }
}

impl Client {
    /// The broker coordinating `transactional_id`, retrying for a while
    /// when the coordinator is not available yet.
    pub async fn find_transaction_coordinator(&self, transactional_id: &str) -> Result<BrokerInfo> {
        let deadline = Instant::now() + COORDINATOR_WAIT;
        loop {
            let conn = self.bootstrap_connection().await?;
            match conn.find_transaction_coordinator(transactional_id).await {
                Err(e) if retriable(e.kafka_error()) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    /// ListTransactions on every broker in the metadata (each lists the
    /// transactional ids it coordinates), sorted by transactional id.
    /// Empty filters match everything; `min_duration_ms` needs
    /// ListTransactions v1.
    pub async fn list_transactions(
        &self,
        states: &[&str],
        producer_ids: &[i64],
        min_duration_ms: Option<i64>,
    ) -> Result<Vec<ListedTransaction>> {
        let meta = self.refresh_metadata(Some(&[])).await?;
        let mut found = Vec::new();
        for &node in meta.brokers.keys() {
            let conn = self.broker_connection(node).await?;
            // v2 only adds a transactional id pattern, which is not used here.
            let version = conn.version_at_most::<ListTransactionsRequest>(1)?;
            if min_duration_ms.is_some() && version < 1 {
                return Err(Error::Protocol(format!(
                    "broker {node} speaks ListTransactions v0 only, which has no duration filter"
                )));
            }
            let req = ListTransactionsRequest::default()
                .with_state_filters(states.iter().map(|s| sb(s)).collect())
                .with_producer_id_filters(producer_ids.iter().map(|&p| ProducerId(p)).collect())
                .with_duration_filter(min_duration_ms.unwrap_or(-1));
            let what = || format!("list transactions on broker {node}");
            let deadline = Instant::now() + COORDINATOR_WAIT;
            let resp = loop {
                let resp = within(
                    ADMIN_REQUEST_LIMIT,
                    what,
                    conn.send_versioned(req.clone(), version),
                )
                .await?;
                let error = ResponseError::try_from_code(resp.error_code);
                if retriable(error) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Error::check_code(resp.error_code, None, what)?;
                break resp;
            };
            if !resp.unknown_state_filters.is_empty() {
                tracing::debug!(broker = node, unknown = ?resp.unknown_state_filters, "states the broker does not know");
            }
            found.extend(
                resp.transaction_states
                    .into_iter()
                    .map(|t| ListedTransaction {
                        transactional_id: t.transactional_id.0.to_string(),
                        coordinator_id: node,
                        producer_id: t.producer_id.0,
                        state: t.transaction_state.to_string(),
                    }),
            );
        }
        found.sort();
        Ok(found)
    }

    /// DescribeTransactions, each id at its coordinator, in the order asked.
    /// An id that cannot be described comes back with `error` set
    /// (TRANSACTIONAL_ID_NOT_FOUND for an id the coordinator does not know).
    pub async fn describe_transactions(
        &self,
        transactional_ids: &[&str],
    ) -> Result<Vec<TransactionDescription>> {
        let mut out: Vec<TransactionDescription> = transactional_ids
            .iter()
            .map(|id| TransactionDescription {
                transactional_id: id.to_string(),
                error: None,
                coordinator_id: -1,
                state: String::new(),
                producer_id: -1,
                producer_epoch: -1,
                timeout_ms: 0,
                start_time_ms: -1,
                partitions: Vec::new(),
            })
            .collect();
        // Ids grouped by coordinator, so each coordinator gets one request.
        let mut by_coordinator: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for (i, id) in transactional_ids.iter().enumerate() {
            match self.find_transaction_coordinator(id).await {
                Ok(c) => {
                    out[i].coordinator_id = c.node_id;
                    by_coordinator.entry(c.node_id).or_default().push(i);
                }
                Err(Error::Kafka { error, .. }) => out[i].error = Some(error),
                Err(e) => return Err(e),
            }
        }
        for (node, indexes) in by_coordinator {
            if !self.metadata().brokers.contains_key(&node) {
                self.refresh_metadata(Some(&[])).await?;
            }
            let conn = self.broker_connection(node).await?;
            let req = DescribeTransactionsRequest::default().with_transactional_ids(
                indexes
                    .iter()
                    .map(|&i| TransactionalId(sb(&out[i].transactional_id)))
                    .collect(),
            );
            let what = || format!("describe transactions at broker {node}");
            let deadline = Instant::now() + COORDINATOR_WAIT;
            let resp = loop {
                let resp = within(ADMIN_REQUEST_LIMIT, what, conn.send(req.clone())).await?;
                let busy = resp
                    .transaction_states
                    .iter()
                    .any(|s| retriable(ResponseError::try_from_code(s.error_code)));
                if busy && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                break resp;
            };
            for i in indexes {
                let d = &mut out[i];
                let s = resp
                    .transaction_states
                    .iter()
                    .find(|s| s.transactional_id.0.as_str() == d.transactional_id)
                    .ok_or_else(|| {
                        Error::Protocol(format!("{}: {} missing", what(), d.transactional_id))
                    })?;
                d.error = ResponseError::try_from_code(s.error_code);
                d.state = s.transaction_state.to_string();
                d.producer_id = s.producer_id.0;
                d.producer_epoch = s.producer_epoch;
                d.timeout_ms = s.transaction_timeout_ms;
                d.start_time_ms = s.transaction_start_time_ms;
                d.partitions = s
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p)))
                    .collect();
                d.partitions.sort();
            }
        }
        Ok(out)
    }

    /// DescribeProducers for one partition, at its leader: the producers
    /// the partition keeps state for.
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerInfo>> {
        let conn = self.leader_connection(topic, partition).await?;
        let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![partition])]);
        let what = || format!("describe producers of {topic}-{partition}");
        let resp = within(ADMIN_REQUEST_LIMIT, what, conn.send(req)).await?;
        let p = resp
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| Error::Protocol(format!("{}: partition missing", what())))?;
        Error::check_code(p.error_code, p.error_message.as_deref(), what)?;
        Ok(p.active_producers
            .iter()
            .map(|s| ProducerInfo {
                producer_id: s.producer_id.0,
                producer_epoch: s.producer_epoch,
                last_sequence: s.last_sequence,
                last_timestamp: s.last_timestamp,
                coordinator_epoch: s.coordinator_epoch,
                current_txn_start_offset: s.current_txn_start_offset,
            })
            .collect())
    }

    /// Aborts a producer's open transaction on one partition by writing an
    /// ABORT marker there (WriteTxnMarkers at the leader), as Kafka's admin
    /// client does for a hanging transaction. Needs CLUSTER_ACTION on the
    /// cluster when the broker enforces ACLs.
    pub async fn write_txn_markers_abort(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<()> {
        let conn = self.leader_connection(topic, partition).await?;
        let req =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(producer_epoch)
                .with_transaction_result(false)
                .with_coordinator_epoch(coordinator_epoch)
                .with_topics(vec![WritableTxnMarkerTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(vec![partition])])]);
        let what = || {
            format!("abort the transaction of producer {producer_id} (epoch {producer_epoch}) on {topic}-{partition}")
        };
        let resp = within(ADMIN_REQUEST_LIMIT, what, conn.send(req)).await?;
        let p = resp
            .markers
            .iter()
            .filter(|m| m.producer_id.0 == producer_id)
            .flat_map(|m| &m.topics)
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| Error::Protocol(format!("{}: partition missing", what())))?;
        Error::check_code(p.error_code, None, what)
    }
}

/// What the errors of these APIs mean, for operators.
pub fn explain(error: ResponseError) -> Option<&'static str> {
    Some(match error {
        ResponseError::TransactionalIdNotFound => {
            "transactional id not found: its coordinator keeps no state for it, as it was never used or has expired"
        }
        ResponseError::TransactionalIdAuthorizationFailed => {
            "this principal may not DESCRIBE (or WRITE) this transactional id"
        }
        ResponseError::CoordinatorNotAvailable | ResponseError::CoordinatorLoadInProgress => {
            "the transaction coordinator is not ready yet; try again"
        }
        ResponseError::InvalidProducerEpoch | ResponseError::ProducerFenced => {
            "the producer epoch is older than the partition's: the transaction was already ended by a newer producer"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_in_any_spelling() {
        assert_eq!(parse_state("Ongoing"), Some("Ongoing"));
        assert_eq!(parse_state("complete_commit"), Some("CompleteCommit"));
        assert_eq!(parse_state("PREPARE-ABORT"), Some("PrepareAbort"));
        assert_eq!(
            parse_state(" prepareepochfence "),
            Some("PrepareEpochFence")
        );
        assert_eq!(parse_state("Committed"), None);
        for s in TRANSACTION_STATES {
            assert_eq!(parse_state(s), Some(*s));
        }
    }

    #[test]
    fn only_coordinator_trouble_is_retried() {
        assert!(retriable(Some(ResponseError::CoordinatorLoadInProgress)));
        assert!(retriable(Some(ResponseError::NotCoordinator)));
        assert!(!retriable(Some(ResponseError::TransactionalIdNotFound)));
        assert!(!retriable(None));
        assert!(explain(ResponseError::TransactionalIdNotFound)
            .unwrap()
            .starts_with("transactional id not found"));
    }
}
