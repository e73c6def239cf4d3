//! A convenience client over [`Connection`]: metadata, topic creation,
//! produce, fetch and offset lookups against whichever broker leads a partition.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use kafka_protocol::ResponseError;

use crate::connection::{Connection, DEFAULT_CONNECT_TIMEOUT};
use crate::error::{within, Error, Result};
use crate::records::{decode_records, encode_batch, ConsumedRecord, ProduceRecord};
use crate::security::Security;

/// Produce v13 and Fetch v13 name topics by id only; this client addresses
/// topics by name, so it stays at or below v12 for both.
const PRODUCE_MAX_VERSION: i16 = 12;
const FETCH_MAX_VERSION: i16 = 12;

/// Default for [`Client::set_request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CLIENT_TIMEOUT_SLACK: Duration = Duration::from_secs(5);

/// `list_offsets` timestamp meaning "the next offset to be written".
pub const LATEST_OFFSET: i64 = -1;
/// `list_offsets` timestamp meaning "the first offset still in the log".
pub const EARLIEST_OFFSET: i64 = -2;

/// A broker as advertised in metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, suitable for [`Connection::connect`].
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition as advertised in metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// Node id of the leader, or -1 when there is none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error: Option<ResponseError>,
}

/// One topic as advertised in metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: uuid::Uuid,
    pub internal: bool,
    pub error: Option<ResponseError>,
    /// Sorted by partition number.
    pub partitions: Vec<PartitionInfo>,
}

/// What the client knows about the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
}

impl ClusterMetadata {
    fn from_response(resp: MetadataResponse) -> Self {
        let brokers = resp
            .brokers
            .into_iter()
            .map(|b| {
                let info = BrokerInfo {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                };
                (info.node_id, info)
            })
            .collect();
        let topics = resp
            .topics
            .into_iter()
            .filter_map(|t| {
                let name = t.name?.0.to_string();
                let mut partitions: Vec<PartitionInfo> = t
                    .partitions
                    .into_iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.into_iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.into_iter().map(|b| b.0).collect(),
                        error: ResponseError::try_from_code(p.error_code),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                let info = TopicInfo {
                    name: name.clone(),
                    topic_id: t.topic_id,
                    internal: t.is_internal,
                    error: ResponseError::try_from_code(t.error_code),
                    partitions,
                };
                Some((name, info))
            })
            .collect();
        ClusterMetadata {
            cluster_id: resp.cluster_id.map(|c| c.to_string()),
            controller_id: resp.controller_id.0,
            brokers,
            topics,
        }
    }

    /// Leader node id of a partition, if one is known.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.topics
            .get(topic)?
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .map(|p| p.leader)
            .filter(|&l| l >= 0)
    }
}

/// The broker's answer to a produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceAck {
    /// Offset given to the first record, or -1 with acks=0.
    pub base_offset: i64,
    /// Append time when the topic uses log-append time, else -1.
    pub log_append_time_ms: i64,
}

/// Raw result of a fetch: undecoded record batches.
#[derive(Clone, Debug)]
pub struct RawFetch {
    pub high_watermark: i64,
    /// The last stable offset, when the broker sends one (Fetch v4+).
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// With read_committed: (producer id, first offset) of the aborted
    /// transactions in the fetched range.
    pub aborted_transactions: Vec<(i64, i64)>,
    pub records: Bytes,
}

/// Decoded result of a fetch.
#[derive(Clone, Debug)]
pub struct FetchResult {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Vec<ConsumedRecord>,
    /// Size of the record data the broker sent, whole batches included.
    pub bytes: usize,
}

impl FetchResult {
    /// Offset to fetch from next: one past the last record returned.
    pub fn next_offset(&self, requested: i64) -> i64 {
        self.records.last().map_or(requested, |r| r.offset + 1)
    }
}

