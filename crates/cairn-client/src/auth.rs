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

use crate::connection::{Connection, Writer};
use crate::error::{Error, Result};
use crate::sasl::{plain_token, ScramClient, ScramHash};
use crate::security::{SaslCredentials, SaslMechanism};

/// Authenticates `conn` (first or again) with its writer held; returns the
/// session lifetime the broker set, if any.
pub(crate) async fn authenticate(
    conn: &Connection,
    writer: &mut Writer,
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
        .call_locked(
            writer,
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
    let mut round = async |token: Vec<u8>| {
        let resp: SaslAuthenticateResponse = conn
            .call_locked(
                writer,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kafka_protocol::messages::MetadataRequest;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;
    use crate::client::Client;
    use crate::security::{SaslCredentials, Security, SecurityProtocol, TlsSettings};
    use crate::testing::{FakeBroker, FakeConfig, FakeSasl};

    const LIMIT: Duration = Duration::from_secs(10);

    fn sasl_config(mechanism: &'static str, lifetime_ms: i64) -> FakeConfig {
        FakeConfig {
            sasl: Some(FakeSasl {
                mechanism,
                user: "alice",
                password: "pencil",
                session_lifetime_ms: lifetime_ms,
            }),
            ..FakeConfig::default()
        }
    }

    fn sasl(mechanism: SaslMechanism, password: &str) -> Security {
        Security::new(
            SecurityProtocol::SaslPlaintext,
            TlsSettings::default(),
            Some(SaslCredentials {
                mechanism,
                username: "alice".into(),
                password: password.into(),
            }),
        )
        .unwrap()
    }

    fn apis(broker: &FakeBroker) -> Vec<(i16, i16)> {
        broker
            .seen()
            .iter()
            .map(|s| (s.api_key, s.version))
            .collect()
    }

    #[tokio::test]
    async fn plain_and_scram_authenticate_then_serve() {
        for (name, mechanism) in [
            ("PLAIN", SaslMechanism::Plain),
            ("SCRAM-SHA-256", SaslMechanism::ScramSha256),
            ("SCRAM-SHA-512", SaslMechanism::ScramSha512),
        ] {
            let broker = FakeBroker::start(sasl_config(name, 0)).await;
            let conn =
                Connection::connect_with(&broker.addr, "t", LIMIT, &sasl(mechanism, "pencil"))
                    .await
                    .unwrap();
            assert_eq!(conn.reauthenticate_at(), None);
            conn.send(MetadataRequest::default()).await.unwrap();
            let rounds = if mechanism == SaslMechanism::Plain {
                1
            } else {
                2
            };
            let mut expected = vec![
                (ApiKey::ApiVersions as i16, 3),
                (ApiKey::SaslHandshake as i16, 1),
            ];
            expected.extend(std::iter::repeat_n(
                (ApiKey::SaslAuthenticate as i16, 2),
                rounds,
            ));
            assert_eq!(apis(&broker)[..expected.len()], expected[..], "{name}");
            assert!(broker.errors().is_empty(), "{:?}", broker.errors());
        }
    }

    #[tokio::test]
    async fn wrong_password_is_the_brokers_error() {
        for (name, mechanism) in [
            ("PLAIN", SaslMechanism::Plain),
            ("SCRAM-SHA-256", SaslMechanism::ScramSha256),
        ] {
            let broker = FakeBroker::start(sasl_config(name, 0)).await;
            let err = Connection::connect_with(&broker.addr, "t", LIMIT, &sasl(mechanism, "wrong"))
                .await
                .unwrap_err();
            assert_eq!(
                err.kafka_error(),
                Some(ResponseError::SaslAuthenticationFailed),
                "{err}"
            );
            let text = err.to_string();
            assert!(text.contains("'alice'") && text.contains(name), "{text}");
            assert!(
                text.contains("nvalid"),
                "the broker's message is shown: {text}"
            );
        }
    }

    #[tokio::test]
    async fn unoffered_mechanism_lists_what_is_offered() {
        let broker = FakeBroker::start(sasl_config("PLAIN", 0)).await;
        let err = Connection::connect_with(
            &broker.addr,
            "t",
            LIMIT,
            &sasl(SaslMechanism::ScramSha512, "pencil"),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.kafka_error(),
            Some(ResponseError::UnsupportedSaslMechanism)
        );
        assert!(err.to_string().contains("offers PLAIN"), "{err}");
    }

    fn handshakes(broker: &FakeBroker) -> usize {
        apis(broker)
            .iter()
            .filter(|(k, _)| *k == ApiKey::SaslHandshake as i16)
            .count()
    }

    #[tokio::test]
    async fn a_used_connection_reauthenticates_in_band_before_its_session_ends() {
        let broker = FakeBroker::start(sasl_config("SCRAM-SHA-256", 2000)).await;
        let conn = Connection::connect_with(
            &broker.addr,
            "t",
            LIMIT,
            &sasl(SaslMechanism::ScramSha256, "pencil"),
        )
        .await
        .unwrap();
        let first = conn.reauthenticate_at().unwrap();
        conn.send(MetadataRequest::default()).await.unwrap();
        assert_eq!(handshakes(&broker), 1, "not yet due");
        // Past 85% of the session, before 95%.
        tokio::time::sleep_until((first + Duration::from_millis(20)).into()).await;
        assert!(!conn.is_closed());
        conn.send(MetadataRequest::default()).await.unwrap();
        assert_eq!(handshakes(&broker), 2);
        // The exchange came before the request, none of it interleaved.
        let seen = apis(&broker);
        let tail: Vec<i16> = seen[seen.len() - 4..].iter().map(|a| a.0).collect();
        assert_eq!(
            tail,
            [
                ApiKey::SaslHandshake as i16,
                ApiKey::SaslAuthenticate as i16,
                ApiKey::SaslAuthenticate as i16,
                ApiKey::Metadata as i16
            ]
        );
        assert!(conn.reauthenticate_at().unwrap() > first);
        assert!(broker.errors().is_empty(), "{:?}", broker.errors());
    }

    #[tokio::test]
    async fn an_idle_connection_past_its_session_is_replaced() {
        let broker = FakeBroker::start(sasl_config("SCRAM-SHA-256", 300)).await;
        let client = Client::connect_with(
            &broker.addr,
            "t",
            LIMIT,
            sasl(SaslMechanism::ScramSha256, "pencil"),
        )
        .await
        .unwrap();
        let first = client.bootstrap_connection().await.unwrap();
        assert!(!first.is_closed());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(first.is_closed(), "past 95% of the session");
        let second = client.bootstrap_connection().await.unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        client.fetch_metadata(None, false).await.unwrap();
        assert_eq!(handshakes(&broker), 2);
    }

    #[tokio::test]
    async fn a_refused_reauthentication_closes_the_connection() {
        let broker = FakeBroker::start(sasl_config("PLAIN", 200)).await;
        let conn = Connection::connect_with(
            &broker.addr,
            "t",
            LIMIT,
            &sasl(SaslMechanism::Plain, "pencil"),
        )
        .await
        .unwrap();
        broker.set_password("changed");
        tokio::time::sleep_until(conn.reauthenticate_at().unwrap().into()).await;
        let err = conn.send(MetadataRequest::default()).await.unwrap_err();
        assert_eq!(
            err.kafka_error(),
            Some(ResponseError::SaslAuthenticationFailed),
            "{err}"
        );
        assert!(conn.is_closed());
        assert!(conn.close_reason().unwrap().contains("re-authentication"));
    }

    /// A self-signed certificate for `localhost`, its CA file, and a fake
    /// broker serving TLS with it.
    async fn tls_broker(config: FakeConfig) -> (FakeBroker, tempfile::TempDir) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into()),
        )
        .unwrap();
        let broker = FakeBroker::start(FakeConfig {
            tls: Some(Arc::new(server)),
            ..config
        })
        .await;
        (broker, dir)
    }

    fn tls(protocol: SecurityProtocol, dir: &tempfile::TempDir, verify: bool) -> Security {
        let sasl = protocol.uses_sasl().then(|| SaslCredentials {
            mechanism: SaslMechanism::ScramSha512,
            username: "alice".into(),
            password: "pencil".into(),
        });
        Security::new(
            protocol,
            TlsSettings {
                ca_location: Some(dir.path().join("ca.pem")),
                verify_hostname: verify,
                ..TlsSettings::default()
            },
            sasl,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn sasl_ssl_round_trip_and_host_name_checks() {
        let (broker, dir) = tls_broker(sasl_config("SCRAM-SHA-512", 0)).await;
        let port = broker.addr.rsplit_once(':').unwrap().1;
        let by_name = format!("localhost:{port}");

        let conn = Connection::connect_with(
            &by_name,
            "t",
            LIMIT,
            &tls(SecurityProtocol::SaslSsl, &dir, true),
        )
        .await
        .unwrap();
        conn.send(MetadataRequest::default()).await.unwrap();
        assert!(broker.errors().is_empty(), "{:?}", broker.errors());

        // The certificate names localhost, not 127.0.0.1.
        let err = Connection::connect_with(
            &broker.addr,
            "t",
            LIMIT,
            &tls(SecurityProtocol::Ssl, &dir, true),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Tls { .. }), "{err}");
        // ssl.endpoint.identification.algorithm= (empty) accepts it.
        let conn = Connection::connect_with(
            &broker.addr,
            "t",
            LIMIT,
            &tls(SecurityProtocol::Ssl, &dir, false),
        )
        .await
        .unwrap();
        conn.send(MetadataRequest::default()).await.unwrap();
    }

    #[tokio::test]
    async fn untrusted_certificate_and_plaintext_to_tls_fail() {
        let (broker, _dir) = tls_broker(FakeConfig::default()).await;
        let port = broker.addr.rsplit_once(':').unwrap().1;
        // Trusting another CA.
        let (_other, other_dir) = tls_broker(FakeConfig::default()).await;
        let err = Connection::connect_with(
            &format!("localhost:{port}"),
            "t",
            LIMIT,
            &tls(SecurityProtocol::Ssl, &other_dir, true),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Tls { .. }), "{err}");
        // A plaintext client gets no Kafka answer from a TLS listener.
        let err = Connection::connect_with(
            &broker.addr,
            "t",
            Duration::from_secs(2),
            &Security::plaintext(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::ConnectionClosed(_) | Error::Timeout { .. } | Error::Protocol(_)
            ),
            "{err}"
        );
        // The broker saw two handshakes fail: the untrusting client's and
        // the plaintext one.
        let mut waited = 0;
        while broker.tls_failures().len() < 2 && waited < 100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert_eq!(
            broker.tls_failures().len(),
            2,
            "{:?}",
            broker.tls_failures()
        );
    }
}
