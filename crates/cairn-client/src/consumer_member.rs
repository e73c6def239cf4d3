//! A member of a consumer-protocol group (KIP-848): the broker assigns, the
//! member heartbeats with ConsumerGroupHeartbeat at the interval the broker
//! gives and reconciles what it owns with what it is sent.
//!
//! It follows the rules of Kafka's own consumer: the first heartbeat (epoch
//! 0) carries every field, later ones only what changed since the last one
//! that succeeded; a failed heartbeat makes the next one carry everything
//! again. The partitions it owns are reported whenever they change, which is
//! how the broker learns that a revocation is done. Revocation is immediate
//! here (a tool has nothing to flush), so owned partitions are always
//! exactly the last assignment received. Fenced or forgotten, it drops its
//! partitions and joins again at epoch 0.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::admin::{ConsumerGroupDescription, PartitionOutcome};
use crate::client::Client;
use crate::connection::Connection;
use crate::error::{within, Error, Result};

/// Member epoch a member leaves with.
pub const LEAVE_EPOCH: i32 = -1;
/// Member epoch a static member leaves with for a while (it keeps its
/// assignment until its session times out).
pub const STATIC_LEAVE_EPOCH: i32 = -2;
/// Kafka's max.poll.interval.ms default, which its consumer sends as the
/// rebalance timeout.
const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_secs(300);
/// Time allowed for one heartbeat's answer.
const HEARTBEAT_LIMIT: Duration = Duration::from_secs(30);
/// Pause before retrying after a retriable error or a lost connection.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// OffsetCommit v9 is the first that carries a member epoch.
const COMMIT_MIN_VERSION: i16 = 9;

/// What the member subscribes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subscription {
    Topics(Vec<String>),
    /// A regular expression (RE2/J syntax) the broker resolves.
    Regex(String),
}

/// How a member joins.
#[derive(Clone, Debug)]
pub struct ConsumerMemberConfig {
    pub group_id: String,
    pub subscription: Subscription,
    /// The server-side assignor asked for; `None` leaves the choice to the broker.
    pub assignor: Option<String>,
    /// Static membership.
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout: Duration,
}

impl ConsumerMemberConfig {
    pub fn new(group_id: &str, subscription: Subscription) -> Self {
        ConsumerMemberConfig {
            group_id: group_id.to_string(),
            subscription,
            assignor: None,
            instance_id: None,
            rack_id: None,
            rebalance_timeout: DEFAULT_REBALANCE_TIMEOUT,
        }
    }
}

/// Partitions by topic id, each list sorted.
pub type Owned = BTreeMap<Uuid, Vec<i32>>;

/// The fields of the last successful heartbeat, so that the next one sends
/// only what changed. `None` means "not sent since the last reset".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SentFields {
    rebalance_timeout_ms: Option<i32>,
    subscription: Option<Subscription>,
    assignor: Option<Option<String>>,
    owned: Option<Owned>,
}

/// The member's side of the protocol, free of I/O so it can be tested.
#[derive(Clone, Debug)]
pub(crate) struct MemberState {
    config: ConsumerMemberConfig,
    member_id: String,
    member_epoch: i32,
    heartbeat_interval: Duration,
    owned: Owned,
    /// Fields of the last successful heartbeat.
    sent: SentFields,
    /// Fields of the heartbeat in flight; they become `sent` once it succeeds.
    in_flight: Option<SentFields>,
    /// A new assignment was taken and must be acknowledged at once.
    ack_pending: bool,
    /// Times the member was fenced or forgotten and joined again.
    rejoins: u32,
    heartbeats: u64,
    failed: Option<String>,
    /// When what it owns last changed.
    owned_changed_at: Option<Instant>,
    /// When the last heartbeat was built to be sent.
    last_heartbeat_at: Option<Instant>,
}

/// What to do after a heartbeat's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Heartbeat again after this long.
    After(Duration),
    /// Find the coordinator again, then heartbeat.
    Reconnect,
    /// Stop: the error is not one a member recovers from.
    Fail(String),
}

