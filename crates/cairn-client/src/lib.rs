//! cairn-client: a small async client for the Kafka wire protocol.
//!
//! [`Connection`] is one pipelined connection to one broker with API version
//! negotiation; [`Client`] adds metadata, topic creation, produce, fetch and
//! offset lookups on top; [`groups`] adds the consumer-group requests and
//! [`transactions`] the transaction administration. All of
//! it works against any Kafka-compatible broker.

pub mod acl;
pub mod admin;
mod auth;
mod client;
pub mod configs;
mod connection;
pub mod consumer_member;
mod error;
pub mod groups;
pub mod member;
pub mod quotas;
pub mod records;
pub mod sasl;
pub mod security;
#[cfg(test)]
mod testing;
pub mod transactions;
pub mod txn_producer;

pub use admin::{
    AssignedPartitions, CommittedOffset, ConfigEntry, ConsumerGroupDescription,
    ConsumerMemberDescription, GroupDescription, GroupListing, LogDirInfo, LogDirPartition,
    MemberDescription, OffsetLookup, PartitionAnswer, PartitionFetch, PartitionOutcome,
};
pub use client::{
    BrokerInfo, Client, ClusterMetadata, FetchResult, PartitionInfo, ProduceAck, RawFetch,
    TopicInfo, DEFAULT_REQUEST_TIMEOUT, EARLIEST_OFFSET, LATEST_OFFSET,
};
pub use configs::{ConfigOp, DescribedConfig, RESOURCE_BROKER, RESOURCE_TOPIC};
pub use connection::{Connection, ResponseFuture, DEFAULT_CONNECT_TIMEOUT, MAX_FRAME_BYTES};
pub use error::{Error, Result};
pub use groups::{JoinGroupParams, Joined, JoinedMember, PartitionOffset};
pub use kafka_protocol;
pub use records::{ConsumedRecord, ProduceRecord};
pub use security::{SaslCredentials, SaslMechanism, Security, SecurityProtocol, TlsSettings};
/// Topic ids, as consumer-protocol assignments carry them.
pub use uuid::Uuid;
