//! One module per API family: decode → validate → call → encode. This file routes a frame to its
//! handler and turns the typed response back into bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;

use cairn_auth::{Operation, ResourceType};
use cairn_quota::QuotaKind;

use crate::security::{ListenerCtx, Session};
use crate::server::peek_header;
use crate::state::BrokerState;
use crate::versions::served;
use crate::wire::{self, Decoded, Request};

mod admin;
mod alter_configs;
mod api_versions;
mod configs;
mod consumer_groups;
mod describe_topic_partitions;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod produce;
mod producer_id;
mod quotas;
mod records;
mod replicas;
mod sasl;
mod security;
mod txn;
mod txn_admin;

/// What a handler sees besides its request.
pub struct Ctx {
    pub state: Arc<BrokerState>,
    pub version: i16,
    pub client_id: String,
    pub peer: SocketAddr,
    /// Who sent the request (`User:ANONYMOUS` without authentication).
    pub principal: Arc<str>,
    /// The listener the request came in on: its advertised address is the one to tell.
    pub listener: Arc<ListenerCtx>,
}

impl Ctx {
    /// Checks `op` on a resource; a denial leaves an audit line.
    pub fn allowed(&self, op: Operation, rt: ResourceType, name: &str) -> bool {
        self.state
            .security
            .allowed(&self.principal, &self.peer.ip(), op, rt, name)
    }
    /// The same check for filtering a listing (no audit line for what is left out).
    pub fn may(&self, op: Operation, rt: ResourceType, name: &str) -> bool {
        self.state
            .security
            .allowed_quietly(&self.principal, &self.peer.ip(), op, rt, name)
    }
    pub fn allowed_cluster(&self, op: Operation) -> bool {
        self.allowed(op, ResourceType::Cluster, crate::security::CLUSTER)
    }
    pub fn authorized_operations(&self, rt: ResourceType, name: &str) -> i32 {
        self.state
            .security
            .authorized_operations(&self.principal, &self.peer.ip(), rt, name)
    }
}

fn encode<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> anyhow::Result<BytesMut> {
    // Sized up front: a multi-megabyte fetch answer must not be regrown (and recopied) as it is written.
    let body_size = body.compute_size(version).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(body_size + 64);
    // Room for the size prefix, filled in below, so the frame goes out without another copy.
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, key.response_header_version(version))?;
    body.encode(&mut buf, version)
        .map_err(|e| anyhow!("cannot encode {key:?} v{version} response: {e}"))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// Handles one request frame and returns the whole response frame, size prefix included.
