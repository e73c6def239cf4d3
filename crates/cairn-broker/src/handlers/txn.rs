//! Transaction APIs: InitProducerId with a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn and TxnOffsetCommit. They translate the wire versions to the
//! transaction coordinator's calls (`cairn-txn`) and to the group coordinator's transactional
//! offset commit (`cairn-group`); the rules live there.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

use cairn_auth::{Operation, ResourceType};
use cairn_group as g;
use cairn_txn::{TopicPartition, TxnError};

use super::Ctx;
use crate::errors::{group_error_code, txn_error_code, Code};
use crate::groups::OFFSETS_TOPIC;
use crate::internal_topics;

/// InitProducerId for a transactional id (authorization already checked by the caller).
pub async fn init_producer_id(
    ctx: &Ctx,
    req: &InitProducerIdRequest,
    id: &str,
) -> InitProducerIdResponse {
    let st = &ctx.state;
    let failed = |code: i16| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let store = st.store.clone();
    let fresh = match tokio::task::spawn_blocking(move || store.next_producer_id()).await {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => {
            tracing::error!("cannot reserve producer ids: {e}");
            return failed(crate::errors::store_error_code(&e));
        }
        Err(_) => return failed(Code::UnknownServerError.code()),
    };
    let expected = if ctx.version >= 3 {
        (req.producer_id.0, req.producer_epoch)
    } else {
        (-1, -1)
    };
    let timeout = req.transaction_timeout_ms;
    let mut job = None;
    let res = st
        .txns
        .call(id, |c, now| {
            let (r, out, j) = c.init_producer_id(now, id, timeout, expected, fresh);
            job = j;
            (r, out)
        })
        .await;
    if let Some(job) = job {
        if res.is_ok() {
            tracing::info!(
                transactional_id = id,
                "a new producer instance fences the previous one: aborting its open transaction"
            );
            st.txns.spawn_job(job);
        }
    }
    match res {
        Ok(Ok((pid, epoch))) => {
            st.txns.note_producer(pid, id);
            tracing::debug!(
                transactional_id = id,
                producer_id = pid,
                epoch,
                "transactional producer initialized"
            );
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
        }
        Ok(Err(e)) | Err(e) => failed(txn_error_code(e, fenced_since(ctx, 4))),
    }
}

/// Whether this request version knows PRODUCER_FENCED (KIP-588); older ones get
/// INVALID_PRODUCER_EPOCH for it, as Kafka answers them.
fn fenced_since(ctx: &Ctx, version: i16) -> bool {
    ctx.version >= version
}

pub async fn add_partitions(
    ctx: &Ctx,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let st = &ctx.state;
    let id = req.v3_and_below_transactional_id.0.to_string();
    let all: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions.iter().map(move |p| (name.clone(), *p))
        })
        .collect();
    let answer = |codes: &dyn Fn(&str, i32) -> i16| {
        let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
        for t in &req.v3_and_below_topics {
            let results = t
                .partitions
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(codes(&t.name.0, *p))
                })
                .collect();
            topics.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name.clone())
                    .with_results_by_partition(results),
            );
        }
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
    };
    if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, &id) {
        let c = Code::TransactionalIdAuthorizationFailed.code();
        return answer(&|_, _| c);
    }
    // Kafka checks every partition first; if any is refused, the others are not attempted.
    let mut refused: Vec<((String, i32), i16)> = Vec::new();
    for (t, p) in &all {
        let code = if !ctx.allowed(Operation::Write, ResourceType::Topic, t) {
            Code::TopicAuthorizationFailed.code()
        } else if internal_topics::is_internal(t) || t == crate::txns::TXN_TOPIC {
            Code::InvalidTopicException.code()
        } else if !st
            .store
            .topic(t)
            .is_some_and(|m| *p >= 0 && (*p as u32) < m.partitions)
        {
            Code::UnknownTopicOrPartition.code()
        } else {
            continue;
        };
        refused.push(((t.clone(), *p), code));
    }
    if !refused.is_empty() {
        let not_attempted = Code::OperationNotAttempted.code();
        return answer(&|t, p| {
            refused
                .iter()
                .find(|((rt, rp), _)| rt == t && *rp == p)
                .map_or(not_attempted, |(_, c)| *c)
        });
    }
    let parts: Vec<TopicPartition> = all
        .iter()
        .map(|(t, p)| TopicPartition::new(t, *p))
        .collect();
    let (pid, epoch) = (
        req.v3_and_below_producer_id.0,
        req.v3_and_below_producer_epoch,
    );
    let res = st
        .txns
        .call(&id, |c, now| c.add_partitions(now, &id, pid, epoch, &parts))
        .await;
    let code = match res {
        Ok(Ok(())) => {
            st.txns.refresh_open_gauge();
            0
        }
        Ok(Err(e)) | Err(e) => txn_error_code(e, fenced_since(ctx, 2)),
    };
    answer(&|_, _| code)
}

