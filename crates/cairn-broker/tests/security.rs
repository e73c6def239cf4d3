//! Listeners, TLS, SASL and ACLs over the wire, against a broker in this process: the exchange
//! gates every other request, failures close the connection, sessions expire, ACLs and SCRAM
//! users are enforced and survive a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cairn_auth::{ScramClient, ScramMechanism};
use cairn_broker::{Broker, BrokerOptions};
use cairn_config::BrokerConfig;
use common::send;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

struct Pki {
    ca: rcgen::Certificate,
    server_key: String,
    server_chain: String,
    alice: (CertificateDer<'static>, PrivateKeyDer<'static>),
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test ca");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let alice_key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "cairn");
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "alice");
    let alice = p.signed_by(&alice_key, &ca, &ca_key).unwrap();
    Pki {
        server_key: server_key.serialize_pem(),
        server_chain: server.pem() + &ca.pem(),
        alice: (
            alice.der().clone(),
            PrivateKeyDer::try_from(alice_key.serialize_der()).unwrap(),
        ),
        ca,
    }
}

const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_bob="bob-secret";"#;

fn config(pki: &Pki, extra: &[(&str, &str)]) -> BrokerConfig {
    let mut pairs: Vec<(String, String)> = vec![
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.key", pki.server_key.as_str()),
        ("ssl.keystore.certificate.chain", pki.server_chain.as_str()),
        ("ssl.truststore.type", "PEM"),
        ("listener.name.ssl.ssl.client.auth", "required"),
        (
            "sasl.enabled.mechanisms",
            "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        ),
        ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
        ("listener.name.sasl_ssl.plain.sasl.jaas.config", JAAS),
        (
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        ),
        ("super.users", "User:admin"),
        ("connection.failed.authentication.delay.ms", "10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    pairs.push(("ssl.truststore.certificates".into(), pki.ca.pem()));
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    BrokerConfig::from_pairs(pairs).unwrap()
}

async fn start(dir: &std::path::Path, cfg: BrokerConfig) -> Broker {
    Broker::start(BrokerOptions {
        listen: Some(
            "SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0,SSL://127.0.0.1:0".into(),
        ),
        data_dir: dir.to_path_buf(),
        config: cfg,
    })
    .await
    .unwrap()
}

fn addr(b: &Broker, name: &str) -> std::net::SocketAddr {
    b.listeners.iter().find(|(n, _)| n == name).unwrap().1
}

async fn closed<S: AsyncRead + Unpin>(sock: &mut S) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), sock.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, mech: &str) -> i16 {
    let r = send(
        s,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mech.into())),
        1,
    )
    .await
    .unwrap();
    r.error_code
}

async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    token: Vec<u8>,
) -> SaslAuthenticateResponse {
    send(
        s,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
        2,
    )
    .await
    .expect("an answer")
}

async fn plain<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, user: &str, pw: &str) -> i16 {
    assert_eq!(handshake(s, "PLAIN").await, 0);
    let token = format!("\0{user}\0{pw}").into_bytes();
    authenticate(s, token).await.error_code
}

async fn scram<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    mech: ScramMechanism,
    user: &str,
    pw: &str,
) -> i16 {
    assert_eq!(handshake(s, mech.name()).await, 0);
    let mut c = ScramClient::new(mech, user, pw);
    let r = authenticate(s, c.first()).await;
    if r.error_code != 0 {
        return r.error_code;
    }
    let fin = c.fin(&r.auth_bytes).unwrap();
    let r = authenticate(s, fin).await;
    if r.error_code == 0 {
        c.verify(&r.auth_bytes).unwrap();
    }
    r.error_code
}

fn tls_connector(pki: &Pki, client_cert: bool) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let cfg = if client_cert {
        b.with_client_auth_cert(vec![pki.alice.0.clone()], pki.alice.1.clone_key())
            .unwrap()
    } else {
        b.with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

async fn tls(
    pki: &Pki,
    at: std::net::SocketAddr,
    client_cert: bool,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(at).await.unwrap();
    tls_connector(pki, client_cert)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

fn metadata(topics: Option<&[&str]>) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                })
                .collect()
        }))
        .with_allow_auto_topic_creation(false)
}

fn produce_req(topic: &str) -> ProduceRequest {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &[Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 0,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
            delete_horizon: false,
        }],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    ProduceRequest::default().with_acks(1).with_topic_data(vec![
        produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(buf.freeze()))]),
    ])
}

fn acl(principal: &str, topic: &str, op: i8) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_string(topic.into()))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_string(principal.into()))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(op)
        .with_permission_type(3)
}

