//! Client quotas: DescribeClientQuotas and AlterClientQuotas (the quota jobs of
//! kafka-configs.sh `--entity-type users|clients|ips`). Any broker answers.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::error::{within, Error, Result};

/// An entity: (type, name) pairs, a `None` name being the type's default (`user`, `client-id`,
/// `ip`).
pub type QuotaEntity = Vec<(String, Option<String>)>;

/// How a filter component matches its entity type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuotaMatch {
    Exact(String),
    Default,
    /// Any entity that has this type, named or default.
    Any,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Client {
    /// The quotas of every entity the filter matches; with `strict`, entities with exactly the
    /// filtered types.
    pub async fn describe_client_quotas(
        &self,
        filter: &[(String, QuotaMatch)],
        strict: bool,
    ) -> Result<Vec<(QuotaEntity, Vec<(String, f64)>)>> {
        let conn = self.bootstrap_connection().await?;
        let components = filter
            .iter()
            .map(|(t, m)| {
                let c = ComponentData::default().with_entity_type(sb(t));
                match m {
                    QuotaMatch::Exact(n) => c.with_match_type(0).with_match(Some(sb(n))),
                    // The crate's default for the match string is "", not null.
                    QuotaMatch::Default => c.with_match_type(1).with_match(None),
                    QuotaMatch::Any => c.with_match_type(2).with_match(None),
                }
            })
            .collect();
        let req = DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(strict);
        let what = || "describe client quotas".to_string();
        let resp = within(self.wait_limit(), what, conn.send(req)).await?;
        Error::check_code(resp.error_code, resp.error_message.as_deref(), what)?;
        Ok(resp
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let entity = e
                    .entity
                    .into_iter()
                    .map(|p| {
                        (
                            p.entity_type.to_string(),
                            p.entity_name.map(|n| n.to_string()),
                        )
                    })
                    .collect();
                let values = e
                    .values
                    .into_iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect();
                (entity, values)
            })
            .collect())
    }

    /// Sets (`Some`) and removes (`None`) quota keys of one entity.
    pub async fn alter_client_quotas(
        &self,
        entity: &QuotaEntity,
        ops: &[(String, Option<f64>)],
        validate_only: bool,
    ) -> Result<()> {
        let conn = self.bootstrap_connection().await?;
        let entry = EntryData::default()
            .with_entity(
                entity
                    .iter()
                    .map(|(t, n)| {
                        EntityData::default()
                            .with_entity_type(sb(t))
                            .with_entity_name(n.as_deref().map(sb))
                    })
                    .collect(),
            )
            .with_ops(
                ops.iter()
                    .map(|(k, v)| {
                        OpData::default()
                            .with_key(sb(k))
                            .with_value(v.unwrap_or(0.0))
                            .with_remove(v.is_none())
                    })
                    .collect(),
            );
        let req = AlterClientQuotasRequest::default()
            .with_entries(vec![entry])
            .with_validate_only(validate_only);
        let what = || "alter client quotas".to_string();
        let resp = within(self.wait_limit(), what, conn.send(req)).await?;
        let r = resp
            .entries
            .first()
            .ok_or_else(|| Error::Protocol("alter client quotas: entry missing".into()))?;
        Error::check_code(r.error_code, r.error_message.as_deref(), what)
    }
}
