//! The classic group protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and the timers
//! that drive rebalances, following Kafka's classic group coordinator.

use crate::coordinator::GroupCoordinator;
use crate::error::GroupError;
use crate::group::{Group, InitialDelay, Member};
use crate::history::{self, Cx};
use crate::types::{
    Effects, GroupState, Heartbeat, JoinGroup, LeaveGroup, LeaveResult, RebalanceCause, Reply,
    ReplyToken, SyncGroup, SyncResponse, TopicsSnapshot,
};

fn join_err(fx: &mut Effects, token: ReplyToken, e: GroupError) {
    fx.replies.push((token, Reply::Join(Err(e))));
}

fn sync_err(fx: &mut Effects, token: ReplyToken, e: GroupError) {
    fx.replies.push((token, Reply::Sync(Err(e))));
}

/// Member/instance validation shared by SyncGroup, Heartbeat, LeaveGroup and OffsetCommit.
pub(crate) fn validate_member(
    g: &Group,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), GroupError> {
    if let Some(inst) = instance_id {
        match g.static_member(inst) {
            Some(m) if m == member_id => return Ok(()),
            Some(_) => return Err(GroupError::FencedInstanceId),
            None => return Err(GroupError::UnknownMemberId),
        }
    }
    if g.member(member_id).is_some() {
        Ok(())
    } else {
        Err(GroupError::UnknownMemberId)
    }
}

/// Kafka's `acceptJoiningMember` for `group.max.size`.
fn accepts_joining_member(g: &Group, member_id: &str, max: usize) -> bool {
    match g.state {
        GroupState::Empty | GroupState::Dead => true,
        GroupState::PreparingRebalance => {
            g.member(member_id).is_some_and(|m| m.join_waiter.is_some()) || g.awaiting_join() < max
        }
        GroupState::CompletingRebalance | GroupState::Stable => {
            g.member(member_id).is_some() || g.members.len() < max
        }
    }
}

/// Starts (or restarts) a rebalance: → PreparingRebalance, recording why.
pub(crate) fn prepare_rebalance(
    g: &mut Group,
    now: i64,
    cx: &mut Cx<'_>,
    fx: &mut Effects,
    cause: RebalanceCause,
) {
    history::start(g, now, cx, cause, fx);
    if g.state == GroupState::CompletingRebalance {
        // The leader's assignment for this generation will never come; release parked syncs.
        for m in &mut g.members {
            m.assignment.clear();
            if let Some(t) = m.sync_waiter.take() {
                sync_err(fx, t, GroupError::RebalanceInProgress);
                // A member counts as alive while parked; answering it starts its session anew,
                // as Kafka does, so it has a full session to rejoin.
                m.session_deadline = now + i64::from(m.session_timeout_ms);
            }
        }
    }
    g.pending_sync.clear();
    g.sync_deadline = None;
    let initial = g.state == GroupState::Empty && cx.cfg.initial_rebalance_delay_ms > 0;
    g.transition(GroupState::PreparingRebalance, now);
    let rebalance_timeout = g.rebalance_timeout();
    if initial {
        let delay = cx.cfg.initial_rebalance_delay_ms.min(rebalance_timeout);
        g.initial_delay = Some(InitialDelay {
            remaining_ms: (rebalance_timeout - cx.cfg.initial_rebalance_delay_ms).max(0),
            new_member_added: false,
        });
        g.join_deadline = Some(now + delay);
    } else {
        g.initial_delay = None;
        g.join_deadline = Some(now + rebalance_timeout);
        maybe_complete_join(g, now, cx, fx);
    }
}

/// Completes the join phase early when everyone is in (never during the initial delay).
pub(crate) fn maybe_complete_join(g: &mut Group, now: i64, cx: &mut Cx<'_>, fx: &mut Effects) {
    if g.state == GroupState::PreparingRebalance && g.initial_delay.is_none() && g.all_joined() {
        complete_join(g, now, cx, fx);
    }
}

