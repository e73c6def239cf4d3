//! The topic registry: which topics exist, their ids, partition counts and
//! config overrides, plus the partition logs that back them.
//!
//! The registry is one JSON file replaced atomically, and it is the source of
//! truth: partition directories it does not mention are leftovers of an
//! interrupted create or delete and are removed on open.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use uuid::Uuid;

use crate::partition::{LogConfig, LogError, PartitionCheck, PartitionLog};

const REGISTRY_FILE: &str = "topics.json";
const REGISTRY_TMP: &str = "topics.json.tmp";
const DELETED_SUFFIX: &str = ".deleted";
const REGISTRY_VERSION: u32 = 1;

/// Derives the effective log settings of a topic's partitions.
pub type LogConfigFn = Arc<dyn Fn(&TopicMeta) -> LogConfig + Send + Sync>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: u32,
    /// Topic-level config overrides exactly as given by the client.
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("corrupt store: {0}")]
    Corrupt(String),
    #[error("data directory {0} is in use by another process")]
    Locked(String),
}

#[derive(Serialize, Deserialize)]
struct Registry {
    version: u32,
    cluster_id: String,
    topics: Vec<TopicMeta>,
    /// Producer ids below this were (possibly) handed out; absent in registries written
    /// before idempotence support, which never gave any out.
    #[serde(default)]
    producer_id_hwm: i64,
}

struct TopicEntry {
    meta: TopicMeta,
    logs: Vec<Arc<PartitionLog>>,
}

/// All topics of a broker's data directory.
pub struct Store {
    dir: PathBuf,
    log_config: LogConfigFn,
    cluster_id: String,
    topics: RwLock<BTreeMap<String, TopicEntry>>,
    /// Serializes registry changes so file writes happen in the same order as
    /// map updates, without blocking lookups during slow file work.
    admin: Mutex<()>,
    /// Held for the store's lifetime: two brokers writing one directory would corrupt it.
    _lock: File,
    /// The persisted producer id high-water mark; changed only under `admin`.
    producer_id_hwm: Mutex<i64>,
    /// Reserved ids not yet handed out.
    producer_ids: Mutex<Range<i64>>,
}

/// Producer ids reserved per registry write: one fsync'd write per this many producers.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Kafka's name for the same guard.
const LOCK_FILE: &str = ".lock";

/// Kafka-style cluster id: a random UUID in unpadded URL-safe base64 (22 chars).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= (*b as u32) << (16 - 8 * i);
        }
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Topic names become directory names, so refuse anything that could escape
/// the data dir even though the broker validates names first.
fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 249
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("illegal topic name {name:?}"),
        )
        .into())
    }
}

