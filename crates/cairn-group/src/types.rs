//! Plain request/response types. The broker translates wire structs to and from these.

use crate::error::GroupError;

/// Opaque handle the broker uses to match a parked request with its eventual reply.
pub type ReplyToken = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.max.size`
    pub max_size: usize,
    /// `group.consumer.heartbeat.interval.ms`
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms`
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.max.size`
    pub consumer_max_size: usize,
    /// `group.consumer.assignors`: the first is the default.
    pub consumer_assignors: Vec<String>,
    /// `group.consumer.migration.policy`: may a live classic group become a consumer group
    /// (`upgrade`), and back (`downgrade`)?
    pub migration: MigrationPolicy,
    /// `offsets.retention.minutes`, in milliseconds
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (compared against UTF-16 length, as Java does)
    pub offset_metadata_max_bytes: usize,
    /// Kafka's internal guard for new members parked in a join.
    pub new_member_join_timeout_ms: i64,
    /// The largest record batch `__consumer_offsets` accepts (its `max.message.bytes`). A
    /// group record that would not fit is refused before the state it describes is adopted,
    /// as Kafka's coordinator runtime checks a batch's size before replaying its records.
    pub max_record_batch_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: usize::MAX,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_session_timeout_ms: 45_000,
            consumer_max_size: usize::MAX,
            consumer_assignors: vec!["uniform".to_string(), "range".to_string()],
            migration: MigrationPolicy::Bidirectional,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            new_member_join_timeout_ms: 300_000,
            max_record_batch_bytes: 1_048_588,
        }
    }
}

/// Kafka's `group.consumer.migration.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    Disabled,
    Upgrade,
    Downgrade,
    Bidirectional,
}

