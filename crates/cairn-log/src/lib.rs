//! cairn-log: the embedded, durable storage of a Cairn broker.
//!
//! - [`batch`]: zero-copy views over Kafka v2 record batches;
//! - [`PartitionLog`]: one partition's segmented log with offset and time
//!   indexes, crash recovery and retention;
//! - [`Store`]: the persisted topic registry owning all partition logs.

pub mod batch;
pub mod control;
mod partition;
mod record_log;
mod store;

pub use control::{encode_marker, MarkerKind};
pub use partition::{
    AbortedTxn, AppendInfo, CompactStats, Damage, LogConfig, LogError, OpenTxn, PartitionCheck,
    PartitionLog, ReadResult, SegmentReport, TimestampType,
};
pub use record_log::encode_records;
pub use store::{
    check_data_dir, DataDirCheck, LogConfigFn, PartitionReport, Store, StoreError, TopicMeta,
};
