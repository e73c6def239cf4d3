//! Options every operator command takes, and connecting with them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use cairn_client::kafka_protocol::ResponseError;
use cairn_client::{Client, Error, Security};

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
    /// Kafka client properties for TLS and SASL (security.protocol, sasl.mechanism,
    /// sasl.username/sasl.password or sasl.jaas.config, ssl.ca.location, ...).
    #[arg(long = "command-config", global = true, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

impl Common {
    pub fn json(&self) -> bool {
        self.output == Format::Json
    }

    /// TLS and SASL settings from `--command-config`; PLAINTEXT without it.
    pub fn security(&self) -> anyhow::Result<Security> {
        load_security(self.command_config.as_deref())
    }

    /// Connects and loads metadata, with errors that say what to check.
    pub async fn connect(&self, client_id: &str) -> anyhow::Result<Client> {
        let limit = Duration::from_millis(self.connect_timeout_ms);
        let security = self.security()?;
        match Client::connect_with(&self.bootstrap, client_id, limit, security).await {
            Ok(c) => Ok(c),
            Err(e) if is_auth_failure(&e) => Err(anyhow!(
                "authentication with the broker at {} failed: {}; check the SASL settings of --command-config",
                self.bootstrap,
                describe_error(&e)
            )),
            Err(e @ (Error::Tls { .. } | Error::Sasl(_))) => Err(anyhow!(
                "{e}; check security.protocol and the ssl./sasl. settings of --command-config"
            )),
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

/// Reads a `--command-config` file, warning about keys it does not use.
pub fn load_security(path: Option<&std::path::Path>) -> anyhow::Result<Security> {
    let Some(path) = path else {
        return Ok(Security::plaintext());
    };
    let (security, unknown) = Security::from_properties(path).context("bad --command-config")?;
    for key in unknown {
        tracing::warn!(key = %key, file = %path.display(), "unknown client property ignored");
    }
    Ok(security)
}

/// An error from the broker in operator terms: Kafka's name for the code,
/// what it means, and the broker's own message.
pub fn describe_error(e: &Error) -> String {
    match e {
        Error::Kafka {
            context,
            error,
            message,
        } => {
            let mut text = format!("{context}: {}", crate::output::error_name(*error));
            let why = cairn_client::acl::explain(*error)
                .or_else(|| cairn_client::transactions::explain(*error));
            if let Some(why) = why {
                text.push_str(&format!(" ({why})"));
            }
            if let Some(m) = message {
                text.push_str(&format!(": {m}"));
            }
            text
        }
        other => other.to_string(),
    }
}

fn is_auth_failure(e: &Error) -> bool {
    matches!(
        e.kafka_error(),
        Some(
            ResponseError::SaslAuthenticationFailed
                | ResponseError::UnsupportedSaslMechanism
                | ResponseError::IllegalSaslState
        )
    )
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