#[tokio::test]
async fn sasl_gates_every_request_and_failures_close() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), config(&pki, &[])).await;
    let at = addr(&broker, "SASL_PLAINTEXT");

    // Anything but the exchange before authenticating closes the connection.
    let mut s = TcpStream::connect(at).await.unwrap();
    assert!(send(&mut s, &ApiVersionsRequest::default(), 3)
        .await
        .is_some());
    assert!(send(&mut s, &metadata(None), 12).await.is_none());

    // An unknown mechanism is answered with the ones offered, then the connection closes.
    let mut s = TcpStream::connect(at).await.unwrap();
    let r = send(
        &mut s,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
        1,
    )
    .await
    .unwrap();
    assert_eq!(r.error_code, 33);
    assert_eq!(r.mechanisms.len(), 3);
    assert!(closed(&mut s).await);

    // A wrong password: SASL_AUTHENTICATION_FAILED, then closed.
    let mut s = TcpStream::connect(at).await.unwrap();
    assert_eq!(plain(&mut s, "admin", "wrong").await, 58);
    assert!(closed(&mut s).await);
    let mut s = TcpStream::connect(at).await.unwrap();
    assert_eq!(plain(&mut s, "nobody", "x").await, 58);

    // A frame over sasl.server.max.receive.size before authenticating closes the connection.
    let mut s = TcpStream::connect(at).await.unwrap();
    s.write_all(&(600_000i32).to_be_bytes()).await.unwrap();
    assert!(closed(&mut s).await);

    // Malformed tokens are refused, never a crash.
    for token in [vec![], vec![0u8; 3], b"a\0b".to_vec(), vec![0xff; 1000]] {
        let mut s = TcpStream::connect(at).await.unwrap();
        assert_eq!(handshake(&mut s, "PLAIN").await, 0);
        assert_eq!(authenticate(&mut s, token).await.error_code, 58);
    }
    for token in [
        vec![],
        b"n,,n=x".to_vec(),
        vec![0xff; 1000],
        b"p=tls-unique,,n=a,r=b".to_vec(),
    ] {
        let mut s = TcpStream::connect(at).await.unwrap();
        assert_eq!(handshake(&mut s, "SCRAM-SHA-256").await, 0);
        assert_eq!(authenticate(&mut s, token).await.error_code, 58);
    }

    // SaslHandshake v0: the token follows as a bare frame and so does the answer; a wrong
    // password closes the connection without one.
    for (pw, ok) in [("admin-secret", true), ("wrong", false)] {
        let mut s = TcpStream::connect(at).await.unwrap();
        let r = send(
            &mut s,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            0,
        )
        .await
        .unwrap();
        assert_eq!(r.error_code, 0);
        let token = format!("\0admin\0{pw}").into_bytes();
        s.write_all(&(token.len() as i32).to_be_bytes())
            .await
            .unwrap();
        s.write_all(&token).await.unwrap();
        if ok {
            assert_eq!(
                s.read_i32().await.unwrap(),
                0,
                "PLAIN answers an empty token"
            );
            assert!(send(&mut s, &metadata(None), 12).await.is_some());
        } else {
            assert!(closed(&mut s).await);
        }
    }

    // The right password: requests flow.
    let mut s = TcpStream::connect(at).await.unwrap();
    assert_eq!(plain(&mut s, "admin", "admin-secret").await, 0);
    let md = send(&mut s, &metadata(None), 12).await.unwrap();
    assert_eq!(
        md.brokers[0].port,
        at.port() as i32,
        "the listener's own address"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn scram_users_and_acls_are_enforced_and_durable() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), config(&pki, &[])).await;
    let at = addr(&broker, "SASL_SSL");
    let mut admin = tls(&pki, at, false).await;
    assert_eq!(plain(&mut admin, "admin", "admin-secret").await, 0);

    // A SCRAM user through the admin API: salt and salted password, never the password.
    let salt = b"0123456789abcdef".to_vec();
    let salted = cairn_auth::salted_password(ScramMechanism::Sha512, "alice-secret", &salt, 4096);
    let alter = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_static_str("alice"))
            .with_mechanism(2)
            .with_iterations(4096)
            .with_salt(Bytes::from(salt))
            .with_salted_password(Bytes::from(salted)),
        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_static_str("weak"))
            .with_mechanism(1)
            .with_iterations(10)
            .with_salt(Bytes::from_static(b"s"))
            .with_salted_password(Bytes::from_static(b"p")),
    ]);
    let r = send(&mut admin, &alter, 0).await.unwrap();
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(r.results[1].error_code, 93, "too few iterations");

    let mut alice = tls(&pki, at, false).await;
    assert_eq!(
        scram(&mut alice, ScramMechanism::Sha512, "alice", "alice-secret").await,
        0
    );
    let mut wrong = tls(&pki, at, false).await;
    assert_eq!(
        scram(&mut wrong, ScramMechanism::Sha512, "alice", "nope").await,
        58
    );
    let mut wrong = tls(&pki, at, false).await;
    assert_eq!(
        scram(&mut wrong, ScramMechanism::Sha256, "alice", "alice-secret").await,
        58,
        "no SHA-256 credential"
    );

    // Topics exist (the admin may create them); alice sees nothing until granted.
    let create = CreateTopicsRequest::default().with_topics(
        ["t1", "t2"]
            .iter()
            .map(|t| {
                create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t.to_string())))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
            })
            .collect(),
    );
    let r = send(&mut admin, &create, 5).await.unwrap();
    assert!(r.topics.iter().all(|t| t.error_code == 0));
    let r = send(&mut alice, &create, 5).await.unwrap();
    assert!(r.topics.iter().all(|t| t.error_code == 29));
    let md = send(&mut alice, &metadata(None), 12).await.unwrap();
    assert!(md.topics.is_empty());
    let md = send(&mut alice, &metadata(Some(&["t1"])), 12)
        .await
        .unwrap();
    assert_eq!(md.topics[0].error_code, 29);
    let p = send(&mut alice, &produce_req("t1"), 9).await.unwrap();
    assert_eq!(p.responses[0].partition_responses[0].error_code, 29);

    // Grant WRITE on t1: produce works, Metadata shows t1 (WRITE implies DESCRIBE), not t2.
    let r = send(
        &mut alice,
        &CreateAclsRequest::default().with_creations(vec![acl("User:alice", "t1", 4)]),
        3,
    )
    .await
    .unwrap();
    assert_eq!(r.results[0].error_code, 31, "alice may not grant herself");
    let r = send(
        &mut admin,
        &CreateAclsRequest::default().with_creations(vec![acl("User:alice", "t1", 4)]),
        3,
    )
    .await
    .unwrap();
    assert_eq!(r.results[0].error_code, 0);
    let p = send(&mut alice, &produce_req("t1"), 9).await.unwrap();
    assert_eq!(p.responses[0].partition_responses[0].error_code, 0);
    let md = send(&mut alice, &metadata(None), 12).await.unwrap();
    let names: Vec<_> = md
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.to_string())
        .collect();
    assert_eq!(names, vec!["t1".to_string()]);
    broker.shutdown().await.unwrap();

    // After a restart the ACL and the SCRAM user are still there.
    let broker = start(dir.path(), config(&pki, &[])).await;
    let at = addr(&broker, "SASL_SSL");
    let mut alice = tls(&pki, at, false).await;
    assert_eq!(
        scram(&mut alice, ScramMechanism::Sha512, "alice", "alice-secret").await,
        0
    );
    let p = send(&mut alice, &produce_req("t1"), 9).await.unwrap();
    assert_eq!(p.responses[0].partition_responses[0].error_code, 0);
    let d = send(
        &mut alice,
        &DescribeUserScramCredentialsRequest::default(),
        0,
    )
    .await
    .unwrap();
    assert_eq!(d.error_code, 31);
    let d = send(
        &mut alice,
        &DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1),
        3,
    )
    .await
    .unwrap();
    assert_eq!((d.error_code, d.resources.len()), (31, 0));
    let mut admin = tls(&pki, at, false).await;
    assert_eq!(plain(&mut admin, "admin", "admin-secret").await, 0);
    let d = send(
        &mut admin,
        &DescribeUserScramCredentialsRequest::default(),
        0,
    )
    .await
    .unwrap();
    assert_eq!(d.results.len(), 1);
    assert_eq!(d.results[0].user.as_str(), "alice");
    assert_eq!(d.results[0].credential_infos[0].iterations, 4096);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_certificates_and_session_lifetimes() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let broker = start(
        dir.path(),
        config(&pki, &[("connections.max.reauth.ms", "1500")]),
    )
    .await;

    // SSL with a client certificate: the principal is its subject (Kafka's DEFAULT rule).
    let mut admin = TcpStream::connect(addr(&broker, "SASL_PLAINTEXT"))
        .await
        .unwrap();
    assert_eq!(plain(&mut admin, "admin", "admin-secret").await, 0);
    let r = send(
        &mut admin,
        &CreateAclsRequest::default().with_creations(vec![acl("User:CN=alice,O=cairn", "t", 8)]),
        3,
    )
    .await
    .unwrap();
    assert_eq!(r.results[0].error_code, 0);
    let mut ssl = tls(&pki, addr(&broker, "SSL"), true).await;
    let md = send(&mut ssl, &metadata(Some(&["t", "u"])), 12)
        .await
        .unwrap();
    assert_eq!(md.topics[0].error_code, 3, "described, does not exist");
    assert_eq!(md.topics[1].error_code, 29);

    // Renewing the session on the same connection keeps it open past the first lifetime.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(plain(&mut admin, "admin", "admin-secret").await, 0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(send(&mut admin, &metadata(None), 12).await.is_some());
    // A renewal may not change who the connection is.
    assert_eq!(plain(&mut admin, "bob", "bob-secret").await, 58);
    assert!(closed(&mut admin).await);
    // A session not renewed in time ends at its next request.
    let mut late = TcpStream::connect(addr(&broker, "SASL_PLAINTEXT"))
        .await
        .unwrap();
    assert_eq!(plain(&mut late, "bob", "bob-secret").await, 0);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(send(&mut late, &metadata(None), 12).await.is_none());

    // Without a client certificate the SSL listener refuses the handshake.
    let tcp = TcpStream::connect(addr(&broker, "SSL")).await.unwrap();
    let refused = tls_connector(&pki, false)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await;
    if let Ok(mut s) = refused {
        // TLS 1.3 reports the refusal on the first read.
        assert!(send(&mut s, &ApiVersionsRequest::default(), 3)
            .await
            .is_none());
    }

    // A plaintext client on a TLS listener gets no answer and is closed.
    let mut s = TcpStream::connect(addr(&broker, "SASL_SSL")).await.unwrap();
    assert!(send(&mut s, &ApiVersionsRequest::default(), 3)
        .await
        .is_none());
    broker.shutdown().await.unwrap();
}

