//! Online migration between the two group protocols, as Kafka 4 does it
//! (`group.consumer.migration.policy`):
//! - a live classic group becomes a consumer group when a consumer-protocol member joins it
//!   (upgrade): each classic member keeps its partitions, as a member at the group's epoch;
//! - classic members keep working inside a consumer group: JoinGroup, SyncGroup, Heartbeat and
//!   LeaveGroup are answered from the server-side assignment, and a member that must give up
//!   partitions or pick up new ones is told to rejoin (REBALANCE_IN_PROGRESS);
//! - when the last consumer-protocol member leaves, a group of classic members becomes a
//!   classic group again (downgrade) and rebalances the classic way.

use std::collections::{BTreeMap, BTreeSet};

use super::records::ClassicMemberMetadata;
use super::{
    current_record, epoch_record, member_record, target_epoch_record, target_record, Assignment,
    CMember, ConsumerGroup, MemberChange, MemberState, Timers, TopicId,
};
use crate::classic::prepare_rebalance;
use crate::consumer_protocol::{self, decode_assignment, decode_subscription};
use crate::coordinator::GroupCoordinator;
use crate::error::GroupError;
use crate::group::{Group, Member};
use crate::history::Cx;
use crate::types::{
    Effects, GroupState, Heartbeat, JoinGroup, JoinResponse, LeaveGroup, LeaveResult,
    RebalanceCause, Reply, ReplyToken, SyncGroup, SyncResponse, TopicsSnapshot,
};

const CONSUMER: &str = "consumer";

/// Names → ids for (topic, partitions) pairs; topics that do not exist (or partitions past
/// a topic's end) are dropped, as Kafka drops what its metadata image does not know.
fn to_ids(pairs: &[(String, Vec<i32>)], topics: &TopicsSnapshot) -> Assignment {
    let mut out = Assignment::new();
    for (name, ps) in pairs {
        let Some(t) = topics.by_name.get(name) else {
            continue;
        };
        let set: BTreeSet<i32> = ps
            .iter()
            .copied()
            .filter(|p| (0..t.partitions).contains(p))
            .collect();
        if !set.is_empty() {
            out.entry(t.id).or_default().extend(set);
        }
    }
    out
}

/// The topics of the group's recorded subscription, for callers without the broker's view.
fn recorded_topics(cg: &ConsumerGroup) -> TopicsSnapshot {
    TopicsSnapshot::new(
        cg.metadata
            .iter()
            .map(|(n, (id, p))| crate::types::TopicInfo {
                name: n.clone(),
                id: *id,
                partitions: *p,
            }),
    )
}

/// A classic member's assignment in the embedded consumer protocol, at the version of the
/// subscription it sent (Kafka answers each member in its own version).
fn encode_for(m: &CMember, names: &BTreeMap<TopicId, &str>, a: &Assignment) -> Vec<u8> {
    let version = m
        .classic
        .as_ref()
        .and_then(|c| c.protocols.first())
        .and_then(|(_, meta)| decode_subscription(meta).ok())
        .map_or(0, |s| s.version.clamp(0, 3));
    let partitions = a
        .iter()
        .filter(|(_, ps)| !ps.is_empty())
        .filter_map(|(t, ps)| {
            names
                .get(t)
                .map(|n| (n.to_string(), ps.iter().copied().collect()))
        })
        .collect();
    consumer_protocol::encode_assignment(&consumer_protocol::Assignment {
        version,
        partitions,
        user_data: None,
    })
}

