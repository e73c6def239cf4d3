//! DescribeConfigs for topics and the broker, and DescribeCluster.

use cairn_auth::{Operation, ResourceType};
use cairn_config::{is_sensitive, ConfigEntry};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse,
};

use super::{sb, Ctx};
use crate::errors::Code;
use crate::security::CLUSTER;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn render(
    ctx: &Ctx,
    entries: Vec<ConfigEntry>,
    keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>,
    synonyms: bool,
    docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    entries
        .into_iter()
        .filter(|e| {
            keys.as_ref()
                .is_none_or(|ks| ks.iter().any(|k| k.as_str() == e.name))
        })
        .map(|mut e| {
            // Keys and passwords are never shown, as Kafka hides its PASSWORD settings.
            let sensitive = is_sensitive(e.name);
            if sensitive {
                e.value = None;
            }
            let mut r = DescribeConfigsResourceResult::default()
                .with_name(sb(e.name))
                .with_value(e.value.clone().map(sb))
                .with_read_only(false)
                .with_config_source(e.source.kafka_code())
                .with_is_sensitive(sensitive);
            if ctx.version >= 1 && synonyms {
                r = r.with_synonyms(vec![DescribeConfigsSynonym::default()
                    .with_name(sb(e.name))
                    .with_value(e.value.map(sb))
                    .with_source(e.source.kafka_code())]);
            }
            if ctx.version >= 3 {
                r = r.with_config_type(e.def.ty.kafka_code());
                if docs {
                    r = r.with_documentation(Some(sb(e.def.doc)));
                }
            }
            r
        })
        .collect()
}

pub async fn describe_configs(ctx: &Ctx, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let st = &ctx.state;
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let out = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let fail = |code: i16, msg: String| {
                tracing::info!(peer = %ctx.peer, "DescribeConfigs refused: {msg}");
                DescribeConfigsResult::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone())
                    .with_error_code(code)
                    .with_error_message(Some(sb(msg)))
            };
            let entries = match res.resource_type {
                TOPIC
                    if !ctx.allowed(
                        Operation::DescribeConfigs,
                        ResourceType::Topic,
                        &res.resource_name,
                    ) =>
                {
                    return fail(
                        Code::TopicAuthorizationFailed.code(),
                        format!(
                            "not authorized to describe the configs of topic {}",
                            res.resource_name.as_str()
                        ),
                    );
                }
                BROKER if !ctx.allowed_cluster(Operation::DescribeConfigs) => {
                    return fail(
                        Code::ClusterAuthorizationFailed.code(),
                        "not authorized to describe the broker's configs".into(),
                    );
                }
                TOPIC => match st.store.topic(&res.resource_name) {
                    Some(t) => st.config.topic_entries(&t.configs),
                    None => {
                        return fail(
                            Code::UnknownTopicOrPartition.code(),
                            format!("topic {} does not exist", res.resource_name.as_str()),
                        )
                    }
                },
                BROKER => {
                    let name = res.resource_name.as_str();
                    if !name.is_empty() && name != st.node_id.to_string() {
                        return fail(
                            Code::InvalidRequest.code(),
                            format!("unexpected broker id {name}, this is broker {}", st.node_id),
                        );
                    }
                    st.config.entries()
                }
                other => {
                    return fail(
                        Code::InvalidRequest.code(),
                        format!("resource type {other} is not supported"),
                    )
                }
            };
            out.with_configs(render(
                ctx,
                entries,
                &res.configuration_keys,
                req.include_synonyms,
                req.include_documentation,
            ))
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

pub async fn describe_cluster(ctx: &Ctx, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let st = &ctx.state;
    let mut resp = DescribeClusterResponse::default();
    if !ctx.allowed_cluster(Operation::Describe) {
        return resp.with_error_code(Code::ClusterAuthorizationFailed.code());
    }
    if req.include_cluster_authorized_operations {
        resp = resp.with_cluster_authorized_operations(
            ctx.authorized_operations(ResourceType::Cluster, CLUSTER),
        );
    }
    if ctx.version >= 1 && req.endpoint_type != 1 {
        return resp
            .with_endpoint_type(req.endpoint_type)
            .with_error_code(Code::UnsupportedEndpointType.code())
            .with_error_message(Some(sb("only broker endpoints (type 1) are served")));
    }
    resp = resp
        .with_cluster_id(sb(st.store.cluster_id()))
        .with_controller_id(BrokerId(st.node_id))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(st.node_id))
            .with_host(sb(ctx.listener.advertised_host.clone()))
            .with_port(ctx.listener.advertised_port)]);
    if ctx.version >= 1 {
        resp = resp.with_endpoint_type(1);
    }
    resp
}
