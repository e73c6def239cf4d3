//! An in-memory [`RecordLog`] that fails, crashes and stalls on demand, for tests and the
//! seeded simulations.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::log::{LoadStats, LogFault, LogRecord, RecordLog, RecordSink};

/// A fault to inject into the next operation of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next append fails and leaves nothing.
    Append,
    /// The next sync fails (what was appended stays until truncated).
    Sync,
    /// The next truncate fails.
    Truncate,
    /// The next append is refused because another owner took the log over.
    Fenced,
}

#[derive(Debug, Default)]
struct Inner {
    /// (offset, record); offsets are dense from 0.
    records: Vec<(i64, LogRecord)>,
    /// How many of `records` a machine crash keeps (synced).
    synced: usize,
    faults: VecDeque<Fault>,
    max_batch_bytes: Option<usize>,
}

/// An in-memory log. `sync` marks everything appended as surviving a machine crash.
#[derive(Debug, Default)]
pub struct MemLog {
    inner: Mutex<Inner>,
}

impl MemLog {
    pub fn new() -> Self {
        MemLog::default()
    }

    /// Refuses batches larger than `max` bytes (key and value bytes, a rough stand-in for the
    /// encoded size).
    pub fn with_max_batch_bytes(max: usize) -> Self {
        let log = MemLog::default();
        log.inner.lock().expect("lock").max_batch_bytes = Some(max);
        log
    }

    /// Queues a fault for the next operation of its kind.
    pub fn inject(&self, fault: Fault) {
        self.inner.lock().expect("lock").faults.push_back(fault);
    }

    /// Every record, in order.
    pub fn records(&self) -> Vec<(i64, LogRecord)> {
        self.inner.lock().expect("lock").records.clone()
    }

    /// What survives a crash: the synced records plus the first `extra` of the rest (a machine
    /// crash keeps some prefix of what was written but not synced; a process crash keeps all,
    /// which is `extra = usize::MAX`).
    pub fn crash(&self, extra: usize) -> MemLog {
        let inner = self.inner.lock().expect("lock");
        let keep = inner.synced.saturating_add(extra).min(inner.records.len());
        MemLog {
            inner: Mutex::new(Inner {
                records: inner.records[..keep].to_vec(),
                synced: keep,
                faults: VecDeque::new(),
                max_batch_bytes: inner.max_batch_bytes,
            }),
        }
    }

    fn take_fault(inner: &mut Inner, kind: Fault) -> bool {
        if inner.faults.front() == Some(&kind) {
            inner.faults.pop_front();
            true
        } else {
            false
        }
    }
}

/// The size the in-memory log charges a batch.
pub fn batch_bytes(batch: &[LogRecord]) -> usize {
    batch
        .iter()
        .map(|r| r.key.len() + r.value.as_ref().map_or(0, Vec::len))
        .sum()
}

impl RecordLog for MemLog {
    fn append(&self, batches: &[Vec<LogRecord>], _now_ms: i64) -> Result<i64, LogFault> {
        let mut inner = self.inner.lock().expect("lock");
        if Self::take_fault(&mut inner, Fault::Append) {
            return Err(LogFault::Storage("injected append failure".into()));
        }
        if Self::take_fault(&mut inner, Fault::Fenced) {
            return Err(LogFault::Fenced("injected newer owner".into()));
        }
        if let Some(max) = inner.max_batch_bytes {
            for b in batches {
                let size = batch_bytes(b);
                if size > max {
                    return Err(LogFault::TooLarge { size, max });
                }
            }
        }
        let mut next = inner.records.len() as i64;
        for r in batches.iter().flatten() {
            inner.records.push((next, r.clone()));
            next += 1;
        }
        Ok(next)
    }

    fn sync(&self) -> Result<(), LogFault> {
        let mut inner = self.inner.lock().expect("lock");
        if Self::take_fault(&mut inner, Fault::Sync) {
            return Err(LogFault::Storage("injected sync failure".into()));
        }
        inner.synced = inner.records.len();
        Ok(())
    }

    fn truncate(&self, offset: i64) -> Result<(), LogFault> {
        let mut inner = self.inner.lock().expect("lock");
        if Self::take_fault(&mut inner, Fault::Truncate) {
            return Err(LogFault::Storage("injected truncate failure".into()));
        }
        let keep = offset.clamp(0, inner.records.len() as i64) as usize;
        inner.records.truncate(keep);
        inner.synced = inner.synced.min(keep);
        Ok(())
    }

    fn end_offset(&self) -> i64 {
        self.inner.lock().expect("lock").records.len() as i64
    }

    fn max_batch_bytes(&self) -> usize {
        self.inner
            .lock()
            .expect("lock")
            .max_batch_bytes
            .unwrap_or(usize::MAX)
    }

    fn load(&self, f: &mut RecordSink<'_>) -> Result<LoadStats, LogFault> {
        let records = self.records();
        for (o, r) in &records {
            f(*o, r.tag, &r.key, r.value.as_deref());
        }
        Ok(LoadStats {
            records: records.len() as u64,
            lost: Vec::new(),
        })
    }
}
