//! Administrative requests for operator tools: topic deletion, partition
//! growth and configs; listing, describing and deleting groups; committed
//! offsets of a whole group; and ListOffsets/Fetch over many partitions at
//! once, batched per partition leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::consumer_group_describe_response;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ConsumerGroupDescribeRequest,
    CreatePartitionsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest, ElectLeadersRequest,
    FetchRequest, GroupId, ListGroupsRequest, ListOffsetsRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::client::{topic_name, Client};
use crate::connection::{Connection, ResponseFuture};
use crate::error::{within, Error, Result};
use crate::records::{decode_records, ConsumedRecord};

/// Time allowed for admin requests the broker answers at once.
const ADMIN_REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// OffsetCommit v10 and OffsetFetch v10 name topics by id; this client uses names.
const OFFSETS_MAX_VERSION: i16 = 9;
/// Fetch v13 names topics by id only.
const FETCH_MAX_VERSION: i16 = 12;
/// DescribeConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn code_error(code: i16) -> Option<ResponseError> {
    ResponseError::try_from_code(code)
}

/// One group as ListGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Known only from brokers that speak ListGroups v4 or later.
    pub state: Option<String>,
    /// "classic" or "consumer"; known only from brokers that speak
    /// ListGroups v5 or later.
    pub group_type: Option<String>,
}

/// One group as DescribeGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// GROUP_ID_NOT_FOUND for unknown groups from v6; older versions say
    /// state "Dead" without an error instead.
    pub error: Option<ResponseError>,
    pub state: String,
    pub protocol_type: String,
    /// The chosen protocol (the assignor, for consumers); empty unless Stable.
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// One member of a described group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The member's protocol metadata (a consumer subscription).
    pub metadata: Bytes,
    /// What the leader assigned (a consumer assignment); empty unless Stable.
    pub assignment: Bytes,
}

/// One group as ConsumerGroupDescribe reports it (groups of the consumer
/// protocol, KIP-848).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    /// GROUP_ID_NOT_FOUND for unknown groups and for classic groups.
    pub error: Option<ResponseError>,
    pub error_message: Option<String>,
    /// Empty, Assigning, Reconciling, Stable or Dead.
    pub state: String,
    pub group_epoch: i32,
    /// The group epoch the target assignment was computed at.
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberDescription>,
}

/// One member of a consumer-protocol group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// What the member owns now.
    pub assignment: Vec<AssignedPartitions>,
    /// What the assignor wants it to own.
    pub target_assignment: Vec<AssignedPartitions>,
    /// 0 classic, 1 consumer; `None` before ConsumerGroupDescribe v1.
    pub member_type: Option<i8>,
}

impl ConsumerMemberDescription {
    /// (topic, partition) pairs of the current assignment, sorted.
    pub fn owned(&self) -> Vec<(String, i32)> {
        flatten(&self.assignment)
    }

    /// (topic, partition) pairs of the target assignment, sorted.
    pub fn target(&self) -> Vec<(String, i32)> {
        flatten(&self.target_assignment)
    }
}

fn flatten(a: &[AssignedPartitions]) -> Vec<(String, i32)> {
    let mut out: Vec<(String, i32)> = a
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.clone(), p)))
        .collect();
    out.sort();
    out
}

/// Partitions of one topic in a consumer-protocol assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignedPartitions {
    pub topic_id: uuid::Uuid,
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// One committed offset of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: Option<String>,
}

/// The outcome for one partition of a multi-partition request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOutcome {
    pub topic: String,
    pub partition: i32,
    pub error: Option<ResponseError>,
}

/// One partition's answer to an admin request, with the broker's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionAnswer {
    pub topic: String,
    pub partition: i32,
    pub error: Option<ResponseError>,
    pub message: Option<String>,
}

/// One log dir of a broker, as DescribeLogDirs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDirInfo {
    pub broker: i32,
    pub log_dir: String,
    /// -1 when the broker does not say (DescribeLogDirs below v4).
    pub total_bytes: i64,
    pub usable_bytes: i64,
    pub partitions: Vec<LogDirPartition>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDirPartition {
    pub topic: String,
    pub partition: i32,
    pub size: i64,
    pub offset_lag: i64,
    pub is_future: bool,
}

