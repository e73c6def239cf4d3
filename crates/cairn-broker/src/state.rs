//! What every handler shares: configuration, the store, the broker's identity, fetch wake-ups.

use std::sync::Arc;

use cairn_config::BrokerConfig;
use cairn_log::{batch, LogConfig, Store, TimestampType, TopicMeta};
use tokio::sync::watch;

use crate::flusher::Flusher;
use crate::groups::Groups;
use crate::metrics::Metrics;

pub struct BrokerState {
    pub config: Arc<BrokerConfig>,
    pub store: Arc<Store>,
    pub node_id: i32,
    /// Bumped after every append so parked fetches re-check their partitions.
    pub appended: watch::Sender<u64>,
    /// Present in the fsync-before-acknowledge mode.
    pub flusher: Option<Flusher>,
    /// The group coordinator and offset manager.
    pub groups: Arc<Groups>,
    pub txns: Arc<crate::txns::Txns>,
    pub metrics: Arc<Metrics>,
    /// Credentials, ACLs and the authorization check.
    pub security: Arc<crate::security::Security>,
    /// Topics as consumer groups see them, rebuilt only after a change.
    pub topics: crate::topics_view::TopicsView,
    /// The dynamic broker configs and the configuration in force with them; `config` stays the
    /// static start-up configuration.
    pub dynamic: Arc<crate::dynamic_config::DynamicConfigs>,
    /// Client quotas: the durable set and the rates measured against it.
    pub quotas: Arc<crate::quotas::ClientQuotas>,
}

impl BrokerState {
    pub fn notify_append(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A topic's log settings: its overrides, else the broker's defaults (Kafka's synonym rules).
pub fn log_config_for(cfg: &BrokerConfig, topic: &TopicMeta) -> LogConfig {
    let num = |name: &str, fallback: i64| -> i64 {
        cfg.topic_value(&topic.configs, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(fallback)
    };
    let d = LogConfig::default();
    let policies = cfg.topic_value(&topic.configs, "cleanup.policy");
    let policy = |name: &str, fallback: bool| {
        policies
            .as_deref()
            .map_or(fallback, |p| p.split(',').any(|p| p.trim() == name))
    };
    LogConfig {
        segment_bytes: num("segment.bytes", d.segment_bytes as i64).max(14) as u64,
        segment_ms: num("segment.ms", d.segment_ms),
        retention_ms: num("retention.ms", d.retention_ms),
        retention_bytes: num("retention.bytes", d.retention_bytes),
        index_interval_bytes: num("index.interval.bytes", d.index_interval_bytes as i64).max(0)
            as u32,
        max_message_bytes: num("max.message.bytes", d.max_message_bytes as i64).max(0) as u32,
        timestamp_type: match cfg
            .topic_value(&topic.configs, "message.timestamp.type")
            .as_deref()
        {
            Some("LogAppendTime") => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        },
        cleanup_compact: policy("compact", false),
        cleanup_delete: policy("delete", true),
        delete_retention_ms: num("delete.retention.ms", d.delete_retention_ms),
        compression: cfg
            .topic_value(&topic.configs, "compression.type")
            .as_deref()
            .and_then(batch::Compression::from_config_name)
            .map(|compression| {
                let level = match compression {
                    batch::Compression::Gzip => num("compression.gzip.level", -1),
                    batch::Compression::Lz4 => num("compression.lz4.level", 9),
                    batch::Compression::Zstd => num("compression.zstd.level", 3),
                    _ => 0,
                };
                batch::Codec {
                    compression,
                    level: level as i32,
                }
            }),
    }
}
