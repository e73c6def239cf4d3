//! Drives the sans-IO group coordinator: feeds it requests with the current time, writes the
//! records it emits to `__consumer_offsets` (and fsyncs them in that mode) before any reply
//! leaves, fires its timers, and rebuilds it from the log on start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use cairn_config::BrokerConfig;
use cairn_group::{Effects, GroupConfig, GroupCoordinator, GroupError, Reply, ReplyToken};
use cairn_log::batch::{encode_plain, PlainRecord};
use cairn_log::{PartitionLog, Store, TopicMeta};
use kafka_protocol::records::RecordBatchDecoder;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use tokio::sync::{oneshot, Notify};

use crate::flusher::Flusher;
use crate::metrics::Metrics;
use crate::state::now_ms;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

struct Inner {
    coord: GroupCoordinator,
    waiters: HashMap<ReplyToken, oneshot::Sender<Reply>>,
    next_token: ReplyToken,
    /// Partitions of the offsets topic, once it exists.
    logs: Vec<Arc<PartitionLog>>,
}

impl Inner {
    /// The coordinator, told the largest batch the offsets topic takes now (its
    /// `max.message.bytes` may be altered at any time): it refuses a group state whose record
    /// would not fit before adopting it, so nothing is kept that the log would refuse.
    fn coord_for_write(&mut self) -> &mut GroupCoordinator {
        if let Some(log) = self.logs.first() {
            let max = log.config().max_message_bytes as usize;
            self.coord.set_max_record_batch_bytes(max);
        }
        &mut self.coord
    }
}

pub struct Groups {
    inner: Mutex<Inner>,
    store: Arc<Store>,
    /// Set once shutdown begins: parked requests are released and no new ones are parked.
    stopping: AtomicBool,
    /// The offsets topic's real partition count once it exists; the setting only applies when
    /// the topic is created (changing it later would move groups to other partitions).
    num_partitions: AtomicI32,
    segment_bytes: i64,
    flusher: Option<Flusher>,
    timer: Notify,
    metrics: Arc<Metrics>,
}

impl Groups {
    pub fn new(
        config: &BrokerConfig,
        store: Arc<Store>,
        flusher: Option<Flusher>,
        metrics: Arc<Metrics>,
    ) -> Groups {
        let gc = GroupConfig {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms(),
            min_session_timeout_ms: config.group_min_session_timeout_ms(),
            max_session_timeout_ms: config.group_max_session_timeout_ms(),
            max_size: config.group_max_size().max(1) as usize,
            offsets_retention_ms: config.offsets_retention_ms(),
            offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms(),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes().max(0) as usize,
            // Until the offsets topic exists, the broker default its log will get.
            max_record_batch_bytes: config.message_max_bytes().max(0) as usize,
            ..GroupConfig::default()
        };
        // A fresh seed per start: member ids must never repeat ones stored before a restart.
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        Groups {
            inner: Mutex::new(Inner {
                coord: GroupCoordinator::with_id_seed(gc, seed),
                waiters: HashMap::new(),
                next_token: 1,
                logs: Vec::new(),
            }),
            store,
            stopping: AtomicBool::new(false),
            num_partitions: AtomicI32::new(config.offsets_topic_num_partitions().max(1)),
            segment_bytes: config.offsets_topic_segment_bytes(),
            flusher,
            timer: Notify::new(),
            metrics,
        }
    }

