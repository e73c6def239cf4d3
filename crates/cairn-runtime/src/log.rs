use std::fmt;

/// One record a coordinator stores: a key and a value (`None` is a tombstone), and the kind of
/// batch it is written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub tag: BatchTag,
}

impl LogRecord {
    /// A record in an ordinary batch (no producer).
    pub fn plain(key: Vec<u8>, value: Option<Vec<u8>>) -> LogRecord {
        LogRecord {
            key,
            value,
            tag: BatchTag::Plain,
        }
    }
}

/// The batch a record belongs to. Offsets committed inside a transaction are stored as that
/// producer's transactional data, and the transaction's outcome as a control record (a COMMIT
/// or ABORT marker) of the same producer, exactly as Kafka stores them; loading hands the tag
/// back so a coordinator can tell pending records from settled ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum BatchTag {
    #[default]
    Plain,
    /// Data written by a transactional producer, pending until its marker.
    Transactional {
        producer_id: i64,
        producer_epoch: i16,
    },
    /// A transaction marker: key and value are Kafka's control record key and value.
    Control {
        producer_id: i64,
        producer_epoch: i16,
    },
}

/// Why a write did not become durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFault {
    /// One request's records would not fit one batch of the log (`max.message.bytes`).
    TooLarge { size: usize, max: usize },
    /// The storage failed (a full disk, an I/O error, a failed sync).
    Storage(String),
    /// Another owner took the log over (a store shared by several brokers fences every write
    /// with the owner's lease epoch): this shard must stop serving.
    Fenced(String),
}

impl fmt::Display for LogFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogFault::TooLarge { size, max } => {
                write!(
                    f,
                    "a batch of {size} bytes exceeds the log's limit of {max} bytes"
                )
            }
            LogFault::Storage(e) => write!(f, "storage failed: {e}"),
            LogFault::Fenced(e) => write!(f, "fenced by a newer owner: {e}"),
        }
    }
}

impl std::error::Error for LogFault {}

/// Receives each record while loading: `(offset, tag, key, value)`.
pub type RecordSink<'a> = dyn FnMut(i64, BatchTag, &[u8], Option<&[u8]>) + 'a;

/// What loading a log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Records handed to the callback.
    pub records: u64,
    /// Offset ranges that could not be read (logged by the implementation; reads step over).
    pub lost: Vec<(i64, Option<i64>)>,
}

/// The narrow interface a coordinator shard needs from its storage.
///
/// `cairn-log`'s partitions implement it for the embedded store; tests implement it with
/// faults. An implementation over an external transactional store fits the same shape: each
/// `append` is one transaction that also checks the writer's lease epoch (a stale owner gets
/// [`LogFault::Fenced`]), `sync` has nothing left to do, and `truncate` removes rows past an
/// offset. Offsets are the store's: dense per shard, assigned by `append`.
pub trait RecordLog: Send + Sync {
    /// Appends `batches` in order, each as one atomic unit, with one write (a request's records
    /// of different tags become consecutive batches of that unit). On error nothing
    /// of them may remain readable. Returns the offset after the last record.
    fn append(&self, batches: &[Vec<LogRecord>], now_ms: i64) -> Result<i64, LogFault>;

    /// Makes everything appended so far durable.
    fn sync(&self) -> Result<(), LogFault>;

    /// Removes every record at or after `offset` (the tail of an append whose sync failed), so
    /// that the log again holds exactly what the coordinator's state describes.
    fn truncate(&self, offset: i64) -> Result<(), LogFault>;

    /// The offset the next appended record gets.
    fn end_offset(&self) -> i64;

    /// The largest batch `append` accepts now (a log's limit may change at run time); the
    /// coordinator refuses a state whose record would not fit before adopting it.
    fn max_batch_bytes(&self) -> usize;

    /// Calls `f(offset, tag, key, value)` for every record from the log's start, in order. Damage
    /// is stepped over and reported in the stats, never fatal.
    fn load(&self, f: &mut RecordSink<'_>) -> Result<LoadStats, LogFault>;
}
