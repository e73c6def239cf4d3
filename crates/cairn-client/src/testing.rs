//! An in-process fake broker for unit tests: it speaks just enough of the
//! protocol (ApiVersions, Metadata, CreateTopics, Produce, Fetch,
//! ListOffsets, and the SASL exchange for PLAIN and SCRAM) and checks that
//! every request decodes exactly; optionally behind TLS.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{
    decode_request_header_from_buffer, Decodable, Encodable, HeaderVersion, Message, StrBytes,
};
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::sasl::ScramHash;

/// The one user a SASL fake broker knows.
#[derive(Clone)]
pub(crate) struct FakeSasl {
    pub mechanism: &'static str,
    pub user: &'static str,
    pub password: &'static str,
    /// Put into the SaslAuthenticate answer (KIP-368); 0 = unlimited.
    pub session_lifetime_ms: i64,
}

/// Per-connection SASL progress.
#[derive(Default)]
struct SaslState {
    mechanism: Option<String>,
    /// SCRAM: client-first-bare and the full nonce, after the first round.
    scram: Option<(String, String)>,
}

/// How the fake broker behaves.
#[derive(Clone)]
pub(crate) struct FakeConfig {
    /// Advertised version ranges.
    pub apis: Vec<(ApiKey, i16, i16)>,
    /// ApiVersions requests above this version get UNSUPPORTED_VERSION.
    pub api_versions_max: i16,
    /// Hold this many responses (ApiVersions excepted), then send them in
    /// reverse order, to prove the client matches on correlation ids.
    pub reverse_batches_of: usize,
    /// Close the socket on receiving this many non-ApiVersions requests.
    pub close_on_request: Option<usize>,
    /// Answer the first non-ApiVersions request with an absurd frame length.
    pub bogus_length: bool,
    /// Read everything but answer only ApiVersions.
    pub silent: bool,
    /// Speak SASL with this user.
    pub sasl: Option<FakeSasl>,
    /// Serve TLS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for FakeConfig {
    fn default() -> Self {
        let full = |k: ApiKey, r: kafka_protocol::protocol::VersionRange| (k, r.min, r.max);
        FakeConfig {
            apis: vec![
                full(ApiKey::ApiVersions, ApiVersionsRequest::VERSIONS),
                full(ApiKey::Metadata, MetadataRequest::VERSIONS),
                full(ApiKey::Produce, ProduceRequest::VERSIONS),
                full(ApiKey::Fetch, FetchRequest::VERSIONS),
                full(ApiKey::ListOffsets, ListOffsetsRequest::VERSIONS),
                full(ApiKey::CreateTopics, CreateTopicsRequest::VERSIONS),
                full(ApiKey::SaslHandshake, SaslHandshakeRequest::VERSIONS),
                full(ApiKey::SaslAuthenticate, SaslAuthenticateRequest::VERSIONS),
            ],
            api_versions_max: 4,
            reverse_batches_of: 1,
            close_on_request: None,
            bogus_length: false,
            silent: false,
            sasl: None,
            tls: None,
        }
    }
}

/// A request as the fake broker saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub api_key: i16,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// Decoding problems; a test fails if any show up.
    errors: Vec<String>,
    /// topic -> partition -> stored batches, base offsets already assigned.
    topics: BTreeMap<String, Vec<Vec<(i64, Bytes)>>>,
    /// TLS handshakes that failed on the broker's side.
    tls_failures: Vec<String>,
    /// Replaces the configured SASL password from now on.
    password: Option<String>,
}

