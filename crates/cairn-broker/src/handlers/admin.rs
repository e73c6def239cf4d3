//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, and auto-creation.

use std::collections::BTreeMap;

use cairn_config::{validate_topic_configs, ConfigError};
use cairn_log::{StoreError, TopicMeta};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};

use cairn_auth::{Operation, ResourceType};

use super::{sb, Ctx};
use crate::errors::{internal_topic_code, store_error_code, validate_topic_name, Code};
use crate::internal_topics;
use crate::security::CLUSTER;

/// The most partitions one request may create, as Kafka's controller allows: every partition is a
/// directory and open files, so a 40-byte request must not ask for two billion of them.
pub const MAX_PARTITIONS_PER_REQUEST: u64 = 10_000;
const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";

/// Creates `name` with the broker's defaults, as Metadata does for unknown topics. An internal
/// topic is created by its owner with its own settings (as Kafka's auto-creation does), never
/// with `num.partitions`: its partition count decides where groups live.
pub fn auto_create(ctx: &Ctx, name: &str) -> Result<TopicMeta, i16> {
    if let Err(why) = validate_topic_name(name) {
        tracing::info!(peer = %ctx.peer, "refusing to auto-create topic: {why}");
        return Err(Code::InvalidTopicException.code());
    }
    if internal_topics::is_internal(name) {
        // Created by the group coordinator before the answer is built (see metadata.rs); if
        // that failed, the topic is not there yet.
        return ctx
            .state
            .store
            .topic(name)
            .ok_or(Code::LeaderNotAvailable.code());
    }
    let parts = ctx.state.config.num_partitions().max(1) as u32;
    match ctx
        .state
        .store
        .create_topic(name, parts, BTreeMap::new(), false)
    {
        Ok(t) => {
            ctx.state.topics.changed();
            tracing::info!(topic = name, partitions = parts, client = %ctx.client_id, "auto-created topic");
            Ok(t)
        }
        // Another connection created it at the same moment: that is fine.
        Err(StoreError::TopicExists(_)) => ctx
            .state
            .store
            .topic(name)
            .ok_or(Code::UnknownTopicOrPartition.code()),
        Err(e) => {
            tracing::error!(topic = name, "auto-create failed: {e}");
            Err(store_error_code(&e))
        }
    }
}

struct Refused(i16, String);