/// `Ok(None)` means no response is due (acks=0); `Err` closes the
/// connection, which is Kafka's answer to requests it cannot parse or does not serve.
pub async fn handle(
    state: &Arc<BrokerState>,
    frame: Bytes,
    session: &mut Session,
) -> anyhow::Result<Option<BytesMut>> {
    let peer = session.peer;
    let frame_len = frame.len();
    if session.raw_tokens {
        let ctx = Ctx {
            state: state.clone(),
            version: 0,
            client_id: String::new(),
            peer,
            principal: session.principal.clone(),
            listener: session.listener.clone(),
        };
        return sasl::raw_token(&ctx, session, frame).await.map(Some);
    }
    let Some((key_raw, version, correlation_id)) = peek_header(&frame) else {
        bail!(
            "request frame of {} bytes is too short for a header",
            frame.len()
        );
    };
    let Ok(key) = ApiKey::try_from(key_raw) else {
        bail!("unknown API key {key_raw}");
    };
    // Before a SASL connection has authenticated only the exchange itself may come, as in
    // Kafka; anything else closes the connection. A session past its lifetime must be renewed
    // before any other request (KIP-368).
    let exchange = matches!(
        key,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    );
    if !exchange {
        if !session.authenticated() {
            bail!("{key:?} request before SASL authentication");
        }
        if session.expired(std::time::Instant::now()) {
            bail!("SASL session expired (connections.max.reauth.ms) and was not renewed");
        }
    }
    if key == ApiKey::Produce && (0..3).contains(&version) {
        return match wire::old_produce::refuse(&frame, version, correlation_id) {
            Some(answer) => {
                tracing::info!(%peer, version, "Produce v{version} refused with UNSUPPORTED_VERSION (served from v3)");
                Ok(Some(answer))
            }
            None => {
                bail!("Produce v{version} request that cannot be answered (unparsable, or acks=0)")
            }
        };
    }
    if key == ApiKey::ApiVersions && served(key).is_some_and(|(_, hi)| version > hi) {
        // KIP-511: answer in v0 with UNSUPPORTED_VERSION so the client can retry lower.
        let body = api_versions::unsupported(&state.config);
        return Ok(Some(encode(key, 0, correlation_id, &body)?));
    }
    let started = std::time::Instant::now();
    let Decoded {
        version,
        header,
        body,
        ..
    } = wire::decode_request(frame)?;
    let ctx = Ctx {
        state: state.clone(),
        version,
        client_id: header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        peer,
        principal: session.principal.clone(),
        listener: session.listener.clone(),
    };

    let frame_len = frame_len as f64;
    let principal = session.principal.clone();
    // What a response's wait comes from: bytes (produce, fetch) and handler time, measured
    // only while a quota of that kind exists.
    let settle = |session: &mut Session, byte_wait: (u64, &'static str), busy: Duration| -> i32 {
        let quotas = &state.quotas;
        let request_wait = if request_quota_exempt(key) || !quotas.enabled(QuotaKind::Request) {
            0
        } else {
            // Kafka measures a request handler's thread time as a percentage of a second.
            let percent_seconds = busy.as_nanos() as f64 * 100.0 / 1e9;
            quotas.record(
                QuotaKind::Request,
                &principal,
                &ctx.client_id,
                percent_seconds,
            )
        };
        let (ms, which) = if byte_wait.0 >= request_wait {
            byte_wait
        } else {
            (request_wait, "request")
        };
        if ms == 0 {
            return 0;
        }
        state.metrics.quota_throttled(which, ms);
        session.mute_until = Some(std::time::Instant::now() + Duration::from_millis(ms));
        ms.min(i32::MAX as u64) as i32
    };

    macro_rules! route {
        ($($k:ident => $m:ident :: $f:ident),* $(,)?) => {
            match body {
                $(Request::$k(req) => {
                    let (mut resp, busy) = busy_time($m::$f(&ctx, req)).await;
                    resp.throttle_time_ms = settle(session, (0, ""), busy);
                    Some(encode(key, version, correlation_id, &resp)?)
                })*
                Request::SaslHandshake(req) => {
                    let resp = sasl::handshake(&ctx, session, req).await;
                    Some(encode(key, version, correlation_id, &resp)?)
                }
                Request::SaslAuthenticate(req) => {
                    let resp = sasl::authenticate(&ctx, session, req).await;
                    Some(encode(key, version, correlation_id, &resp)?)
                }
                Request::WriteTxnMarkers(req) => {
                    let resp = txn_admin::write_txn_markers(&ctx, req).await;
                    Some(encode(key, version, correlation_id, &resp)?)
                }
                Request::Produce(req) => {
                    let (resp, busy) = busy_time(produce::handle(&ctx, req)).await;
                    // Kafka counts the whole request against the producer's byte rate.
                    let wait = state.quotas.record(QuotaKind::Produce, &principal, &ctx.client_id, frame_len);
                    let throttle = settle(session, (wait, "produce"), busy);
                    match resp {
                        Some(mut resp) => {
                            resp.throttle_time_ms = throttle;
                            Some(encode(key, version, correlation_id, &resp)?)
                        }
                        None => None,
                    }
                }
                Request::Fetch(req) => {
                    let (mut resp, busy) = busy_time(fetch::handle(&ctx, req)).await;
                    let sent = if state.quotas.enabled(QuotaKind::Fetch) {
                        resp.compute_size(version).unwrap_or(0) as f64
                    } else {
                        0.0
                    };
                    let wait = state.quotas.record(QuotaKind::Fetch, &principal, &ctx.client_id, sent);
                    let throttle = settle(session, (wait, "fetch"), busy);
                    if throttle > 0 {
                        // A throttled fetch is answered empty, so its bytes were not sent.
                        state.quotas.unrecord(QuotaKind::Fetch, &principal, &ctx.client_id, sent);
                        resp = fetch::throttled();
                    }
                    resp.throttle_time_ms = throttle;
                    Some(encode(key, version, correlation_id, &resp)?)
                }
            }
        };
    }
    let resp = route! {
        ApiVersions => api_versions::handle,
        Metadata => metadata::handle,
        ListOffsets => list_offsets::handle,
        CreateTopics => admin::create_topics,
        DeleteTopics => admin::delete_topics,
        CreatePartitions => admin::create_partitions,
        DeleteRecords => records::delete_records,
        DescribeLogDirs => replicas::describe_log_dirs,
        DescribeTopicPartitions => describe_topic_partitions::handle,
        ElectLeaders => replicas::elect_leaders,
        AlterPartitionReassignments => replicas::alter_partition_reassignments,
        ListPartitionReassignments => replicas::list_partition_reassignments,
        DescribeConfigs => configs::describe_configs,
        DescribeCluster => configs::describe_cluster,
        FindCoordinator => groups::find_coordinator,
        JoinGroup => groups::join_group,
        SyncGroup => groups::sync_group,
        Heartbeat => groups::heartbeat,
        LeaveGroup => groups::leave_group,
        OffsetCommit => groups::offset_commit,
        OffsetFetch => groups::offset_fetch,
        ListGroups => groups::list_groups,
        DescribeGroups => groups::describe_groups,
        DeleteGroups => groups::delete_groups,
        OffsetDelete => groups::offset_delete,
        ConsumerGroupHeartbeat => consumer_groups::heartbeat,
        ConsumerGroupDescribe => consumer_groups::describe,
        InitProducerId => producer_id::handle,
        AddPartitionsToTxn => txn::add_partitions,
        AddOffsetsToTxn => txn::add_offsets,
        EndTxn => txn::end_txn,
        TxnOffsetCommit => txn::txn_offset_commit,
        DescribeTransactions => txn_admin::describe_transactions,
        ListTransactions => txn_admin::list_transactions,
        DescribeProducers => txn_admin::describe_producers,
        CreateAcls => security::create_acls,
        DescribeAcls => security::describe_acls,
        DeleteAcls => security::delete_acls,
        DescribeUserScramCredentials => security::describe_scram,
        AlterUserScramCredentials => security::alter_scram,
        AlterConfigs => alter_configs::alter_configs,
        IncrementalAlterConfigs => alter_configs::incremental_alter_configs,
        ListConfigResources => alter_configs::list_config_resources,
        DescribeClientQuotas => quotas::describe,
        AlterClientQuotas => quotas::alter,
    };
    state.metrics.request(key, started.elapsed());
    Ok(resp)
}

/// Requests outside the request-time quota: the version handshake and the broker-to-broker
/// transaction markers (Kafka exempts cluster actions), so a throttled client can still connect.
fn request_quota_exempt(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::ApiVersions
            | ApiKey::SaslHandshake
            | ApiKey::SaslAuthenticate
            | ApiKey::WriteTxnMarkers
    )
}

/// Runs a handler and measures the time spent in it, not waiting in it: a long-polling fetch or
/// a produce waiting for its fsync costs no request time, as Kafka counts thread time only.
async fn busy_time<F: std::future::Future>(fut: F) -> (F::Output, Duration) {
    let mut fut = std::pin::pin!(fut);
    let mut spent = Duration::ZERO;
    let out = std::future::poll_fn(|cx| {
        let started = std::time::Instant::now();
        let r = fut.as_mut().poll(cx);
        spent += started.elapsed();
        r
    })
    .await;
    (out, spent)
}

/// Shorthand for the crate's string type.
pub fn sb(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}
