//! A small consumer-group member for tools: joins with the consumer protocol
//! and the range assignor, assigns partitions when it is the leader, keeps
//! its session alive with a background heartbeat, commits with its
//! generation and leaves on request.
//!
//! The caller drives it: fetch from [`GroupMember::assignment`], call
//! [`GroupMember::commit`] as it goes, and when [`GroupMember::needs_rejoin`]
//! says so, commit what it has and call [`GroupMember::rejoin`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::task::JoinHandle;

use crate::admin::PartitionOutcome;
use crate::client::Client;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::groups::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription,
};
use crate::groups::{JoinGroupParams, PartitionOffset};

/// The assignor this member offers (and uses when it leads).
pub const RANGE_ASSIGNOR: &str = "range";
const PROTOCOL_TYPE: &str = "consumer";
/// Rounds of JoinGroup/SyncGroup tried before giving up on a rebalance
/// that keeps restarting.
const MAX_JOIN_ATTEMPTS: usize = 20;

/// How a member joins.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub group_id: String,
    pub topics: Vec<String>,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
}

impl MemberConfig {
    /// Kafka's consumer defaults, except a shorter rebalance timeout: a tool
    /// reacts to a rebalance within one fetch wait, so it never needs minutes.
    pub fn new(group_id: &str, topics: &[&str]) -> Self {
        MemberConfig {
            group_id: group_id.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(3),
        }
    }
}

/// What the heartbeat learned that the caller must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberEvent {
    /// A rebalance started (or this generation is gone): commit and rejoin.
    Rejoin,
    /// The coordinator no longer knows this member; rejoin as a new one.
    RejoinAsNew,
    /// Heartbeats cannot continue (connection lost, fenced...).
    Failed(String),
}

type Signal = Arc<Mutex<Option<MemberEvent>>>;

