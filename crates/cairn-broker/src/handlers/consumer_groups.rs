//! KIP-848's consumer group protocol at the edge: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe, translated to the coordinator's types and back. The rules live in
//! `cairn-group`; this module does what Kafka's KafkaApis does before and after calling them
//! (authorization, the protocol switch, topic names for ids).

use std::collections::{BTreeMap, BTreeSet};

use cairn_auth::{Operation, ResourceType};
use cairn_group as g;
use cairn_group::consumer::{Assignment, TopicId};
use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe, DescribedGroup, Member,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as heartbeat};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{sb, Ctx};
use crate::errors::{group_error_code, Code};
use crate::topics_view::Topics;

/// Strings the coordinator writes into `__consumer_offsets` records carry 16-bit lengths.
fn fits_record(s: &str) -> bool {
    s.len() <= i16::MAX as usize
}

/// Kafka's test for a missing string: empty or only whitespace.
fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

fn opt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// The text Kafka puts beside an error: ours carry one only where it says what to fix.
fn error_message(e: &g::GroupError) -> Option<StrBytes> {
    match e {
        g::GroupError::InvalidRequest(m) | g::GroupError::InvalidRegularExpression(m) => {
            Some(sb(m.clone()))
        }
        _ => None,
    }
}

fn heartbeat_error(code: i16, message: Option<String>) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code)
        .with_error_message(message.map(sb))
}

/// ConsumerGroupHeartbeat, checked in Kafka's order (KafkaApis.handleConsumerGroupHeartbeat):
/// the protocol must be enabled, READ on the group, DESCRIBE on every topic named in the
/// subscription.
pub async fn heartbeat(
    ctx: &Ctx,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let st = &ctx.state;
    if !st.config.consumer_protocol_enabled() {
        return heartbeat_error(Code::UnsupportedVersion.code(), None);
    }
    if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id.0) {
        return heartbeat_error(Code::GroupAuthorizationFailed.code(), None);
    }
    if let Some(names) = &req.subscribed_topic_names {
        // Every name is checked (each denial is audited), as Kafka filters the whole list.
        let denied = names
            .iter()
            .filter(|t| !ctx.allowed(Operation::Describe, ResourceType::Topic, &t.0))
            .count();
        if denied > 0 {
            return heartbeat_error(Code::TopicAuthorizationFailed.code(), None);
        }
    }
    // Kafka's coordinator refuses a blank group id with this code and text.
    if blank(&req.group_id.0) {
        return heartbeat_error(
            Code::InvalidRequest.code(),
            Some("GroupId can't be empty.".into()),
        );
    }
    if !fits_record(&req.group_id.0) {
        tracing::info!(peer = %ctx.peer, len = req.group_id.0.len(), "ConsumerGroupHeartbeat with an invalid group id");
        return heartbeat_error(Code::InvalidGroupId.code(), None);
    }
    let strings = [
        Some(&req.member_id),
        req.instance_id.as_ref(),
        req.rack_id.as_ref(),
        req.subscribed_topic_regex.as_ref(),
        req.server_assignor.as_ref(),
    ];
    let oversized = strings.iter().flatten().any(|s| !fits_record(s))
        || !fits_record(&ctx.client_id)
        || req
            .subscribed_topic_names
            .iter()
            .flatten()
            .any(|t| !fits_record(&t.0));
    if oversized {
        tracing::info!(peer = %ctx.peer, group = %req.group_id.0.as_str(), "ConsumerGroupHeartbeat with oversized identifiers refused");
        return heartbeat_error(
            Code::InvalidRequest.code(),
            Some("a field is longer than the group's records can hold".into()),
        );
    }
    let hb = g::ConsumerHeartbeat {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: opt(&req.instance_id),
        rack_id: opt(&req.rack_id),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: opt(&req.subscribed_topic_regex),
        server_assignor: opt(&req.server_assignor),
        topic_partitions: req.topic_partitions.map(|ts| {
            ts.into_iter()
                .map(|t| (t.topic_id.into_bytes(), t.partitions))
                .collect()
        }),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        api_version: ctx.version,
    };
    let topics = st.topics.get(&st.store);
    let group = hb.group_id.clone();
    let r = st
        .groups
        .call(&group, move |c, now| {
            c.consumer_heartbeat(now, hb, &topics.snapshot)
        })
        .await
        .and_then(|r| r);
    match r {
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| {
                heartbeat::Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(id, mut parts)| {
                            parts.sort_unstable();
                            heartbeat::TopicPartitions::default()
                                .with_topic_id(Uuid::from_bytes(id))
                                .with_partitions(parts)
                        })
                        .collect(),
                )
            })),
        Err(e) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(group_error_code(&e))
            .with_error_message(error_message(&e)),
    }
}

