//! `cairn configs`: describe and alter topic and broker configs, the job of kafka-configs.sh
//! `--entity-type topics|brokers`, over DescribeConfigs and IncrementalAlterConfigs, and client
//! quotas (`--entity-type users|clients|ips`, or `--user`/`--client`/`--ip` and their
//! `-defaults`) over DescribeClientQuotas and AlterClientQuotas. `cairn topics alter
//! --config/--delete-config` uses the same config change path.

use anyhow::{anyhow, bail};
use cairn_client::configs::source_name;
use cairn_client::quotas::QuotaMatch;
use cairn_client::{Client, ConfigOp, DescribedConfig, RESOURCE_BROKER, RESOURCE_TOPIC};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::common::{describe_error, Common};
use crate::output::{change_words, print, print_json};

const CLIENT_ID: &str = "cairn-configs";

#[derive(Args)]
pub struct ConfigsArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: ConfigsCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EntityType {
    Topics,
    Brokers,
    Users,
    Clients,
    Ips,
}

#[derive(Args, Debug)]
struct Entity {
    /// What the configs belong to (users, clients and ips carry client quotas).
    #[arg(long = "entity-type", value_enum)]
    entity_type: Option<EntityType>,
    /// The topic name, broker id, user, client id or IP address.
    #[arg(long = "entity-name", conflicts_with = "entity_default")]
    entity_name: Option<String>,
    /// The default entity: cluster-wide broker configs, or the default user, client or IP quota.
    #[arg(long = "entity-default")]
    entity_default: bool,
    /// A user's quotas (with --client: that user's quotas for that client id).
    #[arg(long, conflicts_with_all = ["entity_type", "user_defaults", "ip", "ip_defaults"])]
    user: Option<String>,
    /// The default user's quotas.
    #[arg(long = "user-defaults", conflicts_with_all = ["entity_type", "ip", "ip_defaults"])]
    user_defaults: bool,
    /// A client id's quotas.
    #[arg(long, conflicts_with_all = ["entity_type", "client_defaults", "ip", "ip_defaults"])]
    client: Option<String>,
    /// The default client id's quotas.
    #[arg(long = "client-defaults", conflicts_with_all = ["entity_type", "ip", "ip_defaults"])]
    client_defaults: bool,
    /// An IP address's quotas.
    #[arg(long, conflicts_with_all = ["entity_type", "ip_defaults"])]
    ip: Option<String>,
    /// The default IP quotas.
    #[arg(long = "ip-defaults", conflicts_with = "entity_type")]
    ip_defaults: bool,
}

/// What a `configs` command is about.
enum Target {
    /// A DescribeConfigs resource: (type, name).
    Resource(i8, String),
    /// Client quota entity components: (type, exact name / default / any).
    Quota(Vec<(String, QuotaMatch)>),
}

#[derive(Subcommand)]
enum ConfigsCommand {
    /// The configs set on a topic or broker (with --all, every config and its source).
    Describe {
        #[command(flatten)]
        entity: Entity,
        /// Every config, also those left at their defaults or set in the broker's file.
        #[arg(long)]
        all: bool,
    },
    /// Set and delete configs of a topic, a broker, or the cluster-wide broker default.
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// KEY=VALUE pairs, comma separated; a list value goes in brackets:
        /// cleanup.policy=[compact,delete] (repeatable).
        #[arg(long = "add-config", value_name = "K=V[,K=V]")]
        add: Vec<String>,
        /// Keys to remove, comma separated (repeatable).
        #[arg(long = "delete-config", value_name = "K[,K]")]
        delete: Vec<String>,
        /// Have the broker check the change (validate_only) without making it.
        #[arg(long)]
        dry_run: bool,
    },
}

