//! The broker's metrics registry. Request, byte, error, connection, commit and rebalance metrics
//! are updated where things happen; lag metrics are read from the latest lag snapshot at scrape
//! time (see `lag.rs`). Every metric is documented in `docs/observability.md`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use cairn_group::GroupType;

use crate::lag::{GroupLag, PartitionLag, SnapshotCell, Status};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabel {
    api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~52 s: covers a produce on loopback as well as a JoinGroup parked for a rebalance.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

fn rebalance_histogram() -> Histogram {
    // 10 ms .. ~5.5 min: rebalances wait for session and rebalance timeouts.
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    /// The lag series change only when a new snapshot is taken (every few seconds) but are most of
    /// a scrape's size with many groups, so they are rendered once per snapshot and reused.
    lag_registry: Registry,
    lag: Arc<SnapshotCell>,
    lag_text: parking_lot::Mutex<Option<(Arc<crate::lag::LagSnapshot>, String)>>,
    /// Per API key number, so the request path does no label hashing or allocation.
    per_api: HashMap<i16, (Counter, Histogram)>,
    bytes_in: Family<TopicLabel, Counter>,
    bytes_out: Family<TopicLabel, Counter>,
    produce_errors: Family<ErrorLabel, Counter>,
    fetch_errors: Family<ErrorLabel, Counter>,
    connections: Gauge,
    connections_accepted: Counter,
    offset_commits: Counter,
    commit_failures: Family<ErrorLabel, Counter>,
    rebalances: Family<CauseLabel, Counter>,
    rebalance_seconds: HistogramFamily<PhaseLabel>,
    /// Transactions completed, by outcome (committed, aborted), and those the broker aborted
    /// because they outlived their timeout.
    transactions: Family<OutcomeLabel, Counter>,
    transactions_timed_out: Counter,
    /// Open transactions (ongoing or prepared), counted at scrape time by the driver.
    transactions_open: Gauge,
    /// Responses that told a client to wait for its quota, and the milliseconds it was told.
    quota_throttles: Family<QuotaLabel, Counter>,
    quota_throttle_ms: Family<QuotaLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabel {
    quota: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new(lag: Arc<SnapshotCell>) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<ApiLabel, Counter>::default();
        let request_seconds: HistogramFamily<ApiLabel> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "cairn_requests",
            "Requests handled, by API",
            requests.clone(),
        );
        registry.register(
            "cairn_request_duration_seconds",
            "Time from a decoded request header to an encoded response, by API",
            request_seconds.clone(),
        );
        let per_api = crate::versions::SUPPORTED
            .iter()
            .map(|(key, _, _)| {
                let label = ApiLabel {
                    api: format!("{key:?}"),
                };
                (
                    *key as i16,
                    (
                        requests.get_or_create(&label).clone(),
                        request_seconds.get_or_create(&label).clone(),
                    ),
                )
            })
            .collect();
        let mut lag_registry = Registry::default();
        lag_registry.register_collector(Box::new(LagCollector(lag.clone())));
        let m = Metrics {
            registry,
            lag_registry,
            lag,
            lag_text: parking_lot::Mutex::new(None),
            per_api,
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            produce_errors: Family::default(),
            fetch_errors: Family::default(),
            connections: Gauge::default(),
            connections_accepted: Counter::default(),
            offset_commits: Counter::default(),
            commit_failures: Family::default(),
            rebalances: Family::default(),
            rebalance_seconds: Family::new_with_constructor(rebalance_histogram),
            transactions: Family::default(),
            transactions_timed_out: Counter::default(),
            transactions_open: Gauge::default(),
            quota_throttles: Family::default(),
            quota_throttle_ms: Family::default(),
        };
        let mut m = m;
        let r = &mut m.registry;
        r.register(
            "cairn_client_quota_throttles",
            "Responses that throttled a client for its quota, by quota (produce, fetch, request)",
            m.quota_throttles.clone(),
        );
        r.register(
            "cairn_client_quota_throttle_ms",
            "Milliseconds clients were throttled for their quotas, by quota",
            m.quota_throttle_ms.clone(),
        );
        r.register(
            "cairn_topic_bytes_in",
            "Record batch bytes appended by Produce, by topic",
            m.bytes_in.clone(),
        );
        r.register(
            "cairn_topic_bytes_out",
            "Record batch bytes returned by Fetch, by topic",
            m.bytes_out.clone(),
        );
        r.register(
            "cairn_produce_errors",
            "Produce partition errors, by Kafka error name",
            m.produce_errors.clone(),
        );
        r.register(
            "cairn_fetch_errors",
            "Fetch partition errors, by Kafka error name",
            m.fetch_errors.clone(),
        );
        r.register(
            "cairn_connections",
            "Open client connections",
            m.connections.clone(),
        );
        r.register(
            "cairn_connections_accepted",
            "Client connections accepted since start",
            m.connections_accepted.clone(),
        );
        r.register(
            "cairn_offset_commits",
            "Partition offsets committed",
            m.offset_commits.clone(),
        );
        r.register(
            "cairn_offset_commit_failures",
            "Partition offset commits refused, by Kafka error name",
            m.commit_failures.clone(),
        );
        r.register(
            "cairn_group_rebalances",
            "Rebalances ended, by cause",
            m.rebalances.clone(),
        );
        r.register(
            "cairn_group_rebalance_duration_seconds",
            "Duration of rebalances that reached Stable: total, preparing and completing phases",
            m.rebalance_seconds.clone(),
        );
        r.register(
            "cairn_transactions",
            "Transactions completed (markers written), by outcome",
            m.transactions.clone(),
        );
        r.register(
            "cairn_transactions_timed_out",
            "Transactions the broker aborted because they outlived their transaction.timeout.ms",
            m.transactions_timed_out.clone(),
        );
        r.register(
            "cairn_transactions_open",
            "Transactions ongoing or prepared (not yet completed)",
            m.transactions_open.clone(),
        );
        m
    }

    pub fn transaction_completed(&self, commit: bool) {
        let outcome = if commit { "committed" } else { "aborted" };
        self.transactions
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn transaction_timed_out(&self) {
        self.transactions_timed_out.inc();
    }

    pub fn set_transactions_open(&self, n: usize) {
        self.transactions_open.set(n as i64);
    }

    pub fn request(&self, key: ApiKey, elapsed: Duration) {
        if let Some((count, hist)) = self.per_api.get(&(key as i16)) {
            count.inc();
            hist.observe(elapsed.as_secs_f64());
        }
    }

    /// A response throttled its client for `ms` milliseconds under the `quota` kind.
    pub fn quota_throttled(&self, quota: &'static str, ms: u64) {
        let label = QuotaLabel { quota };
        self.quota_throttles.get_or_create(&label).inc();
        self.quota_throttle_ms.get_or_create(&label).inc_by(ms);
    }

    pub fn bytes_in(&self, topic: &str, n: usize) {
        self.bytes_in
            .get_or_create(&TopicLabel {
                topic: topic.to_string(),
            })
            .inc_by(n as u64);
    }

    pub fn bytes_out(&self, topic: &str, n: usize) {
        if n > 0 {
            self.bytes_out
                .get_or_create(&TopicLabel {
                    topic: topic.to_string(),
                })
                .inc_by(n as u64);
        }
    }

    pub fn produce_error(&self, code: i16) {
        self.produce_errors
            .get_or_create(&ErrorLabel {
                error: error_name(code),
            })
            .inc();
    }

    pub fn fetch_error(&self, code: i16) {
        self.fetch_errors
            .get_or_create(&ErrorLabel {
                error: error_name(code),
            })
            .inc();
    }

    /// Counts an accepted connection; the gauge drops when the returned guard does.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.connections_accepted.inc();
        self.connections.inc();
        ConnectionGuard(self.clone())
    }

    /// One partition's commit outcome (error code 0 = committed).
    pub fn offset_commit(&self, code: i16) {
        if code == 0 {
            self.offset_commits.inc();
        } else {
            self.commit_failures
                .get_or_create(&ErrorLabel {
                    error: error_name(code),
                })
                .inc();
        }
    }

    /// A rebalance that ended (the coordinator reports each exactly once).
    pub fn rebalance_ended(&self, r: &cairn_group::RebalanceRecord) {
        self.rebalances
            .get_or_create(&CauseLabel {
                cause: r.cause.kind().to_string(),
            })
            .inc();
        // Durations of rebalances that produced a generation; the others have no end phase.
        if r.outcome != cairn_group::RebalanceOutcome::Stable {
            return;
        }
        for (phase, ms) in [
            ("total", r.total_ms()),
            ("preparing", r.preparing_ms()),
            ("completing", r.completing_ms()),
        ] {
            if let Some(ms) = ms {
                self.rebalance_seconds
                    .get_or_create(&PhaseLabel { phase })
                    .observe(ms.max(0) as f64 / 1000.0);
            }
        }
    }

    /// The `/metrics` body.
    pub fn render(&self) -> String {
        const EOF: &str = "# EOF\n";
        let snap = self.lag.get();
        let mut cache = self.lag_text.lock();
        let fresh = matches!(&*cache, Some((s, _)) if Arc::ptr_eq(s, &snap));
        if !fresh {
            let mut text = String::with_capacity(64 * 1024);
            if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.lag_registry)
            {
                tracing::warn!("cannot encode lag metrics: {e}");
            }
            text.truncate(text.strip_suffix(EOF).map_or(text.len(), str::len));
            *cache = Some((snap, text));
        }
        let lag_text = &cache.as_ref().expect("filled above").1;
        let mut out = String::with_capacity(lag_text.len() + 16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("cannot encode metrics: {e}");
        }
        // Two encodings make one exposition: one terminating EOF line, after the lag series.
        out.truncate(out.strip_suffix(EOF).map_or(out.len(), str::len));
        out.push_str(lag_text);
        out.push_str(EOF);
        out
    }
}

