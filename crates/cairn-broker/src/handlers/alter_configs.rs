//! IncrementalAlterConfigs, AlterConfigs and ListConfigResources: topic overrides and the
//! dynamic broker configs, with Kafka's checks in Kafka's order (its ConfigAdminManager on the
//! broker, then the controller's validation): duplicates and nulls first, then the resource.

use std::collections::{BTreeMap, HashSet};

use cairn_auth::{Operation, ResourceType};
use cairn_config::{apply_ops, broker_def, topic_def, validate_topic_configs, AlterOp};
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ListConfigResourcesRequest, ListConfigResourcesResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{sb, Ctx};
use crate::errors::{
    config_op_error, dynamic_config_error, internal_topic_code, store_error_code,
    topic_config_error, Code,
};
use crate::internal_topics;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

/// One resource's refusal: Kafka's code and message.
struct Fail(i16, String);

fn invalid_request(msg: impl Into<String>) -> Fail {
    Fail(Code::InvalidRequest.code(), msg.into())
}

impl From<(i16, String)> for Fail {
    fn from((code, msg): (i16, String)) -> Fail {
        Fail(code, msg)
    }
}

/// What a resource asks for: a list of operations (incremental) or the whole new set (legacy).
enum Change {
    Ops(Vec<(String, AlterOp, Option<String>)>),
    Replace(BTreeMap<String, String>),
}

/// A resource as the request names it: type, name, and (key, operation id, value) per config.
type RawResource = (i8, String, Vec<(String, i8, Option<String>)>);

/// A resource after the request-level checks.
struct Resource {
    ty: i8,
    name: String,
    change: Change,
}

/// Kafka's preprocessing: a resource named twice fails both times; duplicate keys and null
/// values (other than DELETE's) fail the resource.
fn preprocess(
    resources: Vec<RawResource>,
    incremental: bool,
) -> Vec<(i8, String, Result<Change, Fail>)> {
    let mut seen = HashSet::new();
    let mut twice = HashSet::new();
    for (ty, name, _) in &resources {
        if !seen.insert((*ty, name.clone())) {
            twice.insert((*ty, name.clone()));
        }
    }
    resources
        .into_iter()
        .map(|(ty, name, configs)| {
            if twice.contains(&(ty, name.clone())) {
                return (
                    ty,
                    name,
                    Err(invalid_request("Each resource must appear at most once.")),
                );
            }
            let mut keys = HashSet::new();
            if !configs.iter().all(|(k, _, _)| keys.insert(k.clone())) {
                return (
                    ty,
                    name,
                    Err(invalid_request("Error due to duplicate config keys")),
                );
            }
            let nulls: Vec<&str> = configs
                .iter()
                .filter(|(_, op, v)| v.is_none() && !(incremental && *op == 1))
                .map(|(k, _, _)| k.as_str())
                .collect();
            if !nulls.is_empty() {
                let msg = format!("Null value not supported for : {}", nulls.join(", "));
                return (ty, name, Err(invalid_request(msg)));
            }
            let change = if incremental {
                let mut ops = Vec::with_capacity(configs.len());
                for (k, op, v) in configs {
                    match AlterOp::from_id(op) {
                        Some(o) => ops.push((k, o, v)),
                        None => {
                            return (
                                ty,
                                name,
                                Err(invalid_request(format!("Unknown operations type {op}"))),
                            )
                        }
                    }
                }
                Change::Ops(ops)
            } else {
                Change::Replace(
                    configs
                        .into_iter()
                        .map(|(k, _, v)| (k, v.unwrap_or_default()))
                        .collect(),
                )
            };
            (ty, name, Ok(change))
        })
        .collect()
}

/// Answers every resource of one request; `validate_only` checks without changing anything.
async fn alter(
    ctx: &Ctx,
    resources: Vec<RawResource>,
    incremental: bool,
    validate_only: bool,
) -> Vec<(i8, String, Option<Fail>)> {
    let st = &ctx.state;
    // One alteration at a time: each reads a resource's configs, changes and stores them.
    let _guard = st.dynamic.alter_lock.lock().await;
    let mut out = Vec::new();
    for (ty, name, change) in preprocess(resources, incremental) {
        let fail = match change {
            Err(f) => Some(f),
            Ok(change) => {
                let res = Resource {
                    ty,
                    name: name.clone(),
                    change,
                };
                alter_one(ctx, &res, incremental, validate_only).await.err()
            }
        };
        out.push((ty, name, fail));
    }
    out
}

