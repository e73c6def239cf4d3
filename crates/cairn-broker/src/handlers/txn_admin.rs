//! The operators' transaction APIs: DescribeTransactions, ListTransactions (the coordinator's
//! view), DescribeProducers (a partition's open transactions) and WriteTxnMarkers (Kafka's
//! tooling aborts a hanging transaction by writing its marker directly).

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;

use cairn_auth::{Operation, ResourceType};
use cairn_txn::{TopicPartition, TxnMeta, TxnState as State};

use super::{sb, Ctx};
use crate::errors::Code;
use crate::txns::MarkError;

fn topics_of(m: &TxnMeta) -> Vec<TopicData> {
    let mut out: Vec<TopicData> = Vec::new();
    for tp in &m.partitions {
        match out.last_mut() {
            Some(t) if t.topic.0.as_str() == tp.topic => t.partitions.push(tp.partition),
            _ => out.push(
                TopicData::default()
                    .with_topic(TopicName(sb(tp.topic.clone())))
                    .with_partitions(vec![tp.partition]),
            ),
        }
    }
    out
}

pub async fn describe_transactions(
    ctx: &Ctx,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let st = &ctx.state;
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            let r = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_state(sb(""))
                .with_transaction_start_time_ms(-1);
            if !ctx.allowed(Operation::Describe, ResourceType::TransactionalId, id) {
                return r.with_error_code(Code::TransactionalIdAuthorizationFailed.code());
            }
            match st.txns.read(id, |c| c.durable(id).cloned()).flatten() {
                Some(m) if m.state != State::Dead => r
                    .with_transaction_state(sb(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(m.start_ms)
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.producer_epoch)
                    .with_topics(topics_of(&m)),
                _ => r.with_error_code(Code::TransactionalIdNotFound.code()),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub async fn list_transactions(
    ctx: &Ctx,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let st = &ctx.state;
    let mut unknown = Vec::new();
    let mut states = Vec::new();
    for f in &req.state_filters {
        match State::from_name(f) {
            Some(s) => states.push(s),
            None => unknown.push(f.clone()),
        }
    }
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let now = crate::state::now_ms();
    // v1: only transactions running longer than this (-1: any).
    let min_duration = if ctx.version >= 1 {
        req.duration_filter
    } else {
        -1
    };
    let listed = st.txns.read_all(|c| c.durable_all());
    let out = listed
        .into_iter()
        .filter(|m| m.state != State::Dead)
        .filter(|m| states.is_empty() || states.contains(&m.state))
        .filter(|m| pids.is_empty() || pids.contains(&m.producer_id))
        .filter(|m| {
            min_duration < 0
                || (m.state == State::Ongoing && now.saturating_sub(m.start_ms) >= min_duration)
        })
        .filter(|m| {
            ctx.may(
                Operation::Describe,
                ResourceType::TransactionalId,
                &m.transactional_id,
            )
        })
        .map(|m| {
            ListedState::default()
                .with_transactional_id(TransactionalId(sb(m.transactional_id.clone())))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(sb(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(out)
}

pub async fn describe_producers(
    ctx: &Ctx,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let st = &ctx.state;
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let readable = ctx.allowed(Operation::Read, ResourceType::Topic, &t.name.0);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|p| {
                    let r = PartitionResponse::default().with_partition_index(*p);
                    if !readable {
                        return r.with_error_code(Code::TopicAuthorizationFailed.code());
                    }
                    let Some(log) = st.store.partition(&t.name.0, *p) else {
                        return r.with_error_code(Code::UnknownTopicOrPartition.code());
                    };
                    let producers = log
                        .open_transactions()
                        .into_iter()
                        .map(|o| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(o.producer_id))
                                .with_producer_epoch(o.producer_epoch as i32)
                                .with_last_sequence(-1)
                                .with_last_timestamp(o.last_timestamp_ms)
                                .with_coordinator_epoch(0)
                                .with_current_txn_start_offset(o.first_offset)
                        })
                        .collect();
                    r.with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

pub async fn write_txn_markers(ctx: &Ctx, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let st = &ctx.state;
    let allowed = ctx.allowed_cluster(Operation::ClusterAction);
    let mut markers = Vec::new();
    for m in &req.markers {
        let mut topics = Vec::new();
        for t in &m.topics {
            let mut parts = Vec::new();
            for p in &t.partition_indexes {
                let code = if !allowed {
                    Code::ClusterAuthorizationFailed.code()
                } else {
                    let tp = TopicPartition::new(&t.name.0, *p);
                    match st
                        .txns
                        .mark(m.producer_id.0, m.producer_epoch, m.transaction_result, &tp)
                        .await
                    {
                        Ok(()) => 0,
                        Err(MarkError::Fenced) => Code::InvalidProducerEpoch.code(),
                        Err(MarkError::UnknownPartition) => Code::UnknownTopicOrPartition.code(),
                        Err(MarkError::Failed(e)) => {
                            tracing::error!(topic = %t.name.0.as_str(), partition = p,
                                "WriteTxnMarkers could not write the marker: {e}");
                            Code::KafkaStorageError.code()
                        }
                    }
                };
                parts.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(*p)
                        .with_error_code(code),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(parts),
            );
        }
        if allowed {
            tracing::warn!(
                producer_id = m.producer_id.0,
                commit = m.transaction_result,
                "transaction markers written on request (WriteTxnMarkers)"
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
