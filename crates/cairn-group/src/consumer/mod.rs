//! Kafka's consumer group protocol (KIP-848): the broker assigns partitions, and each member
//! reconciles towards its target assignment epoch by epoch.

pub mod assignor;
mod migration;
pub mod records;

/// A topic's id (a UUID's 16 bytes). Consumer-group records and heartbeats name topics by id.
pub type TopicId = [u8; 16];

/// Partitions per topic.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

use std::collections::{BTreeMap, BTreeSet};

use cairn_runtime::BatchTag;

use self::assignor::MemberSpec;
use self::records::{
    ClassicMemberMetadata, ConsumerKey, CurrentMemberAssignmentValue, GroupMetadataValue,
    MemberMetadataValue, PartitionMetadataValue, TargetAssignmentMemberValue,
    TargetAssignmentMetadataValue, TopicMetadata,
};
use crate::coordinator::GroupCoordinator;
use crate::error::GroupError;
use crate::group::Group;
use crate::history::{self, Cx};
use crate::records::RecordError;
use crate::types::{
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatResponse,
    ConsumerMemberDescription, Effects, GroupState, RebalanceCause, Record, Replayed,
    TopicsSnapshot,
};

/// `member_epoch` of a member leaving for good.
pub const LEAVE_EPOCH: i32 = -1;
/// `member_epoch` of a static member leaving for a while (its assignment is kept until its
/// session times out).
pub const LEAVE_STATIC_EPOCH: i32 = -2;

/// Where a member stands in reconciling towards its target (Kafka's `MemberState`, whose
/// byte values the current-assignment record stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberState {
    /// It must first give up partitions it still reports as owned.
    UnrevokedPartitions,
    /// Some of its target partitions are still held by other members.
    UnreleasedPartitions,
    #[default]
    Stable,
    Unknown,
}

impl MemberState {
    pub fn code(self) -> i8 {
        match self {
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Stable => 0,
            MemberState::Unknown => 127,
        }
    }

    pub fn from_code(c: i8) -> Self {
        match c {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
            MemberState::Stable => "stable",
            MemberState::Unknown => "unknown",
        }
    }
}

/// One member of a consumer group: its metadata record, its current-assignment record, and
/// its timers (not recorded: a load restarts them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub names: Vec<String>,
    pub regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    /// The member epoch at which each assigned partition was given to it: a commit naming an
    /// older epoch is still accepted for a partition it has held since then (KIP-1251). Not
    /// recorded; a load starts every partition at the member's epoch.
    pub partition_epochs: BTreeMap<(TopicId, i32), i32>,
    pub session_deadline: i64,
    /// (deadline, member epoch): fence the member if it is still revoking at that epoch then.
    pub rebalance_deadline: Option<(i64, i32)>,
    /// Set for a member speaking the classic protocol (JoinGroup, SyncGroup, Heartbeat).
    pub classic: Option<ClassicMemberMetadata>,
    /// A classic member told to rejoin must do so by then, or it is fenced. Not recorded.
    pub join_deadline: Option<i64>,
    /// A classic member that joined must send its SyncGroup by then. Not recorded.
    pub sync_deadline: Option<i64>,
}

impl CMember {
    fn new(id: &str) -> Self {
        CMember {
            id: id.to_string(),
            rebalance_timeout_ms: -1,
            ..CMember::default()
        }
    }

    /// Metadata only, as the member-metadata record holds it.
    fn metadata(&self) -> MemberMetadataValue {
        MemberMetadataValue {
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_topic_names: self.names.clone(),
            subscribed_topic_regex: self.regex.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            server_assignor: self.server_assignor.clone(),
            classic: self.classic.clone(),
        }
    }

    /// The session timeout: a classic member's own, else the group's setting.
    fn session_timeout_ms(&self, config: &crate::types::GroupConfig) -> i32 {
        self.classic
            .as_ref()
            .map_or(config.consumer_session_timeout_ms, |c| c.session_timeout_ms)
    }

    fn current(&self) -> CurrentMemberAssignmentValue {
        CurrentMemberAssignmentValue {
            member_epoch: self.epoch,
            previous_member_epoch: self.previous_epoch,
            state: self.state.code(),
            assigned: self.assigned.clone(),
            pending_revocation: self.pending_revocation.clone(),
        }
    }

    fn same_current(&self, o: &CMember) -> bool {
        self.epoch == o.epoch
            && self.previous_epoch == o.previous_epoch
            && self.state == o.state
            && self.assigned == o.assigned
            && self.pending_revocation == o.pending_revocation
    }

    fn reconciled_to(&self, epoch: i32) -> bool {
        self.state == MemberState::Stable && self.epoch == epoch
    }
}

/// A consumer group's recorded state (records 3 to 8) and its members' timers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    /// The subscribed topics that exist, as the group epoch saw them: name → (id, partitions).
    pub metadata: BTreeMap<String, (TopicId, i32)>,
    pub members: BTreeMap<String, CMember>,
    pub target: BTreeMap<String, Assignment>,
    /// Who holds each partition now (assigned or still revoking), at which member epoch.
    pub owners: BTreeMap<(TopicId, i32), (String, i32)>,
    /// The topics generation (see [`TopicsSnapshot::generation`]) the subscription metadata
    /// was last checked against. Not recorded.
    pub checked_generation: u64,
    /// Subscription regexes already resolved for the group. Kafka resolves a new regex in the
    /// background, so the heartbeat that brings it is answered without its topics and they
    /// follow at a later heartbeat; clients (and librdkafka's own tests) expect that shape.
    /// Not recorded: a load counts every regex its members use as resolved.
    pub resolved_regexes: BTreeSet<String>,
    /// Some regex was seen unresolved: the next heartbeat must look at the topics again.
    pub regex_pending: bool,
}

impl ConsumerGroup {
    /// Kafka's consumer group states.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| !m.reconciled_to(self.assignment_epoch))
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn static_member(&self, instance_id: &str) -> Option<&CMember> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// Topic names some member subscribes to by name.
    fn subscribed_names(&self) -> BTreeSet<&str> {
        self.members
            .values()
            .flat_map(|m| m.names.iter().map(String::as_str))
            .collect()
    }

    fn id_to_name(&self) -> BTreeMap<TopicId, &str> {
        self.metadata
            .iter()
            .map(|(n, (id, _))| (*id, n.as_str()))
            .collect()
    }

    /// Drops what `member` holds from the owners map.
    fn release(&mut self, member: &str) {
        self.owners.retain(|_, (m, _)| m != member);
    }

    fn hold(&mut self, m: &CMember) {
        for (t, ps) in m.assigned.iter().chain(&m.pending_revocation) {
            for p in ps {
                self.owners.insert((*t, *p), (m.id.clone(), m.epoch));
            }
        }
    }
}

fn rec(group: &str, key: ConsumerKey, value: Option<Vec<u8>>) -> Record {
    Record {
        group_id: group.to_string(),
        key: records::encode_key(&key),
        value,
        tag: BatchTag::Plain,
    }
}

fn member_key(group: &str, member: &str) -> (String, String) {
    (group.to_string(), member.to_string())
}