/// One assignment with topic names; ids of topics the broker no longer has are left out, as
/// Kafka does.
fn assignment(a: &Assignment, topics: &Topics) -> describe::Assignment {
    describe::Assignment::default().with_topic_partitions(
        a.iter()
            .filter_map(|(id, parts)| {
                let name = topics.names.get(id)?;
                Some(
                    describe::TopicPartitions::default()
                        .with_topic_id(Uuid::from_bytes(*id))
                        .with_topic_name(TopicName(sb(name.clone())))
                        .with_partitions(parts.iter().copied().collect()),
                )
            })
            .collect(),
    )
}

fn described(d: g::ConsumerGroupDescription, topics: &Topics, version: i16) -> DescribedGroup {
    let members = d
        .members
        .into_iter()
        .map(|m| {
            let member = Member::default()
                .with_member_id(sb(m.member_id))
                .with_instance_id(m.instance_id.map(sb))
                .with_rack_id(m.rack_id.map(sb))
                .with_member_epoch(m.member_epoch)
                .with_client_id(sb(m.client_id))
                .with_client_host(sb(m.client_host))
                .with_subscribed_topic_names(
                    m.subscribed_topic_names
                        .into_iter()
                        .map(|t| TopicName(sb(t)))
                        .collect(),
                )
                .with_subscribed_topic_regex(m.subscribed_topic_regex.map(sb))
                .with_assignment(assignment(&m.assignment, topics))
                .with_target_assignment(assignment(&m.target_assignment, topics));
            // v0 has no member type.
            if version >= 1 {
                member.with_member_type(m.member_type)
            } else {
                member
            }
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(GroupId(sb(d.group_id)))
        .with_group_state(sb(d.state))
        .with_group_epoch(d.group_epoch)
        .with_assignment_epoch(d.assignment_epoch)
        .with_assignor_name(sb(d.assignor_name))
        .with_members(members)
}

fn describe_error(id: GroupId, code: i16, message: Option<String>) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(id)
        .with_error_code(code)
        .with_error_message(message.map(sb))
}

/// ConsumerGroupDescribe as KafkaApis.handleConsumerGroupDescribe answers it: groups the
/// principal may not describe first, then the others; a group whose assignments name a topic
/// the principal may not describe is replaced by TOPIC_AUTHORIZATION_FAILED, so no topic name
/// or ownership leaks.
pub async fn describe(
    ctx: &Ctx,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let st = &ctx.state;
    if !st.config.consumer_protocol_enabled() {
        let groups = req
            .group_ids
            .into_iter()
            .map(|id| describe_error(id, Code::UnsupportedVersion.code(), None))
            .collect();
        return ConsumerGroupDescribeResponse::default().with_groups(groups);
    }
    let (allowed, denied): (Vec<GroupId>, Vec<GroupId>) = req
        .group_ids
        .into_iter()
        .partition(|id| ctx.allowed(Operation::Describe, ResourceType::Group, &id.0));
    let mut out: Vec<DescribedGroup> = denied
        .into_iter()
        .map(|id| describe_error(id, Code::GroupAuthorizationFailed.code(), None))
        .collect();
    let topics = st.topics.get(&st.store);
    // Topic DESCRIBE is asked once per name, however many groups and members name it.
    let mut topic_allowed: BTreeMap<TopicId, bool> = BTreeMap::new();
    for id in allowed {
        if id.0.is_empty() {
            out.push(describe_error(id, Code::InvalidGroupId.code(), None));
            continue;
        }
        let (d, classic) = st.groups.read_group(&id.0, |c| {
            (
                c.describe_consumer_group(&id.0),
                c.describe_group(&id.0).is_some(),
            )
        });
        let d = match d {
            Ok(d) => d,
            Err(g::GroupError::GroupIdNotFound) => {
                let why = if classic {
                    format!("Group {} is not a consumer group.", id.0.as_str())
                } else {
                    format!("Group {} not found.", id.0.as_str())
                };
                out.push(describe_error(id, Code::GroupIdNotFound.code(), Some(why)));
                continue;
            }
            Err(e) => {
                let code = group_error_code(&e);
                out.push(describe_error(
                    id,
                    code,
                    error_message(&e).map(|m| m.to_string()),
                ));
                continue;
            }
        };
        let named: BTreeSet<TopicId> = d
            .members
            .iter()
            .flat_map(|m| m.assignment.keys().chain(m.target_assignment.keys()))
            .copied()
            .collect();
        let hidden = named.iter().any(|tid| {
            let Some(name) = topics.names.get(tid) else {
                // Not shown (the topic is gone), so nothing to hide.
                return false;
            };
            !*topic_allowed
                .entry(*tid)
                .or_insert_with(|| ctx.allowed(Operation::Describe, ResourceType::Topic, name))
        });
        if hidden {
            out.push(describe_error(
                id,
                Code::TopicAuthorizationFailed.code(),
                Some(
                    "The group has described topic(s) that the client is not authorized to describe."
                        .into(),
                ),
            ));
            continue;
        }
        let ops = if req.include_authorized_operations {
            ctx.authorized_operations(ResourceType::Group, &id.0)
        } else {
            i32::MIN
        };
        out.push(described(d, &topics, ctx.version).with_authorized_operations(ops));
    }
    ConsumerGroupDescribeResponse::default().with_groups(out)
}
