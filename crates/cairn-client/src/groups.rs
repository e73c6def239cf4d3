//! Consumer-group requests: finding the coordinator, the classic membership
//! round (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), offset commits and
//! fetches, and the consumer protocol's subscription and assignment payloads.
//!
//! The membership calls live on [`Connection`] because a broker answers the
//! requests of one connection in order: a member parked in JoinGroup would
//! hold up anything else sent on its connection, so each member needs its own.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;

use crate::client::{BrokerInfo, Client};
use crate::connection::Connection;
use crate::error::{within, Error, Result};

/// OffsetCommit v10 names topics by id; this client uses names.
const OFFSET_COMMIT_MAX_VERSION: i16 = 9;
/// OffsetFetch v10 names topics by id; v8 and v9 carry a list of groups.
const OFFSET_FETCH_MAX_VERSION: i16 = 9;
/// Time allowed for group requests that the broker answers at once.
const GROUP_REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// How long FindCoordinator is retried while the broker says the
/// coordinator is not available yet (it creates `__consumer_offsets` first).
const COORDINATOR_WAIT: Duration = Duration::from_secs(10);

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn group_id(s: &str) -> GroupId {
    GroupId(sb(s))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(sb(s))
}

impl Client {
    /// Asks the bootstrap broker which broker coordinates `group`, retrying
    /// for a while on COORDINATOR_NOT_AVAILABLE (a broker answers that while
    /// it creates or loads `__consumer_offsets`).
    pub async fn find_coordinator(&self, group: &str) -> Result<BrokerInfo> {
        let deadline = Instant::now() + COORDINATOR_WAIT;
        loop {
            let conn = self.bootstrap_connection().await?;
            match conn.find_coordinator(group).await {
                Err(e)
                    if e.kafka_error() == Some(ResponseError::CoordinatorNotAvailable)
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// A connection to the coordinator of `group`, shared with other users
    /// of this client. Members that block in JoinGroup should open their own
    /// with [`Connection::connect`] to the address of [`Client::find_coordinator`].
    pub async fn coordinator_connection(&self, group: &str) -> Result<Arc<Connection>> {
        let coordinator = self.find_coordinator(group).await?;
        if !self.metadata().brokers.contains_key(&coordinator.node_id) {
            self.refresh_metadata(None).await?;
        }
        self.broker_connection(coordinator.node_id).await
    }
}

/// One offset as committed or fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionOffset {
    pub partition: i32,
    /// -1 when the group has no offset for the partition.
    pub offset: i64,
}

/// What a JoinGroup round gave back.
#[derive(Clone, Debug)]
pub struct Joined {
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// This member's id, assigned by the coordinator on first join.
    pub member_id: String,
    /// Every member with its protocol metadata; only the leader gets this.
    pub members: Vec<JoinedMember>,
    /// Whether the coordinator first answered MEMBER_ID_REQUIRED, which
    /// costs one more round trip.
    pub member_id_required: bool,
}

impl Joined {
    pub fn is_leader(&self) -> bool {
        self.leader == self.member_id
    }
}

#[derive(Clone, Debug)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The parts of a JoinGroup request a member chooses.
#[derive(Clone, Debug)]
pub struct JoinGroupParams {
    pub group_id: String,
    /// Empty on the first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    /// Protocol names with their metadata, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// Highest JoinGroup version to use (MEMBER_ID_REQUIRED exists from v4).
    pub max_version: i16,
}

impl Connection {
    /// FindCoordinator for one group; batched form from v4.
    pub async fn find_coordinator(&self, group: &str) -> Result<BrokerInfo> {
        self.find_coordinator_of(0, group, || format!("find coordinator for {group}"))
            .await
    }

    /// FindCoordinator for one key of a type (0 group, 1 transactional id).
    pub(crate) async fn find_coordinator_of(
        &self,
        key_type: i8,
        key: &str,
        what: impl Fn() -> String,
    ) -> Result<BrokerInfo> {
        let version = self.version_for::<FindCoordinatorRequest>()?;
        if version < 1 && key_type != 0 {
            return Err(Error::Protocol(format!(
                "{}: the broker's FindCoordinator v0 knows consumer groups only",
                what()
            )));
        }
        let mut req = FindCoordinatorRequest::default().with_key_type(key_type);
        if version >= 4 {
            req = req.with_coordinator_keys(vec![sb(key)]);
        } else {
            req = req.with_key(sb(key));
        }
        let resp = within(
            GROUP_REQUEST_LIMIT,
            &what,
            self.send_versioned(req, version),
        )
        .await?;
        if version >= 4 {
            let c = resp
                .coordinators
                .into_iter()
                .find(|c| c.key.as_str() == key)
                .ok_or_else(|| Error::Protocol(format!("{}: key missing", what())))?;
            Error::check_code(c.error_code, c.error_message.as_deref(), what)?;
            Ok(BrokerInfo {
                node_id: c.node_id.0,
                host: c.host.to_string(),
                port: c.port,
                rack: None,
            })
        } else {
            Error::check_code(resp.error_code, resp.error_message.as_deref(), what)?;
            Ok(BrokerInfo {
                node_id: resp.node_id.0,
                host: resp.host.to_string(),
                port: resp.port,
                rack: None,
            })
        }
    }

    /// Writes an OffsetCommit and returns a future for its outcome, so
    /// several commits can be in flight. The outcome is an error if any
    /// partition was refused.
    pub async fn submit_commit_offsets(
        &self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        topic: &str,
        offsets: &[PartitionOffset],
    ) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
        let version = self.version_at_most::<OffsetCommitRequest>(OFFSET_COMMIT_MAX_VERSION)?;
        let req = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(generation_id)
            .with_member_id(sb(member_id))
            .with_retention_time_ms(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|o| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(o.partition)
                                .with_committed_offset(o.offset)
                                .with_committed_leader_epoch(-1)
                        })
                        .collect(),
                )]);
        let pending = self.submit_versioned(req, version).await?;
        let (group, topic) = (group.to_string(), topic.to_string());
        Ok(async move {
            let what = || format!("commit offsets of {group} for {topic}");
            let resp = within(GROUP_REQUEST_LIMIT, what, pending).await?;
            commit_outcome(&resp, &group, &topic)
        })
    }

    /// OffsetCommit that waits for its answer.
    pub async fn commit_offsets(
        &self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        topic: &str,
        offsets: &[PartitionOffset],
    ) -> Result<()> {
        self.submit_commit_offsets(group, generation_id, member_id, topic, offsets)
            .await?
            .await
    }

    /// The group's committed offsets for some partitions of one topic, in
    /// the order asked; -1 where nothing is committed.
    pub async fn fetch_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<Vec<PartitionOffset>> {
        let version = self.version_at_most::<OffsetFetchRequest>(OFFSET_FETCH_MAX_VERSION)?;
        let mut req = OffsetFetchRequest::default();
        if version >= 8 {
            req = req.with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_member_epoch(-1)
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(partitions.to_vec())]))]);
        } else {
            req = req.with_group_id(group_id(group)).with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(partitions.to_vec()),
            ]));
        }
        let what = || format!("fetch offsets of {group} for {topic}");
        let resp = within(GROUP_REQUEST_LIMIT, what, self.send_versioned(req, version)).await?;
        // (partition, offset, error) in whichever shape the version uses.
        let found: Vec<(i32, i64, i16)> = if version >= 8 {
            let g = resp
                .groups
                .into_iter()
                .find(|g| g.group_id.0.as_str() == group)
                .ok_or_else(|| Error::Protocol(format!("{}: group missing", what())))?;
            Error::check_code(g.error_code, None, what)?;
            g.topics
                .into_iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| t.partitions)
                .map(|p| (p.partition_index, p.committed_offset, p.error_code))
                .collect()
        } else {
            if version >= 2 {
                Error::check_code(resp.error_code, None, what)?;
            }
            resp.topics
                .into_iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| t.partitions)
                .map(|p| (p.partition_index, p.committed_offset, p.error_code))
                .collect()
        };
        partitions
            .iter()
            .map(|&partition| {
                let &(_, offset, code) =
                    found.iter().find(|f| f.0 == partition).ok_or_else(|| {
                        Error::Protocol(format!("{}: partition {partition} missing", what()))
                    })?;
                Error::check_code(code, None, || format!("{} partition {partition}", what()))?;
                Ok(PartitionOffset { partition, offset })
            })
            .collect()
    }

    /// One JoinGroup round. When the coordinator answers MEMBER_ID_REQUIRED
    /// it joins again at once with the id it was given, as Kafka's clients
    /// do. The broker holds the answer until the rebalance completes, so the
    /// wait is bounded by the rebalance timeout plus some slack.
    pub async fn join_group(&self, params: &JoinGroupParams) -> Result<Joined> {
        let version = self.version_at_most::<JoinGroupRequest>(params.max_version)?;
        let limit =
            Duration::from_millis(params.rebalance_timeout_ms.max(0) as u64) + GROUP_REQUEST_LIMIT;
        let mut member_id = params.member_id.clone();
        let mut member_id_required = false;
        loop {
            let req = JoinGroupRequest::default()
                .with_group_id(group_id(&params.group_id))
                .with_session_timeout_ms(params.session_timeout_ms)
                .with_rebalance_timeout_ms(params.rebalance_timeout_ms)
                .with_member_id(sb(&member_id))
                .with_group_instance_id(params.group_instance_id.as_deref().map(sb))
                .with_protocol_type(sb(&params.protocol_type))
                .with_protocols(
                    params
                        .protocols
                        .iter()
                        .map(|(name, meta)| {
                            JoinGroupRequestProtocol::default()
                                .with_name(sb(name))
                                .with_metadata(meta.clone())
                        })
                        .collect(),
                );
            let what = || format!("join group {}", params.group_id);
            let resp = within(limit, what, self.send_versioned(req, version)).await?;
            if resp.error_code == ResponseError::MemberIdRequired.code() && !member_id_required {
                member_id = resp.member_id.to_string();
                member_id_required = true;
                continue;
            }
            Error::check_code(resp.error_code, None, what)?;
            return Ok(Joined {
                generation_id: resp.generation_id,
                protocol_name: resp.protocol_name.map(|p| p.to_string()),
                leader: resp.leader.to_string(),
                member_id: resp.member_id.to_string(),
                members: resp
                    .members
                    .into_iter()
                    .map(|m| JoinedMember {
                        member_id: m.member_id.to_string(),
                        group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                        metadata: m.metadata,
                    })
                    .collect(),
                member_id_required,
            });
        }
    }

    /// SyncGroup: the leader hands in every member's assignment, the others
    /// an empty list; each gets its own assignment back. Waits at most
    /// `limit` (the broker holds followers until the leader has synced).
    #[allow(clippy::too_many_arguments)]
    pub async fn sync_group(
        &self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        protocol_type: &str,
        protocol_name: &str,
        assignments: Vec<(String, Bytes)>,
        max_version: i16,
        limit: Duration,
    ) -> Result<Bytes> {
        let version = self.version_at_most::<SyncGroupRequest>(max_version)?;
        let req = SyncGroupRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(generation_id)
            .with_member_id(sb(member_id))
            .with_protocol_type(Some(sb(protocol_type)))
            .with_protocol_name(Some(sb(protocol_name)))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(sb(&m))
                            .with_assignment(a)
                    })
                    .collect(),
            );
        let what = || format!("sync group {group}");
        let resp = within(limit, what, self.send_versioned(req, version)).await?;
        Error::check_code(resp.error_code, None, what)?;
        Ok(resp.assignment)
    }

    /// Heartbeat; REBALANCE_IN_PROGRESS comes back as that Kafka error.
    pub async fn heartbeat(
        &self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        max_version: i16,
    ) -> Result<()> {
        let version = self.version_at_most::<HeartbeatRequest>(max_version)?;
        let req = HeartbeatRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id(generation_id)
            .with_member_id(sb(member_id));
        let what = || format!("heartbeat to group {group}");
        let resp = within(GROUP_REQUEST_LIMIT, what, self.send_versioned(req, version)).await?;
        Error::check_code(resp.error_code, None, what)
    }

    /// LeaveGroup for this member (batched form from v3).
    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        let version = self.version_for::<LeaveGroupRequest>()?;
        let mut req = LeaveGroupRequest::default().with_group_id(group_id(group));
        if version >= 3 {
            req = req.with_members(vec![MemberIdentity::default().with_member_id(sb(member_id))]);
        } else {
            req = req.with_member_id(sb(member_id));
        }
        let what = || format!("leave group {group}");
        let resp = within(GROUP_REQUEST_LIMIT, what, self.send_versioned(req, version)).await?;
        Error::check_code(resp.error_code, None, what)?;
        for m in &resp.members {
            Error::check_code(m.error_code, None, what)?;
        }
        Ok(())
    }
}

