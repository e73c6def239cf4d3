//! Produce: validate and append record batches, then acknowledge (after an fsync in that mode).

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use cairn_auth::{Operation, ResourceType};

use super::{sb, Ctx};
use crate::errors::{internal_topic_code, log_error_code, Code};
use crate::internal_topics;
use crate::state::now_ms;

pub async fn handle(ctx: &Ctx, req: ProduceRequest) -> Option<ProduceResponse> {
    let st = &ctx.state;
    let acks_ok = (-1..=1).contains(&req.acks);
    let mut pending_syncs = Vec::new();
    let mut appended_any = false;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // One inflation budget for the request, scaled by its size like each topic's bound is by
    // max.message.bytes, so small compressed bombs spread over many partitions cannot add up.
    let request_bytes: usize = req
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    let mut inflate_budget =
        cairn_log::batch::max_uncompressed_bytes(u32::try_from(request_bytes).unwrap_or(u32::MAX));
    // A transactional id needs WRITE on it.
    let txn_denied = req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !ctx.allowed(Operation::Write, ResourceType::TransactionalId, t));
    for topic in req.topic_data {
        // From v13 topics are named by id (KIP-516); an id naming no topic is UNKNOWN_TOPIC_ID,
        // answered before topic authorization as Kafka does (there is no name to authorize).
        let by_id = if ctx.version >= 13 {
            Some(st.store.topic_by_id(topic.topic_id))
        } else {
            None
        };
        let unknown_id = matches!(by_id, Some(None));
        let (name, meta) = match by_id {
            Some(Some(m)) => (m.name.clone(), Some(m)),
            Some(None) => (String::new(), None),
            None => {
                let name = topic.name.0.to_string();
                let meta = st.store.topic(&name);
                (name, meta)
            }
        };
        // As Kafka: authorization before existence, so names cannot be probed.
        let denied = if txn_denied {
            Some(Code::TransactionalIdAuthorizationFailed.code())
        } else if unknown_id {
            Some(Code::UnknownTopicId.code())
        } else if !ctx.allowed(Operation::Write, ResourceType::Topic, &name) {
            Some(Code::TopicAuthorizationFailed.code())
        } else {
            None
        };
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        for pd in topic.partition_data {
            let mut r = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            if !acks_ok {
                parts.push(r.with_error_code(Code::InvalidRequiredAcks.code()));
                continue;
            }
            if let Some(code) = denied {
                parts.push(r.with_error_code(code));
                continue;
            }
            // As in Kafka: an unknown partition first, then the internal-topic refusal. The group
            // coordinator writes its records to the log directly, never through here.
            let log = match (&meta, st.store.partition(&name, pd.index)) {
                (Some(_), Some(log)) => match internal_topics::check_append(&name) {
                    Ok(()) => log,
                    Err(e) => {
                        tracing::warn!(peer = %ctx.peer, client = %ctx.client_id, "produce refused: {e}");
                        parts.push(
                            r.with_error_code(internal_topic_code(&e))
                                .with_error_message(Some(sb(e.to_string()))),
                        );
                        continue;
                    }
                },
                _ => {
                    parts.push(r.with_error_code(Code::UnknownTopicOrPartition.code()));
                    continue;
                }
            };
            let Some(records) = pd.records else {
                parts.push(r.with_error_code(Code::InvalidRecord.code()));
                continue;
            };
            // A transactional batch belongs to the producer's ongoing transaction, which
            // must already hold this partition (AddPartitionsToTxn came first).
            if let Some((pid, epoch)) = transactional_producer(&records) {
                if let Err(e) = st.txns.holds(pid, epoch, &name, pd.index) {
                    // A fenced producer gets Kafka's answer for an old epoch, which clients
                    // treat as fatal; anything else is outside a transaction.
                    let (code, why) = if e == cairn_txn::TxnError::ProducerFenced {
                        (
                            Code::InvalidProducerEpoch,
                            "the producer's epoch is fenced by a newer one",
                        )
                    } else {
                        (
                            Code::InvalidTxnState,
                            "the partition is not part of the producer's ongoing transaction",
                        )
                    };
                    tracing::warn!(peer = %ctx.peer, client = %ctx.client_id, topic = %name,
                        partition = pd.index, producer_id = pid, "transactional produce refused: {why}");
                    parts.push(
                        r.with_error_code(code.code())
                            .with_error_message(Some(sb(why))),
                    );
                    continue;
                }
            }
            match log.append_within(&records, now_ms(), &mut inflate_budget) {
                Ok(info) => {
                    if info.duplicate {
                        // A retry after a lost acknowledgement: the original offsets, nothing new.
                        tracing::debug!(peer = %ctx.peer, topic = %name, partition = pd.index,
                            base_offset = info.base_offset, "duplicate produce acknowledged");
                    } else {
                        appended_any = true;
                        st.metrics.bytes_in(&name, records.len());
                    }
                    r = r
                        .with_base_offset(info.base_offset)
                        .with_log_append_time_ms(info.log_append_time)
                        .with_log_start_offset(info.log_start_offset);
                    // Duplicates wait too: the original may still be waiting for its fsync.
                    if let Some(f) = &st.flusher {
                        pending_syncs.push((parts.len(), responses.len(), f.flush(log.clone())));
                    }
                }
                Err(e) => {
                    tracing::warn!(peer = %ctx.peer, client = %ctx.client_id, topic = %name,
                        partition = pd.index, "produce refused: {e}");
                    r = r
                        .with_error_code(log_error_code(&e))
                        .with_error_message(Some(sb(e.to_string())));
                }
            }
            parts.push(r);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(parts),
        );
    }
    if appended_any {
        st.notify_append();
    }
    if !acks_ok {
        tracing::warn!(peer = %ctx.peer, acks = req.acks, "produce with invalid acks");
    }
    // In the fsync mode nothing is acknowledged before it is on disk.
    for (pi, ti, sync) in pending_syncs {
        if let Err(e) = sync.await {
            tracing::error!("fsync failed: {e}");
            let p = &mut responses[ti].partition_responses[pi];
            p.error_code = Code::KafkaStorageError.code();
            p.base_offset = -1;
        }
    }
    for p in responses.iter().flat_map(|t| &t.partition_responses) {
        if p.error_code != 0 {
            st.metrics.produce_error(p.error_code);
        }
    }
    if req.acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// The producer id and epoch of the first batch, if it is transactional (a produce request's
/// batches for one partition all come from one producer).
fn transactional_producer(records: &[u8]) -> Option<(i64, i16)> {
    let view = cairn_log::batch::BatchView::new(records).ok()?;
    view.is_transactional()
        .then(|| (view.producer_id(), view.producer_epoch()))
}
