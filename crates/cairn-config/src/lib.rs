//! Broker and topic configuration under Kafka's own property names.
//!
//! Operators bring their Kafka knowledge: the same keys, the same defaults, the same precedence
//! (`log.retention.ms` over `.minutes` over `.hours`). Unknown keys are reported, bad values refuse
//! to start. The definitions double as the source of truth for DescribeConfigs.

use std::collections::BTreeMap;
use std::path::Path;

mod defs;
mod listeners;
pub use defs::{
    broker_def, broker_synonym_chain, is_dynamic, is_sensitive, ConfigDef, ConfigType, BROKER_DEFS,
    DYNAMIC_BROKER_KEYS, TOPIC_DEFS,
};
pub use listeners::{parse_listener_list, parse_protocol_map, ListenerSpec, SecurityProtocol};

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
    /// Set at run time for this broker (DYNAMIC_BROKER_CONFIG = 2).
    DynamicBroker,
    /// Set at run time as the cluster-wide default (DYNAMIC_DEFAULT_BROKER_CONFIG = 3).
    DynamicDefault,
    /// Set in the broker's properties file or on its command line (STATIC_BROKER_CONFIG = 4).
    StaticBroker,
    /// Nobody set it (DEFAULT_CONFIG = 5).
    Default,
}

impl ConfigSource {
    pub fn kafka_code(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefault => 3,
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

/// One link of a DescribeConfigs synonym chain: a key set at one level.
#[derive(Clone, Debug, PartialEq)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// Why a dynamic broker config change is refused (the broker maps each to Kafka's code).
#[derive(thiserror::Error, Debug, PartialEq)]
pub enum DynamicError {
    #[error("Unknown broker config name: {0}")]
    Unknown(String),
    /// Kafka's wording and its Scala set rendering, which tools match on.
    #[error("Cannot update these configs dynamically: Set({})", .0.join(", "))]
    NotDynamic(Vec<String>),
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// An IncrementalAlterConfigs operation (Kafka's `AlterConfigOp.OpType` ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlterOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl AlterOp {
    pub fn from_id(id: i8) -> Option<AlterOp> {
        Some(match id {
            0 => AlterOp::Set,
            1 => AlterOp::Delete,
            2 => AlterOp::Append,
            3 => AlterOp::Subtract,
            _ => return None,
        })
    }
}

/// Why a list of operations cannot be applied.
#[derive(thiserror::Error, Debug, PartialEq)]
pub enum OpError {
    #[error("Unknown config name: {0}")]
    Unknown(String),
    #[error("Config value append is not allowed for config key: {0}")]
    AppendNotList(String),
    #[error("Config value subtract is not allowed for config key: {0}")]
    SubtractNotList(String),
}

/// Applies incremental operations to a resource's set values, as Kafka's
/// `prepareIncrementalConfigs`: APPEND/SUBTRACT only on list keys, starting from the key's
/// default when it is not set; APPEND skips items already present.
pub fn apply_ops(
    current: &BTreeMap<String, String>,
    ops: &[(String, AlterOp, Option<String>)],
    def_of: impl Fn(&str) -> Option<&'static ConfigDef>,
) -> Result<BTreeMap<String, String>, OpError> {
    let mut out = current.clone();
    for (name, op, value) in ops {
        let def = def_of(name).ok_or_else(|| OpError::Unknown(name.clone()))?;
        let value = value.clone().unwrap_or_default();
        let old_list = |out: &BTreeMap<String, String>| -> Vec<String> {
            out.get(name)
                .cloned()
                .or_else(|| def.default.map(str::to_string))
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        match op {
            AlterOp::Set => {
                out.insert(name.clone(), value);
            }
            AlterOp::Delete => {
                out.remove(name);
            }
            AlterOp::Append => {
                if def.ty != ConfigType::List {
                    return Err(OpError::AppendNotList(name.clone()));
                }
                let mut list = old_list(&out);
                for item in value.split(',') {
                    if !list.iter().any(|x| x == item) {
                        list.push(item.to_string());
                    }
                }
                out.insert(name.clone(), list.join(","));
            }
            AlterOp::Subtract => {
                if def.ty != ConfigType::List {
                    return Err(OpError::SubtractNotList(name.clone()));
                }
                let drop: Vec<&str> = value.split(',').collect();
                let list: Vec<String> = old_list(&out)
                    .into_iter()
                    .filter(|x| !drop.contains(&x.as_str()))
                    .collect();
                out.insert(name.clone(), list.join(","));
            }
        }
    }
    Ok(out)
}

pub fn topic_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_DEFS.iter().find(|d| d.name == name)
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
    /// `listener.name.<listener>.<key>`: per-listener security settings, kept apart because
    /// their names are not fixed.
    listener_overrides: BTreeMap<String, String>,
    /// Keys that are not Kafka broker settings Cairn knows; reported at start-up, never applied.
    pub unknown: Vec<String>,
    /// Set at run time as the cluster-wide default (resource name ""), over the static values.
    dynamic_default: BTreeMap<String, String>,
    /// Set at run time for this broker, over everything else.
    dynamic_broker: BTreeMap<String, String>,
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
            if let Some(rest) = k.strip_prefix("listener.name.") {
                // `<listener>.<key>`: a security setting, or `[<mechanism>.]sasl.jaas.config`.
                let key = rest.split_once('.').map(|(_, key)| key).unwrap_or("");
                if key.ends_with("sasl.jaas.config") {
                    cfg.listener_overrides.insert(k, v);
                    continue;
                }
                if let Some(def) = defs::broker_def(key)
                    .filter(|d| d.name.starts_with("ssl.") || d.name.starts_with("sasl."))
                {
                    def.validate(&v).map_err(|e| match e {
                        ConfigError::InvalidValue { value, reason, .. } => {
                            ConfigError::InvalidValue {
                                key: k.clone(),
                                value,
                                reason,
                            }
                        }
                        other => other,
                    })?;
                    cfg.listener_overrides.insert(k, v);
                    continue;
                }
                if !cfg.unknown.contains(&k) {
                    cfg.unknown.push(k);
                }
                continue;
            }
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
        cfg.check_cross_keys()?;
        Ok(cfg)
    }

    /// Checks that need a whole value parsed or two keys together; the key named in the error is
    /// the one to fix.
    fn check_cross_keys(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::InvalidValue {
            key: key.to_string(),
            value: self.get(key).unwrap_or_default(),
            reason,
        };
        self.listeners(None)?;
        for l in self.advertised_listeners()? {
            let bad = |reason: &str| bad("advertised.listeners", reason.to_string());
            if l.host.is_empty() {
                return Err(bad("needs a host clients can reach"));
            }
            if l.host == "0.0.0.0" || l.host == "::" {
                // Kafka refuses the meta-address too: clients cannot connect to it.
                return Err(bad(
                    "cannot use the non-routable meta-address; give a routable host",
                ));
            }
            if l.port == 0 {
                return Err(bad("port must be 1-65535"));
            }
        }
        // As Kafka: a single request must always fit in the buffered-request budget.
        let queued = self.long("queued.max.request.bytes");
        if queued > 0 && queued < self.socket_request_max_bytes() {
            return Err(bad(
                "queued.max.request.bytes",
                "must be at least socket.request.max.bytes (or -1)".into(),
            ));
        }
        let overrides = parse_ip_overrides(
            &self
                .get("max.connections.per.ip.overrides")
                .unwrap_or_default(),
        )
        .map_err(|r| bad("max.connections.per.ip.overrides", r))?;
        self.check_consumer_group_keys()?;
        if self.long("max.connections.per.ip") == 0 && overrides.is_empty() {
            return Err(bad(
                "max.connections.per.ip",
                "can be 0 only if max.connections.per.ip.overrides is set".into(),
            ));
        }
        Ok(())
    }

    /// Kafka's checks of the consumer group protocol's settings (its GroupCoordinatorConfig),
    /// with Kafka's wording.
    fn check_consumer_group_keys(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::InvalidValue {
            key: key.to_string(),
            value: self.get(key).unwrap_or_default(),
            reason,
        };
        let hb = "group.consumer.heartbeat.interval.ms";
        let hb_min = "group.consumer.min.heartbeat.interval.ms";
        let hb_max = "group.consumer.max.heartbeat.interval.ms";
        let st = "group.consumer.session.timeout.ms";
        let st_min = "group.consumer.min.session.timeout.ms";
        let st_max = "group.consumer.max.session.timeout.ms";
        // (key to fix, holds, what must hold), in Kafka's order.
        let rules = [
            (
                hb_max,
                self.long(hb_max) >= self.long(hb_min),
                format!("must be greater than or equal to {hb_min}"),
            ),
            (
                hb,
                self.long(hb) >= self.long(hb_min),
                format!("must be greater than or equal to {hb_min}"),
            ),
            (
                hb,
                self.long(hb) <= self.long(hb_max),
                format!("must be less than or equal to {hb_max}"),
            ),
            (
                st_max,
                self.long(st_max) >= self.long(st_min),
                format!("must be greater than or equal to {st_min}"),
            ),
            (
                st,
                self.long(st) >= self.long(st_min),
                format!("must be greater than or equal to {st_min}"),
            ),
            (
                st,
                self.long(st) <= self.long(st_max),
                format!("must be less than or equal to {st_max}"),
            ),
            (
                hb,
                self.long(hb) < self.long(st),
                format!("must be less than {st}"),
            ),
        ];
        if let Some((key, _, reason)) = rules.into_iter().find(|(_, ok, _)| !ok) {
            return Err(bad(key, reason));
        }
        let policy = self
            .get("group.consumer.migration.policy")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !defs::MIGRATION_POLICIES.contains(&policy.trim()) {
            return Err(bad(
                "group.consumer.migration.policy",
                format!("expected one of {:?}", defs::MIGRATION_POLICIES),
            ));
        }
        if !self.rebalance_protocols().iter().any(|p| p == "classic") {
            return Err(bad(
                "group.coordinator.rebalance.protocols",
                "disabling the 'classic' protocol is not supported".into(),
            ));
        }
        Ok(())
    }

    /// The effective string value of a broker key: dynamic per broker, dynamic default,
    /// static (file or `-o`), Kafka's default, in that order as in Kafka.
    pub fn get(&self, key: &str) -> Option<String> {
        for layer in [&self.dynamic_broker, &self.dynamic_default, &self.explicit] {
            if let Some(v) = layer.get(key) {
                return Some(v.clone());
            }
        }
        defs::broker_def(key).and_then(|d| d.default.map(str::to_string))
    }

    /// Whether anyone set the key, statically or at run time.
    pub fn is_explicit(&self, key: &str) -> bool {
        self.source(key) != ConfigSource::Default
    }

    /// The level the effective value of a broker key comes from.
    pub fn source(&self, key: &str) -> ConfigSource {
        if self.dynamic_broker.contains_key(key) {
            ConfigSource::DynamicBroker
        } else if self.dynamic_default.contains_key(key) {
            ConfigSource::DynamicDefault
        } else if self.explicit.contains_key(key) {
            ConfigSource::StaticBroker
        } else {
            ConfigSource::Default
        }
    }

    /// The dynamic values of one level: the cluster-wide default or this broker's.
    pub fn dynamic(&self, default: bool) -> &BTreeMap<String, String> {
        if default {
            &self.dynamic_default
        } else {
            &self.dynamic_broker
        }
    }

    /// This configuration with the given dynamic levels in place of the current ones. Every key
    /// must be one this broker changes at run time and valid for its type; the result must
    /// pass the same cross-key checks as a start-up configuration.
    pub fn with_dynamic(
        &self,
        default: BTreeMap<String, String>,
        broker: BTreeMap<String, String>,
    ) -> Result<BrokerConfig, DynamicError> {
        check_dynamic(&default)?;
        check_dynamic(&broker)?;
        let mut next = self.clone();
        next.dynamic_default = default;
        next.dynamic_broker = broker;
        next.check_cross_keys()?;
        Ok(next)
    }

    /// Every level a key (and Kafka's synonyms of it) is set at, highest precedence first, as
    /// DescribeConfigs reports with include_synonyms.
    pub fn synonyms(&self, key: &str) -> Vec<Synonym> {
        let chain = defs::broker_synonym_chain(key);
        let names: Vec<&str> = if chain.is_empty() {
            vec![key]
        } else {
            chain.to_vec()
        };
        let mut out = Vec::new();
        for name in &names {
            for (layer, source) in [
                (&self.dynamic_broker, ConfigSource::DynamicBroker),
                (&self.dynamic_default, ConfigSource::DynamicDefault),
                (&self.explicit, ConfigSource::StaticBroker),
            ] {
                if let Some(v) = layer.get(*name) {
                    out.push(Synonym {
                        name: name.to_string(),
                        value: Some(v.clone()),
                        source,
                    });
                }
            }
        }
        for name in &names {
            if let Some(d) = defs::broker_def(name).filter(|d| d.default.is_some()) {
                out.push(Synonym {
                    name: name.to_string(),
                    value: d.default.map(str::to_string),
                    source: ConfigSource::Default,
                });
            }
        }
        out
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
    /// `None`: idle connections are never closed.
    pub fn connections_max_idle_ms(&self) -> Option<u64> {
        let v = self.long("connections.max.idle.ms");
        (v >= 0).then_some(v as u64)
    }
    /// The budget for request bytes buffered across all connections. Kafka's default (-1) is
    /// unbounded; Cairn keeps every valid request servable but caps memory at
    /// max(256 MiB, socket.request.max.bytes).
    pub fn queued_max_request_bytes(&self) -> u64 {
        let v = self.long("queued.max.request.bytes");
        if v > 0 {
            v as u64
        } else {
            (256u64 << 20).max(self.socket_request_max_bytes().max(0) as u64)
        }
    }
    pub fn max_connections(&self) -> usize {
        self.long("max.connections").max(0) as usize
    }
    /// Client quotas' sampling: (quota.window.num, quota.window.size.seconds in ms).
    pub fn quota_window(&self) -> (u32, i64) {
        (
            self.long("quota.window.num").clamp(1, 1000) as u32,
            self.long("quota.window.size.seconds").clamp(1, 86_400) * 1000,
        )
    }
    pub fn max_connections_per_ip(&self) -> u32 {
        self.long("max.connections.per.ip").max(0) as u32
    }
    /// (host, limit) pairs; hosts are resolved by the broker.
    pub fn max_connections_per_ip_overrides(&self) -> Vec<(String, u32)> {
        parse_ip_overrides(
            &self
                .get("max.connections.per.ip.overrides")
                .unwrap_or_default(),
        )
        .unwrap_or_default()
    }
    pub fn request_read_timeout_ms(&self) -> u64 {
        self.long("cairn.request.read.timeout.ms").max(1) as u64
    }
    pub fn tls_handshake_timeout_ms(&self) -> u64 {
        self.long("cairn.tls.handshake.timeout.ms").max(1) as u64
    }
    pub fn http_allowed_hosts(&self) -> Vec<String> {
        self.get("cairn.http.allowed.hosts")
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect()
    }
    pub fn http_read_timeout_ms(&self) -> u64 {
        self.long("cairn.http.read.timeout.ms").max(1) as u64
    }
    pub fn http_idle_timeout_ms(&self) -> u64 {
        self.long("cairn.http.idle.timeout.ms").max(1) as u64
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
    pub fn transaction_state_log_num_partitions(&self) -> i32 {
        self.long("transaction.state.log.num.partitions") as i32
    }
    pub fn transaction_state_log_segment_bytes(&self) -> i64 {
        self.long("transaction.state.log.segment.bytes")
    }
    pub fn transaction_max_timeout_ms(&self) -> i32 {
        self.long("transaction.max.timeout.ms") as i32
    }
    pub fn transactional_id_expiration_ms(&self) -> i64 {
        self.long("transactional.id.expiration.ms")
    }
    pub fn transaction_abort_check_interval_ms(&self) -> i64 {
        self.long("transaction.abort.timed.out.transaction.cleanup.interval.ms")
    }
    pub fn transaction_remove_expired_interval_ms(&self) -> i64 {
        self.long("transaction.remove.expired.transaction.cleanup.interval.ms")
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
    pub fn group_consumer_heartbeat_interval_ms(&self) -> i32 {
        self.long("group.consumer.heartbeat.interval.ms") as i32
    }
    pub fn group_consumer_min_heartbeat_interval_ms(&self) -> i32 {
        self.long("group.consumer.min.heartbeat.interval.ms") as i32
    }
    pub fn group_consumer_max_heartbeat_interval_ms(&self) -> i32 {
        self.long("group.consumer.max.heartbeat.interval.ms") as i32
    }
    pub fn group_consumer_session_timeout_ms(&self) -> i32 {
        self.long("group.consumer.session.timeout.ms") as i32
    }
    pub fn group_consumer_min_session_timeout_ms(&self) -> i32 {
        self.long("group.consumer.min.session.timeout.ms") as i32
    }
    pub fn group_consumer_max_session_timeout_ms(&self) -> i32 {
        self.long("group.consumer.max.session.timeout.ms") as i32
    }
    pub fn group_consumer_max_size(&self) -> i64 {
        self.long("group.consumer.max.size")
    }
    /// Server-side assignor names in order; the first is the default.
    pub fn group_consumer_assignors(&self) -> Vec<String> {
        split_list(&self.get("group.consumer.assignors").unwrap_or_default())
    }
    /// One of `disabled`, `downgrade`, `upgrade`, `bidirectional` (lower case).
    pub fn group_consumer_migration_policy(&self) -> String {
        self.get("group.consumer.migration.policy")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }
    pub fn rebalance_protocols(&self) -> Vec<String> {
        split_list(
            &self
                .get("group.coordinator.rebalance.protocols")
                .unwrap_or_default(),
        )
    }
    /// Whether ConsumerGroupHeartbeat and ConsumerGroupDescribe are served.
    pub fn consumer_protocol_enabled(&self) -> bool {
        self.rebalance_protocols().iter().any(|p| p == "consumer")
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
                source: self.source(d.name),
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
                    Some(syn) => (
                        self.topic_default_from_broker(syn),
                        self.synonyms(syn)
                            .first()
                            .map_or(ConfigSource::Default, |s| s.source),
                    ),
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

    /// A topic key's synonym chain for DescribeConfigs: its override, then the broker levels
    /// of the broker key that supplies its default.
    pub fn topic_synonyms(&self, overrides: &BTreeMap<String, String>, name: &str) -> Vec<Synonym> {
        let mut out = Vec::new();
        if let Some(v) = overrides.get(name) {
            out.push(Synonym {
                name: name.to_string(),
                value: Some(v.clone()),
                source: ConfigSource::Topic,
            });
        }
        match topic_def(name) {
            Some(ConfigDef {
                broker_synonym: Some(syn),
                ..
            }) => out.extend(self.synonyms(syn)),
            Some(d) if d.default.is_some() => out.push(Synonym {
                name: name.to_string(),
                value: d.default.map(str::to_string),
                source: ConfigSource::Default,
            }),
            _ => {}
        }
        out
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

/// Dynamic broker values: known keys this broker changes at run time, each valid for its type.
fn check_dynamic(values: &BTreeMap<String, String>) -> Result<(), DynamicError> {
    if let Some(k) = values.keys().find(|k| defs::broker_def(k).is_none()) {
        return Err(DynamicError::Unknown(k.clone()));
    }
    let fixed: Vec<String> = values
        .keys()
        .filter(|k| !defs::is_dynamic(k))
        .cloned()
        .collect();
    if !fixed.is_empty() {
        return Err(DynamicError::NotDynamic(fixed));
    }
    for (k, v) in values {
        if let Some(d) = defs::broker_def(k) {
            d.validate(v)?;
        }
    }
    Ok(())
}

/// A list setting's items, trimmed, empty ones dropped.
fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
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

/// One entry of `listeners` or `advertised.listeners`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// The listener name before `://`, if any (`PLAINTEXT`, or a custom name).
    pub name: Option<String>,
    /// Without brackets; empty means "every interface" in `listeners`.
    pub host: String,
    pub port: u16,
}

/// `NAME://host:port` (Kafka's form) or `host:port`; IPv6 hosts may be bracketed.
pub fn parse_listener(s: &str) -> Result<Listener, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty listener entry".into());
    }
    let (name, hostport) = match s.split_once("://") {
        Some((n, r)) => {
            if n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!("bad listener name {n:?}"));
            }
            (Some(n.to_string()), r)
        }
        None => (None, s),
    };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed '['"))?;
        let p = after
            .strip_prefix(':')
            .ok_or_else(|| format!("{s:?}: expected [host]:port"))?;
        (h, p)
    } else {
        hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected PLAINTEXT://host:port or host:port"))?
    };
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._:%".contains(c))
    {
        return Err(format!("{s:?}: bad host {host:?}"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{s:?}: port must be a number 0-65535"))?;
    Ok(Listener {
        name,
        host: host.to_string(),
        port,
    })
}

/// `host:count,host:count` (Kafka's `max.connections.per.ip.overrides`).
fn parse_ip_overrides(v: &str) -> Result<Vec<(String, u32)>, String> {
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (host, n) = item
            .rsplit_once(':')
            .ok_or_else(|| format!("{item:?}: expected host:count"))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{item:?}: empty host"));
        }
        let n = n
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= i32::MAX as u32)
            .ok_or_else(|| format!("{item:?}: count must be a whole number >= 0"))?;
        out.push((host.to_string(), n));
    }
    Ok(out)
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
    fn consumer_group_settings_follow_kafkas_rules() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.group_consumer_heartbeat_interval_ms(), 5000);
        assert_eq!(c.group_consumer_session_timeout_ms(), 45000);
        assert_eq!(c.group_consumer_max_size(), i32::MAX as i64);
        assert_eq!(c.group_consumer_assignors(), vec!["uniform", "range"]);
        assert_eq!(c.group_consumer_migration_policy(), "bidirectional");
        assert!(c.consumer_protocol_enabled());
        let err = |pairs: &[(&str, &str)], key: &str| {
            let e = cfg(pairs).unwrap_err().to_string();
            assert!(e.contains(key), "{pairs:?}: {e}");
        };
        // The interval must stay below the session timeout, both within their bounds.
        err(
            &[
                ("group.consumer.max.heartbeat.interval.ms", "60000"),
                ("group.consumer.heartbeat.interval.ms", "50000"),
            ],
            "must be less than group.consumer.session.timeout.ms",
        );
        err(
            &[("group.consumer.heartbeat.interval.ms", "4000")],
            "greater than or equal to group.consumer.min.heartbeat",
        );
        err(
            &[("group.consumer.heartbeat.interval.ms", "16000")],
            "less than or equal to group.consumer.max.heartbeat",
        );
        err(
            &[("group.consumer.session.timeout.ms", "70000")],
            "less than or equal to group.consumer.max.session",
        );
        err(
            &[("group.consumer.max.session.timeout.ms", "40000")],
            "group.consumer.max.session.timeout.ms",
        );
        err(
            &[("group.consumer.assignors", "uniform,sticky")],
            "group.consumer.assignors",
        );
        err(
            &[("group.consumer.assignors", "")],
            "group.consumer.assignors",
        );
        err(
            &[("group.consumer.migration.policy", "sideways")],
            "group.consumer.migration.policy",
        );
        err(
            &[("group.coordinator.rebalance.protocols", "consumer")],
            "classic",
        );
        err(
            &[("group.coordinator.rebalance.protocols", "classic,share")],
            "group.coordinator.rebalance.protocols",
        );
        let c = cfg(&[
            ("group.consumer.heartbeat.interval.ms", "1000"),
            ("group.consumer.min.heartbeat.interval.ms", "1000"),
            ("group.consumer.assignors", "range, uniform"),
            ("group.consumer.migration.policy", "Upgrade"),
            ("group.coordinator.rebalance.protocols", "classic"),
        ])
        .unwrap();
        assert_eq!(c.group_consumer_heartbeat_interval_ms(), 1000);
        assert_eq!(c.group_consumer_assignors(), vec!["range", "uniform"]);
        assert_eq!(c.group_consumer_migration_policy(), "upgrade");
        assert!(!c.consumer_protocol_enabled());
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dynamic_levels_take_precedence_over_static_and_default() {
        let c = cfg(&[("log.retention.hours", "5"), ("message.max.bytes", "1000")]).unwrap();
        assert_eq!(c.source("message.max.bytes"), ConfigSource::StaticBroker);
        let d = c
            .with_dynamic(
                map(&[("message.max.bytes", "2000"), ("log.segment.bytes", "4096")]),
                map(&[("message.max.bytes", "3000")]),
            )
            .unwrap();
        assert_eq!(d.message_max_bytes(), 3000);
        assert_eq!(d.source("message.max.bytes"), ConfigSource::DynamicBroker);
        assert_eq!(d.log_segment_bytes(), 4096);
        assert_eq!(d.source("log.segment.bytes"), ConfigSource::DynamicDefault);
        assert_eq!(d.source("log.retention.hours"), ConfigSource::StaticBroker);
        assert_eq!(d.source("num.partitions"), ConfigSource::Default);
        let syn: Vec<(String, ConfigSource)> = d
            .synonyms("message.max.bytes")
            .into_iter()
            .map(|s| (s.value.unwrap(), s.source))
            .collect();
        assert_eq!(
            syn,
            vec![
                ("3000".into(), ConfigSource::DynamicBroker),
                ("2000".into(), ConfigSource::DynamicDefault),
                ("1000".into(), ConfigSource::StaticBroker),
                ("1048588".into(), ConfigSource::Default),
            ]
        );
        // A dynamic log.retention.ms beats a static log.retention.hours, as in Kafka.
        let r = c
            .with_dynamic(map(&[("log.retention.ms", "60000")]), BTreeMap::new())
            .unwrap();
        assert_eq!(r.log_retention_ms(), 60000);
        let e = r.topic_entries(&BTreeMap::new());
        let ret = e.iter().find(|x| x.name == "retention.ms").unwrap();
        assert_eq!(ret.value.as_deref(), Some("60000"));
        assert_eq!(ret.source, ConfigSource::DynamicDefault);
        let chain = r.topic_synonyms(&map(&[("retention.ms", "5")]), "retention.ms");
        let names: Vec<_> = chain.iter().map(|s| (s.name.as_str(), s.source)).collect();
        assert_eq!(
            names,
            vec![
                ("retention.ms", ConfigSource::Topic),
                ("log.retention.ms", ConfigSource::DynamicDefault),
                ("log.retention.hours", ConfigSource::StaticBroker),
                ("log.retention.hours", ConfigSource::Default),
            ]
        );
        // Taking the dynamic value away falls back to the static one.
        let back = r.with_dynamic(BTreeMap::new(), BTreeMap::new()).unwrap();
        assert_eq!(back.log_retention_ms(), 5 * 3_600_000);
    }

