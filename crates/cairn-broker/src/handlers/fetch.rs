//! Fetch: read whole batches, honour the byte limits as Kafka does (KIP-74), and long-poll until
//! `min_bytes` have arrived or `max_wait_ms` has passed. Fetch sessions are declined (session id
//! 0), so every response lists every requested partition, once.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use uuid::Uuid;

use cairn_auth::{Operation, ResourceType};

use super::Ctx;
use crate::errors::{log_error_code, Code};
use cairn_log::LogError;

/// One topic of the request, as Kafka keys it: by id from v13, by name before.
struct Topic {
    name: Option<String>,
    /// READ on the topic (checked once per request, not per long-poll round).
    readable: bool,
    resp: FetchableTopicResponse,
}

/// One partition to read; a partition listed twice keeps its first place and its last values.
struct Part {
    topic: usize,
    partition: i32,
    offset: i64,
    max_bytes: i32,
    leader_epoch: i32,
}

/// The request's partitions without duplicates, in order. Kafka collects them into a map keyed by
/// topic and partition (later entries overwrite earlier ones, in place), so a partition listed many
/// times is read once and answered once.
fn wanted(ctx: &Ctx, req: &FetchRequest) -> (Vec<Topic>, Vec<Part>) {
    let st = &ctx.state;
    let mut topics: Vec<Topic> = Vec::new();
    let mut topic_index: HashMap<TopicKey, usize> = HashMap::new();
    let mut parts: Vec<Part> = Vec::new();
    let mut part_index: HashMap<(usize, i32), usize> = HashMap::new();
    for t in &req.topics {
        let key = if ctx.version >= 13 {
            TopicKey::Id(t.topic_id)
        } else {
            TopicKey::Name(t.topic.0.to_string())
        };
        let topic = *topic_index.entry(key).or_insert_with_key(|key| {
            let (name, resp) = match key {
                TopicKey::Id(id) => (
                    st.store.topic_by_id(*id).map(|m| m.name),
                    FetchableTopicResponse::default().with_topic_id(*id),
                ),
                TopicKey::Name(name) => (
                    Some(name.clone()),
                    FetchableTopicResponse::default().with_topic(TopicName(t.topic.0.clone())),
                ),
            };
            let readable = name
                .as_deref()
                .is_none_or(|n| ctx.allowed(Operation::Read, ResourceType::Topic, n));
            topics.push(Topic {
                name,
                readable,
                resp,
            });
            topics.len() - 1
        });
        for p in &t.partitions {
            let part = Part {
                topic,
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                leader_epoch: p.current_leader_epoch,
            };
            match part_index.entry((topic, p.partition)) {
                Entry::Occupied(e) => parts[*e.get()] = part,
                Entry::Vacant(e) => {
                    e.insert(parts.len());
                    parts.push(part);
                }
            }
        }
    }
    (topics, parts)
}

#[derive(PartialEq, Eq, Hash)]
enum TopicKey {
    Id(Uuid),
    Name(String),
}

pub async fn handle(ctx: &Ctx, req: FetchRequest) -> FetchResponse {
    let st = &ctx.state;
    // An incremental request for a session we never created: tell the client to start over.
    if ctx.version >= 7 && req.session_id != 0 {
        tracing::debug!(peer = %ctx.peer, session = req.session_id, "unknown fetch session");
        st.metrics.fetch_error(Code::FetchSessionIdNotFound.code());
        return FetchResponse::default().with_error_code(Code::FetchSessionIdNotFound.code());
    }
    let (topics, parts) = wanted(ctx, &req);
    let committed = ctx.version >= 4 && req.isolation_level == 1;
    // Kafka (KIP-541) caps what a request may ask with the broker's fetch.max.bytes. Kafka fails
    // the read for a negative max_bytes; we read it as 0, which still returns one batch.
    let max_bytes = (req.max_bytes as i64)
        .min(st.config.fetch_max_bytes())
        .max(0) as usize;
    // Under a consumer byte rate, no more than the quota allows over the window at once: a
    // larger answer would be thrown away as throttled every time.
    let max_bytes = match st.quotas.fetch_bytes_cap(&ctx.principal, &ctx.client_id) {
        Some(cap) => max_bytes.min(cap),
        None => max_bytes,
    };
    let min_bytes = (req.min_bytes.max(0) as usize).min(max_bytes);

    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut appended = st.appended.subscribe();
    loop {
        appended.borrow_and_update();
        let (resp, bytes, errors) = read_all(ctx, &topics, &parts, max_bytes, committed);
        let done = req.max_wait_ms <= 0
            || bytes >= min_bytes
            || errors
            || tokio::time::Instant::now() >= deadline;
        if done || appended.has_changed().is_err() {
            count(ctx, &topics, &parts, &resp);
            return resp;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = appended.changed() => {}
        }
    }
}

