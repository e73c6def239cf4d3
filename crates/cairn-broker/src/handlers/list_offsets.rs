//! ListOffsets: earliest, latest, max-timestamp, and the exact first record at or after a time.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use cairn_auth::{Operation, ResourceType};

use super::Ctx;
use crate::errors::{log_error_code, Code};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub async fn handle(ctx: &Ctx, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let st = &ctx.state;
    // read_committed (v2+) sees the log only up to its last stable offset.
    let committed = ctx.version >= 2 && req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let described = ctx.allowed(Operation::Describe, ResourceType::Topic, &t.name.0);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    if !described {
                        return r.with_error_code(Code::TopicAuthorizationFailed.code());
                    }
                    let Some(log) = st.store.partition(&t.name.0, p.partition_index) else {
                        return r.with_error_code(Code::UnknownTopicOrPartition.code());
                    };
                    if p.current_leader_epoch > 0 {
                        return r.with_error_code(Code::UnknownLeaderEpoch.code());
                    }
                    let visible_end = if committed {
                        log.last_stable_offset()
                    } else {
                        log.log_end_offset()
                    };
                    let found = match p.timestamp {
                        LATEST => Ok(Some((visible_end, -1))),
                        EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
                        // Nothing is tiered: there is no tiered offset to report.
                        LATEST_TIERED => Ok(None),
                        MAX_TIMESTAMP => log.max_timestamp(),
                        ts if ts >= 0 => log.offset_for_timestamp(ts),
                        other => {
                            tracing::info!(peer = %ctx.peer, timestamp = other, "ListOffsets with an unknown special timestamp");
                            return r.with_error_code(Code::InvalidRequest.code());
                        }
                    };
                    // As Kafka: a record a timestamp lookup finds at or past the last stable
                    // offset is not yet visible to read_committed, so there is no answer.
                    let found = match found {
                        Ok(Some((o, _))) if p.timestamp >= 0 && o >= visible_end => Ok(None),
                        f => f,
                    };
                    match found {
                        Ok(Some((offset, ts))) => {
                            let r = r.with_offset(offset).with_timestamp(ts);
                            // The leader epoch field exists from v4 only.
                            if ctx.version >= 4 {
                                r.with_leader_epoch(0)
                            } else {
                                r
                            }
                        }
                        Ok(None) => r,
                        Err(e) => {
                            tracing::warn!(peer = %ctx.peer, topic = %t.name.0.as_str(),
                                partition = p.partition_index, "ListOffsets failed: {e}");
                            r.with_error_code(log_error_code(&e))
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
