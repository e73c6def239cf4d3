//! The transaction coordinator's rules (Kafka's TransactionCoordinator with the original
//! protocol, transaction version 1: the epoch is bumped only by InitProducerId and by fencing).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cairn_runtime::{Coordinator, LogRecord, Output, Seq, Token};

use crate::records;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> Self {
        TopicPartition {
            topic: topic.to_string(),
            partition,
        }
    }
}

/// Kafka's transaction states, with their codes in `__transaction_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_code(c: i8) -> Option<TxnState> {
        Some(match c {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's names, as DescribeTransactions and ListTransactions report them.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        (0..8)
            .filter_map(TxnState::from_code)
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// One transactional id's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The id before the last one (epoch exhaustion gives a new id); -1 if none.
    pub prev_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump: a client retrying an InitProducerId whose answer it
    /// lost (KIP-360) presents it. Not stored; -1 after loading.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnMeta {
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now: i64) -> Self {
        TxnMeta {
            transactional_id: transactional_id.to_string(),
            producer_id,
            prev_producer_id: -1,
            producer_epoch: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now,
        }
    }
}

/// Markers to write once a prepared transaction is durable, then report with
/// [`TxnCoordinator::markers_written`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<TopicPartition>,
}

/// Errors the coordinator answers with; the broker maps them to Kafka's codes once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnError {
    NotCoordinator,
    ConcurrentTransactions,
    InvalidProducerIdMapping,
    /// The producer's epoch is older than the transactional id's (PRODUCER_FENCED, or
    /// INVALID_PRODUCER_EPOCH for request versions before it existed).
    ProducerFenced,
    InvalidTxnState,
    InvalidTransactionTimeout,
    TransactionalIdNotFound,
}

#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub abort_check_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`
    pub remove_expired_interval_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            id_expiration_ms: 7 * 24 * 3600 * 1000,
            abort_check_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
        }
    }
}

/// An epoch may not reach i16::MAX: Kafka moves to a new producer id one short of it.
const MAX_EPOCH: i16 = i16::MAX - 1;

/// Saved state of one transactional id, to undo a request.
struct Undo {
    seq: Seq,
    transactional_id: String,
    before: Option<TxnMeta>,
}

/// One `__transaction_state` partition's transactions.
pub struct TxnCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, TxnMeta>,
    undo: VecDeque<Undo>,
    scope: Option<Seq>,
    next_abort_check: i64,
    next_expiry_check: i64,
}

type Reply<T> = (Result<T, TxnError>, Output<()>);

/// InitProducerId's answer (producer id and epoch), its records, and the abort to carry out
/// first when it fenced an open transaction.
pub type InitProducerIdResult = (Result<(i64, i16), TxnError>, Output<()>, Option<MarkerJob>);

