//! ApiVersions: the version table, and the KIP-511 answer to versions we do not know.

use cairn_config::BrokerConfig;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::Ctx;
use crate::errors::Code;
use crate::versions::SUPPORTED;

/// The served table, less the consumer group protocol's APIs when it is switched off (as
/// Kafka leaves them out when `consumer` is not among its rebalance protocols).
fn table(config: &BrokerConfig) -> Vec<ApiVersion> {
    let consumer = config.consumer_protocol_enabled();
    SUPPORTED
        .iter()
        .filter(|(k, _, _)| {
            consumer
                || !matches!(
                    k,
                    ApiKey::ConsumerGroupHeartbeat | ApiKey::ConsumerGroupDescribe
                )
        })
        .map(|(k, lo, hi)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*lo)
                .with_max_version(*hi)
        })
        .collect()
}

pub fn unsupported(config: &BrokerConfig) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(Code::UnsupportedVersion.code())
        .with_api_keys(table(config))
}

/// Kafka's pattern for client software name and version (v3+).
fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
}

pub async fn handle(ctx: &Ctx, req: ApiVersionsRequest) -> ApiVersionsResponse {
    if ctx.version >= 3
        && !(valid_software_field(&req.client_software_name)
            && valid_software_field(&req.client_software_version))
    {
        tracing::warn!(peer = %ctx.peer, name = %req.client_software_name.as_str(),
            version = %req.client_software_version.as_str(), "ApiVersions with invalid client software fields");
        return ApiVersionsResponse::default()
            .with_error_code(Code::InvalidRequest.code())
            .with_api_keys(table(&ctx.state.config));
    }
    ApiVersionsResponse::default().with_api_keys(table(&ctx.state.config))
}