    #[test]
    fn dynamic_changes_are_checked() {
        let c = cfg(&[]).unwrap();
        let err = |pairs: &[(&str, &str)]| c.with_dynamic(map(pairs), BTreeMap::new()).unwrap_err();
        assert_eq!(
            err(&[("no.such", "1")]),
            DynamicError::Unknown("no.such".into())
        );
        let e = err(&[("num.partitions", "3"), ("advertised.listeners", "x:1")]);
        assert_eq!(
            e.to_string(),
            "Cannot update these configs dynamically: Set(advertised.listeners, num.partitions)"
        );
        assert!(matches!(
            err(&[("log.retention.ms", "soon")]),
            DynamicError::Invalid(_)
        ));
        assert!(matches!(
            err(&[("log.cleanup.policy", "shred")]),
            DynamicError::Invalid(_)
        ));
        assert!(c
            .with_dynamic(
                BTreeMap::new(),
                map(&[("log.cleanup.policy", "compact,delete")])
            )
            .is_ok());
    }

    #[test]
    fn incremental_operations_follow_kafka() {
        let cur = map(&[("cleanup.policy", "delete"), ("retention.ms", "5")]);
        let op = |n: &str, o: AlterOp, v: Option<&str>| (n.to_string(), o, v.map(str::to_string));
        let out = apply_ops(
            &cur,
            &[
                op("cleanup.policy", AlterOp::Append, Some("compact,delete")),
                op("retention.ms", AlterOp::Delete, None),
                op("segment.bytes", AlterOp::Set, Some("1024")),
            ],
            topic_def,
        )
        .unwrap();
        assert_eq!(
            out,
            map(&[
                ("cleanup.policy", "delete,compact"),
                ("segment.bytes", "1024")
            ])
        );
        let out = apply_ops(
            &out,
            &[op("cleanup.policy", AlterOp::Subtract, Some("delete"))],
            topic_def,
        )
        .unwrap();
        assert_eq!(out["cleanup.policy"], "compact");
        // An unset list starts from its default.
        let out = apply_ops(
            &BTreeMap::new(),
            &[op("cleanup.policy", AlterOp::Append, Some("compact"))],
            topic_def,
        )
        .unwrap();
        assert_eq!(out["cleanup.policy"], "delete,compact");
        assert_eq!(
            apply_ops(
                &cur,
                &[op("retention.ms", AlterOp::Append, Some("1"))],
                topic_def
            ),
            Err(OpError::AppendNotList("retention.ms".into()))
        );
        assert_eq!(
            apply_ops(
                &cur,
                &[op("retention.ms", AlterOp::Subtract, Some("1"))],
                topic_def
            ),
            Err(OpError::SubtractNotList("retention.ms".into()))
        );
        assert_eq!(
            apply_ops(&cur, &[op("bogus", AlterOp::Set, Some("1"))], topic_def),
            Err(OpError::Unknown("bogus".into()))
        );
        assert_eq!(AlterOp::from_id(4), None);
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
        let ls = |v: &str| {
            cfg(&[("listeners", v)]).map(|c| {
                c.listeners(None)
                    .unwrap()
                    .into_iter()
                    .map(|l| (l.name, l.host, l.port, l.protocol))
                    .collect::<Vec<_>>()
            })
        };
        use SecurityProtocol::*;
        assert_eq!(
            ls("PLAINTEXT://localhost:9093").unwrap(),
            vec![("PLAINTEXT".into(), "localhost".into(), 9093, Plaintext)]
        );
        assert_eq!(
            ls("1.2.3.4:1").unwrap(),
            vec![("PLAINTEXT".into(), "1.2.3.4".into(), 1, Plaintext)]
        );
        assert_eq!(ls("PLAINTEXT://[::1]:9092").unwrap()[0].1, "::1");
        assert_eq!(
            ls("SSL://a:1,sasl_ssl://b:2").unwrap(),
            vec![
                ("SSL".into(), "a".into(), 1, Ssl),
                ("SASL_SSL".into(), "b".into(), 2, SaslSsl)
            ]
        );
        assert_eq!(ls("PLAINTEXT://:9092").unwrap()[0].1, "");
        assert_eq!(ls("a:1,").unwrap().len(), 1);
        for bad in [
            "nope",
            "garbage",
            "a:b",
            "host:70000",
            "CUSTOM://a:1",
            "",
            " , ",
            "x y:1",
            "://a:1",
            "PLAINTEXT://a:1,PLAINTEXT://b:2",
            "PLAINTEXT://a:1,SSL://a:1",
        ] {
            let e = ls(bad).unwrap_err();
            assert!(e.to_string().contains("listeners"), "{bad}: {e}");
        }
        // Custom names through the protocol map, as Kafka.
        let c = cfg(&[
            ("listeners", "INTERNAL://a:1,EXTERNAL://b:2"),
            (
                "listener.security.protocol.map",
                "INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL",
            ),
        ])
        .unwrap();
        let l = c.listeners(None).unwrap();
        assert_eq!((l[0].protocol, l[1].protocol), (Plaintext, SaslSsl));
        // --listen wins over `listeners`.
        assert_eq!(c.listeners(Some("127.0.0.1:5")).unwrap()[0].port, 5);
        assert_eq!(cfg(&[]).unwrap().listeners(None).unwrap()[0].port, 9092);
    }