    /// Replays an existing offsets topic. Called once at start, before serving. Damage never
    /// stops the start: the log skips damaged ranges (and reports them), a batch that cannot
    /// be decoded is skipped, and each loss is logged with the offsets and partition it hit.
    pub fn load(&self) -> usize {
        let Some(meta) = self.store.topic(OFFSETS_TOPIC) else {
            return 0;
        };
        let logs = self.adopt(&meta);
        let now = now_ms();
        let mut inner = self.inner.lock();
        let mut count = 0usize;
        for (p, log) in logs.iter().enumerate() {
            for d in log.damage() {
                let lost = d.end_offset.map_or_else(
                    || format!("{}..", d.first_offset),
                    |e| format!("{}..{}", d.first_offset, e),
                );
                tracing::error!(
                    partition = p,
                    offsets_lost = %lost,
                    "{OFFSETS_TOPIC} is damaged: group metadata and committed offsets stored in \
                     those records are lost (earlier records of the same groups still apply)"
                );
            }
            let mut offset = log.log_start_offset();
            let end = log.log_end_offset();
            while offset < end {
                let read = match log.read(offset, 5 << 20) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(partition = p, offsets_lost = %format!("{offset}..{end}"),
                            "cannot read {OFFSETS_TOPIC}, skipping the rest of the partition: {e}");
                        break;
                    }
                };
                let data = read.data;
                if data.is_empty() {
                    break;
                }
                let mut last = offset;
                let mut pos = 0;
                for view in cairn_log::batch::batches(&data) {
                    let Ok(view) = view else { break };
                    let size = view.size();
                    let (first, next) = (view.base_offset(), view.next_offset());
                    last = last.max(next);
                    let mut one = data.slice(pos..pos + size);
                    pos += size;
                    let set = match RecordBatchDecoder::decode(&mut one) {
                        Ok(set) => set,
                        Err(e) => {
                            tracing::error!(partition = p, offsets_lost = %format!("{first}..{next}"),
                                "skipping undecodable batch in {OFFSETS_TOPIC}: {e}");
                            continue;
                        }
                    };
                    for r in set.records {
                        if r.offset < offset || r.control {
                            continue;
                        }
                        let Some(key) = r.key else { continue };
                        match inner.coord.replay(now, &key, r.value.as_deref()) {
                            Ok(cairn_group::Replayed::Unknown(t)) => {
                                tracing::warn!(
                                    partition = p,
                                    record_type = t,
                                    "skipping unknown record type in {OFFSETS_TOPIC}"
                                );
                            }
                            Ok(_) => count += 1,
                            Err(e) => tracing::warn!(
                                partition = p,
                                offset = r.offset,
                                "skipping unreadable record in {OFFSETS_TOPIC}: {e}"
                            ),
                        }
                    }
                }
                if last <= offset {
                    break;
                }
                offset = last;
            }
        }
        inner.logs = logs;
        let fx = inner.coord.finish_load(now);
        // Loading only restarts timers; records it might emit are written like any others.
        drop(inner);
        if !fx.is_empty() {
            let _ = self.apply_sync(fx);
        }
        count
    }

    /// Creates the offsets topic on first use, as Kafka does on the first FindCoordinator.
    pub fn ensure_topic(&self) -> Result<(), String> {
        if !self.inner.lock().logs.is_empty() {
            return Ok(());
        }
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
        let logs = self.adopt(&meta);
        let mut inner = self.inner.lock();
        if inner.logs.is_empty() {
            inner.logs = logs;
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
        partitions(&self.store, meta)
    }

    pub fn partition_for(&self, group: &str) -> i32 {
        cairn_group::hash::partition_for(group, self.num_partitions.load(Ordering::Acquire))
    }

    /// Runs `f` against the coordinator and writes what it emitted; the result is released only
    /// once those records are appended (and fsynced in that mode).
    pub async fn call<T>(
        &self,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> (T, Effects),
    ) -> Result<T, GroupError> {
        self.ready()?;
        let (out, pending) = {
            let mut inner = self.inner.lock();
            let (out, fx) = f(inner.coord_for_write(), now_ms());
            (out, self.write_locked(&mut inner, fx))
        };
        self.timer.notify_one();
        pending.finish(&self.flusher).await.map(|()| out)
    }

    /// Like [`Groups::call`] for requests that may be parked (JoinGroup, SyncGroup).
    pub async fn call_parked(
        &self,
        is_sync: bool,
        f: impl FnOnce(&mut GroupCoordinator, i64, ReplyToken) -> Effects,
    ) -> Reply {
        let failed = |e: GroupError| {
            if is_sync {
                Reply::Sync(Err(e))
            } else {
                Reply::Join(Err(e))
            }
        };
        if let Err(e) = self.ready() {
            return failed(e);
        }
        let (rx, pending) = {
            let mut inner = self.inner.lock();
            let token = inner.next_token;
            inner.next_token += 1;
            let (tx, rx) = oneshot::channel();
            inner.waiters.insert(token, tx);
            let fx = f(inner.coord_for_write(), now_ms(), token);
            (rx, self.write_locked(&mut inner, fx))
        };
        self.timer.notify_one();
        if let Err(e) = pending.finish(&self.flusher).await {
            // The records behind this reply did not reach the log; nothing may be acknowledged.
            return failed(e);
        }
        rx.await
            .unwrap_or_else(|_| failed(GroupError::CoordinatorNotAvailable))
    }

    /// Whether state may change now: the offsets topic must exist first, so that no change is
    /// made in memory that cannot be written (a client that skipped FindCoordinator gets it
    /// created here), and nothing new is parked once shutdown has begun.
    fn ready(&self) -> Result<(), GroupError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(GroupError::NotCoordinator);
        }
        self.ensure_topic().map_err(|e| {
            tracing::error!("cannot create {OFFSETS_TOPIC}: {e}");
            GroupError::CoordinatorNotAvailable
        })
    }

    /// Answers every parked JoinGroup/SyncGroup with NOT_COORDINATOR so shutdown is not held up
    /// by rebalances in flight; the clients will look for the coordinator again.
    fn release_parked(&self) {
        self.stopping.store(true, Ordering::Release);
        let waiters: Vec<_> = self.inner.lock().waiters.drain().collect();
        for (_, tx) in waiters {
            let _ = tx.send(Reply::Join(Err(GroupError::NotCoordinator)));
        }
    }

    /// Read-only questions need no log write.
    pub fn read<T>(&self, f: impl FnOnce(&GroupCoordinator) -> T) -> T {
        f(&self.inner.lock().coord)
    }

    fn apply_sync(&self, fx: Effects) -> Result<(), GroupError> {
        let mut inner = self.inner.lock();
        let pending = self.write_locked(&mut inner, fx);
        pending.error.map_or(Ok(()), Err)
    }

    /// Appends the records (grouped per offsets partition, one batch each) under the lock so the
    /// log order is the state order, and hands the replies out once the write is durable.
    fn write_locked(&self, inner: &mut Inner, fx: Effects) -> Pending {
        let mut pending = Pending::default();
        for r in &fx.rebalances {
            self.metrics.rebalance_ended(r);
        }
        if !fx.records.is_empty() {
            if inner.logs.is_empty() {
                tracing::error!("group records emitted before {OFFSETS_TOPIC} exists");
                pending.error = Some(GroupError::CoordinatorNotAvailable);
            } else {
                let mut by_part: HashMap<i32, Vec<&cairn_group::Record>> = HashMap::new();
                for r in &fx.records {
                    by_part
                        .entry(self.partition_for(&r.group_id))
                        .or_default()
                        .push(r);
                }
                let now = now_ms();
                for (p, recs) in by_part {
                    let log = inner.logs[p as usize].clone();
                    let batch = encode_batch(&recs, now);
                    match log.append(&batch, now) {
                        Ok(_) => pending.logs.push(log),
                        Err(e) => {
                            tracing::error!(partition = p, "cannot append to {OFFSETS_TOPIC}: {e}");
                            // Kafka's mapping of a failed coordinator write: a batch too large
                            // is UNKNOWN_SERVER_ERROR, a storage fault NOT_COORDINATOR.
                            pending.error = Some(match e {
                                cairn_log::LogError::MessageTooLarge { .. } => {
                                    GroupError::UnknownServerError
                                }
                                _ => GroupError::NotCoordinator,
                            });
                        }
                    }
                }
            }
        }
        for (token, reply) in fx.replies {
            if let Some(tx) = inner.waiters.remove(&token) {
                pending.replies.push((tx, reply));
            }
        }
        pending
    }

    /// Fires due timers until stopped. One task per broker.
    pub async fn run_timers(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            let deadline = self.inner.lock().coord.next_deadline();
            let wait = match deadline {
                Some(d) => Duration::from_millis((d - now_ms()).clamp(0, 60_000) as u64),
                None => Duration::from_secs(60),
            };
            tokio::select! {
                _ = shutdown.changed() => {
                    self.release_parked();
                    return;
                }
                _ = self.timer.notified() => continue,
                _ = tokio::time::sleep(wait) => {}
            }
            let pending = {
                let mut inner = self.inner.lock();
                let fx = inner.coord_for_write().tick(now_ms());
                self.write_locked(&mut inner, fx)
            };
            let _ = pending.finish(&self.flusher).await;
        }
    }

    pub async fn topic_changed(&self, topic: &str) {
        let t = topic.to_string();
        let _ = self
            .call(|c, now| ((), c.on_topic_partitions_changed(now, &t)))
            .await;
    }

    pub async fn topic_deleted(&self, topic: &str) {
        let t = topic.to_string();
        let _ = self.call(|c, now| ((), c.on_topic_deleted(now, &t))).await;
    }
}

