//! Group and offset APIs: translate wire messages, version by version, to the coordinator's own
//! types and back. The rules themselves live in `cairn-group`.

use bytes::Bytes;
use cairn_group as g;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use cairn_auth::{Operation, ResourceType};

use super::{sb, Ctx};
use crate::errors::{group_error_code, Code};
use crate::security::CLUSTER;

fn code(r: &Result<(), g::GroupError>) -> i16 {
    r.as_ref().err().map_or(0, group_error_code)
}

/// Strings that end up in `__consumer_offsets` records are written with 16-bit lengths; a longer
/// one would be written wrapped and replay as something else, so it is refused up front.
fn fits_record(s: &str) -> bool {
    s.len() <= i16::MAX as usize
}

/// Member ids are `client_id-UUID`.
const MEMBER_ID_SUFFIX: usize = 37;

fn opt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

pub async fn find_coordinator(ctx: &Ctx, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let st = &ctx.state;
    let keys: Vec<StrBytes> = if ctx.version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    // Group keys need the offsets topic: created (on a blocking thread) before answering.
    let topic = match req.key_type {
        0 => st.groups.ensure_topic().await,
        1 => st.txns.ensure_topic().await,
        _ => Ok(()),
    };
    let answer = |key: &StrBytes| -> (i16, Option<String>) {
        match req.key_type {
            0 if !ctx.allowed(Operation::Describe, ResourceType::Group, key) => {
                return (Code::GroupAuthorizationFailed.code(), None);
            }
            1 if !ctx.allowed(Operation::Describe, ResourceType::TransactionalId, key) => {
                return (Code::TransactionalIdAuthorizationFailed.code(), None);
            }
            0 | 1 => {}
            other => {
                return (
                    Code::InvalidRequest.code(),
                    Some(format!("coordinator key type {other} is not supported")),
                );
            }
        }
        if key.is_empty() {
            let what = if req.key_type == 0 {
                "group id"
            } else {
                "transactional id"
            };
            return (Code::InvalidRequest.code(), Some(format!("empty {what}")));
        }
        match &topic {
            Ok(()) => (0, None),
            Err(e) => {
                tracing::error!("cannot create the coordinator's topic: {e}");
                (Code::CoordinatorNotAvailable.code(), Some(e.clone()))
            }
        }
    };
    let node = BrokerId(st.node_id);
    let host = sb(ctx.listener.advertised_host.clone());
    if ctx.version >= 4 {
        let coordinators = keys
            .iter()
            .map(|k| {
                let (err, msg) = answer(k);
                let c = Coordinator::default()
                    .with_key(k.clone())
                    .with_error_code(err)
                    .with_error_message(msg.map(sb));
                if err == 0 {
                    c.with_node_id(node)
                        .with_host(host.clone())
                        .with_port(ctx.listener.advertised_port)
                } else {
                    c.with_node_id(BrokerId(-1)).with_host(sb("")).with_port(-1)
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (err, msg) = answer(&keys[0]);
    let resp = FindCoordinatorResponse::default().with_error_code(err);
    let resp = if ctx.version >= 1 {
        resp.with_error_message(msg.map(sb))
    } else {
        resp
    };
    if err == 0 {
        resp.with_node_id(node)
            .with_host(host)
            .with_port(ctx.listener.advertised_port)
    } else {
        resp.with_node_id(BrokerId(-1))
            .with_host(sb(""))
            .with_port(-1)
    }
}

pub async fn join_group(ctx: &Ctx, req: JoinGroupRequest) -> JoinGroupResponse {
    let st = &ctx.state;
    let v = ctx.version;
    let join = g::JoinGroup {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if v >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.to_vec()))
            .collect(),
        api_version: v,
    };
    if !ctx.allowed(Operation::Read, ResourceType::Group, &join.group_id) {
        return JoinGroupResponse::default()
            .with_error_code(Code::GroupAuthorizationFailed.code())
            .with_generation_id(-1);
    }
    if join.group_id.is_empty() || !fits_record(&join.group_id) {
        tracing::info!(peer = %ctx.peer, len = join.group_id.len(), "JoinGroup with an invalid group id");
        return JoinGroupResponse::default()
            .with_error_code(Code::InvalidGroupId.code())
            .with_generation_id(-1);
    }
    let oversized = !fits_record(&join.protocol_type)
        || join
            .group_instance_id
            .as_deref()
            .is_some_and(|i| !fits_record(i))
        || join.protocols.iter().any(|(n, _)| !fits_record(n))
        || join.client_id.len() + MEMBER_ID_SUFFIX > i16::MAX as usize;
    if oversized {
        tracing::info!(peer = %ctx.peer, group = %join.group_id, "JoinGroup with oversized identifiers refused");
        return JoinGroupResponse::default()
            .with_error_code(Code::InvalidRequest.code())
            .with_generation_id(-1);
    }
    let group = join.group_id.clone();
    // A consumer group with members takes a classic member's subscription against the topics.
    let topics = st.topics.get(&st.store);
    let reply = st
        .groups
        .call_parked(&group, false, move |c, now, token| {
            c.join_group_with_topics(now, token, join, Some(&topics.snapshot))
        })
        .await;
    let empty_name = |n: Option<String>| -> Option<StrBytes> {
        // Below v7 a missing protocol name is written as "", from v7 as null.
        match n {
            Some(n) => Some(sb(n)),
            None if v < 7 => Some(sb("")),
            None => None,
        }
    };
    match reply {
        g::Reply::Join(Ok(r)) => JoinGroupResponse::default()
            .with_generation_id(r.generation_id)
            .with_protocol_type(if v >= 7 {
                r.protocol_type.map(sb)
            } else {
                None
            })
            .with_protocol_name(empty_name(r.protocol_name))
            .with_leader(sb(r.leader))
            .with_skip_assignment(v >= 9 && r.skip_assignment)
            .with_member_id(sb(r.member_id))
            .with_members(
                r.members
                    .into_iter()
                    .map(|m| {
                        JoinGroupResponseMember::default()
                            .with_member_id(sb(m.member_id))
                            .with_group_instance_id(if v >= 5 {
                                m.group_instance_id.map(sb)
                            } else {
                                None
                            })
                            .with_metadata(Bytes::from(m.metadata))
                    })
                    .collect(),
            ),
        g::Reply::Join(Err(e)) | g::Reply::Sync(Err(e)) => {
            let member_id = match &e {
                g::GroupError::MemberIdRequired { member_id } => member_id.clone(),
                _ => String::new(),
            };
            JoinGroupResponse::default()
                .with_error_code(group_error_code(&e))
                .with_generation_id(-1)
                .with_protocol_name(empty_name(None))
                .with_member_id(sb(member_id))
        }
        g::Reply::Sync(Ok(_)) => JoinGroupResponse::default()
            .with_error_code(Code::UnknownServerError.code())
            .with_generation_id(-1),
    }
}

pub async fn sync_group(ctx: &Ctx, req: SyncGroupRequest) -> SyncGroupResponse {
    let st = &ctx.state;
    if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id.0) {
        return SyncGroupResponse::default().with_error_code(Code::GroupAuthorizationFailed.code());
    }
    // From v5 the protocol type and name are required (KIP-559).
    if ctx.version >= 5 && (req.protocol_type.is_none() || req.protocol_name.is_none()) {
        return SyncGroupResponse::default()
            .with_error_code(Code::InconsistentGroupProtocol.code());
    }
    let sync = g::SyncGroup {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        generation_id: req.generation_id,
        protocol_type: opt(&req.protocol_type),
        protocol_name: opt(&req.protocol_name),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.to_vec()))
            .collect(),
    };
    let group = sync.group_id.clone();
    let reply = st
        .groups
        .call_parked(&group, true, move |c, now, token| {
            c.sync_group(now, token, sync)
        })
        .await;
    match reply {
        g::Reply::Sync(Ok(r)) => {
            let mut resp = SyncGroupResponse::default().with_assignment(Bytes::from(r.assignment));
            if ctx.version >= 5 {
                resp = resp
                    .with_protocol_type(r.protocol_type.map(sb))
                    .with_protocol_name(r.protocol_name.map(sb));
            }
            resp
        }
        g::Reply::Sync(Err(e)) | g::Reply::Join(Err(e)) => {
            SyncGroupResponse::default().with_error_code(group_error_code(&e))
        }
        g::Reply::Join(Ok(_)) => {
            SyncGroupResponse::default().with_error_code(Code::UnknownServerError.code())
        }
    }
}