pub struct ConnectionGuard(Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}

/// Kafka's own spelling of an error code (`UNKNOWN_TOPIC_OR_PARTITION`), as its clients log it.
pub fn error_name(code: i16) -> String {
    let Some(e) = ResponseError::try_from_code(code) else {
        return format!("CODE_{code}");
    };
    let camel = format!("{e:?}");
    if !camel.chars().all(|c| c.is_ascii_alphanumeric()) {
        return format!("CODE_{code}");
    }
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_listgroups() {
        use cairn_group::GroupState as S;
        let classic: Vec<&str> = [
            S::Empty,
            S::PreparingRebalance,
            S::CompletingRebalance,
            S::Stable,
            S::Dead,
        ]
        .iter()
        .map(|s| s.name())
        .collect();
        assert_eq!(states_of(GroupType::Classic), classic.as_slice());
        assert!(states_of(GroupType::Consumer).contains(&"Reconciling"));
    }

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(25), "UNKNOWN_MEMBER_ID");
        assert_eq!(error_name(-12345), "CODE_-12345");
    }
}

/// The state names a group of this type can have, as ListGroups names them.
fn states_of(t: GroupType) -> &'static [&'static str] {
    // `GroupState::name` spells these.
    const CLASSIC: [&str; 5] = [
        "Empty",
        "PreparingRebalance",
        "CompletingRebalance",
        "Stable",
        "Dead",
    ];
    const CONSUMER: [&str; 5] = ["Empty", "Assigning", "Reconciling", "Stable", "Dead"];
    match t {
        GroupType::Classic => &CLASSIC,
        GroupType::Consumer => &CONSUMER,
    }
}