/// AlterConfigs and IncrementalAlterConfigs need ALTER_CONFIGS on the topic, or on the cluster
/// for broker resources; ListConfigResources needs DESCRIBE_CONFIGS on the cluster (Kafka's rules).
#[tokio::test]
async fn config_changes_need_alter_configs() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), config(&pki, &[])).await;
    let at = addr(&broker, "SASL_PLAINTEXT");
    let mut admin = TcpStream::connect(at).await.unwrap();
    assert_eq!(plain(&mut admin, "admin", "admin-secret").await, 0);
    let mut bob = TcpStream::connect(at).await.unwrap();
    assert_eq!(plain(&mut bob, "bob", "bob-secret").await, 0);
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("cfg")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    assert_eq!(
        send(&mut admin, &create, 5).await.unwrap().topics[0].error_code,
        0
    );
    let alter = |ty: i8, name: &str| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(ty)
                .with_resource_name(StrBytes::from_string(name.into()))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(StrBytes::from_static_str(if ty == 2 {
                            "retention.ms"
                        } else {
                            "log.retention.ms"
                        }))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_static_str("60000"))),
                ]),
        ])
    };
    let code = |r: IncrementalAlterConfigsResponse| r.responses[0].error_code;
    assert_eq!(code(send(&mut bob, &alter(2, "cfg"), 1).await.unwrap()), 29);
    assert_eq!(code(send(&mut bob, &alter(4, "1"), 1).await.unwrap()), 31);
    let list = send(&mut bob, &ListConfigResourcesRequest::default(), 1)
        .await
        .unwrap();
    assert_eq!(list.error_code, 31);

    let grant = CreateAclsRequest::default().with_creations(vec![acl("User:bob", "cfg", 11)]);
    assert_eq!(
        send(&mut admin, &grant, 3).await.unwrap().results[0].error_code,
        0
    );
    assert_eq!(code(send(&mut bob, &alter(2, "cfg"), 1).await.unwrap()), 0);
    assert_eq!(code(send(&mut bob, &alter(4, "1"), 1).await.unwrap()), 31);
    // ALTER_CONFIGS implies DESCRIBE_CONFIGS: bob reads back what he set.
    let d = send(
        &mut bob,
        &DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("cfg"))
                .with_configuration_keys(Some(vec![StrBytes::from_static_str("retention.ms")])),
        ]),
        4,
    )
    .await
    .unwrap();
    assert_eq!(d.results[0].error_code, 0);
    assert_eq!(
        d.results[0].configs[0]
            .value
            .as_ref()
            .map(|v| v.to_string()),
        Some("60000".to_string())
    );
    assert_eq!(code(send(&mut admin, &alter(4, "1"), 1).await.unwrap()), 0);
    broker.shutdown().await.unwrap();
}