pub async fn heartbeat(ctx: &Ctx, req: HeartbeatRequest) -> HeartbeatResponse {
    if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id.0) {
        return HeartbeatResponse::default().with_error_code(Code::GroupAuthorizationFailed.code());
    }
    let hb = g::Heartbeat {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        generation_id: req.generation_id,
    };
    let group = hb.group_id.clone();
    let r = ctx
        .state
        .groups
        .call(&group, move |c, now| {
            (c.heartbeat(now, hb), g::Effects::default())
        })
        .await
        .and_then(|r| r);
    HeartbeatResponse::default().with_error_code(code(&r))
}

pub async fn leave_group(ctx: &Ctx, req: LeaveGroupRequest) -> LeaveGroupResponse {
    if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id.0) {
        return LeaveGroupResponse::default()
            .with_error_code(Code::GroupAuthorizationFailed.code());
    }
    let members: Vec<g::LeavingMember> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| g::LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: opt(&m.group_instance_id),
            })
            .collect()
    } else {
        vec![g::LeavingMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let leave = g::LeaveGroup {
        group_id: req.group_id.0.to_string(),
        members,
    };
    let group = leave.group_id.clone();
    let r = ctx
        .state
        .groups
        .call(&group, move |c, now| c.leave_group(now, leave))
        .await;
    let result = match r {
        Ok(r) => r,
        Err(e) => return LeaveGroupResponse::default().with_error_code(group_error_code(&e)),
    };
    let top = result.error.as_ref().map_or(0, group_error_code);
    if ctx.version < 3 {
        // v0-2 carry one member and no per-member array: its error is the top-level one.
        let member = result.members.first().map_or(0, |(_, r)| code(r));
        return LeaveGroupResponse::default().with_error_code(if top != 0 { top } else { member });
    }
    LeaveGroupResponse::default()
        .with_error_code(top)
        .with_members(
            result
                .members
                .into_iter()
                .map(|(m, r)| {
                    MemberResponse::default()
                        .with_member_id(sb(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(sb))
                        .with_error_code(code(&r))
                })
                .collect(),
        )
}

pub async fn offset_commit(ctx: &Ctx, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let st = &ctx.state;
    let mut partitions = Vec::new();
    // Unknown topics and partitions are answered here; the coordinator sees only real ones.
    let mut unknown = Vec::new();
    // As Kafka: READ on the group for the whole request, then READ on each topic.
    let group_denied = !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id.0);
    let mut denied = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        if !group_denied && !ctx.allowed(Operation::Read, ResourceType::Topic, &name) {
            denied.extend(
                t.partitions
                    .iter()
                    .map(|p| (name.clone(), p.partition_index)),
            );
            continue;
        }
        let meta = st.store.topic(&name);
        for p in &t.partitions {
            let exists = meta.as_ref().is_some_and(|m| {
                p.partition_index >= 0 && (p.partition_index as u32) < m.partitions
            });
            if !exists {
                unknown.push((name.clone(), p.partition_index));
                continue;
            }
            partitions.push(g::CommitPartition {
                topic: name.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if ctx.version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: opt(&p.committed_metadata),
            });
        }
    }
    let commit = g::OffsetCommit {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: opt(&req.group_instance_id),
        generation_id: req.generation_id_or_member_epoch,
        retention_time_ms: if (2..=4).contains(&ctx.version) {
            req.retention_time_ms
        } else {
            -1
        },
        api_version: ctx.version,
        partitions,
    };
    let bad_group_id = commit.group_id.is_empty() || !fits_record(&commit.group_id);
    let result = if group_denied {
        // Answered below with GROUP_AUTHORIZATION_FAILED on every partition.
        Ok(g::CommitResult::default())
    } else if bad_group_id {
        tracing::info!(peer = %ctx.peer, len = commit.group_id.len(), "OffsetCommit with an invalid group id");
        Err(g::GroupError::InvalidGroupId)
    } else if commit
        .partitions
        .iter()
        .any(|p| p.metadata.as_deref().is_some_and(|m| !fits_record(m)))
    {
        Err(g::GroupError::OffsetMetadataTooLarge)
    } else if commit.partitions.is_empty() {
        Ok(g::CommitResult::default())
    } else {
        let group = commit.group_id.clone();
        st.groups
            .call(&group, move |c, now| c.commit_offsets(now, commit))
            .await
    };
    let mut out: Vec<OffsetCommitResponseTopic> = Vec::new();
    let mut push = |topic: &str, partition: i32, err: i16| {
        let idx = match out.iter().position(|t| t.name.0.as_str() == topic) {
            Some(i) => i,
            None => {
                out.push(
                    OffsetCommitResponseTopic::default()
                        .with_name(TopicName(sb(topic.to_string()))),
                );
                out.len() - 1
            }
        };
        out[idx].partitions.push(
            OffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(err),
        );
    };
    match result {
        Ok(_) if group_denied => {
            for t in &req.topics {
                for p in &t.partitions {
                    push(
                        &t.name.0,
                        p.partition_index,
                        Code::GroupAuthorizationFailed.code(),
                    );
                }
            }
        }
        Ok(r) => {
            let group_err = r.error.as_ref().map(group_error_code);
            for (t, p, res) in &r.partitions {
                push(t, *p, group_err.unwrap_or_else(|| code(res)));
            }
            // A group-level error with no valid partitions still reaches every partition.
            for (t, p) in &unknown {
                push(
                    t,
                    *p,
                    group_err.unwrap_or(Code::UnknownTopicOrPartition.code()),
                );
            }
            for (t, p) in &denied {
                push(t, *p, Code::TopicAuthorizationFailed.code());
            }
        }
        Err(e) => {
            for t in &req.topics {
                for p in &t.partitions {
                    push(&t.name.0, p.partition_index, group_error_code(&e));
                }
            }
        }
    }
    for p in out.iter().flat_map(|t| &t.partitions) {
        st.metrics.offset_commit(p.error_code);
    }
    OffsetCommitResponse::default().with_topics(out)
}

