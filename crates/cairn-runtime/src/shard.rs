use std::collections::VecDeque;

use crate::log::{LogFault, LogRecord, RecordLog};

/// Position of a request in its shard's order; assigned by [`Shard::handle`], increasing.
pub type Seq = u64;

/// A request parked inside the coordinator (a JoinGroup waiting for the others, say), answered
/// by a later request or timer. The driver chooses tokens and keeps what answers them.
pub type Token = u64;

/// What a handler returns: the records that describe its change, and replies for parked
/// requests. The handler's own answer stays with the caller and leaves on [`Delivery::Done`].
#[derive(Debug)]
pub struct Output<R> {
    pub records: Vec<LogRecord>,
    pub replies: Vec<(Token, R)>,
}

impl<R> Default for Output<R> {
    fn default() -> Self {
        Output {
            records: Vec::new(),
            replies: Vec::new(),
        }
    }
}

/// What the runtime needs of a coordinator's state.
pub trait Coordinator {
    /// The answer sent to a parked request.
    type Reply;

    /// Request `seq` starts: from here on remember how to undo what it changes.
    fn begin(&mut self, seq: Seq);

    /// Called after `begin`: whether every earlier request is final. A request that writes no
    /// records can then never be undone, so it need not save anything.
    fn earlier_final(&mut self, _all_final: bool) {}

    /// Requests up to and including `seq` are final; their undo information may go.
    fn forget_through(&mut self, seq: Seq);

    /// Undoes everything requests `seq` and later changed, newest first, so the state is again
    /// what it was before `seq` began.
    fn revert_from(&mut self, seq: Seq);

    /// Whether `token` is parked in the current state (after a revert, the requests parked
    /// before the reverted ones are parked again; any other token must be answered).
    fn is_parked(&self, token: Token) -> bool;
}

/// Something the driver must do, in the order given.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery<R> {
    /// Request `seq` is final: everything it depends on is durable; send its answer.
    Done(Seq),
    /// Request `seq` was undone because a write failed; answer it with the error for `fault`.
    Failed(Seq, LogFault),
    /// The answer to a parked request, now safe to send.
    Reply(Token, R),
    /// A parked request whose parking was undone: answer it with the error for `fault`.
    Orphaned(Token, LogFault),
}

/// One write for the driver to perform: append `batches` (one per request, in order) with one
/// write, then sync if `sync`, then call [`Shard::write_done`].
#[derive(Debug)]
pub struct Write {
    pub batches: Vec<Vec<LogRecord>>,
    pub sync: bool,
    first: Seq,
    last: Seq,
}

impl Write {
    /// Performs the write against `log`: append, then sync if asked. A failed sync removes
    /// the appended tail again; if that fails too, the outcome is uncertain.
    pub fn perform(&self, log: &dyn RecordLog, now_ms: i64) -> WriteResult {
        let start = log.end_offset();
        if let Err(e) = log.append(&self.batches, now_ms) {
            // A newer owner holds the log: this shard must stop serving, not retry.
            return match e {
                LogFault::Fenced(_) => WriteResult::FailedUncertain(e),
                e => WriteResult::Failed(e),
            };
        }
        if self.sync {
            if let Err(e) = log.sync() {
                return match log.truncate(start) {
                    Ok(()) => WriteResult::Failed(e),
                    Err(_) => WriteResult::FailedUncertain(e),
                };
            }
        }
        WriteResult::Durable
    }

    /// Records in this write.
    pub fn records(&self) -> usize {
        self.batches.iter().map(Vec::len).sum()
    }
}

/// How a write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    Durable,
    /// Nothing of the write remains in the log.
    Failed(LogFault),
    /// The write failed and the log may still hold part of it (a sync failed and the tail
    /// could not be removed): the shard stops serving until it is rebuilt from the log.
    FailedUncertain(LogFault),
}

struct Entry<R> {
    seq: Seq,
    has_records: bool,
    replies: Vec<(Token, R)>,
}

/// One coordinator shard: its state and its ordered write path.
pub struct Shard<C: Coordinator> {
    coord: C,
    next_seq: Seq,
    /// Handled requests not yet answered, in order.
    tail: VecDeque<Entry<C::Reply>>,
    /// Records waiting for the next write, one batch per request.
    unwritten: Vec<Vec<LogRecord>>,
    unwritten_seqs: Option<(Seq, Seq)>,
    in_flight: Option<(Seq, Seq)>,
    /// Every request with records up to here is durable.
    durable_through: Option<Seq>,
    sync: bool,
    offline: Option<LogFault>,
}

impl<C: Coordinator> Shard<C> {
    /// A shard over a loaded coordinator. With `sync`, a write is durable once synced; without,
    /// once appended (the operating system has it, which survives the process).
    pub fn new(coord: C, sync: bool) -> Self {
        Shard {
            coord,
            next_seq: 1,
            tail: VecDeque::new(),
            unwritten: Vec::new(),
            unwritten_seqs: None,
            in_flight: None,
            durable_through: None,
            sync,
            offline: None,
        }
    }