pub(crate) struct FakeBroker {
    pub addr: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeBroker {
    pub async fn start(config: FakeConfig) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let task = {
            let state = state.clone();
            let addr = addr.clone();
            tokio::spawn(async move {
                while let Ok((sock, _)) = listener.accept().await {
                    let (config, state, addr) = (config.clone(), state.clone(), addr.clone());
                    match config.tls.clone() {
                        None => {
                            tokio::spawn(serve(sock, config, state, addr));
                        }
                        Some(tls) => {
                            tokio::spawn(async move {
                                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                                match acceptor.accept(sock).await {
                                    Ok(sock) => serve(sock, config, state, addr).await,
                                    Err(e) => {
                                        state.lock().unwrap().tls_failures.push(e.to_string())
                                    }
                                }
                            });
                        }
                    }
                }
            })
        };
        FakeBroker { addr, state, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.state.lock().unwrap().errors.clone()
    }

    /// Changes the SASL user's password, for re-authentication tests.
    pub fn set_password(&self, password: &str) {
        self.state.lock().unwrap().password = Some(password.to_string());
    }

    pub fn tls_failures(&self) -> Vec<String> {
        self.state.lock().unwrap().tls_failures.clone()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    config: FakeConfig,
    state: Arc<Mutex<State>>,
    addr: String,
) {
    let mut sasl = SaslState::default();
    let mut held: Vec<Bytes> = Vec::new();
    let mut requests = 0usize;
    loop {
        let Ok(len) = sock.read_i32().await else {
            return;
        };
        let mut frame = vec![0u8; len as usize];
        if sock.read_exact(&mut frame).await.is_err() {
            return;
        }
        let mut buf = Bytes::from(frame);
        let header = match decode_request_header_from_buffer(&mut buf) {
            Ok(h) => h,
            Err(e) => {
                state.lock().unwrap().errors.push(format!("header: {e}"));
                return;
            }
        };
        state.lock().unwrap().seen.push(Seen {
            api_key: header.request_api_key,
            version: header.request_api_version,
            correlation_id: header.correlation_id,
            client_id: header.client_id.as_ref().map(|c| c.to_string()),
        });
        // The handshake is answered at once, like ApiVersions.
        let is_api_versions = [
            ApiKey::ApiVersions,
            ApiKey::SaslHandshake,
            ApiKey::SaslAuthenticate,
        ]
        .iter()
        .any(|k| *k as i16 == header.request_api_key);
        if !is_api_versions {
            requests += 1;
            if config.close_on_request == Some(requests) {
                return;
            }
            if config.silent {
                continue;
            }
            if config.bogus_length {
                let _ = sock.write_all(&i32::MAX.to_be_bytes()).await;
                let _ = sock.write_all(&header.correlation_id.to_be_bytes()).await;
                let _ = sock.flush().await;
                return;
            }
        }
        let response = match respond(&header, &mut buf, &config, &state, &addr, &mut sasl) {
            Ok(r) => r,
            Err(e) => {
                state.lock().unwrap().errors.push(e);
                return;
            }
        };
        if buf.has_remaining() {
            state.lock().unwrap().errors.push(format!(
                "api {} v{}: {} bytes left after decoding",
                header.request_api_key,
                header.request_api_version,
                buf.remaining()
            ));
            return;
        }
        let Some(response) = response else { continue };
        if is_api_versions {
            if sock.write_all(&response).await.is_err() || sock.flush().await.is_err() {
                return;
            }
            continue;
        }
        held.push(response);
        if held.len() >= config.reverse_batches_of {
            for r in held.drain(..).rev() {
                if sock.write_all(&r).await.is_err() {
                    return;
                }
            }
            if sock.flush().await.is_err() {
                return;
            }
        }
    }
}

fn frame<T: Encodable + HeaderVersion>(correlation_id: i32, version: i16, body: &T) -> Bytes {
    frame_with_header(correlation_id, T::header_version(version), version, body)
}

fn frame_with_header<T: Encodable>(
    correlation_id: i32,
    header_version: i16,
    version: i16,
    body: &T,
) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn respond(
    header: &RequestHeader,
    buf: &mut Bytes,
    config: &FakeConfig,
    state: &Mutex<State>,
    addr: &str,
    sasl: &mut SaslState,
) -> Result<Option<Bytes>, String> {
    let v = header.request_api_version;
    let id = header.correlation_id;
    let api = ApiKey::try_from(header.request_api_key).map_err(|_| "unknown api".to_string())?;
    let err = |e: anyhow::Error| format!("{api:?} v{v}: {e}");
    let api_keys: Vec<ApiVersion> = config
        .apis
        .iter()
        .map(|&(k, min, max)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    match api {
        ApiKey::ApiVersions => {
            if v > config.api_versions_max {
                // Kafka answers an unknown ApiVersions version at v0. The
                // body is left undecoded, as a real broker would.
                buf.advance(buf.remaining());
                let resp = ApiVersionsResponse::default()
                    .with_error_code(ResponseError::UnsupportedVersion.code())
                    .with_api_keys(api_keys);
                return Ok(Some(frame_with_header(id, 0, 0, &resp)));
            }
            ApiVersionsRequest::decode(buf, v).map_err(err)?;
            let resp = ApiVersionsResponse::default().with_api_keys(api_keys);
            Ok(Some(frame(id, v, &resp)))
        }
        ApiKey::Metadata => {
            let req = MetadataRequest::decode(buf, v).map_err(err)?;
            let (host, port) = addr.rsplit_once(':').unwrap();
            let st = state.lock().unwrap();
            let names: Vec<String> = match &req.topics {
                Some(ts) if !(v == 0 && ts.is_empty()) => ts
                    .iter()
                    .map(|t| t.name.as_ref().unwrap().0.to_string())
                    .collect(),
                _ => st.topics.keys().cloned().collect(),
            };
            let topics = names
                .iter()
                .map(|n| {
                    let t = MetadataResponseTopic::default().with_name(Some(name(n)));
                    match st.topics.get(n) {
                        Some(parts) => t.with_partitions(
                            (0..parts.len() as i32)
                                .map(|p| {
                                    MetadataResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_leader_id(BrokerId(1))
                                        .with_replica_nodes(vec![BrokerId(1)])
                                        .with_isr_nodes(vec![BrokerId(1)])
                                })
                                .collect(),
                        ),
                        None => t.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                    }
                })
                .collect();
            let resp = MetadataResponse::default()
                .with_brokers(vec![MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(port.parse().unwrap())])
                .with_controller_id(BrokerId(1))
                .with_topics(topics);
            Ok(Some(frame(id, v, &resp)))
        }
        ApiKey::CreateTopics => {
            let req = CreateTopicsRequest::decode(buf, v).map_err(err)?;
            let mut st = state.lock().unwrap();
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    let r = CreatableTopicResult::default().with_name(t.name.clone());
                    if st.topics.contains_key(t.name.0.as_str()) {
                        r.with_error_code(ResponseError::TopicAlreadyExists.code())
                    } else {
                        st.topics.insert(
                            t.name.0.to_string(),
                            vec![Vec::new(); t.num_partitions as usize],
                        );
                        r
                    }
                })
                .collect();
            let resp = CreateTopicsResponse::default().with_topics(topics);
            Ok(Some(frame(id, v, &resp)))
        }
        ApiKey::Produce => {
            let req = ProduceRequest::decode(buf, v).map_err(err)?;
            let mut st = state.lock().unwrap();
            let mut responses = Vec::new();
            for t in &req.topic_data {
                let mut parts = Vec::new();
                for p in &t.partition_data {
                    let mut r = PartitionProduceResponse::default().with_index(p.index);
                    match st
                        .topics
                        .get_mut(t.name.0.as_str())
                        .and_then(|ps| ps.get_mut(p.index as usize))
                    {
                        Some(log) => {
                            let base = log
                                .last()
                                .map_or(0, |(b, data)| b + record_count(data) as i64);
                            let mut data = BytesMut::from(&p.records.clone().unwrap()[..]);
                            data[..8].copy_from_slice(&base.to_be_bytes());
                            log.push((base, data.freeze()));
                            r = r.with_base_offset(base);
                        }
                        None => {
                            r = r.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        }
                    }
                    parts.push(r);
                }
                responses.push(
                    TopicProduceResponse::default()
                        .with_name(t.name.clone())
                        .with_partition_responses(parts),
                );
            }
            if req.acks == 0 {
                return Ok(None);
            }
            let resp = ProduceResponse::default().with_responses(responses);
            Ok(Some(frame(id, v, &resp)))
        }
        ApiKey::Fetch => {
            let req = FetchRequest::decode(buf, v).map_err(err)?;
            let st = state.lock().unwrap();
            let mut responses = Vec::new();
            for t in &req.topics {
                let mut parts = Vec::new();
                for p in &t.partitions {
                    let log = st
                        .topics
                        .get(t.topic.0.as_str())
                        .and_then(|ps| ps.get(p.partition as usize))
                        .cloned()
                        .unwrap_or_default();
                    let end = log.last().map_or(0, |(b, d)| b + record_count(d) as i64);
                    let mut data = BytesMut::new();
                    for (base, batch) in &log {
                        if base + record_count(batch) as i64 > p.fetch_offset {
                            data.put_slice(batch);
                        }
                    }
                    parts.push(
                        PartitionData::default()
                            .with_partition_index(p.partition)
                            .with_high_watermark(end)
                            .with_records(Some(data.freeze())),
                    );
                }
                responses.push(
                    FetchableTopicResponse::default()
                        .with_topic(t.topic.clone())
                        .with_partitions(parts),
                );
            }
            let resp = FetchResponse::default().with_responses(responses);
            Ok(Some(frame(id, v, &resp)))
        }
        ApiKey::ListOffsets => {
            let req = ListOffsetsRequest::decode(buf, v).map_err(err)?;
            let st = state.lock().unwrap();
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    let parts = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let log = st
                                .topics
                                .get(t.name.0.as_str())
                                .and_then(|ps| ps.get(p.partition_index as usize));
                            let r = ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index);
                            match log {
                                None => {
                                    r.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                                }
                                Some(log) if p.timestamp == -1 => r.with_offset(
                                    log.last().map_or(0, |(b, d)| b + record_count(d) as i64),
                                ),
                                Some(_) => r.with_offset(0),
                            }
                        })
                        .collect();
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(parts)
                })
                .collect();
            let resp = ListOffsetsResponse::default().with_topics(topics);
            Ok(Some(frame(id, v, &resp)))
        }
        ApiKey::SaslHandshake => {
            let req = SaslHandshakeRequest::decode(buf, v).map_err(err)?;
            let offered = config.sasl.as_ref().map(|s| s.mechanism);
            let mut resp = SaslHandshakeResponse::default().with_mechanisms(
                offered
                    .iter()
                    .map(|m| StrBytes::from_static_str(m))
                    .collect(),
            );
            if offered == Some(req.mechanism.as_str()) {
                sasl.mechanism = Some(req.mechanism.to_string());
            } else {
                resp = resp.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
            }
            Ok(Some(frame(id, v, &resp)))
        }
        ApiKey::SaslAuthenticate => {
            let req = SaslAuthenticateRequest::decode(buf, v).map_err(err)?;
            let user = config.sasl.as_ref().ok_or("no SASL configured")?;
            let changed = state.lock().unwrap().password.clone();
            let password = changed.as_deref().unwrap_or(user.password);
            let token = std::str::from_utf8(&req.auth_bytes).map_err(|e| e.to_string())?;
            let fail = |msg: &str| {
                SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(StrBytes::from_string(msg.to_string())))
            };
            let ok = |bytes: Vec<u8>| {
                SaslAuthenticateResponse::default()
                    .with_auth_bytes(Bytes::from(bytes))
                    .with_session_lifetime_ms(user.session_lifetime_ms)
            };
            let resp = match sasl.mechanism.as_deref() {
                None => return Err("SaslAuthenticate before SaslHandshake".into()),
                Some("PLAIN") => {
                    if token == format!("\0{}\0{}", user.user, password) {
                        ok(Vec::new())
                    } else {
                        fail("Invalid username or password")
                    }
                }
                Some(m) => {
                    let hash = if m == "SCRAM-SHA-256" {
                        ScramHash::Sha256
                    } else {
                        ScramHash::Sha512
                    };
                    let salt = b"fake-salt";
                    match sasl.scram.take() {
                        None => {
                            let bare = token.strip_prefix("n,,").ok_or("bad GS2 header")?;
                            let nonce = bare.split_once(",r=").ok_or("no nonce")?.1;
                            let name = bare.strip_prefix("n=").unwrap().split(',').next().unwrap();
                            if name != user.user {
                                fail("unknown user")
                            } else {
                                let full = format!("{nonce}SERVER");
                                let server_first = format!(
                                    "r={full},s={},i=4096",
                                    base64::Engine::encode(
                                        &base64::engine::general_purpose::STANDARD,
                                        salt
                                    )
                                );
                                sasl.scram = Some((format!("{bare},{server_first}"), full));
                                ok(server_first.into_bytes())
                            }
                        }
                        Some((first_part, _nonce)) => {
                            let (without_proof, proof) =
                                token.rsplit_once(",p=").ok_or("no proof")?;
                            let salted = hash.salted_password(password, salt, 4096);
                            let stored = hash.hash(&hash.hmac(&salted, b"Client Key"));
                            let auth = format!("{first_part},{without_proof}");
                            let sig = hash.hmac(&stored, auth.as_bytes());
                            let proof = base64::Engine::decode(
                                &base64::engine::general_purpose::STANDARD,
                                proof,
                            )
                            .map_err(|e| e.to_string())?;
                            let key: Vec<u8> = proof.iter().zip(&sig).map(|(p, s)| p ^ s).collect();
                            if hash.hash(&key) == stored {
                                let server_key = hash.hmac(&salted, b"Server Key");
                                let v = hash.hmac(&server_key, auth.as_bytes());
                                ok(format!(
                                    "v={}",
                                    base64::Engine::encode(
                                        &base64::engine::general_purpose::STANDARD,
                                        v
                                    )
                                )
                                .into_bytes())
                            } else {
                                fail("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM")
                            }
                        }
                    }
                }
            };
            Ok(Some(frame(id, v, &resp)))
        }
        other => Err(format!("fake broker does not handle {other:?}")),
    }
}

fn record_count(batch: &Bytes) -> i32 {
    RecordBatchDecoder::decode_batch_info(&mut batch.clone())
        .unwrap()
        .iter()
        .map(|b| b.record_count)
        .sum()
}