impl MemberState {
    pub(crate) fn new(config: ConsumerMemberConfig, member_id: String) -> Self {
        MemberState {
            config,
            member_id,
            member_epoch: 0,
            heartbeat_interval: Duration::ZERO,
            owned: Owned::new(),
            sent: SentFields::default(),
            in_flight: None,
            ack_pending: false,
            rejoins: 0,
            heartbeats: 0,
            failed: None,
            owned_changed_at: None,
            last_heartbeat_at: None,
        }
    }

    /// The next heartbeat: everything when joining (epoch 0), otherwise
    /// only the fields that differ from the last successful heartbeat.
    pub(crate) fn build_heartbeat(&mut self) -> ConsumerGroupHeartbeatRequest {
        let all = self.member_epoch == 0;
        let mut req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(&self.config.group_id)))
            .with_member_id(sb(&self.member_id))
            .with_member_epoch(self.member_epoch)
            .with_instance_id(self.config.instance_id.as_deref().map(sb))
            // -1 and null mean "unchanged" to the broker.
            .with_rebalance_timeout_ms(-1)
            .with_subscribed_topic_names(None)
            .with_subscribed_topic_regex(None)
            .with_server_assignor(None)
            .with_topic_partitions(None);
        let mut fields = if all {
            SentFields::default()
        } else {
            self.sent.clone()
        };
        if all {
            req.rack_id = self.config.rack_id.as_deref().map(sb);
        }
        let timeout_ms =
            i32::try_from(self.config.rebalance_timeout.as_millis()).unwrap_or(i32::MAX);
        if fields.rebalance_timeout_ms != Some(timeout_ms) {
            req.rebalance_timeout_ms = timeout_ms;
            fields.rebalance_timeout_ms = Some(timeout_ms);
        }
        if fields.subscription.as_ref() != Some(&self.config.subscription) {
            match &self.config.subscription {
                Subscription::Topics(topics) => {
                    req.subscribed_topic_names =
                        Some(topics.iter().map(|t| TopicName(sb(t))).collect());
                }
                Subscription::Regex(re) => req.subscribed_topic_regex = Some(sb(re)),
            }
            fields.subscription = Some(self.config.subscription.clone());
        }
        if fields.assignor.as_ref() != Some(&self.config.assignor) {
            req.server_assignor = self.config.assignor.as_deref().map(sb);
            fields.assignor = Some(self.config.assignor.clone());
        }
        if fields.owned.as_ref() != Some(&self.owned) {
            req.topic_partitions = Some(
                self.owned
                    .iter()
                    .map(|(id, ps)| {
                        TopicPartitions::default()
                            .with_topic_id(*id)
                            .with_partitions(ps.clone())
                    })
                    .collect(),
            );
            fields.owned = Some(self.owned.clone());
        }
        self.in_flight = Some(fields);
        self.ack_pending = false;
        self.heartbeats += 1;
        self.last_heartbeat_at = Some(Instant::now());
        req
    }

    /// The heartbeat in flight got no answer: the next one says everything.
    pub(crate) fn heartbeat_lost(&mut self) {
        self.in_flight = None;
        self.sent = SentFields::default();
    }

    /// Takes in the broker's answer.
    pub(crate) fn apply(&mut self, resp: &ConsumerGroupHeartbeatResponse) -> Next {
        let sent = self.in_flight.take();
        match ResponseError::try_from_code(resp.error_code) {
            None => {}
            Some(ResponseError::FencedMemberEpoch | ResponseError::UnknownMemberId) => {
                // Join again as a new incarnation: nothing owned, epoch 0.
                if !self.owned.is_empty() {
                    self.owned_changed_at = Some(Instant::now());
                }
                self.owned.clear();
                self.member_epoch = 0;
                self.sent = SentFields::default();
                self.ack_pending = false;
                self.rejoins += 1;
                return Next::After(Duration::ZERO);
            }
            Some(
                ResponseError::CoordinatorLoadInProgress
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::NotCoordinator,
            ) => {
                self.sent = SentFields::default();
                return Next::Reconnect;
            }
            Some(e) => {
                let msg = match resp.error_message.as_deref() {
                    Some(m) if !m.is_empty() => format!("{e:?} ({}): {m}", e.code()),
                    _ => format!("{e:?} ({})", e.code()),
                };
                self.failed = Some(msg.clone());
                return Next::Fail(msg);
            }
        }
        if let Some(fields) = sent {
            self.sent = fields;
        }
        if let Some(id) = resp.member_id.as_deref().filter(|id| !id.is_empty()) {
            self.member_id = id.to_string();
        }
        self.member_epoch = resp.member_epoch;
        if resp.heartbeat_interval_ms > 0 {
            self.heartbeat_interval = Duration::from_millis(resp.heartbeat_interval_ms as u64);
        }
        if let Some(a) = &resp.assignment {
            // Revoke and take at once: owned becomes what was sent.
            let mut owned = Owned::new();
            for t in &a.topic_partitions {
                let ps = owned.entry(t.topic_id).or_default();
                ps.extend(&t.partitions);
            }
            for ps in owned.values_mut() {
                ps.sort_unstable();
                ps.dedup();
            }
            owned.retain(|_, ps| !ps.is_empty());
            if owned != self.owned {
                self.owned = owned;
                self.owned_changed_at = Some(Instant::now());
            }
        }
        if self.sent.owned.as_ref() != Some(&self.owned) {
            // Acknowledge a changed assignment now rather than a whole
            // interval later: the broker waits for it to move on.
            self.ack_pending = true;
            return Next::After(Duration::ZERO);
        }
        Next::After(self.heartbeat_interval)
    }

    /// Whether this member is done at `group_epoch`: at that epoch, owning
    /// exactly its target in the description, and the broker told so.
    fn reconciled_with(&self, d: &ConsumerGroupDescription) -> bool {
        if self.member_epoch != d.group_epoch || self.sent.owned.as_ref() != Some(&self.owned) {
            return false;
        }
        let Some(m) = d.members.iter().find(|m| m.member_id == self.member_id) else {
            return false;
        };
        let mut target = Owned::new();
        for t in &m.target_assignment {
            if !t.partitions.is_empty() {
                target.insert(t.topic_id, t.partitions.clone());
            }
        }
        target == self.owned
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A copy of a member's state at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval: Duration,
    pub owned: Owned,
    /// Whether the broker has been told about `owned`.
    pub acknowledged: bool,
    pub rejoins: u32,
    pub heartbeats: u64,
    /// Why the heartbeat loop stopped, if it did.
    pub failed: Option<String>,
    /// When `owned` last changed.
    pub owned_changed_at: Option<Instant>,
    /// When the last heartbeat went out.
    pub last_heartbeat_at: Option<Instant>,
}

