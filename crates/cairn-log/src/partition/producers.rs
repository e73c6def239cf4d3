//! Idempotent-producer state of one partition: for each producer id, its epoch and the
//! sequence ranges of its last few batches, following Kafka's ProducerStateManager rules.
//!
//! The state lives under the partition lock, so checking a batch and assigning its offsets are
//! one atomic step. It is not persisted: on open it is rebuilt from the batch headers of the
//! log's tail (see `PartitionLog::open`), which covers the retries that matter, those of producers
//! active just before a restart.

use std::collections::{HashMap, VecDeque};

use super::LogError;
use crate::batch::BatchView;

/// Kafka keeps the metadata of this many batches per producer: a client has at most five
/// requests in flight per partition with idempotence, so any retry matches one of them.
pub(super) const BATCHES_KEPT: usize = 5;

/// Kafka's `producer.id.expiration.ms` default: producers idle this long are forgotten.
pub(super) const EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// Where one appended batch landed, to answer its retries with the original offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Clone, Debug)]
pub(super) struct Entry {
    epoch: i16,
    /// Oldest first, at most `BATCHES_KEPT`.
    batches: VecDeque<BatchMeta>,
    last_seen_ms: i64,
}

/// The producer fields of one incoming batch.
#[derive(Clone, Copy, Debug)]
pub(super) struct Incoming {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
}

impl Incoming {
    /// `None` for batches without a producer id, which are never checked.
    pub fn of(view: &BatchView<impl AsRef<[u8]>>) -> Option<Incoming> {
        (view.producer_id() >= 0).then(|| Incoming {
            producer_id: view.producer_id(),
            epoch: view.producer_epoch(),
            first_seq: view.base_sequence(),
            last_seq: view.last_sequence(),
        })
    }
}

/// Verdict on one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Append,
    /// A retry of a batch already in the log: answer with these offsets, write nothing.
    Duplicate(BatchMeta),
}

#[derive(Default)]
pub(super) struct ProducerStates {
    map: HashMap<i64, Entry>,
    last_sweep_ms: i64,
}

/// Kafka's `inSequence`: the next sequence follows the last, wrapping from i32::MAX to 0.
fn in_sequence(last: i32, next: i32) -> bool {
    next as i64 == last as i64 + 1 || (next == 0 && last == i32::MAX)
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Checks `b` against the state, seeing earlier batches of the same append through
    /// `staged` (updates not yet applied because the write may still fail).
    pub fn check(&self, staged: &[(i64, Entry)], b: &Incoming) -> Result<Verdict, LogError> {
        let entry = staged
            .iter()
            .rev()
            .find(|(pid, _)| *pid == b.producer_id)
            .map(|(_, e)| e)
            .or_else(|| self.map.get(&b.producer_id));
        // Unknown producer: its state was never seen or is gone (expired, or older than the
        // tail rebuilt after a restart). Like Kafka >= 2.5 for non-transactional producers, the
        // batch is accepted with any sequence and tracking starts from it; refusing it would
        // make every producer fail after a broker restart.
        let Some(entry) = entry else {
            return Ok(Verdict::Append);
        };
        if b.epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: b.producer_id,
                epoch: b.epoch,
                current: entry.epoch,
            });
        }
        if b.epoch > entry.epoch {
            // A bumped epoch restarts the sequence (KIP-360: the client bumps it after a failure).
            if b.first_seq != 0 {
                return Err(LogError::OutOfOrderSequence {
                    producer_id: b.producer_id,
                    expected: 0,
                    got: b.first_seq,
                });
            }
            return Ok(Verdict::Append);
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|m| m.first_seq == b.first_seq && m.last_seq == b.last_seq)
        {
            return Ok(Verdict::Duplicate(*dup));
        }
        let last = entry.batches.back().map_or(-1, |m| m.last_seq);
        if entry.batches.is_empty() || in_sequence(last, b.first_seq) {
            return Ok(Verdict::Append);
        }
        Err(LogError::OutOfOrderSequence {
            producer_id: b.producer_id,
            expected: if last == i32::MAX { 0 } else { last + 1 },
            got: b.first_seq,
        })
    }

    /// The entry `b` leaves behind once appended at `base_offset..=last_offset`.
    pub fn staged_after(
        &self,
        staged: &[(i64, Entry)],
        b: &Incoming,
        base_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> (i64, Entry) {
        let prev = staged
            .iter()
            .rev()
            .find(|(pid, _)| *pid == b.producer_id)
            .map(|(_, e)| e)
            .or_else(|| self.map.get(&b.producer_id));
        let mut entry = match prev {
            Some(e) if e.epoch == b.epoch => e.clone(),
            _ => Entry {
                epoch: b.epoch,
                batches: VecDeque::with_capacity(BATCHES_KEPT),
                last_seen_ms: now_ms,
            },
        };
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            base_offset,
            last_offset,
        });
        entry.last_seen_ms = now_ms;
        (b.producer_id, entry)
    }

    /// Applies staged entries after the write succeeded, and now and then forgets idle producers.
    pub fn commit(&mut self, staged: Vec<(i64, Entry)>, now_ms: i64) {
        for (pid, entry) in staged {
            self.map.insert(pid, entry);
        }
        // Sweeping at most once a minute keeps appends O(1) amortized.
        if now_ms.saturating_sub(self.last_sweep_ms) >= 60_000 {
            self.last_sweep_ms = now_ms;
            self.map
                .retain(|_, e| now_ms.saturating_sub(e.last_seen_ms) <= EXPIRATION_MS);
        }
    }

    /// Replays one batch header found in the log on open. The log is the truth, so no checks.
    pub fn replay(&mut self, view: &BatchView<impl AsRef<[u8]>>, now_ms: i64) {
        let Some(b) = Incoming::of(view) else { return };
        if b.first_seq < 0 {
            return;
        }
        if let Some(e) = self.map.get(&b.producer_id) {
            // An older epoch further down the log cannot override a newer one already seen.
            if b.epoch < e.epoch {
                return;
            }
        }
        let (pid, entry) =
            self.staged_after(&[], &b, view.base_offset(), view.last_offset(), now_ms);
        self.map.insert(pid, entry);
    }
}

/// Staged entries of one append, in batch order.
pub(super) type Staged = Vec<(i64, Entry)>;
