//! A partition's transactions: which producers have one open here (from the offset of its first
//! batch), which were aborted (first offset to marker offset), and the last epoch each
//! transactional producer showed. Following Kafka's ProducerStateManager, a transactional batch
//! opens its producer's transaction if none is open, and a COMMIT or ABORT marker ends it.
//!
//! The index lives in memory under the partition lock and is not persisted the way Kafka keeps
//! `.txnindex` files: every open rebuilds it by walking the batch headers of the whole log
//! (and reading each control batch's one record), so what it holds is always what the log says.
//! The last stable offset, the first offset of the oldest open transaction, follows from it.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::batch::{self, BatchView};
use crate::control::MarkerKind;

use super::LogError;

/// An aborted transaction's range in this partition: `last_offset` is its ABORT marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// A transaction open in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTxn {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub first_offset: i64,
    pub last_timestamp_ms: i64,
}

/// What a batch means for the transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxnBatch {
    /// Data of a transactional producer.
    Data { producer_id: i64, epoch: i16 },
    /// A marker (control batch) of a producer's transaction.
    Marker {
        producer_id: i64,
        epoch: i16,
        kind: MarkerKind,
    },
    /// A control batch of another kind: kept, changes nothing.
    OtherControl,
}

impl TxnBatch {
    /// Reads what a complete batch means, if it is transactional or control. A control batch's
    /// type is its first record's key.
    pub fn of(view: &BatchView<&[u8]>) -> Option<TxnBatch> {
        let (producer_id, epoch) = (view.producer_id(), view.producer_epoch());
        if view.is_control() {
            let kind = control_kind(view);
            return Some(match kind {
                Some(kind) if producer_id >= 0 => TxnBatch::Marker {
                    producer_id,
                    epoch,
                    kind,
                },
                _ => TxnBatch::OtherControl,
            });
        }
        (view.is_transactional() && producer_id >= 0)
            .then_some(TxnBatch::Data { producer_id, epoch })
    }
}

/// The marker kind of a control batch (uncompressed, as every writer of markers writes them).
fn control_kind(view: &BatchView<&[u8]>) -> Option<MarkerKind> {
    if view.compression().ok()? != batch::Compression::None {
        return None;
    }
    let count = usize::try_from(view.record_count()).ok()?;
    let region = view.records_region();
    let spans = batch::record_spans(region, count).ok()?;
    let key = spans.first()?.key.clone()?;
    MarkerKind::decode(&region[key])
}

/// One change an appended batch makes, staged until the write succeeded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Staged {
    batch: TxnBatch,
    base_offset: i64,
    max_ts: i64,
    /// Offsets the batch takes.
    offsets: i64,
}

/// Marker offsets kept for lag (which never counts them); beyond this many per partition the
/// oldest are forgotten, and lag over a range that old may count a few markers.
const MARKERS_KEPT: usize = 1 << 20;

#[derive(Default, Debug, Clone)]
pub(super) struct TxnIndex {
    open: HashMap<i64, OpenTxn>,
    /// Open transactions by first offset, for the last stable offset.
    by_first: BTreeMap<i64, i64>,
    /// Aborted transactions in marker order (so also by last offset).
    aborted: Vec<AbortedTxn>,
    /// Records each aborted transaction wrote here, parallel to `aborted`.
    aborted_records: Vec<i64>,
    /// Records each open transaction wrote so far.
    open_records: HashMap<i64, i64>,
    /// Offsets of the markers (control batches), oldest first.
    markers: VecDeque<i64>,
    /// The newest epoch a transactional batch or marker of each producer carried.
    epochs: HashMap<i64, i16>,
}

impl TxnIndex {
    fn is_open(&self, staged: &[Staged], pid: i64) -> bool {
        let mut open = self.open.contains_key(&pid);
        for s in staged {
            match s.batch {
                TxnBatch::Data { producer_id, .. } if producer_id == pid => open = true,
                TxnBatch::Marker { producer_id, .. } if producer_id == pid => open = false,
                _ => {}
            }
        }
        open
    }

    fn epoch(&self, staged: &[Staged], pid: i64) -> Option<i16> {
        let mut e = self.epochs.get(&pid).copied();
        for s in staged {
            if let TxnBatch::Data { producer_id, epoch }
            | TxnBatch::Marker {
                producer_id, epoch, ..
            } = s.batch
            {
                if producer_id == pid {
                    e = Some(e.map_or(epoch, |x| x.max(epoch)));
                }
            }
        }
        e
    }