/// The records that remove a member: its current assignment, target and metadata, in the
/// order Kafka writes them.
fn remove_member_records(group: &str, member: &str, out: &mut Vec<Record>) {
    let (g, m) = member_key(group, member);
    out.push(rec(
        group,
        ConsumerKey::CurrentMemberAssignment {
            group: g.clone(),
            member: m.clone(),
        },
        None,
    ));
    out.push(rec(
        group,
        ConsumerKey::TargetAssignmentMember {
            group: g.clone(),
            member: m.clone(),
        },
        None,
    ));
    out.push(rec(
        group,
        ConsumerKey::MemberMetadata {
            group: g,
            member: m,
        },
        None,
    ));
}

fn metadata_record(group: &str, metadata: &BTreeMap<String, (TopicId, i32)>) -> Record {
    let v = PartitionMetadataValue {
        topics: metadata
            .iter()
            .map(|(n, (id, p))| TopicMetadata {
                id: *id,
                name: n.clone(),
                partitions: *p,
            })
            .collect(),
    };
    rec(
        group,
        ConsumerKey::PartitionMetadata {
            group: group.to_string(),
        },
        Some(records::encode_partition_metadata(&v)),
    )
}

fn epoch_record(group: &str, epoch: i32) -> Record {
    rec(
        group,
        ConsumerKey::GroupMetadata {
            group: group.to_string(),
        },
        Some(records::encode_group_metadata(&GroupMetadataValue {
            epoch,
        })),
    )
}

fn member_record(group: &str, m: &CMember) -> Record {
    rec(
        group,
        ConsumerKey::MemberMetadata {
            group: group.to_string(),
            member: m.id.clone(),
        },
        Some(records::encode_member_metadata(&m.metadata())),
    )
}

fn current_record(group: &str, m: &CMember) -> Record {
    rec(
        group,
        ConsumerKey::CurrentMemberAssignment {
            group: group.to_string(),
            member: m.id.clone(),
        },
        Some(records::encode_current_assignment(&m.current())),
    )
}

fn target_record(group: &str, member: &str, a: &Assignment) -> Record {
    rec(
        group,
        ConsumerKey::TargetAssignmentMember {
            group: group.to_string(),
            member: member.to_string(),
        },
        Some(records::encode_target_member(
            &TargetAssignmentMemberValue {
                partitions: a.clone(),
            },
        )),
    )
}

fn target_epoch_record(group: &str, epoch: i32) -> Record {
    rec(
        group,
        ConsumerKey::TargetAssignmentMetadata {
            group: group.to_string(),
        },
        Some(records::encode_target_metadata(
            &TargetAssignmentMetadataValue {
                assignment_epoch: epoch,
            },
        )),
    )
}

/// Every record that deletes the group, in Kafka's order: members' current assignments,
/// targets, metadata; then the target epoch, the partition metadata and the group epoch.
pub(crate) fn tombstones(group: &str, cg: &ConsumerGroup, out: &mut Vec<Record>) {
    let g = group.to_string();
    for id in cg.members.keys() {
        out.push(rec(
            group,
            ConsumerKey::CurrentMemberAssignment {
                group: g.clone(),
                member: id.clone(),
            },
            None,
        ));
    }
    for id in cg.target.keys() {
        out.push(rec(
            group,
            ConsumerKey::TargetAssignmentMember {
                group: g.clone(),
                member: id.clone(),
            },
            None,
        ));
    }
    for id in cg.members.keys() {
        out.push(rec(
            group,
            ConsumerKey::MemberMetadata {
                group: g.clone(),
                member: id.clone(),
            },
            None,
        ));
    }
    out.push(rec(
        group,
        ConsumerKey::TargetAssignmentMetadata { group: g.clone() },
        None,
    ));
    out.push(rec(
        group,
        ConsumerKey::PartitionMetadata { group: g.clone() },
        None,
    ));
    out.push(rec(group, ConsumerKey::GroupMetadata { group: g }, None));
}

/// Wraps a subscription pattern so that it must match a whole topic name, as Kafka's RE2/J
/// `matches()` does.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, GroupError> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| GroupError::InvalidRegularExpression(e.to_string()))
}

fn is_subset(owned: &[(TopicId, Vec<i32>)], assigned: &Assignment) -> bool {
    owned.iter().all(|(t, ps)| {
        ps.iter()
            .all(|p| assigned.get(t).is_some_and(|a| a.contains(p)))
    })
}

fn owns_any(owned: Option<&[(TopicId, Vec<i32>)]>, revoking: &Assignment) -> bool {
    let Some(owned) = owned else {
        // Not told: assume it still holds them.
        return true;
    };
    owned.iter().any(|(t, ps)| {
        revoking
            .get(t)
            .is_some_and(|r| ps.iter().any(|p| r.contains(p)))
    })
}

fn flatten(a: &Assignment) -> Vec<(TopicId, Vec<i32>)> {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .collect()
}

/// One reconciliation step of Kafka's current-assignment builder: from the member's current
/// assignment towards `target` at `target_epoch`. `held_elsewhere` says whether another
/// member still holds a partition (then it cannot be given yet).
fn reconcile(
    m: &CMember,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&[(TopicId, Vec<i32>)]>,
    held_elsewhere: &dyn Fn(&TopicId, i32) -> bool,
) -> CMember {
    match m.state {
        MemberState::Stable if m.epoch == target_epoch => m.clone(),
        MemberState::Stable | MemberState::UnreleasedPartitions => {
            next_assignment(m, m.epoch, target_epoch, target, owned, held_elsewhere)
        }
        MemberState::UnrevokedPartitions => {
            if owns_any(owned, &m.pending_revocation) {
                m.clone()
            } else {
                next_assignment(m, m.epoch + 1, target_epoch, target, owned, held_elsewhere)
            }
        }
        MemberState::Unknown => {
            next_assignment(m, target_epoch, target_epoch, target, owned, held_elsewhere)
        }
    }
}

fn next_assignment(
    m: &CMember,
    epoch: i32,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&[(TopicId, Vec<i32>)]>,
    held_elsewhere: &dyn Fn(&TopicId, i32) -> bool,
) -> CMember {
    let mut assigned = Assignment::new();
    let mut revoking = Assignment::new();
    let mut adding = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<TopicId> = target.keys().chain(m.assigned.keys()).copied().collect();
    let empty = BTreeSet::new();
    for t in topics {
        let tgt = target.get(&t).unwrap_or(&empty);
        let cur = m.assigned.get(&t).unwrap_or(&empty);
        let keep: BTreeSet<i32> = cur.intersection(tgt).copied().collect();
        let drop: BTreeSet<i32> = cur.difference(&keep).copied().collect();
        let mut add: BTreeSet<i32> = tgt.difference(&keep).copied().collect();
        let before = add.len();
        add.retain(|p| !held_elsewhere(&t, *p));
        unreleased |= add.len() != before;
        if !keep.is_empty() {
            assigned.insert(t, keep);
        }
        if !drop.is_empty() {
            revoking.insert(t, drop);
        }
        if !add.is_empty() {
            adding.insert(t, add);
        }
    }
    let mut out = m.clone();
    let bump = |out: &mut CMember, e: i32| {
        if out.epoch != e {
            out.previous_epoch = out.epoch;
            out.epoch = e;
        }
    };
    if !revoking.is_empty() && owns_any(owned, &revoking) {
        out.state = MemberState::UnrevokedPartitions;
        bump(&mut out, epoch);
        out.assigned = assigned;
        out.pending_revocation = revoking;
        return out;
    }
    for (t, ps) in adding {
        assigned.entry(t).or_default().extend(ps);
    }
    out.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
    bump(&mut out, target_epoch);
    out.assigned = assigned;
    out.pending_revocation = Assignment::new();
    out
}

