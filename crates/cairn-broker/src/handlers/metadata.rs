//! Metadata: brokers, topics with stable ids, auto-creation when allowed.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use cairn_auth::{Operation, ResourceType};

use super::{admin, sb, Ctx};
use crate::errors::Code;
use crate::internal_topics::is_internal;
use crate::security::CLUSTER;
use cairn_log::TopicMeta;

pub fn topic_entry(ctx: &Ctx, t: &TopicMeta) -> MetadataResponseTopic {
    let node = BrokerId(ctx.state.node_id);
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(is_internal(&t.name))
        .with_partitions(
            (0..t.partitions as i32)
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(node)
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}

fn error_entry(name: Option<StrBytes>, code: i16) -> MetadataResponseTopic {
    // Kafka flags an internal name as internal even while it does not exist.
    let internal = name.as_deref().is_some_and(is_internal);
    MetadataResponseTopic::default()
        .with_name(name.map(TopicName))
        .with_is_internal(internal)
        .with_error_code(code)
}

pub async fn handle(ctx: &Ctx, req: MetadataRequest) -> MetadataResponse {
    let st = &ctx.state;
    // v0 has no null: an empty list means "all topics" there; from v1 null means all.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && ctx.version == 0 => None,
        Some(t) => Some(t),
    };
    let allow_create = ctx.version < 4 || req.allow_auto_topic_creation;
    // The offsets topic is created by the group coordinator (on a blocking thread), before the
    // answer is built.
    let wants_internal = requested.as_ref().is_some_and(|l| {
        l.iter()
            .any(|rt| rt.name.as_ref().is_some_and(|n| is_internal(n)))
    });
    if wants_internal && allow_create && st.config.auto_create_topics() {
        if let Err(e) = st.groups.ensure_topic().await {
            tracing::error!("cannot create the offsets topic: {e}");
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut created: u64 = 0;
    let topics = match requested {
        // All topics: only those the principal may describe, without a word on the others.
        None => st
            .store
            .topics()
            .iter()
            .filter(|t| ctx.may(Operation::Describe, ResourceType::Topic, &t.name))
            .map(|t| topic_entry(ctx, t))
            .collect(),
        // Kafka answers each topic once however often it is asked for, so repeating one name
        // cannot multiply an answer listing all its partitions.
        Some(list) => list
            .into_iter()
            .filter(|rt| seen.insert((rt.name.clone(), rt.topic_id)))
            .map(|rt| {
                let name = match rt.name {
                    Some(n) => n.0,
                    None => match st.store.topic_by_id(rt.topic_id) {
                        Some(t) if !ctx.allowed(Operation::Describe, ResourceType::Topic, &t.name) => {
                            return MetadataResponseTopic::default()
                                .with_topic_id(rt.topic_id)
                                .with_error_code(Code::TopicAuthorizationFailed.code())
                        }
                        Some(t) => return topic_entry(ctx, &t),
                        None => {
                            return MetadataResponseTopic::default()
                                .with_topic_id(rt.topic_id)
                                .with_error_code(Code::UnknownTopicId.code())
                        }
                    },
                };
                if !ctx.allowed(Operation::Describe, ResourceType::Topic, &name) {
                    return error_entry(Some(name), Code::TopicAuthorizationFailed.code());
                }
                if let Some(t) = st.store.topic(&name) {
                    return topic_entry(ctx, &t);
                }
                if !(allow_create && st.config.auto_create_topics()) {
                    return error_entry(Some(name), Code::UnknownTopicOrPartition.code());
                }
                // Auto-creation needs CREATE on the cluster or on the topic, as in Kafka.
                if !ctx.may(Operation::Create, ResourceType::Cluster, CLUSTER)
                    && !ctx.allowed(Operation::Create, ResourceType::Topic, &name)
                {
                    return error_entry(Some(name), Code::TopicAuthorizationFailed.code());
                }
                // Auto-creation follows CreateTopics' limit on partitions per request.
                let parts = st.config.num_partitions().max(1) as u64;
                if created + parts > admin::MAX_PARTITIONS_PER_REQUEST {
                    tracing::info!(peer = %ctx.peer, topic = %name, "not auto-creating: too many partitions in one request");
                    return error_entry(Some(name), Code::UnknownTopicOrPartition.code());
                }
                created += parts;
                match admin::auto_create(ctx, &name) {
                    Ok(t) => topic_entry(ctx, &t),
                    Err(code) => error_entry(Some(name), code),
                }
            })
            .collect(),
    };
    let mut topics: Vec<MetadataResponseTopic> = topics;
    if ctx.version >= 8 && req.include_topic_authorized_operations {
        // Kafka fills it for every topic of the answer, errors included (clients decode it).
        for t in topics.iter_mut() {
            if let Some(n) = &t.name {
                t.topic_authorized_operations =
                    ctx.authorized_operations(ResourceType::Topic, &n.0);
            }
        }
    }
    let cluster_ops =
        if (8..=10).contains(&ctx.version) && req.include_cluster_authorized_operations {
            ctx.authorized_operations(ResourceType::Cluster, CLUSTER)
        } else {
            i32::MIN
        };
    MetadataResponse::default()
        .with_cluster_authorized_operations(cluster_ops)
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(st.node_id))
            .with_host(sb(ctx.listener.advertised_host.clone()))
            .with_port(ctx.listener.advertised_port)])
        .with_cluster_id(Some(sb(st.store.cluster_id())))
        .with_controller_id(BrokerId(st.node_id))
        .with_topics(topics)
}