/// The answer of ListOffsets for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetLookup {
    pub topic: String,
    pub partition: i32,
    /// -1 when no record is as recent as the timestamp asked for.
    pub offset: i64,
    /// Timestamp of the record found, -1 for the earliest/latest queries.
    pub timestamp: i64,
    pub error: Option<ResponseError>,
}

/// One partition of a multi-partition fetch.
#[derive(Clone, Debug)]
pub struct PartitionFetch {
    pub topic: String,
    pub partition: i32,
    pub error: Option<ResponseError>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Records at or after the offset asked for.
    pub records: Vec<ConsumedRecord>,
}

/// A topic config as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub sensitive: bool,
    /// Kafka's ConfigSource: 1 = set on the topic, 2/3 = dynamic broker
    /// config, 4 = static broker config, 5 = the default.
    pub source: i8,
}

impl ConfigEntry {
    /// Whether the value was set on the topic itself (not inherited).
    pub fn is_topic_override(&self) -> bool {
        self.source == 1
    }
}

impl Connection {
    /// DescribeGroups for several groups, in the order asked.
    pub async fn describe_groups(&self, groups: &[&str]) -> Result<Vec<GroupDescription>> {
        let req = DescribeGroupsRequest::default()
            .with_groups(groups.iter().map(|g| GroupId(sb(g))).collect());
        let what = || format!("describe groups {groups:?}");
        let resp = within(ADMIN_REQUEST_LIMIT, what, self.send(req)).await?;
        groups
            .iter()
            .map(|&g| {
                let d = resp
                    .groups
                    .iter()
                    .find(|d| d.group_id.0.as_str() == g)
                    .ok_or_else(|| Error::Protocol(format!("{}: {g} missing", what())))?;
                Ok(GroupDescription {
                    group_id: g.to_string(),
                    error: code_error(d.error_code),
                    state: d.group_state.to_string(),
                    protocol_type: d.protocol_type.to_string(),
                    protocol: d.protocol_data.to_string(),
                    members: d
                        .members
                        .iter()
                        .map(|m| MemberDescription {
                            member_id: m.member_id.to_string(),
                            group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                            client_id: m.client_id.to_string(),
                            client_host: m.client_host.to_string(),
                            metadata: m.member_metadata.clone(),
                            assignment: m.member_assignment.clone(),
                        })
                        .collect(),
                })
            })
            .collect()
    }

    /// ConsumerGroupDescribe for several groups, in the order asked, at the
    /// highest version both sides speak.
    pub async fn describe_consumer_groups(
        &self,
        groups: &[&str],
    ) -> Result<Vec<ConsumerGroupDescription>> {
        let version = self.version_for::<ConsumerGroupDescribeRequest>()?;
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(groups.iter().map(|g| GroupId(sb(g))).collect());
        let what = || format!("describe consumer groups {groups:?}");
        let resp = within(ADMIN_REQUEST_LIMIT, what, self.send_versioned(req, version)).await?;
        let assigned = |a: &consumer_group_describe_response::Assignment| {
            let mut topics: Vec<AssignedPartitions> = a
                .topic_partitions
                .iter()
                .map(|t| {
                    let mut partitions = t.partitions.clone();
                    partitions.sort_unstable();
                    AssignedPartitions {
                        topic_id: t.topic_id,
                        topic: t.topic_name.0.to_string(),
                        partitions,
                    }
                })
                .collect();
            topics.sort_by(|a, b| a.topic.cmp(&b.topic));
            topics
        };
        groups
            .iter()
            .map(|&g| {
                let d = resp
                    .groups
                    .iter()
                    .find(|d| d.group_id.0.as_str() == g)
                    .ok_or_else(|| Error::Protocol(format!("{}: {g} missing", what())))?;
                let mut members: Vec<ConsumerMemberDescription> = d
                    .members
                    .iter()
                    .map(|m| ConsumerMemberDescription {
                        member_id: m.member_id.to_string(),
                        instance_id: m.instance_id.as_ref().map(|i| i.to_string()),
                        rack_id: m.rack_id.as_ref().map(|r| r.to_string()),
                        member_epoch: m.member_epoch,
                        client_id: m.client_id.to_string(),
                        client_host: m.client_host.to_string(),
                        subscribed_topic_names: m
                            .subscribed_topic_names
                            .iter()
                            .map(|t| t.0.to_string())
                            .collect(),
                        subscribed_topic_regex: m
                            .subscribed_topic_regex
                            .as_ref()
                            .map(|r| r.to_string()),
                        assignment: assigned(&m.assignment),
                        target_assignment: assigned(&m.target_assignment),
                        member_type: (version >= 1).then_some(m.member_type),
                    })
                    .collect();
                members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
                Ok(ConsumerGroupDescription {
                    group_id: g.to_string(),
                    error: code_error(d.error_code),
                    error_message: d.error_message.as_ref().map(|m| m.to_string()),
                    state: d.group_state.to_string(),
                    group_epoch: d.group_epoch,
                    assignment_epoch: d.assignment_epoch,
                    assignor: d.assignor_name.to_string(),
                    members,
                })
            })
            .collect()
    }

