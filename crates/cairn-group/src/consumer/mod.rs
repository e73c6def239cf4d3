//! Kafka's consumer group protocol (KIP-848): the broker assigns partitions, and each member
//! reconciles towards its target assignment epoch by epoch.

pub mod assignor;
pub mod records;

use std::collections::{BTreeMap, BTreeSet};

/// A topic's id (a UUID's 16 bytes). Consumer-group records and heartbeats name topics by id.
pub type TopicId = [u8; 16];

/// Partitions per topic.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

use crate::coordinator::GroupCoordinator;
use crate::error::GroupError;
use crate::types::{
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse, Effects, TopicsSnapshot,
};

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat: joins, leaves, reconciles one member; `topics` is the broker's
    /// metadata now (the coordinator reads none itself).
    pub fn consumer_heartbeat(
        &mut self,
        _now: i64,
        _req: ConsumerHeartbeat,
        _topics: &TopicsSnapshot,
    ) -> (Result<ConsumerHeartbeatResponse, GroupError>, Effects) {
        (Err(GroupError::GroupIdNotFound), Effects::default())
    }

    /// ConsumerGroupDescribe, from the durable view. GROUP_ID_NOT_FOUND for unknown groups
    /// and classic ones.
    pub fn describe_consumer_group(
        &self,
        _id: &str,
    ) -> Result<ConsumerGroupDescription, GroupError> {
        Err(GroupError::GroupIdNotFound)
    }

    /// OffsetFetch v9+ names the member and its epoch: a consumer group checks them
    /// (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH); other groups accept anything.
    pub fn check_consumer_fetch(
        &self,
        _group: &str,
        _member_id: &str,
        _member_epoch: i32,
    ) -> Result<(), GroupError> {
        Ok(())
    }
}
