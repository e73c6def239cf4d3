//! Fetch: read whole batches, honour the soft byte limits, and long-poll until `min_bytes` have
//! arrived or `max_wait_ms` has passed. Fetch sessions are declined (session id 0), so every
//! response lists every requested partition.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use super::Ctx;
use crate::errors::{log_error_code, Code};
use cairn_log::LogError;

struct Wanted {
    name: Option<String>,
    topic: FetchableTopicResponse,
    parts: Vec<(i32, i64, i32, i32)>, // partition, offset, partition_max_bytes, leader epoch
}

pub async fn handle(ctx: &Ctx, req: FetchRequest) -> FetchResponse {
    let st = &ctx.state;
    // An incremental request for a session we never created: tell the client to start over.
    if ctx.version >= 7 && req.session_id != 0 {
        tracing::debug!(peer = %ctx.peer, session = req.session_id, "unknown fetch session");
        st.metrics.fetch_error(Code::FetchSessionIdNotFound.code());
        return FetchResponse::default().with_error_code(Code::FetchSessionIdNotFound.code());
    }
    let wanted: Vec<Wanted> = req
        .topics
        .into_iter()
        .map(|t| {
            let (name, resp) = if ctx.version >= 13 {
                let name = st.store.topic_by_id(t.topic_id).map(|m| m.name);
                (
                    name,
                    FetchableTopicResponse::default().with_topic_id(t.topic_id),
                )
            } else {
                let name = t.topic.0.to_string();
                (
                    Some(name),
                    FetchableTopicResponse::default().with_topic(TopicName(t.topic.0.clone())),
                )
            };
            Wanted {
                name,
                topic: resp,
                parts: t
                    .partitions
                    .iter()
                    .map(|p| {
                        (
                            p.partition,
                            p.fetch_offset,
                            p.partition_max_bytes,
                            p.current_leader_epoch,
                        )
                    })
                    .collect(),
            }
        })
        .collect();

    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut appended = st.appended.subscribe();
    loop {
        appended.borrow_and_update();
        let (resp, bytes, errors) = read_all(ctx, &wanted, req.max_bytes);
        let done = req.max_wait_ms <= 0
            || bytes >= req.min_bytes.max(0) as usize
            || errors
            || tokio::time::Instant::now() >= deadline;
        if done || appended.has_changed().is_err() {
            count(ctx, &wanted, &resp);
            return resp;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = appended.changed() => {}
        }
    }
}

/// Bytes out and errors of the response actually sent (a long poll reads more than once).
fn count(ctx: &Ctx, wanted: &[Wanted], resp: &FetchResponse) {
    let m = &ctx.state.metrics;
    if resp.error_code != 0 {
        m.fetch_error(resp.error_code);
    }
    for (w, t) in wanted.iter().zip(&resp.responses) {
        let mut bytes = 0;
        for p in &t.partitions {
            bytes += p.records.as_ref().map_or(0, |r| r.len());
            if p.error_code != 0 {
                m.fetch_error(p.error_code);
            }
        }
        if let Some(name) = &w.name {
            m.bytes_out(name, bytes);
        }
    }
}

fn read_all(ctx: &Ctx, wanted: &[Wanted], max_bytes: i32) -> (FetchResponse, usize, bool) {
    let st = &ctx.state;
    let mut remaining = if max_bytes <= 0 {
        usize::MAX
    } else {
        max_bytes as usize
    };
    let mut total = 0usize;
    let mut any_error = false;
    let mut topics = Vec::with_capacity(wanted.len());
    for w in wanted {
        let mut topic = w.topic.clone();
        for &(p, offset, part_max, epoch) in &w.parts {
            let mut pd = PartitionData::default()
                .with_partition_index(p)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_records(Some(Bytes::new()));
            let log = w.name.as_ref().and_then(|n| st.store.partition(n, p));
            let Some(log) = log else {
                any_error = true;
                let code = if ctx.version >= 13 && w.name.is_none() {
                    Code::UnknownTopicId.code()
                } else {
                    Code::UnknownTopicOrPartition.code()
                };
                topic.partitions.push(pd.with_error_code(code));
                continue;
            };
            // Our single replica is always at leader epoch 0.
            if epoch > 0 {
                any_error = true;
                topic
                    .partitions
                    .push(pd.with_error_code(Code::UnknownLeaderEpoch.code()));
                continue;
            }
            // KIP-74: the first non-empty partition gets at least one whole batch.
            let limit = if total == 0 {
                (part_max.max(0) as usize).min(remaining).max(1)
            } else {
                (part_max.max(0) as usize).min(remaining)
            };
            let result = if limit == 0 {
                Ok(None)
            } else {
                log.read(offset, limit).map(Some)
            };
            match result {
                Ok(Some(r)) => {
                    total += r.data.len();
                    remaining = remaining.saturating_sub(r.data.len());
                    pd = pd
                        .with_high_watermark(r.high_watermark)
                        .with_last_stable_offset(r.high_watermark)
                        .with_log_start_offset(r.log_start_offset)
                        .with_records(Some(r.data));
                }
                Ok(None) => {
                    let hw = log.log_end_offset();
                    pd = pd
                        .with_high_watermark(hw)
                        .with_last_stable_offset(hw)
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
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(log.log_start_offset());
                }
            }
            topic.partitions.push(pd);
        }
        topics.push(topic);
    }
    (
        FetchResponse::default().with_responses(topics),
        total,
        any_error,
    )
}