async fn alter_one(
    ctx: &Ctx,
    res: &Resource,
    incremental: bool,
    validate_only: bool,
) -> Result<(), Fail> {
    let outcome = match res.ty {
        TOPIC => alter_topic(ctx, res, validate_only).await,
        BROKER => alter_broker(ctx, res, validate_only).await,
        BROKER_LOGGER if incremental => {
            if !ctx.allowed_cluster(Operation::AlterConfigs) {
                return Err(Fail(Code::ClusterAuthorizationFailed.code(), String::new()));
            }
            // Kafka changes log4j levels here; this broker's log filter is fixed at start.
            Err(invalid_request(
                "Broker loggers cannot be changed at run time on this broker; set the log \
                 level when starting it",
            ))
        }
        other => Err(invalid_request(format!("Unknown resource type {other}"))),
    };
    if let Err(Fail(code, msg)) = &outcome {
        tracing::info!(peer = %ctx.peer, resource_type = res.ty, resource = %res.name,
            code, "config change refused: {msg}");
    }
    outcome
}

async fn alter_topic(ctx: &Ctx, res: &Resource, validate_only: bool) -> Result<(), Fail> {
    let st = &ctx.state;
    if !ctx.allowed(Operation::AlterConfigs, ResourceType::Topic, &res.name) {
        return Err(Fail(Code::TopicAuthorizationFailed.code(), String::new()));
    }
    if res.name.is_empty() {
        return Err(invalid_request("Default topic resources are not allowed."));
    }
    if let Err(e) = internal_topics::check_config_change(&res.name) {
        return Err(Fail(internal_topic_code(&e), e.to_string()));
    }
    let Some(topic) = st.store.topic(&res.name) else {
        return Err(Fail(
            Code::UnknownTopicOrPartition.code(),
            format!("The topic '{}' does not exist.", res.name),
        ));
    };
    let next = match &res.change {
        Change::Ops(ops) => apply_ops(&topic.configs, ops, topic_def)
            .map_err(|e| Fail::from(config_op_error(&e, "topic")))?,
        Change::Replace(all) => all.clone(),
    };
    validate_topic_configs(&next).map_err(|e| Fail::from(topic_config_error(&e)))?;
    if validate_only {
        return Ok(());
    }
    let store = st.store.clone();
    let name = res.name.clone();
    let written = tokio::task::spawn_blocking(move || store.set_topic_configs(&name, next)).await;
    match written {
        Ok(Ok(())) => {
            tracing::info!(topic = %res.name, "topic configs changed");
            Ok(())
        }
        Ok(Err(e)) => Err(Fail(store_error_code(&e), e.to_string())),
        Err(e) => Err(Fail(Code::UnknownServerError.code(), e.to_string())),
    }
}

async fn alter_broker(ctx: &Ctx, res: &Resource, validate_only: bool) -> Result<(), Fail> {
    let st = &ctx.state;
    if !ctx.allowed_cluster(Operation::AlterConfigs) {
        return Err(Fail(Code::ClusterAuthorizationFailed.code(), String::new()));
    }
    let default = res.name.is_empty();
    if !default {
        let id: i32 = res.name.parse().map_err(|_| {
            invalid_request(format!(
                "Node id must be an integer, but it is: {}",
                res.name
            ))
        })?;
        if id != st.node_id {
            return Err(invalid_request(format!(
                "Unexpected broker id, expected {}, but received {}",
                st.node_id, res.name
            )));
        }
    }
    let next = match &res.change {
        Change::Ops(ops) => apply_ops(&st.dynamic.level(default), ops, broker_def)
            .map_err(|e| Fail::from(config_op_error(&e, "broker")))?,
        Change::Replace(all) => all.clone(),
    };
    let prepared = st
        .dynamic
        .prepare(default, next)
        .map_err(|e| Fail::from(dynamic_config_error(&e)))?;
    if validate_only {
        return Ok(());
    }
    let dynamic = st.dynamic.clone();
    let store = st.store.clone();
    let written = tokio::task::spawn_blocking(move || {
        dynamic.commit(prepared)?;
        // Topics without an override follow the broker's defaults: re-derive theirs now.
        store.reapply_log_configs();
        Ok::<_, std::io::Error>(())
    })
    .await;
    match written {
        Ok(Ok(())) => {
            tracing::info!(
                resource = if default {
                    "<default>"
                } else {
                    res.name.as_str()
                },
                "dynamic broker configs changed"
            );
            Ok(())
        }
        Ok(Err(e)) => Err(Fail(
            Code::KafkaStorageError.code(),
            format!("cannot store the broker configs: {e}"),
        )),
        Err(e) => Err(Fail(Code::UnknownServerError.code(), e.to_string())),
    }
}

fn message(f: &Option<Fail>) -> (i16, Option<StrBytes>) {
    match f {
        None => (0, None),
        // Authorization failures carry no message, as in Kafka.
        Some(Fail(code, msg)) if msg.is_empty() => (*code, None),
        Some(Fail(code, msg)) => (*code, Some(sb(msg.clone()))),
    }
}