/// What a heartbeat decided besides its records: the member's timers, set once the records
/// are applied.
#[derive(Default)]
struct Timers {
    member_id: String,
    /// A new group epoch and why: starts a rebalance record.
    /// (why, new epoch, members before the change).
    bumped: Option<(RebalanceCause, i32, usize)>,
    /// The topics generation the group's subscription was checked against.
    checked_generation: u64,
    /// Regexes seen for the first time (resolved from the next heartbeat on); `None`: the
    /// subscriptions were not looked at.
    new_regexes: Option<BTreeSet<String>>,
    session_deadline: i64,
    /// `Some(None)`: cancel the rebalance timer; `Some(Some(..))`: arm it.
    rebalance: Option<Option<(i64, i32)>>,
    /// A classic member's join and sync timers: (join deadline, sync deadline).
    classic: Option<(Option<i64>, Option<i64>)>,
    /// The group was just converted from a classic one: every member's session starts now.
    upgraded: bool,
    /// The group becomes a classic one again (its last consumer-protocol member left).
    downgrade: Option<migration::Downgrade>,
}

/// How a member came to this update (see [`GroupCoordinator::advance`]).
struct MemberChange<'a> {
    new_member: bool,
    /// It replaced a static member with the same instance id.
    replaced: bool,
    /// The partitions it reports owning (`None`: not reported).
    owned: Option<&'a [(TopicId, Vec<i32>)]>,
    /// Why the group epoch would move, if known before looking at the subscriptions.
    cause: Option<RebalanceCause>,
    members_before: usize,
}

/// What [`GroupCoordinator::advance`] decided for one member.
struct Advanced {
    reconciled: CMember,
    bumped: Option<(RebalanceCause, i32, usize)>,
    new_regexes: Option<BTreeSet<String>>,
    rebalance: Option<Option<(i64, i32)>>,
}

/// A new incarnation of a static member takes the old one's place, target included; its
/// metadata and current assignment are written by the caller like any new member's.
fn replace_static(
    gid: &str,
    cg: &mut ConsumerGroup,
    old: &str,
    member: &CMember,
    fx: &mut Effects,
) {
    let target = cg.target.get(old).cloned().unwrap_or_default();
    remove_member_records(gid, old, &mut fx.records);
    cg.members.remove(old);
    cg.release(old);
    cg.target.remove(old);
    fx.records.push(target_record(gid, &member.id, &target));
    cg.target.insert(member.id.clone(), target);
    cg.hold(member);
    cg.members.insert(member.id.clone(), member.clone());
}

fn invalid(msg: &str) -> GroupError {
    GroupError::InvalidRequest(msg.to_string())
}

impl GroupCoordinator {
    fn validate_heartbeat(&self, req: &ConsumerHeartbeat) -> Result<(), GroupError> {
        if req.group_id.is_empty() {
            return Err(invalid("GroupId can't be empty."));
        }
        if req.instance_id.as_deref() == Some("") {
            return Err(invalid("InstanceId can't be empty."));
        }
        if req.rack_id.as_deref() == Some("") {
            return Err(invalid("RackId can't be empty."));
        }
        if req.api_version >= 1 && req.member_id.is_empty() {
            return Err(invalid("MemberId can't be empty."));
        }
        match req.member_epoch {
            0 => {
                if req.rebalance_timeout_ms == -1 {
                    return Err(invalid(
                        "RebalanceTimeoutMs must be provided in first request.",
                    ));
                }
                if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
                    return Err(invalid("TopicPartitions must be empty when (re-)joining."));
                }
                if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                    return Err(invalid(
                        "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                    ));
                }
            }
            LEAVE_STATIC_EPOCH if req.instance_id.is_none() => {
                return Err(invalid("InstanceId can't be null."));
            }
            e if e < LEAVE_STATIC_EPOCH => return Err(invalid("MemberEpoch is invalid.")),
            _ => {}
        }
        if let Some(a) = &req.server_assignor {
            if !self.config.consumer_assignors.iter().any(|n| n == a) {
                return Err(GroupError::UnsupportedAssignor);
            }
        }
        if let Some(r) = &req.subscribed_topic_regex {
            compile_regex(r)?;
        }
        Ok(())
    }

    /// ConsumerGroupHeartbeat: joins, leaves, reconciles one member; `topics` is the broker's
    /// metadata now (the coordinator reads none itself).
    pub fn consumer_heartbeat(
        &mut self,
        now: i64,
        req: ConsumerHeartbeat,
        topics: &TopicsSnapshot,
    ) -> (Result<ConsumerHeartbeatResponse, GroupError>, Effects) {
        self.arm_expiry(now);
        self.save(&req.group_id);
        let mut fx = Effects::default();
        let result = self
            .validate_heartbeat(&req)
            .and_then(|()| self.heartbeat_inner(now, &req, topics, &mut fx));
        let result = match result {
            Ok((resp, timers)) => {
                self.apply_keeping_history(now, &req.group_id, &fx);
                self.after_apply(now, &req.group_id, timers, &mut fx);
                Ok(resp)
            }
            Err(e) => {
                fx.records.clear();
                Err(e)
            }
        };
        (result, fx)
    }

    /// Applies records that may change the group's type: a conversion deletes one type's
    /// records and writes the other's, and the group's rebalance history survives it.
    fn apply_keeping_history(&mut self, now: i64, gid: &str, fx: &Effects) {
        let history = self.groups.get(gid).map(|g| g.history.clone());
        self.apply(now, fx);
        if let (Some(h), Some(g)) = (history, self.groups.get_mut(gid)) {
            if g.history.is_empty() {
                g.history = h;
            }
        }
    }