    #[test]
    fn listener_prefixed_settings() {
        let c = cfg(&[
            ("ssl.client.auth", "none"),
            ("listener.name.sasl_ssl.ssl.client.auth", "required"),
            (
                "listener.name.sasl_ssl.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required;",
            ),
        ])
        .unwrap();
        assert_eq!(
            c.listener_value("SASL_SSL", "ssl.client.auth").as_deref(),
            Some("required")
        );
        assert_eq!(
            c.listener_value("SSL", "ssl.client.auth").as_deref(),
            Some("none")
        );
        assert!(c.jaas_config("SASL_SSL", "PLAIN").is_some());
        assert!(c.jaas_config("SASL_SSL", "SCRAM-SHA-256").is_none());
        let e = cfg(&[("listener.name.x.ssl.client.auth", "always")]).unwrap_err();
        assert!(
            e.to_string().contains("listener.name.x.ssl.client.auth"),
            "{e}"
        );
        assert!(is_sensitive("ssl.keystore.key"));
        assert!(is_sensitive("listener.name.x.plain.sasl.jaas.config"));
    }

    #[test]
    fn bad_listeners_stop_the_start_naming_the_key() {
        for (k, v) in [
            ("advertised.listeners", "garbage"),
            ("advertised.listeners", "PLAINTEXT://0.0.0.0:9092"),
            ("advertised.listeners", "PLAINTEXT://:9092"),
            ("advertised.listeners", "OTHER://h:9093"),
            ("listeners", "garbage"),
        ] {
            let e = cfg(&[(k, v)]).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
        let c = cfg(&[("listeners", "PLAINTEXT://:9093")]).unwrap();
        assert_eq!(c.listeners(None).unwrap()[0].bind_address(), "0.0.0.0:9093");
        let c = cfg(&[("listeners", "PLAINTEXT://[::1]:9093")]).unwrap();
        assert_eq!(c.listeners(None).unwrap()[0].bind_address(), "[::1]:9093");
        let c = cfg(&[("advertised.listeners", "broker.example:19092")]).unwrap();
        let a = c.advertised_listeners().unwrap();
        assert_eq!((a[0].host.as_str(), a[0].port), ("broker.example", 19092));
    }

    #[test]
    fn connection_limits_follow_kafka() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.connections_max_idle_ms(), Some(600_000));
        assert_eq!(c.max_connections(), i32::MAX as usize);
        assert_eq!(c.max_connections_per_ip(), i32::MAX as u32);
        assert_eq!(c.queued_max_request_bytes(), 256 << 20);
        let c = cfg(&[("socket.request.max.bytes", "536870912")]).unwrap();
        assert_eq!(c.queued_max_request_bytes(), 512 << 20);
        let c = cfg(&[("connections.max.idle.ms", "-1")]).unwrap();
        assert_eq!(c.connections_max_idle_ms(), None);
        // A request must always fit in the budget.
        let e = cfg(&[("queued.max.request.bytes", "1000")]).unwrap_err();
        assert!(e.to_string().contains("queued.max.request.bytes"), "{e}");
        let c = cfg(&[
            ("queued.max.request.bytes", "2000000"),
            ("socket.request.max.bytes", "1000000"),
        ])
        .unwrap();
        assert_eq!(c.queued_max_request_bytes(), 2_000_000);
        let e = cfg(&[("max.connections.per.ip", "0")]).unwrap_err();
        assert!(e.to_string().contains("max.connections.per.ip"), "{e}");
        let c = cfg(&[
            ("max.connections.per.ip", "0"),
            ("max.connections.per.ip.overrides", "127.0.0.1:5, [::1]:2"),
        ])
        .unwrap();
        assert_eq!(
            c.max_connections_per_ip_overrides(),
            vec![("127.0.0.1".into(), 5), ("::1".into(), 2)]
        );
        let e = cfg(&[("max.connections.per.ip.overrides", "127.0.0.1")]).unwrap_err();
        assert!(
            e.to_string().contains("max.connections.per.ip.overrides"),
            "{e}"
        );
    }
}
