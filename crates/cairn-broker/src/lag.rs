//! Consumer lag and group health, computed in the broker. A background task takes a snapshot
//! every `cairn.lag.refresh.ms`; `/metrics` and the HTTP API read only the latest snapshot, so a
//! scrape costs no log reads however many groups there are. The rules are written down in
//! `docs/observability.md`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_group::consumer::{Assignment, TopicId};
use cairn_group::consumer_protocol::{decode_assignment, group_by_topic};
use cairn_group::{
    ConsumerGroupDescription, FetchedOffset, GroupDescription, GroupState, GroupType,
};
use cairn_log::{PartitionLog, Store};
use parking_lot::{Mutex, RwLock};

use crate::groups::{Groups, OFFSETS_TOPIC};
use crate::state::now_ms;

/// Points of total lag kept per group for the lag-over-time chart (30 min at 5 s).
pub const HISTORY_POINTS: usize = 360;

/// Burrow-style health of one partition or group, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Lagging,
    Stalled,
    Stopped,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Ok,
        Status::Lagging,
        Status::Stalled,
        Status::Stopped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Lagging => "lagging",
            Status::Stalled => "stalled",
            Status::Stopped => "stopped",
        }
    }
}

/// One snapshot's view of one committed partition, for the status rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub committed: i64,
    pub lag: i64,
}

/// The status rule of `docs/observability.md` for one partition, over its samples oldest first
/// (at most `window` of them).
pub fn partition_status(samples: &[Sample], window: usize, has_members: bool) -> Status {
    let Some(last) = samples.last() else {
        return Status::Ok;
    };
    if last.lag == 0 {
        return Status::Ok;
    }
    if !has_members {
        return Status::Stopped;
    }
    // Caught up at least once in the window, or too few samples to judge yet.
    if samples.iter().any(|s| s.lag == 0) || samples.len() < window {
        return Status::Ok;
    }
    let first = samples[0];
    if samples.iter().all(|s| s.committed == first.committed) {
        return Status::Stalled;
    }
    if samples.windows(2).all(|w| w[1].lag >= w[0].lag) && last.lag > first.lag {
        return Status::Lagging;
    }
    Status::Ok
}

#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub log_start: i64,
    pub log_end: i64,
    pub lag: Option<i64>,
    pub lag_seconds: Option<f64>,
    /// The member holding the partition now (for a consumer group, assigned or still being
    /// revoked).
    pub owner: Option<String>,
    /// Consumer groups: the member whose target assignment has the partition. It differs from
    /// `owner` while the partition moves.
    pub target_owner: Option<String>,
    pub status: Status,
}

/// Topic name → sorted partitions.
pub type TopicPartitionList = Vec<(String, Vec<i32>)>;

#[derive(Debug, Clone, PartialEq)]
pub struct MemberLag {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub instance_id: Option<String>,
    /// What the member owns now (its current assignment).
    pub assignment: TopicPartitionList,
    /// Consumer groups only.
    pub consumer: Option<ConsumerMemberLag>,
}

/// A consumer-group member's reconciliation, as ConsumerGroupDescribe tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerMemberLag {
    pub member_epoch: i32,
    /// "consumer", or "classic" for a classic-protocol member of a consumer group (online
    /// migration).
    pub protocol: &'static str,
    /// "stable", "unrevoked_partitions", "unreleased_partitions" or "unknown".
    pub state: &'static str,
    pub subscribed_topics: Vec<String>,
    pub subscribed_regex: Option<String>,
    /// Where the member is heading.
    pub target: TopicPartitionList,
    /// Target partitions it does not own yet (still held by another member, or not yet handed
    /// over).
    pub pending_assignment: TopicPartitionList,
    /// Partitions it owns but must give up first.
    pub pending_revocation: TopicPartitionList,
}

impl ConsumerMemberLag {
    /// Partitions the member has yet to gain or give up.
    pub fn reconciling(&self) -> usize {
        count(&self.pending_assignment) + count(&self.pending_revocation)
    }
}