#[derive(Default)]
struct Pending {
    logs: Vec<Arc<PartitionLog>>,
    replies: Vec<(oneshot::Sender<Reply>, Reply)>,
    error: Option<GroupError>,
}

impl Pending {
    async fn finish(self, flusher: &Option<Flusher>) -> Result<(), GroupError> {
        let mut error = self.error;
        if let Some(f) = flusher {
            let waits: Vec<_> = self.logs.into_iter().map(|l| f.flush(l)).collect();
            for w in waits {
                if let Err(e) = w.await {
                    tracing::error!("fsync of {OFFSETS_TOPIC} failed: {e}");
                    error = Some(GroupError::NotCoordinator);
                }
            }
        }
        for (tx, reply) in self.replies {
            let reply = match (&error, reply) {
                (Some(e), Reply::Join(_)) => Reply::Join(Err(e.clone())),
                (Some(e), Reply::Sync(_)) => Reply::Sync(Err(e.clone())),
                (None, r) => r,
            };
            let _ = tx.send(reply);
        }
        error.map_or(Ok(()), Err)
    }
}

fn partitions(store: &Store, meta: &TopicMeta) -> Vec<Arc<PartitionLog>> {
    (0..meta.partitions as i32)
        .filter_map(|p| store.partition(&meta.name, p))
        .collect()
}