/// A joined member of a consumer group.
pub struct GroupMember {
    config: MemberConfig,
    conn: Arc<Connection>,
    member_id: String,
    generation_id: i32,
    leader: bool,
    protocol: String,
    assignment: Vec<(String, Vec<i32>)>,
    signal: Signal,
    heartbeat: Option<JoinHandle<()>>,
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

impl GroupMember {
    /// Finds the coordinator, opens a connection of its own (JoinGroup
    /// blocks the connection it is sent on) and joins.
    pub async fn join(client: &Client, config: MemberConfig) -> Result<GroupMember> {
        let coordinator = client.find_coordinator(&config.group_id).await?;
        let conn = match client.open(&coordinator.addr()).await {
            Ok(c) => c,
            // Same fallback as the client's: a lone broker may advertise a
            // name this host cannot reach, and the bootstrap address works.
            Err(e @ Error::Connect { .. }) if client.metadata().brokers.len() <= 1 => {
                tracing::debug!("coordinator address failed ({e}); using bootstrap");
                client.open(client.bootstrap_addr()).await?
            }
            Err(e) => return Err(e),
        };
        let mut member = GroupMember {
            config,
            conn: Arc::new(conn),
            member_id: String::new(),
            generation_id: -1,
            leader: false,
            protocol: String::new(),
            assignment: Vec::new(),
            signal: Arc::new(Mutex::new(None)),
            heartbeat: None,
        };
        member.rejoin(client).await?;
        Ok(member)
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// The partitions this member owns in the current generation.
    pub fn assignment(&self) -> &[(String, Vec<i32>)] {
        &self.assignment
    }

    /// What the heartbeat reported, if anything; `Some` means commit and
    /// call [`Self::rejoin`] (or stop, for `Failed`).
    pub fn needs_rejoin(&self) -> Option<MemberEvent> {
        self.signal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stop_heartbeat(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }

    /// Runs JoinGroup and SyncGroup until a generation completes, computing
    /// the assignment when this member is elected leader.
    pub async fn rejoin(&mut self, client: &Client) -> Result<()> {
        self.stop_heartbeat();
        let event = self.signal.lock().unwrap_or_else(|e| e.into_inner()).take();
        if event == Some(MemberEvent::RejoinAsNew) {
            self.member_id.clear();
        }
        let topics: Vec<&str> = self.config.topics.iter().map(String::as_str).collect();
        let subscription = encode_subscription(&topics)?;
        let mut last_error = None;
        for _ in 0..MAX_JOIN_ATTEMPTS {
            let params = JoinGroupParams {
                group_id: self.config.group_id.clone(),
                member_id: self.member_id.clone(),
                group_instance_id: None,
                protocol_type: PROTOCOL_TYPE.to_string(),
                protocols: vec![(RANGE_ASSIGNOR.to_string(), subscription.clone())],
                session_timeout_ms: millis(self.config.session_timeout),
                rebalance_timeout_ms: millis(self.config.rebalance_timeout),
                max_version: 9,
            };
            let joined = match self.conn.join_group(&params).await {
                Ok(j) => j,
                Err(e) => {
                    match e.kafka_error() {
                        Some(ResponseError::UnknownMemberId) => self.member_id.clear(),
                        Some(ResponseError::RebalanceInProgress) => {}
                        _ => return Err(e),
                    }
                    last_error = Some(e);
                    continue;
                }
            };
            self.member_id = joined.member_id.clone();
            self.generation_id = joined.generation_id;
            self.leader = joined.is_leader();
            self.protocol = joined
                .protocol_name
                .clone()
                .unwrap_or_else(|| RANGE_ASSIGNOR.to_string());
            let assignments = if self.leader {
                self.assign(client, &joined.members).await?
            } else {
                Vec::new()
            };
            let synced = self
                .conn
                .sync_group(
                    &self.config.group_id,
                    self.generation_id,
                    &self.member_id,
                    PROTOCOL_TYPE,
                    &self.protocol,
                    assignments,
                    5,
                    self.config.rebalance_timeout + Duration::from_secs(5),
                )
                .await;
            match synced {
                Ok(bytes) => {
                    self.assignment = decode_assignment(bytes)?;
                    self.start_heartbeat();
                    return Ok(());
                }
                Err(e) => {
                    match e.kafka_error() {
                        Some(ResponseError::UnknownMemberId) => self.member_id.clear(),
                        Some(
                            ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration,
                        ) => {}
                        _ => return Err(e),
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Protocol("join did not complete".to_string())))
    }

    /// The leader's job: the range assignment over every member's subscription.
    async fn assign(
        &self,
        client: &Client,
        members: &[crate::groups::JoinedMember],
    ) -> Result<Vec<(String, bytes::Bytes)>> {
        let mut subscriptions = Vec::new();
        for m in members {
            let topics = decode_subscription(m.metadata.clone())?;
            subscriptions.push((m.member_id.clone(), topics));
        }
        let mut all: Vec<&str> = subscriptions
            .iter()
            .flat_map(|(_, ts)| ts.iter().map(String::as_str))
            .collect();
        all.sort_unstable();
        all.dedup();
        let meta = client.refresh_metadata(Some(&all)).await?;
        let counts: BTreeMap<String, i32> = all
            .iter()
            .map(|t| {
                let n = meta.topics.get(*t).map_or(0, |i| i.partitions.len() as i32);
                (t.to_string(), n)
            })
            .collect();
        let plan = range_assign(&subscriptions, &counts);
        subscriptions
            .iter()
            .map(|(m, _)| {
                let parts = plan.get(m).cloned().unwrap_or_default();
                Ok((m.clone(), encode_assignment(&parts)?))
            })
            .collect()
    }

    fn start_heartbeat(&mut self) {
        let conn = self.conn.clone();
        let signal = self.signal.clone();
        let group = self.config.group_id.clone();
        let member = self.member_id.clone();
        let generation = self.generation_id;
        let interval = self.config.heartbeat_interval;
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let event = match conn.heartbeat(&group, generation, &member, 4).await {
                    Ok(()) => continue,
                    Err(e) => match e.kafka_error() {
                        Some(
                            ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration,
                        ) => MemberEvent::Rejoin,
                        Some(ResponseError::UnknownMemberId) => MemberEvent::RejoinAsNew,
                        _ => MemberEvent::Failed(e.to_string()),
                    },
                };
                *signal.lock().unwrap_or_else(|e| e.into_inner()) = Some(event);
                return;
            }
        }));
    }

