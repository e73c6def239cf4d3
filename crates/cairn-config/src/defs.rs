//! The table of settings Cairn understands: name, type, Kafka's default, range, documentation.

use crate::ConfigError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    Int,
    Long,
    Short,
    String,
    List,
}

impl ConfigType {
    /// DescribeConfigs v3+ `config_type` codes.
    pub fn kafka_code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::List => 7,
        }
    }
}

#[derive(Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    pub default: Option<&'static str>,
    /// Smallest accepted value for numeric settings.
    pub min: Option<i64>,
    /// For strings: the accepted values (case-sensitive, as Kafka).
    pub one_of: &'static [&'static str],
    /// For topic settings: the broker setting that supplies the default.
    pub broker_synonym: Option<&'static str>,
    pub doc: &'static str,
}

impl ConfigDef {
    pub fn validate(&self, value: &str) -> Result<(), ConfigError> {
        let bad = |reason: std::string::String| ConfigError::InvalidValue {
            key: self.name.to_string(),
            value: value.to_string(),
            reason,
        };
        match self.ty {
            ConfigType::Boolean => {
                if value != "true" && value != "false" {
                    return Err(bad("expected true or false".into()));
                }
            }
            ConfigType::Int | ConfigType::Long | ConfigType::Short => {
                let n: i64 = value
                    .parse()
                    .map_err(|_| bad("expected a whole number".into()))?;
                let (lo, hi) = match self.ty {
                    ConfigType::Int => (i32::MIN as i64, i32::MAX as i64),
                    ConfigType::Short => (i16::MIN as i64, i16::MAX as i64),
                    _ => (i64::MIN, i64::MAX),
                };
                if n < lo || n > hi {
                    return Err(bad("out of range for its type".into()));
                }
                if let Some(min) = self.min {
                    if n < min {
                        return Err(bad(format!("must be at least {min}")));
                    }
                }
                check_level(self.name, n).map_err(bad)?;
            }
            ConfigType::String | ConfigType::List => {
                if !self.one_of.is_empty() {
                    let items: Vec<&str> = if self.ty == ConfigType::List {
                        value.split(',').map(str::trim).collect()
                    } else {
                        vec![value]
                    };
                    for it in items {
                        if !self.one_of.contains(&it) {
                            return Err(bad(format!("expected one of {:?}", self.one_of)));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

const fn def(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    min: Option<i64>,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        ty,
        default,
        min,
        one_of: &[],
        broker_synonym: None,
        doc,
    }
}

const LONG_MAX: &str = "9223372036854775807";
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
/// `compression.type` values (topic and broker), as Kafka names them.
const COMPRESSION_TYPES: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];

/// Upper bounds (and gaps) that `min` cannot express: the codec levels of KIP-390.
fn check_level(name: &str, n: i64) -> Result<(), std::string::String> {
    match name {
        "compression.gzip.level" if n != -1 && !(1..=9).contains(&n) => {
            Err("must be -1 or between 1 and 9".into())
        }
        "compression.lz4.level" if n > 17 => Err("must be between 1 and 17".into()),
        "compression.zstd.level" if n > 22 => Err("must be between -131072 and 22".into()),
        _ => Ok(()),
    }
}
/// The server-side assignors Cairn has (Kafka also takes class names; Cairn has no plugins).
const CONSUMER_ASSIGNORS: &[&str] = &["uniform", "range"];
/// Kafka also knows share and streams groups; Cairn serves neither.
const REBALANCE_PROTOCOLS: &[&str] = &["classic", "consumer"];
/// `group.consumer.migration.policy`, compared case-insensitively as Kafka does.
pub const MIGRATION_POLICIES: &[&str] = &["disabled", "downgrade", "upgrade", "bidirectional"];

use ConfigType::*;

pub static BROKER_DEFS: &[ConfigDef] = &[
    def("node.id", Int, Some("1"), Some(0), "The id of this broker."),
    def("broker.id", Int, Some("1"), Some(0), "Older name of node.id."),
    def("listeners", String, None, None, "Address to listen on, e.g. PLAINTEXT://127.0.0.1:9092; --listen takes precedence."),
    def("advertised.listeners", String, None, None, "Address clients are told to connect to; defaults to the listen address."),
    def("log.dirs", String, None, None, "Data directory; --data-dir takes precedence."),
    def("num.partitions", Int, Some("1"), Some(1), "Default partition count for auto-created topics and CreateTopics with -1."),
    def("auto.create.topics.enable", Boolean, Some("true"), None, "Create unknown topics on Metadata and Produce requests."),
    def("default.replication.factor", Short, Some("1"), Some(1), "Replication factor of new topics; a single broker only supports 1."),
    def("message.max.bytes", Int, Some("1048588"), Some(0), "Largest record batch the broker accepts."),
    def("fetch.max.bytes", Int, Some("57671680"), Some(1024), "Most record bytes one Fetch response carries, whatever the request asks (the first batch may exceed it)."),
    def("socket.request.max.bytes", Int, Some("104857600"), Some(1), "Largest request frame; larger frames close the connection."),
    def("connections.max.idle.ms", Long, Some("600000"), Some(-1), "Close connections that have seen no bytes for this long (-1: never)."),
    def("queued.max.request.bytes", Long, Some("-1"), Some(-1), "Bytes of requests buffered across all connections before reads pause; -1 caps at max(256 MiB, socket.request.max.bytes)."),
    def("max.connections", Int, Some("2147483647"), Some(0), "Most connections at once; at the limit the broker stops accepting until one closes."),
    def("max.connections.per.ip", Int, Some("2147483647"), Some(0), "Most connections from one IP address; more are closed at once."),
    def("quota.window.num", Int, Some("11"), Some(1), "Samples a client quota's rate is measured over."),
    def("quota.window.size.seconds", Int, Some("1"), Some(1), "Time span of each sample of a client quota's rate."),
    def("max.connections.per.ip.overrides", String, Some(""), None, "Per-host exceptions to max.connections.per.ip: host:count,host:count."),
    def("cairn.request.read.timeout.ms", Long, Some("60000"), Some(1), "A request frame must arrive whole within this time of its first byte, or the connection is closed."),
    def("listener.security.protocol.map", String, Some("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"), None, "Security protocol of each listener name: NAME:PROTOCOL,... (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)."),
    def("ssl.keystore.type", String, Some("JKS"), None, "Format of the server's key and certificate; Cairn reads PEM."),
    def("ssl.keystore.location", String, None, None, "PEM file holding the server's private key and certificate chain."),
    def("ssl.keystore.key", String, None, None, "The server's private key in PEM, inline (instead of ssl.keystore.location)."),
    def("ssl.keystore.certificate.chain", String, None, None, "The server's certificate chain in PEM, inline (with ssl.keystore.key)."),
    def("ssl.key.password", String, None, None, "Password of an encrypted private key; Cairn reads unencrypted PEM keys only."),
    def("ssl.truststore.type", String, Some("JKS"), None, "Format of the certificates that sign client certificates; Cairn reads PEM."),
    def("ssl.truststore.location", String, None, None, "PEM file of the CA certificates trusted to sign client certificates."),
    def("ssl.truststore.certificates", String, None, None, "The trusted CA certificates in PEM, inline (instead of ssl.truststore.location)."),
    ConfigDef { one_of: &["required", "requested", "none"], ..def("ssl.client.auth", String, Some("none"), None, "Whether TLS clients must (required) or may (requested) present a certificate; its subject becomes the principal.") },
    ConfigDef { one_of: &["TLSv1.2", "TLSv1.3"], ..def("ssl.enabled.protocols", List, Some("TLSv1.2,TLSv1.3"), None, "TLS versions the listeners accept (1.2 and 1.3 only).") },
    ConfigDef { one_of: &["DEFAULT"], ..def("ssl.principal.mapping.rules", String, Some("DEFAULT"), None, "How a client certificate's subject becomes a principal; DEFAULT uses the whole distinguished name.") },
    def("sasl.enabled.mechanisms", List, Some("GSSAPI"), None, "SASL mechanisms the SASL listeners offer: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512."),
    def("sasl.server.max.receive.size", Int, Some("524288"), Some(1), "Largest request before a connection has authenticated; larger frames close it."),
    def("connections.max.reauth.ms", Long, Some("0"), Some(0), "Lifetime of a SASL session; clients must re-authenticate before it ends (0: sessions never expire)."),
    def("connection.failed.authentication.delay.ms", Int, Some("100"), Some(0), "Delay before answering a failed authentication, slowing password guessing."),
    def("authorizer.class.name", String, Some(""), None, "Enables ACLs when set to Kafka's StandardAuthorizer (or the older AclAuthorizer) class name."),
    def("super.users", String, Some(""), None, "Principals allowed everything, separated by ';' (User:admin;User:ops)."),
    def("allow.everyone.if.no.acl.found", Boolean, Some("false"), None, "Allow a request on a resource no ACL matches."),
    def("cairn.tls.handshake.timeout.ms", Long, Some("10000"), Some(1), "A TLS handshake must finish within this time of the connection being accepted, or the connection is closed."),
    def("cairn.http.ssl.enabled", Boolean, Some("false"), None, "Serve the HTTP listener over TLS with the broker's ssl.keystore settings."),
    def("cairn.http.allowed.hosts", List, Some(""), None, "Host header names the HTTP listener answers besides localhost and IP addresses (* for any)."),
    def("cairn.http.read.timeout.ms", Long, Some("10000"), Some(1), "HTTP request headers must arrive within this time of the connection being ready for a request."),
    def("cairn.http.idle.timeout.ms", Long, Some("60000"), Some(1), "HTTP connections on which no bytes move for this long are closed."),
    def("log.segment.bytes", Int, Some("1073741824"), Some(14), "Size at which a partition's active segment is rolled."),
    def("log.roll.ms", Long, None, Some(1), "Age at which a segment is rolled (overrides log.roll.hours)."),
    def("log.roll.hours", Int, Some("168"), Some(1), "Age in hours at which a segment is rolled."),
    def("log.retention.ms", Long, None, Some(-1), "Time retention in ms, -1 for unlimited (overrides minutes and hours)."),
    def("log.retention.minutes", Int, None, Some(-1), "Time retention in minutes (overrides hours)."),
    def("log.retention.hours", Int, Some("168"), Some(-1), "Time retention in hours."),
    def("log.retention.bytes", Long, Some("-1"), Some(-1), "Size retention per partition, -1 for unlimited."),
    def("log.retention.check.interval.ms", Long, Some("300000"), Some(1), "How often retention runs."),
    def("log.flush.interval.messages", Long, Some(LONG_MAX), Some(1), "1 = fsync before acknowledging a produce (power-loss durability, with group commit); otherwise acknowledged data is in the OS page cache and survives a broker crash."),
    def("log.flush.interval.ms", Long, None, Some(0), "If set, dirty partitions are fsynced in the background at this interval."),
    def("log.index.interval.bytes", Int, Some("4096"), Some(0), "Bytes between offset index entries."),
    def("offsets.topic.num.partitions", Int, Some("50"), Some(1), "Partitions of __consumer_offsets; never change it once the topic exists."),
    def("offsets.topic.segment.bytes", Int, Some("104857600"), Some(14), "Segment size of __consumer_offsets; smaller segments let compaction keep replay short."),
    def("offsets.retention.minutes", Int, Some("10080"), Some(1), "How long committed offsets are kept once their group allows expiry."),
    def("offsets.retention.check.interval.ms", Long, Some("600000"), Some(1), "How often expired offsets are removed."),
    def("transaction.state.log.num.partitions", Int, Some("50"), Some(1), "Partitions of __transaction_state; never change it once the topic exists."),
    def("transaction.state.log.segment.bytes", Int, Some("104857600"), Some(14), "Segment size of __transaction_state."),
    def("transaction.max.timeout.ms", Int, Some("900000"), Some(1), "Largest transaction timeout a producer may ask for."),
    def("transactional.id.expiration.ms", Int, Some("604800000"), Some(1), "How long a transactional id without a transaction is kept."),
    def("transaction.abort.timed.out.transaction.cleanup.interval.ms", Int, Some("10000"), Some(1), "How often transactions open longer than their timeout are aborted."),
    def("transaction.remove.expired.transaction.cleanup.interval.ms", Int, Some("3600000"), Some(1), "How often expired transactional ids are removed."),
    def("offset.metadata.max.bytes", Int, Some("4096"), Some(0), "Longest metadata string an offset commit may carry."),
    def("group.initial.rebalance.delay.ms", Int, Some("3000"), Some(0), "How long a new group waits for more members before its first rebalance."),
    def("group.min.session.timeout.ms", Int, Some("6000"), Some(0), "Smallest session timeout a member may ask for."),
    def("group.max.session.timeout.ms", Int, Some("1800000"), Some(0), "Largest session timeout a member may ask for."),
    def("group.max.size", Int, Some("2147483647"), Some(1), "Largest number of members in one classic group."),
    def("group.consumer.heartbeat.interval.ms", Int, Some("5000"), Some(1), "How often members of consumer-protocol groups heartbeat; the broker tells each member."),
    def("group.consumer.min.heartbeat.interval.ms", Int, Some("5000"), Some(1), "Smallest heartbeat interval of consumer-protocol groups."),
    def("group.consumer.max.heartbeat.interval.ms", Int, Some("15000"), Some(1), "Largest heartbeat interval of consumer-protocol groups."),
    def("group.consumer.session.timeout.ms", Int, Some("45000"), Some(1), "A consumer-protocol member not heard from for this long is removed."),
    def("group.consumer.min.session.timeout.ms", Int, Some("45000"), Some(1), "Smallest session timeout of consumer-protocol groups."),
    def("group.consumer.max.session.timeout.ms", Int, Some("60000"), Some(1), "Largest session timeout of consumer-protocol groups."),
    def("group.consumer.max.size", Int, Some("2147483647"), Some(1), "Largest number of members in one consumer-protocol group."),
    ConfigDef { one_of: CONSUMER_ASSIGNORS, ..def("group.consumer.assignors", List, Some("uniform,range"), None, "Server-side assignors of consumer-protocol groups (uniform, range); the first is the default.") },
    def("group.consumer.migration.policy", String, Some("bidirectional"), None, "Online conversion of groups with members between the classic and the consumer protocol: disabled, downgrade, upgrade or bidirectional. upgrade lets a consumer-protocol member join a live classic group; downgrade turns a consumer group back into a classic one when its last consumer-protocol member leaves. Empty groups change protocol whatever the setting."),
    ConfigDef { one_of: REBALANCE_PROTOCOLS, ..def("group.coordinator.rebalance.protocols", List, Some("classic,consumer"), None, "Group protocols served: classic (JoinGroup/SyncGroup) and consumer (ConsumerGroupHeartbeat); classic cannot be left out.") },
    def("cairn.lag.refresh.ms", Long, Some("5000"), Some(100), "How often the broker recomputes consumer lag and group status for /metrics and the HTTP API (one sample per interval)."),
    def("cairn.lag.window.samples", Int, Some("10"), Some(2), "Samples per partition that the group status rule looks at (window = samples x cairn.lag.refresh.ms)."),
    ConfigDef { one_of: &["delete", "compact"], ..def("log.cleanup.policy", List, Some("delete"), None, "Default cleanup.policy of topics: delete (retention), compact, or both.") },
    ConfigDef { one_of: COMPRESSION_TYPES, ..def("compression.type", String, Some("producer"), None, "Default compression.type of topics: producer, uncompressed, gzip, snappy, lz4 or zstd.") },
    def("compression.gzip.level", Int, Some("-1"), Some(-1), "Default compression.gzip.level of topics: 1-9, or -1 for the codec's default."),
    def("compression.lz4.level", Int, Some("9"), Some(1), "Default compression.lz4.level of topics: 1-17."),
    def("compression.zstd.level", Int, Some("3"), Some(-131072), "Default compression.zstd.level of topics: -131072 to 22."),
    ConfigDef {
        name: "log.message.timestamp.type",
        ty: String,
        default: Some("CreateTime"),
        min: None,
        one_of: TIMESTAMP_TYPES,
        broker_synonym: None,
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with broker time.",
    },
];

const fn topic(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    min: Option<i64>,
    broker_synonym: Option<&'static str>,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        ty,
        default,
        min,
        one_of: &[],
        broker_synonym,
        doc,
    }
}

pub static TOPIC_DEFS: &[ConfigDef] = &[
    ConfigDef {
        name: "cleanup.policy",
        ty: List,
        default: Some("delete"),
        min: None,
        one_of: &["delete", "compact"],
        broker_synonym: Some("log.cleanup.policy"),
        doc: "delete: retention removes old segments; compact: keep the newest record per key.",
    },
    ConfigDef {
        name: "compression.type",
        ty: String,
        default: Some("producer"),
        min: None,
        one_of: COMPRESSION_TYPES,
        broker_synonym: Some("compression.type"),
        doc: "Codec of the stored batches: producer keeps the producer's; uncompressed, gzip, snappy, lz4 or zstd makes the broker recompress batches in another codec.",
    },
    topic("compression.gzip.level", Int, Some("-1"), Some(-1), Some("compression.gzip.level"), "Gzip level used when the broker compresses: 1-9, or -1 for the codec's default."),
    topic("compression.lz4.level", Int, Some("9"), Some(1), Some("compression.lz4.level"), "Lz4 level used when the broker compresses: 1-17."),
    topic("compression.zstd.level", Int, Some("3"), Some(-131072), Some("compression.zstd.level"), "Zstd level used when the broker compresses: -131072 to 22."),
    topic(
        "delete.retention.ms",
        Long,
        Some("86400000"),
        Some(0),
        None,
        "How long compacted topics keep tombstones (records with a null value).",
    ),
    topic(
        "retention.ms",
        Long,
        None,
        Some(-1),
        Some("log.retention.ms"),
        "Time retention in ms, -1 for unlimited.",
    ),
    topic(
        "retention.bytes",
        Long,
        None,
        Some(-1),
        Some("log.retention.bytes"),
        "Size retention per partition, -1 for unlimited.",
    ),
    topic(
        "segment.bytes",
        Int,
        None,
        Some(14),
        Some("log.segment.bytes"),
        "Segment roll size.",
    ),
    topic(
        "segment.ms",
        Long,
        None,
        Some(1),
        Some("log.roll.ms"),
        "Segment roll age.",
    ),
    topic(
        "max.message.bytes",
        Int,
        None,
        Some(0),
        Some("message.max.bytes"),
        "Largest record batch accepted for this topic.",
    ),
    topic(
        "segment.index.bytes",
        Int,
        Some("10485760"),
        Some(4),
        None,
        "Maximum index size (informational).",
    ),
    topic(
        "index.interval.bytes",
        Int,
        None,
        Some(0),
        Some("log.index.interval.bytes"),
        "Bytes between offset index entries.",
    ),
    topic(
        "flush.messages",
        Long,
        None,
        Some(1),
        Some("log.flush.interval.messages"),
        "1 = fsync before acknowledging.",
    ),
    topic(
        "min.insync.replicas",
        Int,
        Some("1"),
        Some(1),
        None,
        "Always satisfied by a single broker.",
    ),
    ConfigDef {
        name: "message.timestamp.type",
        ty: String,
        default: None,
        min: None,
        one_of: TIMESTAMP_TYPES,
        broker_synonym: Some("log.message.timestamp.type"),
        doc: "CreateTime or LogAppendTime.",
    },
];

/// Values DescribeConfigs must not show (Kafka's PASSWORD type): keys and JAAS texts with passwords.
pub fn is_sensitive(name: &str) -> bool {
    matches!(name, "ssl.keystore.key" | "ssl.key.password")
        || name.ends_with("sasl.jaas.config")
        || name.ends_with(".password")
}

/// Broker settings Kafka lets IncrementalAlterConfigs change at run time (its
/// `DynamicBrokerConfig.AllDynamicConfigs`) that this broker also applies without a restart.
/// Everything else is read-only here: Kafka's other dynamic keys (listeners, TLS stores,
/// connection limits, flush settings) take effect only on a restart in Cairn, so they are refused
/// rather than stored and silently ignored.
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[
    "log.segment.bytes",
    "log.roll.ms",
    "log.retention.ms",
    "log.retention.bytes",
    "log.index.interval.bytes",
    "log.cleanup.policy",
    "log.message.timestamp.type",
    "message.max.bytes",
];

pub fn is_dynamic(name: &str) -> bool {
    DYNAMIC_BROKER_KEYS.contains(&name)
}

/// Kafka's synonyms of a broker key, in precedence order (the finer unit first).
pub fn broker_synonym_chain(name: &str) -> &'static [&'static str] {
    match name {
        "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        "log.roll.ms" | "log.roll.hours" => &["log.roll.ms", "log.roll.hours"],
        _ => &[],
    }
}

pub fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_DEFS.iter().find(|d| d.name == name)
}