fn count(l: &TopicPartitionList) -> usize {
    l.iter().map(|(_, ps)| ps.len()).sum()
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupLag {
    pub group: String,
    pub group_type: GroupType,
    /// The classic state. A consumer group shows Empty or Stable here; see `state_name`.
    pub state: GroupState,
    /// The state as ListGroups names it, for either type (a consumer group: Empty, Assigning,
    /// Reconciling, Stable).
    pub state_name: &'static str,
    pub protocol_type: String,
    pub assignor: Option<String>,
    /// The generation of a classic group; the group epoch of a consumer group.
    pub generation: i32,
    /// Consumer groups: the group epoch the target assignment was computed for.
    pub assignment_epoch: Option<i32>,
    pub leader: Option<String>,
    pub members: Vec<MemberLag>,
    /// Sorted by topic, then partition.
    pub partitions: Vec<PartitionLag>,
    pub total_lag: i64,
    pub max_lag: i64,
    pub max_lag_seconds: f64,
    pub status: Status,
}

impl GroupLag {
    pub fn uncommitted(&self) -> usize {
        self.partitions
            .iter()
            .filter(|p| p.committed.is_none())
            .count()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogOffsets {
    pub topic: String,
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Default)]
pub struct LagSnapshot {
    /// `None` until the first snapshot.
    pub taken_ms: Option<i64>,
    pub compute_seconds: f64,
    /// Sorted by group id.
    pub groups: Vec<GroupLag>,
    /// Partitions of the non-internal topics.
    pub partitions: Vec<LogOffsets>,
}

impl LagSnapshot {
    pub fn group(&self, id: &str) -> Option<&GroupLag> {
        self.groups
            .binary_search_by(|g| g.group.as_str().cmp(id))
            .ok()
            .map(|i| &self.groups[i])
    }
}

/// The latest snapshot, swapped whole so readers never see a half-built one.
#[derive(Debug, Default)]
pub struct SnapshotCell(RwLock<Arc<LagSnapshot>>);

impl SnapshotCell {
    pub fn get(&self) -> Arc<LagSnapshot> {
        self.0.read().clone()
    }

    fn set(&self, s: LagSnapshot) {
        *self.0.write() = Arc::new(s);
    }
}

pub type PartKey = (String, i32);

/// What carries over from one snapshot to the next; touched by the refresher only.
#[derive(Default)]
struct Carry {
    windows: HashMap<(String, String, i32), VecDeque<Sample>>,
    /// (topic, partition, offset) → record timestamp: a committed offset that does not move
    /// costs one log read, not one per snapshot.
    timestamps: HashMap<(String, i32, i64), i64>,
    /// The chosen protocol of each group's last Stable generation (Kafka hides it otherwise).
    assignors: HashMap<String, String>,
    /// Partitions assigned in each group's last Stable generation: during a rebalance Kafka hides
    /// assignments, and assigned-but-uncommitted partitions should not vanish meanwhile.
    assigned: HashMap<String, Vec<PartKey>>,
}

pub struct LagEngine {
    store: Arc<Store>,
    groups: Arc<Groups>,
    cell: Arc<SnapshotCell>,
    pub refresh_ms: i64,
    window: usize,
    carry: Mutex<Carry>,
    history: Mutex<HashMap<String, VecDeque<(i64, i64)>>>,
}

impl LagEngine {
    pub fn new(
        store: Arc<Store>,
        groups: Arc<Groups>,
        cell: Arc<SnapshotCell>,
        refresh_ms: i64,
        window: usize,
    ) -> LagEngine {
        LagEngine {
            store,
            groups,
            cell,
            refresh_ms: refresh_ms.max(1),
            window: window.max(2),
            carry: Mutex::new(Carry::default()),
            history: Mutex::new(HashMap::new()),
        }
    }

    pub fn snapshot(&self) -> Arc<LagSnapshot> {
        self.cell.get()
    }

    /// One group's `(time, total lag)` points, oldest first.
    pub fn history(&self, group: &str) -> Vec<(i64, i64)> {
        self.history
            .lock()
            .get(group)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Recomputes on a timer until shutdown. Reads logs, so each round runs on a blocking thread.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut every = tokio::time::interval(Duration::from_millis(self.refresh_ms as u64));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = every.tick() => {}
            }
            let me = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || me.refresh()).await {
                tracing::warn!("lag snapshot failed: {e}");
            }
        }
    }

    /// Takes one snapshot now and publishes it.
    pub fn refresh(&self) {
        let started = Instant::now();
        let now = now_ms();
        // Only cheap copies under the coordinator lock; log reads happen after it is released.
        let raw: Vec<(Described, Vec<FetchedOffset>)> = self.groups.read_all(|c| {
            c.list_groups()
                .into_iter()
                .filter_map(|l| {
                    // DescribeGroups speaks of classic groups only; consumer groups have their
                    // own description.
                    let d = match l.group_type {
                        GroupType::Classic => Described::Classic(c.describe_group(&l.group_id)?),
                        GroupType::Consumer => Described::Consumer(
                            c.describe_consumer_group(&l.group_id).ok()?,
                            l.state,
                        ),
                    };
                    let offsets = c.fetch_offsets(&l.group_id, None).partitions;
                    Some((d, offsets))
                })
                .collect()
        });
        let topics = self.store.topics();
        // Consumer groups name topics by id.
        let names: HashMap<TopicId, String> = topics
            .iter()
            .map(|t| (*t.id.as_bytes(), t.name.clone()))
            .collect();
        let mut carry = self.carry.lock();
        let mut logs: HashMap<PartKey, Option<Arc<PartitionLog>>> = HashMap::new();
        let mut windows = HashMap::with_capacity(carry.windows.len());
        let mut timestamps = HashMap::with_capacity(carry.timestamps.len());
        let mut assignors = HashMap::with_capacity(raw.len());
        let mut assigned = HashMap::with_capacity(raw.len());
        let mut groups = Vec::with_capacity(raw.len());
        for (d, offsets) in raw {
            let input = match d {
                Described::Classic(d) => classic_input(d),
                Described::Consumer(d, state) => consumer_input(d, state, &names),
            };
            let g = self.group_lag(
                now,
                input,
                offsets,
                &mut carry,
                &mut logs,
                &mut windows,
                &mut timestamps,
                &mut assigned,
            );
            if let Some(a) = &g.assignor {
                assignors.insert(g.group.clone(), a.clone());
            }
            groups.push(g);
        }
        carry.windows = windows;
        carry.timestamps = timestamps;
        carry.assignors = assignors;
        carry.assigned = assigned;
        drop(carry);
        groups.sort_by(|a, b| a.group.cmp(&b.group));

        {
            let mut history = self.history.lock();
            let live: HashSet<&str> = groups.iter().map(|g| g.group.as_str()).collect();
            history.retain(|k, _| live.contains(k.as_str()));
            for g in &groups {
                let h = history.entry(g.group.clone()).or_default();
                if h.len() == HISTORY_POINTS {
                    h.pop_front();
                }
                h.push_back((now, g.total_lag));
            }
        }

        let mut partitions = Vec::new();
        for t in topics {
            if t.internal || t.name == OFFSETS_TOPIC {
                continue;
            }
            for p in 0..t.partitions as i32 {
                if let Some(log) = self.store.partition(&t.name, p) {
                    partitions.push(LogOffsets {
                        topic: t.name.clone(),
                        partition: p,
                        start: log.log_start_offset(),
                        end: log.log_end_offset(),
                    });
                }
            }
        }
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        self.cell.set(LagSnapshot {
            taken_ms: Some(now),
            compute_seconds: started.elapsed().as_secs_f64(),
            groups,
            partitions,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn group_lag(
        &self,
        now: i64,
        d: GroupInput,
        offsets: Vec<FetchedOffset>,
        carry: &mut Carry,
        logs: &mut HashMap<PartKey, Option<Arc<PartitionLog>>>,
        windows: &mut HashMap<(String, String, i32), VecDeque<Sample>>,
        timestamps: &mut HashMap<(String, i32, i64), i64>,
        assigned: &mut HashMap<String, Vec<PartKey>>,
    ) -> GroupLag {
        let GroupInput {
            group_id,
            group_type,
            state,
            state_name,
            protocol_type,
            assignor,
            generation,
            assignment_epoch,
            leader,
            members,
            mut owners,
            mut target_owners,
        } = d;
        let has_members = !members.is_empty();

        let mut committed: HashMap<PartKey, i64> = offsets
            .into_iter()
            .filter(|o| o.offset >= 0)
            .map(|o| ((o.topic, o.partition), o.offset))
            .collect();
        // Only a classic group hides its assignment while it rebalances.
        let rebalancing = group_type == GroupType::Classic
            && matches!(
                state,
                GroupState::PreparingRebalance | GroupState::CompletingRebalance
            );
        let now_assigned: Vec<PartKey> = if owners.is_empty() && rebalancing {
            carry.assigned.remove(&group_id).unwrap_or_default()
        } else {
            // A consumer group's partitions on their way to a member count as assigned too.
            let mut all: Vec<PartKey> = owners.keys().cloned().collect();
            all.extend(
                target_owners
                    .keys()
                    .filter(|k| !owners.contains_key(*k))
                    .cloned(),
            );
            all
        };
        let mut keys: Vec<PartKey> = committed.keys().cloned().collect();
        keys.extend(
            now_assigned
                .iter()
                .filter(|k| !committed.contains_key(*k))
                .cloned(),
        );
        if !now_assigned.is_empty() {
            assigned.insert(group_id.clone(), now_assigned);
        }
        keys.sort();

        let mut partitions = Vec::with_capacity(keys.len());
        let (mut total, mut max_lag, mut max_secs) = (0i64, 0i64, 0f64);
        let mut status = Status::Ok;
        for key in keys {
            let log = logs
                .entry(key.clone())
                .or_insert_with(|| self.store.partition(&key.0, key.1))
                .clone();
            // Offsets of a deleted topic have nothing to lag behind.
            let Some(log) = log else { continue };
            let (start, end) = (log.log_start_offset(), log.log_end_offset());
            let owner = owners.remove(&key);
            let target_owner = target_owners.remove(&key);
            let Some(off) = committed.remove(&key) else {
                partitions.push(PartitionLag {
                    topic: key.0,
                    partition: key.1,
                    committed: None,
                    log_start: start,
                    log_end: end,
                    lag: None,
                    lag_seconds: None,
                    owner,
                    target_owner,
                    status: Status::Ok,
                });
                continue;
            };
            // Markers and aborted records are never consumed, so they are not lag.
            let lag = ((end - off).max(0) - log.hidden_offsets(off, end)).max(0);
            let lag_seconds = if lag == 0 {
                Some(0.0)
            } else {
                let tkey = (key.0.clone(), key.1, off);
                let ts = match carry.timestamps.get(&tkey) {
                    Some(&ts) => Some(ts),
                    None => match log.timestamp_at(off) {
                        Ok(ts) => ts,
                        Err(e) => {
                            tracing::debug!(topic = %key.0, partition = key.1, "no timestamp for lag: {e}");
                            None
                        }
                    },
                };
                if let Some(ts) = ts {
                    // Below the log start the answer moves with retention; do not keep it.
                    if off >= start {
                        timestamps.insert(tkey, ts);
                    }
                }
                ts.map(|ts| (now - ts).max(0) as f64 / 1000.0)
            };
            let wkey = (group_id.clone(), key.0.clone(), key.1);
            let mut w = carry.windows.remove(&wkey).unwrap_or_default();
            if w.len() >= self.window {
                w.pop_front();
            }
            w.push_back(Sample {
                committed: off,
                lag,
            });
            let pstatus = partition_status(w.make_contiguous(), self.window, has_members);
            windows.insert(wkey, w);
            status = status.max(pstatus);
            total += lag;
            max_lag = max_lag.max(lag);
            max_secs = max_secs.max(lag_seconds.unwrap_or(0.0));
            partitions.push(PartitionLag {
                topic: key.0,
                partition: key.1,
                committed: Some(off),
                log_start: start,
                log_end: end,
                lag: Some(lag),
                lag_seconds,
                owner,
                target_owner,
                status: pstatus,
            });
        }
        let assignor = match assignor {
            // Kafka only names a classic group's protocol in Stable; keep the last one seen
            // across a rebalance.
            None if group_type == GroupType::Classic
                && state != GroupState::Empty
                && state != GroupState::Dead =>
            {
                carry.assignors.get(&group_id).cloned()
            }
            a => a,
        };
        GroupLag {
            group: group_id,
            group_type,
            state,
            state_name,
            protocol_type,
            assignor,
            generation,
            assignment_epoch,
            leader,
            members,
            partitions,
            total_lag: total,
            max_lag,
            max_lag_seconds: max_secs,
            status,
        }
    }
}

/// A group as the coordinator described it, by protocol.
enum Described {
    Classic(GroupDescription),
    /// With the classic state the listing gives it.
    Consumer(ConsumerGroupDescription, GroupState),
}

/// What the lag computation needs of a group, whichever protocol it speaks.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInput {
    pub group_id: String,
    pub group_type: GroupType,
    pub state: GroupState,
    pub state_name: &'static str,
    pub protocol_type: String,
    /// `None`: not known now (a classic group outside Stable).
    pub assignor: Option<String>,
    pub generation: i32,
    pub assignment_epoch: Option<i32>,
    pub leader: Option<String>,
    pub members: Vec<MemberLag>,
    /// Partition → the member holding it.
    pub owners: HashMap<PartKey, String>,
    /// Partition → the member whose target has it (consumer groups).
    pub target_owners: HashMap<PartKey, String>,
}

/// A classic group: assignments are the leader's, decoded when the protocol type is "consumer".
pub fn classic_input(d: GroupDescription) -> GroupInput {
    let consumer = d.protocol_type == "consumer";
    let mut owners: HashMap<PartKey, String> = HashMap::new();
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let assignment = if consumer && !m.assignment.is_empty() {
                decode_assignment(&m.assignment)
                    .map(|a| a.topic_partitions())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            for tp in &assignment {
                owners.insert(tp.clone(), m.member_id.clone());
            }
            MemberLag {
                member_id: m.member_id,
                client_id: m.client_id,
                client_host: m.client_host,
                instance_id: m.group_instance_id,
                assignment: group_by_topic(assignment),
                consumer: None,
            }
        })
        .collect();
    GroupInput {
        group_id: d.group_id,
        group_type: GroupType::Classic,
        state: d.state,
        state_name: d.state.name(),
        protocol_type: d.protocol_type,
        assignor: (!d.protocol.is_empty()).then_some(d.protocol),
        generation: d.generation_id,
        assignment_epoch: None,
        leader: d.leader,
        members,
        owners,
        target_owners: HashMap::new(),
    }
}