struct Shared {
    state: Mutex<MemberState>,
    conn: tokio::sync::Mutex<Arc<Connection>>,
}

/// A joined member of a consumer-protocol group, heartbeating in the background.
pub struct ConsumerMember {
    client: Arc<Client>,
    shared: Arc<Shared>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for ConsumerMember {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

impl ConsumerMember {
    /// Joins `group` (epoch 0, every field) and keeps heartbeating until
    /// [`ConsumerMember::leave`] or drop. Returns after the first answer.
    pub async fn join(
        client: Arc<Client>,
        group: &str,
        subscription: Subscription,
        assignor: Option<&str>,
        instance_id: Option<&str>,
    ) -> Result<ConsumerMember> {
        let mut config = ConsumerMemberConfig::new(group, subscription);
        config.assignor = assignor.map(str::to_string);
        config.instance_id = instance_id.map(str::to_string);
        Self::join_with(client, config).await
    }

    /// [`ConsumerMember::join`] with every setting.
    pub async fn join_with(
        client: Arc<Client>,
        config: ConsumerMemberConfig,
    ) -> Result<ConsumerMember> {
        let conn = open_coordinator(&client, &config.group_id).await?;
        let version = conn.version_for::<ConsumerGroupHeartbeatRequest>()?;
        if version < 1 && matches!(config.subscription, Subscription::Regex(_)) {
            return Err(Error::Protocol(
                "the broker's ConsumerGroupHeartbeat v0 cannot carry a regex subscription".into(),
            ));
        }
        // From v1 the member names itself (KIP-1082); v0 brokers name it.
        let member_id = if version >= 1 {
            Uuid::new_v4().simple().to_string()
        } else {
            String::new()
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(MemberState::new(config, member_id)),
            conn: tokio::sync::Mutex::new(conn),
        });
        // The first round trip here, so that join errors reach the caller.
        let first = heartbeat_once(&shared).await?;
        if let Next::Fail(msg) = &first {
            let group = shared
                .state
                .lock()
                .expect("member state")
                .config
                .group_id
                .clone();
            return Err(Error::Protocol(format!(
                "join consumer group {group}: {msg}"
            )));
        }
        let task = tokio::spawn(heartbeat_loop(client.clone(), shared.clone(), first));
        Ok(ConsumerMember {
            client,
            shared,
            heartbeat: Some(task),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemberState> {
        self.shared.state.lock().expect("member state")
    }

    pub fn group_id(&self) -> String {
        self.state().config.group_id.clone()
    }

    pub fn member_id(&self) -> String {
        self.state().member_id.clone()
    }

    pub fn member_epoch(&self) -> i32 {
        self.state().member_epoch
    }

    pub fn snapshot(&self) -> MemberSnapshot {
        let s = self.state();
        MemberSnapshot {
            member_id: s.member_id.clone(),
            member_epoch: s.member_epoch,
            heartbeat_interval: s.heartbeat_interval,
            owned: s.owned.clone(),
            acknowledged: s.sent.owned.as_ref() == Some(&s.owned),
            rejoins: s.rejoins,
            heartbeats: s.heartbeats,
            failed: s.failed.clone(),
            owned_changed_at: s.owned_changed_at,
            last_heartbeat_at: s.last_heartbeat_at,
        }
    }

    /// Owned partitions by topic id.
    pub fn assignment_ids(&self) -> Owned {
        self.state().owned.clone()
    }

    /// Owned partitions by topic name, sorted; topic ids are resolved with
    /// Metadata (refreshed once when one is unknown).
    pub async fn assignment(&self) -> Result<Vec<(String, Vec<i32>)>> {
        let owned = self.assignment_ids();
        let name_of = |meta: &crate::ClusterMetadata, id: &Uuid| {
            meta.topics
                .values()
                .find(|t| t.topic_id == *id)
                .map(|t| t.name.clone())
        };
        let mut meta = self.client.metadata();
        if owned.keys().any(|id| name_of(&meta, id).is_none()) {
            meta = self.client.refresh_metadata(None).await?;
        }
        let mut out = Vec::new();
        for (id, ps) in owned {
            let name = name_of(&meta, &id)
                .ok_or_else(|| Error::Metadata(format!("no topic has id {id}")))?;
            out.push((name, ps));
        }
        out.sort();
        Ok(out)
    }

    /// Whether the member is reconciled with the group as `d` describes it:
    /// its epoch is the group epoch, it owns exactly its target, and it has
    /// told the broker so.
    pub fn reconciled_with(&self, d: &ConsumerGroupDescription) -> bool {
        self.state().reconciled_with(d)
    }

    /// Waits until [`ConsumerMember::reconciled_with`] holds for a fresh
    /// ConsumerGroupDescribe; returns the group epoch then.
    pub async fn wait_reconciled(&self, limit: Duration) -> Result<i32> {
        let group = self.group_id();
        let deadline = Instant::now() + limit;
        loop {
            let d = self
                .client
                .describe_consumer_groups(&[&group])
                .await?
                .pop()
                .ok_or_else(|| Error::Protocol(format!("no description of {group}")))?;
            Error::check_code(
                d.error.map_or(0, |e| e.code()),
                d.error_message.as_deref(),
                || format!("describe consumer group {group}"),
            )?;
            if self.reconciled_with(&d) {
                return Ok(d.group_epoch);
            }
            if let Some(f) = self.snapshot().failed {
                return Err(Error::Protocol(format!("member of {group} stopped: {f}")));
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("reconciliation of a member of {group}"),
                    after: limit,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Commits offsets of one topic with the member's id and epoch
    /// (OffsetCommit v9+); one outcome per partition.
    pub async fn commit(&self, offsets: &[(String, i32, i64)]) -> Result<Vec<PartitionOutcome>> {
        let (group, member_id, epoch) = {
            let s = self.state();
            (
                s.config.group_id.clone(),
                s.member_id.clone(),
                s.member_epoch,
            )
        };
        let conn = self.shared.conn.lock().await.clone();
        let version = conn.version_for::<kafka_protocol::messages::OffsetCommitRequest>()?;
        if version < COMMIT_MIN_VERSION {
            return Err(Error::Protocol(format!(
                "the broker's OffsetCommit v{version} cannot carry a member epoch"
            )));
        }
        conn.commit_offsets_multi(&group, epoch, &member_id, offsets)
            .await
    }

    /// Leaves the group: epoch -1, or -2 for a static member (which keeps
    /// its assignment until its session times out).
    pub async fn leave(mut self) -> Result<()> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
            let _ = h.await;
        }
        let req = {
            let mut s = self.state();
            let epoch = if s.config.instance_id.is_some() {
                STATIC_LEAVE_EPOCH
            } else {
                LEAVE_EPOCH
            };
            s.member_epoch = epoch;
            s.owned.clear();
            // Kafka's consumer sends only the identity when it leaves.
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(sb(&s.config.group_id)))
                .with_member_id(sb(&s.member_id))
                .with_member_epoch(epoch)
                .with_instance_id(s.config.instance_id.as_deref().map(sb))
                .with_rebalance_timeout_ms(-1)
        };
        let group = self.group_id();
        let conn = self.shared.conn.lock().await.clone();
        let what = || format!("leave consumer group {group}");
        let resp = within(HEARTBEAT_LIMIT, what, conn.send(req)).await?;
        match ResponseError::try_from_code(resp.error_code) {
            // Already gone as far as the broker is concerned.
            None | Some(ResponseError::UnknownMemberId | ResponseError::FencedMemberEpoch) => {
                Ok(())
            }
            Some(_) => Error::check_code(resp.error_code, resp.error_message.as_deref(), what),
        }
    }
}

/// A connection of the member's own to the group's coordinator.
async fn open_coordinator(client: &Client, group: &str) -> Result<Arc<Connection>> {
    let coordinator = client.find_coordinator(group).await?;
    match client.open(&coordinator.addr()).await {
        Ok(c) => Ok(Arc::new(c)),
        // A lone broker may advertise a name this host cannot reach.
        Err(Error::Connect { .. }) if client.metadata().brokers.len() <= 1 => {
            Ok(Arc::new(client.open(client.bootstrap_addr()).await?))
        }
        Err(e) => Err(e),
    }
}

async fn heartbeat_once(shared: &Shared) -> Result<Next> {
    let req = shared.state.lock().expect("member state").build_heartbeat();
    let conn = shared.conn.lock().await.clone();
    let what = || "consumer group heartbeat".to_string();
    match within(HEARTBEAT_LIMIT, what, conn.send(req)).await {
        Ok(resp) => Ok(shared.state.lock().expect("member state").apply(&resp)),
        Err(e) => {
            shared.state.lock().expect("member state").heartbeat_lost();
            Err(e)
        }
    }
}

async fn heartbeat_loop(client: Arc<Client>, shared: Arc<Shared>, first: Next) {
    let mut next = first;
    loop {
        match next {
            Next::After(d) => {
                if !d.is_zero() {
                    tokio::time::sleep(d).await;
                }
            }
            Next::Reconnect => {
                tokio::time::sleep(RETRY_BACKOFF).await;
                let group = shared
                    .state
                    .lock()
                    .expect("member state")
                    .config
                    .group_id
                    .clone();
                match open_coordinator(&client, &group).await {
                    Ok(c) => *shared.conn.lock().await = c,
                    Err(e) => {
                        tracing::debug!("consumer member of {group}: coordinator: {e}");
                        next = Next::Reconnect;
                        continue;
                    }
                }
            }
            Next::Fail(msg) => {
                tracing::warn!("consumer member stopped heartbeating: {msg}");
                return;
            }
        }
        next = match heartbeat_once(&shared).await {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("consumer group heartbeat failed: {e}");
                Next::Reconnect
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_group_heartbeat_response::{
        Assignment, TopicPartitions as RespPartitions,
    };

    fn member(sub: Subscription) -> MemberState {
        let mut c = ConsumerMemberConfig::new("g", sub);
        c.assignor = Some("uniform".into());
        c.instance_id = Some("i-1".into());
        c.rack_id = Some("r1".into());
        MemberState::new(c, "m-1".into())
    }

    fn ok(epoch: i32, assignment: Option<Vec<(Uuid, Vec<i32>)>>) -> ConsumerGroupHeartbeatResponse {
        ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb("m-1")))
            .with_member_epoch(epoch)
            .with_heartbeat_interval_ms(5000)
            .with_assignment(assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, ps)| {
                            RespPartitions::default()
                                .with_topic_id(id)
                                .with_partitions(ps)
                        })
                        .collect(),
                )
            }))
    }

    fn owned_in(req: &ConsumerGroupHeartbeatRequest) -> Option<Vec<(Uuid, Vec<i32>)>> {
        req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|t| (t.topic_id, t.partitions.clone()))
                .collect()
        })
    }

    #[test]
    fn join_sends_everything_then_only_changes() {
        let mut m = member(Subscription::Topics(vec!["a".into(), "b".into()]));
        let join = m.build_heartbeat();
        assert_eq!(join.member_epoch, 0);
        assert_eq!(join.member_id.as_str(), "m-1");
        assert_eq!(join.instance_id.as_deref(), Some("i-1"));
        assert_eq!(join.rack_id.as_deref(), Some("r1"));
        assert_eq!(join.rebalance_timeout_ms, 300_000);
        let names: Vec<&str> = join
            .subscribed_topic_names
            .as_ref()
            .unwrap()
            .iter()
            .map(|t| t.0.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(join.subscribed_topic_regex, None);
        assert_eq!(join.server_assignor.as_deref(), Some("uniform"));
        // Joining owns nothing, and says so.
        assert_eq!(owned_in(&join), Some(vec![]));

        assert_eq!(m.apply(&ok(1, None)), Next::After(Duration::from_secs(5)));
        let hb = m.build_heartbeat();
        assert_eq!(hb.member_epoch, 1);
        assert_eq!(hb.rebalance_timeout_ms, -1);
        assert_eq!(hb.subscribed_topic_names, None);
        assert_eq!(hb.server_assignor, None);
        assert_eq!(hb.rack_id, None);
        assert_eq!(hb.topic_partitions, None);
        // The instance id goes with every heartbeat, as Kafka's consumer does.
        assert_eq!(hb.instance_id.as_deref(), Some("i-1"));

        // A changed subscription goes out once.
        m.apply(&ok(1, None));
        m.config.subscription = Subscription::Topics(vec!["c".into()]);
        let hb = m.build_heartbeat();
        assert_eq!(hb.subscribed_topic_names.as_ref().map(Vec::len), Some(1));
        m.apply(&ok(1, None));
        assert_eq!(m.build_heartbeat().subscribed_topic_names, None);
    }

    #[test]
    fn regex_goes_in_its_own_field() {
        let mut m = member(Subscription::Regex("orders-.*".into()));
        let join = m.build_heartbeat();
        assert_eq!(join.subscribed_topic_names, None);
        assert_eq!(join.subscribed_topic_regex.as_deref(), Some("orders-.*"));
    }

    #[test]
    fn new_assignment_is_owned_and_acknowledged_at_once() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut m = member(Subscription::Topics(vec!["a".into()]));
        m.build_heartbeat();
        let next = m.apply(&ok(1, Some(vec![(t1, vec![2, 0, 1]), (t2, vec![])])));
        assert_eq!(next, Next::After(Duration::ZERO), "ack without waiting");
        let ack = m.build_heartbeat();
        assert_eq!(owned_in(&ack), Some(vec![(t1, vec![0, 1, 2])]));
        assert_eq!(m.apply(&ok(2, None)), Next::After(Duration::from_secs(5)));
        assert_eq!(m.build_heartbeat().topic_partitions, None);

        // A revocation: partition 1 goes; owned shrinks now and is reported.
        m.apply(&ok(2, Some(vec![(t1, vec![0, 2])])));
        let ack = m.build_heartbeat();
        assert_eq!(owned_in(&ack), Some(vec![(t1, vec![0, 2])]));
        // Same assignment again: nothing new to report.
        assert_eq!(
            m.apply(&ok(3, Some(vec![(t1, vec![0, 2])]))),
            Next::After(Duration::from_secs(5))
        );
        assert_eq!(m.build_heartbeat().topic_partitions, None);
    }

    #[test]
    fn lost_heartbeat_resends_everything_but_keeps_epoch() {
        let t1 = Uuid::from_u128(1);
        let mut m = member(Subscription::Topics(vec!["a".into()]));
        m.build_heartbeat();
        m.apply(&ok(1, Some(vec![(t1, vec![0])])));
        m.build_heartbeat();
        m.heartbeat_lost();
        let hb = m.build_heartbeat();
        assert_eq!(hb.member_epoch, 1);
        assert_eq!(hb.rebalance_timeout_ms, 300_000);
        assert!(hb.subscribed_topic_names.is_some());
        assert_eq!(hb.server_assignor.as_deref(), Some("uniform"));
        assert_eq!(owned_in(&hb), Some(vec![(t1, vec![0])]));
    }

    #[test]
    fn fenced_member_drops_partitions_and_rejoins_at_epoch_0() {
        let t1 = Uuid::from_u128(1);
        for code in [
            ResponseError::FencedMemberEpoch,
            ResponseError::UnknownMemberId,
        ] {
            let mut m = member(Subscription::Topics(vec!["a".into()]));
            m.build_heartbeat();
            m.apply(&ok(4, Some(vec![(t1, vec![0, 1])])));
            m.build_heartbeat();
            let fenced = ConsumerGroupHeartbeatResponse::default().with_error_code(code.code());
            assert_eq!(m.apply(&fenced), Next::After(Duration::ZERO));
            assert!(m.owned.is_empty());
            let join = m.build_heartbeat();
            assert_eq!(join.member_epoch, 0);
            assert_eq!(join.member_id.as_str(), "m-1");
            assert!(join.subscribed_topic_names.is_some());
            assert_eq!(owned_in(&join), Some(vec![]));
            assert_eq!(m.rejoins, 1);
        }
    }

    #[test]
    fn other_errors_stop_or_reconnect() {
        let mut m = member(Subscription::Topics(vec!["a".into()]));
        m.build_heartbeat();
        let e =
            |c: ResponseError| ConsumerGroupHeartbeatResponse::default().with_error_code(c.code());
        assert_eq!(m.apply(&e(ResponseError::NotCoordinator)), Next::Reconnect);
        m.build_heartbeat();
        assert!(matches!(
            m.apply(&e(ResponseError::UnsupportedAssignor)),
            Next::Fail(_)
        ));
        assert!(m.failed.is_some());
    }

    #[test]
    fn reconciled_needs_epoch_target_and_ack() {
        use crate::admin::{AssignedPartitions, ConsumerMemberDescription};
        let t1 = Uuid::from_u128(1);
        let mut m = member(Subscription::Topics(vec!["a".into()]));
        m.build_heartbeat();
        m.apply(&ok(3, Some(vec![(t1, vec![0, 1])])));
        let desc = |epoch: i32, target: Vec<i32>| ConsumerGroupDescription {
            group_id: "g".into(),
            error: None,
            error_message: None,
            state: "Stable".into(),
            group_epoch: epoch,
            assignment_epoch: epoch,
            assignor: "uniform".into(),
            members: vec![ConsumerMemberDescription {
                member_id: "m-1".into(),
                instance_id: None,
                rack_id: None,
                member_epoch: epoch,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                subscribed_topic_names: vec!["a".into()],
                subscribed_topic_regex: None,
                assignment: vec![],
                target_assignment: vec![AssignedPartitions {
                    topic_id: t1,
                    topic: "a".into(),
                    partitions: target,
                }],
                member_type: Some(1),
            }],
        };
        // Not acknowledged yet.
        assert!(!m.reconciled_with(&desc(3, vec![0, 1])));
        m.build_heartbeat();
        m.apply(&ok(3, None));
        assert!(m.reconciled_with(&desc(3, vec![0, 1])));
        assert!(!m.reconciled_with(&desc(4, vec![0, 1])), "group moved on");
        assert!(!m.reconciled_with(&desc(3, vec![0])), "target differs");
    }
}