/// A client bootstrapped from one broker address.
pub struct Client {
    bootstrap_addr: String,
    client_id: String,
    bootstrap: tokio::sync::Mutex<Arc<Connection>>,
    connections: tokio::sync::Mutex<HashMap<i32, Arc<Connection>>>,
    metadata: Mutex<ClusterMetadata>,
    request_timeout: Duration,
    connect_timeout: Duration,
    security: Security,
}

impl Client {
    /// Connects to `bootstrap` and loads metadata for all topics.
    pub async fn connect(bootstrap: &str, client_id: &str) -> Result<Client> {
        Self::connect_timeout(bootstrap, client_id, DEFAULT_CONNECT_TIMEOUT).await
    }

    /// [`Self::connect`] with a limit for opening each connection (TCP
    /// connect plus the ApiVersions handshake), here and for later ones.
    pub async fn connect_timeout(
        bootstrap: &str,
        client_id: &str,
        connect_timeout: Duration,
    ) -> Result<Client> {
        Self::connect_with(bootstrap, client_id, connect_timeout, Security::default()).await
    }

    /// [`Self::connect_timeout`] with TLS and SASL as `security` says, for
    /// this connection and every later one.
    pub async fn connect_with(
        bootstrap: &str,
        client_id: &str,
        connect_timeout: Duration,
        security: Security,
    ) -> Result<Client> {
        let conn =
            Connection::connect_with(bootstrap, client_id, connect_timeout, &security).await?;
        let client = Client {
            bootstrap_addr: bootstrap.to_string(),
            client_id: client_id.to_string(),
            bootstrap: tokio::sync::Mutex::new(Arc::new(conn)),
            connections: tokio::sync::Mutex::new(HashMap::new()),
            metadata: Mutex::new(ClusterMetadata::default()),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout,
            security,
        };
        client.refresh_metadata(None).await?;
        Ok(client)
    }

    /// Timeout put into Produce, CreateTopics and ListOffsets for the broker;
    /// the client itself waits a little longer than this for any answer, so
    /// that the broker's own timeout error arrives first.
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    pub(crate) fn timeout_ms(&self) -> i32 {
        self.request_timeout.as_millis().min(i32::MAX as u128) as i32
    }

    pub(crate) fn wait_limit(&self) -> Duration {
        self.request_timeout + (self.request_timeout / 2).min(MAX_CLIENT_TIMEOUT_SLACK)
    }

    /// The address this client was bootstrapped from.
    pub fn bootstrap_addr(&self) -> &str {
        &self.bootstrap_addr
    }

    /// The client id this client sends.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The limit used when opening connections.
    pub fn connect_limit(&self) -> Duration {
        self.connect_timeout
    }

    /// How this client's connections are secured.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// Opens a new, unshared connection to `addr` with this client's id,
    /// connect limit and security (for group members, which block in JoinGroup).
    pub async fn open(&self, addr: &str) -> Result<Connection> {
        Connection::connect_with(addr, &self.client_id, self.connect_timeout, &self.security).await
    }

    /// The connection to the bootstrap broker, reopened if it has failed.
    pub async fn bootstrap_connection(&self) -> Result<Arc<Connection>> {
        let mut conn = self.bootstrap.lock().await;
        if conn.is_closed() {
            *conn = Arc::new(self.open(&self.bootstrap_addr).await?);
        }
        Ok(conn.clone())
    }

    /// A snapshot of the metadata learned so far.
    pub fn metadata(&self) -> ClusterMetadata {
        self.lock_metadata().clone()
    }

    fn lock_metadata(&self) -> std::sync::MutexGuard<'_, ClusterMetadata> {
        self.metadata.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the bootstrap broker for metadata (all topics when `topics` is
    /// `None`) without touching the cached copy.
    pub async fn fetch_metadata(
        &self,
        topics: Option<&[&str]>,
        allow_auto_topic_creation: bool,
    ) -> Result<ClusterMetadata> {
        let conn = self.bootstrap_connection().await?;
        let version = conn.version_for::<MetadataRequest>()?;
        let topics = match topics {
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                    .collect(),
            ),
            // v0 has no null list; an empty one means "all topics" there.
            None if version == 0 => Some(Vec::new()),
            None => None,
        };
        let req = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(allow_auto_topic_creation);
        let resp = within(
            self.wait_limit(),
            || "metadata".to_string(),
            conn.send_versioned(req, version),
        )
        .await?;
        Error::check_code(resp.error_code, None, || "metadata".to_string())?;
        Ok(ClusterMetadata::from_response(resp))
    }