pub async fn add_offsets(ctx: &Ctx, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let st = &ctx.state;
    let id = req.transactional_id.0.to_string();
    let fail = |c: i16| AddOffsetsToTxnResponse::default().with_error_code(c);
    if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, &id) {
        return fail(Code::TransactionalIdAuthorizationFailed.code());
    }
    if !ctx.allowed(Operation::Read, ResourceType::Group, &req.group_id.0) {
        return fail(Code::GroupAuthorizationFailed.code());
    }
    if let Err(e) = st.groups.ensure_topic().await {
        tracing::error!("cannot create {OFFSETS_TOPIC}: {e}");
        return fail(Code::CoordinatorNotAvailable.code());
    }
    let tp = TopicPartition::new(OFFSETS_TOPIC, st.groups.partition_for(&req.group_id.0));
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let res = st
        .txns
        .call(&id, |c, now| {
            c.add_partitions(now, &id, pid, epoch, std::slice::from_ref(&tp))
        })
        .await;
    match res {
        Ok(Ok(())) => AddOffsetsToTxnResponse::default(),
        Ok(Err(e)) | Err(e) => fail(txn_error_code(e, fenced_since(ctx, 2))),
    }
}

pub async fn end_txn(ctx: &Ctx, req: EndTxnRequest) -> EndTxnResponse {
    let st = &ctx.state;
    let id = req.transactional_id.0.to_string();
    let fail = |c: i16| EndTxnResponse::default().with_error_code(c);
    if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, &id) {
        return fail(Code::TransactionalIdAuthorizationFailed.code());
    }
    let (pid, epoch, commit) = (req.producer_id.0, req.producer_epoch, req.committed);
    let res = st
        .txns
        .call(&id, |c, now| c.end_txn(now, &id, pid, epoch, commit))
        .await;
    match res {
        Ok(Ok(job)) => {
            // The prepared state is durable: the outcome is decided. The markers follow.
            if let Some(job) = job {
                st.txns.spawn_job(job);
            }
            EndTxnResponse::default()
        }
        Ok(Err(e)) | Err(e) => fail(txn_error_code(e, fenced_since(ctx, 2))),
    }
}

pub async fn txn_offset_commit(ctx: &Ctx, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let st = &ctx.state;
    let id = req.transactional_id.0.to_string();
    let group = req.group_id.0.to_string();
    let answer = |codes: &dyn Fn(&str, i32) -> i16| {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(codes(&t.name.0, p.partition_index))
                            })
                            .collect(),
                    )
            })
            .collect();
        TxnOffsetCommitResponse::default().with_topics(topics)
    };
    if !ctx.allowed(Operation::Write, ResourceType::TransactionalId, &id) {
        let c = Code::TransactionalIdAuthorizationFailed.code();
        return answer(&|_, _| c);
    }
    if !ctx.allowed(Operation::Read, ResourceType::Group, &group) {
        let c = Code::GroupAuthorizationFailed.code();
        return answer(&|_, _| c);
    }
    // The offsets partition must be in the producer's transaction (AddOffsetsToTxn), or the
    // commit could never be settled by a marker.
    let tp = TopicPartition::new(OFFSETS_TOPIC, st.groups.partition_for(&group));
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let held = st
        .txns
        .read(&id, |c| {
            c.verify_partitions(&id, pid, epoch, std::slice::from_ref(&tp))
        })
        .unwrap_or(Err(TxnError::InvalidProducerIdMapping));
    let v = ctx.version;
    match held {
        Ok(v) if v.first() == Some(&true) => {}
        Ok(_) => {
            let c = Code::InvalidTxnState.code();
            return answer(&|_, _| c);
        }
        Err(e) => {
            let c = txn_error_code(e, v >= 3);
            return answer(&|_, _| c);
        }
    }
    let mut unknown: Vec<(String, i32, i16)> = Vec::new();
    let mut topics = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let denied = !ctx.allowed(Operation::Read, ResourceType::Topic, &name);
        let meta = st.store.topic(&name);
        let mut parts = Vec::new();
        for p in &t.partitions {
            let exists = meta.as_ref().is_some_and(|m| {
                p.partition_index >= 0 && (p.partition_index as u32) < m.partitions
            });
            if denied {
                unknown.push((
                    name.clone(),
                    p.partition_index,
                    Code::TopicAuthorizationFailed.code(),
                ));
            } else if !exists {
                unknown.push((
                    name.clone(),
                    p.partition_index,
                    Code::UnknownTopicOrPartition.code(),
                ));
            } else {
                parts.push(g::TxnOffsetPartition {
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if v >= 2 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                });
            }
        }
        if !parts.is_empty() {
            topics.push((name, parts));
        }
    }
    let commit = g::TxnOffsetCommit {
        group_id: group.clone(),
        transactional_id: id.clone(),
        producer_id: pid,
        producer_epoch: epoch,
        generation_id: if v >= 3 { req.generation_id } else { -1 },
        member_id: if v >= 3 {
            req.member_id.to_string()
        } else {
            String::new()
        },
        group_instance_id: if v >= 3 {
            req.group_instance_id.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        topics,
    };
    let res = st
        .groups
        .call(&group, |c, now| c.txn_offset_commit(now, &commit))
        .await;
    let results: Vec<(String, i32, i16)> = match res {
        Ok(topics) => topics
            .into_iter()
            .flat_map(|(t, ps)| {
                ps.into_iter()
                    .map(move |(p, r)| (t.clone(), p, r.as_ref().err().map_or(0, group_error_code)))
            })
            .collect(),
        Err(e) => {
            let c = group_error_code(&e);
            return answer(&|t, p| {
                unknown
                    .iter()
                    .find(|(ut, up, _)| ut == t && *up == p)
                    .map_or(c, |(_, _, uc)| *uc)
            });
        }
    };
    answer(&|t, p| {
        unknown
            .iter()
            .chain(results.iter())
            .find(|(rt, rp, _)| rt == t && *rp == p)
            .map_or(0, |(_, _, c)| *c)
    })
}