    /// Sets a member's timers once its records are applied, and notes a group that has
    /// finished reconciling in its rebalance history.
    fn after_apply(&mut self, now: i64, group: &str, timers: Option<Timers>, fx: &mut Effects) {
        let mut timers = timers;
        if let Some(d) = timers.as_mut().and_then(|t| t.downgrade.take()) {
            self.finish_downgrade(now, group, d, fx);
            return;
        }
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if let Some(t) = timers {
            if let Some(cg) = g.consumer.as_mut() {
                cg.checked_generation = t.checked_generation;
                if let Some(new) = t.new_regexes {
                    cg.regex_pending = !new.is_empty();
                    cg.resolved_regexes.extend(new);
                }
            }
            if t.upgraded {
                if let Some(cg) = g.consumer.as_mut() {
                    for m in cg.members.values_mut() {
                        let session = m
                            .classic
                            .as_ref()
                            .map_or(self.config.consumer_session_timeout_ms, |c| {
                                c.session_timeout_ms
                            });
                        m.session_deadline = now + i64::from(session);
                    }
                }
            }
            if let Some(m) = g
                .consumer
                .as_mut()
                .and_then(|cg| cg.members.get_mut(&t.member_id))
            {
                m.session_deadline = t.session_deadline;
                if let Some(r) = t.rebalance {
                    m.rebalance_deadline = r;
                }
                if let Some((join, sync)) = t.classic {
                    m.join_deadline = join;
                    m.sync_deadline = sync;
                }
            }
            if let Some((cause, epoch, before)) = t.bumped {
                let mut cx = Cx::new(&self.config, &mut self.rebalance_seq);
                let after = g.consumer.as_ref().map_or(0, |c| c.members.len());
                start_history(g, now, &mut cx, cause, epoch, (before, after), fx);
            }
        }
        if let Some(cg) = g.consumer.as_mut() {
            forget_unused_regexes(cg);
        }
        settle(g, now, fx);
    }