fn commit_outcome(resp: &OffsetCommitResponse, group: &str, topic: &str) -> Result<()> {
    for t in &resp.topics {
        for p in &t.partitions {
            Error::check_code(p.error_code, None, || {
                format!(
                    "commit offsets of {group} for {}/{}",
                    t.name.0.as_str(),
                    p.partition_index
                )
            })?;
        }
    }
    if resp.topics.iter().all(|t| t.name.0.as_str() != topic) {
        return Err(Error::Protocol(format!(
            "commit offsets of {group}: topic {topic} missing from the answer"
        )));
    }
    Ok(())
}

/// Version of the consumer-protocol payloads this client writes. v0 carries
/// just the topics (and the partitions, for an assignment), which every
/// Kafka client and broker reads.
const CONSUMER_PROTOCOL_VERSION: i16 = 0;

/// JoinGroup metadata of a consumer subscribed to `topics`.
pub fn encode_subscription(topics: &[&str]) -> Result<Bytes> {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| sb(t)).collect());
    encode_versioned(&sub)
}

/// Topics of a consumer's JoinGroup metadata (any version).
pub fn decode_subscription(mut data: Bytes) -> Result<Vec<String>> {
    let version = read_version(&mut data, "subscription")?;
    let sub = ConsumerProtocolSubscription::decode(&mut data, version.min(3))
        .map_err(|e| Error::Protocol(format!("bad consumer subscription: {e}")))?;
    Ok(sub.topics.iter().map(|t| t.to_string()).collect())
}

