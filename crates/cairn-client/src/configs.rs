//! Topic and broker configs: DescribeConfigs with synonyms, IncrementalAlterConfigs (the jobs of
//! kafka-configs.sh). A broker resource with an id goes to that broker, as Kafka's admin client
//! sends it; topics and the cluster-wide default go to any broker.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::connection::Connection;
use crate::error::{within, Error, Result};
use std::sync::Arc;

/// DescribeConfigs / AlterConfigs resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// One change of IncrementalAlterConfigs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
    /// Adds items to a list-typed key.
    Append(String, String),
    /// Removes items from a list-typed key.
    Subtract(String, String),
}

impl ConfigOp {
    fn wire(&self) -> AlterableConfig {
        let (name, op, value) = match self {
            ConfigOp::Set(k, v) => (k, 0, Some(v)),
            ConfigOp::Delete(k) => (k, 1, None),
            ConfigOp::Append(k, v) => (k, 2, Some(v)),
            ConfigOp::Subtract(k, v) => (k, 3, Some(v)),
        };
        AlterableConfig::default()
            .with_name(sb(name))
            .with_config_operation(op)
            .with_value(value.map(|v| sb(v)))
    }
}

/// A config as DescribeConfigs reports it, with the levels it is set at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub sensitive: bool,
    /// Kafka's ConfigSource: 1 topic, 2 dynamic broker, 3 dynamic default, 4 static, 5 default.
    pub source: i8,
    /// (name, value, source), highest precedence first.
    pub synonyms: Vec<(String, Option<String>, i8)>,
    pub documentation: Option<String>,
}

/// Kafka's name of a ConfigSource code, as kafka-configs.sh prints it.
pub fn source_name(code: i8) -> &'static str {
    match code {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Client {
    async fn config_connection(&self, resource_type: i8, name: &str) -> Result<Arc<Connection>> {
        match name.parse::<i32>() {
            Ok(id) if resource_type == RESOURCE_BROKER => self.broker_connection(id).await,
            _ => self.bootstrap_connection().await,
        }
    }

    /// Every config of one resource (a topic, a broker id, or "" for the cluster-wide default
    /// broker configs), with synonyms and documentation.
    pub async fn describe_configs(
        &self,
        resource_type: i8,
        name: &str,
    ) -> Result<Vec<DescribedConfig>> {
        let conn = self.config_connection(resource_type, name).await?;
        let req = DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(sb(name))
                .with_configuration_keys(None)])
            .with_include_synonyms(true)
            .with_include_documentation(true);
        let what = || format!("describe configs of {}", describe_name(resource_type, name));
        let resp = within(self.wait_limit(), what, conn.send(req)).await?;
        let r = resp
            .results
            .first()
            .ok_or_else(|| Error::Protocol(format!("{}: resource missing", what())))?;
        Error::check_code(r.error_code, r.error_message.as_deref(), what)?;
        Ok(r.configs
            .iter()
            .map(|c| DescribedConfig {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
                source: c.config_source,
                synonyms: c
                    .synonyms
                    .iter()
                    .map(|s| {
                        (
                            s.name.to_string(),
                            s.value.as_ref().map(|v| v.to_string()),
                            s.source,
                        )
                    })
                    .collect(),
                documentation: c.documentation.as_ref().map(|d| d.to_string()),
            })
            .collect())
    }

    /// IncrementalAlterConfigs on one resource; `validate_only` asks the broker to check the
    /// change without making it.
    pub async fn incremental_alter_configs(
        &self,
        resource_type: i8,
        name: &str,
        ops: &[ConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        let conn = self.config_connection(resource_type, name).await?;
        let req = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(sb(name))
                .with_configs(ops.iter().map(ConfigOp::wire).collect())])
            .with_validate_only(validate_only);
        let what = || format!("alter configs of {}", describe_name(resource_type, name));
        let resp = within(self.wait_limit(), what, conn.send(req)).await?;
        let r = resp
            .responses
            .first()
            .ok_or_else(|| Error::Protocol(format!("{}: resource missing", what())))?;
        Error::check_code(r.error_code, r.error_message.as_deref(), what)
    }
}

fn describe_name(resource_type: i8, name: &str) -> String {
    match (resource_type, name) {
        (RESOURCE_BROKER, "") => "the default broker".to_string(),
        (RESOURCE_BROKER, id) => format!("broker {id}"),
        (_, t) => format!("topic {t}"),
    }
}