    fn heartbeat_inner(
        &mut self,
        now: i64,
        req: &ConsumerHeartbeat,
        topics: &TopicsSnapshot,
        fx: &mut Effects,
    ) -> Result<(ConsumerHeartbeatResponse, Option<Timers>), GroupError> {
        let gid = req.group_id.as_str();
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == LEAVE_STATIC_EPOCH {
            return self.leave(now, req, topics, fx);
        }
        let joining = req.member_epoch == 0;
        // The group: created by a first join; an empty classic group becomes a consumer
        // group (its record is removed; offsets stay).
        let live_classic = self.groups.get(gid).is_some_and(|g| {
            g.consumer.is_none() && !(g.members.is_empty() && g.pending.is_empty())
        });
        // A live classic group is upgraded in place when the policy allows it.
        let upgraded = joining && live_classic;
        let mut cg = match self.groups.get(gid) {
            Some(_) if upgraded => self.upgrade(gid, topics, fx)?,
            Some(g) => match &g.consumer {
                Some(cg) => (**cg).clone(),
                None if joining && g.members.is_empty() && g.pending.is_empty() => {
                    if g.stored.is_some() {
                        fx.records.push(g.tombstone_record());
                    }
                    ConsumerGroup::default()
                }
                None => return Err(GroupError::GroupIdNotFound),
            },
            None if joining => ConsumerGroup::default(),
            None => return Err(GroupError::GroupIdNotFound),
        };
        let members_before = cg.members.len();
        let new_member = !cg.members.contains_key(&req.member_id)
            && req
                .instance_id
                .as_deref()
                .is_none_or(|i| cg.static_member(i).is_none());
        if new_member && cg.members.len() >= self.config.consumer_max_size {
            return Err(GroupError::GroupMaxSizeReached);
        }
        let member_id = if req.member_id.is_empty() {
            self.next_uuid()
        } else {
            req.member_id.clone()
        };
        let owned = req.topic_partitions.as_deref();
        let mut cause: Option<RebalanceCause> = None;
        // The member as it is, and the id of a static member it replaces.
        let (member, replaced) = match &req.instance_id {
            None => {
                let m = match cg.members.get(&member_id) {
                    Some(m) => m.clone(),
                    None if joining => CMember::new(&member_id),
                    None => return Err(GroupError::UnknownMemberId),
                };
                check_epoch(&m, req.member_epoch, owned)?;
                (m, None)
            }
            Some(instance) => match cg.static_member(instance).cloned() {
                None if joining => (CMember::new(&member_id), None),
                None => return Err(GroupError::UnknownMemberId),
                Some(old) if joining => {
                    if old.epoch != LEAVE_STATIC_EPOCH {
                        return Err(GroupError::UnreleasedInstanceId);
                    }
                    let mut m = old.clone();
                    m.id = member_id.clone();
                    m.epoch = 0;
                    m.previous_epoch = 0;
                    m.partition_epochs.clear();
                    (m, Some(old.id))
                }
                Some(old) => {
                    if old.id != member_id {
                        return Err(GroupError::FencedInstanceId);
                    }
                    check_epoch(&old, req.member_epoch, owned)?;
                    (old, None)
                }
            },
        };
        if new_member && replaced.is_none() {
            cause = Some(RebalanceCause::MemberJoined {
                member_id: member_id.clone(),
            });
        }
        if let Some(old) = &replaced {
            replace_static(gid, &mut cg, old, &member, fx);
        }
        // 1. The member's metadata.
        let mut updated = member.clone();
        if req.instance_id.is_some() {
            updated.instance_id = req.instance_id.clone();
        }
        if req.rack_id.is_some() {
            updated.rack_id = req.rack_id.clone();
        }
        if req.rebalance_timeout_ms != -1 {
            updated.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if req.server_assignor.is_some() {
            updated.server_assignor = req.server_assignor.clone();
        }
        if let Some(n) = &req.subscribed_topic_names {
            updated.names = n.clone();
        }
        if let Some(r) = &req.subscribed_topic_regex {
            // An empty pattern clears the regex subscription, as Kafka's client sends it.
            updated.regex = Some(r.clone()).filter(|r| !r.is_empty());
        }
        updated.client_id = req.client_id.clone();
        updated.client_host = req.client_host.clone();
        // A member heartbeating speaks the consumer protocol from now on.
        updated.classic = None;
        updated.join_deadline = None;
        updated.sync_deadline = None;
        let change = MemberChange {
            new_member,
            replaced: replaced.is_some(),
            owned,
            cause,
            members_before,
        };
        let step = self.advance(now, gid, &mut cg, &member, updated, change, topics, fx);
        let reconciled = step.reconciled;
        let full = joining
            || (req.rebalance_timeout_ms != -1
                && req.subscribed_topic_names.is_some()
                && req.topic_partitions.is_some());
        let assignment =
            (full || reconciled.assigned != member.assigned).then(|| flatten(&reconciled.assigned));
        Ok((
            ConsumerHeartbeatResponse {
                member_id: reconciled.id.clone(),
                member_epoch: reconciled.epoch,
                heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms,
                assignment,
            },
            Some(Timers {
                member_id: reconciled.id.clone(),
                bumped: step.bumped,
                checked_generation: topics.generation,
                new_regexes: step.new_regexes,
                session_deadline: now + i64::from(self.config.consumer_session_timeout_ms),
                rebalance: step.rebalance,
                classic: None,
                upgraded,
                downgrade: None,
            }),
        ))
    }

    /// Steps 1 to 3 of a member's update, the same for both protocols: the member's metadata
    /// record, the subscription metadata and group epoch, the target assignment when the epoch
    /// moved past it, and the member's reconciliation towards its target.
    #[allow(clippy::too_many_arguments)]
    fn advance(
        &mut self,
        now: i64,
        gid: &str,
        cg: &mut ConsumerGroup,
        member: &CMember,
        updated: CMember,
        change: MemberChange<'_>,
        topics: &TopicsSnapshot,
        fx: &mut Effects,
    ) -> Advanced {
        let MemberChange {
            new_member,
            replaced,
            owned,
            mut cause,
            members_before,
        } = change;
        let mut bump = false;
        let fresh_id = new_member || replaced;
        if fresh_id || updated.metadata() != member.metadata() {
            fx.records.push(member_record(gid, &updated));
            if updated.names != member.names || updated.regex != member.regex {
                bump = true;
                if cause.is_none() {
                    cause = Some(RebalanceCause::SubscriptionChanged {
                        member_id: updated.id.clone(),
                    });
                }
            }
        }
        cg.members.insert(updated.id.clone(), updated.clone());
        // The subscribed topics as they exist now, unless neither the topics nor the
        // subscriptions changed since the group last looked.
        let unchanged = topics.generation != 0
            && topics.generation == cg.checked_generation
            && !bump
            && !new_member
            && !replaced
            && !cg.regex_pending;
        let (metadata, new_regexes) = if unchanged {
            (cg.metadata.clone(), None)
        } else {
            let (m, new) = self.subscription_metadata(cg, topics);
            (m, Some(new))
        };
        if metadata != cg.metadata {
            if cause.is_none() {
                cause = Some(metadata_cause(cg, &cg.metadata, &metadata));
            }
            fx.records.push(metadata_record(gid, &metadata));
            cg.metadata = metadata;
            bump = true;
        }
        let mut epoch = cg.epoch;
        if bump {
            epoch += 1;
            fx.records.push(epoch_record(gid, epoch));
            cg.epoch = epoch;
        }
        // 2. A new target assignment when the group epoch moved past it.
        if epoch > cg.assignment_epoch {
            let new_target = self.compute_target(cg);
            for (id, a) in &new_target {
                if cg.target.get(id) != Some(a) {
                    fx.records.push(target_record(gid, id, a));
                }
            }
            fx.records.push(target_epoch_record(gid, epoch));
            cg.target = new_target;
            cg.assignment_epoch = epoch;
        }
        // 3. Reconcile this member.
        let target = cg.target.get(&updated.id).cloned().unwrap_or_default();
        let mine = updated.id.clone();
        let owners = &cg.owners;
        let held = |t: &TopicId, p: i32| owners.get(&(*t, p)).is_some_and(|(m, _)| *m != mine);
        let reconciled = if updated.reconciled_to(cg.assignment_epoch) {
            updated.clone()
        } else {
            reconcile(&updated, cg.assignment_epoch, &target, owned, &held)
        };
        let mut rebalance = None;
        let changed = !reconciled.same_current(&updated);
        if fresh_id || changed {
            fx.records.push(current_record(gid, &reconciled));
            // Only consumer-protocol members have a rebalance timer; classic ones have the
            // join and sync timers instead.
            let revoking = reconciled.state == MemberState::UnrevokedPartitions
                && reconciled.classic.is_none();
            rebalance = Some(revoking.then(|| {
                (
                    now + i64::from(reconciled.rebalance_timeout_ms.max(0)),
                    reconciled.epoch,
                )
            }));
        }
        cg.members.insert(reconciled.id.clone(), reconciled.clone());
        Advanced {
            reconciled,
            bumped: cause.filter(|_| bump).map(|c| (c, epoch, members_before)),
            new_regexes,
            rebalance,
        }
    }

    /// Leaving: for good (-1) or, for a static member, for a while (-2).
    fn leave(
        &mut self,
        now: i64,
        req: &ConsumerHeartbeat,
        topics: &TopicsSnapshot,
        fx: &mut Effects,
    ) -> Result<(ConsumerHeartbeatResponse, Option<Timers>), GroupError> {
        let gid = req.group_id.as_str();
        let cg = self
            .groups
            .get(gid)
            .and_then(|g| g.consumer.as_deref())
            .ok_or(GroupError::GroupIdNotFound)?;
        let member = match &req.instance_id {
            None => cg
                .members
                .get(&req.member_id)
                .ok_or(GroupError::UnknownMemberId)?,
            Some(i) => {
                let m = cg.static_member(i).ok_or(GroupError::UnknownMemberId)?;
                if m.id != req.member_id {
                    return Err(GroupError::FencedInstanceId);
                }
                m
            }
        };
        let member_id = member.id.clone();
        if req.member_epoch == LEAVE_STATIC_EPOCH {
            let mut m = member.clone();
            m.epoch = LEAVE_STATIC_EPOCH;
            m.pending_revocation = Assignment::new();
            fx.records.push(current_record(gid, &m));
            return Ok((
                ConsumerHeartbeatResponse {
                    member_id,
                    member_epoch: LEAVE_STATIC_EPOCH,
                    heartbeat_interval_ms: 0,
                    assignment: None,
                },
                // The session keeps running: the instance has that long to come back.
                None,
            ));
        }
        let cause = RebalanceCause::MemberLeft {
            member_id: member_id.clone(),
        };
        let downgrade = self.fence_records(now, gid, &[member_id], Some(topics), cause, fx);
        Ok((
            ConsumerHeartbeatResponse {
                member_id: req.member_id.clone(),
                member_epoch: LEAVE_EPOCH,
                heartbeat_interval_ms: 0,
                assignment: None,
            },
            downgrade.map(|d| Timers {
                downgrade: Some(d),
                ..Timers::default()
            }),
        ))
    }

    /// Removes members: their records, the subscription metadata without them, a new group
    /// epoch. `topics`: the broker's metadata if the caller has it (timers do not: they keep
    /// the recorded metadata minus what only these members subscribed to). When the last
    /// consumer-protocol member leaves a group of classic members, the group becomes classic
    /// again instead: the caller installs the returned downgrade once the records are applied.
    fn fence_records(
        &mut self,
        now: i64,
        gid: &str,
        member_ids: &[String],
        topics: Option<&TopicsSnapshot>,
        cause: RebalanceCause,
        fx: &mut Effects,
    ) -> Option<migration::Downgrade> {
        let mut cg = self
            .groups
            .get(gid)
            .and_then(|g| g.consumer.as_deref())
            .cloned()?;
        if self.downgrade_after(&cg, member_ids) {
            let mut conversion = Effects::default();
            let d = self.downgrade_records(now, gid, &cg, member_ids, &mut conversion);
            // A classic record too large for the offsets topic would never be written: the
            // group then stays a consumer group.
            if crate::records::batch_size(&conversion.records) <= self.config.max_record_batch_bytes
            {
                fx.records.extend(conversion.records);
                return Some(d);
            }
        }
        for id in member_ids {
            remove_member_records(gid, id, &mut fx.records);
            cg.members.remove(id);
        }
        let metadata = match topics {
            Some(t) => self.subscription_metadata(&cg, t).0,
            None => self.recorded_subscription(&cg),
        };
        if metadata != cg.metadata {
            fx.records.push(metadata_record(gid, &metadata));
        }
        let epoch = cg.epoch + 1;
        fx.records.push(epoch_record(gid, epoch));
        if let Some(g) = self.groups.get_mut(gid) {
            let mut cx = Cx::new(&self.config, &mut self.rebalance_seq);
            // Written but not applied yet: the members are still there.
            let before = g.consumer.as_ref().map_or(0, |c| c.members.len());
            let after = before.saturating_sub(member_ids.len());
            start_history(g, now, &mut cx, cause, epoch, (before, after), fx);
        }
        None
    }

    /// The subscribed topics that exist in `topics`, by name, with their ids and sizes, and
    /// the regexes not resolved yet (left out this time).
    fn subscription_metadata(
        &mut self,
        cg: &ConsumerGroup,
        topics: &TopicsSnapshot,
    ) -> (BTreeMap<String, (TopicId, i32)>, BTreeSet<String>) {
        let mut out = BTreeMap::new();
        let mut new = BTreeSet::new();
        for m in cg.members.values() {
            for n in &m.names {
                if let Some(t) = topics.by_name.get(n) {
                    out.insert(n.clone(), (t.id, t.partitions));
                }
            }
            if let Some(r) = &m.regex {
                if !cg.resolved_regexes.contains(r) {
                    new.insert(r.clone());
                    continue;
                }
                let Some(re) = self.regex(r) else { continue };
                for (n, t) in &topics.by_name {
                    if re.is_match(n) {
                        out.insert(n.clone(), (t.id, t.partitions));
                    }
                }
            }
        }
        (out, new)
    }

    /// Without fresh metadata: the recorded subscription, kept to topics some member still
    /// subscribes to (by name, or by a regex that matches it).
    fn recorded_subscription(&mut self, cg: &ConsumerGroup) -> BTreeMap<String, (TopicId, i32)> {
        let mut out = BTreeMap::new();
        for (n, v) in &cg.metadata {
            let wanted = cg.members.values().any(|m| {
                m.names.iter().any(|x| x == n)
                    || m.regex
                        .as_ref()
                        .and_then(|r| self.regex(r))
                        .is_some_and(|re| re.is_match(n))
            });
            if wanted {
                out.insert(n.clone(), *v);
            }
        }
        out
    }

    /// A compiled subscription regex (cached; patterns were validated when they came in).
    fn regex(&mut self, pattern: &str) -> Option<regex::Regex> {
        if let Some(r) = self.regex_cache.get(pattern) {
            return Some(r.clone());
        }
        let r = compile_regex(pattern).ok()?;
        if self.regex_cache.len() > 1024 {
            self.regex_cache.clear();
        }
        self.regex_cache.insert(pattern.to_string(), r.clone());
        Some(r)
    }

    /// The new target assignment of every member, by the assignor most members ask for
    /// (else the first configured one).
    fn compute_target(&mut self, cg: &ConsumerGroup) -> BTreeMap<String, Assignment> {
        let name = preferred_assignor(cg, &self.config);
        let assignor = assignor::by_name(&name)
            .or_else(|| assignor::by_name("uniform"))
            .expect("uniform exists");
        let topics: BTreeMap<TopicId, i32> = cg.metadata.values().copied().collect();
        let mut specs = Vec::with_capacity(cg.members.len());
        for m in cg.members.values() {
            let mut subscribed = BTreeSet::new();
            let re = m.regex.as_ref().and_then(|r| self.regex(r));
            for (n, (id, _)) in &cg.metadata {
                if m.names.iter().any(|x| x == n) || re.as_ref().is_some_and(|re| re.is_match(n)) {
                    subscribed.insert(*id);
                }
            }
            specs.push(MemberSpec {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                topics: subscribed,
                current: cg.target.get(&m.id).cloned().unwrap_or_default(),
            });
        }
        let mut out = assignor.assign(&specs, &topics);
        for m in cg.members.keys() {
            out.entry(m.clone()).or_default();
        }
        out
    }

    /// Timers of consumer groups due at `now`: expired sessions and members that did not
    /// revoke within their rebalance timeout are fenced.
    pub(crate) fn fire_consumer_timers(&mut self, gid: &str, now: i64, fx: &mut Effects) {
        let Some(cg) = self.groups.get(gid).and_then(|g| g.consumer.as_deref()) else {
            return;
        };
        let mut due: Vec<(String, RebalanceCause)> = Vec::new();
        for m in cg.members.values() {
            if m.session_deadline <= now {
                due.push((
                    m.id.clone(),
                    RebalanceCause::SessionTimeout {
                        member_id: m.id.clone(),
                    },
                ));
            } else if m.join_deadline.is_some_and(|t| t <= now) {
                // A classic member told to rejoin did not within its rebalance timeout.
                due.push((
                    m.id.clone(),
                    RebalanceCause::RebalanceTimeout {
                        member_ids: vec![m.id.clone()],
                    },
                ));
            } else if m.sync_deadline.is_some_and(|t| t <= now) {
                due.push((
                    m.id.clone(),
                    RebalanceCause::SyncTimeout {
                        member_ids: vec![m.id.clone()],
                    },
                ));
            } else if let Some((at, epoch)) = m.rebalance_deadline {
                if at <= now {
                    if m.epoch == epoch && m.state == MemberState::UnrevokedPartitions {
                        due.push((
                            m.id.clone(),
                            RebalanceCause::MemberFenced {
                                member_id: m.id.clone(),
                            },
                        ));
                    } else {
                        due.push((m.id.clone(), RebalanceCause::Other(String::new())));
                    }
                }
            }
        }
        for (id, cause) in due {
            if matches!(cause, RebalanceCause::Other(_)) {
                // A stale rebalance timer: the member moved on.
                if let Some(m) = self
                    .groups
                    .get_mut(gid)
                    .and_then(|g| g.consumer.as_mut())
                    .and_then(|cg| cg.members.get_mut(&id))
                {
                    m.rebalance_deadline = None;
                }
                continue;
            }
            if !self.is_live_consumer_group(gid) {
                // An earlier fence turned the group classic again.
                break;
            }
            let mut one = Effects::default();
            let downgrade = self.fence_records(now, gid, &[id], None, cause, &mut one);
            self.apply_keeping_history(now, gid, &one);
            if let Some(d) = downgrade {
                self.finish_downgrade(now, gid, d, &mut one);
            }
            fx.extend(one);
        }
        if let Some(cg) = self.groups.get_mut(gid).and_then(|g| g.consumer.as_mut()) {
            forget_unused_regexes(cg);
        }
        if let Some(g) = self.groups.get_mut(gid) {
            settle(g, now, fx);
        }
    }

    /// ConsumerGroupDescribe, from the durable view. GROUP_ID_NOT_FOUND for unknown groups
    /// and classic ones.
    pub fn describe_consumer_group(
        &self,
        id: &str,
    ) -> Result<ConsumerGroupDescription, GroupError> {
        let g = self
            .committed_group(id)
            .ok_or(GroupError::GroupIdNotFound)?;
        let cg = g.consumer.as_deref().ok_or(GroupError::GroupIdNotFound)?;
        Ok(ConsumerGroupDescription {
            group_id: id.to_string(),
            state: cg.state_name(),
            group_epoch: cg.epoch,
            assignment_epoch: cg.assignment_epoch,
            assignor_name: preferred_assignor(cg, &self.config),
            members: cg
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.names.clone(),
                    subscribed_topic_regex: m.regex.clone(),
                    assignment: m.assigned.clone(),
                    target_assignment: cg.target.get(&m.id).cloned().unwrap_or_default(),
                    pending_revocation: m.pending_revocation.clone(),
                    state: m.state.name(),
                    // Kafka's MemberType: 0 classic, 1 consumer.
                    member_type: if m.classic.is_some() { 0 } else { 1 },
                })
                .collect(),
        })
    }

    /// OffsetFetch v9+ names the member and its epoch: a consumer group checks them
    /// (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH); other groups accept anything.
    pub fn check_consumer_fetch(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(cg) = self
            .committed_group(group)
            .and_then(|g| g.consumer.as_deref())
        else {
            return Ok(());
        };
        let m = cg
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if m.epoch != member_epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Replays one consumer-group record (key types 3 to 8).
    pub(crate) fn replay_consumer(
        &mut self,
        now: i64,
        key: ConsumerKey,
        value: Option<&[u8]>,
    ) -> Result<Replayed, RecordError> {
        let gid = key.group().to_string();
        // Decode first, so a bad record changes nothing.
        enum V {
            Epoch(GroupMetadataValue),
            Meta(PartitionMetadataValue),
            Member(MemberMetadataValue),
            TargetEpoch(TargetAssignmentMetadataValue),
            Target(TargetAssignmentMemberValue),
            Current(CurrentMemberAssignmentValue),
        }
        let v = match (&key, value) {
            (_, None) => None,
            (ConsumerKey::GroupMetadata { .. }, Some(b)) => {
                Some(V::Epoch(records::decode_group_metadata(b)?))
            }
            (ConsumerKey::PartitionMetadata { .. }, Some(b)) => {
                Some(V::Meta(records::decode_partition_metadata(b)?))
            }
            (ConsumerKey::MemberMetadata { .. }, Some(b)) => {
                Some(V::Member(records::decode_member_metadata(b)?))
            }
            (ConsumerKey::TargetAssignmentMetadata { .. }, Some(b)) => {
                Some(V::TargetEpoch(records::decode_target_metadata(b)?))
            }
            (ConsumerKey::TargetAssignmentMember { .. }, Some(b)) => {
                Some(V::Target(records::decode_target_member(b)?))
            }
            (ConsumerKey::CurrentMemberAssignment { .. }, Some(b)) => {
                Some(V::Current(records::decode_current_assignment(b)?))
            }
        };
        self.save(&gid);
        if v.is_none() && self.groups.get(&gid).is_none_or(|g| g.consumer.is_none()) {
            // A tombstone for a group that is not a consumer group: nothing to remove.
            return Ok(Replayed::Group);
        }
        let g = self
            .groups
            .entry(gid.clone())
            .or_insert_with(|| Group::new(&gid, now));
        let was_empty = g.consumer.as_ref().is_none_or(|c| c.members.is_empty());
        let cg = g.consumer.get_or_insert_with(Default::default);
        match (key, v) {
            (ConsumerKey::GroupMetadata { .. }, Some(V::Epoch(e))) => cg.epoch = e.epoch,
            (ConsumerKey::GroupMetadata { .. }, None) => {
                g.consumer = None;
                g.protocol_type = None;
                g.subscribed = None;
                if g.offsets.is_empty() {
                    self.groups.remove(&gid);
                } else {
                    // Offsets outlive the group only if written out of order: a simple group.
                    g.state = GroupState::Empty;
                }
                return Ok(Replayed::Group);
            }
            (ConsumerKey::PartitionMetadata { .. }, Some(V::Meta(m))) => {
                cg.metadata = m
                    .topics
                    .into_iter()
                    .map(|t| (t.name, (t.id, t.partitions)))
                    .collect();
            }
            (ConsumerKey::PartitionMetadata { .. }, None) => cg.metadata.clear(),
            (ConsumerKey::MemberMetadata { member, .. }, Some(V::Member(v))) => {
                let m = cg
                    .members
                    .entry(member.clone())
                    .or_insert_with(|| CMember::new(&member));
                m.instance_id = v.instance_id;
                m.rack_id = v.rack_id;
                m.client_id = v.client_id;
                m.client_host = v.client_host;
                m.names = v.subscribed_topic_names;
                m.regex = v.subscribed_topic_regex;
                m.rebalance_timeout_ms = v.rebalance_timeout_ms;
                m.server_assignor = v.server_assignor;
                m.classic = v.classic;
                if m.session_deadline == 0 {
                    m.session_deadline = now + i64::from(m.session_timeout_ms(&self.config));
                }
            }
            (ConsumerKey::MemberMetadata { member, .. }, None) => {
                cg.members.remove(&member);
                cg.release(&member);
            }
            (ConsumerKey::TargetAssignmentMetadata { .. }, Some(V::TargetEpoch(t))) => {
                cg.assignment_epoch = t.assignment_epoch;
            }
            (ConsumerKey::TargetAssignmentMetadata { .. }, None) => {}
            (ConsumerKey::TargetAssignmentMember { member, .. }, Some(V::Target(t))) => {
                cg.target.insert(member, t.partitions);
            }
            (ConsumerKey::TargetAssignmentMember { member, .. }, None) => {
                cg.target.remove(&member);
            }
            (ConsumerKey::CurrentMemberAssignment { member, .. }, Some(V::Current(c))) => {
                let m = cg
                    .members
                    .entry(member.clone())
                    .or_insert_with(|| CMember::new(&member));
                let mut epochs = BTreeMap::new();
                for (t, ps) in &c.assigned {
                    for p in ps {
                        let since = if m.assigned.get(t).is_some_and(|a| a.contains(p)) {
                            m.partition_epochs
                                .get(&(*t, *p))
                                .copied()
                                .unwrap_or(m.epoch)
                        } else {
                            c.member_epoch
                        };
                        epochs.insert((*t, *p), since);
                    }
                }
                m.epoch = c.member_epoch;
                m.previous_epoch = c.previous_member_epoch;
                m.state = MemberState::from_code(c.state);
                m.assigned = c.assigned;
                m.pending_revocation = c.pending_revocation;
                m.partition_epochs = epochs;
                let m = m.clone();
                cg.release(&member);
                cg.hold(&m);
            }
            (ConsumerKey::CurrentMemberAssignment { member, .. }, None) => {
                if let Some(m) = cg.members.get_mut(&member) {
                    m.epoch = LEAVE_EPOCH;
                    m.previous_epoch = LEAVE_EPOCH;
                    m.assigned.clear();
                    m.pending_revocation.clear();
                    m.partition_epochs.clear();
                }
                cg.release(&member);
            }
            _ => unreachable!("value decoded for its own key"),
        }
        refresh_classic_view(g, now, was_empty);
        Ok(Replayed::Group)
    }

    /// OffsetCommit into a consumer group: `Ok` per partition or why not. The member must be
    /// known and its epoch current, except for partitions it has held since an older epoch
    /// it names (KIP-1251: its commit is not refused only because the group moved on).
    pub(crate) fn check_consumer_commit(
        g: &Group,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let cg = g.consumer.as_deref().expect("consumer group");
        if member_epoch < 0 && cg.members.is_empty() {
            return Ok(vec![Ok(()); partitions.len()]);
        }
        let m = cg
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if m.classic.is_some() {
            // A classic member commits with its generation, which is its member epoch.
            if member_epoch != m.epoch {
                return Err(GroupError::IllegalGeneration);
            }
            return Ok(vec![Ok(()); partitions.len()]);
        }
        if api_version < 9 {
            return Err(GroupError::UnsupportedVersion);
        }
        if member_epoch == m.epoch {
            return Ok(vec![Ok(()); partitions.len()]);
        }
        if member_epoch > m.epoch || member_epoch < 0 {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(partitions
            .iter()
            .map(|(t, p)| {
                let held = cg.metadata.get(t).and_then(|(id, _)| {
                    m.assigned
                        .get(id)
                        .filter(|a| a.contains(p))
                        .and_then(|_| m.partition_epochs.get(&(*id, *p)))
                });
                match held {
                    Some(since) if *since <= member_epoch => Ok(()),
                    _ => Err(GroupError::StaleMemberEpoch),
                }
            })
            .collect())
    }
}

fn check_epoch(
    m: &CMember,
    received: i32,
    owned: Option<&[(TopicId, Vec<i32>)]>,
) -> Result<(), GroupError> {
    if received > m.epoch {
        return Err(GroupError::FencedMemberEpoch);
    }
    if received < m.epoch {
        // The answer carrying the bumped epoch may have been lost.
        let subset = owned.is_none_or(|o| is_subset(o, &m.assigned));
        if received != m.previous_epoch || !subset {
            return Err(GroupError::FencedMemberEpoch);
        }
    }
    Ok(())
}

fn metadata_cause(
    cg: &ConsumerGroup,
    old: &BTreeMap<String, (TopicId, i32)>,
    new: &BTreeMap<String, (TopicId, i32)>,
) -> RebalanceCause {
    let changed: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|n| old.get(*n) != new.get(*n))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let names = cg.subscribed_names();
    let by_regex = changed.iter().any(|n| !names.contains(n.as_str()));
    if by_regex
        && changed
            .iter()
            .all(|n| !old.contains_key(n) || !new.contains_key(n))
    {
        RebalanceCause::RegexResolved { topics: changed }
    } else {
        RebalanceCause::MetadataChanged { topics: changed }
    }
}