pub(crate) fn encode_batch(recs: &[&cairn_group::Record], now: i64) -> BytesMut {
    let plain: Vec<PlainRecord> = recs
        .iter()
        .map(|r| PlainRecord {
            key: Some(&r.key),
            value: r.value.as_deref(),
            timestamp: now,
        })
        .collect();
    encode_plain(&plain)
}

/// A group's rebalance history in the HTTP API's shape, oldest first.
pub fn rebalance_history(groups: &Groups, group: &str) -> Vec<cairn_http::Rebalance> {
    use cairn_group::{RebalanceCause as C, RebalanceOutcome as O};
    groups
        .read(|c| c.rebalance_history(group))
        .into_iter()
        .map(|r| cairn_http::Rebalance {
            seq: r.seq,
            cause: r.cause.kind(),
            cause_detail: match &r.cause {
                C::MemberJoined { member_id }
                | C::MemberRejoinedWithNewMetadata { member_id }
                | C::LeaderRejoined { member_id }
                | C::MemberLeft { member_id }
                | C::SessionTimeout { member_id } => Some(member_id.clone()),
                C::RebalanceTimeout { member_ids } | C::SyncTimeout { member_ids } => {
                    Some(member_ids.join(","))
                }
                C::StaticMemberReplaced { instance_id } => Some(instance_id.clone()),
                C::PartitionsAdded { topic } | C::TopicDeleted { topic } => Some(topic.clone()),
                C::Other(s) => Some(s.clone()),
                C::GroupLoaded => None,
            },
            from_generation: r.from_generation,
            generation: r.generation,
            started_ms: r.started_ms,
            join_completed_ms: r.join_completed_ms,
            completed_ms: r.completed_ms,
            preparing_ms: r.preparing_ms(),
            completing_ms: r.completing_ms(),
            total_ms: r.total_ms(),
            members_before: r.members_before,
            members_after: r.members_after,
            partitions_moved: r.partitions_moved,
            outcome: match r.outcome {
                O::InProgress => "in_progress",
                O::Stable => "stable",
                O::Superseded => "superseded",
                O::Emptied => "emptied",
                O::Unloaded => "unloaded",
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coordinator sizes its records as this module writes them; the two must agree or a
    /// record the coordinator thinks fits could still be refused by the log.
    #[test]
    fn coordinator_batch_size_matches_the_written_batch() {
        let rec = |key: Vec<u8>, value: Option<Vec<u8>>| cairn_group::Record {
            group_id: "g".into(),
            key,
            value,
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
            let refs: Vec<&cairn_group::Record> = recs.iter().collect();
            let written = encode_batch(&refs, 1_700_000_000_000).len();
            assert_eq!(cairn_group::records::batch_size(&recs), written);
        }
    }
}