impl MigrationPolicy {
    /// The setting's value (any case); unknown values disable migration.
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "upgrade" => MigrationPolicy::Upgrade,
            "downgrade" => MigrationPolicy::Downgrade,
            "bidirectional" => MigrationPolicy::Bidirectional,
            _ => MigrationPolicy::Disabled,
        }
    }
    pub fn upgrade(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Upgrade | MigrationPolicy::Bidirectional
        )
    }
    pub fn downgrade(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Downgrade | MigrationPolicy::Bidirectional
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in ListGroups / DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinGroup {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Vec<u8>)>,
    /// Wire version: v4+ dynamic members get MEMBER_ID_REQUIRED first.
    pub api_version: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinMember>,
    pub skip_assignment: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncGroup {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// Checked only when present (the edge turns a missing v5 field into an error itself).
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(Result<JoinResponse, GroupError>),
    Sync(Result<SyncResponse, GroupError>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaveGroup {
    pub group_id: String,
    pub members: Vec<LeavingMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaveResult {
    /// Group-level error; when set, `members` is empty. For v0–2 the edge reports the single
    /// member's error here instead.
    pub error: Option<GroupError>,
    pub members: Vec<(LeavingMember, Result<(), GroupError>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// v2–4 `retention_time_ms`; -1 means the broker default.
    pub retention_time_ms: i64,
    pub api_version: i16,
    pub partitions: Vec<CommitPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitResult {
    /// The group-level error, if any; it is also copied into every partition.
    pub error: Option<GroupError>,
    pub partitions: Vec<(String, i32, Result<(), GroupError>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchResult {
    pub partitions: Vec<FetchedOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// The classic state; for a consumer group, see `state_name`.
    pub state: GroupState,
    /// The state's name as ListGroups reports it, for either type.
    pub state_name: &'static str,
    /// "" for simple groups; "consumer" for consumer groups.
    pub protocol_type: String,
    pub group_type: GroupType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Empty unless the group is Stable.
    pub metadata: Vec<u8>,
    /// Empty unless the group is Stable.
    pub assignment: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol, only when Stable.
    pub protocol: String,
    pub generation_id: i32,
    pub leader: Option<String>,
    pub members: Vec<MemberDescription>,
}

/// One `__consumer_offsets` record. `group_id` lets the broker pick the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub group_id: String,
    pub key: Vec<u8>,
    /// `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// The batch to write it in: offsets committed inside a transaction belong to that
    /// producer's batch, a transaction's outcome is a control (marker) batch.
    pub tag: cairn_runtime::BatchTag,
}

/// Everything an operation wants done outside the state machine.
///
/// Contract: append `records` (in order) to `__consumer_offsets` first; send `replies` only
/// once those records are durable. `rebalances` are informational (metrics, logs) and need
/// no durability; they may be handled at any time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Effects {
    pub records: Vec<Record>,
    pub replies: Vec<(ReplyToken, Reply)>,
    /// Every rebalance that ended during this operation (`outcome != InProgress`), oldest
    /// first. Each ended rebalance is reported exactly once.
    pub rebalances: Vec<RebalanceRecord>,
}

impl Effects {
    /// True when there is nothing at all to do: no records, no replies and no ended
    /// rebalances (so skipping an "empty" `Effects` never loses a metrics event).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.replies.is_empty() && self.rebalances.is_empty()
    }

    pub fn extend(&mut self, other: Effects) {
        self.records.extend(other.records);
        self.replies.extend(other.replies);
        self.rebalances.extend(other.rebalances);
    }
}

/// Why a rebalance started (the event that moved the group into PreparingRebalance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceCause {
    /// A new member (dynamic or static) joined. Also the cause of a new group's first
    /// rebalance.
    MemberJoined {
        member_id: String,
    },
    /// A member rejoined with different subscription/protocol metadata.
    MemberRejoinedWithNewMetadata {
        member_id: String,
    },
    /// The leader rejoined a Stable group with unchanged metadata.
    LeaderRejoined {
        member_id: String,
    },
    /// LeaveGroup (the first member removed, when one request removes several).
    MemberLeft {
        member_id: String,
    },
    /// A member's session expired (the first one, when several expire at the same tick).
    SessionTimeout {
        member_id: String,
    },
    /// The rebalance timeout (Java: `max.poll.interval.ms`) passed while the only members
    /// left were static members that had not rejoined; the join phase starts over for them.
    RebalanceTimeout {
        member_ids: Vec<String>,
    },
    /// Members that never sent SyncGroup within the rebalance timeout, removed.
    SyncTimeout {
        member_ids: Vec<String>,
    },
    /// A static member restarted with a new member id and the group had to rebalance.
    StaticMemberReplaced {
        instance_id: String,
    },
    /// A subscribed topic gained partitions (`on_topic_partitions_changed`).
    PartitionsAdded {
        topic: String,
    },
    /// A deleted topic. Reserved: the coordinator does not rebalance on topic deletion
    /// (consumers notice it in their metadata and rejoin), so it never produces this.
    TopicDeleted {
        topic: String,
    },
    /// Forced when loading (the group is over `group.max.size`).
    GroupLoaded,
    /// Consumer groups: a member changed its subscribed topic names or regex.
    SubscriptionChanged {
        member_id: String,
    },
    /// Consumer groups: a subscribed topic was created, deleted or gained partitions.
    MetadataChanged {
        topics: Vec<String>,
    },
    /// Consumer groups: a subscribed regular expression now matches other topics.
    RegexResolved {
        topics: Vec<String>,
    },
    /// Consumer groups: a member did not revoke its partitions within its rebalance timeout.
    MemberFenced {
        member_id: String,
    },
    Other(String),
}

impl RebalanceCause {
    /// A stable snake_case label, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RebalanceCause::MemberJoined { .. } => "member_joined",
            RebalanceCause::MemberRejoinedWithNewMetadata { .. } => "member_metadata_changed",
            RebalanceCause::LeaderRejoined { .. } => "leader_rejoined",
            RebalanceCause::MemberLeft { .. } => "member_left",
            RebalanceCause::SessionTimeout { .. } => "session_timeout",
            RebalanceCause::RebalanceTimeout { .. } => "rebalance_timeout",
            RebalanceCause::SyncTimeout { .. } => "sync_timeout",
            RebalanceCause::StaticMemberReplaced { .. } => "static_member_replaced",
            RebalanceCause::PartitionsAdded { .. } => "partitions_added",
            RebalanceCause::TopicDeleted { .. } => "topic_deleted",
            RebalanceCause::GroupLoaded => "group_loaded",
            RebalanceCause::SubscriptionChanged { .. } => "subscription_changed",
            RebalanceCause::MetadataChanged { .. } => "metadata_changed",
            RebalanceCause::RegexResolved { .. } => "regex_resolved",
            RebalanceCause::MemberFenced { .. } => "member_fenced",
            RebalanceCause::Other(_) => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceOutcome {
    InProgress,
    /// The leader's SyncGroup made the group Stable.
    Stable,
    /// Another rebalance started before this one finished.
    Superseded,
    /// Everyone left: the join phase ended with no members (the group is Empty).
    Emptied,
    /// The coordinator unloaded the group (`GroupCoordinator::unload`).
    Unloaded,
}

/// One rebalance of one group, for operators diagnosing rebalance storms. Kept only in the
/// coordinator's memory (never written to `__consumer_offsets`, so lost on restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebalanceRecord {
    pub group_id: String,
    /// Per-coordinator, strictly increasing across all groups.
    pub seq: u64,
    pub cause: RebalanceCause,
    /// The generation when it started.
    pub from_generation: i32,
    /// The generation it produced (set when the join phase completes).
    pub generation: Option<i32>,
    /// When the group entered PreparingRebalance.
    pub started_ms: i64,
    /// When the group entered CompletingRebalance (or Empty).
    pub join_completed_ms: Option<i64>,
    /// When the group became Stable or the rebalance ended otherwise. `None` for
    /// `Unloaded`, since `unload` carries no time.
    pub completed_ms: Option<i64>,
    /// Members of the generation it started from.
    pub members_before: usize,
    /// Members of the generation it produced.
    pub members_after: Option<usize>,
    /// For protocol type "consumer": partitions whose owner (member id, or instance id for
    /// static members) differs between the previous Stable assignment and the new one;
    /// partitions newly assigned or no longer assigned count as moved. `None` when the
    /// assignments cannot be decoded, for other protocol types, and for rebalances that
    /// produced no assignment (superseded, unloaded).
    pub partitions_moved: Option<usize>,
    pub outcome: RebalanceOutcome,
}

impl RebalanceRecord {
    /// Time spent in PreparingRebalance.
    pub fn preparing_ms(&self) -> Option<i64> {
        Some(self.join_completed_ms? - self.started_ms)
    }

    /// Time spent in CompletingRebalance.
    pub fn completing_ms(&self) -> Option<i64> {
        Some(self.completed_ms? - self.join_completed_ms?)
    }

    /// From the start of the rebalance to its end.
    pub fn total_ms(&self) -> Option<i64> {
        Some(self.completed_ms? - self.started_ms)
    }
}

/// What `replay` did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    Offset,
    Group,
    /// Unknown key type: the caller logs a warning and moves on.
    Unknown(i16),
    /// A transaction marker: the producer's pending offsets were committed or dropped.
    Marker,
}

/// A TxnOffsetCommit request (KIP-447 fields; `generation_id` -1 and `member_id` "" when the
/// client sends none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetCommit {
    pub group_id: String,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub topics: Vec<(String, Vec<TxnOffsetPartition>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnOffsetPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Per-topic, per-partition outcome of a TxnOffsetCommit.
pub type TxnCommitResult = Vec<(String, Vec<(i32, Result<(), GroupError>)>)>;

/// Which protocol a group speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupType {
    /// JoinGroup/SyncGroup groups, and simple (commit-only) groups.
    #[default]
    Classic,
    /// KIP-848 groups (ConsumerGroupHeartbeat).
    Consumer,
}

impl GroupType {
    /// The name ListGroups v5 and ConsumerGroupDescribe use.
    pub fn name(self) -> &'static str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
        }
    }
}

/// One topic as the broker knows it when a consumer group looks at metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: crate::consumer::TopicId,
    pub name: String,
    pub partitions: i32,
}

