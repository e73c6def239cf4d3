//! `cairn log-dirs describe`: what kafka-log-dirs.sh --describe shows, over DescribeLogDirs:
//! each broker's log dirs, their total and usable bytes, and each partition's size.

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::common::Common;
use crate::output::{print, print_json, Table};

const CLIENT_ID: &str = "cairn-log-dirs";

#[derive(Args)]
pub struct LogDirsArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: LogDirsCommand,
}

#[derive(Subcommand)]
enum LogDirsCommand {
    /// Log dirs of every broker, with the size of each partition they hold.
    Describe {
        /// Only these topics (repeatable) [default: every topic].
        #[arg(long = "topic", value_name = "TOPIC")]
        topics: Vec<String>,
    },
}

#[derive(Serialize)]
struct Dir {
    broker: i32,
    log_dir: String,
    total_bytes: i64,
    usable_bytes: i64,
    partitions: Vec<Part>,
}

#[derive(Serialize)]
struct Part {
    topic: String,
    partition: i32,
    size: i64,
    offset_lag: i64,
    is_future: bool,
}

pub async fn run(args: LogDirsArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let client = common.connect(CLIENT_ID).await?;
    let LogDirsCommand::Describe { topics } = args.command;
    let meta = client.fetch_metadata(None, false).await?;
    // DescribeLogDirs names partitions one by one: take them from the metadata.
    let wanted = if topics.is_empty() {
        None
    } else {
        let mut list = Vec::new();
        for t in &topics {
            let info = meta
                .topics
                .get(t)
                .filter(|i| i.error.is_none())
                .ok_or_else(|| anyhow!("topic '{t}' does not exist"))?;
            list.push((
                t.clone(),
                info.partitions.iter().map(|p| p.partition).collect(),
            ));
        }
        Some(list)
    };
    let mut dirs = Vec::new();
    for broker in meta.brokers.keys() {
        let found = client
            .describe_log_dirs(*broker, wanted.as_deref())
            .await
            .with_context(|| format!("cannot describe the log dirs of broker {broker}"))?;
        for mut d in found {
            d.partitions
                .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            dirs.push(Dir {
                broker: d.broker,
                log_dir: d.log_dir,
                total_bytes: d.total_bytes,
                usable_bytes: d.usable_bytes,
                partitions: d
                    .partitions
                    .into_iter()
                    .map(|p| Part {
                        topic: p.topic,
                        partition: p.partition,
                        size: p.size,
                        offset_lag: p.offset_lag,
                        is_future: p.is_future,
                    })
                    .collect(),
            });
        }
    }
    if common.json() {
        return print_json(&dirs);
    }
    let mut text = String::new();
    for d in &dirs {
        text.push_str(&format!(
            "Broker {} log dir {}: {} bytes total, {} usable\n",
            d.broker, d.log_dir, d.total_bytes, d.usable_bytes
        ));
        let mut table = Table::new(&["TOPIC", "PARTITION", "SIZE", "OFFSET-LAG"]);
        for p in &d.partitions {
            table.row(vec![
                p.topic.clone(),
                p.partition.to_string(),
                p.size.to_string(),
                p.offset_lag.to_string(),
            ]);
        }
        if !table.is_empty() {
            text.push_str(&table.render());
        }
    }
    print(&text)
}
