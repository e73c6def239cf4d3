//! The driver of the group coordinator's shards: one shard per `__consumer_offsets`
//! partition, each a `cairn_runtime::Shard` over its own `GroupCoordinator` and partition log.
//!
//! A request is routed to its group's shard and run there under that shard's lock only, so
//! groups on different partitions never wait for each other. Each shard has one task that
//! performs its writes (all records handled since the last write, one append and, in the fsync
//! mode, one fsync, on a blocking thread) and fires its timers. Replies are released by the
//! shard once what they depend on is durable; a failed write is undone by the shard and its
//! requests answered with Kafka's error for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_config::BrokerConfig;
use cairn_group::{
    DeleteGroupsResult, Effects, GroupConfig, GroupCoordinator, GroupError, MigrationPolicy,
    RebalanceRecord, Replayed, Reply,
};
use cairn_log::{PartitionLog, Store, TopicMeta};
use cairn_runtime::{
    Clock, Delivery, LogFault, LogRecord, Output, RecordLog, Seq, Shard, SystemClock, Token, Write,
    WriteResult,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch, Notify};

use crate::metrics::Metrics;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Who waits for a request's outcome.
enum Waiter {
    /// A call whose answer the caller holds until the request is final.
    Call(oneshot::Sender<Result<(), LogFault>>),
    /// A parked JoinGroup/SyncGroup: answered through its token.
    Parked(Token),
}

struct ShardState {
    shard: Shard<GroupCoordinator>,
    waiters: HashMap<Seq, Waiter>,
    /// Parked requests: whether it is a SyncGroup (for the shape of an error reply), and where
    /// its reply goes.
    parked: HashMap<Token, (bool, oneshot::Sender<Reply>)>,
    /// Rebalances that ended in a request, reported once the request is final.
    rebalances: HashMap<Seq, Vec<RebalanceRecord>>,
}

/// A reply to send once the shard's lock is released.
enum Send {
    Call(oneshot::Sender<Result<(), LogFault>>, Result<(), LogFault>),
    Reply(oneshot::Sender<Reply>, Reply),
}

fn failure(is_sync: bool, e: GroupError) -> Reply {
    if is_sync {
        Reply::Sync(Err(e))
    } else {
        Reply::Join(Err(e))
    }
}

/// Kafka's mapping of a failed coordinator write: a batch too large is UNKNOWN_SERVER_ERROR,
/// a storage fault (or a lost lease) NOT_COORDINATOR, so the client looks for the coordinator
/// again and retries.
pub fn write_error(f: &LogFault) -> GroupError {
    match f {
        LogFault::TooLarge { .. } => GroupError::UnknownServerError,
        LogFault::Storage(_) | LogFault::Fenced(_) => GroupError::NotCoordinator,
    }
}

impl ShardState {
    fn dispatch(&mut self, deliveries: Vec<Delivery<Reply>>, metrics: &Metrics) -> Vec<Send> {
        let mut out = Vec::new();
        for d in deliveries {
            match d {
                Delivery::Done(seq) => {
                    for r in self.rebalances.remove(&seq).unwrap_or_default() {
                        metrics.rebalance_ended(&r);
                    }
                    if let Some(Waiter::Call(tx)) = self.waiters.remove(&seq) {
                        out.push(Send::Call(tx, Ok(())));
                    }
                }
                Delivery::Failed(seq, fault) => {
                    self.rebalances.remove(&seq);
                    match self.waiters.remove(&seq) {
                        Some(Waiter::Call(tx)) => out.push(Send::Call(tx, Err(fault))),
                        Some(Waiter::Parked(token)) => {
                            if let Some((sync, tx)) = self.parked.remove(&token) {
                                out.push(Send::Reply(tx, failure(sync, write_error(&fault))));
                            }
                        }
                        None => {}
                    }
                }
                Delivery::Reply(token, reply) => {
                    if let Some((_, tx)) = self.parked.remove(&token) {
                        out.push(Send::Reply(tx, reply));
                    }
                }
                Delivery::Orphaned(token, fault) => {
                    if let Some((sync, tx)) = self.parked.remove(&token) {
                        out.push(Send::Reply(tx, failure(sync, write_error(&fault))));
                    }
                }
            }
        }
        out
    }
}

