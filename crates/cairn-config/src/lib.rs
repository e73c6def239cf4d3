//! Broker and topic configuration under Kafka's own property names.
//!
//! Operators bring their Kafka knowledge: the same keys, the same defaults, the same precedence
//! (`log.retention.ms` over `.minutes` over `.hours`). Unknown keys are reported, bad values refuse
//! to start. The definitions double as the source of truth for DescribeConfigs.

use std::collections::BTreeMap;
use std::path::Path;

mod defs;
pub use defs::{ConfigDef, ConfigType, BROKER_DEFS, TOPIC_DEFS};

#[derive(thiserror::Error, Debug, PartialEq)]
pub enum ConfigError {
    #[error("invalid value {value:?} for configuration {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("unknown configuration {0}")]
    Unknown(String),
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("malformed line {line} in config file: {text:?} (expected key=value)")]
    Syntax { line: usize, text: String },
}

/// Where a value came from, in DescribeConfigs terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// A topic-level override (Kafka: DYNAMIC_TOPIC_CONFIG = 1).
    Topic,
    /// Set in the broker's properties file or on its command line (STATIC_BROKER_CONFIG = 4).
    StaticBroker,
    /// Nobody set it (DEFAULT_CONFIG = 5).
    Default,
}

impl ConfigSource {
    pub fn kafka_code(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// One resolved entry, as DescribeConfigs reports it.
#[derive(Clone, Debug)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub def: &'static ConfigDef,
}

/// Parses a Java-style properties file: `key=value` or `key: value`, `#`/`!` comments.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let sep = line.find(['=', ':']).ok_or_else(|| ConfigError::Syntax {
            line: i + 1,
            text: raw.to_string(),
        })?;
        let key = line[..sep].trim();
        if key.is_empty() {
            return Err(ConfigError::Syntax {
                line: i + 1,
                text: raw.to_string(),
            });
        }
        out.push((key.to_string(), line[sep + 1..].trim().to_string()));
    }
    Ok(out)
}

/// Splits `key=value` as given to `-o`.
pub fn parse_override(s: &str) -> Result<(String, String), ConfigError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(ConfigError::Syntax {
            line: 0,
            text: s.to_string(),
        }),
    }
}

/// The broker's configuration: what was set explicitly, validated, plus typed accessors.
#[derive(Clone, Debug, Default)]
pub struct BrokerConfig {
    explicit: BTreeMap<String, String>,
    /// Keys that are not Kafka broker settings Cairn knows; reported at start-up, never applied.
    pub unknown: Vec<String>,
}