pub async fn incremental_alter_configs(
    ctx: &Ctx,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let resources = req
        .resources
        .into_iter()
        .map(|r| {
            let configs = r
                .configs
                .into_iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.map(|v| v.to_string()),
                    )
                })
                .collect();
            (r.resource_type, r.resource_name.to_string(), configs)
        })
        .collect();
    let results = alter(ctx, resources, true, req.validate_only).await;
    IncrementalAlterConfigsResponse::default().with_responses(
        results
            .into_iter()
            .map(|(ty, name, fail)| {
                let (code, msg) = message(&fail);
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(ty)
                    .with_resource_name(sb(name))
                    .with_error_code(code)
                    .with_error_message(msg)
            })
            .collect(),
    )
}

pub async fn alter_configs(ctx: &Ctx, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let resources = req
        .resources
        .into_iter()
        .map(|r| {
            let configs = r
                .configs
                .into_iter()
                .map(|c| (c.name.to_string(), 0, c.value.map(|v| v.to_string())))
                .collect();
            (r.resource_type, r.resource_name.to_string(), configs)
        })
        .collect();
    let results = alter(ctx, resources, false, req.validate_only).await;
    AlterConfigsResponse::default().with_responses(
        results
            .into_iter()
            .map(|(ty, name, fail)| {
                let (code, msg) = message(&fail);
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(ty)
                    .with_resource_name(sb(name))
                    .with_error_code(code)
                    .with_error_message(msg)
            })
            .collect(),
    )
}

/// v0 is Kafka 4.0's ListClientMetricsResources: client-metrics subscriptions, of which this
/// broker has none. v1 lists the resources of the types asked for (all when none are named):
/// the topics, this broker (as BROKER and BROKER_LOGGER); no client-metrics or group configs
/// exist here. Listing needs DESCRIBE_CONFIGS on the cluster, as in Kafka.
pub async fn list_config_resources(
    ctx: &Ctx,
    req: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    let st = &ctx.state;
    let resp = ListConfigResourcesResponse::default();
    if !ctx.allowed_cluster(Operation::DescribeConfigs) {
        return resp.with_error_code(Code::ClusterAuthorizationFailed.code());
    }
    if ctx.version == 0 {
        return resp;
    }
    let known = [TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP];
    let types: Vec<i8> = if req.resource_types.is_empty() {
        known.to_vec()
    } else {
        req.resource_types.clone()
    };
    if types.iter().any(|t| !known.contains(t)) {
        return resp.with_error_code(Code::UnsupportedVersion.code());
    }
    let mut out = Vec::new();
    for ty in types {
        match ty {
            TOPIC => {
                for t in st.store.topics() {
                    out.push(
                        ConfigResource::default()
                            .with_resource_type(TOPIC)
                            .with_resource_name(sb(t.name)),
                    );
                }
            }
            BROKER | BROKER_LOGGER => out.push(
                ConfigResource::default()
                    .with_resource_type(ty)
                    .with_resource_name(sb(st.node_id.to_string())),
            ),
            _ => {}
        }
    }
    resp.with_config_resources(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(ty: i8, name: &str, configs: &[(&str, i8, Option<&str>)]) -> RawResource {
        (
            ty,
            name.to_string(),
            configs
                .iter()
                .map(|(k, o, v)| (k.to_string(), *o, v.map(str::to_string)))
                .collect(),
        )
    }

    fn codes(out: &[(i8, String, Result<Change, Fail>)]) -> Vec<(i16, String)> {
        out.iter()
            .map(|(_, _, r)| match r {
                Ok(_) => (0, String::new()),
                Err(Fail(c, m)) => (*c, m.clone()),
            })
            .collect()
    }

    #[test]
    fn request_level_checks_follow_kafka() {
        let out = preprocess(
            vec![
                res(TOPIC, "a", &[("retention.ms", 0, Some("1"))]),
                res(TOPIC, "a", &[]),
                res(
                    TOPIC,
                    "b",
                    &[("retention.ms", 0, Some("1")), ("retention.ms", 1, None)],
                ),
                res(TOPIC, "c", &[("retention.ms", 0, None)]),
                res(TOPIC, "d", &[("retention.ms", 1, None)]),
                res(TOPIC, "e", &[("retention.ms", 9, Some("1"))]),
            ],
            true,
        );
        let c = codes(&out);
        let bad = Code::InvalidRequest.code();
        assert_eq!(
            c[0],
            (bad, "Each resource must appear at most once.".into())
        );
        assert_eq!(c[1].0, bad);
        assert_eq!(c[2], (bad, "Error due to duplicate config keys".into()));
        assert_eq!(
            c[3],
            (bad, "Null value not supported for : retention.ms".into())
        );
        assert_eq!(c[4].0, 0);
        assert_eq!(c[5], (bad, "Unknown operations type 9".into()));
        // The legacy API has no DELETE: a null is refused there.
        let out = preprocess(vec![res(TOPIC, "d", &[("retention.ms", 1, None)])], false);
        assert_eq!(codes(&out)[0].0, bad);
    }
}
