//! The replica-placement APIs of a single broker: DescribeLogDirs (the data directory is the one
//! log dir), ElectLeaders and the partition reassignment APIs. This broker leads every partition
//! and is its only replica, so nothing ever needs to move; the answers are Kafka's for that case,
//! and moves to brokers that do not exist are refused as Kafka refuses them.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    DescribeLogDirsRequest, DescribeLogDirsResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use cairn_auth::Operation;

use super::{sb, Ctx};
use crate::errors::Code;

/// Total and usable bytes of the filesystem holding `path` (-1 when it cannot be asked).
fn filesystem_bytes(path: &std::path::Path) -> (i64, i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return (-1, -1);
    };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs the call fills.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return (-1, -1);
    }
    let unit = st.f_frsize as i64;
    (
        (st.f_blocks as i64).saturating_mul(unit),
        (st.f_bavail as i64).saturating_mul(unit),
    )
}

pub async fn describe_log_dirs(ctx: &Ctx, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    // Kafka answers a caller without DESCRIBE on the cluster with an error and no dirs.
    if !ctx.allowed_cluster(Operation::Describe) {
        return DescribeLogDirsResponse::default()
            .with_error_code(Code::ClusterAuthorizationFailed.code());
    }
    let st = &ctx.state;
    let wanted: Vec<(String, Option<Vec<i32>>)> = match &req.topics {
        None => st
            .store
            .topics()
            .into_iter()
            .map(|t| (t.name, None))
            .collect(),
        Some(ts) => ts
            .iter()
            .map(|t| (t.topic.0.to_string(), Some(t.partitions.clone())))
            .collect(),
    };
    let mut topics = Vec::new();
    for (name, parts) in wanted {
        // Unknown topics and partitions are left out, as Kafka leaves out what it does not host.
        let Some(meta) = st.store.topic(&name) else {
            continue;
        };
        let parts = parts.unwrap_or_else(|| (0..meta.partitions as i32).collect());
        let mut partitions = Vec::new();
        for p in parts {
            if let Some(log) = st.store.partition(&name, p) {
                partitions.push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p)
                        .with_partition_size(log.size_bytes() as i64)
                        // The leader is never behind itself.
                        .with_offset_lag(0)
                        .with_is_future_key(false),
                );
            }
        }
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(sb(name)))
                    .with_partitions(partitions),
            );
        }
    }
    let dir = st.store.data_dir().to_path_buf();
    let (total, usable) = tokio::task::spawn_blocking(move || filesystem_bytes(&dir))
        .await
        .unwrap_or((-1, -1));
    let dir = st.store.data_dir().display().to_string();
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(sb(dir))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable)])
}

pub async fn elect_leaders(ctx: &Ctx, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let st = &ctx.state;
    let allowed = ctx.allowed_cluster(Operation::Alter);
    // 0 preferred, 1 unclean; anything else is refused as Kafka refuses it.
    if ctx.version >= 1 && !(0..=1).contains(&req.election_type) {
        return ElectLeadersResponse::default().with_error_code(Code::InvalidRequest.code());
    }
    let Some(asked) = req.topic_partitions else {
        // Every partition: Kafka leaves out those whose leader is already the one wanted,
        // which here is all of them.
        let code = if allowed {
            0
        } else {
            Code::ClusterAuthorizationFailed.code()
        };
        return ElectLeadersResponse::default().with_error_code(code);
    };
    let results = asked
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let (code, msg) = if !allowed {
                        (Code::ClusterAuthorizationFailed.code(), None)
                    } else if st.store.partition(&name, *p).is_none() {
                        let msg = if st.store.topic(&name).is_none() {
                            format!("No such topic as {name}")
                        } else {
                            format!("No such partition as {name}-{p}")
                        };
                        (Code::UnknownTopicOrPartition.code(), Some(msg))
                    } else {
                        // This broker leads it and is its preferred (only) replica.
                        (Code::ElectionNotNeeded.code(), None)
                    };
                    PartitionResult::default()
                        .with_partition_id(*p)
                        .with_error_code(code)
                        .with_error_message(msg.map(sb))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(partitions)
        })
        .collect();
    let code = if allowed {
        0
    } else {
        Code::ClusterAuthorizationFailed.code()
    };
    ElectLeadersResponse::default()
        .with_error_code(code)
        .with_replica_election_results(results)
}