/// Every topic the broker has, handed to consumer-group operations (the coordinator reads no
/// metadata itself). Internal topics are left out by the broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicsSnapshot {
    pub by_name: std::collections::BTreeMap<String, TopicInfo>,
    /// Changes whenever the topics do (0: unknown). A group whose subscription has not changed
    /// since it last looked at this generation skips looking again, so a heartbeat of a large
    /// group does not walk every member's subscription.
    pub generation: u64,
}

impl TopicsSnapshot {
    pub fn new(topics: impl IntoIterator<Item = TopicInfo>) -> Self {
        TopicsSnapshot {
            by_name: topics.into_iter().map(|t| (t.name.clone(), t)).collect(),
            generation: 0,
        }
    }
}

/// A ConsumerGroupHeartbeat request. Fields a client did not change since its last heartbeat
/// arrive as `None` (or -1), and the member keeps what it had.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerHeartbeat {
    pub group_id: String,
    /// v0 lets the broker choose it (an empty id on join); v1 clients always send one.
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 is a static member leaving for a while.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// What the member owns now; `None`: unchanged.
    pub topic_partitions: Option<Vec<(crate::consumer::TopicId, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
    pub api_version: i16,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerHeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// `None`: unchanged since the member last heard it.
    pub assignment: Option<Vec<(crate::consumer::TopicId, Vec<i32>)>>,
}

/// ConsumerGroupDescribe's view of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// What it owns now (its current assignment).
    pub assignment: crate::consumer::Assignment,
    /// Where it is heading.
    pub target_assignment: crate::consumer::Assignment,
    /// Partitions it must still give up.
    pub pending_revocation: crate::consumer::Assignment,
    /// "stable", "unrevoked_partitions", "unreleased_partitions" or "unknown".
    pub state: &'static str,
    /// 0 classic, 1 consumer (ConsumerGroupDescribe v1's `member_type`).
    pub member_type: i8,
}

/// ConsumerGroupDescribe's view of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    /// "Empty", "Assigning", "Reconciling", "Stable" or "Dead".
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<ConsumerMemberDescription>,
}
