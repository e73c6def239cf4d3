//! DescribeClientQuotas and AlterClientQuotas. Both need the cluster's DESCRIBE_CONFIGS or
//! ALTER_CONFIGS, as in Kafka; the quota rules are `cairn-quota`'s, the durable set `quotas.rs`'s.

use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};

use cairn_auth::Operation;
use cairn_quota::{Component, Entity};

use super::{sb, Ctx};
use crate::errors::{quota_error, Code};

pub async fn describe(ctx: &Ctx, req: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let resp = DescribeClientQuotasResponse::default();
    if !ctx.allowed_cluster(Operation::DescribeConfigs) {
        return resp
            .with_error_code(Code::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb("Cluster authorization failed.")));
    }
    let filter: Vec<Component> = req
        .components
        .iter()
        .map(|c| Component {
            entity_type: c.entity_type.to_string(),
            match_type: c.match_type,
            value: c._match.as_ref().map(|m| m.to_string()),
        })
        .collect();
    match ctx.state.quotas.describe(&filter, req.strict) {
        Ok(found) => {
            let entries = found
                .into_iter()
                .map(|(entity, values)| {
                    describe_client_quotas_response::EntryData::default()
                        .with_entity(
                            entity
                                .parts()
                                .map(|(t, n)| {
                                    describe_client_quotas_response::EntityData::default()
                                        .with_entity_type(sb(t.name()))
                                        .with_entity_name(n.map(sb))
                                })
                                .collect(),
                        )
                        .with_values(
                            values
                                .into_iter()
                                .map(|(k, v)| {
                                    describe_client_quotas_response::ValueData::default()
                                        .with_key(sb(k))
                                        .with_value(v)
                                })
                                .collect(),
                        )
                })
                .collect();
            resp.with_entries(Some(entries))
        }
        Err(e) => {
            let (code, msg) = quota_error(&e);
            resp.with_error_code(code).with_error_message(Some(sb(msg)))
        }
    }
}

pub async fn alter(ctx: &Ctx, req: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    // Each answer names its entity as the request did.
    let echo = |e: &[kafka_protocol::messages::alter_client_quotas_request::EntityData]| {
        e.iter()
            .map(|p| {
                alter_client_quotas_response::EntityData::default()
                    .with_entity_type(p.entity_type.clone())
                    .with_entity_name(p.entity_name.clone())
            })
            .collect::<Vec<_>>()
    };
    let answer = |entity, code: i16, msg: Option<String>| {
        alter_client_quotas_response::EntryData::default()
            .with_entity(entity)
            .with_error_code(code)
            .with_error_message(msg.map(sb))
    };
    if !ctx.allowed_cluster(Operation::AlterConfigs) {
        let entries = req
            .entries
            .iter()
            .map(|e| {
                answer(
                    echo(&e.entity),
                    Code::ClusterAuthorizationFailed.code(),
                    Some("Cluster authorization failed.".into()),
                )
            })
            .collect();
        return AlterClientQuotasResponse::default().with_entries(entries);
    }
    let echoes: Vec<_> = req.entries.iter().map(|e| echo(&e.entity)).collect();
    let alterations = req
        .entries
        .into_iter()
        .map(|e| {
            let entity = Entity::new(
                e.entity
                    .iter()
                    .map(|p| (p.entity_type.as_str(), p.entity_name.as_deref())),
            );
            let ops = e
                .ops
                .into_iter()
                .map(|op| (op.key.to_string(), (!op.remove).then_some(op.value)))
                .collect();
            (entity, ops)
        })
        .collect();
    let entries = match ctx.state.quotas.alter(alterations, req.validate_only).await {
        Ok(results) => echoes
            .into_iter()
            .zip(results)
            .map(|(entity, r)| match r {
                Ok(()) => answer(entity, 0, None),
                Err(e) => {
                    let (code, msg) = quota_error(&e);
                    answer(entity, code, Some(msg))
                }
            })
            .collect(),
        Err(e) => {
            tracing::error!("client quotas not saved: {e:#}");
            echoes
                .into_iter()
                .map(|entity| {
                    answer(
                        entity,
                        Code::KafkaStorageError.code(),
                        Some(format!("client quotas not saved: {e:#}")),
                    )
                })
                .collect()
        }
    };
    AlterClientQuotasResponse::default().with_entries(entries)
}