pub async fn alter_partition_reassignments(
    ctx: &Ctx,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let resp = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change);
    if !ctx.allowed_cluster(Operation::Alter) {
        return resp
            .with_error_code(Code::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb("Cluster authorization failed.")));
    }
    let st = &ctx.state;
    let me = st.node_id;
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let outcome = if st.store.topic(&name).is_none() {
                        Err((
                            Code::UnknownTopicOrPartition,
                            format!("Unable to find a topic named {name}."),
                        ))
                    } else if st.store.partition(&name, p.partition_index).is_none() {
                        Err((
                            Code::UnknownTopicOrPartition,
                            format!("Unable to find partition {name}:{}.", p.partition_index),
                        ))
                    } else {
                        match &p.replicas {
                            // Nothing is ever being moved, so there is nothing to cancel.
                            None => Err((
                                Code::NoReassignmentInProgress,
                                "No partition reassignment is in progress for this topic partition."
                                    .to_string(),
                            )),
                            Some(r) => check_replicas(
                                &r.iter().map(|b| b.0).collect::<Vec<_>>(),
                                me,
                                req.allow_replication_factor_change,
                            ),
                        }
                    };
                    let (code, msg) = match outcome {
                        Ok(()) => (0, None),
                        Err((c, m)) => {
                            tracing::info!(peer = %ctx.peer, topic = %name, partition = p.partition_index, "reassignment refused: {m}");
                            (c.code(), Some(sb(m)))
                        }
                    };
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_error_message(msg)
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    resp.with_responses(responses)
}

/// Kafka's `validateManualPartitionAssignment` against a cluster of this one broker: the target
/// replicas must be registered brokers, each once. The only valid target is `[me]`, which is
/// where the partition already is.
fn check_replicas(replicas: &[i32], me: i32, allow_rf_change: bool) -> Result<(), (Code, String)> {
    if replicas.is_empty() {
        return Err((
            Code::InvalidReplicaAssignment,
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut prev = None;
    for b in sorted {
        if b != me {
            return Err((
                Code::InvalidReplicaAssignment,
                format!("The manual partition assignment includes broker {b}, but no such broker is registered."),
            ));
        }
        if prev == Some(b) {
            return Err((
                Code::InvalidReplicaAssignment,
                format!("The manual partition assignment includes the broker {b} more than once."),
            ));
        }
        prev = Some(b);
    }
    // Unreachable with one broker (the list is [me]), kept for the v1 flag's meaning.
    if !allow_rf_change && replicas.len() != 1 {
        return Err((
            Code::InvalidReplicaAssignment,
            format!(
                "The replication factor is changed from 1 to {} but allowReplicationFactorChange is false",
                replicas.len()
            ),
        ));
    }
    Ok(())
}

pub async fn list_partition_reassignments(
    ctx: &Ctx,
    _req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !ctx.allowed_cluster(Operation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(Code::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb("Cluster authorization failed.")));
    }
    // Nothing is ever being moved.
    ListPartitionReassignmentsResponse::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_targets_are_checked_as_kafka_does() {
        assert!(check_replicas(&[1], 1, true).is_ok());
        assert!(check_replicas(&[1], 1, false).is_ok());
        let e = check_replicas(&[], 1, true).unwrap_err();
        assert!(e.1.contains("empty replica list"));
        let e = check_replicas(&[3, 1], 1, true).unwrap_err();
        assert_eq!(e.0.code(), Code::InvalidReplicaAssignment.code());
        assert!(
            e.1.contains("broker 3, but no such broker is registered"),
            "{}",
            e.1
        );
        let e = check_replicas(&[1, 1], 1, true).unwrap_err();
        assert!(e.1.contains("broker 1 more than once"), "{}", e.1);
    }

    #[test]
    fn the_filesystem_is_measured() {
        let (total, usable) = filesystem_bytes(std::path::Path::new("."));
        assert!(total > 0 && usable >= 0 && usable <= total);
        assert_eq!(
            filesystem_bytes(std::path::Path::new("/no/such/dir")),
            (-1, -1)
        );
    }
}
