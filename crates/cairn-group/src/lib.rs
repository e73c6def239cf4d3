//! Cairn's group coordinator and offset manager: a deterministic, sans-IO state machine.
//!
//! Nothing here does I/O or reads a clock. Callers pass `now_ms` into every operation and
//! receive [`types::Effects`]: records to append to `__consumer_offsets` (in Kafka's own
//! formats, see [`records`]) and replies to send, which must be held back until those records
//! are durable.

pub mod consumer;
pub mod consumer_protocol;
pub mod hash;
pub mod records;

mod classic;
pub mod coordinator;
pub mod error;
mod group;
mod history;
pub mod offsets;
pub mod types;

pub use coordinator::{GroupCoordinator, RecordedGroup};
pub use error::GroupError;
pub use history::HISTORY_PER_GROUP;
pub use offsets::{DeleteGroupsResult, DeleteOffsetsResult};
pub use types::*;