fn deliver(sends: Vec<Send>) {
    for s in sends {
        match s {
            Send::Call(tx, r) => {
                let _ = tx.send(r);
            }
            Send::Reply(tx, r) => {
                let _ = tx.send(r);
            }
        }
    }
}

struct ShardCell {
    partition: i32,
    /// The shard's storage, through the narrow interface only.
    log: Arc<dyn RecordLog>,
    state: Mutex<ShardState>,
    /// Wakes the shard's task: records to write, or timers changed.
    wake: Notify,
}

/// Whether a shard's next timer moved earlier, so its task must wake to re-arm.
fn sooner(now: Option<i64>, before: Option<i64>) -> bool {
    match (now, before) {
        (Some(n), Some(b)) => n < b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn to_output(fx: Effects, rebalances: &mut Vec<RebalanceRecord>) -> Output<Reply> {
    rebalances.extend(fx.rebalances);
    Output {
        records: fx
            .records
            .into_iter()
            .map(|r| LogRecord {
                key: r.key,
                value: r.value,
                tag: r.tag,
            })
            .collect(),
        replies: fx.replies,
    }
}

pub struct Groups {
    config: GroupConfig,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    /// One per offsets partition, once the topic exists.
    shards: RwLock<Arc<Vec<Arc<ShardCell>>>>,
    /// Answers reads while the offsets topic does not exist yet.
    empty: GroupCoordinator,
    /// Set once shutdown begins: parked requests are released and no new ones are parked.
    stopping: AtomicBool,
    stop: watch::Sender<bool>,
    /// The offsets topic's real partition count once it exists; the setting only applies when
    /// the topic is created (changing it later would move groups to other partitions).
    num_partitions: AtomicI32,
    segment_bytes: i64,
    /// `log.flush.interval.messages=1`: a write is durable once fsynced.
    sync: bool,
    next_token: AtomicU64,
    id_seed: u64,
    metrics: Arc<Metrics>,
}

impl Groups {
    pub fn new(config: &BrokerConfig, store: Arc<Store>, metrics: Arc<Metrics>) -> Groups {
        Self::with_clock(config, store, metrics, Arc::new(SystemClock))
    }

    pub fn with_clock(
        config: &BrokerConfig,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Groups {
        let gc = GroupConfig {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms(),
            min_session_timeout_ms: config.group_min_session_timeout_ms(),
            max_session_timeout_ms: config.group_max_session_timeout_ms(),
            max_size: config.group_max_size().max(1) as usize,
            consumer_heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms(),
            consumer_session_timeout_ms: config.group_consumer_session_timeout_ms(),
            consumer_max_size: config.group_consumer_max_size().max(1) as usize,
            consumer_assignors: config.group_consumer_assignors(),
            migration: MigrationPolicy::parse(&config.group_consumer_migration_policy()),
            offsets_retention_ms: config.offsets_retention_ms(),
            offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms(),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes().max(0) as usize,
            // Until the offsets topic exists, the broker default its log will get.
            max_record_batch_bytes: config.message_max_bytes().max(0) as usize,
            ..GroupConfig::default()
        };
        Groups {
            empty: GroupCoordinator::new(gc.clone()),
            config: gc,
            store,
            clock,
            shards: RwLock::new(Arc::new(Vec::new())),
            stopping: AtomicBool::new(false),
            stop: watch::channel(false).0,
            num_partitions: AtomicI32::new(config.offsets_topic_num_partitions().max(1)),
            segment_bytes: config.offsets_topic_segment_bytes(),
            sync: config.log_flush_interval_messages() <= 1,
            next_token: AtomicU64::new(1),
            // A fresh seed per start: member ids must never repeat ones stored before a restart.
            id_seed: uuid::Uuid::new_v4().as_u64_pair().0,
            metrics,
        }
    }

    fn shards(&self) -> Arc<Vec<Arc<ShardCell>>> {
        self.shards.read().clone()
    }

    /// Makes what the log holds durable before it is loaded: in the fsync mode, records a
    /// crashed process or a failed write left unsynced must not be served as if they were.
    fn sync_before_load(&self, partition: i32, log: &dyn RecordLog) -> Result<(), LogFault> {
        if !self.sync {
            return Ok(());
        }
        log.sync().inspect_err(|e| {
            tracing::error!(
                partition,
                "cannot fsync {OFFSETS_TOPIC} before loading it: {e}"
            );
        })
    }

    /// A shard's coordinator, rebuilt by replaying its partition.
    fn build(&self, partition: i32, log: &dyn RecordLog) -> (GroupCoordinator, usize) {
        let seed = self
            .id_seed
            .wrapping_add((partition as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut coord = GroupCoordinator::with_id_seed(self.config.clone(), seed);
        let now = self.clock.now_ms();
        let mut count = 0usize;
        let loaded = log.load(&mut |offset, tag, key, value| match coord
            .replay(now, tag, key, value)
        {
            Ok(Replayed::Unknown(t)) => tracing::warn!(
                partition,
                offset,
                record_type = t,
                "skipping unknown record type in {OFFSETS_TOPIC}"
            ),
            Ok(_) => count += 1,
            Err(e) => tracing::warn!(
                partition,
                offset,
                "skipping unreadable record in {OFFSETS_TOPIC}: {e}"
            ),
        });
        match loaded {
            Ok(stats) => {
                for (first, end) in stats.lost {
                    let lost =
                        end.map_or_else(|| format!("{first}.."), |e| format!("{first}..{e}"));
                    tracing::error!(
                        partition,
                        offsets_lost = %lost,
                        "{OFFSETS_TOPIC} is damaged: group metadata and committed offsets stored \
                         in those records are lost (earlier records of the same groups still apply)"
                    );
                }
            }
            Err(e) => tracing::error!(partition, "cannot load {OFFSETS_TOPIC}: {e}"),
        }
        (coord, count)
    }

    /// Makes shards for the topic's partitions, each loaded from its log, and starts their
    /// tasks. Called once, at start or when the topic is first created.
    fn install(self: &Arc<Self>, meta: &TopicMeta) -> usize {
        let logs: Vec<Arc<dyn RecordLog>> = self
            .adopt(meta)
            .into_iter()
            .map(|l| l as Arc<dyn RecordLog>)
            .collect();
        // Shards load independently: spread over the cores.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, logs.len().max(1));
        let built: Vec<(GroupCoordinator, usize)> = std::thread::scope(|scope| {
            let chunks: Vec<_> = (0..threads)
                .map(|t| {
                    let logs = &logs;
                    scope.spawn(move || {
                        (t..logs.len())
                            .step_by(threads)
                            .map(|p| {
                                // At start a failed fsync is logged and the log loaded anyway:
                                // it is all there is.
                                let _ = self.sync_before_load(p as i32, &*logs[p]);
                                (p, self.build(p as i32, &*logs[p]))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all: Vec<_> = chunks
                .into_iter()
                .flat_map(|h| h.join().expect("shard load thread"))
                .collect();
            all.sort_by_key(|(p, _)| *p);
            all.into_iter().map(|(_, b)| b).collect()
        });
        let mut total = 0;
        let mut cells = Vec::with_capacity(logs.len());
        for (p, (log, (mut coord, count))) in logs.into_iter().zip(built).enumerate() {
            total += count;
            coord.set_max_record_batch_bytes(log.max_batch_bytes());
            let shard = Shard::new(coord, self.sync);
            cells.push(Arc::new(ShardCell {
                partition: p as i32,
                log,
                state: Mutex::new(ShardState {
                    shard,
                    waiters: HashMap::new(),
                    parked: HashMap::new(),
                    rebalances: HashMap::new(),
                }),
                wake: Notify::new(),
            }));
        }
        let cells = Arc::new(cells);
        {
            let mut shards = self.shards.write();
            if !shards.is_empty() {
                return 0;
            }
            *shards = cells.clone();
        }
        for cell in cells.iter() {
            self.finish_load(cell);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(drive(self.stop.subscribe(), cell.clone(), self.clone()));
            }
        }
        total
    }

    fn finish_load(self: &Arc<Self>, cell: &Arc<ShardCell>) {
        // Loading restarts timers; records it emits are written like any others.
        self.submit(cell, None, None, |c, now, _| c.finish_load(now));
    }

    /// Replays an existing offsets topic into one shard per partition. Called once at start,
    /// before serving. Damage never stops the start: damaged ranges are skipped and each loss
    /// is logged with the offsets and partition it hit. Returns the records replayed.
    pub fn load(self: &Arc<Self>) -> usize {
        let Some(meta) = self.store.topic(OFFSETS_TOPIC) else {
            return 0;
        };
        self.install(&meta)
    }

    /// Creates the offsets topic on first use, as Kafka does on the first FindCoordinator. The
    /// file work runs on a blocking thread.
    pub async fn ensure_topic(self: &Arc<Self>) -> Result<(), String> {
        if !self.shards.read().is_empty() {
            return Ok(());
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.ensure_topic_blocking())
            .await
            .map_err(|e| e.to_string())?
    }

    fn ensure_topic_blocking(self: &Arc<Self>) -> Result<(), String> {
        let store = &*self.store;
        let meta = match store.topic(OFFSETS_TOPIC) {
            Some(m) => m,
            None => {
                let mut configs = std::collections::BTreeMap::new();
                configs.insert("cleanup.policy".to_string(), "compact".to_string());
                configs.insert("segment.bytes".to_string(), self.segment_bytes.to_string());
                match store.create_topic(
                    OFFSETS_TOPIC,
                    self.num_partitions.load(Ordering::Acquire) as u32,
                    configs,
                    true,
                ) {
                    Ok(m) => {
                        tracing::info!(partitions = m.partitions, "created {OFFSETS_TOPIC}");
                        m
                    }
                    Err(cairn_log::StoreError::TopicExists(_)) => {
                        store.topic(OFFSETS_TOPIC).ok_or("offsets topic vanished")?
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        if self.shards.read().is_empty() {
            self.install(&meta);
        }
        Ok(())
    }

    /// Takes the existing topic's partitions, and its partition count over the setting's.
    fn adopt(&self, meta: &TopicMeta) -> Vec<Arc<PartitionLog>> {
        let configured = self
            .num_partitions
            .swap(meta.partitions as i32, Ordering::AcqRel);
        if configured != meta.partitions as i32 {
            tracing::warn!(
                configured,
                actual = meta.partitions,
                "offsets.topic.num.partitions differs from the existing {OFFSETS_TOPIC}; keeping the existing count"
            );
        }
        (0..meta.partitions as i32)
            .filter_map(|p| self.store.partition(&meta.name, p))
            .collect()
    }

    pub fn partition_for(&self, group: &str) -> i32 {
        cairn_group::hash::partition_for(group, self.num_partitions.load(Ordering::Acquire))
    }

    fn shard_for(&self, group: &str) -> Option<Arc<ShardCell>> {
        let shards = self.shards();
        shards.get(self.partition_for(group) as usize).cloned()
    }

    /// Whether state may change now: the offsets topic must exist first (a client that skipped
    /// FindCoordinator gets it created here), and nothing new is parked once shutdown began.
    async fn ready(self: &Arc<Self>) -> Result<(), GroupError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(GroupError::NotCoordinator);
        }
        self.ensure_topic().await.map_err(|e| {
            tracing::error!("cannot create {OFFSETS_TOPIC}: {e}");
            GroupError::CoordinatorNotAvailable
        })
    }

    /// Runs `f` on the group's shard; its result is released once what it depends on is
    /// durable, or replaced by the error for a failed write (then nothing of it was kept).
    pub async fn call<T>(
        self: &Arc<Self>,
        group: &str,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> (T, Effects),
    ) -> Result<T, GroupError> {
        self.ready().await?;
        let cell = self.shard_for(group).ok_or(GroupError::NotCoordinator)?;
        self.call_on(&cell, f).await
    }

    async fn call_on<T>(
        self: &Arc<Self>,
        cell: &Arc<ShardCell>,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> (T, Effects),
    ) -> Result<T, GroupError> {
        let (tx, rx) = oneshot::channel();
        let mut out = None;
        self.submit(cell, None, Some(tx), |c, now, _| {
            let (t, fx) = f(c, now);
            out = Some(t);
            fx
        });
        match rx.await {
            Ok(Ok(())) => out.ok_or(GroupError::NotCoordinator),
            Ok(Err(fault)) => Err(write_error(&fault)),
            Err(_) => Err(GroupError::NotCoordinator),
        }
    }

    /// Like [`Groups::call`], on the shard of one offsets partition (a transaction marker
    /// concerns every group of that partition).
    pub async fn call_partition<T>(
        self: &Arc<Self>,
        partition: i32,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> (T, Effects),
    ) -> Result<T, GroupError> {
        self.ready().await?;
        let cell = self
            .shards()
            .get(partition as usize)
            .cloned()
            .ok_or(GroupError::NotCoordinator)?;
        self.call_on(&cell, f).await
    }

    /// Like [`Groups::call`] for requests that may be parked (JoinGroup, SyncGroup).
    pub async fn call_parked(
        self: &Arc<Self>,
        group: &str,
        is_sync: bool,
        f: impl FnOnce(&mut GroupCoordinator, i64, Token) -> Effects,
    ) -> Reply {
        if let Err(e) = self.ready().await {
            return failure(is_sync, e);
        }
        let Some(cell) = self.shard_for(group) else {
            return failure(is_sync, GroupError::NotCoordinator);
        };
        let (tx, rx) = oneshot::channel();
        if !self.submit(&cell, Some((is_sync, tx)), None, f) {
            return failure(is_sync, GroupError::NotCoordinator);
        }
        rx.await
            .unwrap_or_else(|_| failure(is_sync, GroupError::CoordinatorNotAvailable))
    }

    /// Runs one request on a shard under its lock: `f` gets the coordinator, the time and the
    /// request's token. A parked request's reply channel (`park`) or a call's outcome channel
    /// (`call`) is registered for what the shard delivers later. Then whatever became
    /// deliverable is sent, the shard's next write started, and its task woken if its next
    /// timer moved earlier. False if a parked request is refused because shutdown began.
    fn submit(
        self: &Arc<Self>,
        cell: &Arc<ShardCell>,
        park: Option<(bool, oneshot::Sender<Reply>)>,
        call: Option<oneshot::Sender<Result<(), LogFault>>>,
        f: impl FnOnce(&mut GroupCoordinator, i64, Token) -> Effects,
    ) -> bool {
        let wake;
        let sends = {
            let mut st = cell.state.lock();
            let st = &mut *st;
            // Checked under the lock that shutdown drains parked requests under.
            if park.is_some() && self.stopping.load(Ordering::Acquire) {
                return false;
            }
            self.follow_limit(cell, st);
            let token = self.next_token.fetch_add(1, Ordering::Relaxed);
            let parked = park.is_some();
            if let Some(p) = park {
                st.parked.insert(token, p);
            }
            let now = self.clock.now_ms();
            let mut rebalances = Vec::new();
            let before = st.shard.coord().next_deadline();
            let (seq, d) = st
                .shard
                .handle(|c| to_output(f(c, now, token), &mut rebalances));
            wake = sooner(st.shard.coord().next_deadline(), before);
            match call {
                Some(tx) => {
                    st.waiters.insert(seq, Waiter::Call(tx));
                }
                None if parked => {
                    st.waiters.insert(seq, Waiter::Parked(token));
                }
                None => {}
            }
            if !rebalances.is_empty() {
                st.rebalances.insert(seq, rebalances);
            }
            st.dispatch(d, &self.metrics)
        };
        deliver(sends);
        self.kick(cell);
        if wake {
            cell.wake.notify_one();
        }
        true
    }

    /// The coordinator is told the largest batch the offsets topic takes now (its
    /// `max.message.bytes` may be altered at any time): it refuses a group state whose record
    /// would not fit before adopting it.
    fn follow_limit(&self, cell: &ShardCell, st: &mut ShardState) {
        let max = cell.log.max_batch_bytes();
        st.shard.coord_mut().set_max_record_batch_bytes(max);
    }

    /// A read about one group, from the durable view of its shard.
    pub fn read_group<T>(&self, group: &str, f: impl FnOnce(&GroupCoordinator) -> T) -> T {
        match self.shard_for(group) {
            Some(cell) => f(cell.state.lock().shard.coord()),
            None => f(&self.empty),
        }
    }

    /// A read over every shard (each under its own lock, one after another), concatenated.
    pub fn read_all<T>(&self, mut f: impl FnMut(&GroupCoordinator) -> Vec<T>) -> Vec<T> {
        let shards = self.shards();
        if shards.is_empty() {
            return f(&self.empty);
        }
        let mut out = Vec::new();
        for cell in shards.iter() {
            out.extend(f(cell.state.lock().shard.coord()));
        }
        out
    }

    /// DeleteGroups: each group on its own shard; results in the request's order.
    pub async fn delete_groups(self: &Arc<Self>, ids: Vec<String>) -> DeleteGroupsResult {
        if let Err(e) = self.ready().await {
            return ids.into_iter().map(|id| (id, Err(e.clone()))).collect();
        }
        let mut by_shard: HashMap<i32, Vec<String>> = HashMap::new();
        for id in &ids {
            by_shard
                .entry(self.partition_for(id))
                .or_default()
                .push(id.clone());
        }
        let mut answers: HashMap<String, Vec<Result<(), GroupError>>> = HashMap::new();
        for (p, part_ids) in by_shard {
            let Some(cell) = self.shards().get(p as usize).cloned() else {
                continue;
            };
            let res = self
                .call_on(&cell, |c, now| c.delete_groups(now, &part_ids))
                .await;
            match res {
                Ok(rs) => {
                    for (id, r) in rs {
                        answers.entry(id).or_default().push(r);
                    }
                }
                Err(e) => {
                    for id in part_ids {
                        answers.entry(id).or_default().push(Err(e.clone()));
                    }
                }
            }
        }
        ids.into_iter()
            .map(|id| {
                let r = answers
                    .get_mut(&id)
                    .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
                    .unwrap_or(Err(GroupError::NotCoordinator));
                (id, r)
            })
            .collect()
    }

    /// Runs `f` on every shard (a topic changed: every group may care).
    async fn call_all(self: &Arc<Self>, f: impl Fn(&mut GroupCoordinator, i64) -> Effects) {
        for cell in self.shards().iter() {
            let _ = self.call_on(cell, |c, now| ((), f(c, now))).await;
        }
    }

    pub async fn topic_changed(self: &Arc<Self>, topic: &str) {
        self.call_all(|c, now| c.on_topic_partitions_changed(now, topic))
            .await;
    }

    pub async fn topic_deleted(self: &Arc<Self>, topic: &str) {
        self.call_all(|c, now| c.on_topic_deleted(now, topic)).await;
    }

    /// Waits for shutdown, then answers every parked JoinGroup/SyncGroup with NOT_COORDINATOR
    /// so shutdown is not held up by rebalances in flight (the clients will look for the
    /// coordinator again), and stops the shards' tasks.
    pub async fn run_timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        self.stopping.store(true, Ordering::Release);
        for cell in self.shards().iter() {
            let parked: Vec<_> = cell.state.lock().parked.drain().collect();
            for (_, (sync, tx)) in parked {
                let _ = tx.send(failure(sync, GroupError::NotCoordinator));
            }
        }
        let _ = self.stop.send(true);
    }
}

/// A shard's task: fires its timers, and rebuilds the shard from its log if a write left it
/// offline. Writes are started by whoever queues records (see [`Groups::kick`]).
async fn drive(mut stop: watch::Receiver<bool>, cell: Arc<ShardCell>, groups: Arc<Groups>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let (offline, deadline) = {
            let st = cell.state.lock();
            (
                st.shard.offline().is_some(),
                st.shard.coord().next_deadline(),
            )
        };
        if offline {
            groups.reload(&cell).await;
            continue;
        }
        let now = groups.clock.now_ms();
        if deadline.is_some_and(|d| d <= now) {
            groups.tick(&cell);
            continue;
        }
        let wait = deadline.map_or(Duration::from_secs(60), |d| {
            Duration::from_millis((d - now).clamp(1, 60_000) as u64)
        });
        tokio::select! {
            _ = stop.changed() => {}
            _ = cell.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

impl Groups {
    fn tick(self: &Arc<Self>, cell: &Arc<ShardCell>) {
        self.submit(cell, None, None, |c, now, _| c.tick(now));
    }

    /// Starts the shard's next write if records wait and none is in flight. An fsync'd write
    /// runs on a blocking thread, which keeps writing what queued up behind it (one append and
    /// one fsync for all of it) until none is left; it owns the write to the end, so a caller
    /// that goes away cannot strand it.
    fn kick(self: &Arc<Self>, cell: &Arc<ShardCell>) {
        let Some(mut write) = cell.state.lock().shard.next_write() else {
            return;
        };
        // Without fsync a write is a small copy into the page cache, as every produce append
        // is: done here, outside the shard's lock, it spares each request two thread switches
        // (measured: a fifth of commit throughput on two cores). What waits on the disk (an
        // fsync, a truncation, loading) always runs on a blocking thread, and so does whatever
        // queued up behind this write.
        if !self.sync {
            match self.write_once(cell, write) {
                Some(next) => write = next,
                None => return,
            }
        }
        let (me, c) = (self.clone(), cell.clone());
        let started = tokio::runtime::Handle::try_current().map(|rt| {
            rt.spawn_blocking(move || me.write_loop(&c, write));
        });
        if started.is_err() {
            tracing::error!("no runtime to write {OFFSETS_TOPIC}");
        }
    }

    fn write_loop(&self, cell: &ShardCell, first: Write) {
        let mut next = Some(first);
        while let Some(write) = next.take() {
            next = self.write_once(cell, write);
        }
    }

    /// Performs one write and hands out what it completed; returns the next write, if records
    /// queued up meanwhile.
    fn write_once(&self, cell: &ShardCell, write: Write) -> Option<Write> {
        {
            let now = self.clock.now_ms();
            // A panic in the write is a bug; what it left in the log is unknown, so the shard
            // is rebuilt from the log rather than left waiting for a write that never ends.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                write.perform(&*cell.log, now)
            }))
            .unwrap_or_else(|_| {
                WriteResult::FailedUncertain(LogFault::Storage("the write panicked".into()))
            });
            self.log_write_failure(cell.partition, &write, &result);
            let offline = matches!(result, WriteResult::FailedUncertain(_));
            let (sends, next) = {
                let mut st = cell.state.lock();
                let d = st.shard.write_done(write, result);
                let next = st.shard.next_write();
                (st.dispatch(d, &self.metrics), next)
            };
            deliver(sends);
            if offline {
                cell.wake.notify_one();
            }
            next
        }
    }

    fn log_write_failure(&self, partition: i32, write: &Write, result: &WriteResult) {
        match result {
            WriteResult::Durable => {}
            WriteResult::Failed(f) => tracing::error!(
                partition,
                records = write.records(),
                "cannot write to {OFFSETS_TOPIC}; the requests are undone and answered with an error: {f}"
            ),
            WriteResult::FailedUncertain(f) => tracing::error!(
                partition,
                records = write.records(),
                "cannot write to {OFFSETS_TOPIC} and cannot remove the partial write; the \
                 shard stops serving until it is reloaded from its log: {f}"
            ),
        }
    }

    /// Rebuilds an offline shard from its log: the state becomes exactly what a restart would
    /// load.
    async fn reload(self: &Arc<Self>, cell: &Arc<ShardCell>) {
        // Not in a tight loop against a failing disk.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (me, c) = (self.clone(), cell.clone());
        // Stays offline (and tries again) while the log cannot be made durable.
        let Ok(Ok((coord, count))) = tokio::task::spawn_blocking(move || {
            me.sync_before_load(c.partition, &*c.log)?;
            Ok::<_, LogFault>(me.build(c.partition, &*c.log))
        })
        .await
        else {
            return;
        };
        {
            let mut st = cell.state.lock();
            // Requests still parked were parked in the state being replaced.
            for (_, (sync, tx)) in st.parked.drain() {
                let _ = tx.send(failure(sync, GroupError::NotCoordinator));
            }
            st.waiters.clear();
            st.shard.reload(coord);
        }
        self.finish_load(cell);
        tracing::warn!(
            partition = cell.partition,
            records = count,
            "reloaded {OFFSETS_TOPIC} partition from its log"
        );
    }
}

#[cfg(test)]
mod tests {
    /// The coordinator sizes its records as the log writes them; the two must agree or a
    /// record the coordinator thinks fits could still be refused by the log.
    #[test]
    fn coordinator_batch_size_matches_the_written_batch() {
        let rec = |key: Vec<u8>, value: Option<Vec<u8>>| cairn_group::Record {
            group_id: "g".into(),
            key,
            value,
            tag: cairn_runtime::BatchTag::Plain,
        };
        let cases = vec![
            vec![rec(vec![1; 10], Some(vec![2; 20]))],
            vec![rec(vec![1; 10], None)],
            vec![rec(vec![1; 300], Some(vec![2; 70_000]))],
            (0..200)
                .map(|i| rec(vec![i as u8; 40], (i % 3 != 0).then(|| vec![7; i * 5])))
                .collect(),
        ];
        for recs in cases {
            let log: Vec<cairn_runtime::LogRecord> = recs
                .iter()
                .map(|r| cairn_runtime::LogRecord::plain(r.key.clone(), r.value.clone()))
                .collect();
            let written = cairn_log::encode_records(&log, 1_700_000_000_000).len();
            assert_eq!(cairn_group::records::batch_size(&recs), written);
        }
    }
}
