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
    Record,
};

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
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                let e = if req.api_version >= 9 {
                    GroupError::GroupIdNotFound
                } else {
                    GroupError::IllegalGeneration
                };
                return (fail(e), fx);
            }
            // Admin tools and manual-assignment consumers commit into a "simple" group.
            let g = Group::new(&req.group_id, now);
            fx.records.push(g.metadata_record());
            self.groups.insert(req.group_id.clone(), g);
        }
        let max_meta = self.config.offset_metadata_max_bytes;
        let g = self.groups.get_mut(&req.group_id).expect("present");
        if let Err(e) = validate_commit(g, &req) {
            return (fail(e), fx);
        }
        if matches!(g.state, GroupState::Stable | GroupState::PreparingRebalance) {
            if let Some(m) = g.member_mut(&req.member_id) {
                m.session_deadline = now + i64::from(m.session_timeout_ms);
            }
        }
        let mut result = CommitResult::default();
        let mut accepted = Vec::new();
        for p in &req.partitions {
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
                // The v1 value that keeps an explicit expiry cannot hold an epoch; keep memory
                // identical to what a replay of the record would produce.
                leader_epoch: if expire_timestamp.is_some() {
                    -1
                } else {
                    p.leader_epoch
                },
                metadata,
                commit_timestamp: now,
                expire_timestamp,
            };
            accepted.push((p.topic.clone(), p.partition, entry));
            result
                .partitions
                .push((p.topic.clone(), p.partition, Ok(())));
        }
        let commit_records: Vec<Record> = accepted
            .iter()
            .map(|(t, p, e)| g.offset_record(t, *p, Some(e)))
            .collect();
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
        for (t, p, entry) in accepted {
            g.offsets.insert((t, p), entry);
        }
        (result, fx)
    }

    /// Committed offsets; `partitions = None` means every committed partition of the group.
    pub fn fetch_offsets(&self, group: &str, partitions: Option<&[(String, i32)]>) -> FetchResult {
        let g = self
            .groups
            .get(group)
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
                    let e = g.and_then(|g| g.offsets.get(&(t.clone(), *p)));
                    fetched(t, *p, e)
                })
                .collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), e)| fetched(t, *p, Some(e)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        FetchResult { partitions }
    }

    pub fn delete_groups(&mut self, now: i64, ids: &[String]) -> (DeleteGroupsResult, Effects) {
        self.arm_expiry(now);
        let mut fx = Effects::default();
        let mut out = Vec::new();
        for id in ids {
            let r = match self.groups.get(id) {
                _ if id.is_empty() => Err(GroupError::InvalidGroupId),
                None => Err(GroupError::GroupIdNotFound),
                Some(g) if g.state == GroupState::Dead => Err(GroupError::GroupIdNotFound),
                Some(g) if g.state != GroupState::Empty => Err(GroupError::NonEmptyGroup),
                Some(_) => {
                    let g = self.groups.remove(id).expect("present");
                    delete_group_records(&g, &mut fx);
                    Ok(())
                }
            };
            out.push((id.clone(), r));
        }
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
            .get_mut(group)
            .filter(|g| g.state != GroupState::Dead)
        else {
            return (Err(GroupError::GroupIdNotFound), fx);
        };
        if g.state != GroupState::Empty && g.protocol_type.as_deref() != Some("consumer") {
            return (Err(GroupError::NonEmptyGroup), fx);
        }
        let mut out = Vec::new();
        for (t, p) in parts {
            let r = if g.is_subscribed(t) {
                Err(GroupError::GroupSubscribedToTopic)
            } else {
                if g.offsets.remove(&(t.clone(), *p)).is_some() {
                    fx.records.push(g.offset_record(t, *p, None));
                }
                Ok(())
            };
            out.push((t.clone(), *p, r));
        }
        (Ok(out), fx)
    }

    /// A topic gained partitions: groups consuming it must rebalance so the leader
    /// assigns the new partitions.
    pub fn on_topic_partitions_changed(&mut self, now: i64, topic: &str) -> Effects {
        self.arm_expiry(now);
        let mut fx = Effects::default();
        let mut cx = Cx::new(&self.config, &mut self.rebalance_seq);
        for g in self.groups.values_mut() {
            if matches!(
                g.state,
                GroupState::Stable | GroupState::CompletingRebalance
            ) && g.is_subscribed(topic)
            {
                let cause = RebalanceCause::PartitionsAdded {
                    topic: topic.to_string(),
                };
                prepare_rebalance(g, now, &mut cx, &mut fx, cause);
            }
        }
        fx
    }

    /// A topic was deleted: every group forgets its offsets for it.
    pub fn on_topic_deleted(&mut self, now: i64, topic: &str) -> Effects {
        self.arm_expiry(now);
        let mut fx = Effects::default();
        for g in self.groups.values_mut() {
            let gone: Vec<(String, i32)> = g
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            for (t, p) in gone {
                g.offsets.remove(&(t.clone(), p));
                fx.records.push(g.offset_record(&t, p, None));
            }
        }
        fx
    }

    /// The periodic retention sweep.
    pub(crate) fn expire_offsets(&mut self, now: i64, fx: &mut Effects) {
        let retention = self.config.offsets_retention_ms;
        let mut dead = Vec::new();
        for g in self.groups.values_mut() {
            let expired: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|((t, _), e)| is_expired(g, t, e, now, retention))
                .map(|(k, _)| k.clone())
                .collect();
            for (t, p) in expired {
                g.offsets.remove(&(t.clone(), p));
                fx.records.push(g.offset_record(&t, p, None));
            }
            // An Empty group with nothing left to remember is deleted.
            if g.state == GroupState::Empty && g.offsets.is_empty() && g.pending.is_empty() {
                dead.push(g.id.clone());
            }
        }
        for id in dead {
            let g = self.groups.remove(&id).expect("present");
            fx.records.push(g.tombstone_record());
        }
    }
}

/// Offsets first, then the group, so a reader never sees offsets of a deleted group.
fn delete_group_records(g: &Group, fx: &mut Effects) {
    for (t, p) in g.offsets.keys() {
        fx.records.push(g.offset_record(t, *p, None));
    }
    fx.records.push(g.tombstone_record());
}