impl Store {
    /// Opens the data dir, creating it and a cluster id on first start, and
    /// opens every partition of every registered topic.
    pub fn open(data_dir: &Path, log_config: LogConfigFn) -> Result<Store, StoreError> {
        fs::create_dir_all(data_dir)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join(LOCK_FILE))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(data_dir.display().to_string()))
            }
            Err(fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let _ = fs::remove_file(data_dir.join(REGISTRY_TMP));
        let registry = match fs::read(data_dir.join(REGISTRY_FILE)) {
            Ok(raw) => {
                let reg: Registry = serde_json::from_slice(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("{REGISTRY_FILE}: {e}")))?;
                if reg.version != REGISTRY_VERSION {
                    return Err(StoreError::Corrupt(format!(
                        "{REGISTRY_FILE}: unsupported version {}",
                        reg.version
                    )));
                }
                reg
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let reg = Registry {
                    version: REGISTRY_VERSION,
                    cluster_id: new_cluster_id(),
                    topics: Vec::new(),
                    producer_id_hwm: 0,
                };
                write_registry(data_dir, &reg)?;
                info!(cluster_id = %reg.cluster_id, "initialized new data directory");
                reg
            }
            Err(e) => return Err(e.into()),
        };

        let wanted: BTreeMap<&str, u32> = registry
            .topics
            .iter()
            .map(|t| (t.name.as_str(), t.partitions))
            .collect();
        remove_leftover_dirs(data_dir, &wanted)?;

        let mut topics = BTreeMap::new();
        for meta in registry.topics {
            let config = log_config(&meta);
            let mut logs = Vec::with_capacity(meta.partitions as usize);
            for p in 0..meta.partitions {
                let dir = partition_dir(data_dir, &meta.name, p);
                logs.push(Arc::new(PartitionLog::open(&dir, config.clone())?));
            }
            topics.insert(meta.name.clone(), TopicEntry { meta, logs });
        }
        info!(topics = topics.len(), cluster_id = %registry.cluster_id, "store opened");
        Ok(Store {
            dir: data_dir.to_path_buf(),
            log_config,
            cluster_id: registry.cluster_id,
            topics: RwLock::new(topics),
            admin: Mutex::new(()),
            _lock: lock,
            producer_id_hwm: Mutex::new(registry.producer_id_hwm),
            producer_ids: Mutex::new(0..0),
        })
    }

    pub fn cluster_id(&self) -> String {
        self.cluster_id.clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the registry as it will be after a change to one topic.
    fn persist_with(&self, name: &str, replacement: Option<&TopicMeta>) -> Result<(), StoreError> {
        let mut metas: BTreeMap<String, TopicMeta> = self
            .topics
            .read()
            .values()
            .map(|t| (t.meta.name.clone(), t.meta.clone()))
            .collect();
        match replacement {
            Some(meta) => metas.insert(name.to_string(), meta.clone()),
            None => metas.remove(name),
        };
        self.write_registry_with(metas.into_values().collect(), *self.producer_id_hwm.lock())
    }

    fn write_registry_with(&self, topics: Vec<TopicMeta>, hwm: i64) -> Result<(), StoreError> {
        let reg = Registry {
            version: REGISTRY_VERSION,
            cluster_id: self.cluster_id.clone(),
            topics,
            producer_id_hwm: hwm,
        };
        write_registry(&self.dir, &reg)?;
        Ok(())
    }

    /// Durably reserves `n` producer ids that were never reserved before, in this or any
    /// earlier run: the new high-water mark is fsync'd before the range is returned, so ids
    /// never repeat across restarts (at worst a crash skips the rest of a block).
    pub fn allocate_producer_ids(&self, n: i64) -> Result<Range<i64>, StoreError> {
        let _admin = self.admin.lock();
        let from = *self.producer_id_hwm.lock();
        let to = from
            .checked_add(n.max(1))
            .ok_or_else(|| StoreError::Corrupt("producer ids exhausted".into()))?;
        let topics = self
            .topics
            .read()
            .values()
            .map(|t| t.meta.clone())
            .collect();
        self.write_registry_with(topics, to)?;
        *self.producer_id_hwm.lock() = to;
        Ok(from..to)
    }

    /// A producer id never handed out before, from an in-memory block reserved by
    /// [`Store::allocate_producer_ids`]; only every `PRODUCER_ID_BLOCK`th call writes the registry.
    pub fn next_producer_id(&self) -> Result<i64, StoreError> {
        let mut block = self.producer_ids.lock();
        if block.is_empty() {
            *block = self.allocate_producer_ids(PRODUCER_ID_BLOCK)?;
        }
        let id = block.start;
        block.start += 1;
        Ok(id)
    }

    /// Opens (creating) partitions `from..to` of a topic; on failure removes what it created.
    fn open_partitions(
        &self,
        meta: &TopicMeta,
        from: u32,
    ) -> Result<Vec<Arc<PartitionLog>>, StoreError> {
        let config = (self.log_config)(meta);
        let mut logs = Vec::new();
        for p in from..meta.partitions {
            let dir = partition_dir(&self.dir, &meta.name, p);
            let opened = (|| {
                if dir.exists() {
                    // Stale data under a name the registry does not own.
                    fs::remove_dir_all(&dir)?;
                }
                PartitionLog::open(&dir, config.clone())
            })();
            match opened {
                Ok(log) => logs.push(Arc::new(log)),
                Err(e) => {
                    for q in from..=p {
                        let _ = fs::remove_dir_all(partition_dir(&self.dir, &meta.name, q));
                    }
                    return Err(e.into());
                }
            }
        }
        cairn_durable::sync_dir(&self.dir)?;
        Ok(logs)
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        configs: BTreeMap<String, String>,
        internal: bool,
    ) -> Result<TopicMeta, StoreError> {
        check_name(name)?;
        let _admin = self.admin.lock();
        if self.topics.read().contains_key(name) {
            return Err(StoreError::TopicExists(name.to_string()));
        }
        if partitions == 0 {
            return Err(StoreError::InvalidPartitions(
                "number of partitions must be at least 1".into(),
            ));
        }
        let meta = TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
            internal,
        };
        // Directories first, registry second: a crash in between leaves only
        // unregistered directories, which open() sweeps away.
        let logs = self.open_partitions(&meta, 0)?;
        if let Err(e) = self.persist_with(name, Some(&meta)) {
            for p in 0..partitions {
                let _ = fs::remove_dir_all(partition_dir(&self.dir, name, p));
            }
            return Err(e);
        }
        self.topics.write().insert(
            name.to_string(),
            TopicEntry {
                meta: meta.clone(),
                logs,
            },
        );
        info!(topic = name, partitions, id = %meta.id, "created topic");
        Ok(meta)
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, StoreError> {
        let _admin = self.admin.lock();
        let meta = self
            .topic(name)
            .ok_or_else(|| StoreError::UnknownTopic(name.to_string()))?;
        // Registry first: once it no longer lists the topic, a crash at any later
        // point only leaves directories that open() removes.
        self.persist_with(name, None)?;
        self.topics.write().remove(name);
        let mut doomed = Vec::new();
        for p in 0..meta.partitions {
            let dir = partition_dir(&self.dir, name, p);
            let target = self
                .dir
                .join(format!("{name}-{p}.{}{DELETED_SUFFIX}", meta.id.simple()));
            match fs::rename(&dir, &target) {
                Ok(()) => doomed.push(target),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "failed to rename deleted partition")
                }
            }
        }
        let _ = cairn_durable::sync_dir(&self.dir);
        for dir in doomed {
            if let Err(e) = fs::remove_dir_all(&dir) {
                warn!(dir = %dir.display(), error = %e, "failed to remove deleted partition");
            }
        }
        info!(topic = name, id = %meta.id, "deleted topic");
        Ok(meta)
    }

    pub fn add_partitions(&self, name: &str, new_total: u32) -> Result<TopicMeta, StoreError> {
        let _admin = self.admin.lock();
        let mut meta = self
            .topic(name)
            .ok_or_else(|| StoreError::UnknownTopic(name.to_string()))?;
        if new_total <= meta.partitions {
            return Err(StoreError::InvalidPartitions(format!(
                "topic {name} has {} partitions; the new count must be larger, got {new_total}",
                meta.partitions
            )));
        }
        let from = meta.partitions;
        meta.partitions = new_total;
        let logs = self.open_partitions(&meta, from)?;
        if let Err(e) = self.persist_with(name, Some(&meta)) {
            for p in from..new_total {
                let _ = fs::remove_dir_all(partition_dir(&self.dir, name, p));
            }
            return Err(e);
        }
        let mut topics = self.topics.write();
        let entry = topics.get_mut(name).expect("held admin lock");
        entry.meta = meta.clone();
        entry.logs.extend(logs);
        info!(topic = name, partitions = new_total, "added partitions");
        Ok(meta)
    }

    /// Replaces the topic's config overrides and re-derives its partitions' settings.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let _admin = self.admin.lock();
        let mut meta = self
            .topic(name)
            .ok_or_else(|| StoreError::UnknownTopic(name.to_string()))?;
        meta.configs = configs;
        self.persist_with(name, Some(&meta))?;
        let config = (self.log_config)(&meta);
        let mut topics = self.topics.write();
        let entry = topics.get_mut(name).expect("held admin lock");
        entry.meta = meta;
        for log in &entry.logs {
            log.set_config(config.clone());
        }
        Ok(())
    }

    /// Re-derives every partition's settings, after a broker default they follow has changed.
    pub fn reapply_log_configs(&self) {
        let _admin = self.admin.lock();
        let topics = self.topics.read();
        for entry in topics.values() {
            let config = (self.log_config)(&entry.meta);
            for log in &entry.logs {
                log.set_config(config.clone());
            }
        }
    }

    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.topics.read().get(name).map(|t| t.meta.clone())
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicMeta> {
        self.topics
            .read()
            .values()
            .find(|t| t.meta.id == id)
            .map(|t| t.meta.clone())
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<TopicMeta> {
        self.topics
            .read()
            .values()
            .map(|t| t.meta.clone())
            .collect()
    }

    pub fn partition(&self, name: &str, partition: i32) -> Option<Arc<PartitionLog>> {
        let index = usize::try_from(partition).ok()?;
        self.topics.read().get(name)?.logs.get(index).cloned()
    }

    fn all_logs(&self) -> Vec<Arc<PartitionLog>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.logs.iter().cloned())
            .collect()
    }

    /// Applies retention everywhere; keeps going past failures and reports the first.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        let mut first_err = None;
        for log in self.all_logs() {
            match log.enforce_retention(now_ms) {
                Ok(n) => deleted += n,
                Err(e) => {
                    warn!(dir = %log.dir().display(), error = %e, "retention failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(deleted),
        }
    }

    /// Compacts every partition of `cleanup.policy=compact` topics; keeps going past
    /// failures and reports the first. Returns the number of records removed.
    pub fn compact(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut first_err = None;
        for log in self.all_logs() {
            if !log.config().cleanup_compact {
                continue;
            }
            match log.compact(now_ms) {
                Ok(stats) => removed += stats.records_removed as usize,
                Err(e) => {
                    warn!(dir = %log.dir().display(), error = %e, "compaction failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(removed),
        }
    }

    pub fn sync_all(&self) -> Result<(), StoreError> {
        for log in self.all_logs() {
            log.sync()?;
        }
        Ok(())
    }

    pub fn close(&self) -> Result<(), StoreError> {
        let mut first_err = None;
        for log in self.all_logs() {
            if let Err(e) = log.close() {
                warn!(dir = %log.dir().display(), error = %e, "close failed");
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

fn partition_dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

fn write_registry(dir: &Path, reg: &Registry) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(reg).map_err(io::Error::other)?;
    cairn_durable::replace(dir, REGISTRY_FILE, &json)
}

/// Removes `.deleted` directories and partition directories the registry does
/// not account for (interrupted creates, deletes or partition additions).
fn remove_leftover_dirs(data_dir: &Path, wanted: &BTreeMap<&str, u32>) -> io::Result<()> {
    for entry in fs::read_dir(data_dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let leftover = if name.ends_with(DELETED_SUFFIX) {
            true
        } else if let Some((topic, p)) = name.rsplit_once('-') {
            match p.parse::<u32>() {
                Ok(p) => wanted.get(topic).is_none_or(|&n| p >= n),
                Err(_) => false,
            }
        } else {
            false
        };
        if leftover {
            warn!(dir = name, "removing leftover partition directory");
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// One partition of a data directory check.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionReport {
    pub topic: String,
    pub partition: u32,
    /// The scan, unless the directory could not be read (then `error` says why).
    pub check: Option<PartitionCheck>,
    pub error: Option<String>,
}

impl PartitionReport {
    pub fn damaged(&self) -> bool {
        self.error.is_some() || self.check.as_ref().is_some_and(|c| !c.damage.is_empty())
    }
}

/// What `cairn check` reports for a data directory.
#[derive(Clone, Debug, Serialize)]
pub struct DataDirCheck {
    pub cluster_id: String,
    /// A broker holds the directory's lock: the active segments may be growing while we read,
    /// so a torn tail there is expected.
    pub broker_running: bool,
    pub partitions: Vec<PartitionReport>,
}

impl DataDirCheck {
    pub fn damaged(&self) -> bool {
        self.partitions.iter().any(PartitionReport::damaged)
    }
}

/// Kafka's default `index.interval.bytes`, for telling whether index files are current.
const DEFAULT_INDEX_INTERVAL: u32 = 4096;

/// Checks every partition the registry lists, reading only: nothing in the directory changes,
/// and a running broker is not disturbed (its lock is only probed).
pub fn check_data_dir(data_dir: &Path) -> Result<DataDirCheck, StoreError> {
    let path = data_dir.join(REGISTRY_FILE);
    let raw = fs::read(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let registry: Registry = serde_json::from_slice(&raw)
        .map_err(|e| StoreError::Corrupt(format!("{REGISTRY_FILE}: {e}")))?;
    let broker_running = match File::open(data_dir.join(LOCK_FILE)) {
        Ok(f) => matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock)),
        Err(_) => false,
    };
    let mut partitions = Vec::new();
    for meta in &registry.topics {
        let compacted = meta
            .configs
            .get("cleanup.policy")
            .is_some_and(|p| p.split(',').any(|v| v.trim() == "compact"));
        let interval = meta
            .configs
            .get("index.interval.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_INDEX_INTERVAL);
        for p in 0..meta.partitions {
            let dir = partition_dir(data_dir, &meta.name, p);
            let (check, error) = if dir.is_dir() {
                match PartitionLog::check(&dir, compacted, interval) {
                    Ok(c) => (Some(c), None),
                    Err(e) => (None, Some(format!("cannot read {}: {e}", dir.display()))),
                }
            } else {
                (
                    None,
                    Some(format!("partition directory {} is missing", dir.display())),
                )
            };
            partitions.push(PartitionReport {
                topic: meta.name.clone(),
                partition: p,
                check,
                error,
            });
        }
    }
    Ok(DataDirCheck {
        cluster_id: registry.cluster_id,
        broker_running,
        partitions,
    })
}
