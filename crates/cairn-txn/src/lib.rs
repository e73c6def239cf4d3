//! Cairn's transaction coordinator: a deterministic, sans-IO state machine.
//!
//! Like the group coordinator, it does no I/O and reads no clock: callers pass `now_ms` into
//! every operation and get back records for `__transaction_state` (Kafka's own formats, see
//! [`records`]), which change the state only through [`TxnCoordinator::replay`], the path
//! loading uses too. It runs inside a `cairn_runtime::Shard`, which holds each answer until its
//! records are durable and undoes requests whose write failed.
//!
//! What it cannot do itself it hands back as a [`MarkerJob`]: once a transaction is prepared
//! (PrepareCommit / PrepareAbort is durable) the driver writes the COMMIT or ABORT marker to
//! every partition of the transaction and then reports [`TxnCoordinator::markers_written`],
//! which completes it.

pub mod coordinator;
pub mod records;

pub use coordinator::{
    MarkerJob, TopicPartition, TxnConfig, TxnCoordinator, TxnError, TxnMeta, TxnState,
};