    /// Fetches metadata and merges it into the cache: brokers are replaced,
    /// topics that were asked about are replaced.
    pub async fn refresh_metadata(&self, topics: Option<&[&str]>) -> Result<ClusterMetadata> {
        let fresh = self.fetch_metadata(topics, false).await?;
        let mut cached = self.lock_metadata();
        cached.cluster_id = fresh.cluster_id.clone();
        cached.controller_id = fresh.controller_id;
        cached.brokers = fresh.brokers.clone();
        match topics {
            None => cached.topics = fresh.topics.clone(),
            Some(names) => {
                for name in names {
                    match fresh.topics.get(*name) {
                        Some(t) => {
                            cached.topics.insert(t.name.clone(), t.clone());
                        }
                        None => {
                            cached.topics.remove(*name);
                        }
                    }
                }
            }
        }
        Ok(cached.clone())
    }

    /// Creates a topic. `replication_factor` -1 leaves it to the broker default.
    /// An existing topic is reported as `TopicAlreadyExists`.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(self.timeout_ms());
        let conn = self.controller_connection().await?;
        let resp = within(
            self.wait_limit(),
            || format!("create topic {name}"),
            conn.send(req),
        )
        .await?;
        let result = resp
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .ok_or_else(|| Error::Protocol(format!("CreateTopics response lacks topic {name}")))?;
        Error::check_code(result.error_code, result.error_message.as_deref(), || {
            format!("create topic {name}")
        })
    }

    /// Polls metadata until every partition of `topic` has a leader.
    pub async fn wait_for_topic(&self, topic: &str, timeout: Duration) -> Result<TopicInfo> {
        let deadline = Instant::now() + timeout;
        loop {
            let meta = self.refresh_metadata(Some(&[topic])).await?;
            let ready = meta.topics.get(topic).filter(|t| {
                t.error.is_none()
                    && !t.partitions.is_empty()
                    && t.partitions
                        .iter()
                        .all(|p| p.leader >= 0 && p.error.is_none())
            });
            if let Some(t) = ready {
                return Ok(t.clone());
            }
            if Instant::now() >= deadline {
                return Err(Error::Metadata(format!(
                    "topic {topic} has no leader for every partition after {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Connection to a broker by node id, opened on first use.
    pub async fn broker_connection(&self, node_id: i32) -> Result<Arc<Connection>> {
        let mut conns = self.connections.lock().await;
        if let Some(conn) = conns.get(&node_id).filter(|c| !c.is_closed()) {
            return Ok(conn.clone());
        }
        let (broker, broker_count) = {
            let meta = self.lock_metadata();
            (meta.brokers.get(&node_id).cloned(), meta.brokers.len())
        };
        let broker = broker
            .ok_or_else(|| Error::Metadata(format!("broker {node_id} is not in metadata")))?;
        let addr = broker.addr();
        let conn = if addr == self.bootstrap_addr {
            self.bootstrap_connection().await?
        } else {
            match self.open(&addr).await {
                Ok(conn) => Arc::new(conn),
                // A lone broker often advertises a name this host cannot
                // reach (a container name, say); the bootstrap address is
                // known to reach it.
                Err(e @ Error::Connect { .. }) if broker_count == 1 => {
                    tracing::debug!("advertised address failed ({e}); using bootstrap");
                    self.bootstrap_connection().await?
                }
                Err(e) => return Err(e),
            }
        };
        conns.insert(node_id, conn.clone());
        Ok(conn)
    }

    /// Connection to the leader of a partition, refreshing metadata once if
    /// the leader is unknown.
    pub async fn leader_connection(&self, topic: &str, partition: i32) -> Result<Arc<Connection>> {
        let known = self.lock_metadata().leader(topic, partition);
        let leader = match known {
            Some(l) => l,
            None => self
                .refresh_metadata(Some(&[topic]))
                .await?
                .leader(topic, partition)
                .ok_or_else(|| {
                    Error::Metadata(format!("no leader known for {topic}/{partition}"))
                })?,
        };
        self.broker_connection(leader).await
    }

    pub(crate) async fn controller_connection(&self) -> Result<Arc<Connection>> {
        let controller = {
            let meta = self.lock_metadata();
            Some(meta.controller_id).filter(|id| meta.brokers.contains_key(id))
        };
        match controller {
            Some(id) => self.broker_connection(id).await,
            None => self.bootstrap_connection().await,
        }
    }

    /// Encodes `records` into one batch and produces it.
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        records: &[ProduceRecord],
        acks: i16,
    ) -> Result<ProduceAck> {
        let batch = encode_batch(records, Compression::None)?;
        self.produce_batch(topic, partition, batch, acks).await
    }

    /// Produces an already encoded record batch and waits for the ack.
    pub async fn produce_batch(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
    ) -> Result<ProduceAck> {
        self.submit_produce(topic, partition, batch, acks)
            .await?
            .await
    }

    /// Writes a produce request and returns a future for its ack without
    /// waiting, so callers can keep several produces in flight.
    pub async fn submit_produce(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
    ) -> Result<impl Future<Output = Result<ProduceAck>> + Send + 'static> {
        self.submit_produce_as(topic, partition, batch, acks, None)
            .await
    }

    /// [`Self::submit_produce`] naming the producer's transactional id, which
    /// a broker requires with transactional batches.
    pub async fn submit_produce_as(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
        transactional_id: Option<&str>,
    ) -> Result<impl Future<Output = Result<ProduceAck>> + Send + 'static> {
        let conn = self.leader_connection(topic, partition).await?;
        let version = conn.version_at_most::<ProduceRequest>(PRODUCE_MAX_VERSION)?;
        let req = ProduceRequest::default()
            .with_transactional_id(
                transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_string()))),
            )
            .with_acks(acks)
            .with_timeout_ms(self.timeout_ms())
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let pending = conn.submit_versioned(req, version).await?;
        let topic = topic.to_string();
        let limit = self.wait_limit();
        Ok(async move {
            let what = || format!("produce {topic}/{partition}");
            let resp = within(limit, what, pending).await?;
            if acks == 0 {
                return Ok(ProduceAck {
                    base_offset: -1,
                    log_append_time_ms: -1,
                });
            }
            produce_ack(&resp, &topic, partition)
        })
    }

    /// Fetches from one partition and returns the undecoded batches.
    pub async fn fetch_raw(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> Result<RawFetch> {
        self.fetch_raw_isolated(topic, partition, offset, max_bytes, max_wait_ms, 0)
            .await
    }

    /// [`Self::fetch_raw`] with an isolation level: 0 read_uncommitted, 1
    /// read_committed (data below the last stable offset only, with the
    /// aborted transactions of the range).
    pub async fn fetch_raw_isolated(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
        isolation_level: i8,
    ) -> Result<RawFetch> {
        let conn = self.leader_connection(topic, partition).await?;
        let version = conn.version_at_most::<FetchRequest>(FETCH_MAX_VERSION)?;
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(isolation_level)
            // Session id 0 with epoch -1: a plain full fetch, no session.
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max_bytes)])]);
        let context = || format!("fetch {topic}/{partition} at {offset}");
        let limit = self.wait_limit() + Duration::from_millis(max_wait_ms.max(0) as u64);
        let resp = within(limit, context, conn.send_versioned(req, version)).await?;
        Error::check_code(resp.error_code, None, context)?;
        let data = resp
            .responses
            .into_iter()
            .filter(|t| t.topic.0.as_str() == topic)
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| Error::Protocol(format!("{}: partition missing", context())))?;
        Error::check_code(data.error_code, None, context)?;
        Ok(RawFetch {
            high_watermark: data.high_watermark,
            last_stable_offset: data.last_stable_offset,
            log_start_offset: data.log_start_offset,
            aborted_transactions: data
                .aborted_transactions
                .unwrap_or_default()
                .into_iter()
                .map(|a| (a.producer_id.0, a.first_offset))
                .collect(),
            records: data.records.unwrap_or_default(),
        })
    }

    /// Fetches from one partition and decodes the records at or after `offset`.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: i32,
        max_wait_ms: i32,
    ) -> Result<FetchResult> {
        let raw = self
            .fetch_raw(topic, partition, offset, max_bytes, max_wait_ms)
            .await?;
        Ok(FetchResult {
            high_watermark: raw.high_watermark,
            log_start_offset: raw.log_start_offset,
            records: decode_records(&raw.records, offset)?,
            bytes: raw.records.len(),
        })
    }

    /// The offset for a timestamp: [`LATEST_OFFSET`], [`EARLIEST_OFFSET`] or
    /// milliseconds since the epoch. -1 when no record is that recent.
    pub async fn list_offsets(&self, topic: &str, partition: i32, timestamp: i64) -> Result<i64> {
        let conn = self.leader_connection(topic, partition).await?;
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]);
        let context = || format!("list offsets {topic}/{partition}");
        let resp = within(self.wait_limit(), context, conn.send(req)).await?;
        let p = resp
            .topics
            .into_iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| Error::Protocol(format!("{}: partition missing", context())))?;
        Error::check_code(p.error_code, None, context)?;
        Ok(p.offset)
    }
}

