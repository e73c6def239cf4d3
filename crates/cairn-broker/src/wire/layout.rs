//! The shape of every request this broker decodes, per version: just enough to find each length
//! and count in a frame, not to interpret it. Field versions follow Kafka's message definitions
//! (the same ones the protocol crate decodes); a test encodes random frames from these layouts and
//! checks that the crate decodes each one to its last byte, so a wrong version bound shows up.
//!
//! Tagged fields are listed only where the crate decodes them into a named field (it then reads
//! the value itself, not the declared size, so the walker must check that both agree); every
//! other tag is skipped by its declared size.

use std::mem::size_of;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// One encoded value. Strings and bytes may be null (the crate rejects nulls it does not allow).
#[derive(Clone, Copy)]
pub enum Ty {
    I8,
    I16,
    I32,
    I64,
    Uuid,
    Bool,
    Str,
    Bytes,
    /// An array of plain values; the crate allocates `count × element size` up front. The second
    /// field is what the handler builds per element to answer it (see [`Layout::answer`]).
    Array(&'static Ty, usize),
    /// An array of structs, allocated the same way.
    Structs(&'static Layout),
    /// One struct (only as a tagged field).
    Struct(&'static Layout),
    /// A nullable struct in the body: an int8 marker (-1: null), then the struct.
    NullableStruct(&'static Layout),
}

impl Ty {
    /// Bytes one decoded element occupies in the crate's `Vec`.
    pub const fn mem(&self) -> usize {
        match self {
            Ty::I8 | Ty::Bool => 1,
            Ty::I16 => 2,
            Ty::I32 => 4,
            Ty::I64 => 8,
            Ty::Uuid => 16,
            Ty::Str => size_of::<StrBytes>(),
            Ty::Bytes => size_of::<bytes::Bytes>(),
            Ty::Array(..) | Ty::Structs(_) => size_of::<Vec<u8>>(),
            Ty::Struct(l) | Ty::NullableStruct(l) => l.mem,
        }
    }
}

/// A field present from `from` to `to` (inclusive).
pub struct Field {
    pub from: i16,
    pub to: i16,
    pub ty: Ty,
}

/// A tagged field the crate decodes by name, from version `from`.
pub struct Tagged {
    pub tag: u32,
    pub from: i16,
    pub ty: Ty,
}

pub struct Layout {
    pub name: &'static str,
    /// First flexible version (compact lengths, tagged fields); `NEVER` if none.
    pub flexible_from: i16,
    /// `size_of` the crate's type, for arrays of this struct.
    pub mem: usize,
    /// Bytes the handler builds to answer one element (a response entry, a record to append):
    /// requests are held to what their answers will cost too, so a frame of tiny entries cannot
    /// make a huge response.
    pub answer: usize,
    pub fields: &'static [Field],
    pub tagged: &'static [Tagged],
}

pub const NEVER: i16 = i16::MAX;
const ANY: i16 = i16::MAX;

const fn all(ty: Ty) -> Field {
    Field {
        from: 0,
        to: ANY,
        ty,
    }
}
const fn since(from: i16, ty: Ty) -> Field {
    Field { from, to: ANY, ty }
}
const fn until(to: i16, ty: Ty) -> Field {
    Field { from: 0, to, ty }
}
const fn between(from: i16, to: i16, ty: Ty) -> Field {
    Field { from, to, ty }
}

macro_rules! layout {
    ($name:ident, $ty:ty $(=> $answer:expr)?, flexible $flex:expr, [$($f:expr),* $(,)?] $(, tagged [$($t:expr),* $(,)?])?) => {
        pub static $name: Layout = Layout {
            name: stringify!($ty),
            flexible_from: $flex,
            mem: size_of::<$ty>(),
            answer: 0 $(+ $answer)?,
            fields: &[$($f),*],
            tagged: &[$($($t),*)?],
        };
    };
}

macro_rules! array_of {
    ($l:ident) => {
        Ty::Structs(&$l)
    };
}

const STRS: Ty = Ty::Array(&Ty::Str, 0);
const I32S: Ty = Ty::Array(&Ty::I32, 0);
/// Per-entry bookkeeping of a handler beyond the response entry (owned strings, map slots).
const WORK: usize = 64;
/// A generous count of the configs one resource describes, each with a synonym or two.
const CONFIGS: usize = 64;

// The request header: v1 (client id as a plain nullable string), v2 adds a tagged section.
layout!(HEADER, RequestHeader, flexible 2, [
    all(Ty::I16), all(Ty::I16), all(Ty::I32), all(Ty::Str),
]);

// Produce (flexible from 9).
layout!(PRODUCE_PARTITION, produce_request::PartitionProduceData => size_of::<produce_response::PartitionProduceResponse>(), flexible 9, [
    all(Ty::I32), all(Ty::Bytes),
]);
layout!(PRODUCE_TOPIC, produce_request::TopicProduceData => size_of::<produce_response::TopicProduceResponse>(), flexible 9, [
    until(12, Ty::Str), since(13, Ty::Uuid), all(array_of!(PRODUCE_PARTITION)),
]);
layout!(PRODUCE, ProduceRequest, flexible 9, [
    since(3, Ty::Str), all(Ty::I16), all(Ty::I32), all(array_of!(PRODUCE_TOPIC)),
]);

// Fetch (flexible from 12).
layout!(FETCH_PARTITION, fetch_request::FetchPartition => size_of::<fetch_response::PartitionData>() + WORK, flexible 12, [
    all(Ty::I32), since(9, Ty::I32), all(Ty::I64), since(12, Ty::I32), since(5, Ty::I64),
    all(Ty::I32),
], tagged [
    Tagged { tag: 0, from: 17, ty: Ty::Uuid },
    Tagged { tag: 1, from: 18, ty: Ty::I64 },
]);
layout!(FETCH_TOPIC, fetch_request::FetchTopic => size_of::<fetch_response::FetchableTopicResponse>() + WORK, flexible 12, [
    until(12, Ty::Str), since(13, Ty::Uuid), all(array_of!(FETCH_PARTITION)),
]);
layout!(FETCH_FORGOTTEN, fetch_request::ForgottenTopic, flexible 12, [
    between(7, 12, Ty::Str), since(13, Ty::Uuid), since(7, I32S),
]);
layout!(FETCH_REPLICA_STATE, fetch_request::ReplicaState, flexible 12, [
    since(15, Ty::I32), since(15, Ty::I64),
]);
layout!(FETCH, FetchRequest, flexible 12, [
    until(14, Ty::I32), all(Ty::I32), all(Ty::I32), all(Ty::I32), all(Ty::I8),
    since(7, Ty::I32), since(7, Ty::I32), all(array_of!(FETCH_TOPIC)),
    since(7, array_of!(FETCH_FORGOTTEN)), since(11, Ty::Str),
], tagged [
    Tagged { tag: 0, from: 0, ty: Ty::Str },
    Tagged { tag: 1, from: 15, ty: Ty::Struct(&FETCH_REPLICA_STATE) },
]);

// ListOffsets (flexible from 6).
layout!(LIST_OFFSETS_PARTITION, list_offsets_request::ListOffsetsPartition => size_of::<list_offsets_response::ListOffsetsPartitionResponse>(), flexible 6, [
    all(Ty::I32), since(4, Ty::I32), all(Ty::I64),
]);
layout!(LIST_OFFSETS_TOPIC, list_offsets_request::ListOffsetsTopic => size_of::<list_offsets_response::ListOffsetsTopicResponse>() + WORK, flexible 6, [
    all(Ty::Str), all(array_of!(LIST_OFFSETS_PARTITION)),
]);
layout!(LIST_OFFSETS, ListOffsetsRequest, flexible 6, [
    all(Ty::I32), since(2, Ty::I8), all(array_of!(LIST_OFFSETS_TOPIC)), since(10, Ty::I32),
]);

// Metadata (flexible from 9).
layout!(METADATA_TOPIC, metadata_request::MetadataRequestTopic => size_of::<metadata_response::MetadataResponseTopic>() + WORK, flexible 9, [
    since(10, Ty::Uuid), all(Ty::Str),
]);
layout!(METADATA, MetadataRequest, flexible 9, [
    all(array_of!(METADATA_TOPIC)), since(4, Ty::Bool), between(8, 10, Ty::Bool),
    since(8, Ty::Bool),
]);

// ApiVersions (flexible from 3).
layout!(API_VERSIONS, ApiVersionsRequest, flexible 3, [
    since(3, Ty::Str), since(3, Ty::Str),
]);

// CreateTopics (flexible from 5).
layout!(CREATE_TOPICS_ASSIGNMENT, create_topics_request::CreatableReplicaAssignment, flexible 5, [
    all(Ty::I32), all(I32S),
]);
layout!(CREATE_TOPICS_CONFIG, create_topics_request::CreatableTopicConfig, flexible 5, [
    all(Ty::Str), all(Ty::Str),
]);
layout!(CREATE_TOPICS_TOPIC, create_topics_request::CreatableTopic => size_of::<create_topics_response::CreatableTopicResult>() + CONFIGS * size_of::<create_topics_response::CreatableTopicConfigs>(), flexible 5, [
    all(Ty::Str), all(Ty::I32), all(Ty::I16), all(array_of!(CREATE_TOPICS_ASSIGNMENT)),
    all(array_of!(CREATE_TOPICS_CONFIG)),
]);
layout!(CREATE_TOPICS, CreateTopicsRequest, flexible 5, [
    all(array_of!(CREATE_TOPICS_TOPIC)), all(Ty::I32), all(Ty::Bool),
]);

// DeleteTopics (flexible from 4).
layout!(DELETE_TOPICS_STATE, delete_topics_request::DeleteTopicState => size_of::<delete_topics_response::DeletableTopicResult>() + WORK, flexible 4, [
    since(6, Ty::Str), since(6, Ty::Uuid),
]);
layout!(DELETE_TOPICS, DeleteTopicsRequest, flexible 4, [
    since(6, array_of!(DELETE_TOPICS_STATE)),
    until(5, Ty::Array(&Ty::Str, size_of::<delete_topics_response::DeletableTopicResult>() + WORK)),
    all(Ty::I32),
]);

// DescribeConfigs (flexible from 4).
layout!(DESCRIBE_CONFIGS_RESOURCE, describe_configs_request::DescribeConfigsResource => size_of::<describe_configs_response::DescribeConfigsResult>() + CONFIGS * (size_of::<describe_configs_response::DescribeConfigsResourceResult>() + 2 * size_of::<describe_configs_response::DescribeConfigsSynonym>()), flexible 4, [
    all(Ty::I8), all(Ty::Str), all(STRS),
]);
layout!(DESCRIBE_CONFIGS, DescribeConfigsRequest, flexible 4, [
    all(array_of!(DESCRIBE_CONFIGS_RESOURCE)), all(Ty::Bool), since(3, Ty::Bool),
]);

// CreatePartitions (flexible from 2).
layout!(CREATE_PARTITIONS_ASSIGNMENT, create_partitions_request::CreatePartitionsAssignment, flexible 2, [
    all(I32S),
]);
layout!(CREATE_PARTITIONS_TOPIC, create_partitions_request::CreatePartitionsTopic => size_of::<create_partitions_response::CreatePartitionsTopicResult>() + WORK, flexible 2, [
    all(Ty::Str), all(Ty::I32), all(array_of!(CREATE_PARTITIONS_ASSIGNMENT)),
]);
layout!(CREATE_PARTITIONS, CreatePartitionsRequest, flexible 2, [
    all(array_of!(CREATE_PARTITIONS_TOPIC)), all(Ty::I32), all(Ty::Bool),
]);

// DeleteRecords (flexible from 2).
layout!(DELETE_RECORDS_PARTITION, delete_records_request::DeleteRecordsPartition => size_of::<delete_records_response::DeleteRecordsPartitionResult>(), flexible 2, [
    all(Ty::I32), all(Ty::I64),
]);
layout!(DELETE_RECORDS_TOPIC, delete_records_request::DeleteRecordsTopic => size_of::<delete_records_response::DeleteRecordsTopicResult>() + WORK, flexible 2, [
    all(Ty::Str), all(array_of!(DELETE_RECORDS_PARTITION)),
]);
layout!(DELETE_RECORDS, DeleteRecordsRequest, flexible 2, [
    all(array_of!(DELETE_RECORDS_TOPIC)), all(Ty::I32),
]);

// DescribeLogDirs (flexible from 2; a null topic list means every topic).
layout!(DESCRIBE_LOG_DIRS_TOPIC, describe_log_dirs_request::DescribableLogDirTopic => size_of::<describe_log_dirs_response::DescribeLogDirsTopic>() + WORK, flexible 2, [
    all(Ty::Str), all(Ty::Array(&Ty::I32, size_of::<describe_log_dirs_response::DescribeLogDirsPartition>())),
]);
layout!(DESCRIBE_LOG_DIRS, DescribeLogDirsRequest, flexible 2, [
    all(array_of!(DESCRIBE_LOG_DIRS_TOPIC)),
]);

// ElectLeaders (flexible from 2; null topic partitions mean every partition).
layout!(ELECT_LEADERS_TOPIC, elect_leaders_request::TopicPartitions => size_of::<elect_leaders_response::ReplicaElectionResult>() + WORK, flexible 2, [
    all(Ty::Str), all(Ty::Array(&Ty::I32, size_of::<elect_leaders_response::PartitionResult>() + WORK)),
]);
layout!(ELECT_LEADERS, ElectLeadersRequest, flexible 2, [
    since(1, Ty::I8), all(array_of!(ELECT_LEADERS_TOPIC)), all(Ty::I32),
]);

// AlterPartitionReassignments and ListPartitionReassignments (flexible in every version).
layout!(REASSIGNABLE_PARTITION, alter_partition_reassignments_request::ReassignablePartition => size_of::<alter_partition_reassignments_response::ReassignablePartitionResponse>() + WORK, flexible 0, [
    all(Ty::I32), all(I32S),
]);
layout!(REASSIGNABLE_TOPIC, alter_partition_reassignments_request::ReassignableTopic => size_of::<alter_partition_reassignments_response::ReassignableTopicResponse>() + WORK, flexible 0, [
    all(Ty::Str), all(array_of!(REASSIGNABLE_PARTITION)),
]);
layout!(ALTER_PARTITION_REASSIGNMENTS, AlterPartitionReassignmentsRequest, flexible 0, [
    all(Ty::I32), since(1, Ty::Bool), all(array_of!(REASSIGNABLE_TOPIC)),
]);
layout!(LIST_REASSIGNMENTS_TOPIC, list_partition_reassignments_request::ListPartitionReassignmentsTopics, flexible 0, [
    all(Ty::Str), all(I32S),
]);
layout!(LIST_PARTITION_REASSIGNMENTS, ListPartitionReassignmentsRequest, flexible 0, [
    all(Ty::I32), all(array_of!(LIST_REASSIGNMENTS_TOPIC)),
]);

// DescribeTopicPartitions (flexible in every version). The answer is bounded by the partition
// limit, not by the request; each named topic is charged its (possibly error) entry.
layout!(DESCRIBE_TOPIC_PARTITIONS_TOPIC, describe_topic_partitions_request::TopicRequest => size_of::<describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic>() + WORK, flexible 0, [
    all(Ty::Str),
]);
layout!(DESCRIBE_TOPIC_PARTITIONS_CURSOR, describe_topic_partitions_request::Cursor, flexible 0, [
    all(Ty::Str), all(Ty::I32),
]);
layout!(DESCRIBE_TOPIC_PARTITIONS, DescribeTopicPartitionsRequest, flexible 0, [
    all(array_of!(DESCRIBE_TOPIC_PARTITIONS_TOPIC)), all(Ty::I32), all(Ty::NullableStruct(&DESCRIBE_TOPIC_PARTITIONS_CURSOR)),
]);

// DescribeClientQuotas and AlterClientQuotas (flexible from 1). A describe answer is bounded by
// the quotas stored, not by the request; an alteration is answered entry by entry.
layout!(CLIENT_QUOTA_COMPONENT, describe_client_quotas_request::ComponentData, flexible 1, [
    all(Ty::Str), all(Ty::I8), all(Ty::Str),
]);
layout!(DESCRIBE_CLIENT_QUOTAS, DescribeClientQuotasRequest, flexible 1, [
    all(array_of!(CLIENT_QUOTA_COMPONENT)), all(Ty::Bool),
]);
layout!(CLIENT_QUOTA_ENTITY, alter_client_quotas_request::EntityData => size_of::<alter_client_quotas_response::EntityData>() + WORK, flexible 1, [
    all(Ty::Str), all(Ty::Str),
]);
// The value is a float64: eight bytes, as an I64 is.
layout!(CLIENT_QUOTA_OP, alter_client_quotas_request::OpData => WORK, flexible 1, [
    all(Ty::Str), all(Ty::I64), all(Ty::Bool),
]);
layout!(CLIENT_QUOTA_ALTERATION, alter_client_quotas_request::EntryData => size_of::<alter_client_quotas_response::EntryData>() + WORK, flexible 1, [
    all(array_of!(CLIENT_QUOTA_ENTITY)), all(array_of!(CLIENT_QUOTA_OP)),
]);
layout!(ALTER_CLIENT_QUOTAS, AlterClientQuotasRequest, flexible 1, [
    all(array_of!(CLIENT_QUOTA_ALTERATION)), all(Ty::Bool),
]);

// DescribeCluster (flexible in every version).
layout!(DESCRIBE_CLUSTER, DescribeClusterRequest, flexible 0, [
    all(Ty::Bool), since(1, Ty::I8), since(2, Ty::Bool),
]);

// FindCoordinator (flexible from 3).
layout!(FIND_COORDINATOR, FindCoordinatorRequest, flexible 3, [
    until(3, Ty::Str), since(1, Ty::I8),
    since(4, Ty::Array(&Ty::Str, size_of::<find_coordinator_response::Coordinator>() + WORK)),
]);

// JoinGroup (flexible from 6).
layout!(JOIN_GROUP_PROTOCOL, join_group_request::JoinGroupRequestProtocol, flexible 6, [
    all(Ty::Str), all(Ty::Bytes),
]);
layout!(JOIN_GROUP, JoinGroupRequest, flexible 6, [
    all(Ty::Str), all(Ty::I32), since(1, Ty::I32), all(Ty::Str), since(5, Ty::Str), all(Ty::Str),
    all(array_of!(JOIN_GROUP_PROTOCOL)), since(8, Ty::Str),
]);

// SyncGroup (flexible from 4).
layout!(SYNC_GROUP_ASSIGNMENT, sync_group_request::SyncGroupRequestAssignment, flexible 4, [
    all(Ty::Str), all(Ty::Bytes),
]);
layout!(SYNC_GROUP, SyncGroupRequest, flexible 4, [
    all(Ty::Str), all(Ty::I32), all(Ty::Str), since(3, Ty::Str), since(5, Ty::Str),
    since(5, Ty::Str), all(array_of!(SYNC_GROUP_ASSIGNMENT)),
]);

// Heartbeat (flexible from 4).
layout!(HEARTBEAT, HeartbeatRequest, flexible 4, [
    all(Ty::Str), all(Ty::I32), all(Ty::Str), since(3, Ty::Str),
]);

// LeaveGroup (flexible from 4).
layout!(LEAVE_GROUP_MEMBER, leave_group_request::MemberIdentity => size_of::<leave_group_response::MemberResponse>() + WORK, flexible 4, [
    since(3, Ty::Str), since(3, Ty::Str), since(5, Ty::Str),
]);
layout!(LEAVE_GROUP, LeaveGroupRequest, flexible 4, [
    all(Ty::Str), until(2, Ty::Str), since(3, array_of!(LEAVE_GROUP_MEMBER)),
]);

// OffsetCommit (flexible from 8).
layout!(OFFSET_COMMIT_PARTITION, offset_commit_request::OffsetCommitRequestPartition => size_of::<offset_commit_response::OffsetCommitResponsePartition>() + 4 * WORK, flexible 8, [
    all(Ty::I32), all(Ty::I64), since(6, Ty::I32), all(Ty::Str),
]);
layout!(OFFSET_COMMIT_TOPIC, offset_commit_request::OffsetCommitRequestTopic => size_of::<offset_commit_response::OffsetCommitResponseTopic>() + WORK, flexible 8, [
    all(Ty::Str), all(array_of!(OFFSET_COMMIT_PARTITION)),
]);
layout!(OFFSET_COMMIT, OffsetCommitRequest, flexible 8, [
    all(Ty::Str), all(Ty::I32), all(Ty::Str), since(7, Ty::Str), until(4, Ty::I64),
    all(array_of!(OFFSET_COMMIT_TOPIC)),
]);

// OffsetFetch (flexible from 6).
layout!(OFFSET_FETCH_TOPIC, offset_fetch_request::OffsetFetchRequestTopic => size_of::<offset_fetch_response::OffsetFetchResponseTopic>() + WORK, flexible 6, [
    until(7, Ty::Str),
    until(7, Ty::Array(&Ty::I32, size_of::<offset_fetch_response::OffsetFetchResponsePartition>())),
]);
layout!(OFFSET_FETCH_GROUP_TOPIC, offset_fetch_request::OffsetFetchRequestTopics => size_of::<offset_fetch_response::OffsetFetchResponseTopics>() + WORK, flexible 6, [
    since(8, Ty::Str),
    since(8, Ty::Array(&Ty::I32, size_of::<offset_fetch_response::OffsetFetchResponsePartitions>())),
]);
layout!(OFFSET_FETCH_GROUP, offset_fetch_request::OffsetFetchRequestGroup => size_of::<offset_fetch_response::OffsetFetchResponseGroup>() + WORK, flexible 6, [
    since(8, Ty::Str), since(9, Ty::Str), since(9, Ty::I32),
    since(8, array_of!(OFFSET_FETCH_GROUP_TOPIC)),
]);
layout!(OFFSET_FETCH, OffsetFetchRequest, flexible 6, [
    until(7, Ty::Str), until(7, array_of!(OFFSET_FETCH_TOPIC)),
    since(8, array_of!(OFFSET_FETCH_GROUP)), since(7, Ty::Bool),
]);

// ListGroups (flexible from 3).
layout!(LIST_GROUPS, ListGroupsRequest, flexible 3, [
    since(4, STRS), since(5, STRS),
]);

// DescribeGroups (flexible from 5).
layout!(DESCRIBE_GROUPS, DescribeGroupsRequest, flexible 5, [
    all(Ty::Array(&Ty::Str, size_of::<describe_groups_response::DescribedGroup>() + WORK)),
    since(3, Ty::Bool),
]);

// DeleteGroups (flexible from 2).
layout!(DELETE_GROUPS, DeleteGroupsRequest, flexible 2, [
    all(Ty::Array(&Ty::Str, size_of::<delete_groups_response::DeletableGroupResult>() + WORK)),
]);

// OffsetDelete (never flexible).
layout!(OFFSET_DELETE_PARTITION, offset_delete_request::OffsetDeleteRequestPartition => size_of::<offset_delete_response::OffsetDeleteResponsePartition>(), flexible NEVER, [
    all(Ty::I32),
]);
layout!(OFFSET_DELETE_TOPIC, offset_delete_request::OffsetDeleteRequestTopic => size_of::<offset_delete_response::OffsetDeleteResponseTopic>() + WORK, flexible NEVER, [
    all(Ty::Str), all(array_of!(OFFSET_DELETE_PARTITION)),
]);
layout!(OFFSET_DELETE, OffsetDeleteRequest, flexible NEVER, [
    all(Ty::Str), all(array_of!(OFFSET_DELETE_TOPIC)),
]);

// ConsumerGroupHeartbeat (flexible in every version). The answer is one assignment, built by
// the coordinator whatever the request carries; what is charged per element is the handler's
// own copy of the subscription and the owned partitions.
layout!(CONSUMER_HEARTBEAT_TOPIC, consumer_group_heartbeat_request::TopicPartitions => size_of::<(cairn_group::consumer::TopicId, Vec<i32>)>(), flexible 0, [
    all(Ty::Uuid), all(Ty::Array(&Ty::I32, 4)),
]);
layout!(CONSUMER_HEARTBEAT, ConsumerGroupHeartbeatRequest, flexible 0, [
    all(Ty::Str), all(Ty::Str), all(Ty::I32), all(Ty::Str), all(Ty::Str), all(Ty::I32),
    all(Ty::Array(&Ty::Str, size_of::<String>() + WORK)), since(1, Ty::Str), all(Ty::Str),
    all(array_of!(CONSUMER_HEARTBEAT_TOPIC)),
]);

// ConsumerGroupDescribe (flexible in every version). Members are not bounded by the request;
// each group's entry is charged like DescribeGroups'.
layout!(CONSUMER_GROUP_DESCRIBE, ConsumerGroupDescribeRequest, flexible 0, [
    all(Ty::Array(&Ty::Str, size_of::<consumer_group_describe_response::DescribedGroup>() + WORK)),
    all(Ty::Bool),
]);

// InitProducerId (flexible from 2).
layout!(INIT_PRODUCER_ID, InitProducerIdRequest, flexible 2, [
    all(Ty::Str), all(Ty::I32), since(3, Ty::I64), since(3, Ty::I16),
]);

// Transactions (flexible from 3). AddPartitionsToTxn v4+ batches transactions (the brokers'
// form); its layout is listed for the whole range the crate decodes.
layout!(ADD_PARTITIONS_TOPIC, add_partitions_to_txn_request::AddPartitionsToTxnTopic => size_of::<add_partitions_to_txn_response::AddPartitionsToTxnTopicResult>() + WORK, flexible 3, [
    all(Ty::Str), all(Ty::Array(&Ty::I32, size_of::<add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult>() + WORK)),
]);
layout!(ADD_PARTITIONS_TXN, add_partitions_to_txn_request::AddPartitionsToTxnTransaction => size_of::<add_partitions_to_txn_response::AddPartitionsToTxnResult>() + WORK, flexible 3, [
    all(Ty::Str), all(Ty::I64), all(Ty::I16), all(Ty::Bool), all(array_of!(ADD_PARTITIONS_TOPIC)),
]);
layout!(ADD_PARTITIONS_TO_TXN, AddPartitionsToTxnRequest, flexible 3, [
    since(4, array_of!(ADD_PARTITIONS_TXN)),
    until(3, Ty::Str), until(3, Ty::I64), until(3, Ty::I16), until(3, array_of!(ADD_PARTITIONS_TOPIC)),
]);
layout!(ADD_OFFSETS_TO_TXN, AddOffsetsToTxnRequest, flexible 3, [
    all(Ty::Str), all(Ty::I64), all(Ty::I16), all(Ty::Str),
]);
layout!(END_TXN, EndTxnRequest, flexible 3, [
    all(Ty::Str), all(Ty::I64), all(Ty::I16), all(Ty::Bool),
]);
layout!(TXN_OFFSET_COMMIT_PARTITION, txn_offset_commit_request::TxnOffsetCommitRequestPartition => size_of::<txn_offset_commit_response::TxnOffsetCommitResponsePartition>() + 4 * WORK, flexible 3, [
    all(Ty::I32), all(Ty::I64), since(2, Ty::I32), all(Ty::Str),
]);
layout!(TXN_OFFSET_COMMIT_TOPIC, txn_offset_commit_request::TxnOffsetCommitRequestTopic => size_of::<txn_offset_commit_response::TxnOffsetCommitResponseTopic>() + WORK, flexible 3, [
    all(Ty::Str), all(array_of!(TXN_OFFSET_COMMIT_PARTITION)),
]);
layout!(TXN_OFFSET_COMMIT, TxnOffsetCommitRequest, flexible 3, [
    all(Ty::Str), all(Ty::Str), all(Ty::I64), all(Ty::I16),
    since(3, Ty::I32), since(3, Ty::Str), since(3, Ty::Str),
    all(array_of!(TXN_OFFSET_COMMIT_TOPIC)),
]);

layout!(DESCRIBE_TRANSACTIONS, DescribeTransactionsRequest, flexible 0, [
    all(Ty::Array(&Ty::Str, size_of::<describe_transactions_response::TransactionState>() + WORK)),
]);
layout!(LIST_TRANSACTIONS, ListTransactionsRequest, flexible 0, [
    all(STRS), all(Ty::Array(&Ty::I64, 0)), since(1, Ty::I64), since(2, Ty::Str),
]);
layout!(DESCRIBE_PRODUCERS_TOPIC, describe_producers_request::TopicRequest => size_of::<describe_producers_response::TopicResponse>() + WORK, flexible 0, [
    all(Ty::Str), all(Ty::Array(&Ty::I32, size_of::<describe_producers_response::PartitionResponse>() + WORK)),
]);
layout!(DESCRIBE_PRODUCERS, DescribeProducersRequest, flexible 0, [
    all(array_of!(DESCRIBE_PRODUCERS_TOPIC)),
]);
layout!(WRITE_TXN_MARKERS_TOPIC, write_txn_markers_request::WritableTxnMarkerTopic => size_of::<write_txn_markers_response::WritableTxnMarkerTopicResult>() + WORK, flexible 0, [
    all(Ty::Str), all(Ty::Array(&Ty::I32, size_of::<write_txn_markers_response::WritableTxnMarkerPartitionResult>() + WORK)),
]);
layout!(WRITE_TXN_MARKER, write_txn_markers_request::WritableTxnMarker => size_of::<write_txn_markers_response::WritableTxnMarkerResult>() + WORK, flexible 0, [
    all(Ty::I64), all(Ty::I16), all(Ty::Bool), all(array_of!(WRITE_TXN_MARKERS_TOPIC)), all(Ty::I32),
]);
layout!(WRITE_TXN_MARKERS, WriteTxnMarkersRequest, flexible 0, [
    all(array_of!(WRITE_TXN_MARKER)),
]);

// SaslHandshake (never flexible) and SaslAuthenticate (flexible from 2).
layout!(SASL_HANDSHAKE, SaslHandshakeRequest, flexible NEVER, [all(Ty::Str)]);
layout!(SASL_AUTHENTICATE, SaslAuthenticateRequest, flexible 2, [all(Ty::Bytes)]);

// CreateAcls, DescribeAcls, DeleteAcls (v1-3, flexible from 2).
layout!(ACL_CREATION, create_acls_request::AclCreation => size_of::<create_acls_response::AclCreationResult>() + 2 * WORK, flexible 2, [
    all(Ty::I8), all(Ty::Str), all(Ty::I8), all(Ty::Str), all(Ty::Str), all(Ty::I8), all(Ty::I8),
]);
layout!(CREATE_ACLS, CreateAclsRequest, flexible 2, [all(array_of!(ACL_CREATION))]);
layout!(DESCRIBE_ACLS, DescribeAclsRequest, flexible 2, [
    all(Ty::I8), all(Ty::Str), all(Ty::I8), all(Ty::Str), all(Ty::Str), all(Ty::I8), all(Ty::I8),
]);
layout!(DELETE_ACLS_FILTER, delete_acls_request::DeleteAclsFilter => size_of::<delete_acls_response::DeleteAclsFilterResult>() + WORK, flexible 2, [
    all(Ty::I8), all(Ty::Str), all(Ty::I8), all(Ty::Str), all(Ty::Str), all(Ty::I8), all(Ty::I8),
]);
layout!(DELETE_ACLS, DeleteAclsRequest, flexible 2, [all(array_of!(DELETE_ACLS_FILTER))]);

// DescribeUserScramCredentials and AlterUserScramCredentials (v0, flexible).
layout!(SCRAM_USER_NAME, describe_user_scram_credentials_request::UserName => size_of::<describe_user_scram_credentials_response::DescribeUserScramCredentialsResult>() + WORK, flexible 0, [
    all(Ty::Str),
]);
layout!(DESCRIBE_USER_SCRAM, DescribeUserScramCredentialsRequest, flexible 0, [all(array_of!(SCRAM_USER_NAME))]);
layout!(SCRAM_DELETION, alter_user_scram_credentials_request::ScramCredentialDeletion => size_of::<alter_user_scram_credentials_response::AlterUserScramCredentialsResult>() + WORK, flexible 0, [
    all(Ty::Str), all(Ty::I8),
]);
layout!(SCRAM_UPSERTION, alter_user_scram_credentials_request::ScramCredentialUpsertion => size_of::<alter_user_scram_credentials_response::AlterUserScramCredentialsResult>() + 2 * WORK, flexible 0, [
    all(Ty::Str), all(Ty::I8), all(Ty::I32), all(Ty::Bytes), all(Ty::Bytes),
]);
layout!(ALTER_USER_SCRAM, AlterUserScramCredentialsRequest, flexible 0, [
    all(array_of!(SCRAM_DELETION)), all(array_of!(SCRAM_UPSERTION)),
]);

// AlterConfigs (flexible from 2), IncrementalAlterConfigs (flexible from 1),
// ListConfigResources (flexible from 0). Config values may be null (DELETE).
layout!(ALTER_CONFIGS_CONFIG, alter_configs_request::AlterableConfig => WORK, flexible 2, [
    all(Ty::Str), all(Ty::Str),
]);
layout!(ALTER_CONFIGS_RESOURCE, alter_configs_request::AlterConfigsResource => size_of::<alter_configs_response::AlterConfigsResourceResponse>() + WORK, flexible 2, [
    all(Ty::I8), all(Ty::Str), all(array_of!(ALTER_CONFIGS_CONFIG)),
]);
layout!(ALTER_CONFIGS, AlterConfigsRequest, flexible 2, [
    all(array_of!(ALTER_CONFIGS_RESOURCE)), all(Ty::Bool),
]);
layout!(INCREMENTAL_ALTER_CONFIG, incremental_alter_configs_request::AlterableConfig => WORK, flexible 1, [
    all(Ty::Str), all(Ty::I8), all(Ty::Str),
]);
layout!(INCREMENTAL_ALTER_RESOURCE, incremental_alter_configs_request::AlterConfigsResource => size_of::<incremental_alter_configs_response::AlterConfigsResourceResponse>() + WORK, flexible 1, [
    all(Ty::I8), all(Ty::Str), all(array_of!(INCREMENTAL_ALTER_CONFIG)),
]);
layout!(INCREMENTAL_ALTER_CONFIGS, IncrementalAlterConfigsRequest, flexible 1, [
    all(array_of!(INCREMENTAL_ALTER_RESOURCE)), all(Ty::Bool),
]);
layout!(LIST_CONFIG_RESOURCES, ListConfigResourcesRequest, flexible 0, [
    since(1, Ty::Array(&Ty::I8, 0)),
]);

/// The layout of `key`'s request body, for every API this broker serves.
pub fn request(key: ApiKey) -> Option<&'static Layout> {
    Some(match key {
        ApiKey::Produce => &PRODUCE,
        ApiKey::Fetch => &FETCH,
        ApiKey::ListOffsets => &LIST_OFFSETS,
        ApiKey::Metadata => &METADATA,
        ApiKey::ApiVersions => &API_VERSIONS,
        ApiKey::CreateTopics => &CREATE_TOPICS,
        ApiKey::DeleteTopics => &DELETE_TOPICS,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS,
        ApiKey::CreatePartitions => &CREATE_PARTITIONS,
        ApiKey::DeleteRecords => &DELETE_RECORDS,
        ApiKey::DescribeLogDirs => &DESCRIBE_LOG_DIRS,
        ApiKey::DescribeTopicPartitions => &DESCRIBE_TOPIC_PARTITIONS,
        ApiKey::ElectLeaders => &ELECT_LEADERS,
        ApiKey::AlterPartitionReassignments => &ALTER_PARTITION_REASSIGNMENTS,
        ApiKey::ListPartitionReassignments => &LIST_PARTITION_REASSIGNMENTS,
        ApiKey::DescribeClientQuotas => &DESCRIBE_CLIENT_QUOTAS,
        ApiKey::AlterClientQuotas => &ALTER_CLIENT_QUOTAS,
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER,
        ApiKey::FindCoordinator => &FIND_COORDINATOR,
        ApiKey::JoinGroup => &JOIN_GROUP,
        ApiKey::SyncGroup => &SYNC_GROUP,
        ApiKey::Heartbeat => &HEARTBEAT,
        ApiKey::LeaveGroup => &LEAVE_GROUP,
        ApiKey::OffsetCommit => &OFFSET_COMMIT,
        ApiKey::OffsetFetch => &OFFSET_FETCH,
        ApiKey::ListGroups => &LIST_GROUPS,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS,
        ApiKey::DeleteGroups => &DELETE_GROUPS,
        ApiKey::OffsetDelete => &OFFSET_DELETE,
        ApiKey::ConsumerGroupHeartbeat => &CONSUMER_HEARTBEAT,
        ApiKey::ConsumerGroupDescribe => &CONSUMER_GROUP_DESCRIBE,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID,
        ApiKey::AddPartitionsToTxn => &ADD_PARTITIONS_TO_TXN,
        ApiKey::AddOffsetsToTxn => &ADD_OFFSETS_TO_TXN,
        ApiKey::EndTxn => &END_TXN,
        ApiKey::TxnOffsetCommit => &TXN_OFFSET_COMMIT,
        ApiKey::DescribeTransactions => &DESCRIBE_TRANSACTIONS,
        ApiKey::ListTransactions => &LIST_TRANSACTIONS,
        ApiKey::DescribeProducers => &DESCRIBE_PRODUCERS,
        ApiKey::WriteTxnMarkers => &WRITE_TXN_MARKERS,
        ApiKey::SaslHandshake => &SASL_HANDSHAKE,
        ApiKey::SaslAuthenticate => &SASL_AUTHENTICATE,
        ApiKey::CreateAcls => &CREATE_ACLS,
        ApiKey::DescribeAcls => &DESCRIBE_ACLS,
        ApiKey::DeleteAcls => &DELETE_ACLS,
        ApiKey::DescribeUserScramCredentials => &DESCRIBE_USER_SCRAM,
        ApiKey::AlterUserScramCredentials => &ALTER_USER_SCRAM,
        ApiKey::AlterConfigs => &ALTER_CONFIGS,
        ApiKey::IncrementalAlterConfigs => &INCREMENTAL_ALTER_CONFIGS,
        ApiKey::ListConfigResources => &LIST_CONFIG_RESOURCES,
        _ => return None,
    })
}
