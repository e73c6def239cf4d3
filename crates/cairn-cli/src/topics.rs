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
