//! The driver of the transaction coordinator's shards: one shard per `__transaction_state`
//! partition, each a `cairn_runtime::Shard` over its own `TxnCoordinator` and partition log,
//! with the same write path as the group coordinator's shards (see `groups.rs`).
//!
//! It also does what the coordinator hands back as a `MarkerJob`: once a transaction's
//! PrepareCommit/PrepareAbort record is durable, the COMMIT or ABORT marker is written to every
//! partition of the transaction (data partitions directly, the offsets partition through its
//! group shard, which settles the transaction's pending offsets), and then the transaction is
//! completed. A job that fails (a disk error) is retried until it succeeds; after a restart,
//! every transaction found prepared gets its job again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_config::BrokerConfig;
use cairn_log::{MarkerKind, Store, TopicMeta};
use cairn_runtime::{
    Clock, Delivery, LogFault, Output, RecordLog, Seq, Shard, SystemClock, Write, WriteResult,
};
use cairn_txn::{MarkerJob, TopicPartition, TxnConfig, TxnCoordinator, TxnError};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch, Notify};

use crate::groups::{Groups, OFFSETS_TOPIC};
use crate::metrics::Metrics;

pub const TXN_TOPIC: &str = "__transaction_state";

/// Why a marker was not written.
#[derive(Debug)]
pub enum MarkError {
    /// The partition knows a newer epoch of the producer.
    Fenced,
    UnknownPartition,
    Failed(String),
}

/// Markers carry the coordinator's epoch; one broker owns every partition, always at epoch 0.
const COORDINATOR_EPOCH: i32 = 0;

struct CellState {
    shard: Shard<TxnCoordinator>,
    waiters: HashMap<Seq, oneshot::Sender<Result<(), LogFault>>>,
}

struct Cell {
    partition: i32,
    log: Arc<dyn RecordLog>,
    state: Mutex<CellState>,
    wake: Notify,
}

/// Kafka's answer to a failed coordinator write: NOT_COORDINATOR, so the client looks the
/// coordinator up again and retries.
fn write_error(_: &LogFault) -> TxnError {
    TxnError::NotCoordinator
}

pub struct Txns {
    config: TxnConfig,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    groups: Arc<Groups>,
    metrics: Arc<Metrics>,
    shards: RwLock<Arc<Vec<Arc<Cell>>>>,
    num_partitions: AtomicI32,
    segment_bytes: i64,
    sync: bool,
    stopping: AtomicBool,
    stop: watch::Sender<bool>,
    /// Producer id → transactional id, to check a transactional produce against the
    /// transaction that must hold its partition.
    producers: Mutex<HashMap<i64, String>>,
    /// Called after a marker is written: it moves a last stable offset, which read_committed
    /// fetches parked for data are waiting on.
    on_marker: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

impl Txns {
    pub fn new(
        config: &BrokerConfig,
        store: Arc<Store>,
        groups: Arc<Groups>,
        metrics: Arc<Metrics>,
    ) -> Txns {
        Txns {
            config: TxnConfig {
                max_timeout_ms: config.transaction_max_timeout_ms(),
                id_expiration_ms: config.transactional_id_expiration_ms(),
                abort_check_interval_ms: config.transaction_abort_check_interval_ms(),
                remove_expired_interval_ms: config.transaction_remove_expired_interval_ms(),
            },
            store,
            clock: Arc::new(SystemClock),
            groups,
            metrics,
            shards: RwLock::new(Arc::new(Vec::new())),
            num_partitions: AtomicI32::new(config.transaction_state_log_num_partitions().max(1)),
            segment_bytes: config.transaction_state_log_segment_bytes(),
            sync: config.log_flush_interval_messages() <= 1,
            stopping: AtomicBool::new(false),
            stop: watch::channel(false).0,
            producers: Mutex::new(HashMap::new()),
            on_marker: Mutex::new(None),
        }
    }

    pub fn set_on_marker(&self, f: Arc<dyn Fn() + Send + Sync>) {
        *self.on_marker.lock() = Some(f);
    }

    fn shards(&self) -> Arc<Vec<Arc<Cell>>> {
        self.shards.read().clone()
    }

    pub fn partition_for(&self, id: &str) -> i32 {
        cairn_group::hash::partition_for(id, self.num_partitions.load(Ordering::Acquire))
    }