impl BrokerConfig {
    /// Builds the config from a properties file (optional) and `-o` overrides, later wins.
    pub fn load(
        file: Option<&Path>,
        overrides: &[(String, String)],
    ) -> Result<BrokerConfig, ConfigError> {
        let mut pairs = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            pairs.extend(parse_properties(&text)?);
        }
        pairs.extend(overrides.iter().cloned());
        BrokerConfig::from_pairs(pairs)
    }

    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut cfg = BrokerConfig::default();
        for (k, v) in pairs {
            match defs::broker_def(&k) {
                Some(def) => {
                    def.validate(&v)?;
                    cfg.explicit.insert(def.name.to_string(), v);
                }
                None => {
                    if !cfg.unknown.contains(&k) {
                        cfg.unknown.push(k);
                    }
                }
            }
        }
        // broker.id is Kafka's older name for node.id; both must agree when both are given.
        if let (Some(a), Some(b)) = (cfg.explicit.get("node.id"), cfg.explicit.get("broker.id")) {
            if a != b {
                return Err(ConfigError::InvalidValue {
                    key: "broker.id".into(),
                    value: b.clone(),
                    reason: format!("conflicts with node.id={a}"),
                });
            }
        }
        Ok(cfg)
    }

    /// The effective string value of a broker key (explicit or default).
    pub fn get(&self, key: &str) -> Option<String> {
        if let Some(v) = self.explicit.get(key) {
            return Some(v.clone());
        }
        defs::broker_def(key).and_then(|d| d.default.map(str::to_string))
    }

    pub fn is_explicit(&self, key: &str) -> bool {
        self.explicit.contains_key(key)
    }

    fn long(&self, key: &str) -> i64 {
        // Validated on load and defaults are well-formed, so parsing cannot fail here.
        self.get(key).and_then(|v| v.parse().ok()).unwrap_or(-1)
    }

    fn first_set(&self, keys: &[(&str, i64)]) -> i64 {
        // Kafka's precedence for time settings: the finest unit that is explicitly set wins.
        for (k, scale) in keys {
            if self.is_explicit(k) {
                let v = self.long(k);
                return if v < 0 { -1 } else { v.saturating_mul(*scale) };
            }
        }
        let (k, scale) = keys[keys.len() - 1];
        self.long(k).saturating_mul(scale)
    }

    pub fn node_id(&self) -> i32 {
        if self.is_explicit("node.id") {
            self.long("node.id") as i32
        } else if self.is_explicit("broker.id") {
            self.long("broker.id") as i32
        } else {
            self.long("node.id") as i32
        }
    }
    pub fn advertised_listener(&self) -> Option<(String, u16)> {
        let v = self.get("advertised.listeners")?;
        parse_listener(v.split(',').next()?)
    }
    pub fn listener(&self) -> Option<(String, u16)> {
        let v = self.get("listeners")?;
        parse_listener(v.split(',').next()?)
    }
    pub fn num_partitions(&self) -> i32 {
        self.long("num.partitions") as i32
    }
    pub fn auto_create_topics(&self) -> bool {
        self.get("auto.create.topics.enable").as_deref() == Some("true")
    }
    pub fn default_replication_factor(&self) -> i16 {
        self.long("default.replication.factor") as i16
    }
    pub fn message_max_bytes(&self) -> i64 {
        self.long("message.max.bytes")
    }
    pub fn fetch_max_bytes(&self) -> i64 {
        self.long("fetch.max.bytes")
    }
    pub fn socket_request_max_bytes(&self) -> i64 {
        self.long("socket.request.max.bytes")
    }
    pub fn log_segment_bytes(&self) -> i64 {
        self.long("log.segment.bytes")
    }
    pub fn log_roll_ms(&self) -> i64 {
        self.first_set(&[("log.roll.ms", 1), ("log.roll.hours", 3_600_000)])
    }
    pub fn log_retention_ms(&self) -> i64 {
        self.first_set(&[
            ("log.retention.ms", 1),
            ("log.retention.minutes", 60_000),
            ("log.retention.hours", 3_600_000),
        ])
    }
    pub fn log_retention_bytes(&self) -> i64 {
        self.long("log.retention.bytes")
    }
    pub fn log_retention_check_interval_ms(&self) -> i64 {
        self.long("log.retention.check.interval.ms")
    }
    pub fn log_flush_interval_messages(&self) -> i64 {
        self.long("log.flush.interval.messages")
    }
    /// `None` means Kafka's default: no time-based flush.
    pub fn log_flush_interval_ms(&self) -> Option<i64> {
        self.get("log.flush.interval.ms")
            .and_then(|v| v.parse().ok())
    }
    pub fn log_index_interval_bytes(&self) -> i64 {
        self.long("log.index.interval.bytes")
    }
    pub fn log_message_timestamp_type(&self) -> String {
        self.get("log.message.timestamp.type")
            .unwrap_or_else(|| "CreateTime".into())
    }

    pub fn offsets_topic_num_partitions(&self) -> i32 {
        self.long("offsets.topic.num.partitions") as i32
    }
    pub fn offsets_topic_segment_bytes(&self) -> i64 {
        self.long("offsets.topic.segment.bytes")
    }
    pub fn offsets_retention_ms(&self) -> i64 {
        self.long("offsets.retention.minutes")
            .saturating_mul(60_000)
    }
    pub fn offsets_retention_check_interval_ms(&self) -> i64 {
        self.long("offsets.retention.check.interval.ms")
    }
    pub fn offset_metadata_max_bytes(&self) -> i64 {
        self.long("offset.metadata.max.bytes")
    }
    pub fn group_initial_rebalance_delay_ms(&self) -> i64 {
        self.long("group.initial.rebalance.delay.ms")
    }
    pub fn group_min_session_timeout_ms(&self) -> i32 {
        self.long("group.min.session.timeout.ms") as i32
    }
    pub fn group_max_session_timeout_ms(&self) -> i32 {
        self.long("group.max.session.timeout.ms") as i32
    }
    pub fn group_max_size(&self) -> i64 {
        self.long("group.max.size")
    }
    pub fn lag_refresh_ms(&self) -> i64 {
        self.long("cairn.lag.refresh.ms")
    }
    pub fn lag_window_samples(&self) -> usize {
        self.long("cairn.lag.window.samples").max(2) as usize
    }

    /// Every broker config, resolved, in definition order (for DescribeConfigs).
    pub fn entries(&self) -> Vec<ConfigEntry> {
        BROKER_DEFS
            .iter()
            .map(|d| ConfigEntry {
                name: d.name,
                value: self.get(d.name),
                source: if self.is_explicit(d.name) {
                    ConfigSource::StaticBroker
                } else {
                    ConfigSource::Default
                },
                def: d,
            })
            .collect()
    }

    /// Resolves a topic's effective configuration: topic overrides, else the broker's synonym.
    pub fn topic_entries(&self, overrides: &BTreeMap<String, String>) -> Vec<ConfigEntry> {
        TOPIC_DEFS
            .iter()
            .map(|d| {
                if let Some(v) = overrides.get(d.name) {
                    return ConfigEntry {
                        name: d.name,
                        value: Some(v.clone()),
                        source: ConfigSource::Topic,
                        def: d,
                    };
                }
                let (value, source) = match d.broker_synonym {
                    Some(syn) => {
                        let v = self.topic_default_from_broker(syn);
                        let explicit = self.synonym_is_explicit(syn);
                        (
                            v,
                            if explicit {
                                ConfigSource::StaticBroker
                            } else {
                                ConfigSource::Default
                            },
                        )
                    }
                    None => (d.default.map(str::to_string), ConfigSource::Default),
                };
                ConfigEntry {
                    name: d.name,
                    value,
                    source,
                    def: d,
                }
            })
            .collect()
    }

    fn synonym_is_explicit(&self, syn: &str) -> bool {
        match syn {
            "log.retention.ms" => [
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours",
            ]
            .iter()
            .any(|k| self.is_explicit(k)),
            "log.roll.ms" => ["log.roll.ms", "log.roll.hours"]
                .iter()
                .any(|k| self.is_explicit(k)),
            k => self.is_explicit(k),
        }
    }

    fn topic_default_from_broker(&self, syn: &str) -> Option<String> {
        match syn {
            "log.retention.ms" => Some(self.log_retention_ms().to_string()),
            "log.roll.ms" => Some(self.log_roll_ms().to_string()),
            k => self.get(k),
        }
    }

    /// The effective value of one topic config.
    pub fn topic_value(&self, overrides: &BTreeMap<String, String>, name: &str) -> Option<String> {
        if let Some(v) = overrides.get(name) {
            return Some(v.clone());
        }
        let d = TOPIC_DEFS.iter().find(|d| d.name == name)?;
        match d.broker_synonym {
            Some(syn) => self.topic_default_from_broker(syn),
            None => d.default.map(str::to_string),
        }
    }
}