pub async fn create_topics(ctx: &Ctx, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let st = &ctx.state;
    // Kafka's rule: the whole request is refused when its topics add up to too many partitions.
    let asked: u64 = req
        .topics
        .iter()
        .map(|t| match (t.assignments.len(), t.num_partitions) {
            (0, -1) => st.config.num_partitions().max(0) as u64,
            (0, n) => n.max(0) as u64,
            (a, _) => a as u64,
        })
        .fold(0u64, u64::saturating_add);
    if asked > MAX_PARTITIONS_PER_REQUEST {
        tracing::info!(peer = %ctx.peer, partitions = asked, "CreateTopics refused: {TOO_MANY_PARTITIONS}");
        let results = req
            .topics
            .into_iter()
            .map(|t| {
                CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(Code::PolicyViolation.code())
                    .with_error_message(Some(sb(TOO_MANY_PARTITIONS)))
            })
            .collect();
        return CreateTopicsResponse::default().with_topics(results);
    }
    let mut seen = std::collections::HashSet::new();
    // CREATE on the cluster allows every topic; otherwise each topic needs its own.
    let cluster_create = ctx.may(Operation::Create, ResourceType::Cluster, CLUSTER);
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            // The protocol crate's default message is "", where Kafka answers null on success.
            let mut res = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_message(None);
            if !seen.insert(name.clone()) {
                return res
                    .with_error_code(Code::InvalidRequest.code())
                    .with_error_message(Some(sb(format!("topic {name} appears twice in the request"))));
            }
            if !cluster_create && !ctx.allowed(Operation::Create, ResourceType::Topic, &name) {
                return res
                    .with_error_code(Code::TopicAuthorizationFailed.code())
                    .with_error_message(Some(sb("Authorization failed.")));
            }
            let outcome = (|| -> Result<(u32, BTreeMap<String, String>), Refused> {
                validate_topic_name(&name).map_err(|m| Refused(Code::InvalidTopicException.code(), m))?;
                if st.store.topic(&name).is_some() {
                    return Err(Refused(Code::TopicAlreadyExists.code(), format!("topic '{name}' already exists")));
                }
                internal_topics::check_create(&name).map_err(|e| Refused(internal_topic_code(&e), e.to_string()))?;
                let rf = if t.replication_factor == -1 { st.config.default_replication_factor() } else { t.replication_factor };
                if rf != 1 {
                    return Err(Refused(Code::InvalidReplicationFactor.code(),
                        format!("replication factor {rf} is not possible on a single broker; use 1")));
                }
                let parts = if !t.assignments.is_empty() {
                    if t.num_partitions != -1 || t.replication_factor != -1 {
                        return Err(Refused(Code::InvalidRequest.code(),
                            "both num_partitions/replication_factor and replica assignments were given".into()));
                    }
                    for a in &t.assignments {
                        if a.broker_ids.len() != 1 || a.broker_ids[0].0 != st.node_id {
                            return Err(Refused(Code::InvalidReplicaAssignment.code(),
                                format!("partition {} must be assigned to broker {} alone", a.partition_index, st.node_id)));
                        }
                    }
                    t.assignments.len() as i32
                } else if t.num_partitions == -1 {
                    st.config.num_partitions()
                } else {
                    t.num_partitions
                };
                if parts <= 0 {
                    return Err(Refused(Code::InvalidPartitions.code(), format!("number of partitions must be larger than 0, got {parts}")));
                }
                let mut configs = BTreeMap::new();
                for c in &t.configs {
                    match &c.value {
                        Some(v) => { configs.insert(c.name.to_string(), v.to_string()); }
                        None => return Err(Refused(Code::InvalidConfig.code(), format!("config {} has a null value", c.name.as_str()))),
                    }
                }
                validate_topic_configs(&configs).map_err(|e| match e {
                    ConfigError::Unknown(k) => Refused(Code::InvalidConfig.code(), format!("unknown topic config {k}")),
                    other => Refused(Code::InvalidConfig.code(), other.to_string()),
                })?;
                Ok((parts as u32, configs))
            })();
            let (parts, configs) = match outcome {
                Ok(x) => x,
                Err(Refused(code, msg)) => {
                    tracing::info!(topic = %name, client = %ctx.client_id, "CreateTopics refused: {msg}");
                    return res.with_error_code(code).with_error_message(Some(sb(msg)));
                }
            };
            let meta = if req.validate_only {
                None
            } else {
                match st.store.create_topic(&name, parts, configs.clone(), false) {
                    Ok(m) => {
                        st.topics.changed();
                        tracing::info!(topic = %name, partitions = parts, "created topic");
                        Some(m)
                    }
                    Err(e) => {
                        tracing::warn!(topic = %name, "CreateTopics failed: {e}");
                        return res.with_error_code(store_error_code(&e)).with_error_message(Some(sb(e.to_string())));
                    }
                }
            };
            if let Some(m) = &meta {
                res = res.with_topic_id(m.id);
            }
            if ctx.version >= 5 && !ctx.may(Operation::DescribeConfigs, ResourceType::Topic, &name) {
                // Created, but its configs are not the principal's to see (as Kafka answers).
                res = res
                    .with_num_partitions(parts as i32)
                    .with_replication_factor(1)
                    .with_topic_config_error_code(Code::TopicAuthorizationFailed.code());
            } else if ctx.version >= 5 {
                let entries = st.dynamic.current().topic_entries(&configs);
                res = res
                    .with_num_partitions(parts as i32)
                    .with_replication_factor(1)
                    .with_configs(Some(
                        entries
                            .into_iter()
                            .map(|e| {
                                CreatableTopicConfigs::default()
                                    .with_name(sb(e.name))
                                    .with_value(e.value.map(sb))
                                    .with_config_source(e.source.kafka_code())
                            })
                            .collect(),
                    ));
            }
            res
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete_topics(ctx: &Ctx, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let st = &ctx.state;
    // v0-5 name topics in `topic_names`; v6 uses `topics` with a name or an id each.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut deleted = Vec::new();
    let responses: Vec<DeletableTopicResult> = targets
        .into_iter()
        .map(|(name, id)| {
            let meta = match &name {
                Some(n) => st.store.topic(n),
                None => st.store.topic_by_id(id),
            };
            let mut res = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(sb(n))))
                .with_topic_id(id);
            // A name is checked before it is looked up, so names cannot be probed; an id must
            // resolve first, and then its topic is checked.
            if let Some(n) = &name {
                if !ctx.allowed(Operation::Delete, ResourceType::Topic, n) {
                    return res.with_error_code(Code::TopicAuthorizationFailed.code());
                }
            } else if let Some(m) = &meta {
                if !ctx.allowed(Operation::Delete, ResourceType::Topic, &m.name) {
                    return res.with_error_code(Code::TopicAuthorizationFailed.code());
                }
            }
            let Some(meta) = meta else {
                let code = if name.is_some() {
                    Code::UnknownTopicOrPartition.code()
                } else {
                    Code::UnknownTopicId.code()
                };
                return res.with_error_code(code);
            };
            res = res
                .with_name(Some(TopicName(sb(meta.name.clone()))))
                .with_topic_id(meta.id);
            if let Err(e) = internal_topics::check_delete(&meta.name) {
                tracing::info!(topic = %meta.name, client = %ctx.client_id, "DeleteTopics refused: {e}");
                return res
                    .with_error_code(internal_topic_code(&e))
                    .with_error_message(Some(sb(e.to_string())));
            }
            match st.store.delete_topic(&meta.name) {
                Ok(_) => {
                    st.topics.changed();
                    tracing::info!(topic = %meta.name, client = %ctx.client_id, "deleted topic");
                    deleted.push(meta.name.clone());
                    res
                }
                Err(e) => {
                    tracing::warn!(topic = %meta.name, "DeleteTopics failed: {e}");
                    res.with_error_code(store_error_code(&e))
                        .with_error_message(Some(sb(e.to_string())))
                }
            }
        })
        .collect();
    // Every group's committed offsets for a deleted topic go with it.
    for t in deleted {
        st.groups.topic_deleted(&t).await;
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    ctx: &Ctx,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let st = &ctx.state;
    let added: u64 = req
        .topics
        .iter()
        .filter_map(|t| {
            let have = st.store.topic(&t.name.0)?.partitions as i64;
            Some((t.count as i64 - have).max(0) as u64)
        })
        .fold(0u64, u64::saturating_add);
    if added > MAX_PARTITIONS_PER_REQUEST {
        tracing::info!(peer = %ctx.peer, partitions = added, "CreatePartitions refused: {TOO_MANY_PARTITIONS}");
        let results = req
            .topics
            .into_iter()
            .map(|t| {
                CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(Code::PolicyViolation.code())
                    .with_error_message(Some(sb(TOO_MANY_PARTITIONS)))
            })
            .collect();
        return CreatePartitionsResponse::default().with_results(results);
    }
    let mut grown = Vec::new();
    let results: Vec<CreatePartitionsTopicResult> = req
        .topics
        .into_iter()
        .map(|t| {
            let res = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let refuse = |code: i16, msg: String| {
                tracing::info!(topic = %t.name.0.as_str(), "CreatePartitions refused: {msg}");
                CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(code)
                    .with_error_message(Some(sb(msg)))
            };
            if !ctx.allowed(Operation::Alter, ResourceType::Topic, &t.name.0) {
                return refuse(
                    Code::TopicAuthorizationFailed.code(),
                    "Authorization failed.".into(),
                );
            }
            let Some(meta) = st.store.topic(&t.name.0) else {
                return refuse(
                    Code::UnknownTopicOrPartition.code(),
                    format!("topic {} does not exist", t.name.0.as_str()),
                );
            };
            if let Err(e) = internal_topics::check_add_partitions(&meta.name) {
                return refuse(internal_topic_code(&e), e.to_string());
            }
            if t.count <= meta.partitions as i32 {
                return refuse(
                    Code::InvalidPartitions.code(),
                    format!(
                        "topic currently has {} partitions, {} would not be an increase",
                        meta.partitions, t.count
                    ),
                );
            }
            if let Some(assign) = &t.assignments {
                let bad = assign
                    .iter()
                    .any(|a| a.broker_ids.len() != 1 || a.broker_ids[0].0 != st.node_id)
                    || assign.len() as i32 != t.count - meta.partitions as i32;
                if bad {
                    return refuse(
                        Code::InvalidReplicaAssignment.code(),
                        format!(
                            "new partitions must be assigned to broker {} alone",
                            st.node_id
                        ),
                    );
                }
            }
            if req.validate_only {
                return res;
            }
            match st.store.add_partitions(&meta.name, t.count as u32) {
                Ok(_) => {
                    st.topics.changed();
                    tracing::info!(topic = %meta.name, partitions = t.count, "added partitions");
                    grown.push(meta.name.clone());
                    res
                }
                Err(e) => refuse(store_error_code(&e), e.to_string()),
            }
        })
        .collect();
    // Groups subscribed to a grown topic rebalance so the new partitions get owners.
    for t in grown {
        st.groups.topic_changed(&t).await;
    }
    CreatePartitionsResponse::default().with_results(results)
}