/// Keeps the classic fields other code reads (state for listing and deletion, the
/// subscribed topics for offset expiry and OffsetDelete) in step with the consumer group.
fn refresh_classic_view(g: &mut Group, now: i64, was_empty: bool) {
    let Some(cg) = g.consumer.as_deref() else {
        return;
    };
    g.protocol_type = Some("consumer".to_string());
    let empty = cg.members.is_empty();
    g.state = if empty {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    if empty && !was_empty {
        g.state_timestamp = Some(now);
    }
    let mut subscribed: BTreeSet<String> = cg.metadata.keys().cloned().collect();
    subscribed.extend(cg.subscribed_names().into_iter().map(str::to_string));
    g.subscribed = Some(subscribed);
    g.generation = cg.epoch;
}

/// A new group epoch starts a rebalance record (superseding one still reconciling).
fn start_history(
    g: &mut Group,
    now: i64,
    cx: &mut Cx<'_>,
    cause: RebalanceCause,
    epoch: i32,
    (members_before, members_after): (usize, usize),
    fx: &mut Effects,
) {
    g.generation_members = members_before;
    history::start(g, now, cx, cause, fx);
    history::epoch_bumped(g, now, epoch, members_after);
}

/// Once every member has reconciled, the rebalance in progress is complete.
fn settle(g: &mut Group, now: i64, fx: &mut Effects) {
    let Some(cg) = g.consumer.as_deref() else {
        return;
    };
    let in_progress = g
        .history
        .back()
        .is_some_and(|r| r.outcome == crate::types::RebalanceOutcome::InProgress);
    if !in_progress {
        return;
    }
    match cg.state_name() {
        "Stable" => history::became_stable(g, now, fx),
        "Empty" => history::emptied(g, now, fx),
        _ => {}
    }
}

/// Consumer-group owners, for the rebalance history's moved-partition count.
pub(crate) fn owners(cg: &ConsumerGroup) -> history::Owners {
    let names = cg.id_to_name();
    let mut out = history::Owners::new();
    for m in cg.members.values() {
        let owner = m.instance_id.as_ref().unwrap_or(&m.id);
        for (t, ps) in &m.assigned {
            let name = names
                .get(t)
                .map(|n| n.to_string())
                .unwrap_or_else(|| t.iter().map(|b| format!("{b:02x}")).collect());
            for p in ps {
                out.entry((name.clone(), *p))
                    .or_default()
                    .insert(owner.clone());
            }
        }
    }
    out
}

/// The earliest timer of a consumer group's members.
pub(crate) fn deadline(cg: &ConsumerGroup) -> Option<i64> {
    cg.members
        .values()
        .flat_map(|m| {
            [
                Some(m.session_deadline),
                m.rebalance_deadline.map(|(t, _)| t),
                m.join_deadline,
                m.sync_deadline,
            ]
        })
        .flatten()
        .min()
}

/// The assignor most members name in `group.remote.assignor` (ties: the first name), else the
/// first of `group.consumer.assignors`.
fn preferred_assignor(cg: &ConsumerGroup, config: &crate::types::GroupConfig) -> String {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in cg.members.values() {
        if let Some(a) = &m.server_assignor {
            *votes.entry(a.as_str()).or_default() += 1;
        }
    }
    votes
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(n, _)| n.to_string())
        .or_else(|| config.consumer_assignors.first().cloned())
        .unwrap_or_else(|| "uniform".to_string())
}

/// A regex no member uses any more is forgotten: subscribing to it again resolves it anew.
fn forget_unused_regexes(cg: &mut ConsumerGroup) {
    let used: BTreeSet<&String> = cg
        .members
        .values()
        .filter_map(|m| m.regex.as_ref())
        .collect();
    cg.resolved_regexes.retain(|r| used.contains(r));
}

/// After a load: every member's session starts now, and its regexes count as resolved (their
/// topics are in the recorded subscription).
pub(crate) fn loaded(cg: &mut ConsumerGroup, now: i64, session_timeout_ms: i32) {
    cg.resolved_regexes = cg
        .members
        .values()
        .filter_map(|m| m.regex.clone())
        .collect();
    cg.regex_pending = false;
    for m in cg.members.values_mut() {
        let session = m
            .classic
            .as_ref()
            .map_or(session_timeout_ms, |c| c.session_timeout_ms);
        m.session_deadline = now + i64::from(session);
        m.rebalance_deadline = (m.state == MemberState::UnrevokedPartitions)
            .then(|| (now + i64::from(m.rebalance_timeout_ms.max(0)), m.epoch));
    }
}