/// Renders the lag snapshot as metrics at scrape time.
#[derive(Debug)]
pub struct LagCollector(pub Arc<SnapshotCell>);

impl Collector for LagCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.0.get();
        let gauge = |enc: &mut DescriptorEncoder,
                     name: &str,
                     help: &str,
                     rows: &mut dyn Iterator<Item = (Vec<(&str, &str)>, f64)>|
         -> Result<(), std::fmt::Error> {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, v) in rows {
                ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
            }
            Ok(())
        };
        // Partition numbers as label strings, made once per scrape.
        let pnums: Vec<Vec<String>> = snap
            .groups
            .iter()
            .map(|g| {
                g.partitions
                    .iter()
                    .map(|p| p.partition.to_string())
                    .collect()
            })
            .collect();
        let per_partition = |f: fn(&PartitionLag) -> Option<f64>| {
            let snap = &snap;
            let pnums = &pnums;
            snap.groups.iter().enumerate().flat_map(move |(gi, g)| {
                g.partitions.iter().enumerate().filter_map(move |(pi, p)| {
                    f(p).map(|v| {
                        (
                            vec![
                                ("group", g.group.as_str()),
                                ("topic", p.topic.as_str()),
                                ("partition", pnums[gi][pi].as_str()),
                            ],
                            v,
                        )
                    })
                })
            })
        };
        gauge(
            &mut enc,
            "kafka_consumergroup_group_offset",
            "Committed offset of a group's partition (partitions with a commit only)",
            &mut per_partition(|p| p.committed.map(|c| c as f64)),
        )?;
        gauge(
            &mut enc,
            "kafka_consumergroup_group_lag",
            "Lag in records: log end offset minus committed offset, never negative",
            &mut per_partition(|p| p.lag.map(|l| l as f64)),
        )?;
        gauge(
            &mut enc,
            "kafka_consumergroup_group_lag_seconds",
            "Age in seconds of the oldest record the group has not consumed; 0 when caught up",
            &mut per_partition(|p| p.lag.and(p.lag_seconds)),
        )?;
        gauge(
            &mut enc,
            "cairn_group_partition_uncommitted",
            "1 for a partition assigned to the group that it never committed an offset for",
            &mut per_partition(|p| p.committed.is_none().then_some(1.0)),
        )?;
        let per_group = |f: fn(&GroupLag) -> f64| {
            snap.groups
                .iter()
                .map(move |g| (vec![("group", g.group.as_str())], f(g)))
        };
        gauge(
            &mut enc,
            "kafka_consumergroup_group_max_lag",
            "Largest partition lag of the group, in records",
            &mut per_group(|g| g.max_lag as f64),
        )?;
        gauge(
            &mut enc,
            "kafka_consumergroup_group_max_lag_seconds",
            "Largest partition lag of the group, in seconds",
            &mut per_group(|g| g.max_lag_seconds),
        )?;
        gauge(
            &mut enc,
            "kafka_consumergroup_group_sum_lag",
            "Sum of the group's partition lags, in records",
            &mut per_group(|g| g.total_lag as f64),
        )?;
        gauge(
            &mut enc,
            "cairn_group_members",
            "Members of the group",
            &mut per_group(|g| g.members.len() as f64),
        )?;
        gauge(
            &mut enc,
            "cairn_group_generation",
            "Generation id of the group",
            &mut per_group(|g| g.generation as f64),
        )?;
        let mut topic_sums: Vec<(&str, &str, i64)> = Vec::new();
        for g in &snap.groups {
            for p in &g.partitions {
                let Some(lag) = p.lag else { continue };
                match topic_sums.last_mut() {
                    // Partitions are sorted by topic, so one group's topics are contiguous.
                    Some(last) if last.0 == g.group && last.1 == p.topic => last.2 += lag,
                    _ => topic_sums.push((&g.group, &p.topic, lag)),
                }
            }
        }
        gauge(
            &mut enc,
            "kafka_consumergroup_group_topic_sum_lag",
            "Sum of the group's partition lags per topic, in records",
            &mut topic_sums
                .iter()
                .map(|(g, t, l)| (vec![("group", *g), ("topic", *t)], *l as f64)),
        )?;
        gauge(
            &mut enc,
            "cairn_group_state",
            "1 for the group's current state, 0 for the other states of its type",
            &mut snap.groups.iter().flat_map(|g| {
                states_of(g.group_type).iter().map(move |s| {
                    (
                        vec![("group", g.group.as_str()), ("state", *s)],
                        if g.state_name == *s { 1.0 } else { 0.0 },
                    )
                })
            }),
        )?;
        // Kafka's group-count{protocol} and classic-/consumer-group-count{state} in one family.
        let mut counts: Vec<(&str, &str, f64)> = Vec::new();
        for t in [GroupType::Classic, GroupType::Consumer] {
            for s in states_of(t) {
                let n = snap
                    .groups
                    .iter()
                    .filter(|g| g.group_type == t && g.state_name == *s)
                    .count();
                counts.push((t.name(), s, n as f64));
            }
        }
        gauge(
            &mut enc,
            "cairn_groups",
            "Groups by type (classic, consumer) and state",
            &mut counts
                .iter()
                .map(|(t, s, n)| (vec![("type", *t), ("state", *s)], *n)),
        )?;
        let consumer_groups = || {
            snap.groups
                .iter()
                .filter(|g| g.group_type == GroupType::Consumer)
        };
        gauge(
            &mut enc,
            "cairn_consumer_group_epoch",
            "Group epoch of a consumer group (bumped by every change that needs a new assignment)",
            &mut consumer_groups()
                .map(|g| (vec![("group", g.group.as_str())], g.generation as f64)),
        )?;
        gauge(
            &mut enc,
            "cairn_consumer_group_assignment_epoch",
            "Group epoch a consumer group's target assignment was computed for",
            &mut consumer_groups().filter_map(|g| {
                g.assignment_epoch
                    .map(|e| (vec![("group", g.group.as_str())], e as f64))
            }),
        )?;
        gauge(
            &mut enc,
            "cairn_consumer_group_reconciling_partitions",
            "Partitions of a consumer group still to be revoked by or handed to a member",
            &mut consumer_groups().map(|g| {
                let n: usize = g
                    .members
                    .iter()
                    .filter_map(|m| m.consumer.as_ref())
                    .map(|c| c.reconciling())
                    .sum();
                (vec![("group", g.group.as_str())], n as f64)
            }),
        )?;
        gauge(
            &mut enc,
            "cairn_group_status",
            "1 for the group's current health status (ok, lagging, stalled, stopped), 0 for the others",
            &mut snap.groups.iter().flat_map(|g| {
                Status::ALL.iter().map(move |s| {
                    (
                        vec![("group", g.group.as_str()), ("status", s.name())],
                        if g.status == *s { 1.0 } else { 0.0 },
                    )
                })
            }),
        )?;
        let pnames: Vec<String> = snap
            .partitions
            .iter()
            .map(|p| p.partition.to_string())
            .collect();
        gauge(
            &mut enc,
            "kafka_partition_latest_offset",
            "Log end offset (high watermark) of a partition",
            &mut snap.partitions.iter().zip(&pnames).map(|(p, n)| {
                (
                    vec![("topic", p.topic.as_str()), ("partition", n.as_str())],
                    p.end as f64,
                )
            }),
        )?;
        gauge(
            &mut enc,
            "kafka_partition_earliest_offset",
            "Log start offset of a partition",
            &mut snap.partitions.iter().zip(&pnames).map(|(p, n)| {
                (
                    vec![("topic", p.topic.as_str()), ("partition", n.as_str())],
                    p.start as f64,
                )
            }),
        )?;
        gauge(
            &mut enc,
            "cairn_lag_snapshot_duration_seconds",
            "Time the last lag snapshot took to compute",
            &mut std::iter::once((Vec::new(), snap.compute_seconds)),
        )?;
        gauge(
            &mut enc,
            "cairn_lag_snapshot_timestamp_seconds",
            "When the last lag snapshot was taken, Unix seconds",
            &mut snap
                .taken_ms
                .map(|t| (Vec::new(), t as f64 / 1000.0))
                .into_iter(),
        )?;
        Ok(())
    }
}
