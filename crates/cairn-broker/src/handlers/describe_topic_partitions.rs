//! DescribeTopicPartitions (KIP-966): Metadata's topic answer, paginated by partitions, as
//! Kafka's DescribeTopicPartitionsRequestHandler answers it.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use cairn_auth::{Operation, ResourceType};

use super::{sb, Ctx};
use crate::errors::Code;
use crate::internal_topics::is_internal;

/// Kafka's `max.request.partition.size.limit` default: the most partitions one answer carries.
const MAX_PARTITIONS: i32 = 2000;

pub async fn handle(
    ctx: &Ctx,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let st = &ctx.state;
    let all = req.topics.is_empty();
    let cursor_topic = req
        .cursor
        .as_ref()
        .map(|c| c.topic_name.0.to_string())
        .unwrap_or_default();
    let mut names: Vec<String> = if all {
        st.store.topics().into_iter().map(|t| t.name).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.retain(|n| *n >= cursor_topic);
    names.sort();
    names.dedup();
    let bad_cursor = req
        .cursor
        .as_ref()
        .is_some_and(|c| c.partition_index < 0 || (!all && !names.contains(&cursor_topic)));
    if bad_cursor {
        tracing::info!(peer = %ctx.peer, "DescribeTopicPartitions with a cursor outside the request refused");
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(t.name))
                    .with_error_code(Code::InvalidRequest.code())
            })
            .collect();
        return DescribeTopicPartitionsResponse::default().with_topics(topics);
    }
    let node = BrokerId(st.node_id);
    let mut remaining = req.response_partition_limit.clamp(1, MAX_PARTITIONS);
    let mut topics = Vec::new();
    let mut unauthorized = Vec::new();
    let mut next_cursor = None;
    for name in names {
        // Topics the caller may not describe are not disclosed, unless it named them.
        if !ctx.may(Operation::Describe, ResourceType::Topic, &name) {
            if !all {
                unauthorized.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(TopicName(sb(name))))
                        .with_error_code(Code::TopicAuthorizationFailed.code()),
                );
            }
            continue;
        }
        if remaining == 0 {
            next_cursor = Some(Cursor::default().with_topic_name(TopicName(sb(name))));
            break;
        }
        let Some(meta) = st.store.topic(&name) else {
            if !all {
                let code = if crate::errors::validate_topic_name(&name).is_ok() {
                    Code::UnknownTopicOrPartition
                } else {
                    Code::InvalidTopicException
                };
                topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_is_internal(is_internal(&name))
                        .with_name(Some(TopicName(sb(name))))
                        .with_error_code(code.code()),
                );
            }
            continue;
        };
        let count = meta.partitions as i32;
        let start = if name == cursor_topic {
            req.cursor.as_ref().map_or(0, |c| c.partition_index)
        } else {
            0
        };
        let upper = count.min(start.saturating_add(remaining));
        let partitions: Vec<_> = (start..upper)
            .map(|p| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p)
                    .with_leader_id(node)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
                    .with_eligible_leader_replicas(Some(vec![]))
                    .with_last_known_elr(Some(vec![]))
            })
            .collect();
        remaining -= partitions.len() as i32;
        let ops = ctx.authorized_operations(ResourceType::Topic, &name);
        let label: StrBytes = sb(name.clone());
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(label)))
                .with_topic_id(meta.id)
                .with_is_internal(is_internal(&name))
                .with_partitions(partitions)
                .with_topic_authorized_operations(ops),
        );
        if upper < count {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(sb(name)))
                    .with_partition_index(upper),
            );
            break;
        }
    }
    topics.extend(unauthorized);
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
