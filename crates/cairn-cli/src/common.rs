//! Options every operator command takes, and connecting with them.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use cairn_client::{Client, Error};

use crate::output::Format;

/// Where the broker is and how to print.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// A broker to bootstrap from; the rest of the cluster is found through it.
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        global = true,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap: String,
    /// `table` for people, `json` for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Give up on a broker that does not answer a connection within this time.
    #[arg(
        long = "connect-timeout-ms",
        global = true,
        value_name = "MS",
        default_value_t = 10_000
    )]
    pub connect_timeout_ms: u64,
}

impl Common {
    pub fn json(&self) -> bool {
        self.output == Format::Json
    }

    /// Connects and loads metadata, with errors that say what to check.
    pub async fn connect(&self, client_id: &str) -> anyhow::Result<Client> {
        let limit = Duration::from_millis(self.connect_timeout_ms);
        match Client::connect_timeout(&self.bootstrap, client_id, limit).await {
            Ok(c) => Ok(c),
            Err(
                e @ (Error::Connect { .. } | Error::Timeout { .. } | Error::ConnectionClosed(_)),
            ) => Err(anyhow!(
                "cannot reach a broker at {} ({e}); check --bootstrap-server",
                self.bootstrap
            )),
            Err(e) => Err(e).with_context(|| format!("talking to {}", self.bootstrap)),
        }
    }
}

/// A `--topic` argument: `TOPIC` (every partition) or `TOPIC:P,P,...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub topic: String,
    /// `None` means every partition of the topic.
    pub partitions: Option<Vec<i32>>,
}

pub fn parse_topic_spec(s: &str) -> anyhow::Result<TopicSpec> {
    let (topic, parts) = match s.split_once(':') {
        None => (s, None),
        Some((t, ps)) => {
            let parts = ps
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .ok()
                        .filter(|p| *p >= 0)
                        .ok_or_else(|| anyhow!("bad partition '{p}' in --topic {s}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            (t, Some(parts))
        }
    };
    if topic.is_empty() {
        bail!("--topic needs a topic name, as TOPIC or TOPIC:0,1,2");
    }
    Ok(TopicSpec {
        topic: topic.to_string(),
        partitions: parts,
    })
}

/// Expands topic specs into partitions that exist, per the cluster metadata.
pub async fn resolve_partitions(
    client: &Client,
    specs: &[TopicSpec],
) -> anyhow::Result<Vec<(String, i32)>> {
    let names: Vec<&str> = specs.iter().map(|s| s.topic.as_str()).collect();
    let meta = client.refresh_metadata(Some(&names)).await?;
    let mut out = Vec::new();
    for spec in specs {
        let info = meta
            .topics
            .get(&spec.topic)
            .filter(|t| t.error.is_none())
            .ok_or_else(|| anyhow!("topic '{}' does not exist", spec.topic))?;
        let count = info.partitions.len() as i32;
        match &spec.partitions {
            None => out.extend(
                info.partitions
                    .iter()
                    .map(|p| (spec.topic.clone(), p.partition)),
            ),
            Some(ps) => {
                for &p in ps {
                    if p >= count {
                        bail!(
                            "topic '{}' has no partition {p} (it has {count})",
                            spec.topic
                        );
                    }
                    out.push((spec.topic.clone(), p));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_specs() {
        assert_eq!(
            parse_topic_spec("t").unwrap(),
            TopicSpec {
                topic: "t".into(),
                partitions: None
            }
        );
        assert_eq!(
            parse_topic_spec("a.b:0, 2").unwrap().partitions,
            Some(vec![0, 2])
        );
        assert!(parse_topic_spec("t:x").is_err());
        assert!(parse_topic_spec("t:-1").is_err());
        assert!(parse_topic_spec(":1").is_err());
    }
}