impl Entity {
    fn target(&self) -> anyhow::Result<Target> {
        let part = |ty: &str, name: &Option<String>, default: bool| match (name, default) {
            (Some(n), _) => Some((ty.to_string(), QuotaMatch::Exact(n.clone()))),
            (None, true) => Some((ty.to_string(), QuotaMatch::Default)),
            (None, false) => None,
        };
        let shorthand: Vec<_> = [
            part("user", &self.user, self.user_defaults),
            part("client-id", &self.client, self.client_defaults),
            part("ip", &self.ip, self.ip_defaults),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !shorthand.is_empty() {
            return Ok(Target::Quota(shorthand));
        }
        let quota_type = match self.entity_type {
            Some(EntityType::Users) => "user",
            Some(EntityType::Clients) => "client-id",
            Some(EntityType::Ips) => "ip",
            Some(_) => return self.resource().map(|(t, n)| Target::Resource(t, n)),
            None => bail!("say what the configs belong to: --entity-type, or --user/--client/--ip"),
        };
        let m = match (&self.entity_name, self.entity_default) {
            (Some(n), _) => QuotaMatch::Exact(n.clone()),
            (None, true) => QuotaMatch::Default,
            (None, false) => QuotaMatch::Any,
        };
        Ok(Target::Quota(vec![(quota_type.to_string(), m)]))
    }

    /// (resource type, resource name) as the protocol names them.
    fn resource(&self) -> anyhow::Result<(i8, String)> {
        let Some(ty) = self.entity_type else {
            bail!("--entity-type is needed");
        };
        match (ty, &self.entity_name, self.entity_default) {
            (EntityType::Topics, Some(t), false) => Ok((RESOURCE_TOPIC, t.clone())),
            (EntityType::Topics, _, _) => bail!("--entity-type topics needs --entity-name TOPIC"),
            (EntityType::Brokers, Some(id), false) => {
                id.parse::<i32>()
                    .map_err(|_| anyhow!("--entity-name of a broker is its id, not '{id}'"))?;
                Ok((RESOURCE_BROKER, id.clone()))
            }
            (EntityType::Brokers, None, true) => Ok((RESOURCE_BROKER, String::new())),
            (EntityType::Brokers, _, _) => {
                bail!("--entity-type brokers needs --entity-name ID or --entity-default")
            }
            (_, _, _) => bail!("client quota entities have no DescribeConfigs resource"),
        }
    }
}

fn label(ty: i8, name: &str) -> String {
    match (ty, name) {
        (RESOURCE_BROKER, "") => "default brokers".to_string(),
        (RESOURCE_BROKER, id) => format!("broker {id}"),
        (_, t) => format!("topic {t}"),
    }
}

/// kafka-configs.sh's `--add-config` syntax: `k=v,k2=[a,b]`.
pub fn parse_add(specs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for spec in specs {
        let mut depth = 0usize;
        let mut item = String::new();
        let mut items = Vec::new();
        for c in spec.chars() {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    items.push(std::mem::take(&mut item));
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        items.push(item);
        for it in items.into_iter().filter(|i| !i.trim().is_empty()) {
            let (k, v) = it
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| anyhow!("bad config '{it}': expected KEY=VALUE"))?;
            let v = v.trim();
            let v = v
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .unwrap_or(v);
            out.push((k.trim().to_string(), v.to_string()));
        }
    }
    Ok(out)
}

pub fn parse_delete(specs: &[String]) -> Vec<String> {
    specs
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// The operations of `--add-config` and `--delete-config`.
pub fn ops(add: &[String], delete: &[String]) -> anyhow::Result<Vec<ConfigOp>> {
    with_deletes(parse_add(add)?, delete)
}

/// The operations of `topics alter`: one `--config K=V` per flag (a list value keeps its
/// commas), and `--delete-config`.
pub fn topic_ops(set: &[String], delete: &[String]) -> anyhow::Result<Vec<ConfigOp>> {
    let pairs = set
        .iter()
        .map(|c| {
            c.split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| anyhow!("bad --config '{c}': expected KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    with_deletes(pairs, delete)
}

fn with_deletes(set: Vec<(String, String)>, delete: &[String]) -> anyhow::Result<Vec<ConfigOp>> {
    let mut ops: Vec<ConfigOp> = set.into_iter().map(|(k, v)| ConfigOp::Set(k, v)).collect();
    ops.extend(parse_delete(delete).into_iter().map(ConfigOp::Delete));
    if ops.is_empty() {
        bail!("nothing to change: give --add-config or --delete-config");
    }
    Ok(ops)
}

#[derive(Serialize)]
struct Altered<'a> {
    resource: String,
    result: &'a str,
    set: Vec<(String, String)>,
    deleted: Vec<String>,
}

/// Sends the change and reports it, in the command's output format.
pub async fn alter(
    client: &Client,
    common: &Common,
    ty: i8,
    name: &str,
    ops: &[ConfigOp],
    dry_run: bool,
) -> anyhow::Result<()> {
    client
        .incremental_alter_configs(ty, name, ops, dry_run)
        .await
        .map_err(|e| anyhow!("{}", describe_error(&e)))?;
    let mut set = Vec::new();
    let mut deleted = Vec::new();
    for op in ops {
        match op {
            ConfigOp::Set(k, v) => set.push((k.clone(), v.clone())),
            ConfigOp::Delete(k) => deleted.push(k.clone()),
            _ => {}
        }
    }
    let (result, what) = change_words(dry_run);
    if common.json() {
        return print_json(&Altered {
            resource: label(ty, name),
            result,
            set,
            deleted,
        });
    }
    print(&format!("{what} config for {}.\n", label(ty, name)))
}

#[derive(Serialize)]
struct Described {
    resource: String,
    configs: Vec<ConfigView>,
}

#[derive(Serialize)]
struct ConfigView {
    name: String,
    value: Option<String>,
    source: &'static str,
    read_only: bool,
    sensitive: bool,
    synonyms: Vec<SynonymView>,
}

#[derive(Serialize)]
struct SynonymView {
    name: String,
    value: Option<String>,
    source: &'static str,
}

fn view(c: &DescribedConfig) -> ConfigView {
    ConfigView {
        name: c.name.clone(),
        value: c.value.clone(),
        source: source_name(c.source),
        read_only: c.read_only,
        sensitive: c.sensitive,
        synonyms: c
            .synonyms
            .iter()
            .map(|(n, v, s)| SynonymView {
                name: n.clone(),
                value: v.clone(),
                source: source_name(*s),
            })
            .collect(),
    }
}

fn shown(ty: i8, c: &DescribedConfig, all: bool) -> bool {
    all || match ty {
        RESOURCE_TOPIC => c.source == 1,
        _ => c.source == 2 || c.source == 3,
    }
}

pub async fn run(args: ConfigsArgs) -> anyhow::Result<()> {
    let common = &args.common;
    match args.command {
        ConfigsCommand::Describe { entity, all } => {
            let (ty, name) = match entity.target()? {
                Target::Resource(ty, name) => (ty, name),
                Target::Quota(filter) => return crate::quotas::describe(common, filter).await,
            };
            let client = common.connect(CLIENT_ID).await?;
            let configs = client
                .describe_configs(ty, &name)
                .await
                .map_err(|e| anyhow!("{}", describe_error(&e)))?;
            let picked: Vec<&DescribedConfig> =
                configs.iter().filter(|c| shown(ty, c, all)).collect();
            if common.json() {
                return print_json(&Described {
                    resource: label(ty, &name),
                    configs: picked.into_iter().map(view).collect(),
                });
            }
            let mut text = format!(
                "{} configs for {} are:\n",
                if all { "All" } else { "Dynamic" },
                label(ty, &name)
            );
            for c in picked {
                let syn: Vec<String> = c
                    .synonyms
                    .iter()
                    .map(|(n, v, s)| {
                        format!("{}:{n}={}", source_name(*s), v.as_deref().unwrap_or(""))
                    })
                    .collect();
                text.push_str(&format!(
                    "  {}={} sensitive={} read-only={} source={} synonyms={{{}}}\n",
                    c.name,
                    if c.sensitive {
                        "null"
                    } else {
                        c.value.as_deref().unwrap_or("null")
                    },
                    c.sensitive,
                    c.read_only,
                    source_name(c.source),
                    syn.join(", ")
                ));
            }
            print(&text)
        }
        ConfigsCommand::Alter {
            entity,
            add,
            delete,
            dry_run,
        } => {
            let (ty, name) = match entity.target()? {
                Target::Resource(ty, name) => (ty, name),
                Target::Quota(parts) => {
                    return crate::quotas::alter(common, parts, &add, &delete, dry_run).await
                }
            };
            let ops = ops(&add, &delete)?;
            let client = common.connect(CLIENT_ID).await?;
            alter(&client, common, ty, &name, &ops, dry_run).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_syntax_is_kafka_configs() {
        let got = parse_add(&[
            "retention.ms=1000,cleanup.policy=[compact,delete]".into(),
            "segment.bytes=2048".into(),
        ])
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("retention.ms".into(), "1000".into()),
                ("cleanup.policy".into(), "compact,delete".into()),
                ("segment.bytes".into(), "2048".into()),
            ]
        );
        assert!(parse_add(&["novalue".into()]).is_err());
        assert!(parse_add(&["=1".into()]).is_err());
        assert_eq!(
            parse_delete(&["a, b".into(), "c".into()]),
            vec!["a", "b", "c"]
        );
        assert!(ops(&[], &[]).is_err());
    }
}
