//! `cairn groups`: what kafka-consumer-groups.sh does, over the Kafka
//! protocol only: ListGroups on every broker, FindCoordinator then
//! DescribeGroups/OffsetFetch/DeleteGroups/OffsetDelete on the coordinator,
//! ListOffsets on partition leaders.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use cairn_client::groups::decode_assignment;
use cairn_client::kafka_protocol::ResponseError;
use cairn_client::{
    AssignedPartitions, BrokerInfo, Client, Connection, ConsumerGroupDescription, GroupDescription,
    LATEST_OFFSET,
};
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;

use crate::common::{parse_topic_spec, resolve_partitions, Common};
use crate::history::{self, HistoryArgs};
use crate::output::{error_name, or_dash, print, print_json, Progress, Table};
use crate::reset::{self, ResetArgs};

const CLIENT_ID: &str = "cairn-groups";

/// The states a group can be in, as Kafka spells them: classic groups'
/// then the two only consumer-protocol groups have.
pub const GROUP_STATES: &[&str] = &[
    "Stable",
    "PreparingRebalance",
    "CompletingRebalance",
    "Empty",
    "Dead",
    "Assigning",
    "Reconciling",
];

#[derive(Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Subcommand)]
enum GroupsCommand {
    /// List consumer groups, with their state when --state is given.
    List {
        /// Show each group's state; with values (comma-separated), only
        /// groups in those states: --state Stable,Empty.
        #[arg(long, value_name = "STATE", num_args = 0..=1, default_missing_value = "")]
        state: Option<String>,
        /// Show each group's type (classic or consumer); with values
        /// (comma-separated), only groups of those types: --type consumer.
        #[arg(long = "type", value_name = "TYPE", num_args = 0..=1, default_missing_value = "")]
        group_type: Option<String>,
    },
    /// Offsets and lag per partition (default), members, or state of groups.
    Describe(DescribeArgs),
    /// Plan (default) or --execute a move of a group's committed offsets.
    ResetOffsets(ResetArgs),
    /// Delete groups that have no members, with their committed offsets.
    Delete {
        /// The group (repeatable).
        #[arg(long = "group", required = true)]
        groups: Vec<String>,
    },
    /// Delete a group's committed offsets for some topics or partitions.
    DeleteOffsets {
        #[arg(long)]
        group: String,
        /// TOPIC (all its partitions) or TOPIC:P,P,... (repeatable).
        #[arg(long = "topic", value_name = "TOPIC[:P,...]", required = true)]
        topics: Vec<String>,
    },
    /// A group's recent rebalances (cause, generations, phase times), from the broker's HTTP
    /// listener: the Kafka protocol has no request for them.
    History(HistoryArgs),
}

#[derive(Args)]
#[command(group(ArgGroup::new("what").args(["members", "offsets", "state"])))]
#[command(group(ArgGroup::new("which").args(["groups", "all_groups"]).required(true).multiple(true)))]
struct DescribeArgs {
    /// The group(s); also accepted as --group.
    #[arg(value_name = "GROUP")]
    groups: Vec<String>,
    #[arg(long = "group", value_name = "GROUP", hide = true)]
    group_flag: Vec<String>,
    /// Every group the cluster knows.
    #[arg(long, conflicts_with = "groups")]
    all_groups: bool,
    /// Members with their host, client id and partition count.
    #[arg(long)]
    members: bool,
    /// With --members: each member's assigned partitions too.
    #[arg(long, requires = "members")]
    verbose: bool,
    /// Committed offset, log end and lag per partition (the default).
    #[arg(long)]
    offsets: bool,
    /// Coordinator, assignor, state and member count.
    #[arg(long)]
    state: bool,
}

pub async fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let common = &args.common;
    if let GroupsCommand::History(h) = args.command {
        let timeout = std::time::Duration::from_millis(common.connect_timeout_ms);
        return history::run(h, common.output, timeout).await;
    }
    let client = common.connect(CLIENT_ID).await?;
    match args.command {
        GroupsCommand::List { state, group_type } => {
            list(&client, common, state.as_deref(), group_type.as_deref()).await
        }
        GroupsCommand::Describe(d) => describe(&client, common, d).await,
        GroupsCommand::ResetOffsets(r) => reset::run(&client, common, r).await,
        GroupsCommand::Delete { groups } => delete(&client, common, &groups).await,
        GroupsCommand::DeleteOffsets { group, topics } => {
            delete_offsets(&client, common, &group, &topics).await
        }
        GroupsCommand::History(_) => unreachable!("answered above without a Kafka connection"),
    }
}

/// Canonical spelling of a state given on the command line.
pub fn parse_state(s: &str) -> anyhow::Result<String> {
    GROUP_STATES
        .iter()
        .find(|k| k.eq_ignore_ascii_case(s.trim()))
        .map(|k| k.to_string())
        .ok_or_else(|| {
            anyhow!(
                "unknown group state '{s}'; one of {}",
                GROUP_STATES.join(", ")
            )
        })
}