/// One group's committed offsets in the shape every OffsetFetch version needs; topics the
/// principal may not describe are left out of an "all topics" answer and refused by name
/// otherwise (TOPIC_AUTHORIZATION_FAILED, offset -1), as Kafka does.
/// Each partition's committed offset with its error code. With `require_stable` (read_committed
/// consumers, v7+) a partition whose offset is pending in an open transaction answers
/// UNSTABLE_OFFSET_COMMIT, which clients retry, as Kafka does.
fn fetch_one(
    ctx: &Ctx,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Vec<(String, Vec<(g::FetchedOffset, i16)>)> {
    let mut refused = Vec::new();
    let topics = topics.map(|ts| {
        ts.into_iter()
            .filter(|(t, ps)| {
                let ok = ctx.allowed(Operation::Describe, ResourceType::Topic, t);
                if !ok {
                    refused.push((t.clone(), ps.clone()));
                }
                ok
            })
            .collect::<Vec<_>>()
    });
    let pending = |f: &g::FetchedOffset| {
        require_stable
            && ctx
                .state
                .groups
                .read_group(group, |c| c.has_pending(group, &f.topic, f.partition))
    };
    let mut out: Vec<(String, Vec<(g::FetchedOffset, i16)>)> = fetch_allowed(ctx, group, topics)
        .into_iter()
        .filter(|(t, _)| ctx.may(Operation::Describe, ResourceType::Topic, t))
        .map(|(t, v)| {
            let v = v
                .into_iter()
                .map(|f| {
                    if pending(&f) {
                        let unstable = g::FetchedOffset {
                            offset: -1,
                            leader_epoch: -1,
                            metadata: String::new(),
                            ..f
                        };
                        (unstable, Code::UnstableOffsetCommit.code())
                    } else {
                        (f, 0)
                    }
                })
                .collect();
            (t, v)
        })
        .collect();
    for (t, ps) in refused {
        let code = Code::TopicAuthorizationFailed.code();
        let parts = ps
            .into_iter()
            .map(|p| {
                let f = g::FetchedOffset {
                    topic: t.clone(),
                    partition: p,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                };
                (f, code)
            })
            .collect();
        out.push((t, parts));
    }
    out
}

fn fetch_allowed(
    ctx: &Ctx,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, Vec<g::FetchedOffset>)> {
    let wanted: Option<Vec<(String, i32)>> = topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect()
    });
    let fetched = ctx
        .state
        .groups
        .read_group(group, |c| c.fetch_offsets(group, wanted.as_deref()));
    let mut by_topic: Vec<(String, Vec<g::FetchedOffset>)> = Vec::new();
    for f in fetched.partitions {
        match by_topic.iter_mut().find(|(t, _)| *t == f.topic) {
            Some((_, v)) => v.push(f),
            None => by_topic.push((f.topic.clone(), vec![f])),
        }
    }
    by_topic
}