/// A consumer group (KIP-848): the broker's assignment, by topic id. A partition's owner is
/// the member that holds it, assigned or still revoking; its target owner the member whose
/// target assignment has it. Topics the store no longer knows are named by their id.
pub fn consumer_input(
    d: ConsumerGroupDescription,
    state: GroupState,
    names: &HashMap<TopicId, String>,
) -> GroupInput {
    let name = |id: &TopicId| {
        names
            .get(id)
            .cloned()
            .unwrap_or_else(|| uuid::Uuid::from_bytes(*id).to_string())
    };
    let pairs = |a: &Assignment| -> Vec<PartKey> {
        a.iter()
            .flat_map(|(id, ps)| {
                let t = name(id);
                ps.iter().map(move |p| (t.clone(), *p))
            })
            .collect()
    };
    let mut owners: HashMap<PartKey, String> = HashMap::new();
    let mut target_owners: HashMap<PartKey, String> = HashMap::new();
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let current = pairs(&m.assignment);
            let target = pairs(&m.target_assignment);
            let revoking = pairs(&m.pending_revocation);
            for k in revoking.iter().chain(&current) {
                owners.insert(k.clone(), m.member_id.clone());
            }
            for k in &target {
                target_owners.insert(k.clone(), m.member_id.clone());
            }
            let held: HashSet<&PartKey> = current.iter().collect();
            let pending: Vec<PartKey> = target
                .iter()
                .filter(|k| !held.contains(k))
                .cloned()
                .collect();
            MemberLag {
                consumer: Some(ConsumerMemberLag {
                    member_epoch: m.member_epoch,
                    protocol: if m.member_type == 0 {
                        "classic"
                    } else {
                        "consumer"
                    },
                    state: m.state,
                    subscribed_topics: m.subscribed_topic_names,
                    subscribed_regex: m.subscribed_topic_regex,
                    target: group_by_topic(target),
                    pending_assignment: group_by_topic(pending),
                    pending_revocation: group_by_topic(revoking),
                }),
                member_id: m.member_id,
                client_id: m.client_id,
                client_host: m.client_host,
                instance_id: m.instance_id,
                assignment: group_by_topic(current),
            }
        })
        .collect();
    GroupInput {
        group_id: d.group_id,
        group_type: GroupType::Consumer,
        state,
        state_name: d.state,
        protocol_type: "consumer".to_string(),
        assignor: (!d.assignor_name.is_empty()).then_some(d.assignor_name),
        generation: d.group_epoch,
        assignment_epoch: Some(d.assignment_epoch),
        leader: None,
        members,
        owners,
        target_owners,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_config::BrokerConfig;

    /// A store with topic `t` (`parts` partitions, `records` records each, written at `ts`),
    /// a coordinator over it and an engine, wired like the broker does.
    async fn setup(
        parts: u32,
        records: usize,
        ts: i64,
    ) -> (tempfile::TempDir, Arc<Groups>, LagEngine) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Arc::new(BrokerConfig::from_pairs(Vec::<(String, String)>::new()).unwrap());
        let c2 = cfg.clone();
        let store = Arc::new(
            Store::open(
                dir.path(),
                Arc::new(move |t: &cairn_log::TopicMeta| crate::state::log_config_for(&c2, t)),
            )
            .unwrap(),
        );
        store
            .create_topic("t", parts, Default::default(), false)
            .unwrap();
        for p in 0..parts as i32 {
            let recs: Vec<cairn_runtime::LogRecord> = (0..records)
                .map(|i| {
                    cairn_runtime::LogRecord::plain(
                        format!("k{i}").into_bytes(),
                        Some(b"v".to_vec()),
                    )
                })
                .collect();
            let batch = cairn_log::encode_records(&recs, ts);
            store.partition("t", p).unwrap().append(&batch, ts).unwrap();
        }
        let cell = Arc::new(SnapshotCell::default());
        let metrics = Arc::new(crate::metrics::Metrics::new(cell.clone()));
        let groups = Arc::new(Groups::new(&cfg, store.clone(), metrics));
        let engine = LagEngine::new(store, groups.clone(), cell, 5000, 3);
        (dir, groups, engine)
    }

    async fn commit(groups: &Arc<Groups>, group: &str, offsets: &[(i32, i64)]) {
        let req = cairn_group::OffsetCommit {
            group_id: group.to_string(),
            member_id: String::new(),
            group_instance_id: None,
            generation_id: -1,
            retention_time_ms: -1,
            api_version: 8,
            partitions: offsets
                .iter()
                .map(|&(partition, offset)| cairn_group::CommitPartition {
                    topic: "t".into(),
                    partition,
                    offset,
                    leader_epoch: -1,
                    metadata: None,
                })
                .collect(),
        };
        let r = groups
            .call(group, move |c, now| c.commit_offsets(now, req))
            .await
            .unwrap();
        assert!(r.error.is_none(), "{r:?}");
    }

    #[tokio::test]
    async fn lag_per_partition_and_group() {
        let written = now_ms() - 30_000;
        let (_dir, groups, engine) = setup(3, 10, written).await;
        // p0 behind by 6, p1 caught up, p2 committed past the end (clamped), "idle" empty group.
        commit(&groups, "g", &[(0, 4), (1, 10), (2, 25)]).await;
        engine.refresh();
        let snap = engine.snapshot();
        let g = snap.group("g").expect("group in snapshot");
        assert_eq!(g.state, GroupState::Empty);
        let lags: Vec<_> = g
            .partitions
            .iter()
            .map(|p| (p.partition, p.committed, p.lag))
            .collect();
        assert_eq!(
            lags,
            vec![
                (0, Some(4), Some(6)),
                (1, Some(10), Some(0)),
                (2, Some(25), Some(0))
            ]
        );
        let secs = g.partitions[0].lag_seconds.unwrap();
        assert!((29.0..120.0).contains(&secs), "{secs}");
        assert_eq!(g.partitions[1].lag_seconds, Some(0.0));
        assert_eq!((g.total_lag, g.max_lag), (6, 6));
        // Lag with nobody consuming: stopped.
        assert_eq!(g.status, Status::Stopped);
        assert_eq!(snap.partitions.len(), 3);
        assert_eq!(engine.history("g").len(), 1);

        // Catching up turns it ok, and the history grows.
        commit(&groups, "g", &[(0, 10)]).await;
        engine.refresh();
        let snap = engine.snapshot();
        let g = snap.group("g").unwrap();
        assert_eq!((g.total_lag, g.status), (0, Status::Ok));
        assert_eq!(
            engine.history("g").iter().map(|p| p.1).collect::<Vec<_>>(),
            vec![6, 0]
        );
    }

    /// The cost that matters: a snapshot over 1,000 groups of 4 lagging partitions each.
    #[tokio::test]
    async fn snapshot_of_a_thousand_groups() {
        let (_dir, groups, engine) = setup(4, 200, now_ms() - 5_000).await;
        for i in 0..1000 {
            let o = (i % 150) as i64;
            commit(
                &groups,
                &format!("group-{i:04}"),
                &[(0, o), (1, o + 1), (2, o + 2), (3, o + 3)],
            )
            .await;
        }
        let t = Instant::now();
        engine.refresh();
        let cold = t.elapsed();
        let t = Instant::now();
        engine.refresh();
        let warm = t.elapsed();
        let snap = engine.snapshot();
        assert_eq!(snap.groups.len(), 1000);
        assert!(snap
            .groups
            .iter()
            .all(|g| g.partitions.len() == 4 && g.total_lag > 0));
        let t = Instant::now();
        let text = crate::metrics::Metrics::new(engine.cell.clone()).render();
        let render = t.elapsed();
        assert!(text.contains(
            "kafka_consumergroup_group_lag{group=\"group-0999\",topic=\"t\",partition=\"3\"} 98.0"
        ));
        eprintln!(
            "lag snapshot, 1000 groups x 4 partitions: cold {:.1} ms, warm {:.1} ms; /metrics render {:.1} ms ({} bytes)",
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            render.as_secs_f64() * 1e3,
            text.len()
        );
        // Generous bounds for unoptimized builds on a loaded machine; the point is no blow-up.
        assert!(cold < Duration::from_secs(5) && warm < Duration::from_secs(2));
    }

    fn assignment(id: TopicId, ps: &[i32]) -> Assignment {
        if ps.is_empty() {
            return Assignment::new();
        }
        [(id, ps.iter().copied().collect())].into_iter().collect()
    }

    fn cmember(
        id: &str,
        epoch: i32,
        state: &'static str,
        current: Assignment,
        target: Assignment,
        revoking: Assignment,
    ) -> cairn_group::ConsumerMemberDescription {
        cairn_group::ConsumerMemberDescription {
            member_id: id.into(),
            instance_id: None,
            rack_id: None,
            member_epoch: epoch,
            client_id: format!("client-{id}"),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["t".into()],
            subscribed_topic_regex: None,
            assignment: current,
            target_assignment: target,
            pending_revocation: revoking,
            state,
            member_type: 1,
        }
    }

    /// The pure mapping: ids to names, owners (assigned or revoking), target owners, and what
    /// each member still has to gain or give up.
    #[test]
    fn consumer_group_mapping() {
        let (t, gone) = ([1u8; 16], [2u8; 16]);
        let names: HashMap<TopicId, String> = [(t, "t".to_string())].into_iter().collect();
        let mut m1_current = assignment(t, &[0, 1]);
        m1_current.insert(gone, [0].into_iter().collect());
        let d = ConsumerGroupDescription {
            group_id: "cg".into(),
            state: "Reconciling",
            group_epoch: 5,
            assignment_epoch: 5,
            assignor_name: "uniform".into(),
            members: vec![
                // Must give up t-2 before it moves to epoch 5.
                cmember(
                    "m1",
                    4,
                    "unrevoked_partitions",
                    m1_current,
                    assignment(t, &[0, 1]),
                    assignment(t, &[2]),
                ),
                // Waits for t-2; already owns t-3.
                cmember(
                    "m2",
                    5,
                    "unreleased_partitions",
                    assignment(t, &[3]),
                    assignment(t, &[2, 3]),
                    Assignment::new(),
                ),
            ],
        };
        let g = consumer_input(d, GroupState::Stable, &names);
        assert_eq!(g.group_type, GroupType::Consumer);
        assert_eq!(g.state_name, "Reconciling");
        assert_eq!((g.generation, g.assignment_epoch), (5, Some(5)));
        assert_eq!(g.assignor.as_deref(), Some("uniform"));
        assert_eq!(g.protocol_type, "consumer");
        assert_eq!(g.leader, None);
        let owner = |p: i32| g.owners.get(&("t".to_string(), p)).map(String::as_str);
        let target = |p: i32| {
            g.target_owners
                .get(&("t".to_string(), p))
                .map(String::as_str)
        };
        // t-2 is still held by the member revoking it, and heading to m2.
        assert_eq!(
            (0..4).map(owner).collect::<Vec<_>>(),
            vec![Some("m1"), Some("m1"), Some("m1"), Some("m2")]
        );
        assert_eq!(
            (0..4).map(target).collect::<Vec<_>>(),
            vec![Some("m1"), Some("m1"), Some("m2"), Some("m2")]
        );
        // A topic the store no longer knows keeps its id as a name.
        let gone_name = uuid::Uuid::from_bytes(gone).to_string();
        assert_eq!(
            g.owners.get(&(gone_name.clone(), 0)).map(String::as_str),
            Some("m1")
        );
        let m1 = &g.members[0];
        assert_eq!(
            m1.assignment,
            vec![(gone_name, vec![0]), ("t".to_string(), vec![0, 1])]
        );
        let c1 = m1.consumer.as_ref().unwrap();
        assert_eq!((c1.member_epoch, c1.state), (4, "unrevoked_partitions"));
        assert_eq!(c1.pending_revocation, vec![("t".to_string(), vec![2])]);
        assert!(c1.pending_assignment.is_empty());
        assert_eq!(c1.reconciling(), 1);
        let c2 = g.members[1].consumer.as_ref().unwrap();
        assert_eq!(c2.target, vec![("t".to_string(), vec![2, 3])]);
        assert_eq!(c2.pending_assignment, vec![("t".to_string(), vec![2])]);
        assert_eq!(c2.subscribed_topics, vec!["t".to_string()]);
        assert_eq!(c2.reconciling(), 1);
    }

    async fn heartbeat(
        groups: &Arc<Groups>,
        store: &Store,
        group: &str,
        member_id: &str,
        epoch: i32,
        owned: Option<Vec<i32>>,
    ) -> cairn_group::ConsumerHeartbeatResponse {
        let topics = crate::topics_view::TopicsView::default().get(store);
        let id = topics.snapshot.by_name["t"].id;
        let hb = cairn_group::ConsumerHeartbeat {
            group_id: group.into(),
            member_id: member_id.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: if epoch == 0 { 60_000 } else { -1 },
            subscribed_topic_names: (epoch == 0).then(|| vec!["t".to_string()]),
            topic_partitions: owned.map(|ps| {
                if ps.is_empty() {
                    Vec::new()
                } else {
                    vec![(id, ps)]
                }
            }),
            client_id: format!("client-{member_id}"),
            client_host: "/127.0.0.1".into(),
            api_version: 1,
            ..Default::default()
        };
        groups
            .call(group, move |c, now| {
                c.consumer_heartbeat(now, hb, &topics.snapshot)
            })
            .await
            .unwrap()
            .unwrap()
    }

    fn owned(r: &cairn_group::ConsumerHeartbeatResponse) -> Vec<i32> {
        let mut ps: Vec<i32> = r
            .assignment
            .iter()
            .flatten()
            .flat_map(|(_, ps)| ps.iter().copied())
            .collect();
        ps.sort_unstable();
        ps
    }

    /// A consumer group through the coordinator: it is in the snapshot with its type, epochs,
    /// members' reconciliation and lag, and in the metrics.
    #[tokio::test]
    async fn consumer_group_lag_and_reconciliation() {
        let (_dir, groups, engine) = setup(4, 10, now_ms() - 10_000).await;
        let store = engine.store.clone();
        // Offsets committed before anyone joined are kept when the group turns consumer.
        commit(&groups, "cg", &[(0, 4), (1, 10)]).await;
        let a = heartbeat(&groups, &store, "cg", "member-a", 0, Some(vec![])).await;
        assert_eq!(owned(&a), vec![0, 1, 2, 3]);
        let a = heartbeat(
            &groups,
            &store,
            "cg",
            "member-a",
            a.member_epoch,
            Some(vec![0, 1, 2, 3]),
        )
        .await;
        let b = heartbeat(&groups, &store, "cg", "member-b", 0, Some(vec![])).await;
        // member-a learns what to give up; it has not done so yet.
        let a2 = heartbeat(
            &groups,
            &store,
            "cg",
            "member-a",
            a.member_epoch,
            Some(vec![0, 1, 2, 3]),
        )
        .await;
        let kept = owned(&a2);
        assert_eq!(kept.len(), 2, "{a2:?}");
        let moving: Vec<i32> = (0..4).filter(|p| !kept.contains(p)).collect();

        engine.refresh();
        let snap = engine.snapshot();
        let g = snap.group("cg").expect("consumer group in the snapshot");
        assert_eq!(g.group_type, GroupType::Consumer);
        assert_eq!(g.state_name, "Reconciling");
        assert_eq!(g.protocol_type, "consumer");
        assert_eq!(g.assignment_epoch, Some(g.generation));
        assert!(g.generation >= 2, "{}", g.generation);
        let ma = g
            .members
            .iter()
            .find(|m| m.member_id == "member-a")
            .unwrap();
        let ca = ma.consumer.as_ref().unwrap();
        assert_eq!(ca.state, "unrevoked_partitions");
        assert!(ca.member_epoch < g.generation);
        assert_eq!(
            ca.pending_revocation,
            vec![("t".to_string(), moving.clone())]
        );
        let mb = g
            .members
            .iter()
            .find(|m| m.member_id == "member-b")
            .unwrap();
        let cb = mb.consumer.as_ref().unwrap();
        assert_eq!(cb.target, vec![("t".to_string(), moving.clone())]);
        assert_eq!(cb.pending_assignment, cb.target);
        assert!(mb.assignment.is_empty());
        // Every partition is listed: committed ones with their lag, the others uncommitted.
        assert_eq!(g.partitions.len(), 4);
        for p in &g.partitions {
            assert_eq!(p.owner.as_deref(), Some("member-a"), "{p:?}");
            let to = if moving.contains(&p.partition) {
                "member-b"
            } else {
                "member-a"
            };
            assert_eq!(p.target_owner.as_deref(), Some(to), "{p:?}");
        }
        assert_eq!(g.partitions[0].lag, Some(6));
        assert_eq!(g.partitions[1].lag, Some(0));
        assert_eq!(g.uncommitted(), 2);
        assert_eq!(g.total_lag, 6);
        let text = crate::metrics::Metrics::new(engine.cell.clone()).render();
        for line in [
            "cairn_groups{type=\"consumer\",state=\"Reconciling\"} 1".to_string(),
            "cairn_groups{type=\"classic\",state=\"Stable\"} 0".to_string(),
            format!(
                "cairn_consumer_group_epoch{{group=\"cg\"}} {}",
                g.generation
            ),
            format!(
                "cairn_consumer_group_assignment_epoch{{group=\"cg\"}} {}",
                g.generation
            ),
            "cairn_consumer_group_reconciling_partitions{group=\"cg\"} 4".to_string(),
            "cairn_group_state{group=\"cg\",state=\"Reconciling\"} 1".to_string(),
            "kafka_consumergroup_group_lag{group=\"cg\",topic=\"t\",partition=\"0\"} 6".to_string(),
        ] {
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }

        // Both reconcile: member-a gives up what it must, member-b then receives it.
        let a3 = heartbeat(
            &groups,
            &store,
            "cg",
            "member-a",
            a2.member_epoch,
            Some(kept.clone()),
        )
        .await;
        let b2 = heartbeat(
            &groups,
            &store,
            "cg",
            "member-b",
            b.member_epoch,
            Some(vec![]),
        )
        .await;
        let b_owned = if b2.assignment.is_some() {
            owned(&b2)
        } else {
            Vec::new()
        };
        let b3 = heartbeat(
            &groups,
            &store,
            "cg",
            "member-b",
            b2.member_epoch,
            Some(b_owned),
        )
        .await;
        assert_eq!(a3.member_epoch, b3.member_epoch);
        engine.refresh();
        let snap = engine.snapshot();
        let g = snap.group("cg").unwrap();
        assert_eq!(g.state_name, "Stable", "{g:#?}");
        assert!(g.members.iter().all(|m| {
            let c = m.consumer.as_ref().unwrap();
            c.reconciling() == 0 && c.state == "stable" && c.member_epoch == g.generation
        }));
        assert!(g.partitions.iter().all(|p| p.owner == p.target_owner));
        let history = groups.read_group("cg", |c| c.rebalance_history("cg"));
        let last = history.last().expect("epoch bumps recorded");
        assert_eq!(last.generation, Some(g.generation));
        assert!(last.completed_ms.is_some(), "{last:?}");
    }

    /// What consumer groups cost a snapshot: 1,000 of them, one member owning 4 lagging
    /// partitions each (their description is copied under the coordinator lock, and topic ids
    /// are mapped to names).
    #[tokio::test]
    async fn snapshot_of_a_thousand_consumer_groups() {
        let (_dir, groups, engine) = setup(4, 200, now_ms() - 5_000).await;
        let store = engine.store.clone();
        for i in 0..1000 {
            let g = format!("cg-{i:04}");
            let o = (i % 150) as i64;
            commit(&groups, &g, &[(0, o), (1, o + 1), (2, o + 2), (3, o + 3)]).await;
            let r = heartbeat(&groups, &store, &g, "m", 0, Some(vec![])).await;
            assert_eq!(owned(&r), vec![0, 1, 2, 3]);
        }
        let t = Instant::now();
        engine.refresh();
        let cold = t.elapsed();
        let t = Instant::now();
        engine.refresh();
        let warm = t.elapsed();
        let snap = engine.snapshot();
        assert_eq!(snap.groups.len(), 1000);
        assert!(snap
            .groups
            .iter()
            .all(|g| g.group_type == GroupType::Consumer
                && g.partitions.len() == 4
                && g.partitions.iter().all(|p| p.owner.as_deref() == Some("m"))
                && g.total_lag > 0));
        eprintln!(
            "lag snapshot, 1000 consumer groups x 4 partitions: cold {:.1} ms, warm {:.1} ms",
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
        );
        assert!(cold < Duration::from_secs(5) && warm < Duration::from_secs(2));
    }

    fn s(committed: i64, lag: i64) -> Sample {
        Sample { committed, lag }
    }

    #[test]
    fn status_rule() {
        let n = 4;
        // Nothing to judge.
        assert_eq!(partition_status(&[], n, true), Status::Ok);
        // Caught up now, or at some point in the window.
        assert_eq!(partition_status(&[s(5, 3), s(8, 0)], n, true), Status::Ok);
        let dipped = [s(1, 3), s(4, 0), s(4, 2), s(6, 4)];
        assert_eq!(partition_status(&dipped, n, true), Status::Ok);
        // Lag but nobody there: stopped, at once.
        assert_eq!(partition_status(&[s(5, 3)], n, false), Status::Stopped);
        assert_eq!(partition_status(&[s(5, 0)], n, false), Status::Ok);
        // Members, lag, no commit across a full window: stalled; not before the window is full.
        let stuck = [s(5, 3), s(5, 4), s(5, 9), s(5, 9)];
        assert_eq!(partition_status(&stuck, n, true), Status::Stalled);
        assert_eq!(partition_status(&stuck[..3], n, true), Status::Ok);
        // Commits advance, lag never shrinks and grows overall: lagging.
        let behind = [s(5, 3), s(6, 3), s(8, 5), s(9, 8)];
        assert_eq!(partition_status(&behind, n, true), Status::Lagging);
        // Commits advance and lag shrinks somewhere: keeping up.
        let keeping = [s(5, 3), s(6, 5), s(9, 4), s(12, 6)];
        assert_eq!(partition_status(&keeping, n, true), Status::Ok);
        // Constant lag with advancing commits is a steady pipeline, not falling behind.
        let steady = [s(5, 3), s(8, 3), s(11, 3), s(14, 3)];
        assert_eq!(partition_status(&steady, n, true), Status::Ok);
        // Worst wins at group level.
        assert!(Status::Stopped > Status::Stalled && Status::Stalled > Status::Lagging);
    }
}
