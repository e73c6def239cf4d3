//! The coordinator runtime's sans-IO core.
//!
//! A coordinator (the group coordinator today, the transaction coordinator later) is split in
//! shards, one per partition of its internal topic. Each shard is a [`Shard`]: it runs the
//! coordinator's handlers one at a time, applies the records they return through the same
//! [`Coordinator::replay`] that loading uses, queues those records for one ordered write path,
//! and releases every reply only once the records it depends on are durable. When a write
//! fails, the shard reverts the coordinator to the state before the first request of that
//! write, so memory never holds what the log does not.
//!
//! Nothing here does I/O, spawns or reads a clock: the driver (the broker) takes
//! [`Shard::next_write`], performs it against a [`RecordLog`], and reports the outcome with
//! [`Shard::write_done`]. Tests drive the same calls with [`memlog::MemLog`], which fails,
//! crashes and stalls on demand.

mod clock;
mod log;
pub mod memlog;
mod shard;

pub use clock::{Clock, SystemClock};
pub use log::{BatchTag, LoadStats, LogFault, LogRecord, RecordLog, RecordSink};
pub use shard::{Coordinator, Delivery, Output, Seq, Shard, Token, Write, WriteResult};