/// Validates topic-level overrides as CreateTopics/AlterConfigs receive them.
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (k, v) in configs {
        let def = TOPIC_DEFS
            .iter()
            .find(|d| d.name == k)
            .ok_or_else(|| ConfigError::Unknown(k.clone()))?;
        def.validate(v)?;
    }
    Ok(())
}

/// `PLAINTEXT://host:port` or `host:port` to (host, port).
pub fn parse_listener(s: &str) -> Option<(String, u16)> {
    let s = s.trim();
    let hostport = s.split_once("://").map(|(_, r)| r).unwrap_or(s);
    let (host, port) = hostport.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_match_kafka() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.num_partitions(), 1);
        assert!(c.auto_create_topics());
        assert_eq!(c.message_max_bytes(), 1_048_588);
        assert_eq!(c.fetch_max_bytes(), 57_671_680);
        assert_eq!(c.log_retention_ms(), 168 * 3_600_000);
        assert_eq!(c.log_segment_bytes(), 1 << 30);
        assert_eq!(c.log_retention_bytes(), -1);
        assert_eq!(c.node_id(), 1);
        assert_eq!(c.log_flush_interval_ms(), None);
    }

    #[test]
    fn retention_precedence_is_ms_then_minutes_then_hours() {
        let c = cfg(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")]).unwrap();
        assert_eq!(c.log_retention_ms(), 120_000);
        let c = cfg(&[("log.retention.minutes", "2"), ("log.retention.ms", "5")]).unwrap();
        assert_eq!(c.log_retention_ms(), 5);
        let c = cfg(&[("log.retention.ms", "-1")]).unwrap();
        assert_eq!(c.log_retention_ms(), -1);
    }

    #[test]
    fn bad_value_names_the_key() {
        let e = cfg(&[("num.partitions", "zero")]).unwrap_err();
        assert!(e.to_string().contains("num.partitions"), "{e}");
        let e = cfg(&[("num.partitions", "0")]).unwrap_err();
        assert!(e.to_string().contains("num.partitions"), "{e}");
        let e = cfg(&[("auto.create.topics.enable", "yes")]).unwrap_err();
        assert!(e.to_string().contains("auto.create.topics.enable"));
    }

    #[test]
    fn unknown_keys_are_collected_not_applied() {
        let c = cfg(&[("no.such.key", "1"), ("num.partitions", "3")]).unwrap();
        assert_eq!(c.unknown, vec!["no.such.key".to_string()]);
        assert_eq!(c.num_partitions(), 3);
    }

    #[test]
    fn properties_file_syntax() {
        let p = parse_properties("# c\n\nnum.partitions = 4\nlog.dirs: /x\n").unwrap();
        assert_eq!(p[0], ("num.partitions".into(), "4".into()));
        assert_eq!(p[1], ("log.dirs".into(), "/x".into()));
        assert!(parse_properties("justakey\n").is_err());
    }

    #[test]
    fn topic_entries_follow_broker_synonyms() {
        let c = cfg(&[("log.retention.hours", "1")]).unwrap();
        let mut o = BTreeMap::new();
        o.insert("segment.bytes".to_string(), "1024".to_string());
        let e = c.topic_entries(&o);
        let get = |n: &str| e.iter().find(|x| x.name == n).unwrap();
        assert_eq!(get("retention.ms").value.as_deref(), Some("3600000"));
        assert_eq!(get("retention.ms").source, ConfigSource::StaticBroker);
        assert_eq!(get("segment.bytes").value.as_deref(), Some("1024"));
        assert_eq!(get("segment.bytes").source, ConfigSource::Topic);
        assert_eq!(get("cleanup.policy").source, ConfigSource::Default);
    }

    #[test]
    fn topic_config_validation() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "abc".to_string());
        assert!(validate_topic_configs(&o).is_err());
        let mut o = BTreeMap::new();
        o.insert("bogus".to_string(), "1".to_string());
        assert_eq!(
            validate_topic_configs(&o),
            Err(ConfigError::Unknown("bogus".into()))
        );
        let mut o = BTreeMap::new();
        o.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        assert!(validate_topic_configs(&o).is_ok());
    }

    #[test]
    fn listeners_parse() {
        assert_eq!(
            parse_listener("PLAINTEXT://localhost:9093"),
            Some(("localhost".into(), 9093))
        );
        assert_eq!(parse_listener("1.2.3.4:1"), Some(("1.2.3.4".into(), 1)));
        assert_eq!(parse_listener("nope"), None);
    }
}