/// The leader's assignment cannot be stored because the group record would be larger than
/// the offsets topic accepts. As Kafka does when storing it fails: every member parked in
/// SyncGroup gets UNKNOWN_SERVER_ERROR with an empty assignment, and the group rebalances
/// again; nothing of this generation's assignment is kept.
fn fail_assignment(g: &mut Group, now: i64, cx: &mut Cx<'_>, fx: &mut Effects, size: usize) {
    for m in &mut g.members {
        m.assignment.clear();
        if let Some(t) = m.sync_waiter.take() {
            sync_err(fx, t, GroupError::UnknownServerError);
            m.session_deadline = now + i64::from(m.session_timeout_ms);
        }
    }
    let limit = cx.cfg.max_record_batch_bytes;
    let cause = RebalanceCause::Other(format!(
        "group record of {size} bytes exceeds the offsets topic's limit of {limit} bytes"
    ));
    prepare_rebalance(g, now, cx, fx, cause);
}

/// What a removal means for the group's state machine; `cause` names the rebalance it
/// starts, if it starts one.
pub(crate) fn after_member_removed(
    g: &mut Group,
    now: i64,
    cx: &mut Cx<'_>,
    fx: &mut Effects,
    cause: RebalanceCause,
) {
    match g.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(g, now, cx, fx, cause)
        }
        GroupState::PreparingRebalance => maybe_complete_join(g, now, cx, fx),
        GroupState::Empty | GroupState::Dead => {}
    }
}

/// End of the join phase: bump the generation and answer every parked join.
pub(crate) fn complete_join(g: &mut Group, now: i64, cx: &mut Cx<'_>, fx: &mut Effects) {
    // Dynamic members that did not rejoin are gone; static ones keep their place.
    let absent: Vec<String> = g
        .members
        .iter()
        .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in absent {
        g.remove_member(&id, fx, GroupError::UnknownMemberId);
    }
    if g.members.is_empty() {
        g.generation += 1;
        g.protocol_name = None;
        g.leader = None;
        g.join_deadline = None;
        g.initial_delay = None;
        g.transition(GroupState::Empty, now);
        g.subscribed = g.compute_subscribed();
        fx.records.push(g.metadata_record());
        history::join_completed(g, now);
        history::emptied(g, now, fx);
        return;
    }
    let leader_joined = g
        .leader
        .as_deref()
        .and_then(|l| g.member(l))
        .is_some_and(|m| m.join_waiter.is_some());
    if !leader_joined {
        match g.members.iter().find(|m| m.join_waiter.is_some()) {
            Some(m) => g.leader = Some(m.id.clone()),
            None => {
                // Only absent static members remain: wait another rebalance timeout. For
                // the history this is a new join phase, caused by the timeout.
                let absent = g.members.iter().map(|m| m.id.clone()).collect();
                let cause = RebalanceCause::RebalanceTimeout { member_ids: absent };
                history::start(g, now, cx, cause, fx);
                g.join_deadline = Some(now + g.rebalance_timeout());
                return;
            }
        }
    }
    g.generation += 1;
    g.protocol_name = g.select_protocol();
    g.join_deadline = None;
    g.initial_delay = None;
    g.transition(GroupState::CompletingRebalance, now);
    history::join_completed(g, now);
    g.subscribed = g.compute_subscribed();
    g.pending_sync.clear();
    for m in &mut g.members {
        m.new_member_deadline = None;
        m.session_deadline = now + i64::from(m.session_timeout_ms);
        g.pending_sync.insert(m.id.clone());
    }
    g.sync_deadline = Some(now + g.rebalance_timeout());
    let waiting: Vec<(String, ReplyToken)> = g
        .members
        .iter_mut()
        .filter_map(|m| m.join_waiter.take().map(|t| (m.id.clone(), t)))
        .collect();
    for (id, token) in waiting {
        fx.replies
            .push((token, Reply::Join(Ok(g.join_response(&id)))));
    }
}

fn new_member(req: &JoinGroup, id: String, token: ReplyToken, now: i64) -> Member {
    Member {
        id,
        instance_id: req.group_instance_id.clone(),
        client_id: req.client_id.clone(),
        client_host: req.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        protocol_type: req.protocol_type.clone(),
        protocols: req.protocols.clone(),
        assignment: Vec::new(),
        join_waiter: Some(token),
        sync_waiter: None,
        session_deadline: now + i64::from(req.session_timeout_ms),
        new_member_deadline: None,
    }
}

fn update_member(m: &mut Member, req: &JoinGroup, token: ReplyToken, now: i64, fx: &mut Effects) {
    if let Some(old) = m.join_waiter.replace(token) {
        // A duplicate join supersedes the earlier one; the client retries on this error.
        join_err(fx, old, GroupError::RebalanceInProgress);
    }
    m.client_id = req.client_id.clone();
    m.client_host = req.client_host.clone();
    m.session_timeout_ms = req.session_timeout_ms;
    m.rebalance_timeout_ms = req.rebalance_timeout_ms;
    m.protocol_type = req.protocol_type.clone();
    m.protocols = req.protocols.clone();
    m.session_deadline = now + i64::from(req.session_timeout_ms);
}