pub async fn offset_fetch(ctx: &Ctx, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let v = ctx.version;
    if v >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|grp| {
                if !ctx.allowed(Operation::Describe, ResourceType::Group, &grp.group_id.0) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(grp.group_id)
                        .with_error_code(Code::GroupAuthorizationFailed.code());
                }
                // v9+: a consumer group's member names itself and its epoch (KIP-848), and a
                // wrong one is the group's error.
                if let Some(member) = grp.member_id.as_ref().filter(|_| v >= 9) {
                    let checked = ctx.state.groups.read_group(&grp.group_id.0, |c| {
                        c.check_consumer_fetch(&grp.group_id.0, member, grp.member_epoch)
                    });
                    if let Err(e) = checked {
                        return OffsetFetchResponseGroup::default()
                            .with_group_id(grp.group_id)
                            .with_error_code(group_error_code(&e));
                    }
                }
                let topics = grp.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let res = fetch_one(ctx, &grp.group_id.0, topics, req.require_stable);
                OffsetFetchResponseGroup::default()
                    .with_group_id(grp.group_id)
                    .with_topics(
                        res.into_iter()
                            .map(|(t, parts)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(sb(t)))
                                    .with_partitions(
                                        parts
                                            .into_iter()
                                            .map(|(f, err)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_error_code(err)
                                                    .with_partition_index(f.partition)
                                                    .with_committed_offset(f.offset)
                                                    .with_committed_leader_epoch(f.leader_epoch)
                                                    .with_metadata(Some(sb(f.metadata)))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    if !ctx.allowed(Operation::Describe, ResourceType::Group, &req.group_id.0) {
        let code = Code::GroupAuthorizationFailed.code();
        if v >= 2 {
            return OffsetFetchResponse::default().with_error_code(code);
        }
        // v1 has no top-level error: every partition asked for carries it.
        return OffsetFetchResponse::default().with_topics(
            topics
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(sb(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(-1)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    }
    let require_stable = v >= 7 && req.require_stable;
    let res = fetch_one(ctx, &req.group_id.0, topics, require_stable);
    OffsetFetchResponse::default().with_topics(
        res.into_iter()
            .map(|(t, parts)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(sb(t)))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(f, err)| {
                                let p = OffsetFetchResponsePartition::default()
                                    .with_error_code(err)
                                    .with_partition_index(f.partition)
                                    .with_committed_offset(f.offset)
                                    .with_metadata(Some(sb(f.metadata)));
                                if v >= 5 {
                                    p.with_committed_leader_epoch(f.leader_epoch)
                                } else {
                                    p
                                }
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub async fn list_groups(ctx: &Ctx, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    // DESCRIBE on the cluster lists every group; otherwise only the groups one may describe.
    let all = ctx.may(Operation::Describe, ResourceType::Cluster, CLUSTER);
    let groups = ctx
        .state
        .groups
        .read_all(|c| c.list_groups())
        .into_iter()
        .filter(|l| all || ctx.may(Operation::Describe, ResourceType::Group, &l.group_id))
        // Both filters ignore case, as Kafka's; a type it does not know matches no group.
        .filter(|l| states.is_empty() || states.contains(&l.state_name.to_ascii_lowercase()))
        .filter(|l| types.is_empty() || types.iter().any(|t| t == l.group_type.name()))
        .map(|l| {
            let mut lg = ListedGroup::default()
                .with_group_id(GroupId(sb(l.group_id)))
                .with_protocol_type(sb(l.protocol_type));
            if ctx.version >= 4 {
                lg = lg.with_group_state(sb(l.state_name));
            }
            if ctx.version >= 5 {
                lg = lg.with_group_type(sb(l.group_type.name()));
            }
            lg
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe_groups(ctx: &Ctx, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            if !ctx.allowed(Operation::Describe, ResourceType::Group, &id.0) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(Code::GroupAuthorizationFailed.code());
            }
            let ops = if ctx.version >= 3 && req.include_authorized_operations {
                ctx.authorized_operations(ResourceType::Group, &id.0)
            } else {
                i32::MIN
            };
            // A consumer group is not described here: Kafka answers it as a missing classic
            // group, saying why from v6 (GroupMetadataManager.describeGroups).
            let (d, consumer) = ctx.state.groups.read_group(&id.0, |c| {
                (
                    c.describe_group(&id.0),
                    c.describe_consumer_group(&id.0).is_ok(),
                )
            });
            let described = match d {
                Some(d) if d.state != g::GroupState::Dead => {
                    let stable = d.state == g::GroupState::Stable;
                    DescribedGroup::default()
                        .with_group_id(id)
                        .with_group_state(sb(d.state.name()))
                        .with_protocol_type(sb(d.protocol_type))
                        .with_protocol_data(sb(if stable { d.protocol } else { String::new() }))
                        .with_members(
                            d.members
                                .into_iter()
                                .map(|m| {
                                    DescribedGroupMember::default()
                                        .with_member_id(sb(m.member_id))
                                        .with_group_instance_id(if ctx.version >= 4 {
                                            m.group_instance_id.map(sb)
                                        } else {
                                            None
                                        })
                                        .with_client_id(sb(m.client_id))
                                        .with_client_host(sb(m.client_host))
                                        .with_member_metadata(if stable {
                                            Bytes::from(m.metadata)
                                        } else {
                                            Bytes::new()
                                        })
                                        .with_member_assignment(if stable {
                                            Bytes::from(m.assignment)
                                        } else {
                                            Bytes::new()
                                        })
                                })
                                .collect(),
                        )
                }
                _ => {
                    let id_text = id.0.to_string();
                    let dg = DescribedGroup::default()
                        .with_group_id(id)
                        .with_group_state(sb("Dead"));
                    if ctx.version >= 6 {
                        let why = if consumer {
                            format!("Group {} is not a classic group.", id_text)
                        } else {
                            format!("Group {} not found.", id_text)
                        };
                        dg.with_error_code(Code::GroupIdNotFound.code())
                            .with_error_message(Some(sb(why)))
                    } else {
                        dg
                    }
                }
            };
            described.with_authorized_operations(ops)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(ctx: &Ctx, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let (ids, denied): (Vec<String>, Vec<String>) = req
        .groups_names
        .iter()
        .map(|g| g.0.to_string())
        .partition(|g| ctx.allowed(Operation::Delete, ResourceType::Group, g));
    let denied = denied.into_iter().map(|id| {
        kafka_protocol::messages::delete_groups_response::DeletableGroupResult::default()
            .with_group_id(GroupId(sb(id)))
            .with_error_code(Code::GroupAuthorizationFailed.code())
    });
    let results = ctx
        .state
        .groups
        .delete_groups(ids)
        .await
        .into_iter()
        .map(|(id, r)| {
            if r.is_ok() {
                tracing::info!(group = %id, client = %ctx.client_id, "deleted group");
            }
            kafka_protocol::messages::delete_groups_response::DeletableGroupResult::default()
                .with_group_id(GroupId(sb(id)))
                .with_error_code(code(&r))
        })
        .chain(denied)
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

pub async fn offset_delete(ctx: &Ctx, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let st = &ctx.state;
    if !ctx.allowed(Operation::Delete, ResourceType::Group, &req.group_id.0) {
        return OffsetDeleteResponse::default()
            .with_error_code(Code::GroupAuthorizationFailed.code());
    }
    let mut wanted = Vec::new();
    let mut unknown = Vec::new();
    let mut denied = Vec::new();
    for t in &req.topics {
        if !ctx.allowed(Operation::Read, ResourceType::Topic, &t.name.0) {
            denied.extend(
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index)),
            );
            continue;
        }
        let meta = st.store.topic(&t.name.0);
        for p in &t.partitions {
            let ok = meta.as_ref().is_some_and(|m| {
                p.partition_index >= 0 && (p.partition_index as u32) < m.partitions
            });
            if ok {
                wanted.push((t.name.0.to_string(), p.partition_index));
            } else {
                unknown.push((t.name.0.to_string(), p.partition_index));
            }
        }
    }
    let group = req.group_id.0.to_string();
    let res = st
        .groups
        .call(&group.clone(), move |c, now| {
            c.delete_offsets(now, &group, &wanted)
        })
        .await;
    let parts = match res {
        Ok(Ok(parts)) => parts,
        Ok(Err(e)) | Err(e) => {
            return OffsetDeleteResponse::default().with_error_code(group_error_code(&e));
        }
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    let all = parts
        .into_iter()
        .map(|(t, p, r)| (t, p, code(&r)))
        .chain(
            unknown
                .into_iter()
                .map(|(t, p)| (t, p, Code::UnknownTopicOrPartition.code())),
        )
        .chain(
            denied
                .into_iter()
                .map(|(t, p)| (t, p, Code::TopicAuthorizationFailed.code())),
        );
    for (t, p, err) in all {
        let idx = match topics.iter().position(|x| x.name.0.as_str() == t) {
            Some(i) => i,
            None => {
                topics.push(OffsetDeleteResponseTopic::default().with_name(TopicName(sb(t))));
                topics.len() - 1
            }
        };
        topics[idx].partitions.push(
            OffsetDeleteResponsePartition::default()
                .with_partition_index(p)
                .with_error_code(err),
        );
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