impl ConsumerGroup {
    fn classic_members(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.classic.is_some())
            .count()
    }

    /// Kafka's `supportsClassicProtocols`: a classic member may join if it speaks the
    /// embedded consumer protocol and shares a protocol name with every classic member.
    fn supports_classic(&self, protocol_type: &str, protocols: &[(String, Vec<u8>)]) -> bool {
        if protocol_type != CONSUMER {
            return false;
        }
        let classic = self.classic_members();
        if classic == 0 {
            return !protocols.is_empty();
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .filter_map(|m| m.classic.as_ref())
                .filter(|c| c.protocols.iter().any(|(n, _)| n == name))
                .count()
                == classic
        })
    }

    /// Kafka's `waitingOnUnreleasedPartition`: some target partition the member lacks is
    /// still held by another member.
    fn waiting_on_unreleased(&self, m: &CMember) -> bool {
        if m.state != MemberState::UnreleasedPartitions {
            return false;
        }
        let Some(target) = self.target.get(&m.id) else {
            return false;
        };
        target.iter().any(|(t, ps)| {
            ps.iter().any(|p| {
                !m.assigned.get(t).is_some_and(|a| a.contains(p))
                    && self.owners.contains_key(&(*t, *p))
            })
        })
    }

    /// A classic member named by a request: by instance id for a static member, else by id.
    fn classic_member(
        &self,
        member_id: &str,
        instance: Option<&str>,
    ) -> Result<&CMember, GroupError> {
        let m = match instance {
            None => self
                .members
                .get(member_id)
                .ok_or(GroupError::UnknownMemberId)?,
            Some(i) => {
                let m = self.static_member(i).ok_or(GroupError::UnknownMemberId)?;
                if m.id != member_id {
                    return Err(GroupError::FencedInstanceId);
                }
                m
            }
        };
        if m.classic.is_none() {
            // A consumer-protocol member does not speak JoinGroup/SyncGroup/Heartbeat.
            return Err(GroupError::UnknownMemberId);
        }
        Ok(m)
    }
}

/// A classic group about to become a classic group again, built from a consumer group: what
/// the caller installs once the records are applied.
pub(crate) struct Downgrade {
    members: Vec<Member>,
    generation: i32,
    protocol: Option<String>,
    leader: Option<String>,
    /// A member left: the classic group rebalances. Not when a classic member just took a
    /// static member's place (its assignment is the one it would get anyway).
    rebalance: bool,
}

impl GroupCoordinator {
    /// Upgrade: the consumer group a live classic group becomes when a consumer-protocol
    /// member joins it. Writes the classic group's tombstone and the new group's records.
    pub(super) fn upgrade(
        &mut self,
        gid: &str,
        topics: &TopicsSnapshot,
        fx: &mut Effects,
    ) -> Result<ConsumerGroup, GroupError> {
        let g = self.groups.get(gid).ok_or(GroupError::GroupIdNotFound)?;
        if !self.config.migration.upgrade() {
            return Err(GroupError::GroupIdNotFound);
        }
        if g.protocol_type.as_deref() != Some(CONSUMER) {
            return Err(GroupError::GroupIdNotFound);
        }
        if g.members.len() > self.config.consumer_max_size {
            return Err(GroupError::GroupIdNotFound);
        }
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let generation = g.generation;
        let mut cg = ConsumerGroup {
            epoch: generation,
            assignment_epoch: generation,
            ..ConsumerGroup::default()
        };
        for m in &g.members {
            let meta = m
                .protocols
                .iter()
                .find(|(n, _)| *n == protocol)
                .or(m.protocols.first())
                .map(|(_, b)| b.as_slice())
                .unwrap_or_default();
            let sub = decode_subscription(meta).map_err(|_| GroupError::GroupIdNotFound)?;
            // A member still joining has no assignment yet: it holds nothing.
            let assigned = if m.assignment.is_empty() {
                Assignment::new()
            } else {
                let a =
                    decode_assignment(&m.assignment).map_err(|_| GroupError::GroupIdNotFound)?;
                to_ids(&a.partitions, topics)
            };
            let member = CMember {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: sub.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                names: sub.topics.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                epoch: generation,
                previous_epoch: generation,
                state: MemberState::Stable,
                assigned: assigned.clone(),
                classic: Some(ClassicMemberMetadata {
                    session_timeout_ms: m.session_timeout_ms,
                    protocols: m.protocols.clone(),
                }),
                ..CMember::default()
            };
            cg.target.insert(m.id.clone(), assigned);
            cg.hold(&member);
            cg.members.insert(m.id.clone(), member);
        }
        // Members parked in a rebalance of the classic group are told to join again.
        for m in &g.members {
            if let Some(t) = m.join_waiter {
                fx.replies
                    .push((t, Reply::Join(Err(GroupError::RebalanceInProgress))));
            }
            if let Some(t) = m.sync_waiter {
                fx.replies
                    .push((t, Reply::Sync(Err(GroupError::RebalanceInProgress))));
            }
        }
        fx.records.push(g.tombstone_record());
        for m in cg.members.values() {
            fx.records.push(member_record(gid, m));
        }
        fx.records.push(epoch_record(gid, generation));
        for (id, a) in &cg.target {
            fx.records.push(target_record(gid, id, a));
        }
        fx.records.push(target_epoch_record(gid, generation));
        for m in cg.members.values() {
            fx.records.push(current_record(gid, m));
        }
        Ok(cg)
    }

