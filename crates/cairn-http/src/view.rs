//! What the HTTP layer asks of a broker, and the JSON shapes it answers with. The broker
//! implements [`BrokerView`]; this crate knows nothing of its internals.

use serde::Serialize;

/// Queries the HTTP layer needs. Every call must be cheap (served from the broker's lag snapshot
/// or a few atomic reads): handlers call them on the async runtime's threads, except `metrics`.
pub trait BrokerView: Send + Sync + 'static {
    fn health(&self) -> Health;
    fn groups(&self) -> GroupsPage;
    fn group(&self, group: &str) -> Option<GroupDetail>;
    fn rebalances(&self, group: &str) -> Option<Vec<Rebalance>>;
    fn topics(&self) -> Vec<TopicInfo>;
    /// The whole `/metrics` body in OpenMetrics text format.
    fn metrics(&self) -> String;
    /// Whether everything but `/health` asks for HTTP Basic credentials (the broker
    /// authenticates its Kafka clients). Cheap.
    fn http_credentials_required(&self) -> bool {
        false
    }
    /// Whether `password` is `user`'s (the broker's PLAIN or SCRAM users). May take milliseconds
    /// (PBKDF2): it is called off the async threads, and successes are remembered briefly.
    fn check_password(&self, _user: &str, _password: &str) -> bool {
        false
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Health {
    pub serving: bool,
    pub stores_loaded: bool,
    pub groups_loaded: bool,
    pub lag_snapshot_ms: Option<i64>,
    pub version: &'static str,
}

impl Health {
    /// What a listener that has no broker behind it (yet, or any more) says.
    pub fn not_ready() -> Health {
        Health {
            serving: false,
            stores_loaded: false,
            groups_loaded: false,
            lag_snapshot_ms: None,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    pub fn ready(&self) -> bool {
        self.serving && self.stores_loaded && self.groups_loaded
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupsPage {
    pub snapshot_ms: Option<i64>,
    pub refresh_ms: i64,
    pub groups: Vec<GroupOverview>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupOverview {
    pub group: String,
    /// "classic" (JoinGroup/SyncGroup, and simple groups) or "consumer" (KIP-848).
    #[serde(rename = "type")]
    pub group_type: &'static str,
    /// For a consumer group: Empty, Assigning, Reconciling or Stable.
    pub state: &'static str,
    pub protocol_type: String,
    pub assignor: Option<String>,
    /// A classic group's generation; a consumer group's group epoch.
    pub generation: i32,
    /// Consumer groups: the group epoch (as `generation`).
    pub group_epoch: Option<i32>,
    /// Consumer groups: the group epoch the target assignment was computed for.
    pub assignment_epoch: Option<i32>,
    pub members: usize,
    pub partitions: usize,
    pub uncommitted_partitions: usize,
    pub total_lag: i64,
    pub max_lag: i64,
    pub max_lag_seconds: f64,
    pub status: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupDetail {
    #[serde(flatten)]
    pub overview: GroupOverview,
    pub snapshot_ms: Option<i64>,
    pub leader: Option<String>,
    /// `members` is the overview's count; the members themselves are listed here.
    pub member_list: Vec<MemberInfo>,
    /// `partitions` is the overview's count; the partitions themselves are listed here.
    #[serde(rename = "partition_list")]
    pub partitions: Vec<PartitionLag>,
    pub lag_history: Vec<(i64, i64)>,
    pub rebalances: Vec<Rebalance>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberInfo {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub instance_id: Option<String>,
    /// What the member owns now.
    pub assignment: Vec<TopicPartitions>,
    /// Consumer groups: the epoch the member has reconciled to.
    pub member_epoch: Option<i32>,
    /// Consumer groups: "consumer", or "classic" for a member of the classic protocol still
    /// in the group (online migration).
    pub member_protocol: Option<&'static str>,
    /// Consumer groups: "stable", "unrevoked_partitions" (it must give some up first),
    /// "unreleased_partitions" (others still hold some of its target) or "unknown".
    pub member_state: Option<&'static str>,
    pub subscribed_topics: Option<Vec<String>>,
    pub subscribed_regex: Option<String>,
    /// Consumer groups: where the member is heading.
    pub target_assignment: Option<Vec<TopicPartitions>>,
    /// Consumer groups: target partitions it does not own yet.
    pub pending_assignment: Option<Vec<TopicPartitions>>,
    /// Consumer groups: partitions it still owns but must give up.
    pub pending_revocation: Option<Vec<TopicPartitions>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: Vec<i32>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: Option<i64>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub lag: Option<i64>,
    pub lag_seconds: Option<f64>,
    pub owner: Option<String>,
    /// Consumer groups: the member whose target assignment has the partition (it differs from
    /// `owner` while the partition moves).
    pub target_owner: Option<String>,
    pub status: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rebalance {
    pub seq: u64,
    pub cause: &'static str,
    /// The member id, instance id, topic or member ids behind the cause, if any.
    pub cause_detail: Option<String>,
    pub from_generation: i32,
    pub generation: Option<i32>,
    pub started_ms: i64,
    pub join_completed_ms: Option<i64>,
    pub completed_ms: Option<i64>,
    pub preparing_ms: Option<i64>,
    pub completing_ms: Option<i64>,
    /// Consumer groups: from the target assignment to every member reconciled to it (the
    /// `completing_ms` of a consumer group's epoch bump).
    pub reconciliation_ms: Option<i64>,
    pub total_ms: Option<i64>,
    pub members_before: usize,
    pub members_after: Option<usize>,
    pub partitions_moved: Option<usize>,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopicInfo {
    pub topic: String,
    pub id: String,
    pub internal: bool,
    pub partitions: Vec<TopicPartitionInfo>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopicPartitionInfo {
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Where read_committed consumers stop: the first offset of the oldest open transaction.
    pub last_stable_offset: i64,
    /// Transactions open on the partition (each holds the last stable offset at its start).
    pub open_transactions: usize,
    pub size_bytes: u64,
}