fn add_member_and_rebalance(
    g: &mut Group,
    now: i64,
    cx: &mut Cx<'_>,
    fx: &mut Effects,
    token: ReplyToken,
    req: &JoinGroup,
    member_id: String,
) {
    g.pending.remove(&member_id);
    let mut m = new_member(req, member_id.clone(), token, now);
    m.new_member_deadline = Some(now + cx.cfg.new_member_join_timeout_ms);
    if g.members.is_empty() {
        g.protocol_type = Some(req.protocol_type.clone());
    }
    if g.leader.is_none() {
        g.leader = Some(member_id.clone());
    }
    g.members.push(m);
    if let Some(d) = &mut g.initial_delay {
        d.new_member_added = true;
    }
    match g.state {
        GroupState::PreparingRebalance => maybe_complete_join(g, now, cx, fx),
        _ => {
            let cause = RebalanceCause::MemberJoined {
                member_id: member_id.clone(),
            };
            prepare_rebalance(g, now, cx, fx, cause)
        }
    }
}

impl GroupCoordinator {
    pub fn join_group(&mut self, now: i64, token: ReplyToken, req: JoinGroup) -> Effects {
        self.join_group_with_topics(now, token, req, None)
    }

    /// JoinGroup with the broker's topics, which a consumer group with members needs to
    /// take a classic member's subscription (without them it knows only the topics it
    /// already records).
    pub fn join_group_with_topics(
        &mut self,
        now: i64,
        token: ReplyToken,
        req: JoinGroup,
        topics: Option<&TopicsSnapshot>,
    ) -> Effects {
        self.arm_expiry(now);
        let valid_timeout = (self.config.min_session_timeout_ms
            ..=self.config.max_session_timeout_ms)
            .contains(&req.session_timeout_ms);
        if valid_timeout && !req.group_id.is_empty() && self.is_live_consumer_group(&req.group_id) {
            return self.classic_join_to_consumer(now, token, &req, topics);
        }
        // A dynamic member joining a rebalance in progress writes nothing (the joiner keeps the
        // group from emptying); anything else may write the group's record.
        let writes_nothing = req.group_instance_id.is_none()
            && self
                .groups
                .get(&req.group_id)
                .is_some_and(|g| g.state == GroupState::PreparingRebalance);
        if writes_nothing {
            self.save_unless_final(&req.group_id);
        } else {
            self.save(&req.group_id);
        }
        let mut fx = Effects::default();
        if let Err(e) = self.join_inner(now, token, &req, &mut fx) {
            join_err(&mut fx, token, e);
        }
        self.apply(now, &fx);
        fx
    }