    /// DeleteGroups; one error (or none) per group, in the order asked.
    pub async fn delete_groups(
        &self,
        groups: &[&str],
    ) -> Result<Vec<(String, Option<ResponseError>)>> {
        let req = DeleteGroupsRequest::default()
            .with_groups_names(groups.iter().map(|g| GroupId(sb(g))).collect());
        let what = || format!("delete groups {groups:?}");
        let resp = within(ADMIN_REQUEST_LIMIT, what, self.send(req)).await?;
        groups
            .iter()
            .map(|&g| {
                let r = resp
                    .results
                    .iter()
                    .find(|r| r.group_id.0.as_str() == g)
                    .ok_or_else(|| Error::Protocol(format!("{}: {g} missing", what())))?;
                Ok((g.to_string(), code_error(r.error_code)))
            })
            .collect()
    }

    /// OffsetDelete for some partitions of one group. A group-level error
    /// (unknown group, group not empty...) is returned as `Err`.
    pub async fn delete_offsets(
        &self,
        group: &str,
        partitions: &[(String, Vec<i32>)],
    ) -> Result<Vec<PartitionOutcome>> {
        let req = OffsetDeleteRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(
                partitions
                    .iter()
                    .map(|(t, ps)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(
                                ps.iter()
                                    .map(|&p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(p)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let what = || format!("delete offsets of group {group}");
        let resp = within(ADMIN_REQUEST_LIMIT, what, self.send(req)).await?;
        Error::check_code(resp.error_code, None, what)?;
        Ok(resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| PartitionOutcome {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    error: code_error(p.error_code),
                })
            })
            .collect())
    }

    /// Every offset the group has committed, sorted by topic and partition.
    pub async fn fetch_all_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>> {
        let version = self.version_at_most::<OffsetFetchRequest>(OFFSETS_MAX_VERSION)?;
        if version < 2 {
            // v1 has no way to ask for "all topics".
            return Err(Error::NoCommonVersion {
                api: kafka_protocol::messages::ApiKey::OffsetFetch,
                client: kafka_protocol::protocol::VersionRange { min: 2, max: 9 },
                broker: self
                    .broker_versions(kafka_protocol::messages::ApiKey::OffsetFetch)
                    .unwrap_or(kafka_protocol::protocol::VersionRange { min: 0, max: 0 }),
            });
        }
        let mut req = OffsetFetchRequest::default();
        if version >= 8 {
            req = req.with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb(group)))
                .with_member_epoch(-1)
                .with_topics(None)]);
        } else {
            req = req.with_group_id(GroupId(sb(group))).with_topics(None);
        }
        let what = || format!("fetch offsets of group {group}");
        let resp = within(ADMIN_REQUEST_LIMIT, what, self.send_versioned(req, version)).await?;
        let mut out = Vec::new();
        let mut push = |topic: &str, partition, offset, metadata: &Option<StrBytes>, code| {
            Error::check_code(code, None, || format!("{} ({topic}/{partition})", what()))?;
            // A partition listed without an offset carries -1; skip it.
            if offset >= 0 {
                out.push(CommittedOffset {
                    topic: topic.to_string(),
                    partition,
                    offset,
                    metadata: metadata.as_ref().map(|m| m.to_string()),
                });
            }
            Ok::<(), Error>(())
        };
        if version >= 8 {
            let g = resp
                .groups
                .iter()
                .find(|g| g.group_id.0.as_str() == group)
                .ok_or_else(|| Error::Protocol(format!("{}: group missing", what())))?;
            Error::check_code(g.error_code, None, what)?;
            for t in &g.topics {
                for p in &t.partitions {
                    push(
                        t.name.0.as_str(),
                        p.partition_index,
                        p.committed_offset,
                        &p.metadata,
                        p.error_code,
                    )?;
                }
            }
        } else {
            Error::check_code(resp.error_code, None, what)?;
            for t in &resp.topics {
                for p in &t.partitions {
                    push(
                        t.name.0.as_str(),
                        p.partition_index,
                        p.committed_offset,
                        &p.metadata,
                        p.error_code,
                    )?;
                }
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// OffsetCommit over several topics in one request. Generation -1 with
    /// an empty member id is the "simple consumer" commit that a coordinator
    /// accepts only while the group has no members. Returns one outcome per
    /// partition.
    pub async fn commit_offsets_multi(
        &self,
        group: &str,
        generation_id: i32,
        member_id: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<Vec<PartitionOutcome>> {
        let version = self.version_at_most::<OffsetCommitRequest>(OFFSETS_MAX_VERSION)?;
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (t, p, o) in offsets {
            topics.entry(t.as_str()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1),
            );
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_generation_id_or_member_epoch(generation_id)
            .with_member_id(sb(member_id))
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let what = || format!("commit offsets of group {group}");
        let resp = within(ADMIN_REQUEST_LIMIT, what, self.send_versioned(req, version)).await?;
        Ok(resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| PartitionOutcome {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    error: code_error(p.error_code),
                })
            })
            .collect())
    }
}