fn produce_ack(resp: &ProduceResponse, topic: &str, partition: i32) -> Result<ProduceAck> {
    let context = || format!("produce {topic}/{partition}");
    let p = resp
        .responses
        .iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.index == partition)
        .ok_or_else(|| Error::Protocol(format!("{}: partition missing", context())))?;
    Error::check_code(p.error_code, p.error_message.as_deref(), context)?;
    Ok(ProduceAck {
        base_offset: p.base_offset,
        log_append_time_ms: p.log_append_time_ms,
    })
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeBroker, FakeConfig};
    use kafka_protocol::messages::ApiKey;

    fn values(records: &[ConsumedRecord]) -> Vec<(i64, String)> {
        records
            .iter()
            .map(|r| {
                let v = r.value.as_deref().unwrap_or_default();
                (r.offset, String::from_utf8_lossy(v).into_owned())
            })
            .collect()
    }

    #[tokio::test]
    async fn create_produce_fetch_and_list_offsets() {
        let broker = FakeBroker::start(FakeConfig::default()).await;
        let client = Client::connect(&broker.addr, "test-client").await.unwrap();
        assert!(client.metadata().topics.is_empty());

        client
            .create_topic("events", 2, 1, &[("retention.ms", "1000")])
            .await
            .unwrap();
        let err = client.create_topic("events", 2, 1, &[]).await.unwrap_err();
        assert_eq!(err.kafka_error(), Some(ResponseError::TopicAlreadyExists));

        let info = client
            .wait_for_topic("events", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(info.partitions.len(), 2);
        assert_eq!(client.metadata().leader("events", 1), Some(1));

        let first = [
            ProduceRecord::new("a"),
            ProduceRecord::new("b"),
            ProduceRecord::new("c"),
        ];
        let ack = client.produce("events", 1, &first, 1).await.unwrap();
        assert_eq!(ack.base_offset, 0);
        let second = [
            ProduceRecord::new("d").with_key("k"),
            ProduceRecord::new("e"),
        ];
        let ack = client.produce("events", 1, &second, -1).await.unwrap();
        assert_eq!(ack.base_offset, 3);

        let all = client.fetch("events", 1, 0, 1 << 20, 10).await.unwrap();
        assert_eq!(all.high_watermark, 5);
        assert_eq!(
            values(&all.records),
            [(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e")].map(|(o, v)| (o, v.to_string()))
        );
        assert_eq!(all.records[3].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(all.next_offset(0), 5);

        // Offset 4 sits inside the second batch: the record before it is dropped.
        let tail = client.fetch("events", 1, 4, 1 << 20, 10).await.unwrap();
        assert_eq!(values(&tail.records), [(4, "e".to_string())]);

        let empty = client.fetch("events", 0, 0, 1 << 20, 10).await.unwrap();
        assert!(empty.records.is_empty());
        assert_eq!(empty.next_offset(0), 0);

        assert_eq!(
            client
                .list_offsets("events", 1, LATEST_OFFSET)
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            client
                .list_offsets("events", 1, EARLIEST_OFFSET)
                .await
                .unwrap(),
            0
        );

        // Versions stay name-based even though the broker offers topic-id ones.
        let seen = broker.seen();
        let max_of = |api: ApiKey| {
            seen.iter()
                .filter(|s| s.api_key == api as i16)
                .map(|s| s.version)
                .max()
                .unwrap()
        };
        assert_eq!(max_of(ApiKey::Produce), PRODUCE_MAX_VERSION);
        assert_eq!(max_of(ApiKey::Fetch), FETCH_MAX_VERSION);
        assert!(broker.errors().is_empty(), "{:?}", broker.errors());
    }

    #[tokio::test]
    async fn pipelined_produces_get_consecutive_offsets() {
        let broker = FakeBroker::start(FakeConfig::default()).await;
        let client = Client::connect(&broker.addr, "test-client").await.unwrap();
        client.create_topic("p", 1, 1, &[]).await.unwrap();
        let batch = encode_batch(
            &[ProduceRecord::new("x"), ProduceRecord::new("y")],
            Compression::None,
        )
        .unwrap();
        let mut pending = Vec::new();
        for _ in 0..10 {
            pending.push(
                client
                    .submit_produce("p", 0, batch.clone(), 1)
                    .await
                    .unwrap(),
            );
        }
        let mut offsets = Vec::new();
        for p in pending {
            offsets.push(p.await.unwrap().base_offset);
        }
        assert_eq!(offsets, (0..10).map(|i| i * 2).collect::<Vec<i64>>());
    }

    #[tokio::test]
    async fn unanswered_requests_time_out() {
        let config = FakeConfig {
            silent: true,
            ..FakeConfig::default()
        };
        let broker = FakeBroker::start(config).await;
        // Connecting works: the fake still answers ApiVersions, then metadata
        // goes unanswered.
        let conn = Connection::connect(&broker.addr, "test-client")
            .await
            .unwrap();
        let client = Client {
            bootstrap_addr: broker.addr.clone(),
            client_id: "test-client".to_string(),
            bootstrap: tokio::sync::Mutex::new(Arc::new(conn)),
            connections: tokio::sync::Mutex::new(HashMap::new()),
            metadata: Mutex::new(ClusterMetadata::default()),
            request_timeout: Duration::from_millis(100),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            security: Security::default(),
        };
        let started = Instant::now();
        let err = client.fetch_metadata(None, false).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn partition_errors_are_typed() {
        let broker = FakeBroker::start(FakeConfig::default()).await;
        let client = Client::connect(&broker.addr, "test-client").await.unwrap();
        let err = client
            .produce("missing", 0, &[ProduceRecord::new("v")], 1)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Metadata(_)), "{err}");
        let meta = client
            .fetch_metadata(Some(&["missing"]), false)
            .await
            .unwrap();
        assert_eq!(
            meta.topics["missing"].error,
            Some(ResponseError::UnknownTopicOrPartition)
        );

        client.create_topic("one", 1, 1, &[]).await.unwrap();
        client
            .wait_for_topic("one", Duration::from_secs(5))
            .await
            .unwrap();
        // Partition 3 does not exist, but the cache knows no leader for it.
        let err = client
            .list_offsets("one", 3, LATEST_OFFSET)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Metadata(_)), "{err}");
    }
}
