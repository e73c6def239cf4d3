//! The broker's answers to the HTTP layer's questions (`cairn_http::BrokerView`), read from the
//! lag snapshot, the store and the coordinator's rebalance history.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cairn_http as http;

use crate::lag::{GroupLag, LagEngine, TopicPartitionList};
use crate::metrics::Metrics;
use crate::state::BrokerState;

pub struct View {
    pub(crate) state: Arc<BrokerState>,
    pub(crate) lag: Arc<LagEngine>,
    pub(crate) metrics: Arc<Metrics>,
    /// Cleared when shutdown begins, so /health turns 503 before the listener goes away.
    pub(crate) serving: Arc<AtomicBool>,
}

fn topic_partitions(l: &TopicPartitionList) -> Vec<http::TopicPartitions> {
    l.iter()
        .map(|(t, ps)| http::TopicPartitions {
            topic: t.clone(),
            partitions: ps.clone(),
        })
        .collect()
}

fn overview(g: &GroupLag) -> http::GroupOverview {
    http::GroupOverview {
        group: g.group.clone(),
        group_type: g.group_type.name(),
        state: g.state_name,
        protocol_type: g.protocol_type.clone(),
        assignor: g.assignor.clone(),
        generation: g.generation,
        group_epoch: g.assignment_epoch.map(|_| g.generation),
        assignment_epoch: g.assignment_epoch,
        members: g.members.len(),
        partitions: g.partitions.len(),
        uncommitted_partitions: g.uncommitted(),
        total_lag: g.total_lag,
        max_lag: g.max_lag,
        max_lag_seconds: g.max_lag_seconds,
        status: g.status.name(),
    }
}

impl View {
    fn rebalance_history(&self, group: &str) -> Vec<http::Rebalance> {
        rebalance_history(&self.state.groups, group)
    }

    fn known(&self, group: &str) -> bool {
        self.lag.snapshot().group(group).is_some()
            || self.state.groups.read_group(group, |c| {
                c.describe_group(group).is_some() || c.describe_consumer_group(group).is_ok()
            })
    }
}