fn output(records: Vec<LogRecord>) -> Output<()> {
    Output {
        records,
        replies: Vec::new(),
    }
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig) -> Self {
        TxnCoordinator {
            config,
            txns: BTreeMap::new(),
            undo: VecDeque::new(),
            scope: None,
            next_abort_check: 0,
            next_expiry_check: 0,
        }
    }

    /// Applies one `__transaction_state` record: the only way state changes, on load and for
    /// every request alike.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), records::RecordError> {
        let id = records::decode_key(key)?;
        let new = match value {
            Some(v) => Some(records::decode_value(&id, v)?),
            None => None,
        };
        self.save(&id);
        match new {
            Some(mut m) => {
                // The epoch before this one is kept in memory for KIP-360 retries.
                if let Some(old) = self.txns.get(&id) {
                    m.last_producer_epoch = if old.producer_epoch != m.producer_epoch {
                        old.producer_epoch
                    } else {
                        old.last_producer_epoch
                    };
                    if old.producer_id != m.producer_id && m.prev_producer_id < 0 {
                        m.prev_producer_id = old.producer_id;
                    }
                }
                self.txns.insert(id, m);
            }
            None => {
                self.txns.remove(&id);
            }
        }
        Ok(())
    }

    fn save(&mut self, id: &str) {
        let Some(seq) = self.scope else { return };
        if self
            .undo
            .iter()
            .rev()
            .take_while(|u| u.seq == seq)
            .any(|u| u.transactional_id == id)
        {
            return;
        }
        self.undo.push_back(Undo {
            seq,
            transactional_id: id.to_string(),
            before: self.txns.get(id).cloned(),
        });
    }

    /// Writes `m` as the new state of its id (through replay).
    fn put(&mut self, m: &TxnMeta) -> Output<()> {
        let rec = LogRecord::plain(
            records::encode_key(&m.transactional_id),
            Some(records::encode_value(m)),
        );
        self.replay(&rec.key, rec.value.as_deref())
            .expect("own record decodes");
        output(vec![rec])
    }

    fn tombstone(&mut self, id: &str) -> LogRecord {
        let rec = LogRecord::plain(records::encode_key(id), None);
        self.replay(&rec.key, None).expect("own key decodes");
        rec
    }

    /// What the log says of `id`: the state before any request not yet durable.
    pub fn durable(&self, id: &str) -> Option<&TxnMeta> {
        match self.undo.iter().find(|u| u.transactional_id == id) {
            Some(u) => u.before.as_ref(),
            None => self.txns.get(id),
        }
    }

    /// Every transactional id's durable state.
    pub fn durable_all(&self) -> Vec<TxnMeta> {
        let mut ids: BTreeSet<&str> = self.txns.keys().map(String::as_str).collect();
        ids.extend(self.undo.iter().map(|u| u.transactional_id.as_str()));
        ids.into_iter()
            .filter_map(|id| self.durable(id).cloned())
            .collect()
    }

    /// InitProducerId with a transactional id. `fresh_producer_id` is an id never handed out,
    /// used if the transactional id is new or its epoch is exhausted. `expected` is the
    /// client's current producer id and epoch (-1, -1 if none; KIP-360).
    pub fn init_producer_id(
        &mut self,
        now: i64,
        id: &str,
        timeout_ms: i32,
        expected: (i64, i16),
        fresh_producer_id: i64,
    ) -> InitProducerIdResult {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return (
                Err(TxnError::InvalidTransactionTimeout),
                output(vec![]),
                None,
            );
        }
        let Some(meta) = self.txns.get(id).cloned() else {
            let mut m = TxnMeta::new(id, fresh_producer_id, timeout_ms, now);
            m.producer_epoch = 0;
            let out = self.put(&m);
            return (Ok((fresh_producer_id, 0)), out, None);
        };
        if expected.0 >= 0 && !Self::valid_expected(&meta, expected) {
            return (Err(TxnError::ProducerFenced), output(vec![]), None);
        }
        match meta.state {
            TxnState::PrepareCommit
            | TxnState::PrepareAbort
            | TxnState::PrepareEpochFence
            | TxnState::Dead => (Err(TxnError::ConcurrentTransactions), output(vec![]), None),
            TxnState::Ongoing => {
                // The previous producer's transaction is aborted first, under a bumped epoch
                // that fences it; the client retries and gets its epoch once that is done.
                let (out, job) = self.abort_fenced(now, &meta);
                (Err(TxnError::ConcurrentTransactions), out, Some(job))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                // A retry of the call that made the current epoch (its answer was lost).
                if expected.0 == meta.producer_id
                    && expected.1 >= 0
                    && expected.1 == meta.last_producer_epoch
                    && meta.state == TxnState::Empty
                {
                    return (
                        Ok((meta.producer_id, meta.producer_epoch)),
                        output(vec![]),
                        None,
                    );
                }
                let mut m = meta.clone();
                if m.producer_epoch >= MAX_EPOCH {
                    m.prev_producer_id = m.producer_id;
                    m.producer_id = fresh_producer_id;
                    m.producer_epoch = 0;
                } else {
                    m.producer_epoch += 1;
                }
                m.timeout_ms = timeout_ms;
                m.state = TxnState::Empty;
                m.partitions.clear();
                m.start_ms = -1;
                m.last_update_ms = now;
                let out = self.put(&m);
                (Ok((m.producer_id, m.producer_epoch)), out, None)
            }
        }
    }

    /// KIP-360: the producer id and epoch a client presents must be its current ones, or the
    /// ones from just before its last successful InitProducerId.
    fn valid_expected(m: &TxnMeta, (pid, epoch): (i64, i16)) -> bool {
        (pid == m.producer_id && (epoch == m.producer_epoch || epoch == m.last_producer_epoch))
            || (pid == m.prev_producer_id && m.prev_producer_id >= 0)
    }

    /// Bumps the epoch (fencing the producer) and prepares the abort of its transaction.
    fn abort_fenced(&mut self, now: i64, meta: &TxnMeta) -> (Output<()>, MarkerJob) {
        let mut m = meta.clone();
        if m.producer_epoch < MAX_EPOCH {
            m.producer_epoch += 1;
        }
        m.state = TxnState::PrepareAbort;
        m.last_update_ms = now;
        let job = Self::job(&m, false);
        (self.put(&m), job)
    }

    fn job(m: &TxnMeta, commit: bool) -> MarkerJob {
        MarkerJob {
            transactional_id: m.transactional_id.clone(),
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            commit,
            partitions: m.partitions.iter().cloned().collect(),
        }
    }

    /// Checks the producer against the id's metadata, as every transactional call does.
    fn check_producer(&self, id: &str, pid: i64, epoch: i16) -> Result<&TxnMeta, TxnError> {
        let m = self
            .txns
            .get(id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if m.producer_id != pid {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition).
    pub fn add_partitions(
        &mut self,
        now: i64,
        id: &str,
        pid: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) -> Reply<()> {
        let m = match self.check_producer(id, pid, epoch) {
            Ok(m) => m.clone(),
            Err(e) => return (Err(e), output(vec![])),
        };
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return (Err(TxnError::ConcurrentTransactions), output(vec![]))
            }
            TxnState::Dead => return (Err(TxnError::InvalidTxnState), output(vec![])),
            _ => {}
        }
        if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
            return (Ok(()), output(vec![]));
        }
        let mut n = m.clone();
        if n.state != TxnState::Ongoing {
            n.partitions.clear();
            n.start_ms = now;
        }
        n.state = TxnState::Ongoing;
        n.partitions.extend(partitions.iter().cloned());
        n.last_update_ms = now;
        (Ok(()), self.put(&n))
    }

    /// AddPartitionsToTxn's verify-only form (KIP-890): whether each partition is in the
    /// producer's ongoing transaction. Nothing is written.
    pub fn verify_partitions(
        &self,
        id: &str,
        pid: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<bool>, TxnError> {
        let m = self.check_producer(id, pid, epoch)?;
        Ok(partitions
            .iter()
            .map(|p| m.state == TxnState::Ongoing && m.partitions.contains(p))
            .collect())
    }

    /// EndTxn. On success the caller answers once the records are durable, then writes the
    /// markers of the returned job (if any).
    pub fn end_txn(
        &mut self,
        now: i64,
        id: &str,
        pid: i64,
        epoch: i16,
        commit: bool,
    ) -> (Result<Option<MarkerJob>, TxnError>, Output<()>) {
        let m = match self.check_producer(id, pid, epoch) {
            Ok(m) => m.clone(),
            Err(e) => return (Err(e), output(vec![])),
        };
        let fail = |e| (Err(e), output(vec![]));
        match (m.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut n = m.clone();
                n.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                n.last_update_ms = now;
                let job = Self::job(&n, commit);
                (Ok(Some(job)), self.put(&n))
            }
            // A retry of an EndTxn that already completed.
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                (Ok(None), output(vec![]))
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                fail(TxnError::ConcurrentTransactions)
            }
            _ => fail(TxnError::InvalidTxnState),
        }
    }

    /// The markers of a prepared transaction are all written: it completes (and is no longer
    /// open anywhere). Ignored if the transaction moved on meanwhile.
    pub fn markers_written(&mut self, now: i64, job: &MarkerJob) -> Output<()> {
        let Some(m) = self.txns.get(&job.transactional_id) else {
            return output(vec![]);
        };
        let expected = if job.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if m.state != expected
            || m.producer_id != job.producer_id
            || m.producer_epoch != job.producer_epoch
        {
            return output(vec![]);
        }
        let mut n = m.clone();
        n.state = if job.commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        n.partitions.clear();
        n.last_update_ms = now;
        self.put(&n)
    }

    /// Prepared transactions whose markers must be (re)written: after loading, every one.
    pub fn prepared_jobs(&self) -> Vec<MarkerJob> {
        self.txns
            .values()
            .filter_map(|m| match m.state {
                TxnState::PrepareCommit => Some(Self::job(m, true)),
                TxnState::PrepareAbort => Some(Self::job(m, false)),
                _ => None,
            })
            .collect()
    }

    /// The abort administered from outside (Kafka's "abort a hanging transaction" tooling
    /// sends WriteTxnMarkers directly to the partitions; this is the coordinator-side abort a
    /// `transactions abort` asks for): fences the producer and aborts its open transaction.
    pub fn abort(&mut self, now: i64, id: &str) -> (Result<MarkerJob, TxnError>, Output<()>) {
        let Some(m) = self.txns.get(id).cloned() else {
            return (Err(TxnError::TransactionalIdNotFound), output(vec![]));
        };
        if m.state != TxnState::Ongoing {
            return (Err(TxnError::InvalidTxnState), output(vec![]));
        }
        let (out, job) = self.abort_fenced(now, &m);
        (Ok(job), out)
    }

    /// When [`TxnCoordinator::tick`] wants to run next.
    pub fn next_deadline(&self) -> i64 {
        self.next_abort_check.min(self.next_expiry_check)
    }

    /// Periodic work: aborts transactions open longer than their timeout (fencing their
    /// producers, as Kafka does) and removes transactional ids unused for
    /// `transactional.id.expiration.ms`.
    pub fn tick(&mut self, now: i64) -> (Vec<MarkerJob>, Output<()>) {
        let mut jobs = Vec::new();
        let mut records = Vec::new();
        if now >= self.next_abort_check {
            self.next_abort_check = now + self.config.abort_check_interval_ms.max(1);
            let expired: Vec<TxnMeta> = self
                .txns
                .values()
                .filter(|m| {
                    m.state == TxnState::Ongoing
                        && m.start_ms.saturating_add(m.timeout_ms as i64) < now
                })
                .cloned()
                .collect();
            for m in expired {
                let (out, job) = self.abort_fenced(now, &m);
                records.extend(out.records);
                jobs.push(job);
            }
        }
        if now >= self.next_expiry_check {
            self.next_expiry_check = now + self.config.remove_expired_interval_ms.max(1);
            let idle: Vec<String> = self
                .txns
                .values()
                .filter(|m| {
                    matches!(
                        m.state,
                        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                    ) && m
                        .last_update_ms
                        .saturating_add(self.config.id_expiration_ms)
                        <= now
                })
                .map(|m| m.transactional_id.clone())
                .collect();
            for id in idle {
                records.push(self.tombstone(&id));
            }
        }
        (jobs, output(records))
    }
}

impl Coordinator for TxnCoordinator {
    type Reply = ();

    fn begin(&mut self, seq: Seq) {
        self.scope = Some(seq);
    }

    fn forget_through(&mut self, seq: Seq) {
        while self.undo.front().is_some_and(|u| u.seq <= seq) {
            self.undo.pop_front();
        }
    }

    fn revert_from(&mut self, seq: Seq) {
        while self.undo.back().is_some_and(|u| u.seq >= seq) {
            let u = self.undo.pop_back().expect("back");
            match u.before {
                Some(m) => {
                    self.txns.insert(u.transactional_id, m);
                }
                None => {
                    self.txns.remove(&u.transactional_id);
                }
            }
        }
    }

    fn is_parked(&self, _token: Token) -> bool {
        false
    }
}
