//! DescribeConfigs for topics and the broker, and DescribeCluster.

use cairn_auth::{Operation, ResourceType};
use cairn_config::{broker_def, is_dynamic, is_sensitive, ConfigEntry, ConfigSource, Synonym};
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

/// What DescribeConfigs shows of one entry beyond its value: Kafka 4 marks every broker key it
/// cannot change at run time read-only (topic keys never are), and lists the levels it is set at.
struct Extra {
    read_only: bool,
    synonyms: Vec<Synonym>,
}

fn render(
    ctx: &Ctx,
    entries: Vec<(ConfigEntry, Extra)>,
    keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>,
    synonyms: bool,
    docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    entries
        .into_iter()
        .filter(|(e, _)| {
            keys.as_ref()
                .is_none_or(|ks| ks.iter().any(|k| k.as_str() == e.name))
        })
        .map(|(mut e, extra)| {
            // Keys and passwords are never shown, as Kafka hides its PASSWORD settings.
            let sensitive = is_sensitive(e.name);
            if sensitive {
                e.value = None;
            }
            let mut r = DescribeConfigsResourceResult::default()
                .with_name(sb(e.name))
                .with_value(e.value.clone().map(sb))
                .with_read_only(extra.read_only)
                .with_config_source(e.source.kafka_code())
                .with_is_sensitive(sensitive);
            if synonyms {
                r = r.with_synonyms(
                    extra
                        .synonyms
                        .into_iter()
                        .map(|s| {
                            let hide = is_sensitive(&s.name);
                            DescribeConfigsSynonym::default()
                                .with_name(sb(s.name))
                                .with_value(if hide { None } else { s.value.map(sb) })
                                .with_source(s.source.kafka_code())
                        })
                        .collect(),
                );
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
    let cfg = st.dynamic.current();
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
                    Some(t) => cfg
                        .topic_entries(&t.configs)
                        .into_iter()
                        .map(|e| {
                            let synonyms = cfg.topic_synonyms(&t.configs, e.name);
                            (
                                e,
                                Extra {
                                    read_only: false,
                                    synonyms,
                                },
                            )
                        })
                        .collect(),
                    None => {
                        return fail(
                            Code::UnknownTopicOrPartition.code(),
                            format!("topic {} does not exist", res.resource_name.as_str()),
                        )
                    }
                },
                BROKER => {
                    let name = res.resource_name.as_str();
                    if name.is_empty() {
                        // The cluster-wide default resource holds only what was set on it.
                        cfg.dynamic(true)
                            .iter()
                            .filter_map(|(k, v)| {
                                let def = broker_def(k)?;
                                let entry = ConfigEntry {
                                    name: def.name,
                                    value: Some(v.clone()),
                                    source: ConfigSource::DynamicDefault,
                                    def,
                                };
                                let synonyms = vec![Synonym {
                                    name: k.clone(),
                                    value: Some(v.clone()),
                                    source: ConfigSource::DynamicDefault,
                                }];
                                let read_only = !is_dynamic(k);
                                Some((
                                    entry,
                                    Extra {
                                        read_only,
                                        synonyms,
                                    },
                                ))
                            })
                            .collect()
                    } else {
                        if name != st.node_id.to_string() {
                            return fail(
                                Code::InvalidRequest.code(),
                                format!(
                                    "unexpected broker id {name}, this is broker {}",
                                    st.node_id
                                ),
                            );
                        }
                        cfg.entries()
                            .into_iter()
                            .map(|e| {
                                let extra = Extra {
                                    read_only: !is_dynamic(e.name),
                                    synonyms: cfg.synonyms(e.name),
                                };
                                (e, extra)
                            })
                            .collect()
                    }
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