impl http::BrokerView for View {
    fn health(&self) -> http::Health {
        http::Health {
            serving: self.serving.load(Ordering::Acquire),
            // The view exists only once the store is open and the offsets topic replayed.
            stores_loaded: true,
            groups_loaded: true,
            lag_snapshot_ms: self.lag.snapshot().taken_ms,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    fn groups(&self) -> http::GroupsPage {
        let snap = self.lag.snapshot();
        http::GroupsPage {
            snapshot_ms: snap.taken_ms,
            refresh_ms: self.lag.refresh_ms,
            groups: snap.groups.iter().map(overview).collect(),
        }
    }

    fn group(&self, group: &str) -> Option<http::GroupDetail> {
        let snap = self.lag.snapshot();
        let g = snap.group(group)?;
        Some(http::GroupDetail {
            overview: overview(g),
            snapshot_ms: snap.taken_ms,
            leader: g.leader.clone(),
            member_list: g
                .members
                .iter()
                .map(|m| {
                    let c = m.consumer.as_ref();
                    http::MemberInfo {
                        member_id: m.member_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        instance_id: m.instance_id.clone(),
                        assignment: topic_partitions(&m.assignment),
                        member_epoch: c.map(|c| c.member_epoch),
                        member_protocol: c.map(|c| c.protocol),
                        member_state: c.map(|c| c.state),
                        subscribed_topics: c.map(|c| c.subscribed_topics.clone()),
                        subscribed_regex: c.and_then(|c| c.subscribed_regex.clone()),
                        target_assignment: c.map(|c| topic_partitions(&c.target)),
                        pending_assignment: c.map(|c| topic_partitions(&c.pending_assignment)),
                        pending_revocation: c.map(|c| topic_partitions(&c.pending_revocation)),
                    }
                })
                .collect(),
            partitions: g
                .partitions
                .iter()
                .map(|p| http::PartitionLag {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    committed_offset: p.committed,
                    log_start_offset: p.log_start,
                    log_end_offset: p.log_end,
                    lag: p.lag,
                    lag_seconds: p.lag_seconds,
                    owner: p.owner.clone(),
                    target_owner: p.target_owner.clone(),
                    status: p.status.name(),
                })
                .collect(),
            lag_history: self.lag.history(group),
            rebalances: self.rebalance_history(group),
        })
    }

    fn rebalances(&self, group: &str) -> Option<Vec<http::Rebalance>> {
        let history = self.rebalance_history(group);
        (!history.is_empty() || self.known(group)).then_some(history)
    }

    fn topics(&self) -> Vec<http::TopicInfo> {
        let store = &self.state.store;
        let mut topics = store.topics();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
            .into_iter()
            .map(|t| http::TopicInfo {
                id: t.id.to_string(),
                internal: crate::internal_topics::is_internal(&t.name),
                partitions: (0..t.partitions as i32)
                    .filter_map(|p| {
                        let log = store.partition(&t.name, p)?;
                        Some(http::TopicPartitionInfo {
                            partition: p,
                            log_start_offset: log.log_start_offset(),
                            log_end_offset: log.log_end_offset(),
                            last_stable_offset: log.last_stable_offset(),
                            open_transactions: log.open_transactions().len(),
                            size_bytes: log.size_bytes(),
                        })
                    })
                    .collect(),
                topic: t.name,
            })
            .collect()
    }

    fn metrics(&self) -> String {
        self.metrics.render()
    }

    fn http_credentials_required(&self) -> bool {
        self.state.security.sasl_enabled
    }

    fn check_password(&self, user: &str, password: &str) -> bool {
        self.state.security.check_password(user, password)
    }
}

/// A group's rebalance history in the HTTP API's shape, oldest first.
fn rebalance_history(groups: &crate::groups::Groups, group: &str) -> Vec<cairn_http::Rebalance> {
    let (history, consumer) = groups.read_group(group, |c| {
        (
            c.rebalance_history(group),
            c.describe_consumer_group(group).is_ok(),
        )
    });
    rebalances(history, consumer)
}

/// Rebalance records in the HTTP API's shape. A consumer group's record is an epoch bump: its
/// join phase ends when the target assignment is computed, and the rest is reconciliation.
fn rebalances(
    history: Vec<cairn_group::RebalanceRecord>,
    consumer: bool,
) -> Vec<cairn_http::Rebalance> {
    use cairn_group::{RebalanceCause as C, RebalanceOutcome as O};
    history
        .into_iter()
        .map(|r| cairn_http::Rebalance {
            seq: r.seq,
            cause: r.cause.kind(),
            cause_detail: match &r.cause {
                C::MemberJoined { member_id }
                | C::MemberRejoinedWithNewMetadata { member_id }
                | C::LeaderRejoined { member_id }
                | C::MemberLeft { member_id }
                | C::SessionTimeout { member_id }
                | C::SubscriptionChanged { member_id }
                | C::MemberFenced { member_id } => Some(member_id.clone()),
                C::RebalanceTimeout { member_ids } | C::SyncTimeout { member_ids } => {
                    Some(member_ids.join(","))
                }
                C::StaticMemberReplaced { instance_id } => Some(instance_id.clone()),
                C::PartitionsAdded { topic } | C::TopicDeleted { topic } => Some(topic.clone()),
                C::MetadataChanged { topics } | C::RegexResolved { topics } => {
                    Some(topics.join(","))
                }
                C::Other(s) => Some(s.clone()),
                C::GroupLoaded => None,
            },
            from_generation: r.from_generation,
            generation: r.generation,
            started_ms: r.started_ms,
            join_completed_ms: r.join_completed_ms,
            completed_ms: r.completed_ms,
            preparing_ms: r.preparing_ms(),
            completing_ms: r.completing_ms(),
            reconciliation_ms: if consumer { r.completing_ms() } else { None },
            total_ms: r.total_ms(),
            members_before: r.members_before,
            members_after: r.members_after,
            partitions_moved: r.partitions_moved,
            outcome: match r.outcome {
                O::InProgress => "in_progress",
                O::Stable => "stable",
                O::Superseded => "superseded",
                O::Emptied => "emptied",
                O::Unloaded => "unloaded",
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_group::{RebalanceCause, RebalanceOutcome, RebalanceRecord};

    fn record(cause: RebalanceCause) -> RebalanceRecord {
        RebalanceRecord {
            group_id: "g".into(),
            seq: 7,
            cause,
            from_generation: 3,
            generation: Some(4),
            started_ms: 1_000,
            join_completed_ms: Some(1_010),
            completed_ms: Some(1_250),
            members_before: 2,
            members_after: Some(3),
            partitions_moved: Some(2),
            outcome: RebalanceOutcome::Stable,
        }
    }

    /// Consumer-group causes name what caused them, and an epoch bump of a consumer group says
    /// how long its members took to reconcile; a classic rebalance has no such phase.
    #[test]
    fn consumer_group_rebalances() {
        let causes = [
            (
                RebalanceCause::MemberFenced {
                    member_id: "m1".into(),
                },
                "member_fenced",
                "m1",
            ),
            (
                RebalanceCause::SubscriptionChanged {
                    member_id: "m2".into(),
                },
                "subscription_changed",
                "m2",
            ),
            (
                RebalanceCause::MetadataChanged {
                    topics: vec!["a".into(), "b".into()],
                },
                "metadata_changed",
                "a,b",
            ),
            (
                RebalanceCause::RegexResolved {
                    topics: vec!["logs-1".into()],
                },
                "regex_resolved",
                "logs-1",
            ),
        ];
        for (cause, kind, detail) in causes {
            let r = rebalances(vec![record(cause)], true).remove(0);
            assert_eq!(r.cause, kind);
            assert_eq!(r.cause_detail.as_deref(), Some(detail));
            assert_eq!(r.generation, Some(4));
            assert_eq!(r.reconciliation_ms, Some(240));
            assert_eq!(r.total_ms, Some(250));
        }
        let classic = rebalances(
            vec![record(RebalanceCause::MemberJoined {
                member_id: "m".into(),
            })],
            false,
        );
        assert_eq!(classic[0].reconciliation_ms, None);
        assert_eq!(classic[0].completing_ms, Some(240));
    }
}