/// The group types, as ListGroups v5 spells them.
pub const GROUP_TYPES: &[&str] = &["classic", "consumer"];

/// Canonical spelling of a group type given on the command line.
pub fn parse_type(s: &str) -> anyhow::Result<String> {
    GROUP_TYPES
        .iter()
        .find(|k| k.eq_ignore_ascii_case(s.trim()))
        .map(|k| k.to_string())
        .ok_or_else(|| {
            anyhow!(
                "unknown group type '{s}'; one of {}",
                GROUP_TYPES.join(", ")
            )
        })
}

// ---------------------------------------------------------------- list

#[derive(Clone, Debug, Serialize)]
pub struct ListedGroup {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    /// "classic" or "consumer".
    pub group_type: String,
}

pub fn render_list(groups: &[ListedGroup], with_state: bool, with_type: bool) -> String {
    if !with_state && !with_type {
        return groups.iter().map(|g| format!("{}\n", g.group)).collect();
    }
    let mut headers = vec!["GROUP"];
    if with_state {
        headers.push("STATE");
    }
    if with_type {
        headers.push("TYPE");
    }
    let mut t = Table::new(&headers);
    for g in groups {
        let mut row = vec![g.group.clone()];
        if with_state {
            row.push(g.state.clone());
        }
        if with_type {
            row.push(g.group_type.clone());
        }
        t.row(row);
    }
    t.render()
}

async fn list(
    client: &Client,
    common: &Common,
    state: Option<&str>,
    group_type: Option<&str>,
) -> anyhow::Result<()> {
    let filter: Vec<String> = match state {
        Some(s) if !s.is_empty() => s
            .split(',')
            .map(parse_state)
            .collect::<anyhow::Result<_>>()?,
        _ => Vec::new(),
    };
    let types: Vec<String> = match group_type {
        Some(t) if !t.is_empty() => t
            .split(',')
            .map(parse_type)
            .collect::<anyhow::Result<_>>()?,
        _ => Vec::new(),
    };
    let listed = client.list_groups_filtered(&filter, &types).await?;
    let mut groups = Vec::new();
    for g in listed {
        let state = match g.state {
            Some(s) => s,
            // Brokers before ListGroups v4 do not say; ask the coordinator.
            None => {
                let (_, conn) = coordinator(client, &g.group_id).await?;
                let d = conn.describe_groups(&[&g.group_id]).await?;
                d.into_iter().next().map(|d| d.state).unwrap_or_default()
            }
        };
        if !filter.is_empty() && !filter.iter().any(|f| f.eq_ignore_ascii_case(&state)) {
            continue;
        }
        // Brokers before ListGroups v5 have classic groups only.
        let kind = g.group_type.unwrap_or_else(|| "classic".to_string());
        if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case(&kind)) {
            continue;
        }
        groups.push(ListedGroup {
            group: g.group_id,
            state,
            protocol_type: g.protocol_type,
            group_type: kind,
        });
    }
    if common.json() {
        return print_json(&groups);
    }
    print(&render_list(&groups, state.is_some(), group_type.is_some()))
}

// ---------------------------------------------------------------- describe

