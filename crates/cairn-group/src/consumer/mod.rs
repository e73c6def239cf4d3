//! Kafka's consumer group protocol (KIP-848): the broker assigns partitions, and each member
//! reconciles towards its target assignment epoch by epoch.

pub mod assignor;
pub mod records;

use std::collections::{BTreeMap, BTreeSet};

/// A topic's id (a UUID's 16 bytes). Consumer-group records and heartbeats name topics by id.
pub type TopicId = [u8; 16];

/// Partitions per topic.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;
