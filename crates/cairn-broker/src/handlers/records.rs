//! DeleteRecords: moves partitions' log start offsets (Kafka's low watermark).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use cairn_auth::{Operation, ResourceType};

use super::Ctx;
use crate::errors::{log_error_code, Code};
use crate::internal_topics;

pub async fn delete_records(ctx: &Ctx, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let st = &ctx.state;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.as_str().to_string();
        // Kafka answers per partition: authorization, then existence, then the move.
        let topic_error = if !ctx.allowed(Operation::Delete, ResourceType::Topic, &name) {
            Some(Code::TopicAuthorizationFailed.code())
        } else if internal_topics::is_internal(&name) {
            Some(Code::InvalidTopicException.code())
        } else {
            None
        };
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let answer = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            let answer = if let Some(code) = topic_error {
                answer.with_error_code(code)
            } else if let Some(log) = st.store.partition(&name, p.partition_index) {
                let offset = p.offset;
                match tokio::task::spawn_blocking(move || log.delete_records(offset)).await {
                    Ok(Ok(start)) => answer.with_low_watermark(start),
                    Ok(Err(e)) => {
                        tracing::info!(peer = %ctx.peer, topic = %name, partition = p.partition_index, offset, "DeleteRecords refused: {e}");
                        answer.with_error_code(log_error_code(&e))
                    }
                    Err(_) => answer.with_error_code(Code::UnknownServerError.code()),
                }
            } else {
                answer.with_error_code(Code::UnknownTopicOrPartition.code())
            };
            partitions.push(answer);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