    fn join_inner(
        &mut self,
        now: i64,
        token: ReplyToken,
        req: &JoinGroup,
        fx: &mut Effects,
    ) -> Result<(), GroupError> {
        if req.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Err(GroupError::InvalidSessionTimeout);
        }
        if let Some(cg) = self
            .groups
            .get(&req.group_id)
            .and_then(|g| g.consumer.as_deref())
        {
            // (A consumer group with members was routed to its own rules above.) An empty
            // consumer group becomes a classic one: its records are deleted, by replaying
            // their tombstones like any record (its offsets stay).
            let mut conversion = Effects::default();
            crate::consumer::tombstones(&req.group_id, cg, &mut conversion.records);
            self.apply(now, &conversion);
            fx.records.extend(conversion.records);
        }
        let converted = fx.records.len();
        let created = !self.groups.contains_key(&req.group_id);
        if created {
            if !req.member_id.is_empty() {
                return Err(GroupError::UnknownMemberId);
            }
            // Validate before creating so a bad first join leaves nothing behind.
            if req.protocol_type.is_empty() || req.protocols.is_empty() {
                return Err(GroupError::InconsistentGroupProtocol);
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now));
        }
        let new_id = if req.member_id.is_empty() {
            let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
            Some(format!("{prefix}-{}", self.next_uuid()))
        } else {
            None
        };
        let mut cx = Cx::new(&self.config, &mut self.rebalance_seq);
        let g = self.groups.get_mut(&req.group_id).expect("present");
        let result = join_group_in(g, now, &mut cx, token, req, new_id, fx);
        if created && fx.records.len() == converted {
            // A brand-new group is persisted even before it has anything else to record.
            fx.records.push(g.metadata_record());
        }
        result
    }

    pub fn sync_group(&mut self, now: i64, token: ReplyToken, req: SyncGroup) -> Effects {
        self.arm_expiry(now);
        if self.is_live_consumer_group(&req.group_id) {
            // Writes nothing: the assignment is the member's current one.
            self.save_unless_final(&req.group_id);
            let mut fx = Effects::default();
            let r = self.classic_sync_to_consumer(now, &req);
            fx.replies.push((token, Reply::Sync(r)));
            return fx;
        }
        // Only the leader's SyncGroup completing a rebalance writes the group's record.
        let may_write = self.groups.get(&req.group_id).is_some_and(|g| {
            g.state == GroupState::CompletingRebalance && g.is_leader(&req.member_id)
        });
        if may_write {
            self.save(&req.group_id);
        } else {
            self.save_unless_final(&req.group_id);
        }
        let mut fx = Effects::default();
        let mut cx = Cx::new(&self.config, &mut self.rebalance_seq);
        let result = match self.groups.get_mut(&req.group_id) {
            None => Err(GroupError::UnknownMemberId),
            Some(g) => sync_group_in(g, now, &mut cx, token, &req, &mut fx),
        };
        if let Err(e) = result {
            sync_err(&mut fx, token, e);
        }
        self.apply(now, &fx);
        fx
    }

    pub fn heartbeat(&mut self, now: i64, req: Heartbeat) -> Result<(), GroupError> {
        self.arm_expiry(now);
        // A heartbeat writes nothing: it can only be undone with an earlier request.
        self.save_unless_final(&req.group_id);
        if self.is_live_consumer_group(&req.group_id) {
            return self.classic_heartbeat_to_consumer(now, &req);
        }
        let g = self
            .groups
            .get_mut(&req.group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if g.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        validate_member(g, &req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let state = g.state;
        let m = g.member_mut(&req.member_id).expect("validated");
        match state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                m.session_deadline = now + i64::from(m.session_timeout_ms);
                Err(GroupError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.session_deadline = now + i64::from(m.session_timeout_ms);
                Ok(())
            }
        }
    }

    pub fn leave_group(&mut self, now: i64, req: LeaveGroup) -> (LeaveResult, Effects) {
        self.arm_expiry(now);
        self.save(&req.group_id);
        if self.is_live_consumer_group(&req.group_id) {
            return self.classic_leave_to_consumer(now, &req);
        }
        let mut fx = Effects::default();
        let mut cx = Cx::new(&self.config, &mut self.rebalance_seq);
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            let r = LeaveResult {
                error: Some(GroupError::UnknownMemberId),
                members: vec![],
            };
            return (r, fx);
        };
        if g.state == GroupState::Dead {
            let r = LeaveResult {
                error: Some(GroupError::CoordinatorNotAvailable),
                members: vec![],
            };
            return (r, fx);
        }
        let mut result = LeaveResult::default();
        // The first member removed names the rebalance, if one starts.
        let mut removed_member: Option<String> = None;
        let mut removed_pending = false;
        for lm in &req.members {
            let outcome = if lm.member_id.is_empty() {
                // The admin path: remove a static member by instance id alone.
                match lm
                    .group_instance_id
                    .as_deref()
                    .and_then(|i| g.static_member(i))
                {
                    Some(id) => {
                        let id = id.to_string();
                        g.remove_member(&id, &mut fx, GroupError::UnknownMemberId);
                        removed_member.get_or_insert(id);
                        Ok(())
                    }
                    None => Err(GroupError::UnknownMemberId),
                }
            } else if g.pending.remove(&lm.member_id).is_some() {
                removed_pending = true;
                Ok(())
            } else {
                validate_member(g, &lm.member_id, lm.group_instance_id.as_deref()).map(|()| {
                    g.remove_member(&lm.member_id, &mut fx, GroupError::UnknownMemberId);
                    removed_member.get_or_insert_with(|| lm.member_id.clone());
                })
            };
            result.members.push((lm.clone(), outcome));
        }
        if let Some(member_id) = removed_member {
            let cause = RebalanceCause::MemberLeft { member_id };
            after_member_removed(g, now, &mut cx, &mut fx, cause);
        } else if removed_pending {
            maybe_complete_join(g, now, &mut cx, &mut fx);
        }
        self.apply(now, &fx);
        (result, fx)
    }

    /// Fires the classic-protocol timers of one group that are due at `now`.
    pub(crate) fn fire_group_timers(&mut self, id: &str, now: i64, fx: &mut Effects) {
        let mut cx = Cx::new(&self.config, &mut self.rebalance_seq);
        let Some(g) = self.groups.get_mut(id) else {
            return;
        };
        // Pending (MEMBER_ID_REQUIRED) members that never came back.
        let before = g.pending.len();
        g.pending.retain(|_, deadline| *deadline > now);
        if g.pending.len() != before {
            maybe_complete_join(g, now, &mut cx, fx);
        }
        // New members stuck in their first join for too long.
        let stale_new: Vec<String> = g
            .members
            .iter()
            .filter(|m| m.join_waiter.is_some() && m.new_member_deadline.is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for mid in stale_new {
            g.remove_member(&mid, fx, GroupError::UnknownMemberId);
            // Only PreparingRebalance has parked joins, so this never starts a rebalance.
            let cause = RebalanceCause::Other(format!("new member {mid} join timed out"));
            after_member_removed(g, now, &mut cx, fx, cause);
        }
        // Session expiry.
        let expired: Vec<String> = g
            .members
            .iter()
            .filter(|m| m.session_expired(now))
            .map(|m| m.id.clone())
            .collect();
        for mid in expired {
            // An earlier removal in this loop may have completed a join and reset timers.
            if g.member(&mid).is_some_and(|m| m.session_expired(now)) {
                g.remove_member(&mid, fx, GroupError::UnknownMemberId);
                let cause = RebalanceCause::SessionTimeout { member_id: mid };
                after_member_removed(g, now, &mut cx, fx, cause);
            }
        }
        // Join phase timer (initial delay or rebalance timeout).
        if g.state == GroupState::PreparingRebalance && g.join_deadline.is_some_and(|d| d <= now) {
            match &mut g.initial_delay {
                Some(d) if d.new_member_added && d.remaining_ms > 0 => {
                    let delay = cx.cfg.initial_rebalance_delay_ms.min(d.remaining_ms);
                    d.remaining_ms -= delay;
                    d.new_member_added = false;
                    g.join_deadline = Some(now + delay);
                }
                _ => {
                    g.initial_delay = None;
                    complete_join(g, now, &mut cx, fx);
                }
            }
        }
        // Sync timer: members that never sent SyncGroup are removed.
        if matches!(
            g.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && g.sync_deadline.is_some_and(|d| d <= now)
        {
            g.sync_deadline = None;
            let missing: Vec<String> = g.pending_sync.iter().cloned().collect();
            g.pending_sync.clear();
            let mut removed = Vec::new();
            for mid in missing {
                if g.remove_member(&mid, fx, GroupError::UnknownMemberId) {
                    removed.push(mid);
                }
            }
            if !removed.is_empty() {
                let cause = RebalanceCause::SyncTimeout {
                    member_ids: removed,
                };
                after_member_removed(g, now, &mut cx, fx, cause);
            }
        } else if !matches!(
            g.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            g.sync_deadline = None;
        }
    }
}

fn join_group_in(
    g: &mut Group,
    now: i64,
    cx: &mut Cx<'_>,
    token: ReplyToken,
    req: &JoinGroup,
    new_id: Option<String>,
    fx: &mut Effects,
) -> Result<(), GroupError> {
    if g.state == GroupState::Dead {
        return Err(GroupError::CoordinatorNotAvailable);
    }
    if !accepts_joining_member(g, &req.member_id, cx.cfg.max_size) {
        return Err(GroupError::GroupMaxSizeReached);
    }
    if !g.supports_protocols(&req.protocol_type, &req.protocols) {
        return Err(GroupError::InconsistentGroupProtocol);
    }
    if let Some(new_id) = new_id {
        return join_new_member(g, now, cx, token, req, new_id, fx);
    }
    // A pending dynamic member coming back with the id we gave it.
    if g.pending.contains_key(&req.member_id) && req.group_instance_id.is_none() {
        add_member_and_rebalance(g, now, cx, fx, token, req, req.member_id.clone());
        return Ok(());
    }
    validate_member(g, &req.member_id, req.group_instance_id.as_deref())?;
    let is_leader = g.is_leader(&req.member_id);
    let state = g.state;
    let m = g.member_mut(&req.member_id).expect("validated");
    match state {
        GroupState::PreparingRebalance => {
            update_member(m, req, token, now, fx);
            maybe_complete_join(g, now, cx, fx);
        }
        GroupState::CompletingRebalance => {
            if m.protocols == req.protocols {
                // Lost join response: hand out the same generation again.
                m.session_deadline = now + i64::from(m.session_timeout_ms);
                let resp = g.join_response(&req.member_id);
                fx.replies.push((token, Reply::Join(Ok(resp))));
            } else {
                update_member(m, req, token, now, fx);
                let cause = RebalanceCause::MemberRejoinedWithNewMetadata {
                    member_id: req.member_id.clone(),
                };
                prepare_rebalance(g, now, cx, fx, cause);
            }
        }
        GroupState::Stable => {
            let changed = m.protocols != req.protocols;
            if is_leader || changed {
                update_member(m, req, token, now, fx);
                // New metadata is the more telling cause when the leader brings some.
                let member_id = req.member_id.clone();
                let cause = if changed {
                    RebalanceCause::MemberRejoinedWithNewMetadata { member_id }
                } else {
                    RebalanceCause::LeaderRejoined { member_id }
                };
                prepare_rebalance(g, now, cx, fx, cause);
            } else {
                m.session_deadline = now + i64::from(m.session_timeout_ms);
                let resp = g.join_response(&req.member_id);
                fx.replies.push((token, Reply::Join(Ok(resp))));
            }
        }
        GroupState::Empty | GroupState::Dead => return Err(GroupError::UnknownMemberId),
    }
    Ok(())
}

fn join_new_member(
    g: &mut Group,
    now: i64,
    cx: &mut Cx<'_>,
    token: ReplyToken,
    req: &JoinGroup,
    new_id: String,
    fx: &mut Effects,
) -> Result<(), GroupError> {
    match req.group_instance_id.as_deref() {
        Some(inst) => match g.static_member(inst).map(str::to_string) {
            Some(old_id) => replace_static_member(g, now, cx, token, req, &old_id, new_id, fx),
            None => add_member_and_rebalance(g, now, cx, fx, token, req, new_id),
        },
        None if req.api_version >= 4 => {
            g.pending
                .insert(new_id.clone(), now + i64::from(req.session_timeout_ms));
            return Err(GroupError::MemberIdRequired { member_id: new_id });
        }
        None => add_member_and_rebalance(g, now, cx, fx, token, req, new_id),
    }
    Ok(())
}

/// A static member restarted with a fresh member id: it takes over the old member's place.
#[allow(clippy::too_many_arguments)]
fn replace_static_member(
    g: &mut Group,
    now: i64,
    cx: &mut Cx<'_>,
    token: ReplyToken,
    req: &JoinGroup,
    old_id: &str,
    new_id: String,
    fx: &mut Effects,
) {
    let pos = g
        .members
        .iter()
        .position(|m| m.id == old_id)
        .expect("mapped");
    // In Stable the replacement is written at once; kept to undo it if the record won't fit.
    let undo = (g.state == GroupState::Stable).then(|| {
        (
            g.members[pos].clone(),
            g.leader.clone(),
            g.pending_sync.clone(),
        )
    });
    let old = &mut g.members[pos];
    if let Some(t) = old.join_waiter.take() {
        join_err(fx, t, GroupError::FencedInstanceId);
    }
    if let Some(t) = old.sync_waiter.take() {
        sync_err(fx, t, GroupError::FencedInstanceId);
    }
    let mut m = new_member(req, new_id.clone(), token, now);
    m.join_waiter = None;
    m.assignment = std::mem::take(&mut old.assignment);
    g.members[pos] = m;
    if g.is_leader(old_id) {
        g.leader = Some(new_id.clone());
    }
    if g.pending_sync.remove(old_id) {
        g.pending_sync.insert(new_id.clone());
    }
    match g.state {
        GroupState::Stable if g.select_protocol() == g.protocol_name => {
            // Same protocol: no rebalance. Persist the new identity and return the current
            // generation; a leader is told to skip computing a new assignment.
            let record = match g.metadata_record_within(cx.cfg.max_record_batch_bytes) {
                Ok(record) => record,
                Err(_) => {
                    // Kafka reverts the replacement when this write fails: the old member
                    // stays, the new one is told why.
                    let (old, leader, pending_sync) = undo.expect("taken in Stable");
                    g.members[pos] = old;
                    g.leader = leader;
                    g.pending_sync = pending_sync;
                    join_err(fx, token, GroupError::UnknownServerError);
                    return;
                }
            };
            fx.records.push(record);
            let mut resp = g.join_response(&new_id);
            resp.skip_assignment = g.is_leader(&new_id);
            fx.replies.push((token, Reply::Join(Ok(resp))));
        }
        GroupState::PreparingRebalance => {
            g.members[pos].join_waiter = Some(token);
            maybe_complete_join(g, now, cx, fx);
        }
        _ => {
            g.members[pos].join_waiter = Some(token);
            let cause = RebalanceCause::StaticMemberReplaced {
                instance_id: req.group_instance_id.clone().unwrap_or_default(),
            };
            prepare_rebalance(g, now, cx, fx, cause);
        }
    }
}

fn sync_group_in(
    g: &mut Group,
    now: i64,
    cx: &mut Cx<'_>,
    token: ReplyToken,
    req: &SyncGroup,
    fx: &mut Effects,
) -> Result<(), GroupError> {
    match g.state {
        GroupState::Empty => return Err(GroupError::UnknownMemberId),
        GroupState::Dead => return Err(GroupError::CoordinatorNotAvailable),
        _ => {}
    }
    validate_member(g, &req.member_id, req.group_instance_id.as_deref())?;
    if req.generation_id != g.generation {
        return Err(GroupError::IllegalGeneration);
    }
    let type_ok = req
        .protocol_type
        .as_ref()
        .is_none_or(|t| Some(t) == g.protocol_type.as_ref());
    let name_ok = req
        .protocol_name
        .as_ref()
        .is_none_or(|n| Some(n) == g.protocol_name.as_ref());
    if !type_ok || !name_ok {
        return Err(GroupError::InconsistentGroupProtocol);
    }
    let response = |g: &Group, assignment: Vec<u8>| SyncResponse {
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol_name.clone(),
        assignment,
    };
    let state = g.state;
    match state {
        GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
        GroupState::Stable => {
            g.pending_sync.remove(&req.member_id);
            let m = g.member_mut(&req.member_id).expect("validated");
            m.session_deadline = now + i64::from(m.session_timeout_ms);
            let a = m.assignment.clone();
            fx.replies.push((token, Reply::Sync(Ok(response(g, a)))));
            Ok(())
        }
        GroupState::CompletingRebalance => {
            g.pending_sync.remove(&req.member_id);
            let m = g.member_mut(&req.member_id).expect("validated");
            if let Some(old) = m.sync_waiter.replace(token) {
                sync_err(fx, old, GroupError::RebalanceInProgress);
            }
            m.session_deadline = now + i64::from(m.session_timeout_ms);
            if g.is_leader(&req.member_id) {
                for m in &mut g.members {
                    // Members the leader left out get an empty assignment.
                    m.assignment = req
                        .assignments
                        .iter()
                        .find(|(id, _)| *id == m.id)
                        .map(|(_, a)| a.clone())
                        .unwrap_or_default();
                }
                // The record is the Stable state's; it must fit the log before the group
                // becomes Stable, or the group would report a generation never written.
                let completing_since = g.state_timestamp;
                g.state_timestamp = Some(now);
                let record = match g.metadata_record_within(cx.cfg.max_record_batch_bytes) {
                    Ok(record) => record,
                    Err(size) => {
                        g.state_timestamp = completing_since;
                        fail_assignment(g, now, cx, fx, size);
                        return Ok(());
                    }
                };
                g.transition(GroupState::Stable, now);
                history::became_stable(g, now, fx);
                fx.records.push(record);
                let parked: Vec<(ReplyToken, Vec<u8>)> = g
                    .members
                    .iter_mut()
                    .filter_map(|m| {
                        m.sync_waiter.take().map(|t| {
                            m.session_deadline = now + i64::from(m.session_timeout_ms);
                            (t, m.assignment.clone())
                        })
                    })
                    .collect();
                for (t, a) in parked {
                    fx.replies.push((t, Reply::Sync(Ok(response(g, a)))));
                }
            }
            Ok(())
        }
        GroupState::Empty | GroupState::Dead => unreachable!("handled above"),
    }
}