#[derive(Clone, Debug, Serialize)]
pub struct CoordinatorView {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

#[derive(Clone, Debug, Serialize)]
pub struct AssignedTopic {
    pub topic: String,
    pub partitions: Vec<i32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemberView {
    pub consumer_id: String,
    pub group_instance_id: Option<String>,
    pub host: String,
    pub client_id: String,
    /// For a consumer-protocol group, what the member owns now.
    pub assignment: Vec<AssignedTopic>,
    /// The rest is known for members of consumer-protocol groups only.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ConsumerMemberView>,
}

/// What ConsumerGroupDescribe adds about a member.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConsumerMemberView {
    pub member_epoch: i32,
    /// "consumer" or "classic" (a classic member of an upgraded group);
    /// `None` when the broker does not say.
    pub member_type: Option<String>,
    pub subscribed_topics: Vec<String>,
    pub subscribed_regex: Option<String>,
    pub target_assignment: Vec<AssignedTopic>,
    /// Target partitions the member does not own yet.
    pub assigning: Vec<AssignedTopic>,
    /// Owned partitions not in its target, still to be revoked.
    pub revoking: Vec<AssignedTopic>,
}

impl ConsumerMemberView {
    fn reconciling(&self) -> bool {
        !self.assigning.is_empty() || !self.revoking.is_empty()
    }
}

impl MemberView {
    fn partition_count(&self) -> usize {
        self.assignment.iter().map(|a| a.partitions.len()).sum()
    }
}

/// One row of the offsets view. `None` prints as `-`.
#[derive(Clone, Debug, Serialize)]
pub struct OffsetRow {
    pub topic: String,
    pub partition: i32,
    pub current_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    pub lag: Option<i64>,
    pub consumer_id: Option<String>,
    pub host: Option<String>,
    pub client_id: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupView {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    /// "classic" or "consumer".
    pub group_type: String,
    /// Consumer-protocol groups only: the group epoch and the epoch the
    /// target assignment was computed at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_epoch: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignment_epoch: Option<i32>,
    /// The assignor (the chosen protocol); known only while the group is Stable.
    pub assignor: Option<String>,
    pub coordinator: CoordinatorView,
    pub member_count: usize,
    pub members: Vec<MemberView>,
    /// Filled for the offsets view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets: Option<Vec<OffsetRow>>,
}

fn coordinator_text(c: &CoordinatorView) -> String {
    format!("{}:{} ({})", c.host, c.port, c.id)
}

/// The offsets view of one group: a summary line, then the table
/// kafka-consumer-groups.sh prints.
pub fn render_offsets(g: &GroupView) -> String {
    let epochs = match (g.group_epoch, g.assignment_epoch) {
        (Some(ge), Some(ae)) => format!(", group epoch {ge}, assignment epoch {ae}"),
        _ => String::new(),
    };
    let mut out = format!(
        "Consumer group '{}': state {}, assignor {}{epochs}, coordinator {}, {} member(s)\n",
        g.group,
        g.state,
        g.assignor.as_deref().unwrap_or("-"),
        coordinator_text(&g.coordinator),
        g.member_count
    );
    if g.member_count == 0 {
        out.push_str(&format!(
            "Consumer group '{}' has no active members.\n",
            g.group
        ));
    }
    out.push('\n');
    let rows = g.offsets.as_deref().unwrap_or_default();
    if rows.is_empty() {
        out.push_str("(no assigned partitions and no committed offsets)\n");
        return out;
    }
    let mut t = Table::new(&[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for r in rows {
        t.row(vec![
            g.group.clone(),
            r.topic.clone(),
            r.partition.to_string(),
            or_dash(r.current_offset),
            or_dash(r.log_end_offset),
            or_dash(r.lag),
            or_dash(r.consumer_id.clone()),
            or_dash(r.host.clone()),
            or_dash(r.client_id.clone()),
        ]);
    }
    out.push_str(&t.render());
    out
}

fn assignment_text(m: &MemberView) -> String {
    topics_text(&m.assignment)
}

fn topics_text(topics: &[AssignedTopic]) -> String {
    if topics.iter().all(|a| a.partitions.is_empty()) {
        return "-".to_string();
    }
    topics
        .iter()
        .filter(|a| !a.partitions.is_empty())
        .map(|a| {
            let ps: Vec<String> = a.partitions.iter().map(i32::to_string).collect();
            format!("{}({})", a.topic, ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a reconciling member still has to take and give up:
/// `+t(3) -t(1)`, or `-` when it owns its target.
fn reconciling_text(c: &ConsumerMemberView) -> String {
    if !c.reconciling() {
        return "-".to_string();
    }
    let mut parts = Vec::new();
    if !c.assigning.is_empty() {
        parts.push(format!("+{}", topics_text(&c.assigning)));
    }
    if !c.revoking.is_empty() {
        parts.push(format!("-{}", topics_text(&c.revoking)));
    }
    parts.join(" ")
}

/// The members view over one or more groups. Consumer-protocol groups add
/// member epochs, target assignments and what is still reconciling.
pub fn render_members(groups: &[GroupView], verbose: bool) -> String {
    let consumer = groups.iter().any(|g| g.group_epoch.is_some());
    let mut headers = vec![
        "GROUP",
        "CONSUMER-ID",
        "GROUP-INSTANCE-ID",
        "HOST",
        "CLIENT-ID",
        "#PARTITIONS",
    ];
    if consumer {
        headers.extend(["MEMBER-EPOCH", "TARGET-EPOCH", "RECONCILING"]);
    }
    if verbose {
        headers.push("ASSIGNMENT");
        if consumer {
            headers.push("TARGET-ASSIGNMENT");
        }
    }
    let mut t = Table::new(&headers);
    let mut notes = String::new();
    for g in groups {
        if g.members.is_empty() {
            notes.push_str(&format!(
                "Consumer group '{}' has no active members.\n",
                g.group
            ));
        }
        for m in &g.members {
            let mut row = vec![
                g.group.clone(),
                m.consumer_id.clone(),
                or_dash(m.group_instance_id.clone()),
                m.host.clone(),
                m.client_id.clone(),
                m.partition_count().to_string(),
            ];
            let c = m.consumer.as_ref();
            if consumer {
                row.push(or_dash(c.map(|c| c.member_epoch)));
                row.push(or_dash(c.and(g.assignment_epoch)));
                row.push(c.map_or_else(|| "-".to_string(), reconciling_text));
            }
            if verbose {
                row.push(assignment_text(m));
                if consumer {
                    row.push(
                        c.map_or_else(|| "-".to_string(), |c| topics_text(&c.target_assignment)),
                    );
                }
            }
            t.row(row);
        }
    }
    let mut out = notes;
    if !t.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&t.render());
    }
    out
}

/// The state view over one or more groups.
pub fn render_state(groups: &[GroupView]) -> String {
    let consumer = groups.iter().any(|g| g.group_epoch.is_some());
    let mut headers = vec!["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE"];
    if consumer {
        headers.extend(["TYPE", "GROUP-EPOCH", "TARGET-ASSIGNMENT-EPOCH"]);
    }
    headers.push("#MEMBERS");
    let mut t = Table::new(&headers);
    for g in groups {
        let mut row = vec![
            g.group.clone(),
            coordinator_text(&g.coordinator),
            or_dash(g.assignor.clone()),
            g.state.clone(),
        ];
        if consumer {
            row.push(g.group_type.clone());
            row.push(or_dash(g.group_epoch));
            row.push(or_dash(g.assignment_epoch));
        }
        row.push(g.member_count.to_string());
        t.row(row);
    }
    t.render()
}

/// The coordinator of a group and a connection to it.
pub async fn coordinator(
    client: &Client,
    group: &str,
) -> anyhow::Result<(BrokerInfo, Arc<Connection>)> {
    let info = client
        .find_coordinator(group)
        .await
        .with_context(|| format!("cannot find the coordinator of group '{group}'"))?;
    let conn = client.coordinator_connection(group).await?;
    Ok((info, conn))
}

/// DescribeGroups on the coordinator; `None` when the group does not exist.
pub async fn describe_one(
    client: &Client,
    group: &str,
) -> anyhow::Result<Option<(BrokerInfo, Arc<Connection>, GroupDescription)>> {
    let (info, conn) = coordinator(client, group).await?;
    let d = conn
        .describe_groups(&[group])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no description of group '{group}'"))?;
    match d.error {
        Some(ResponseError::GroupIdNotFound) => return Ok(None),
        Some(e) => bail!("cannot describe group '{group}': {}", error_name(e)),
        None => {}
    }
    // Before DescribeGroups v6 an unknown group is reported as Dead.
    if d.state == "Dead" {
        return Ok(None);
    }
    Ok(Some((info, conn, d)))
}

fn member_views(d: &GroupDescription) -> Vec<MemberView> {
    let mut members: Vec<MemberView> = d
        .members
        .iter()
        .map(|m| {
            // Only consumer groups carry assignments we can read.
            let assignment = if d.protocol_type == "consumer" {
                decode_assignment(m.assignment.clone()).unwrap_or_else(|e| {
                    tracing::warn!("member {} of {}: {e}", m.member_id, d.group_id);
                    Vec::new()
                })
            } else {
                Vec::new()
            };
            MemberView {
                consumer_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                host: m.client_host.clone(),
                client_id: m.client_id.clone(),
                assignment: assignment
                    .into_iter()
                    .map(|(topic, mut partitions)| {
                        partitions.sort_unstable();
                        AssignedTopic { topic, partitions }
                    })
                    .collect(),
                consumer: None,
            }
        })
        .collect();
    members.sort_by(|a, b| a.consumer_id.cmp(&b.consumer_id));
    members
}

fn assigned_topics(a: &[AssignedPartitions]) -> Vec<AssignedTopic> {
    a.iter()
        .filter(|t| !t.partitions.is_empty())
        .map(|t| AssignedTopic {
            topic: t.topic.clone(),
            partitions: t.partitions.clone(),
        })
        .collect()
}

/// Partitions of `a` that are not in `b`, by topic.
fn minus(a: &[AssignedTopic], b: &[AssignedTopic]) -> Vec<AssignedTopic> {
    a.iter()
        .filter_map(|t| {
            let other: BTreeSet<i32> = b
                .iter()
                .filter(|o| o.topic == t.topic)
                .flat_map(|o| o.partitions.iter().copied())
                .collect();
            let partitions: Vec<i32> = t
                .partitions
                .iter()
                .copied()
                .filter(|p| !other.contains(p))
                .collect();
            (!partitions.is_empty()).then(|| AssignedTopic {
                topic: t.topic.clone(),
                partitions,
            })
        })
        .collect()
}

fn consumer_member_views(d: &ConsumerGroupDescription) -> Vec<MemberView> {
    d.members
        .iter()
        .map(|m| {
            let assignment = assigned_topics(&m.assignment);
            let target_assignment = assigned_topics(&m.target_assignment);
            MemberView {
                consumer_id: m.member_id.clone(),
                group_instance_id: m.instance_id.clone(),
                host: m.client_host.clone(),
                client_id: m.client_id.clone(),
                consumer: Some(ConsumerMemberView {
                    member_epoch: m.member_epoch,
                    member_type: m.member_type.map(|t| {
                        match t {
                            0 => "classic",
                            1 => "consumer",
                            _ => "unknown",
                        }
                        .to_string()
                    }),
                    subscribed_topics: m.subscribed_topic_names.clone(),
                    subscribed_regex: m.subscribed_topic_regex.clone(),
                    assigning: minus(&target_assignment, &assignment),
                    revoking: minus(&assignment, &target_assignment),
                    target_assignment,
                }),
                assignment,
            }
        })
        .collect()
}

/// ConsumerGroupDescribe on the coordinator; `None` when the group is not
/// a consumer-protocol group (or the broker does not know the request).
async fn describe_consumer_one(
    conn: &Connection,
    group: &str,
) -> anyhow::Result<Option<ConsumerGroupDescription>> {
    let d = match conn.describe_consumer_groups(&[group]).await {
        Ok(mut d) => d
            .pop()
            .ok_or_else(|| anyhow!("no description of group '{group}'"))?,
        Err(cairn_client::Error::UnsupportedApi(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match d.error {
        None => Ok(Some(d)),
        Some(ResponseError::GroupIdNotFound) => Ok(None),
        Some(e) => bail!("cannot describe group '{group}': {}", error_name(e)),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Offsets,
    Members { verbose: bool },
    State,
}

/// Everything the chosen view needs about one group; `None` if it does not exist.
async fn group_view(client: &Client, group: &str, view: View) -> anyhow::Result<Option<GroupView>> {
    let (info, conn) = coordinator(client, group).await?;
    if let Some(d) = describe_consumer_one(&conn, group).await? {
        let mut v = GroupView {
            group: group.to_string(),
            state: d.state.clone(),
            protocol_type: "consumer".to_string(),
            group_type: "consumer".to_string(),
            group_epoch: Some(d.group_epoch),
            assignment_epoch: Some(d.assignment_epoch),
            assignor: Some(d.assignor.clone()).filter(|a| !a.is_empty()),
            coordinator: CoordinatorView {
                id: info.node_id,
                host: info.host.clone(),
                port: info.port,
            },
            member_count: d.members.len(),
            members: consumer_member_views(&d),
            offsets: None,
        };
        if view == View::Offsets {
            v.offsets = Some(offset_rows(client, &conn, group, &v.members).await?);
        }
        return Ok(Some(v));
    }
    let Some((info, conn, d)) = describe_one(client, group).await? else {
        return Ok(None);
    };
    let members = member_views(&d);
    let mut v = GroupView {
        group: group.to_string(),
        state: d.state.clone(),
        protocol_type: d.protocol_type.clone(),
        group_type: "classic".to_string(),
        group_epoch: None,
        assignment_epoch: None,
        assignor: Some(d.protocol.clone()).filter(|p| !p.is_empty()),
        coordinator: CoordinatorView {
            id: info.node_id,
            host: info.host.clone(),
            port: info.port,
        },
        member_count: d.members.len(),
        members,
        offsets: None,
    };
    if view == View::Offsets {
        v.offsets = Some(offset_rows(client, &conn, group, &v.members).await?);
    }
    Ok(Some(v))
}

/// Joins assignments, committed offsets and log ends into rows: assigned
/// but never committed shows no offset and no lag; committed but not
/// assigned shows no consumer.
async fn offset_rows(
    client: &Client,
    conn: &Connection,
    group: &str,
    members: &[MemberView],
) -> anyhow::Result<Vec<OffsetRow>> {
    let committed: BTreeMap<(String, i32), i64> = conn
        .fetch_all_offsets(group)
        .await
        .with_context(|| format!("cannot fetch the offsets of group '{group}'"))?
        .into_iter()
        .map(|c| ((c.topic, c.partition), c.offset))
        .collect();
    let mut owner: BTreeMap<(String, i32), &MemberView> = BTreeMap::new();
    for m in members {
        for a in &m.assignment {
            for &p in &a.partitions {
                owner.insert((a.topic.clone(), p), m);
            }
        }
    }
    let keys: BTreeSet<(String, i32)> = committed.keys().chain(owner.keys()).cloned().collect();
    let queries: Vec<(String, i32, i64)> = keys
        .iter()
        .map(|(t, p)| (t.clone(), *p, LATEST_OFFSET))
        .collect();
    let ends: BTreeMap<(String, i32), i64> = if queries.is_empty() {
        BTreeMap::new()
    } else {
        client
            .list_offsets_many(&queries)
            .await?
            .into_iter()
            .filter(|l| l.error.is_none() && l.offset >= 0)
            .map(|l| ((l.topic, l.partition), l.offset))
            .collect()
    };
    Ok(keys
        .into_iter()
        .map(|key| {
            let current = committed.get(&key).copied();
            let end = ends.get(&key).copied();
            let m = owner.get(&key);
            OffsetRow {
                topic: key.0.clone(),
                partition: key.1,
                current_offset: current,
                log_end_offset: end,
                lag: current.zip(end).map(|(c, e)| e - c),
                consumer_id: m.map(|m| m.consumer_id.clone()),
                host: m.map(|m| m.host.clone()),
                client_id: m.map(|m| m.client_id.clone()),
            }
        })
        .collect())
}

async fn describe(client: &Client, common: &Common, args: DescribeArgs) -> anyhow::Result<()> {
    let view = if args.members {
        View::Members {
            verbose: args.verbose,
        }
    } else if args.state {
        View::State
    } else {
        View::Offsets
    };
    let mut names: Vec<String> = args.groups.into_iter().chain(args.group_flag).collect();
    if args.all_groups {
        names = client
            .list_groups(&[])
            .await?
            .into_iter()
            .map(|g| g.group_id)
            .collect();
    }
    let mut views = Vec::new();
    let mut missing = Vec::new();
    let mut progress = Progress::new("describing groups", names.len());
    for name in &names {
        match group_view(client, name, view).await? {
            Some(v) => views.push(v),
            // A group deleted since the listing is not worth failing --all-groups.
            None if args.all_groups => {}
            None => missing.push(name.clone()),
        }
        progress.step();
    }
    progress.finish();
    if common.json() {
        if args.all_groups || names.len() != 1 {
            print_json(&views)?;
        } else if let Some(v) = views.first() {
            print_json(v)?;
        }
    } else {
        let text = match view {
            View::Offsets => views
                .iter()
                .map(render_offsets)
                .collect::<Vec<_>>()
                .join("\n"),
            View::Members { verbose } if !views.is_empty() => render_members(&views, verbose),
            View::State if !views.is_empty() => render_state(&views),
            _ => String::new(),
        };
        print(&text)?;
    }
    match missing.as_slice() {
        [] => Ok(()),
        [one] => bail!("consumer group '{one}' does not exist"),
        many => bail!("consumer groups do not exist: {}", many.join(", ")),
    }
}

// ---------------------------------------------------------------- delete

#[derive(Serialize)]
struct Deleted {
    group: String,
    deleted: bool,
    error: Option<String>,
}

fn explain_delete(group: &str, e: ResponseError) -> String {
    match e {
        ResponseError::GroupIdNotFound => format!("consumer group '{group}' does not exist"),
        ResponseError::NonEmptyGroup => format!(
            "consumer group '{group}' still has active members; stop them first (NON_EMPTY_GROUP)"
        ),
        other => format!(
            "consumer group '{group}' could not be deleted: {}",
            error_name(other)
        ),
    }
}

async fn delete(client: &Client, common: &Common, groups: &[String]) -> anyhow::Result<()> {
    let mut results = Vec::new();
    for g in groups {
        let (_, conn) = coordinator(client, g).await?;
        let r = conn.delete_groups(&[g]).await?;
        let error = r.into_iter().next().and_then(|(_, e)| e);
        results.push((g.clone(), error));
    }
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(g, e)| e.map(|e| explain_delete(g, e)))
        .collect();
    if common.json() {
        let out: Vec<Deleted> = results
            .iter()
            .map(|(g, e)| Deleted {
                group: g.clone(),
                deleted: e.is_none(),
                error: e.map(error_name),
            })
            .collect();
        print_json(&out)?;
    } else {
        let ok: Vec<String> = results
            .iter()
            .filter(|(_, e)| e.is_none())
            .map(|(g, _)| format!("'{g}'"))
            .collect();
        if !ok.is_empty() {
            print(&format!(
                "Deletion of requested consumer groups ({}) was successful.\n",
                ok.join(", ")
            ))?;
        }
    }
    match failures.len() {
        0 => Ok(()),
        _ => bail!("{}", failures.join("; ")),
    }
}

// ---------------------------------------------------------------- delete-offsets

#[derive(Clone, Debug, Serialize)]
pub struct DeletedOffset {
    pub topic: String,
    pub partition: i32,
    /// `null` when deleted, else Kafka's error name.
    pub error: Option<String>,
}

pub fn render_deleted_offsets(rows: &[DeletedOffset]) -> String {
    let mut t = Table::new(&["TOPIC", "PARTITION", "STATUS"]);
    for r in rows {
        t.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            match &r.error {
                None => "Successful".to_string(),
                Some(e) => format!("Error: {e}"),
            },
        ]);
    }
    t.render()
}

async fn delete_offsets(
    client: &Client,
    common: &Common,
    group: &str,
    topics: &[String],
) -> anyhow::Result<()> {
    let specs = topics
        .iter()
        .map(|t| parse_topic_spec(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let partitions = resolve_partitions(client, &specs).await?;
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(p);
    }
    let (_, conn) = coordinator(client, group).await?;
    let request: Vec<(String, Vec<i32>)> = by_topic.into_iter().collect();
    let outcomes = match conn.delete_offsets(group, &request).await {
        Ok(o) => o,
        Err(e) => match e.kafka_error() {
            Some(ResponseError::GroupIdNotFound) => {
                bail!("consumer group '{group}' does not exist")
            }
            Some(ResponseError::NonEmptyGroup) => bail!(
                "consumer group '{group}' is not empty and subscribed to these topics; \
                 stop its members first"
            ),
            _ => return Err(e).context(format!("cannot delete offsets of '{group}'")),
        },
    };
    let mut rows: Vec<DeletedOffset> = outcomes
        .into_iter()
        .map(|o| DeletedOffset {
            topic: o.topic,
            partition: o.partition,
            error: o.error.map(error_name),
        })
        .collect();
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    if common.json() {
        print_json(&rows)?;
    } else {
        print(&render_deleted_offsets(&rows))?;
    }
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        bail!("{failed} partition(s) of group '{group}' kept their offsets (see STATUS)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GroupView {
        let m1 = MemberView {
            consumer_id: "rdkafka-3f2a9c1e-5b7d-4a8e-9f10-2c4b6d8e0a1b".into(),
            group_instance_id: None,
            host: "/127.0.0.1".into(),
            client_id: "rdkafka".into(),
            assignment: vec![AssignedTopic {
                topic: "orders".into(),
                partitions: vec![0, 1],
            }],
            consumer: None,
        };
        let m2 = MemberView {
            consumer_id: "cairn-console-consumer-7e1d".into(),
            group_instance_id: Some("worker-2".into()),
            host: "/10.0.0.7".into(),
            client_id: "cairn-console-consumer".into(),
            assignment: vec![
                AssignedTopic {
                    topic: "orders".into(),
                    partitions: vec![2],
                },
                AssignedTopic {
                    topic: "payments".into(),
                    partitions: vec![0],
                },
            ],
            consumer: None,
        };
        let row = |topic: &str, p, cur: Option<i64>, end: Option<i64>, m: Option<&MemberView>| {
            OffsetRow {
                topic: topic.into(),
                partition: p,
                current_offset: cur,
                log_end_offset: end,
                lag: cur.zip(end).map(|(c, e)| e - c),
                consumer_id: m.map(|m| m.consumer_id.clone()),
                host: m.map(|m| m.host.clone()),
                client_id: m.map(|m| m.client_id.clone()),
            }
        };
        let offsets = vec![
            row("orders", 0, Some(120), Some(125), Some(&m1)),
            row("orders", 1, None, Some(98), Some(&m1)),
            row("orders", 2, Some(7), Some(7), Some(&m2)),
            row("orders", 3, Some(40), Some(1000), None),
            row("payments", 0, None, None, Some(&m2)),
        ];
        GroupView {
            group: "billing".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            group_type: "classic".into(),
            group_epoch: None,
            assignment_epoch: None,
            assignor: Some("range".into()),
            coordinator: CoordinatorView {
                id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
            },
            member_count: 2,
            members: vec![m1, m2],
            offsets: Some(offsets),
        }
    }

    fn empty_group() -> GroupView {
        GroupView {
            group: "nightly-report".into(),
            state: "Empty".into(),
            protocol_type: "consumer".into(),
            group_type: "classic".into(),
            group_epoch: None,
            assignment_epoch: None,
            assignor: None,
            coordinator: CoordinatorView {
                id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
            },
            member_count: 0,
            members: vec![],
            offsets: Some(vec![OffsetRow {
                topic: "orders".into(),
                partition: 0,
                current_offset: Some(0),
                log_end_offset: Some(125),
                lag: Some(125),
                consumer_id: None,
                host: None,
                client_id: None,
            }]),
        }
    }

    /// A consumer-protocol group in the middle of a reconciliation: m1 still
    /// owns orders/1, which its target gives to m2.
    fn consumer_group() -> GroupView {
        let d = ConsumerGroupDescription {
            group_id: "ingest".into(),
            error: None,
            error_message: None,
            state: "Reconciling".into(),
            group_epoch: 7,
            assignment_epoch: 7,
            assignor: "uniform".into(),
            members: vec![
                cairn_client::ConsumerMemberDescription {
                    member_id: "m1".into(),
                    instance_id: Some("worker-1".into()),
                    rack_id: None,
                    member_epoch: 6,
                    client_id: "rdkafka".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec!["orders".into()],
                    subscribed_topic_regex: None,
                    assignment: vec![assigned("orders", &[0, 1])],
                    target_assignment: vec![assigned("orders", &[0])],
                    member_type: Some(1),
                },
                cairn_client::ConsumerMemberDescription {
                    member_id: "m2".into(),
                    instance_id: None,
                    rack_id: None,
                    member_epoch: 7,
                    client_id: "rdkafka".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec![],
                    subscribed_topic_regex: Some("ord.*".into()),
                    assignment: vec![assigned("orders", &[2])],
                    target_assignment: vec![assigned("orders", &[1, 2])],
                    member_type: Some(1),
                },
            ],
        };
        GroupView {
            group: "ingest".into(),
            state: d.state.clone(),
            protocol_type: "consumer".into(),
            group_type: "consumer".into(),
            group_epoch: Some(7),
            assignment_epoch: Some(7),
            assignor: Some("uniform".into()),
            coordinator: CoordinatorView {
                id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
            },
            member_count: 2,
            members: consumer_member_views(&d),
            offsets: Some(vec![]),
        }
    }

    fn assigned(topic: &str, ps: &[i32]) -> AssignedPartitions {
        AssignedPartitions {
            topic_id: Default::default(),
            topic: topic.into(),
            partitions: ps.to_vec(),
        }
    }

    #[test]
    fn consumer_group_views() {
        let g = consumer_group();
        let m1 = g.members[0].consumer.as_ref().unwrap();
        assert!(m1.assigning.is_empty());
        assert_eq!(m1.revoking[0].partitions, [1]);
        let m2 = g.members[1].consumer.as_ref().unwrap();
        assert_eq!(m2.assigning[0].partitions, [1]);
        insta::assert_snapshot!(
            "consumer_members_verbose",
            render_members(&[g.clone(), sample()], true)
        );
        insta::assert_snapshot!(
            "consumer_members",
            render_members(std::slice::from_ref(&g), false)
        );
        insta::assert_snapshot!("consumer_state", render_state(&[g.clone(), sample()]));
        insta::assert_snapshot!("consumer_offsets", render_offsets(&g));
        insta::assert_snapshot!(
            "consumer_member_json",
            serde_json::to_string_pretty(&g.members[1]).unwrap()
        );
    }

    #[test]
    fn types_parse_case_insensitively() {
        assert_eq!(parse_type("Consumer").unwrap(), "consumer");
        assert_eq!(parse_type(" classic").unwrap(), "classic");
        assert!(parse_type("share").is_err());
    }

    #[test]
    fn offsets_view() {
        insta::assert_snapshot!(render_offsets(&sample()));
    }

    #[test]
    fn offsets_view_of_an_empty_group() {
        insta::assert_snapshot!(render_offsets(&empty_group()));
    }

    #[test]
    fn members_view() {
        insta::assert_snapshot!(render_members(&[sample(), empty_group()], false));
    }

    #[test]
    fn members_verbose_view() {
        insta::assert_snapshot!(render_members(&[sample()], true));
    }

    #[test]
    fn state_view() {
        insta::assert_snapshot!(render_state(&[sample(), empty_group()]));
    }

    #[test]
    fn list_views() {
        let groups = vec![
            ListedGroup {
                group: "billing".into(),
                state: "Stable".into(),
                protocol_type: "consumer".into(),
                group_type: "classic".into(),
            },
            ListedGroup {
                group: "nightly-report".into(),
                state: "Empty".into(),
                protocol_type: "consumer".into(),
                group_type: "classic".into(),
            },
        ];
        insta::assert_snapshot!(render_list(&groups, false, false), @r"
        billing
        nightly-report
        ");
        insta::assert_snapshot!(render_list(&groups, true, false), @r"
        GROUP           STATE
        billing         Stable
        nightly-report  Empty
        ");
        insta::assert_snapshot!(render_list(&groups, true, true), @r"
        GROUP           STATE   TYPE
        billing         Stable  classic
        nightly-report  Empty   classic
        ");
        insta::assert_snapshot!(render_list(&groups[..1], false, true), @r"
        GROUP    TYPE
        billing  classic
        ");
    }

    #[test]
    fn deleted_offsets_view() {
        let rows = vec![
            DeletedOffset {
                topic: "orders".into(),
                partition: 0,
                error: None,
            },
            DeletedOffset {
                topic: "orders".into(),
                partition: 1,
                error: Some("GROUP_SUBSCRIBED_TO_TOPIC".into()),
            },
        ];
        insta::assert_snapshot!(render_deleted_offsets(&rows));
    }

    #[test]
    fn states_parse_case_insensitively() {
        assert_eq!(parse_state("stable").unwrap(), "Stable");
        assert_eq!(parse_state(" EMPTY").unwrap(), "Empty");
        assert!(parse_state("running").is_err());
    }
}
