//! `cairn topics`: list, describe, create, alter and delete topics over the
//! Kafka protocol (Metadata, DescribeConfigs, CreateTopics,
//! CreatePartitions, DeleteTopics).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use cairn_client::kafka_protocol::ResponseError;
use cairn_client::{Client, TopicInfo};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::common::Common;
use crate::output::{print, print_json, Progress};

const CLIENT_ID: &str = "cairn-topics";

#[derive(Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// List topic names.
    List {
        /// Leave out internal topics such as __consumer_offsets.
        #[arg(long)]
        exclude_internal: bool,
    },
    /// Partitions, leaders, replicas and the configs set on a topic (or on all).
    Describe {
        /// The topic; every topic when left out.
        topic: Option<String>,
        /// Leave out internal topics such as __consumer_offsets.
        #[arg(long)]
        exclude_internal: bool,
    },
    /// Create a topic.
    Create {
        topic: String,
        /// Number of partitions [default: the broker's num.partitions].
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor [default: the broker's default.replication.factor].
        #[arg(long)]
        replication_factor: Option<i16>,
        /// A topic config, Kafka's name: --config retention.ms=3600000 (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Add partitions to a topic, or change its configs.
    Alter {
        topic: String,
        /// The new, larger, number of partitions.
        #[arg(long)]
        partitions: Option<i32>,
        /// Set a topic config, Kafka's name: --config retention.ms=3600000 (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Remove a topic config, back to the broker's default (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
        /// Have the broker check the config change without making it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a topic and its data.
    Delete { topic: String },
    /// Delete the records of partitions below an offset (kafka-delete-records.sh): the log
    /// start moves there, consumers below it reset by their policy.
    DeleteRecords {
        /// The topic, with --partition and --before.
        topic: Option<String>,
        #[arg(long, requires = "before")]
        partition: Option<i32>,
        /// Delete the records below this offset (-1: every record, up to the high watermark).
        #[arg(long, allow_hyphen_values = true, requires = "partition")]
        before: Option<i64>,
        /// kafka-delete-records.sh's JSON: {"partitions": [{"topic": "t", "partition": 0, "offset": 5}]}.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["topic", "partition", "before"])]
        offset_json_file: Option<std::path::PathBuf>,
        /// Show what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Elect partition leaders (kafka-leader-election.sh).
    ElectLeaders {
        /// preferred or unclean.
        #[arg(long, default_value = "preferred")]
        election_type: String,
        /// With --partition; else every partition of every topic.
        #[arg(long, requires = "partitions")]
        topic: Option<String>,
        /// A partition of --topic (repeatable).
        #[arg(long = "partition", value_name = "P")]
        partitions: Vec<i32>,
    },
    /// Move partitions to other brokers (kafka-reassign-partitions.sh --execute / --cancel),
    /// from its JSON: {"partitions": [{"topic": "t", "partition": 0, "replicas": [1]}]}.
    Reassign {
        #[arg(long, value_name = "FILE")]
        reassignment_json_file: std::path::PathBuf,
        /// Cancel the reassignments of these partitions instead.
        #[arg(long)]
        cancel: bool,
    },
}

pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let client = common.connect(CLIENT_ID).await?;
    match args.command {
        TopicsCommand::List { exclude_internal } => list(&client, common, exclude_internal).await,
        TopicsCommand::Describe {
            topic,
            exclude_internal,
        } => describe(&client, common, topic.as_deref(), exclude_internal).await,
        TopicsCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
        } => {
            let configs = configs
                .iter()
                .map(|c| {
                    c.split_once('=')
                        .filter(|(k, _)| !k.trim().is_empty())
                        .map(|(k, v)| (k.trim(), v.trim()))
                        .ok_or_else(|| anyhow!("bad --config '{c}': expected KEY=VALUE"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let result = client
                .create_topic(
                    &topic,
                    partitions.unwrap_or(-1),
                    replication_factor.unwrap_or(-1),
                    &configs,
                )
                .await;
            match result {
                Err(e) if e.kafka_error() == Some(ResponseError::TopicAlreadyExists) => {
                    bail!("topic '{topic}' already exists")
                }
                other => other.with_context(|| format!("cannot create topic '{topic}'"))?,
            }
            let info = client
                .wait_for_topic(&topic, Duration::from_secs(30))
                .await?;
            done(common, &topic, "created", Some(info.partitions.len()))
        }
        TopicsCommand::Alter {
            topic,
            partitions,
            configs,
            delete_configs,
            dry_run,
        } => {
            existing(&client, &topic).await?;
            if configs.is_empty() && delete_configs.is_empty() {
                let partitions = partitions.ok_or_else(|| {
                    anyhow!("nothing to alter: give --partitions, --config or --delete-config")
                })?;
                client
                    .create_partitions(&topic, partitions)
                    .await
                    .with_context(|| format!("cannot change the partitions of '{topic}'"))?;
                return done(common, &topic, "altered", Some(partitions as usize));
            }
            if partitions.is_some() {
                bail!("change partitions and configs in two commands");
            }
            let ops = crate::configs::topic_ops(&configs, &delete_configs)?;
            crate::configs::alter(
                &client,
                common,
                cairn_client::RESOURCE_TOPIC,
                &topic,
                &ops,
                dry_run,
            )
            .await
        }
        TopicsCommand::DeleteRecords {
            topic,
            partition,
            before,
            offset_json_file,
            dry_run,
        } => {
            let wanted = match (offset_json_file, topic, partition, before) {
                (Some(file), ..) => offsets_from_json(&file)?,
                (None, Some(t), Some(p), Some(b)) => vec![(t, p, b)],
                _ => bail!("give TOPIC --partition P --before OFFSET, or --offset-json-file FILE"),
            };
            delete_records(&client, common, &wanted, dry_run).await
        }
        TopicsCommand::ElectLeaders {
            election_type,
            topic,
            partitions,
        } => {
            let kind = match election_type.to_ascii_lowercase().as_str() {
                "preferred" => 0,
                "unclean" => 1,
                other => bail!("--election-type {other}: preferred or unclean"),
            };
            let asked = topic.map(|t| vec![(t, partitions)]);
            let answers = client
                .elect_leaders(kind, asked.as_deref())
                .await
                .context("cannot elect leaders")?;
            report(
                common,
                &answers,
                "elected",
                &[(ResponseError::ElectionNotNeeded, "already the leader")],
            )
        }
        TopicsCommand::Reassign {
            reassignment_json_file,
            cancel,
        } => {
            let moves = reassignments_from_json(&reassignment_json_file, cancel)?;
            let answers = client
                .alter_partition_reassignments(&moves)
                .await
                .context("cannot reassign partitions")?;
            report(
                common,
                &answers,
                if cancel { "cancelled" } else { "reassigned" },
                &[],
            )
        }
        TopicsCommand::Delete { topic } => {
            existing(&client, &topic).await?;
            client
                .delete_topic(&topic)
                .await
                .with_context(|| format!("cannot delete topic '{topic}'"))?;
            done(common, &topic, "deleted", None)
        }
    }
}

/// (topic, partition, new replicas; `None` cancels).
type Move = (String, i32, Option<Vec<i32>>);

/// kafka-reassign-partitions.sh's plan file.
fn reassignments_from_json(file: &std::path::Path, cancel: bool) -> anyhow::Result<Vec<Move>> {
    #[derive(serde::Deserialize)]
    struct Entry {
        topic: String,
        partition: i32,
        #[serde(default)]
        replicas: Vec<i32>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        partitions: Vec<Entry>,
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let parsed: File = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not kafka-reassign-partitions.sh's JSON",
            file.display()
        )
    })?;
    if parsed.partitions.is_empty() {
        bail!("{} names no partitions", file.display());
    }
    Ok(parsed
        .partitions
        .into_iter()
        .map(|e| (e.topic, e.partition, (!cancel).then_some(e.replicas)))
        .collect())
}

/// One partition's answer, as `elect-leaders` and `reassign` print it.
#[derive(Serialize)]
struct Answer<'a> {
    topic: &'a str,
    partition: i32,
    result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Prints each partition's outcome; fails if any failed (`benign` errors are outcomes, not
/// failures).
fn report(
    common: &Common,
    answers: &[cairn_client::PartitionAnswer],
    done: &str,
    benign: &[(ResponseError, &str)],
) -> anyhow::Result<()> {
    let mut failed = 0;
    let rows: Vec<Answer> = answers
        .iter()
        .map(|a| {
            let (result, error) = match a.error {
                None => (done.to_string(), None),
                Some(e) => match benign.iter().find(|(b, _)| *b == e) {
                    Some((_, what)) => (what.to_string(), None),
                    None => {
                        failed += 1;
                        let msg = a.message.clone().unwrap_or_else(|| format!("{e:?}"));
                        ("failed".to_string(), Some(msg))
                    }
                },
            };
            Answer {
                topic: &a.topic,
                partition: a.partition,
                result,
                error,
            }
        })
        .collect();
    if common.json() {
        print_json(&rows)?;
    } else {
        let mut table = crate::output::Table::new(&["TOPIC", "PARTITION", "RESULT", "ERROR"]);
        for r in &rows {
            table.row(vec![
                r.topic.to_string(),
                r.partition.to_string(),
                r.result.clone(),
                r.error.clone().unwrap_or_default(),
            ]);
        }
        let text = if rows.is_empty() {
            "Nothing to do: every partition already has its preferred leader.\n".to_string()
        } else {
            table.render()
        };
        print(&text)?;
    }
    if failed > 0 {
        bail!("{failed} partition(s) failed");
    }
    Ok(())
}

/// kafka-delete-records.sh's offsets file.
fn offsets_from_json(file: &std::path::Path) -> anyhow::Result<Vec<(String, i32, i64)>> {
    #[derive(serde::Deserialize)]
    struct Entry {
        topic: String,
        partition: i32,
        offset: i64,
    }
    #[derive(serde::Deserialize)]
    struct File {
        partitions: Vec<Entry>,
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let parsed: File = serde_json::from_str(&text)
        .with_context(|| format!("{} is not kafka-delete-records.sh's JSON", file.display()))?;
    if parsed.partitions.is_empty() {
        bail!("{} names no partitions", file.display());
    }
    Ok(parsed
        .partitions
        .into_iter()
        .map(|e| (e.topic, e.partition, e.offset))
        .collect())
}

/// One partition's outcome, as `delete-records` prints it.
#[derive(Serialize)]
struct Deleted {
    topic: String,
    partition: i32,
    /// The log start before, and the low watermark after (the same on a dry run).
    low_watermark_before: i64,
    low_watermark: i64,
    records_deleted: i64,
    dry_run: bool,
}

async fn delete_records(
    client: &Client,
    common: &Common,
    wanted: &[(String, i32, i64)],
    dry_run: bool,
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    for (topic, partition, before) in wanted {
        let (topic, partition, before) = (topic.as_str(), *partition, *before);
        let info = existing(client, topic).await?;
        if !info.partitions.iter().any(|p| p.partition == partition) {
            bail!("topic '{topic}' has no partition {partition}");
        }
        if before < -1 {
            bail!("--before {before}: an offset, or -1 for the high watermark");
        }
        let start = client
            .list_offsets(topic, partition, cairn_client::EARLIEST_OFFSET)
            .await?;
        let end = client
            .list_offsets(topic, partition, cairn_client::LATEST_OFFSET)
            .await?;
        let target = if before == -1 { end } else { before };
        if target > end {
            bail!("{topic}/{partition}: offset {before} is past the high watermark {end}");
        }
        let after = if dry_run {
            target.max(start)
        } else {
            client
                .delete_records(topic, partition, before)
                .await
                .with_context(|| format!("cannot delete records of {topic}/{partition}"))?
        };
        out.push(Deleted {
            topic: topic.to_string(),
            partition,
            low_watermark_before: start,
            low_watermark: after,
            records_deleted: (after - start).max(0),
            dry_run,
        });
    }
    if common.json() {
        return print_json(&out);
    }
    let mut table = crate::output::Table::new(&[
        "TOPIC",
        "PARTITION",
        "LOW-WATERMARK-BEFORE",
        "LOW-WATERMARK",
        "RECORDS-DELETED",
    ]);
    for d in &out {
        table.row(vec![
            d.topic.clone(),
            d.partition.to_string(),
            d.low_watermark_before.to_string(),
            d.low_watermark.to_string(),
            d.records_deleted.to_string(),
        ]);
    }
    let mut text = table.render();
    if dry_run {
        text.push_str("Dry run: nothing was deleted.\n");
    }
    print(&text)
}

/// Fails with a plain message when the topic is unknown.
async fn existing(client: &Client, topic: &str) -> anyhow::Result<TopicInfo> {
    let meta = client.fetch_metadata(Some(&[topic]), false).await?;
    meta.topics
        .get(topic)
        .filter(|t| t.error.is_none())
        .cloned()
        .ok_or_else(|| anyhow!("topic '{topic}' does not exist"))
}

#[derive(Serialize)]
struct Done<'a> {
    topic: &'a str,
    result: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    partitions: Option<usize>,
}

fn done(common: &Common, topic: &str, what: &str, partitions: Option<usize>) -> anyhow::Result<()> {
    if common.json() {
        return print_json(&Done {
            topic,
            result: what,
            partitions,
        });
    }
    let text = match (what, partitions) {
        ("created", Some(n)) => format!("Created topic {topic} with {n} partition(s).\n"),
        ("altered", Some(n)) => format!("Topic {topic} now has {n} partitions.\n"),
        _ => format!("Deleted topic {topic}.\n"),
    };
    print(&text)
}

#[derive(Serialize)]
struct Listed {
    name: String,
    partitions: usize,
    internal: bool,
}

async fn list(client: &Client, common: &Common, exclude_internal: bool) -> anyhow::Result<()> {
    let meta = client.fetch_metadata(None, false).await?;
    let topics: Vec<Listed> = meta
        .topics
        .values()
        .filter(|t| !(exclude_internal && t.internal))
        .map(|t| Listed {
            name: t.name.clone(),
            partitions: t.partitions.len(),
            internal: t.internal,
        })
        .collect();
    if common.json() {
        return print_json(&topics);
    }
    let text: String = topics.iter().map(|t| format!("{}\n", t.name)).collect();
    print(&text)
}

/// One partition as `describe` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionView {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// One topic as `describe` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TopicView {
    pub name: String,
    pub topic_id: String,
    pub internal: bool,
    pub partition_count: usize,
    pub replication_factor: usize,
    /// Only the configs set on the topic itself, as kafka-topics.sh shows.
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionView>,
}

fn view(t: &TopicInfo, configs: BTreeMap<String, String>) -> TopicView {
    TopicView {
        name: t.name.clone(),
        topic_id: t.topic_id.to_string(),
        internal: t.internal,
        partition_count: t.partitions.len(),
        replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len()),
        configs,
        partitions: t
            .partitions
            .iter()
            .map(|p| PartitionView {
                partition: p.partition,
                leader: p.leader,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
            })
            .collect(),
    }
}

fn ids(list: &[i32]) -> String {
    list.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// kafka-topics.sh's describe layout: a line per topic, then an indented
/// line per partition, fields separated by tabs.
pub fn render_describe(topics: &[TopicView]) -> String {
    let mut out = String::new();
    for t in topics {
        let configs = t
            .configs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&format!(
            "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
            t.name, t.topic_id, t.partition_count, t.replication_factor, configs
        ));
        for p in &t.partitions {
            out.push_str(&format!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\n",
                t.name,
                p.partition,
                if p.leader >= 0 {
                    p.leader.to_string()
                } else {
                    "none".to_string()
                },
                ids(&p.replicas),
                ids(&p.isr)
            ));
        }
    }
    out
}