    /// Is this group a consumer group with members (where classic requests are answered by
    /// the consumer group's rules)?
    pub(crate) fn is_live_consumer_group(&self, gid: &str) -> bool {
        self.groups
            .get(gid)
            .and_then(|g| g.consumer.as_deref())
            .is_some_and(|cg| !cg.members.is_empty())
    }

    /// JoinGroup into a consumer group with members: the member joins (or rejoins) with its
    /// subscription, is reconciled at once, and is answered without waiting for anyone.
    pub(crate) fn classic_join_to_consumer(
        &mut self,
        now: i64,
        token: ReplyToken,
        req: &JoinGroup,
        topics: Option<&TopicsSnapshot>,
    ) -> Effects {
        self.save(&req.group_id);
        let mut fx = Effects::default();
        match self.classic_join_inner(now, req, topics, &mut fx) {
            Ok((resp, timers)) => {
                self.apply_keeping_history(now, &req.group_id, &fx);
                fx.replies.push((token, Reply::Join(Ok(resp))));
                self.after_apply(now, &req.group_id, timers, &mut fx);
            }
            Err(e) => {
                fx.records.clear();
                fx.replies.push((token, Reply::Join(Err(e))));
            }
        }
        fx
    }

    fn classic_join_inner(
        &mut self,
        now: i64,
        req: &JoinGroup,
        topics: Option<&TopicsSnapshot>,
        fx: &mut Effects,
    ) -> Result<(JoinResponse, Option<Timers>), GroupError> {
        let gid = req.group_id.as_str();
        let mut cg = self
            .groups
            .get(gid)
            .and_then(|g| g.consumer.as_deref())
            .cloned()
            .ok_or(GroupError::UnknownMemberId)?;
        let recorded;
        let topics = match topics {
            Some(t) => t,
            None => {
                recorded = recorded_topics(&cg);
                &recorded
            }
        };
        let unknown = req.member_id.is_empty();
        let member_id = if unknown {
            self.next_uuid()
        } else {
            req.member_id.clone()
        };
        let instance = req.group_instance_id.as_deref();
        let existing = match instance {
            Some(i) => cg.static_member(i).map(|m| m.id.clone()),
            None => cg
                .members
                .contains_key(&member_id)
                .then(|| member_id.clone()),
        };
        if existing.is_none() && cg.members.len() >= self.config.consumer_max_size {
            return Err(GroupError::GroupMaxSizeReached);
        }
        if !cg.supports_classic(&req.protocol_type, &req.protocols) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if unknown && instance.is_none() && req.api_version >= 4 {
            // Kafka's KIP-394 handshake: the member comes back with this id.
            return Err(GroupError::MemberIdRequired { member_id });
        }
        let members_before = cg.members.len();
        let (member, replaced) = match (instance, existing) {
            (None, Some(id)) => (cg.members[&id].clone(), None),
            (None, None) => (CMember::new(&member_id), None),
            (Some(_), None) if !unknown => return Err(GroupError::UnknownMemberId),
            (Some(_), None) => (CMember::new(&member_id), None),
            (Some(_), Some(old)) if unknown => {
                // A restarted static member takes over its old incarnation's place.
                let mut m = cg.members[&old].clone();
                m.id = member_id.clone();
                m.epoch = 0;
                m.previous_epoch = 0;
                m.partition_epochs.clear();
                (m, Some(old))
            }
            (Some(_), Some(old)) if old != member_id => return Err(GroupError::FencedInstanceId),
            (Some(_), Some(old)) => (cg.members[&old].clone(), None),
        };
        let new_member = !cg.members.contains_key(&member.id) && replaced.is_none();
        let (first_name, first_meta) = req.protocols.first().cloned().unwrap_or_default();
        let sub =
            decode_subscription(&first_meta).map_err(|_| GroupError::InconsistentGroupProtocol)?;
        let replaced_consumer = replaced
            .as_ref()
            .is_some_and(|old| cg.members.get(old).is_some_and(|m| m.classic.is_none()));
        if let Some(old) = &replaced {
            super::replace_static(gid, &mut cg, old, &member, fx);
        }
        let mut updated = member.clone();
        if req.group_instance_id.is_some() {
            updated.instance_id = req.group_instance_id.clone();
        }
        if sub.rack_id.is_some() {
            updated.rack_id = sub.rack_id.clone();
        }
        if req.rebalance_timeout_ms != -1 {
            updated.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        updated.server_assignor = None;
        updated.names = sub.topics.clone();
        updated.regex = None;
        updated.client_id = req.client_id.clone();
        updated.client_host = req.client_host.clone();
        updated.classic = Some(ClassicMemberMetadata {
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols.clone(),
        });
        // The partitions it still owns, as its subscription reports them: an eager client
        // reports none (it gave everything up before rejoining).
        let owned: Vec<(TopicId, Vec<i32>)> = to_ids(&sub.owned_partitions, topics)
            .into_iter()
            .map(|(t, ps)| (t, ps.into_iter().collect()))
            .collect();
        let cause = new_member.then(|| RebalanceCause::MemberJoined {
            member_id: member_id.clone(),
        });
        let change = MemberChange {
            new_member,
            replaced: replaced.is_some(),
            owned: Some(&owned),
            cause,
            members_before,
        };
        let step = self.advance(now, gid, &mut cg, &member, updated, change, topics, fx);
        let m = step.reconciled;
        // Kafka's validateOnlineDowngradeWithReplacedMemberId: the last consumer-protocol
        // member was a static one, and a classic member took its place.
        let downgrade = replaced_consumer
            && self.config.migration.downgrade()
            && cg.members.values().all(|m| m.classic.is_some())
            && cg.members.len() <= self.config.max_size;
        let mut conversion = Effects::default();
        let converted =
            downgrade.then(|| self.downgrade_records(now, gid, &cg, &[], &mut conversion));
        let fits =
            crate::records::batch_size(&conversion.records) <= self.config.max_record_batch_bytes;
        if let Some(mut d) = converted.filter(|_| fits) {
            fx.records.extend(conversion.records);
            d.rebalance = false;
            let response = JoinResponse {
                generation_id: d.generation,
                protocol_type: Some(CONSUMER.to_string()),
                protocol_name: d.protocol.clone(),
                leader: d.leader.clone().unwrap_or_default(),
                member_id: m.id.clone(),
                members: Vec::new(),
                skip_assignment: false,
            };
            let timers = Timers {
                downgrade: Some(d),
                ..Timers::default()
            };
            return Ok((response, Some(timers)));
        }
        Ok((
            JoinResponse {
                generation_id: m.epoch,
                protocol_type: Some(CONSUMER.to_string()),
                protocol_name: Some(first_name),
                // No leader: the broker assigns, every member just syncs.
                leader: String::new(),
                member_id: m.id.clone(),
                members: Vec::new(),
                skip_assignment: false,
            },
            Some(Timers {
                member_id: m.id.clone(),
                bumped: step.bumped,
                checked_generation: topics.generation,
                new_regexes: step.new_regexes,
                session_deadline: now + i64::from(req.session_timeout_ms),
                rebalance: step.rebalance,
                // The join is done; the SyncGroup must follow within the rebalance timeout.
                classic: Some((None, Some(now + i64::from(m.rebalance_timeout_ms.max(0))))),
                ..Timers::default()
            }),
        ))
    }

    /// A member's timers, to set them (they are not recorded).
    fn member_timers(&mut self, gid: &str, member_id: &str) -> Option<&mut CMember> {
        self.groups
            .get_mut(gid)
            .and_then(|g| g.consumer.as_mut())
            .and_then(|cg| cg.members.get_mut(member_id))
    }

    /// The consumer group and the classic member a SyncGroup or Heartbeat names, at the
    /// generation it names (its member epoch).
    fn classic_at(
        &self,
        gid: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(&ConsumerGroup, &CMember), GroupError> {
        let cg = self
            .groups
            .get(gid)
            .and_then(|g| g.consumer.as_deref())
            .ok_or(GroupError::UnknownMemberId)?;
        let m = cg.classic_member(member_id, instance)?;
        if generation != m.epoch {
            return Err(GroupError::IllegalGeneration);
        }
        Ok((cg, m))
    }

    /// Tells a classic member to rejoin (by answering REBALANCE_IN_PROGRESS), starting its
    /// join timer if it is not running.
    fn must_rejoin(&mut self, gid: &str, member_id: &str, now: i64) -> GroupError {
        if let Some(m) = self.member_timers(gid, member_id) {
            if m.join_deadline.is_none() {
                m.join_deadline = Some(now + i64::from(m.rebalance_timeout_ms.max(0)));
            }
        }
        GroupError::RebalanceInProgress
    }

    /// SyncGroup from a classic member of a consumer group: its current assignment.
    pub(crate) fn classic_sync_to_consumer(
        &mut self,
        now: i64,
        req: &SyncGroup,
    ) -> Result<SyncResponse, GroupError> {
        let gid = req.group_id.as_str();
        let instance = req.group_instance_id.as_deref();
        let (cg, m) = self.classic_at(gid, &req.member_id, instance, req.generation_id)?;
        let classic = m.classic.as_ref().expect("a classic member");
        let name = classic.protocols.first().map(|(n, _)| n.as_str());
        if req.protocol_type.as_deref().is_some_and(|t| t != CONSUMER)
            || req
                .protocol_name
                .as_deref()
                .is_some_and(|n| Some(n) != name)
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if cg.epoch > m.epoch && m.state != MemberState::UnrevokedPartitions {
            let id = m.id.clone();
            return Err(self.must_rejoin(gid, &id, now));
        }
        let assignment = encode_for(m, &cg.id_to_name(), &m.assigned);
        let session = classic.session_timeout_ms;
        let id = m.id.clone();
        if let Some(m) = self.member_timers(gid, &id) {
            m.sync_deadline = None;
            m.session_deadline = now + i64::from(session);
        }
        Ok(SyncResponse {
            protocol_type: req.protocol_type.clone(),
            protocol_name: req.protocol_name.clone(),
            assignment,
        })
    }

    /// Heartbeat from a classic member of a consumer group: keeps its session, and tells it
    /// to rejoin when the group moved on, when it must give up partitions, or when partitions
    /// it waits for have been released.
    pub(crate) fn classic_heartbeat_to_consumer(
        &mut self,
        now: i64,
        req: &Heartbeat,
    ) -> Result<(), GroupError> {
        let gid = req.group_id.as_str();
        let instance = req.group_instance_id.as_deref();
        let (cg, m) = self.classic_at(gid, &req.member_id, instance, req.generation_id)?;
        let rejoin = m.epoch < cg.epoch
            || m.state == MemberState::UnrevokedPartitions
            || (m.state == MemberState::UnreleasedPartitions && !cg.waiting_on_unreleased(m));
        let session = m.session_timeout_ms(&self.config);
        let id = m.id.clone();
        if let Some(m) = self.member_timers(gid, &id) {
            m.session_deadline = now + i64::from(session);
        }
        if rejoin {
            return Err(self.must_rejoin(gid, &id, now));
        }
        Ok(())
    }

    /// LeaveGroup naming classic members of a consumer group: they leave, and the group
    /// epoch moves once for all of them.
    pub(crate) fn classic_leave_to_consumer(
        &mut self,
        now: i64,
        req: &LeaveGroup,
    ) -> (LeaveResult, Effects) {
        let gid = req.group_id.as_str();
        let mut fx = Effects::default();
        let mut result = LeaveResult::default();
        let Some(cg) = self.groups.get(gid).and_then(|g| g.consumer.as_deref()) else {
            result.error = Some(GroupError::UnknownMemberId);
            return (result, fx);
        };
        let mut leaving: Vec<String> = Vec::new();
        for lm in &req.members {
            let outcome = match (&lm.group_instance_id, lm.member_id.is_empty()) {
                // The admin path: a static member named by its instance id alone.
                (Some(i), true) => match cg.static_member(i) {
                    Some(m) if m.classic.is_some() => Ok(m.id.clone()),
                    _ => Err(GroupError::UnknownMemberId),
                },
                _ => cg
                    .classic_member(&lm.member_id, lm.group_instance_id.as_deref())
                    .map(|m| m.id.clone()),
            };
            result
                .members
                .push((lm.clone(), outcome.clone().map(|_| ())));
            if let Ok(id) = outcome {
                if !leaving.contains(&id) {
                    leaving.push(id);
                }
            }
        }
        if let Some(first) = leaving.first() {
            let cause = RebalanceCause::MemberLeft {
                member_id: first.clone(),
            };
            let downgrade = self.fence_records(now, gid, &leaving, None, cause, &mut fx);
            self.apply_keeping_history(now, gid, &fx);
            if let Some(d) = downgrade {
                self.finish_downgrade(now, gid, d, &mut fx);
            }
            self.after_apply(now, gid, None, &mut fx);
        }
        (result, fx)
    }

    /// Kafka's `validateOnlineDowngradeWithFencedMember`: once `leaving` are gone, are the
    /// members left all classic (and some left), and may the group become classic again?
    pub(super) fn downgrade_after(&self, cg: &ConsumerGroup, leaving: &[String]) -> bool {
        let rest: Vec<&CMember> = cg
            .members
            .values()
            .filter(|m| !leaving.contains(&m.id))
            .collect();
        let consumer_leaving = leaving
            .iter()
            .any(|id| cg.members.get(id).is_some_and(|m| m.classic.is_none()));
        consumer_leaving
            && !rest.is_empty()
            && rest.iter().all(|m| m.classic.is_some())
            && self.config.migration.downgrade()
            && rest.len() <= self.config.max_size
    }

    /// Downgrade: the consumer group's tombstones and the classic group record of the members
    /// left, each with its target assignment; the classic state is installed by
    /// [`Self::finish_downgrade`] once these are applied.
    pub(super) fn downgrade_records(
        &self,
        now: i64,
        gid: &str,
        cg: &ConsumerGroup,
        leaving: &[String],
        fx: &mut Effects,
    ) -> Downgrade {
        super::tombstones(gid, cg, &mut fx.records);
        let rest: Vec<&CMember> = cg
            .members
            .values()
            .filter(|m| !leaving.contains(&m.id))
            .collect();
        // The first protocol (in the first member's order of preference) all members speak.
        let protocol = rest.first().and_then(|first| {
            first.classic.as_ref().and_then(|c| {
                c.protocols.iter().map(|(n, _)| n.clone()).find(|n| {
                    rest.iter().all(|m| {
                        m.classic
                            .as_ref()
                            .is_some_and(|c| c.protocols.iter().any(|(x, _)| x == n))
                    })
                })
            })
        });
        let names = cg.id_to_name();
        let members: Vec<Member> = rest
            .iter()
            .map(|m| {
                let c = m.classic.clone().unwrap_or_default();
                let target = cg.target.get(&m.id).cloned().unwrap_or_default();
                Member {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: c.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocol_type: CONSUMER.to_string(),
                    protocols: c.protocols.clone(),
                    assignment: encode_for(m, &names, &target),
                    join_waiter: None,
                    sync_waiter: None,
                    session_deadline: now + i64::from(c.session_timeout_ms),
                    new_member_deadline: None,
                }
            })
            .collect();
        let d = Downgrade {
            leader: members.first().map(|m| m.id.clone()),
            members,
            generation: cg.epoch,
            protocol,
            rebalance: true,
        };
        let mut g = Group::new(gid, now);
        install(&mut g, &d, now);
        fx.records.push(g.metadata_record());
        d
    }

    /// After the downgrade's records are applied: the classic group is in memory and starts a
    /// rebalance, so every member rejoins the classic way.
    pub(crate) fn finish_downgrade(&mut self, now: i64, gid: &str, d: Downgrade, fx: &mut Effects) {
        let mut cx = Cx::new(&self.config, &mut self.rebalance_seq);
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        install(g, &d, now);
        if d.rebalance {
            let member_id = d.members.first().map(|m| m.id.clone()).unwrap_or_default();
            let cause = RebalanceCause::MemberLeft { member_id };
            prepare_rebalance(g, now, &mut cx, fx, cause);
        }
    }
}

/// The classic state of a downgraded group.
fn install(g: &mut Group, d: &Downgrade, now: i64) {
    g.consumer = None;
    g.protocol_type = Some(CONSUMER.to_string());
    g.protocol_name = d.protocol.clone();
    g.generation = d.generation;
    g.leader = d.leader.clone();
    g.members = d.members.clone();
    g.pending.clear();
    g.pending_sync.clear();
    g.join_deadline = None;
    g.sync_deadline = None;
    g.initial_delay = None;
    g.state = GroupState::Stable;
    g.state_timestamp = Some(now);
    g.subscribed = g.compute_subscribed();
}
