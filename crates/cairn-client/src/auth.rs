//! The SASL exchange on a fresh connection: SaslHandshake v1 names the
//! mechanism, then SaslAuthenticate carries the tokens (one round for PLAIN,
//! two for SCRAM).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::sasl::{plain_token, ScramClient, ScramHash};
use crate::security::{SaslCredentials, SaslMechanism};

/// Authenticates `conn`; returns the session lifetime the broker set, if any.
pub(crate) async fn authenticate(
    conn: &Connection,
    credentials: &SaslCredentials,
) -> Result<Option<Duration>> {
    let mechanism = credentials.mechanism;
    let who = || {
        format!(
            "SASL authentication as '{}' ({})",
            credentials.username,
            mechanism.name()
        )
    };
    // v0 would switch to unframed tokens; only v1 keeps Kafka framing.
    let handshake_version = match conn.version_at_most::<SaslHandshakeRequest>(1) {
        Ok(1) => 1,
        Ok(_) | Err(Error::NoCommonVersion { .. }) => {
            return Err(Error::Sasl(format!(
                "{} offers only SaslHandshake v0, which this client does not speak",
                conn.addr()
            )))
        }
        Err(Error::UnsupportedApi(_)) => {
            return Err(Error::Sasl(format!(
                "{} does not offer SASL (is this a PLAINTEXT or SSL listener?)",
                conn.addr()
            )))
        }
        Err(e) => return Err(e),
    };
    let resp = conn
        .send_versioned(
            SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(mechanism.name())),
            handshake_version,
        )
        .await?;
    if resp.error_code == ResponseError::UnsupportedSaslMechanism.code() {
        let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(Error::Kafka {
            context: who(),
            error: ResponseError::UnsupportedSaslMechanism,
            message: Some(format!(
                "the broker offers {} on this listener",
                if offered.is_empty() {
                    "no mechanism".to_string()
                } else {
                    offered.join(", ")
                }
            )),
        });
    }
    Error::check_code(resp.error_code, None, who)?;

    let version = conn.version_for::<SaslAuthenticateRequest>()?;
    let round = |token: Vec<u8>| async move {
        let resp: SaslAuthenticateResponse = conn
            .send_versioned(
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
                version,
            )
            .await?;
        Error::check_code(resp.error_code, resp.error_message.as_deref(), who)?;
        Ok::<_, Error>(resp)
    };
    let last = match ScramHash::of(mechanism) {
        None => {
            debug_assert_eq!(mechanism, SaslMechanism::Plain);
            round(plain_token(&credentials.username, &credentials.password)).await?
        }
        Some(hash) => {
            let mut scram = ScramClient::new(hash, &credentials.username, &credentials.password);
            let first = round(scram.client_first().into_bytes()).await?;
            let server_first = std::str::from_utf8(&first.auth_bytes)
                .map_err(|_| Error::Sasl("the broker's SCRAM message is not UTF-8".into()))?;
            let client_final = scram
                .client_final(server_first)
                .map_err(|e| Error::Sasl(format!("{}: {e}", who())))?;
            let last = round(client_final.into_bytes()).await?;
            let server_final = std::str::from_utf8(&last.auth_bytes)
                .map_err(|_| Error::Sasl("the broker's SCRAM message is not UTF-8".into()))?;
            scram
                .verify_server_final(server_final)
                .map_err(|e| Error::Sasl(format!("{}: {e}", who())))?;
            last
        }
    };
    let lifetime = u64::try_from(last.session_lifetime_ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis);
    tracing::debug!(
        addr = conn.addr(),
        mechanism = mechanism.name(),
        ?lifetime,
        api = ?ApiKey::SaslAuthenticate,
        "authenticated"
    );
    Ok(lifetime)
}
