//! Dynamic broker configs (Kafka's KIP-226): the cluster-wide default and this broker's own
//! values, set at run time through (Incremental)AlterConfigs, kept in `broker-configs.json` in
//! the data directory and laid over the static configuration on every start.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use cairn_config::{BrokerConfig, DynamicError};
use parking_lot::RwLock;
use serde_json::{json, Map, Value};

pub const FILE: &str = "broker-configs.json";
const TMP: &str = "broker-configs.json.tmp";
const VERSION: u64 = 1;

pub struct DynamicConfigs {
    static_cfg: Arc<BrokerConfig>,
    current: RwLock<Arc<BrokerConfig>>,
    dir: PathBuf,
    node_id: i32,
    /// Other brokers' entries found in the file, written back untouched.
    others: BTreeMap<String, BTreeMap<String, String>>,
    /// One alteration at a time: read-modify-write of a resource's configs, its file write and
    /// the swap happen in request order.
    pub alter_lock: tokio::sync::Mutex<()>,
}

fn parse_level(v: &Value, what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let Some(obj) = v.as_object() else {
        bail!("{what} must be an object of string values");
    };
    obj.iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_string())),
            None => bail!("{what}: value of {k} must be a string"),
        })
        .collect()
}

impl DynamicConfigs {
    /// Reads the file if there is one. A damaged or invalid file stops the start with the
    /// reason: running with fewer settings than the operator made would be worse.
    pub fn load(static_cfg: Arc<BrokerConfig>, dir: &Path) -> anyhow::Result<DynamicConfigs> {
        let node_id = static_cfg.node_id();
        let path = dir.join(FILE);
        let _ = fs::remove_file(dir.join(TMP));
        let (default, mine, others) = match fs::read(&path) {
            Ok(raw) => Self::parse(&raw, node_id)
                .with_context(|| format!("cannot use {}", path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Default::default(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let current = static_cfg
            .with_dynamic(default, mine)
            .with_context(|| format!("cannot apply {}", path.display()))?;
        Ok(DynamicConfigs {
            static_cfg,
            current: RwLock::new(Arc::new(current)),
            dir: dir.to_path_buf(),
            node_id,
            others,
            alter_lock: tokio::sync::Mutex::new(()),
        })
    }

    #[allow(clippy::type_complexity)]
    fn parse(
        raw: &[u8],
        node_id: i32,
    ) -> anyhow::Result<(
        BTreeMap<String, String>,
        BTreeMap<String, String>,
        BTreeMap<String, BTreeMap<String, String>>,
    )> {
        let v: Value = serde_json::from_slice(raw).context("not valid JSON")?;
        if v.get("version").and_then(Value::as_u64) != Some(VERSION) {
            bail!("unsupported or missing version (expected {VERSION})");
        }
        let default = match v.get("default") {
            Some(d) => parse_level(d, "default")?,
            None => BTreeMap::new(),
        };
        let mut mine = BTreeMap::new();
        let mut others = BTreeMap::new();
        if let Some(b) = v.get("brokers") {
            let Some(b) = b.as_object() else {
                bail!("brokers must be an object keyed by broker id");
            };
            for (id, level) in b {
                let parsed = parse_level(level, &format!("brokers.{id}"))?;
                if *id == node_id.to_string() {
                    mine = parsed;
                } else {
                    others.insert(id.clone(), parsed);
                }
            }
        }
        Ok((default, mine, others))
    }

    /// The configuration in force: static values with the dynamic levels over them.
    pub fn current(&self) -> Arc<BrokerConfig> {
        self.current.read().clone()
    }

    /// The values set for the cluster-wide default (`default`) or for this broker.
    pub fn level(&self, default: bool) -> BTreeMap<String, String> {
        self.current().dynamic(default).clone()
    }

    /// Checks a replacement of one level; the configuration it would yield.
    pub fn prepare(
        &self,
        default: bool,
        values: BTreeMap<String, String>,
    ) -> Result<BrokerConfig, DynamicError> {
        let cur = self.current();
        let (d, b) = if default {
            (values, cur.dynamic(false).clone())
        } else {
            (cur.dynamic(true).clone(), values)
        };
        self.static_cfg.with_dynamic(d, b)
    }

    /// Makes `next` durable (atomic replace of the file, fsynced with its directory), then puts
    /// it in force. Callers hold `alter_lock`.
    pub fn commit(&self, next: BrokerConfig) -> io::Result<()> {
        let mut brokers = Map::new();
        for (id, level) in &self.others {
            brokers.insert(id.clone(), json!(level));
        }
        brokers.insert(self.node_id.to_string(), json!(next.dynamic(false)));
        let doc = json!({
            "version": VERSION,
            "default": next.dynamic(true),
            "brokers": brokers,
        });
        let bytes = serde_json::to_vec_pretty(&doc).map_err(io::Error::other)?;
        fs::create_dir_all(&self.dir)?;
        cairn_durable::replace(&self.dir, FILE, &bytes)?;
        *self.current.write() = Arc::new(next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Arc<BrokerConfig> {
        Arc::new(
            BrokerConfig::from_pairs([("message.max.bytes".to_string(), "1000".to_string())])
                .unwrap(),
        )
    }

    #[test]
    fn survives_a_restart_and_keeps_other_brokers() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE),
            r#"{"version":1,"default":{},"brokers":{"7":{"message.max.bytes":"9"}}}"#,
        )
        .unwrap();
        let d = DynamicConfigs::load(base(), dir.path()).unwrap();
        assert_eq!(d.current().message_max_bytes(), 1000);
        let next = d
            .prepare(
                false,
                [("message.max.bytes".to_string(), "2000".to_string())].into(),
            )
            .unwrap();
        d.commit(next).unwrap();
        let next = d
            .prepare(
                true,
                [("log.segment.bytes".to_string(), "4096".to_string())].into(),
            )
            .unwrap();
        d.commit(next).unwrap();
        let again = DynamicConfigs::load(base(), dir.path()).unwrap();
        assert_eq!(again.current().message_max_bytes(), 2000);
        assert_eq!(again.current().log_segment_bytes(), 4096);
        let raw = fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(raw.contains("\"7\""), "{raw}");
    }

    #[test]
    fn a_bad_file_is_a_clear_error() {
        for (text, want) in [
            ("{not json", "not valid JSON"),
            (r#"{"version":2}"#, "version"),
            (
                r#"{"version":1,"default":{"message.max.bytes":5}}"#,
                "string",
            ),
            (
                r#"{"version":1,"default":{"message.max.bytes":"lots"}}"#,
                "message.max.bytes",
            ),
            (
                r#"{"version":1,"brokers":{"1":{"num.partitions":"3"}}}"#,
                "Cannot update these configs dynamically",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(FILE), text).unwrap();
            let e = DynamicConfigs::load(base(), dir.path()).err().unwrap();
            let msg = format!("{e:#}");
            assert!(msg.contains(want) && msg.contains(FILE), "{text}: {msg}");
        }
    }
}