impl Client {
    /// ListGroups on every broker in the metadata (each lists only the
    /// groups it coordinates), merged and sorted by group id. `states`
    /// filters on the broker (ListGroups v4+); an older broker's groups come
    /// back unfiltered with `state: None`.
    pub async fn list_groups(&self, states: &[String]) -> Result<Vec<GroupListing>> {
        self.list_groups_filtered(states, &[]).await
    }

    /// [`Client::list_groups`] with a filter on the group type too
    /// ("classic", "consumer"), applied by brokers that speak ListGroups v5.
    /// An older broker knows classic groups only: asked for other types it
    /// lists nothing, since none of its groups can match.
    pub async fn list_groups_filtered(
        &self,
        states: &[String],
        types: &[String],
    ) -> Result<Vec<GroupListing>> {
        let meta = self.refresh_metadata(Some(&[])).await?;
        let mut found: BTreeMap<String, GroupListing> = BTreeMap::new();
        for node in meta.brokers.keys() {
            let conn = self.broker_connection(*node).await?;
            let version = conn.version_for::<ListGroupsRequest>()?;
            let mut req = ListGroupsRequest::default();
            if version >= 4 {
                req = req.with_states_filter(states.iter().map(|s| sb(s)).collect());
            }
            if version >= 5 {
                req = req.with_types_filter(types.iter().map(|t| sb(t)).collect());
            } else if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case("classic"))
            {
                continue;
            }
            let what = || format!("list groups on broker {node}");
            let resp = within(ADMIN_REQUEST_LIMIT, what, conn.send_versioned(req, version)).await?;
            Error::check_code(resp.error_code, None, what)?;
            for g in resp.groups {
                let listing = GroupListing {
                    group_id: g.group_id.0.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    state: (version >= 4).then(|| g.group_state.to_string()),
                    group_type: (version >= 5).then(|| g.group_type.to_string()),
                };
                found.insert(listing.group_id.clone(), listing);
            }
        }
        Ok(found.into_values().collect())
    }

    /// ConsumerGroupDescribe of each group on its coordinator, in the order
    /// asked. Unknown and classic groups come back with GROUP_ID_NOT_FOUND
    /// in `error`.
    pub async fn describe_consumer_groups(
        &self,
        groups: &[&str],
    ) -> Result<Vec<ConsumerGroupDescription>> {
        let mut out = Vec::with_capacity(groups.len());
        for &g in groups {
            let conn = self.coordinator_connection(g).await?;
            out.extend(conn.describe_consumer_groups(&[g]).await?);
        }
        Ok(out)
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let conn = self.controller_connection().await?;
        let version = conn.version_for::<DeleteTopicsRequest>()?;
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        if version >= 6 {
            req = req.with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(name)))
            ]);
        } else {
            req = req.with_topic_names(vec![topic_name(name)]);
        }
        let what = || format!("delete topic {name}");
        let resp = within(self.wait_limit(), what, conn.send_versioned(req, version)).await?;
        let r = resp
            .responses
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == name))
            .ok_or_else(|| Error::Protocol(format!("{}: topic missing", what())))?;
        Error::check_code(r.error_code, r.error_message.as_deref(), what)
    }

    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(&self, name: &str, count: i32) -> Result<()> {
        let conn = self.controller_connection().await?;
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(count)
                .with_assignments(None)]);
        let what = || format!("create partitions for {name}");
        let resp = within(self.wait_limit(), what, conn.send(req)).await?;
        let r = resp
            .results
            .iter()
            .find(|r| r.name.0.as_str() == name)
            .ok_or_else(|| Error::Protocol(format!("{}: topic missing", what())))?;
        Error::check_code(r.error_code, r.error_message.as_deref(), what)
    }

    /// DeleteRecords for one partition, at its leader: moves its log start to `before` (-1:
    /// the high watermark). Returns the new low watermark.
    pub async fn delete_records(&self, topic: &str, partition: i32, before: i64) -> Result<i64> {
        use kafka_protocol::messages::delete_records_request::{
            DeleteRecordsPartition, DeleteRecordsTopic,
        };
        let conn = self.leader_connection(topic, partition).await?;
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(before)])]);
        let what = || format!("delete records of {topic}/{partition} before {before}");
        let resp = within(self.wait_limit(), what, conn.send(req)).await?;
        let p = resp
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| Error::Protocol(format!("{}: partition missing", what())))?;
        Error::check_code(p.error_code, None, what)?;
        Ok(p.low_watermark)
    }

    /// DescribeLogDirs at one broker: its log dirs with each partition's size, for the given
    /// topics and partitions (every topic when `None`).
    pub async fn describe_log_dirs(
        &self,
        broker: i32,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<LogDirInfo>> {
        use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
        let conn = self.broker_connection(broker).await?;
        let topics = topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    DescribableLogDirTopic::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps.clone())
                })
                .collect()
        });
        let req = DescribeLogDirsRequest::default().with_topics(topics);
        let what = || format!("describe log dirs of broker {broker}");
        let resp = within(self.wait_limit(), what, conn.send(req)).await?;
        Error::check_code(resp.error_code, None, what)?;
        let mut out = Vec::new();
        for d in resp.results {
            Error::check_code(d.error_code, None, what)?;
            let mut partitions = Vec::new();
            for t in &d.topics {
                for p in &t.partitions {
                    partitions.push(LogDirPartition {
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                        size: p.partition_size,
                        offset_lag: p.offset_lag,
                        is_future: p.is_future_key,
                    });
                }
            }
            out.push(LogDirInfo {
                broker,
                log_dir: d.log_dir.to_string(),
                total_bytes: d.total_bytes,
                usable_bytes: d.usable_bytes,
                partitions,
            });
        }
        Ok(out)
    }

    /// ElectLeaders at the controller: `election_type` 0 preferred, 1 unclean; `partitions`
    /// `None` for every partition. Returns each partition's outcome (`None`: elected).
    pub async fn elect_leaders(
        &self,
        election_type: i8,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<PartitionAnswer>> {
        use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
        let conn = self.controller_connection().await?;
        let req = ElectLeadersRequest::default()
            .with_election_type(election_type)
            .with_timeout_ms(self.timeout_ms())
            .with_topic_partitions(partitions.map(|ps| {
                ps.iter()
                    .map(|(t, p)| {
                        TopicPartitions::default()
                            .with_topic(topic_name(t))
                            .with_partitions(p.clone())
                    })
                    .collect()
            }));
        let what = || "elect leaders".to_string();
        let resp = within(self.wait_limit(), what, conn.send(req)).await?;
        Error::check_code(resp.error_code, None, what)?;
        Ok(resp
            .replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result.iter().map(|p| PartitionAnswer {
                    topic: t.topic.0.to_string(),
                    partition: p.partition_id,
                    error: ResponseError::try_from_code(p.error_code),
                    message: p.error_message.as_ref().map(|m| m.to_string()),
                })
            })
            .collect())
    }

    /// AlterPartitionReassignments at the controller: each partition's new replicas (`None`
    /// cancels a reassignment in progress). Returns each partition's outcome.
    pub async fn alter_partition_reassignments(
        &self,
        moves: &[(String, i32, Option<Vec<i32>>)],
    ) -> Result<Vec<PartitionAnswer>> {
        use kafka_protocol::messages::alter_partition_reassignments_request::{
            ReassignablePartition, ReassignableTopic,
        };
        let conn = self.controller_connection().await?;
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for (t, p, r) in moves {
            by_topic.entry(t.as_str()).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*p)
                    .with_replicas(r.as_ref().map(|r| r.iter().map(|b| BrokerId(*b)).collect())),
            );
        }
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        ReassignableTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let what = || "alter partition reassignments".to_string();
        let resp = within(self.wait_limit(), what, conn.send(req)).await?;
        Error::check_code(resp.error_code, resp.error_message.as_deref(), what)?;
        Ok(resp
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| PartitionAnswer {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    error: ResponseError::try_from_code(p.error_code),
                    message: p.error_message.as_ref().map(|m| m.to_string()),
                })
            })
            .collect())
    }

    /// The configs of a topic as its leader (or the bootstrap broker) reports them.
    pub async fn describe_topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        let conn = self.bootstrap_connection().await?;
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(sb(name))
                .with_configuration_keys(None),
        ]);
        let what = || format!("describe configs of {name}");
        let resp = within(self.wait_limit(), what, conn.send(req)).await?;
        let r = resp
            .results
            .iter()
            .find(|r| r.resource_name.as_str() == name)
            .ok_or_else(|| Error::Protocol(format!("{}: topic missing", what())))?;
        Error::check_code(r.error_code, r.error_message.as_deref(), what)?;
        Ok(r.configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
                source: c.config_source,
            })
            .collect())
    }

    /// Groups partitions by leader; partitions without a known leader are
    /// returned apart.
    async fn by_leader<T: Clone>(
        &self,
        items: &[(String, i32, T)],
    ) -> Result<(BTreeMap<i32, Vec<(String, i32, T)>>, Vec<(String, i32)>)> {
        let mut meta = self.metadata();
        let unknown = items.iter().any(|(t, p, _)| meta.leader(t, *p).is_none());
        if unknown {
            let mut topics: Vec<&str> = items.iter().map(|(t, _, _)| t.as_str()).collect();
            topics.sort_unstable();
            topics.dedup();
            meta = self.refresh_metadata(Some(&topics)).await?;
        }
        let mut by_leader: BTreeMap<i32, Vec<(String, i32, T)>> = BTreeMap::new();
        let mut leaderless = Vec::new();
        for (t, p, x) in items {
            match meta.leader(t, *p) {
                Some(l) => by_leader
                    .entry(l)
                    .or_default()
                    .push((t.clone(), *p, x.clone())),
                None => leaderless.push((t.clone(), *p)),
            }
        }
        Ok((by_leader, leaderless))
    }

    /// ListOffsets for many partitions, each with its own timestamp
    /// ([`crate::LATEST_OFFSET`], [`crate::EARLIEST_OFFSET`] or
    /// milliseconds), one request per leader, all in flight together.
    /// Results come in the order asked.
    pub async fn list_offsets_many(
        &self,
        queries: &[(String, i32, i64)],
    ) -> Result<Vec<OffsetLookup>> {
        let (by_leader, leaderless) = self.by_leader(queries).await?;
        let mut pending: Vec<(Arc<Connection>, ResponseFuture<_>)> = Vec::new();
        for (leader, parts) in &by_leader {
            let conn = self.broker_connection(*leader).await?;
            let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
            for (t, p, ts) in parts {
                topics.entry(t.as_str()).or_default().push(
                    ListOffsetsPartition::default()
                        .with_partition_index(*p)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(*ts),
                );
            }
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(0)
                .with_timeout_ms(self.timeout_ms())
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(topic_name(t))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            let fut = conn.submit(req).await?;
            pending.push((conn, fut));
        }
        let mut found: BTreeMap<(String, i32), OffsetLookup> = BTreeMap::new();
        for (conn, fut) in pending {
            let what = || format!("list offsets on {}", conn.addr());
            let resp = within(self.wait_limit(), what, fut).await?;
            for t in resp.topics {
                for p in t.partitions {
                    let l = OffsetLookup {
                        topic: t.name.0.to_string(),
                        partition: p.partition_index,
                        offset: p.offset,
                        timestamp: p.timestamp,
                        error: code_error(p.error_code),
                    };
                    found.insert((l.topic.clone(), l.partition), l);
                }
            }
        }
        for (t, p) in leaderless {
            found.insert(
                (t.clone(), p),
                OffsetLookup {
                    topic: t,
                    partition: p,
                    offset: -1,
                    timestamp: -1,
                    error: Some(ResponseError::LeaderNotAvailable),
                },
            );
        }
        queries
            .iter()
            .map(|(t, p, _)| {
                found.remove(&(t.clone(), *p)).ok_or_else(|| {
                    Error::Protocol(format!("list offsets: {t}/{p} missing from the answer"))
                })
            })
            .collect()
    }

    /// Fetches many partitions at once, each from its own offset: one
    /// request per leader, all in flight together, each waiting at most
    /// `max_wait_ms` for data. Results come in the order asked.
    pub async fn fetch_many(
        &self,
        partitions: &[(String, i32, i64)],
        partition_max_bytes: i32,
        max_wait_ms: i32,
    ) -> Result<Vec<PartitionFetch>> {
        let (by_leader, leaderless) = self.by_leader(partitions).await?;
        let mut pending = Vec::new();
        for (leader, parts) in &by_leader {
            let conn = self.broker_connection(*leader).await?;
            let version = conn.version_at_most::<FetchRequest>(FETCH_MAX_VERSION)?;
            let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
            for (t, p, offset) in parts {
                topics.entry(t.as_str()).or_default().push(
                    FetchPartition::default()
                        .with_partition(*p)
                        .with_fetch_offset(*offset)
                        .with_partition_max_bytes(partition_max_bytes),
                );
            }
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(max_wait_ms)
                .with_min_bytes(1)
                .with_max_bytes(partition_max_bytes.saturating_mul(parts.len() as i32))
                .with_isolation_level(0)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            FetchTopic::default()
                                .with_topic(topic_name(t))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            let fut = conn.submit_versioned(req, version).await?;
            pending.push((conn, fut));
        }
        let limit = self.wait_limit() + Duration::from_millis(max_wait_ms.max(0) as u64);
        let mut found: BTreeMap<(String, i32), PartitionFetch> = BTreeMap::new();
        for (conn, fut) in pending {
            let what = || format!("fetch from {}", conn.addr());
            let resp = within(limit, what, fut).await?;
            Error::check_code(resp.error_code, None, what)?;
            for t in resp.responses {
                let topic = t.topic.0.to_string();
                for p in t.partitions {
                    let from = partitions
                        .iter()
                        .find(|(pt, pp, _)| *pt == topic && *pp == p.partition_index)
                        .map_or(0, |x| x.2);
                    let error = code_error(p.error_code);
                    let records = match (&error, &p.records) {
                        (None, Some(data)) => decode_records(data, from)?,
                        _ => Vec::new(),
                    };
                    found.insert(
                        (topic.clone(), p.partition_index),
                        PartitionFetch {
                            topic: topic.clone(),
                            partition: p.partition_index,
                            error,
                            high_watermark: p.high_watermark,
                            log_start_offset: p.log_start_offset,
                            records,
                        },
                    );
                }
            }
        }
        for (t, p) in leaderless {
            found.insert(
                (t.clone(), p),
                PartitionFetch {
                    topic: t,
                    partition: p,
                    error: Some(ResponseError::LeaderNotAvailable),
                    high_watermark: -1,
                    log_start_offset: -1,
                    records: Vec::new(),
                },
            );
        }
        partitions
            .iter()
            .map(|(t, p, _)| {
                found.remove(&(t.clone(), *p)).ok_or_else(|| {
                    Error::Protocol(format!("fetch: {t}/{p} missing from the answer"))
                })
            })
            .collect()
    }
}