/// Bytes out and errors of the response actually sent (a long poll reads more than once).
fn count(ctx: &Ctx, topics: &[Topic], parts: &[Part], resp: &FetchResponse) {
    let m = &ctx.state.metrics;
    if resp.error_code != 0 {
        m.fetch_error(resp.error_code);
    }
    let answered = resp.responses.iter().flat_map(|t| &t.partitions);
    for (part, p) in parts.iter().zip(answered) {
        if p.error_code != 0 {
            m.fetch_error(p.error_code);
        }
        if let Some(name) = &topics[part.topic].name {
            m.bytes_out(name, p.records.as_ref().map_or(0, |r| r.len()));
        }
    }
}

/// Reads every partition in order under KIP-74's rules: `max_bytes` bounds the whole response and
/// each partition's `partition_max_bytes` its own part, except that the first partition with data
/// returns its first batch whatever its size, so a consumer always makes progress.
fn read_all(
    ctx: &Ctx,
    topics: &[Topic],
    parts: &[Part],
    max_bytes: usize,
    committed: bool,
) -> (FetchResponse, usize, bool) {
    let st = &ctx.state;
    let mut remaining = max_bytes;
    let mut first_batch_always = true;
    let mut total = 0usize;
    let mut any_error = false;
    let mut out: Vec<FetchableTopicResponse> = Vec::new();
    let mut last_topic = None;
    for part in parts {
        // Consecutive partitions of one topic share a topic entry, as in Kafka's responses.
        if last_topic != Some(part.topic) {
            out.push(topics[part.topic].resp.clone());
            last_topic = Some(part.topic);
        }
        let topic = out.last_mut().expect("pushed above");
        let name = &topics[part.topic].name;
        let p = part.partition;
        let mut pd = PartitionData::default()
            .with_partition_index(p)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_records(Some(Bytes::new()));
        if !topics[part.topic].readable {
            any_error = true;
            topic
                .partitions
                .push(pd.with_error_code(Code::TopicAuthorizationFailed.code()));
            continue;
        }
        let log = name.as_ref().and_then(|n| st.store.partition(n, p));
        let Some(log) = log else {
            any_error = true;
            let code = if ctx.version >= 13 && name.is_none() {
                Code::UnknownTopicId.code()
            } else {
                Code::UnknownTopicOrPartition.code()
            };
            topic.partitions.push(pd.with_error_code(code));
            continue;
        };
        // Our single replica is always at leader epoch 0.
        if part.leader_epoch > 0 {
            any_error = true;
            topic
                .partitions
                .push(pd.with_error_code(Code::UnknownLeaderEpoch.code()));
            continue;
        }
        let limit = (part.max_bytes.max(0) as usize).min(remaining);
        // Taken before reading: the read's high watermark is never below it.
        let lso = log.last_stable_offset();
        let result = if limit == 0 && !first_batch_always {
            Ok(None)
        } else if committed {
            // read_committed: only batches below the last stable offset.
            log.read_bounded(part.offset, limit, first_batch_always, lso)
                .map(Some)
        } else {
            log.read_limited(part.offset, limit, first_batch_always)
                .map(Some)
        };
        match result {
            Ok(Some(r)) => {
                if !r.data.is_empty() {
                    first_batch_always = false;
                }
                if committed {
                    // The aborted transactions the returned range overlaps, so the consumer
                    // can drop their records.
                    let end = data_end(&r.data).unwrap_or(part.offset);
                    let aborted = log
                        .aborted_transactions(part.offset, end)
                        .into_iter()
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_first_offset(a.first_offset)
                        })
                        .collect();
                    pd = pd.with_aborted_transactions(Some(aborted));
                }
                total += r.data.len();
                remaining = remaining.saturating_sub(r.data.len());
                pd = pd
                    .with_high_watermark(r.high_watermark)
                    .with_last_stable_offset(lso.min(r.high_watermark))
                    .with_log_start_offset(r.log_start_offset)
                    .with_records(Some(r.data));
            }
            Ok(None) => {
                let hw = log.log_end_offset();
                pd = pd
                    .with_high_watermark(hw)
                    .with_last_stable_offset(lso.min(hw))
                    .with_log_start_offset(log.log_start_offset());
            }
            Err(e) => {
                any_error = true;
                if !matches!(e, LogError::OffsetOutOfRange { .. }) {
                    tracing::warn!(peer = %ctx.peer, partition = p, "fetch failed: {e}");
                }
                let hw = log.log_end_offset();
                pd = pd
                    .with_error_code(log_error_code(&e))
                    .with_high_watermark(hw)
                    .with_last_stable_offset(lso.min(hw))
                    .with_log_start_offset(log.log_start_offset());
            }
        }
        topic.partitions.push(pd);
    }
    (
        FetchResponse::default().with_responses(out),
        total,
        any_error,
    )
}

/// The answer to a fetch throttled by a quota: no partitions, so nothing is sent that the client
/// would then have to wait for (Kafka's throttled response).
pub fn throttled() -> FetchResponse {
    FetchResponse::default()
}

/// The offset after the last whole batch in `data`.
fn data_end(data: &[u8]) -> Option<i64> {
    cairn_log::batch::batches(data)
        .map_while(Result::ok)
        .last()
        .map(|b| b.next_offset())
}
