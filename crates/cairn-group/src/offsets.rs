//! Committed offsets: OffsetCommit validation, OffsetFetch, retention, and the deletions
//! (DeleteGroups, OffsetDelete, deleted topics), with Kafka's rules for each.

use crate::classic::{prepare_rebalance, validate_member};
use crate::coordinator::GroupCoordinator;
use crate::error::GroupError;
use crate::group::{Group, OffsetEntry};
use crate::history::Cx;
use crate::records;
use crate::types::{
    CommitResult, Effects, FetchResult, FetchedOffset, GroupState, OffsetCommit, RebalanceCause,
    Record, TxnCommitResult, TxnOffsetCommit,
};
use cairn_runtime::BatchTag;
use std::collections::BTreeSet;

/// Per-group outcome of a DeleteGroups.
pub type DeleteGroupsResult = Vec<(String, Result<(), GroupError>)>;

/// Per-partition outcome of an OffsetDelete (group-level error on the outside).
pub type DeleteOffsetsResult = Result<Vec<(String, i32, Result<(), GroupError>)>, GroupError>;

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Group-level OffsetCommit validation, in Kafka's order: a dead group, a simple commit to a
/// group with members, an unknown member, a stale generation, a rebalance in progress.
fn validate_commit(g: &Group, req: &OffsetCommit) -> Result<(), GroupError> {
    if g.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if req.generation_id < 0 && g.state == GroupState::Empty {
        return Ok(());
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        validate_member(g, &req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
    } else if g.state != GroupState::Empty {
        return Err(GroupError::UnknownMemberId);
    }
    if g.state == GroupState::CompletingRebalance {
        return Err(GroupError::RebalanceInProgress);
    }
    Ok(())
}

/// Group-level TxnOffsetCommit validation, as Kafka's group coordinator does it for a
/// transactional commit: a dead group; no member, generation or instance at all (older
/// clients) is accepted in any state; otherwise the member (or static instance) must be known
/// and the generation current. No REBALANCE_IN_PROGRESS: the transaction decides.
fn validate_txn_commit(g: &Group, req: &TxnOffsetCommit) -> Result<(), GroupError> {
    if g.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if let Some(cg) = g.consumer.as_deref() {
        // A consumer group: the member and its current epoch, as Kafka checks a
        // transactional commit (an older producer sends neither).
        if req.generation_id < 0 && req.member_id.is_empty() {
            return Ok(());
        }
        let m = cg
            .members
            .get(&req.member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if m.epoch != req.generation_id {
            // A classic member (online migration) is told in its own protocol's words.
            return Err(if m.classic.is_some() {
                GroupError::IllegalGeneration
            } else {
                GroupError::StaleMemberEpoch
            });
        }
        return Ok(());
    }
    if req.generation_id < 0 && g.state == GroupState::Empty {
        return Ok(());
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        validate_member(g, &req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
    }
    Ok(())
}

/// When (if ever) an offset of this group becomes eligible for expiry, by Kafka's retention rule:
/// an explicit expire timestamp wins; otherwise retention counts from the commit in a simple
/// group, from the moment an Empty group became empty, and from the commit for topics no member
/// of a Stable consumer group subscribes to; never in the other cases.
fn is_expired(g: &Group, topic: &str, e: &OffsetEntry, now: i64, retention: i64) -> bool {
    let base = match g.protocol_type.as_deref() {
        // Simple group: retention counts from the commit.
        None | Some("") => e.commit_timestamp,
        Some(_) if g.state == GroupState::Empty => g.state_timestamp.unwrap_or(e.commit_timestamp),
        Some("consumer") if g.state == GroupState::Stable && g.subscribed.is_some() => {
            if g.is_subscribed(topic) {
                return false;
            }
            e.commit_timestamp
        }
        Some(_) => return false,
    };
    match e.expire_timestamp {
        Some(at) => now >= at,
        None => now.saturating_sub(base) >= retention,
    }
}

impl GroupCoordinator {
    pub fn commit_offsets(&mut self, now: i64, req: OffsetCommit) -> (CommitResult, Effects) {
        self.arm_expiry(now);
        // A commit changes its offsets (saved one by one as they are replayed) and the
        // committing member's session timer; the timer stays refreshed if the write fails (the
        // member was heard from), so the group itself is not saved.
        let (result, fx) = self.decide_commit(now, &req);
        self.apply(now, &fx);
        (result, fx)
    }

    fn decide_commit(&mut self, now: i64, req: &OffsetCommit) -> (CommitResult, Effects) {
        let mut fx = Effects::default();
        let fail = |e: GroupError| CommitResult {
            error: Some(e.clone()),
            partitions: req
                .partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition, Err(e.clone())))
                .collect(),
        };
        if req.group_id.is_empty() {
            return (fail(GroupError::InvalidGroupId), fx);
        }
        let mut fresh;
        let g = match self.groups.get_mut(&req.group_id) {
            Some(g) => g,
            None => {
                if req.generation_id >= 0 {
                    let e = if req.api_version >= 9 {
                        GroupError::GroupIdNotFound
                    } else {
                        GroupError::IllegalGeneration
                    };
                    return (fail(e), fx);
                }
                // Admin tools and manual-assignment consumers commit into a "simple" group,
                // created by its record like everything else.
                fresh = Group::new(&req.group_id, now);
                fx.records.push(fresh.metadata_record());
                &mut fresh
            }
        };
        let per_partition = if g.consumer.is_some() {
            let parts: Vec<(String, i32)> = req
                .partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition))
                .collect();
            match GroupCoordinator::check_consumer_commit(
                g,
                &req.member_id,
                req.generation_id,
                req.api_version,
                &parts,
            ) {
                Ok(v) => Some(v),
                Err(e) => return (fail(e), fx),
            }
        } else {
            if let Err(e) = validate_commit(g, req) {
                return (fail(e), fx);
            }
            None
        };
        if matches!(g.state, GroupState::Stable | GroupState::PreparingRebalance) {
            if let Some(m) = g.member_mut(&req.member_id) {
                m.session_deadline = now + i64::from(m.session_timeout_ms);
            }
        }
        let max_meta = self.config.offset_metadata_max_bytes;
        let mut result = CommitResult::default();
        let mut commit_records: Vec<Record> = Vec::new();
        for (i, p) in req.partitions.iter().enumerate() {
            if let Some(Err(e)) = per_partition.as_ref().map(|v| &v[i]) {
                result
                    .partitions
                    .push((p.topic.clone(), p.partition, Err(e.clone())));
                continue;
            }
            let metadata = p.metadata.clone().unwrap_or_default();
            if utf16_len(&metadata) > max_meta {
                result.partitions.push((
                    p.topic.clone(),
                    p.partition,
                    Err(GroupError::OffsetMetadataTooLarge),
                ));
                continue;
            }
            let expire_timestamp =
                (req.retention_time_ms >= 0).then(|| now + req.retention_time_ms);
            let entry = OffsetEntry {
                offset: p.offset,
                // The v1 value that keeps an explicit expiry cannot hold an epoch.
                leader_epoch: if expire_timestamp.is_some() {
                    -1
                } else {
                    p.leader_epoch
                },
                metadata,
                commit_timestamp: now,
                expire_timestamp,
                record_seq: 0,
            };
            commit_records.push(g.offset_record(&p.topic, p.partition, Some(&entry)));
            result
                .partitions
                .push((p.topic.clone(), p.partition, Ok(())));
        }
        let size = records::batch_size(fx.records.iter().chain(&commit_records));
        if size > self.config.max_record_batch_bytes {
            // The commit is one write: if it cannot be stored whole, nothing of it is kept.
            // Kafka answers a commit whose write is too large with INVALID_COMMIT_OFFSET_SIZE.
            for (_, _, r) in &mut result.partitions {
                if r.is_ok() {
                    *r = Err(GroupError::InvalidCommitOffsetSize);
                }
            }
            return (result, fx);
        }
        fx.records.extend(commit_records);
        (result, fx)
    }

    /// TxnOffsetCommit: the offsets are written in the producer's transactional batch and stay
    /// pending (invisible to OffsetFetch) until the producer's COMMIT marker; an ABORT marker
    /// drops them. An unknown group is created as an Empty simple group, as Kafka does.
    pub fn txn_offset_commit(
        &mut self,
        now: i64,
        req: &TxnOffsetCommit,
    ) -> (TxnCommitResult, Effects) {
        self.arm_expiry(now);
        let (result, fx) = self.decide_txn_commit(now, req);
        self.apply(now, &fx);
        (result, fx)
    }

    fn decide_txn_commit(&mut self, now: i64, req: &TxnOffsetCommit) -> (TxnCommitResult, Effects) {
        let mut fx = Effects::default();
        let fail = |e: GroupError| -> TxnCommitResult {
            req.topics
                .iter()
                .map(|(t, ps)| {
                    let ps = ps.iter().map(|p| (p.partition, Err(e.clone()))).collect();
                    (t.clone(), ps)
                })
                .collect()
        };
        if req.group_id.is_empty() {
            return (fail(GroupError::InvalidGroupId), fx);
        }
        let fresh;
        let g = match self.groups.get(&req.group_id) {
            Some(g) => g,
            // Only a commit without a generation creates the (simple) group.
            None if req.generation_id >= 0 => {
                return (fail(GroupError::IllegalGeneration), fx);
            }
            None => {
                fresh = Group::new(&req.group_id, now);
                fx.records.push(fresh.metadata_record());
                &fresh
            }
        };
        if let Err(e) = validate_txn_commit(g, req) {
            return (fail(e), Effects::default());
        }
        let tag = BatchTag::Transactional {
            producer_id: req.producer_id,
            producer_epoch: req.producer_epoch,
        };
        let max_meta = self.config.offset_metadata_max_bytes;
        let mut result: TxnCommitResult = Vec::new();
        let mut commit_records: Vec<Record> = Vec::new();
        for (topic, parts) in &req.topics {
            let mut out = Vec::new();
            for p in parts {
                let metadata = p.metadata.clone().unwrap_or_default();
                if utf16_len(&metadata) > max_meta {
                    out.push((p.partition, Err(GroupError::OffsetMetadataTooLarge)));
                    continue;
                }
                let entry = OffsetEntry {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp: now,
                    expire_timestamp: None,
                    record_seq: 0,
                };
                let mut r = g.offset_record(topic, p.partition, Some(&entry));
                r.tag = tag;
                commit_records.push(r);
                out.push((p.partition, Ok(())));
            }
            result.push((topic.clone(), out));
        }
        // Counted as one batch, as for plain commits: the request is one write, and the bound
        // is safe whether the log splits it by tag or not.
        let size = records::batch_size(fx.records.iter().chain(&commit_records));
        if size > self.config.max_record_batch_bytes {
            for (_, ps) in &mut result {
                for (_, r) in ps {
                    if r.is_ok() {
                        *r = Err(GroupError::InvalidCommitOffsetSize);
                    }
                }
            }
            return (result, Effects::default());
        }
        fx.records.extend(commit_records);
        (result, fx)
    }

    /// Writes a transaction marker for `producer_id` into this coordinator's log and applies
    /// it: COMMIT makes the producer's pending offsets committed, ABORT drops them. Written
    /// even when nothing is pending, since the transaction coordinator sends markers again
    /// after a restart and each must be answered once it is durable.
    pub fn complete_transaction(
        &mut self,
        now: i64,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Effects {
        self.arm_expiry(now);
        let kind = if commit {
            records::ControlType::Commit
        } else {
            records::ControlType::Abort
        };
        let mut fx = Effects::default();
        fx.records.push(Record {
            // A marker belongs to no group: it settles the producer's offsets in all of them.
            group_id: String::new(),
            key: records::encode_control_key(kind),
            value: Some(records::encode_control_value(coordinator_epoch)),
            tag: BatchTag::Control {
                producer_id,
                producer_epoch,
            },
        });
        self.apply(now, &fx);
        fx
    }

    /// Committed offsets; `partitions = None` means every committed partition of the group.
    /// Committed offsets as the durable records leave them (a commit whose records are not yet
    /// durable is not seen); `partitions = None` means every committed partition of the group.
    pub fn fetch_offsets(&self, group: &str, partitions: Option<&[(String, i32)]>) -> FetchResult {
        let g = self
            .committed_group(group)
            .filter(|g| g.state != GroupState::Dead);
        let fetched = |t: &str, p: i32, e: Option<&OffsetEntry>| match e {
            Some(e) => FetchedOffset {
                topic: t.to_string(),
                partition: p,
                offset: e.offset,
                leader_epoch: e.leader_epoch,
                metadata: e.metadata.clone(),
            },
            None => FetchedOffset {
                topic: t.to_string(),
                partition: p,
                offset: -1,
                leader_epoch: -1,
                metadata: String::new(),
            },
        };
        let partitions = match partitions {
            Some(ps) => ps
                .iter()
                .map(|(t, p)| {
                    let e = g.and_then(|_| self.committed_offset(group, t, *p));
                    fetched(t, *p, e)
                })
                .collect(),
            None => match g {
                Some(_) => self
                    .committed_offsets(group)
                    .iter()
                    .map(|((t, p), e)| fetched(t, *p, Some(e)))
                    .collect(),
                None => Vec::new(),
            },
        };
        FetchResult { partitions }
    }

    pub fn delete_groups(&mut self, now: i64, ids: &[String]) -> (DeleteGroupsResult, Effects) {
        self.arm_expiry(now);
        let mut fx = Effects::default();
        let mut out = Vec::new();
        let mut deleted = std::collections::BTreeSet::new();
        for id in ids {
            let r = match self.groups.get(id) {
                _ if id.is_empty() => Err(GroupError::InvalidGroupId),
                None => Err(GroupError::GroupIdNotFound),
                Some(_) if deleted.contains(id) => Err(GroupError::GroupIdNotFound),
                Some(g) if g.state == GroupState::Dead => Err(GroupError::GroupIdNotFound),
                Some(g) if g.state != GroupState::Empty => Err(GroupError::NonEmptyGroup),
                Some(g) if g.consumer.as_ref().is_some_and(|c| !c.members.is_empty()) => {
                    Err(GroupError::NonEmptyGroup)
                }
                Some(g) => {
                    delete_group_records(g, &self.pending_partitions(id), &mut fx);
                    deleted.insert(id.clone());
                    Ok(())
                }
            };
            out.push((id.clone(), r));
        }
        for id in &deleted {
            self.save(id);
        }
        self.apply(now, &fx);
        (out, fx)
    }

    pub fn delete_offsets(
        &mut self,
        now: i64,
        group: &str,
        parts: &[(String, i32)],
    ) -> (DeleteOffsetsResult, Effects) {
        self.arm_expiry(now);
        let mut fx = Effects::default();
        let Some(g) = self
            .groups
            .get(group)
            .filter(|g| g.state != GroupState::Dead)
        else {
            return (Err(GroupError::GroupIdNotFound), fx);
        };
        if g.state != GroupState::Empty && g.protocol_type.as_deref() != Some("consumer") {
            return (Err(GroupError::NonEmptyGroup), fx);
        }
        let mut out = Vec::new();
        let mut tombstoned = std::collections::BTreeSet::new();
        for (t, p) in parts {
            let r = if g.is_subscribed(t) {
                Err(GroupError::GroupSubscribedToTopic)
            } else {
                let key = (t.clone(), *p);
                let held = g.offsets.contains_key(&key) || self.partition_has_pending(group, t, *p);
                if held && !tombstoned.contains(&key) {
                    fx.records.push(g.offset_record(t, *p, None));
                    tombstoned.insert(key);
                }
                Ok(())
            };
            out.push((t.clone(), *p, r));
        }
        self.apply(now, &fx);
        (Ok(out), fx)
    }

    /// A topic gained partitions: groups consuming it must rebalance so the leader
    /// assigns the new partitions.
    pub fn on_topic_partitions_changed(&mut self, now: i64, topic: &str) -> Effects {
        self.arm_expiry(now);
        let mut fx = Effects::default();
        let touched: Vec<String> = self
            .groups
            .values()
            .filter(|g| {
                // Consumer groups see new partitions in their next heartbeat's metadata.
                g.consumer.is_none()
                    && matches!(
                        g.state,
                        GroupState::Stable | GroupState::CompletingRebalance
                    )
                    && g.is_subscribed(topic)
            })
            .map(|g| g.id.clone())
            .collect();
        for id in &touched {
            self.save(id);
        }
        let mut cx = Cx::new(&self.config, &mut self.rebalance_seq);
        for g in self.groups.values_mut() {
            if touched.contains(&g.id) {
                let cause = RebalanceCause::PartitionsAdded {
                    topic: topic.to_string(),
                };
                prepare_rebalance(g, now, &mut cx, &mut fx, cause);
            }
        }
        self.apply(now, &fx);
        fx
    }

    /// A topic was deleted: every group forgets its offsets for it.
    pub fn on_topic_deleted(&mut self, now: i64, topic: &str) -> Effects {
        self.arm_expiry(now);
        let mut fx = Effects::default();
        for g in self.groups.values() {
            for (t, p) in g.offsets.keys().filter(|(t, _)| t == topic) {
                fx.records.push(g.offset_record(t, *p, None));
            }
            // Offsets open transactions hold for the topic go too, so a COMMIT cannot bring
            // them back.
            for (t, p) in self.pending_partitions(&g.id) {
                if t == topic && !g.offsets.contains_key(&(t.clone(), p)) {
                    fx.records.push(g.offset_record(&t, p, None));
                }
            }
        }
        self.apply(now, &fx);
        fx
    }

    /// The periodic retention sweep.
    pub(crate) fn expire_offsets(&mut self, now: i64, fx: &mut Effects) {
        let retention = self.config.offsets_retention_ms;
        for g in self.groups.values() {
            let mut expired = 0;
            for ((t, p), e) in &g.offsets {
                // An open transaction may still commit this partition: Kafka keeps it.
                if is_expired(g, t, e, now, retention) && !self.partition_has_pending(&g.id, t, *p)
                {
                    fx.records.push(g.offset_record(t, *p, None));
                    expired += 1;
                }
            }
            // An Empty group with nothing left to remember is deleted.
            if g.state == GroupState::Empty
                && g.offsets.len() == expired
                && g.pending.is_empty()
                && !self.group_has_pending(&g.id)
            {
                g.delete_records(&mut fx.records);
            }
        }
    }
}

/// Offsets first, then the group, so a reader never sees offsets of a deleted group. Like
/// Kafka, partitions only open transactions hold get a tombstone too, which drops them.
fn delete_group_records(g: &Group, pending: &BTreeSet<(String, i32)>, fx: &mut Effects) {
    for (t, p) in g.offsets.keys() {
        fx.records.push(g.offset_record(t, *p, None));
    }
    for (t, p) in pending {
        if !g.offsets.contains_key(&(t.clone(), *p)) {
            fx.records.push(g.offset_record(t, *p, None));
        }
    }
    g.delete_records(&mut fx.records);
}

impl GroupCoordinator {
    /// Partitions of `group` some open transaction holds an offset for (current state).
    fn pending_partitions(&self, group: &str) -> BTreeSet<(String, i32)> {
        self.txn_pending
            .values()
            .flat_map(|m| m.keys())
            .filter(|(g, _, _)| g == group)
            .map(|(_, t, p)| (t.clone(), *p))
            .collect()
    }
}