async fn describe(
    client: &Client,
    common: &Common,
    topic: Option<&str>,
    exclude_internal: bool,
) -> anyhow::Result<()> {
    let infos: Vec<TopicInfo> = match topic {
        Some(t) => vec![existing(client, t).await?],
        None => client
            .fetch_metadata(None, false)
            .await?
            .topics
            .into_values()
            .filter(|t| !(exclude_internal && t.internal))
            .collect(),
    };
    let mut views = Vec::new();
    let mut progress = Progress::new("describing topics", infos.len());
    for info in &infos {
        let configs = match client.describe_topic_configs(&info.name).await {
            Ok(entries) => entries
                .into_iter()
                .filter(|c| c.is_topic_override() && !c.sensitive)
                .filter_map(|c| Some((c.name, c.value?)))
                .collect(),
            // A broker without DescribeConfigs still gets its partitions shown.
            Err(e) => {
                tracing::debug!("configs of {}: {e}", info.name);
                BTreeMap::new()
            }
        };
        views.push(view(info, configs));
        progress.step();
    }
    progress.finish();
    if common.json() {
        return print_json(&views);
    }
    print(&render_describe(&views))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_layout() {
        let t = TopicView {
            name: "orders".into(),
            topic_id: "b6d9b1a0-3c1e-4a5e-9a57-0b7b0c6a1f11".into(),
            internal: false,
            partition_count: 2,
            replication_factor: 1,
            configs: [("retention.ms".to_string(), "3600000".to_string())]
                .into_iter()
                .collect(),
            partitions: vec![
                PartitionView {
                    partition: 0,
                    leader: 1,
                    replicas: vec![1],
                    isr: vec![1],
                },
                PartitionView {
                    partition: 1,
                    leader: -1,
                    replicas: vec![1],
                    isr: vec![],
                },
            ],
        };
        insta::assert_snapshot!(render_describe(&[t]));
    }
}
