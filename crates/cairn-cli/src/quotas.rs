//! `cairn configs ... --entity-type users|clients|ips` (or `--user`, `--client`, `--ip` and their
//! `-defaults`): client quotas, described and altered as kafka-configs.sh does.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use cairn_client::quotas::{QuotaEntity, QuotaMatch};
use serde::Serialize;

use crate::common::{describe_error, Common};
use crate::configs::{parse_add, parse_delete};
use crate::output::{change_words, print, print_json};

const CLIENT_ID: &str = "cairn-configs";

/// A quota value as Kafka's tools print it (a double: `1024.0`).
fn java_double(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

/// `user-principal 'alice', client-id '<default>'`, kafka-configs.sh's wording.
fn entity_label(entity: &QuotaEntity) -> String {
    let mut parts: Vec<_> = entity.iter().collect();
    parts.sort_by_key(|(t, _)| match t.as_str() {
        "user" => 0,
        "client-id" => 1,
        _ => 2,
    });
    parts
        .iter()
        .map(|(t, n)| {
            let t = if t == "user" { "user-principal" } else { t };
            format!("{t} '{}'", n.as_deref().unwrap_or("<default>"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Serialize)]
struct Described {
    /// Entity type → name; null is the type's default.
    entity: BTreeMap<String, Option<String>>,
    quotas: BTreeMap<String, f64>,
}

pub async fn describe(common: &Common, filter: Vec<(String, QuotaMatch)>) -> anyhow::Result<()> {
    let client = common.connect(CLIENT_ID).await?;
    let found = client
        .describe_client_quotas(&filter, true)
        .await
        .map_err(|e| anyhow!("{}", describe_error(&e)))?;
    if common.json() {
        let list: Vec<Described> = found
            .into_iter()
            .map(|(entity, values)| Described {
                entity: entity.into_iter().collect(),
                quotas: values.into_iter().collect(),
            })
            .collect();
        return print_json(&list);
    }
    let mut text = String::new();
    for (entity, mut values) in found {
        values.sort_by(|a, b| a.0.cmp(&b.0));
        let values: Vec<String> = values
            .iter()
            .map(|(k, v)| format!("{k}={}", java_double(*v)))
            .collect();
        text.push_str(&format!(
            "Quota configs for {} are {}\n",
            entity_label(&entity),
            values.join(", ")
        ));
    }
    print(&text)
}

#[derive(Serialize)]
struct Altered {
    entity: BTreeMap<String, Option<String>>,
    result: &'static str,
    set: BTreeMap<String, f64>,
    deleted: Vec<String>,
}

pub async fn alter(
    common: &Common,
    parts: Vec<(String, QuotaMatch)>,
    add: &[String],
    delete: &[String],
    dry_run: bool,
) -> anyhow::Result<()> {
    let entity: QuotaEntity = parts
        .into_iter()
        .map(|(t, m)| match m {
            QuotaMatch::Exact(n) => Ok((t, Some(n))),
            QuotaMatch::Default => Ok((t, None)),
            QuotaMatch::Any => bail!("altering quotas needs --entity-name or --entity-default"),
        })
        .collect::<anyhow::Result<_>>()?;
    let mut set = BTreeMap::new();
    let mut ops = Vec::new();
    for (k, v) in parse_add(add)? {
        let value: f64 = v
            .parse()
            .map_err(|_| anyhow!("quota {k} needs a number, not '{v}'"))?;
        set.insert(k.clone(), value);
        ops.push((k, Some(value)));
    }
    let deleted = parse_delete(delete);
    ops.extend(deleted.iter().map(|k| (k.clone(), None)));
    if ops.is_empty() {
        bail!("nothing to change: give --add-config or --delete-config");
    }
    let client = common.connect(CLIENT_ID).await?;
    client
        .alter_client_quotas(&entity, &ops, dry_run)
        .await
        .map_err(|e| anyhow!("{}", describe_error(&e)))?;
    let (result, what) = change_words(dry_run);
    if common.json() {
        return print_json(&Altered {
            entity: entity.into_iter().collect(),
            result,
            set,
            deleted,
        });
    }
    print(&format!("{what} quotas for {}.\n", entity_label(&entity)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_entities_print_as_kafka_configs_prints_them() {
        assert_eq!(java_double(1024.0), "1024.0");
        assert_eq!(java_double(12.5), "12.5");
        let e = vec![
            ("client-id".to_string(), None),
            ("user".to_string(), Some("alice".to_string())),
        ];
        assert_eq!(
            entity_label(&e),
            "user-principal 'alice', client-id '<default>'"
        );
    }
}