    /// Checks one batch of an append (`producer`: the id of any producer batch, transactional
    /// or not) against the state and the batches staged before it.
    pub fn check(
        &self,
        staged: &[Staged],
        producer: Option<i64>,
        txn: Option<TxnBatch>,
    ) -> Result<(), LogError> {
        match txn {
            None => {
                if let Some(pid) = producer {
                    if self.is_open(staged, pid) {
                        return Err(LogError::InvalidTxnState(format!(
                            "producer {pid} sent a non-transactional batch while its transaction is open"
                        )));
                    }
                }
                Ok(())
            }
            Some(TxnBatch::Data { producer_id, epoch })
            | Some(TxnBatch::Marker {
                producer_id, epoch, ..
            }) => match self.epoch(staged, producer_id) {
                Some(current) if epoch < current => Err(LogError::InvalidProducerEpoch {
                    producer_id,
                    epoch,
                    current,
                }),
                _ => Ok(()),
            },
            Some(TxnBatch::OtherControl) => Ok(()),
        }
    }

    pub fn stage(batch: TxnBatch, base_offset: i64, max_ts: i64, offsets: i64) -> Staged {
        Staged {
            batch,
            base_offset,
            max_ts,
            offsets,
        }
    }

    /// Applies a batch the log now holds.
    pub fn apply(&mut self, s: &Staged) {
        match s.batch {
            TxnBatch::Data { producer_id, epoch } => {
                self.bump(producer_id, epoch);
                *self.open_records.entry(producer_id).or_insert(0) += s.offsets;
                match self.open.get_mut(&producer_id) {
                    Some(o) => {
                        o.last_timestamp_ms = o.last_timestamp_ms.max(s.max_ts);
                        o.producer_epoch = o.producer_epoch.max(epoch);
                    }
                    None => {
                        self.open.insert(
                            producer_id,
                            OpenTxn {
                                producer_id,
                                producer_epoch: epoch,
                                first_offset: s.base_offset,
                                last_timestamp_ms: s.max_ts,
                            },
                        );
                        self.by_first.insert(s.base_offset, producer_id);
                    }
                }
            }
            TxnBatch::Marker {
                producer_id,
                epoch,
                kind,
            } => {
                self.bump(producer_id, epoch);
                self.marker_at(s.base_offset);
                let records = self.open_records.remove(&producer_id).unwrap_or(0);
                if let Some(o) = self.open.remove(&producer_id) {
                    self.by_first.remove(&o.first_offset);
                    if kind == MarkerKind::Abort {
                        self.aborted.push(AbortedTxn {
                            producer_id,
                            first_offset: o.first_offset,
                            last_offset: s.base_offset,
                        });
                        self.aborted_records.push(records);
                    }
                }
            }
            TxnBatch::OtherControl => self.marker_at(s.base_offset),
        }
    }

    fn marker_at(&mut self, offset: i64) {
        if self.markers.len() == MARKERS_KEPT {
            self.markers.pop_front();
        }
        self.markers.push_back(offset);
    }

    /// Offsets in `[from, to)` no consumer is ever given: markers, and the records of
    /// transactions aborted wholly inside the range.
    pub fn hidden_between(&self, from: i64, to: i64) -> i64 {
        let a = self.markers.partition_point(|o| *o < from);
        let b = self.markers.partition_point(|o| *o < to);
        let markers = b.saturating_sub(a) as i64;
        let start = self.aborted.partition_point(|x| x.last_offset < from);
        let aborted: i64 = self.aborted[start..]
            .iter()
            .zip(&self.aborted_records[start..])
            .filter(|(x, _)| x.first_offset >= from && x.last_offset < to)
            .map(|(_, n)| *n)
            .sum();
        markers + aborted
    }

    fn bump(&mut self, pid: i64, epoch: i16) {
        let e = self.epochs.entry(pid).or_insert(epoch);
        *e = (*e).max(epoch);
    }

    /// The first offset of the oldest open transaction, if any.
    pub fn first_open(&self) -> Option<i64> {
        self.by_first.keys().next().copied()
    }

    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        // Entries are in marker order: skip those that ended before `from`.
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        let mut out: Vec<AbortedTxn> = self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset < to)
            .copied()
            .collect();
        out.sort_by_key(|a| a.first_offset);
        out
    }

    pub fn open(&self) -> Vec<OpenTxn> {
        self.by_first
            .values()
            .filter_map(|pid| self.open.get(pid).copied())
            .collect()
    }

    /// Forgets aborted transactions whose marker is gone with the log's start.
    pub fn drop_before(&mut self, start: i64) {
        let n = self.aborted.partition_point(|a| a.last_offset < start);
        self.aborted.drain(..n);
        self.aborted_records.drain(..n);
        let m = self.markers.partition_point(|o| *o < start);
        self.markers.drain(..m);
    }
}