    /// The state, for reads. Coordinators answer reads from what is durable.
    pub fn coord(&self) -> &C {
        &self.coord
    }

    /// For settings that are not state (limits, say); state changes go through `handle`.
    pub fn coord_mut(&mut self) -> &mut C {
        &mut self.coord
    }

    /// Why the shard stopped serving, until [`Shard::reload`].
    pub fn offline(&self) -> Option<&LogFault> {
        self.offline.as_ref()
    }

    /// Requests handled and not yet answered.
    pub fn pending(&self) -> usize {
        self.tail.len()
    }

    /// Runs one request: `f` decides against the current state, applies the records that
    /// describe its change through the coordinator's replay (the one way recorded state changes,
    /// which loading uses too; later requests see them at once) and returns them with its
    /// replies. The records are queued for the next write. Returns the request's seq and what
    /// can be delivered already.
    pub fn handle(
        &mut self,
        f: impl FnOnce(&mut C) -> Output<C::Reply>,
    ) -> (Seq, Vec<Delivery<C::Reply>>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(fault) = &self.offline {
            return (seq, vec![Delivery::Failed(seq, fault.clone())]);
        }
        self.coord.begin(seq);
        self.coord.earlier_final(self.tail.is_empty());
        let out = f(&mut self.coord);
        let has_records = !out.records.is_empty();
        if has_records {
            self.unwritten.push(out.records);
            self.unwritten_seqs = Some(match self.unwritten_seqs {
                Some((first, _)) => (first, seq),
                None => (seq, seq),
            });
        }
        self.tail.push_back(Entry {
            seq,
            has_records,
            replies: out.replies,
        });
        let mut d = Vec::new();
        self.release(&mut d);
        (seq, d)
    }

    /// The next write to perform, if none is in flight and records are waiting.
    pub fn next_write(&mut self) -> Option<Write> {
        if self.in_flight.is_some() || self.offline.is_some() {
            return None;
        }
        let (first, last) = self.unwritten_seqs.take()?;
        self.in_flight = Some((first, last));
        Some(Write {
            batches: std::mem::take(&mut self.unwritten),
            sync: self.sync,
            first,
            last,
        })
    }

    /// The outcome of the write [`Shard::next_write`] gave.
    pub fn write_done(&mut self, write: Write, result: WriteResult) -> Vec<Delivery<C::Reply>> {
        debug_assert_eq!(self.in_flight, Some((write.first, write.last)));
        self.in_flight = None;
        let mut d = Vec::new();
        match result {
            WriteResult::Durable => {
                self.durable_through = Some(write.last);
                self.release(&mut d);
            }
            WriteResult::Failed(fault) => self.fail_from(write.first, fault, &mut d),
            WriteResult::FailedUncertain(fault) => {
                self.fail_from(write.first, fault.clone(), &mut d);
                self.offline = Some(fault);
            }
        }
        d
    }

    /// Replaces the state with one rebuilt from the log, after the shard went offline.
    ///
    /// The log may still hold the unsynced tail of the write that failed: make it durable
    /// ([`RecordLog::sync`]) before loading, and stay offline if that fails, or the rebuilt
    /// state could show records that a machine crash takes back.
    pub fn reload(&mut self, coord: C) {
        debug_assert!(self.tail.is_empty() && self.in_flight.is_none());
        self.coord = coord;
        self.offline = None;
    }

    /// Answers, in order, every request at the front whose records are durable.
    fn release(&mut self, d: &mut Vec<Delivery<C::Reply>>) {
        let mut last = None;
        while let Some(e) = self.tail.front() {
            if e.has_records && self.durable_through.is_none_or(|t| e.seq > t) {
                break;
            }
            let e = self.tail.pop_front().expect("front");
            d.push(Delivery::Done(e.seq));
            d.extend(e.replies.into_iter().map(|(t, r)| Delivery::Reply(t, r)));
            last = Some(e.seq);
        }
        if let Some(seq) = last {
            self.coord.forget_through(seq);
        }
    }

    /// Undoes every request from `first` on (later ones were decided on top of it).
    fn fail_from(&mut self, first: Seq, fault: LogFault, d: &mut Vec<Delivery<C::Reply>>) {
        self.coord.revert_from(first);
        self.unwritten.clear();
        self.unwritten_seqs = None;
        let failed: Vec<Entry<C::Reply>> = self.tail.drain(..).collect();
        for e in failed {
            debug_assert!(e.seq >= first, "only undurable requests remain in the tail");
            d.push(Delivery::Failed(e.seq, fault.clone()));
            for (t, _) in e.replies {
                if !self.coord.is_parked(t) {
                    d.push(Delivery::Orphaned(t, fault.clone()));
                }
            }
        }
    }
}