    fn build(&self, partition: i32, log: &dyn RecordLog) -> (TxnCoordinator, usize) {
        let mut coord = TxnCoordinator::new(self.config.clone());
        let mut count = 0usize;
        let loaded = log.load(
            &mut |offset, _tag, key, value| match coord.replay(key, value) {
                Ok(()) => count += 1,
                Err(e) => tracing::warn!(
                    partition,
                    offset,
                    "skipping unreadable record in {TXN_TOPIC}: {e}"
                ),
            },
        );
        match loaded {
            Ok(stats) => {
                for (first, end) in stats.lost {
                    let lost =
                        end.map_or_else(|| format!("{first}.."), |e| format!("{first}..{e}"));
                    tracing::error!(partition, offsets_lost = %lost,
                        "{TXN_TOPIC} is damaged: transaction states stored in those records are lost");
                }
            }
            Err(e) => tracing::error!(partition, "cannot load {TXN_TOPIC}: {e}"),
        }
        (coord, count)
    }

    fn install(self: &Arc<Self>, meta: &TopicMeta) -> usize {
        let configured = self
            .num_partitions
            .swap(meta.partitions as i32, Ordering::AcqRel);
        if configured != meta.partitions as i32 {
            tracing::warn!(configured, actual = meta.partitions,
                "transaction.state.log.num.partitions differs from the existing {TXN_TOPIC}; keeping the existing count");
        }
        let mut cells = Vec::new();
        let mut total = 0;
        for p in 0..meta.partitions as i32 {
            let Some(log) = self.store.partition(&meta.name, p) else {
                continue;
            };
            let log: Arc<dyn RecordLog> = log;
            if self.sync {
                // Records a crash left unsynced must not be served as if they were durable.
                if let Err(e) = log.sync() {
                    tracing::error!(
                        partition = p,
                        "cannot fsync {TXN_TOPIC} before loading it: {e}"
                    );
                }
            }
            let (coord, count) = self.build(p, &*log);
            total += count;
            cells.push(Arc::new(Cell {
                partition: p,
                log,
                state: Mutex::new(CellState {
                    shard: Shard::new(coord, self.sync),
                    waiters: HashMap::new(),
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
            self.after_load(cell);
        }
        total
    }

    /// Indexes the producers of a loaded shard, restarts its prepared transactions' markers
    /// and starts its timer task.
    fn after_load(self: &Arc<Self>, cell: &Arc<Cell>) {
        let (jobs, metas) = {
            let st = cell.state.lock();
            (
                st.shard.coord().prepared_jobs(),
                st.shard.coord().durable_all(),
            )
        };
        {
            let mut producers = self.producers.lock();
            for m in metas {
                producers.insert(m.producer_id, m.transactional_id);
            }
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            for job in jobs {
                tracing::info!(transactional_id = %job.transactional_id, commit = job.commit,
                    partitions = job.partitions.len(), "completing a prepared transaction found on load");
                self.spawn_job(job);
            }
            rt.spawn(drive(self.stop.subscribe(), cell.clone(), self.clone()));
        }
    }

    /// Loads an existing `__transaction_state` at start (before serving). Returns the records
    /// replayed.
    pub fn load(self: &Arc<Self>) -> usize {
        match self.store.topic(TXN_TOPIC) {
            Some(meta) => self.install(&meta),
            None => 0,
        }
    }

    /// Creates the topic on first use, as Kafka does on the first FindCoordinator for a
    /// transactional id.
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
        let meta = match store.topic(TXN_TOPIC) {
            Some(m) => m,
            None => {
                let mut configs = std::collections::BTreeMap::new();
                configs.insert("cleanup.policy".to_string(), "compact".to_string());
                configs.insert("segment.bytes".to_string(), self.segment_bytes.to_string());
                match store.create_topic(
                    TXN_TOPIC,
                    self.num_partitions.load(Ordering::Acquire) as u32,
                    configs,
                    true,
                ) {
                    Ok(m) => {
                        tracing::info!(partitions = m.partitions, "created {TXN_TOPIC}");
                        m
                    }
                    Err(cairn_log::StoreError::TopicExists(_)) => store
                        .topic(TXN_TOPIC)
                        .ok_or("transaction state topic vanished")?,
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        if self.shards.read().is_empty() {
            self.install(&meta);
        }
        Ok(())
    }

    async fn ready(self: &Arc<Self>) -> Result<(), TxnError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(TxnError::NotCoordinator);
        }
        self.ensure_topic().await.map_err(|e| {
            tracing::error!("cannot create {TXN_TOPIC}: {e}");
            TxnError::NotCoordinator
        })
    }

    fn cell_for(&self, id: &str) -> Option<Arc<Cell>> {
        self.shards().get(self.partition_for(id) as usize).cloned()
    }

    /// Runs `f` on the transactional id's shard; its result is released once its records are
    /// durable, or replaced by the error for a failed write.
    pub async fn call<T>(
        self: &Arc<Self>,
        id: &str,
        f: impl FnOnce(&mut TxnCoordinator, i64) -> (T, Output<()>),
    ) -> Result<T, TxnError> {
        self.ready().await?;
        let cell = self.cell_for(id).ok_or(TxnError::NotCoordinator)?;
        self.call_on(&cell, f).await
    }

    async fn call_on<T>(
        self: &Arc<Self>,
        cell: &Arc<Cell>,
        f: impl FnOnce(&mut TxnCoordinator, i64) -> (T, Output<()>),
    ) -> Result<T, TxnError> {
        let (tx, rx) = oneshot::channel();
        let mut out = None;
        self.submit(cell, tx, |c, now| {
            let (t, o) = f(c, now);
            out = Some(t);
            o
        });
        match rx.await {
            Ok(Ok(())) => out.ok_or(TxnError::NotCoordinator),
            Ok(Err(fault)) => Err(write_error(&fault)),
            Err(_) => Err(TxnError::NotCoordinator),
        }
    }

    fn submit(
        self: &Arc<Self>,
        cell: &Arc<Cell>,
        tx: oneshot::Sender<Result<(), LogFault>>,
        f: impl FnOnce(&mut TxnCoordinator, i64) -> Output<()>,
    ) {
        let sends = {
            let mut st = cell.state.lock();
            let now = self.clock.now_ms();
            let (seq, d) = st.shard.handle(|c| f(c, now));
            st.waiters.insert(seq, tx);
            dispatch(&mut st, d)
        };
        deliver(sends);
        self.kick(cell);
    }

    /// A read of one transactional id's durable state.
    pub fn read<T>(&self, id: &str, f: impl FnOnce(&TxnCoordinator) -> T) -> Option<T> {
        let cell = self.cell_for(id)?;
        let st = cell.state.lock();
        Some(f(st.shard.coord()))
    }

    /// A read over every shard, concatenated.
    pub fn read_all<T>(&self, mut f: impl FnMut(&TxnCoordinator) -> Vec<T>) -> Vec<T> {
        let mut out = Vec::new();
        for cell in self.shards().iter() {
            out.extend(f(cell.state.lock().shard.coord()));
        }
        out
    }

    /// Remembers which transactional id a producer id belongs to.
    pub fn note_producer(&self, producer_id: i64, id: &str) {
        self.producers.lock().insert(producer_id, id.to_string());
    }

    /// Whether a transactional batch of `producer_id` at `epoch` may be appended to the
    /// partition: its transaction must be ongoing and hold the partition (KIP-890's check,
    /// done in process since this broker is the coordinator). A fenced producer gets
    /// `ProducerFenced`, anything else `InvalidTxnState`.
    pub fn holds(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), TxnError> {
        let Some(id) = self.producers.lock().get(&producer_id).cloned() else {
            return Err(TxnError::InvalidTxnState);
        };
        let tp = [TopicPartition::new(topic, partition)];
        match self.read(&id, |c| c.verify_partitions(&id, producer_id, epoch, &tp)) {
            Some(Ok(v)) if v.first() == Some(&true) => Ok(()),
            Some(Err(TxnError::ProducerFenced)) => Err(TxnError::ProducerFenced),
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// Writes a prepared transaction's markers in the background, then completes it.
    pub fn spawn_job(self: &Arc<Self>, job: MarkerJob) {
        let me = self.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { me.run_job(job).await });
        }
    }

    async fn run_job(self: Arc<Self>, job: MarkerJob) {
        let mut left: Vec<TopicPartition> = job.partitions.clone();
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut failed = Vec::new();
            for tp in left {
                if let Err(e) = self.write_marker(&job, &tp).await {
                    tracing::warn!(transactional_id = %job.transactional_id, topic = %tp.topic,
                        partition = tp.partition, "cannot write the transaction marker; retrying: {e}");
                    failed.push(tp);
                }
            }
            left = failed;
            if left.is_empty() {
                let done = match self.cell_for(&job.transactional_id) {
                    Some(cell) => {
                        self.call_on(&cell, |c, now| ((), c.markers_written(now, &job)))
                            .await
                    }
                    None => Err(TxnError::NotCoordinator),
                };
                match done {
                    Ok(()) => {
                        self.metrics.transaction_completed(job.commit);
                        self.refresh_open_gauge();
                        return;
                    }
                    Err(e) => tracing::warn!(transactional_id = %job.transactional_id,
                        "cannot complete the transaction; retrying: {e:?}"),
                }
            }
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn write_marker(
        self: &Arc<Self>,
        job: &MarkerJob,
        tp: &TopicPartition,
    ) -> Result<(), String> {
        match self
            .mark(job.producer_id, job.producer_epoch, job.commit, tp)
            .await
        {
            Ok(()) => Ok(()),
            // A newer epoch already wrote here (the transaction was fenced and its abort
            // marked): nothing of this epoch can be pending any more. A deleted partition
            // has nothing left to mark, as in Kafka.
            Err(MarkError::Fenced) | Err(MarkError::UnknownPartition) => Ok(()),
            Err(MarkError::Failed(e)) => Err(e),
        }
    }

    /// Writes one COMMIT or ABORT marker of producer `pid` to a partition: a data partition's
    /// log, or the group shard of an offsets partition (which settles the pending offsets of
    /// the producer there).
    pub async fn mark(
        self: &Arc<Self>,
        pid: i64,
        epoch: i16,
        commit: bool,
        tp: &TopicPartition,
    ) -> Result<(), MarkError> {
        if tp.topic == OFFSETS_TOPIC {
            return self
                .groups
                .call_partition(tp.partition, move |c, now| {
                    (
                        (),
                        c.complete_transaction(now, pid, epoch, commit, COORDINATOR_EPOCH),
                    )
                })
                .await
                .map_err(|e| MarkError::Failed(format!("{e:?}")));
        }
        let Some(log) = self.store.partition(&tp.topic, tp.partition) else {
            return Err(MarkError::UnknownPartition);
        };
        let kind = if commit {
            MarkerKind::Commit
        } else {
            MarkerKind::Abort
        };
        let sync = self.sync;
        let now = self.clock.now_ms();
        let written = tokio::task::spawn_blocking(move || {
            log.append_marker(pid, epoch, kind, COORDINATOR_EPOCH, now)?;
            if sync {
                log.sync()?;
            }
            Ok::<_, cairn_log::LogError>(())
        })
        .await
        .map_err(|e| MarkError::Failed(e.to_string()))?;
        match written {
            Ok(()) => {
                let wake = self.on_marker.lock().clone();
                if let Some(f) = wake {
                    f();
                }
                Ok(())
            }
            Err(cairn_log::LogError::InvalidProducerEpoch { .. }) => Err(MarkError::Fenced),
            Err(e) => Err(MarkError::Failed(e.to_string())),
        }
    }

    fn tick(self: &Arc<Self>, cell: &Arc<Cell>) {
        let me = self.clone();
        let cell = cell.clone();
        tokio::spawn(async move {
            let jobs = me.call_on(&cell, |c, now| c.tick(now)).await;
            if let Ok(jobs) = jobs {
                for job in jobs {
                    tracing::info!(transactional_id = %job.transactional_id,
                        "aborting a transaction open longer than its timeout");
                    me.metrics.transaction_timed_out();
                    me.spawn_job(job);
                }
            }
        });
    }

    fn kick(self: &Arc<Self>, cell: &Arc<Cell>) {
        let Some(write) = cell.state.lock().shard.next_write() else {
            return;
        };
        let (me, c) = (self.clone(), cell.clone());
        let started = tokio::runtime::Handle::try_current().map(|rt| {
            rt.spawn_blocking(move || {
                let mut next = Some(write);
                while let Some(w) = next.take() {
                    next = me.write_once(&c, w);
                }
            });
        });
        if started.is_err() {
            tracing::error!("no runtime to write {TXN_TOPIC}");
        }
    }

    fn write_once(&self, cell: &Cell, write: Write) -> Option<Write> {
        let now = self.clock.now_ms();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write.perform(&*cell.log, now)
        }))
        .unwrap_or_else(|_| {
            WriteResult::FailedUncertain(LogFault::Storage("the write panicked".into()))
        });
        match &result {
            WriteResult::Durable => {}
            WriteResult::Failed(f) => tracing::error!(partition = cell.partition,
                "cannot write to {TXN_TOPIC}; the requests are undone and answered with an error: {f}"),
            WriteResult::FailedUncertain(f) => tracing::error!(partition = cell.partition,
                "cannot write to {TXN_TOPIC} and cannot remove the partial write; the shard stops serving until it is reloaded: {f}"),
        }
        let offline = matches!(result, WriteResult::FailedUncertain(_));
        let (sends, next) = {
            let mut st = cell.state.lock();
            let d = st.shard.write_done(write, result);
            let next = st.shard.next_write();
            (dispatch(&mut st, d), next)
        };
        deliver(sends);
        if offline {
            cell.wake.notify_one();
        }
        next
    }

    async fn reload(self: &Arc<Self>, cell: &Arc<Cell>) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (me, c) = (self.clone(), cell.clone());
        let Ok(Ok((coord, count))) = tokio::task::spawn_blocking(move || {
            if me.sync {
                c.log.sync()?;
            }
            Ok::<_, LogFault>(me.build(c.partition, &*c.log))
        })
        .await
        else {
            return;
        };
        let jobs = coord.prepared_jobs();
        {
            let mut st = cell.state.lock();
            st.waiters.clear();
            st.shard.reload(coord);
        }
        for job in jobs {
            self.spawn_job(job);
        }
        tracing::warn!(
            partition = cell.partition,
            records = count,
            "reloaded {TXN_TOPIC} partition from its log"
        );
    }

    /// Stops the shards' tasks at shutdown; jobs in flight stop retrying (a restart resumes
    /// them from the prepared state).
    pub async fn run_until(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        self.stopping.store(true, Ordering::Release);
        let _ = self.stop.send(true);
    }

    /// Sets the open-transactions gauge (after a transaction began or completed).
    pub fn refresh_open_gauge(&self) {
        self.metrics.set_transactions_open(self.open_count());
    }

    /// Open transactions (Ongoing or prepared), for metrics.
    fn open_count(&self) -> usize {
        self.read_all(|c| {
            c.durable_all()
                .into_iter()
                .filter(|m| {
                    matches!(
                        m.state,
                        cairn_txn::TxnState::Ongoing
                            | cairn_txn::TxnState::PrepareCommit
                            | cairn_txn::TxnState::PrepareAbort
                    )
                })
                .map(|_| ())
                .collect()
        })
        .len()
    }
}

type Sends = Vec<(oneshot::Sender<Result<(), LogFault>>, Result<(), LogFault>)>;

fn dispatch(st: &mut CellState, deliveries: Vec<Delivery<()>>) -> Sends {
    let mut out = Vec::new();
    for d in deliveries {
        match d {
            Delivery::Done(seq) => {
                if let Some(tx) = st.waiters.remove(&seq) {
                    out.push((tx, Ok(())));
                }
            }
            Delivery::Failed(seq, fault) => {
                if let Some(tx) = st.waiters.remove(&seq) {
                    out.push((tx, Err(fault)));
                }
            }
            Delivery::Reply(..) | Delivery::Orphaned(..) => {}
        }
    }
    out
}

fn deliver(sends: Sends) {
    for (tx, r) in sends {
        let _ = tx.send(r);
    }
}

async fn drive(mut stop: watch::Receiver<bool>, cell: Arc<Cell>, txns: Arc<Txns>) {
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
            txns.reload(&cell).await;
            continue;
        }
        let now = txns.clock.now_ms();
        let wait = if deadline <= now {
            txns.tick(&cell);
            // The tick's own write moves the deadline on; look again shortly.
            Duration::from_millis(txns.config.abort_check_interval_ms.clamp(1, 60_000) as u64)
        } else {
            Duration::from_millis((deadline - now).clamp(1, 60_000) as u64)
        };
        tokio::select! {
            _ = stop.changed() => {}
            _ = cell.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
