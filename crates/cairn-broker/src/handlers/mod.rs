//! One module per API family: decode → validate → call → encode. This file routes a frame to its
//! handler and turns the typed response back into bytes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;

use cairn_auth::{Operation, ResourceType};

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

    macro_rules! route {
        ($($k:ident => $m:ident :: $f:ident),* $(,)?) => {
            match body {
                $(Request::$k(req) => {
                    let resp = $m::$f(&ctx, req).await;
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
                Request::Produce(req) => match produce::handle(&ctx, req).await {
                    Some(resp) => Some(encode(key, version, correlation_id, &resp)?),
                    None => None,
                },
            }
        };
    }
    let resp = route! {
        ApiVersions => api_versions::handle,
        Metadata => metadata::handle,
        Fetch => fetch::handle,
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
        WriteTxnMarkers => txn_admin::write_txn_markers,
        CreateAcls => security::create_acls,
        DescribeAcls => security::describe_acls,
        DeleteAcls => security::delete_acls,
        DescribeUserScramCredentials => security::describe_scram,
        AlterUserScramCredentials => security::alter_scram,
        AlterConfigs => alter_configs::alter_configs,
        IncrementalAlterConfigs => alter_configs::incremental_alter_configs,
        ListConfigResources => alter_configs::list_config_resources,
    };
    state.metrics.request(key, started.elapsed());
    Ok(resp)
}

/// Shorthand for the crate's string type.
pub fn sb(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}