    /// Commits offsets (the next offset to read, per partition) under the
    /// current generation. A refused partition makes the whole call fail
    /// with that partition's Kafka error.
    pub async fn commit(&self, offsets: &[(String, i32, i64)]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let outcomes = self
            .conn
            .commit_offsets_multi(
                &self.config.group_id,
                self.generation_id,
                &self.member_id,
                offsets,
            )
            .await?;
        first_error(&self.config.group_id, &outcomes)
    }

    /// The group's committed offsets for the assigned partitions; -1 where
    /// nothing is committed.
    pub async fn committed(&self) -> Result<Vec<(String, i32, i64)>> {
        let mut out = Vec::new();
        for (topic, partitions) in &self.assignment {
            if partitions.is_empty() {
                continue;
            }
            let got = self
                .conn
                .fetch_offsets(&self.config.group_id, topic, partitions)
                .await?;
            out.extend(
                got.into_iter()
                    .map(|PartitionOffset { partition, offset }| {
                        (topic.clone(), partition, offset)
                    }),
            );
        }
        Ok(out)
    }

    /// Stops heartbeating and leaves the group, so that the others get its
    /// partitions at once instead of after the session timeout.
    pub async fn leave(mut self) -> Result<()> {
        self.stop_heartbeat();
        self.conn
            .leave_group(&self.config.group_id, &self.member_id)
            .await
    }
}

fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

fn first_error(group: &str, outcomes: &[PartitionOutcome]) -> Result<()> {
    for o in outcomes {
        if let Some(error) = o.error {
            return Err(Error::Kafka {
                context: format!("commit offsets of {group} for {}/{}", o.topic, o.partition),
                error,
                message: None,
            });
        }
    }
    Ok(())
}

/// Kafka's range assignor: for each topic, its subscribers sorted by member
/// id split the partitions into contiguous ranges, the first ones getting
/// one extra when the division is not even.
pub fn range_assign(
    subscriptions: &[(String, Vec<String>)],
    partitions_per_topic: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<(String, Vec<i32>)>> {
    let mut plan: BTreeMap<String, Vec<(String, Vec<i32>)>> = subscriptions
        .iter()
        .map(|(m, _)| (m.clone(), Vec::new()))
        .collect();
    for (topic, &count) in partitions_per_topic {
        let mut subscribers: Vec<&str> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m.as_str())
            .collect();
        subscribers.sort_unstable();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        let n = subscribers.len() as i32;
        let (per, extra) = (count / n, count % n);
        for (i, m) in subscribers.iter().enumerate() {
            let i = i as i32;
            let start = i * per + i.min(extra);
            let len = per + i32::from(i < extra);
            if len > 0 {
                let parts = (start..start + len).collect();
                plan.get_mut(*m)
                    .expect("every subscriber has an entry")
                    .push((topic.clone(), parts));
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        list.iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    #[test]
    fn range_splits_like_kafka() {
        let counts: BTreeMap<String, i32> = [("a".to_string(), 5), ("b".to_string(), 1)]
            .into_iter()
            .collect();
        let plan = range_assign(&subs(&[("m2", &["a", "b"]), ("m1", &["a", "b"])]), &counts);
        assert_eq!(
            plan["m1"],
            vec![("a".to_string(), vec![0, 1, 2]), ("b".to_string(), vec![0])]
        );
        assert_eq!(plan["m2"], vec![("a".to_string(), vec![3, 4])]);
    }

    #[test]
    fn range_respects_subscriptions_and_more_members_than_partitions() {
        let counts: BTreeMap<String, i32> = [("a".to_string(), 2), ("b".to_string(), 3)]
            .into_iter()
            .collect();
        let plan = range_assign(
            &subs(&[("x", &["a"]), ("y", &["a", "b"]), ("z", &["a"])]),
            &counts,
        );
        assert_eq!(plan["x"], vec![("a".to_string(), vec![0])]);
        assert_eq!(
            plan["y"],
            vec![("a".to_string(), vec![1]), ("b".to_string(), vec![0, 1, 2])]
        );
        assert!(plan["z"].is_empty());
    }
}