/// SyncGroup assignment giving a member these partitions.
pub fn encode_assignment(partitions: &[(String, Vec<i32>)]) -> Result<Bytes> {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .map(|(t, ps)| {
                AssignedPartitions::default()
                    .with_topic(topic_name(t))
                    .with_partitions(ps.clone())
            })
            .collect(),
    );
    encode_versioned(&a)
}

/// Partitions of a SyncGroup assignment. An empty payload is an empty
/// assignment (the broker sends that to members the leader left out).
pub fn decode_assignment(mut data: Bytes) -> Result<Vec<(String, Vec<i32>)>> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let version = read_version(&mut data, "assignment")?;
    let a = ConsumerProtocolAssignment::decode(&mut data, version.min(3))
        .map_err(|e| Error::Protocol(format!("bad consumer assignment: {e}")))?;
    Ok(a.assigned_partitions
        .into_iter()
        .map(|tp| (tp.topic.0.to_string(), tp.partitions))
        .collect())
}

fn encode_versioned<M: Encodable>(m: &M) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    m.encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| Error::Protocol(format!("cannot encode consumer protocol data: {e}")))?;
    Ok(buf.freeze())
}

fn read_version(data: &mut Bytes, what: &str) -> Result<i16> {
    if data.remaining() < 2 {
        return Err(Error::Protocol(format!(
            "consumer {what} of {} bytes has no version",
            data.len()
        )));
    }
    let v = data.get_i16();
    if v < 0 {
        return Err(Error::Protocol(format!("consumer {what} version {v}")));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_and_assignment_round_trip() {
        let sub = encode_subscription(&["a", "b"]).unwrap();
        assert_eq!(&sub[..2], &[0, 0]);
        assert_eq!(decode_subscription(sub).unwrap(), ["a", "b"]);

        let parts = vec![("a".to_string(), vec![0, 1, 2]), ("b".to_string(), vec![])];
        let a = encode_assignment(&parts).unwrap();
        assert_eq!(decode_assignment(a).unwrap(), parts);
        assert!(decode_assignment(Bytes::new()).unwrap().is_empty());
        assert!(decode_subscription(Bytes::from_static(&[0])).is_err());
    }

    #[test]
    fn newer_subscriptions_decode() {
        // A v1 subscription (owned partitions), as newer consumers send.
        let sub = ConsumerProtocolSubscription::default()
            .with_topics(vec![sb("t")])
            .with_owned_partitions(vec![
                kafka_protocol::messages::consumer_protocol_subscription::TopicPartition::default()
                    .with_topic(topic_name("t"))
                    .with_partitions(vec![3]),
            ]);
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        sub.encode(&mut buf, 1).unwrap();
        assert_eq!(decode_subscription(buf.freeze()).unwrap(), ["t"]);
    }
}
