//! `cairn groups reset-offsets`: work out where a group should resume on
//! each partition, show the plan, and with `--execute` commit it.
//!
//! Kafka's rules: only a group without members (Empty, or Dead = unknown)
//! may be reset; every new offset is clamped into [log start, log end];
//! times map to offsets with ListOffsets by timestamp, and a time after the
//! last record maps to the log end. The commit is the "simple consumer"
//! one (generation -1, no member id), which a coordinator accepts only
//! while the group has no members.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use cairn_client::kafka_protocol::ResponseError;
use cairn_client::{Client, EARLIEST_OFFSET, LATEST_OFFSET};
use clap::{ArgGroup, Args};
use serde::Serialize;

use crate::common::{parse_topic_spec, resolve_partitions, Common};
use crate::groups::{coordinator, describe_one};
use crate::output::{error_name, or_dash, print, print_json, Progress, Table};

#[derive(Args)]
#[command(group(ArgGroup::new("scenario").required(true).args([
    "to_earliest", "to_latest", "to_offset", "to_datetime", "by_duration",
    "shift_by", "to_current", "from_file",
])))]
#[command(group(ArgGroup::new("scope").args(["topics", "all_topics"])))]
pub struct ResetArgs {
    /// The group whose offsets move.
    #[arg(long)]
    group: String,
    /// TOPIC (all its partitions) or TOPIC:P,P,... (repeatable).
    #[arg(long = "topic", value_name = "TOPIC[:P,...]")]
    topics: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    all_topics: bool,
    /// To the first offset still in each log.
    #[arg(long)]
    to_earliest: bool,
    /// To the end of each log (skip everything there now).
    #[arg(long)]
    to_latest: bool,
    /// To this offset (clamped into each log).
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    to_offset: Option<i64>,
    /// To the first record at or after this time: YYYY-MM-DDTHH:mm:SS.sss,
    /// optionally with Z or an offset like +01:00; without one it is UTC.
    #[arg(long, value_name = "DATETIME")]
    to_datetime: Option<String>,
    /// To the first record at or after this long ago (ISO-8601: PT1H, P1DT12H).
    #[arg(long, value_name = "DURATION")]
    by_duration: Option<String>,
    /// Move each committed offset by N (negative goes back).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// To the committed offset (the log end where none is committed).
    #[arg(long)]
    to_current: bool,
    /// To the offsets in a CSV file of topic,partition,offset lines (as --export writes).
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// Only show the plan (the default).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the plan.
    #[arg(long)]
    execute: bool,
    /// Print the plan as CSV (topic,partition,offset) instead of a table.
    #[arg(long)]
    export: bool,
}

/// How the new offset of a partition is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scenario {
    Earliest,
    Latest,
    Offset(i64),
    /// Milliseconds since the epoch; the partition's by-time offset is looked up.
    Time(i64),
    ShiftBy(i64),
    Current,
    /// From a file: one offset per partition.
    Given(BTreeMap<(String, i32), i64>),
}

/// What is known about a partition when planning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionFacts {
    pub log_start: i64,
    pub log_end: i64,
    pub committed: Option<i64>,
    /// ListOffsets by timestamp: -1 when no record is that recent.
    pub by_time: Option<i64>,
}

/// The new offset for one partition, clamped into the log.
pub fn plan_offset(
    scenario: &Scenario,
    topic: &str,
    partition: i32,
    f: &PartitionFacts,
) -> anyhow::Result<i64> {
    let wanted = match scenario {
        Scenario::Earliest => f.log_start,
        Scenario::Latest => f.log_end,
        Scenario::Offset(o) => *o,
        Scenario::Time(_) => match f.by_time {
            Some(o) if o >= 0 => o,
            _ => f.log_end,
        },
        Scenario::ShiftBy(n) => match f.committed {
            Some(c) => c.saturating_add(*n),
            None => bail!(
                "cannot shift {topic}/{partition}: the group has no committed offset there \
                 (use --to-earliest/--to-latest/--to-offset for it first)"
            ),
        },
        Scenario::Current => f.committed.unwrap_or(f.log_end),
        Scenario::Given(map) => *map
            .get(&(topic.to_string(), partition))
            .ok_or_else(|| anyhow!("{topic}/{partition} is not in the file"))?,
    };
    Ok(wanted.clamp(f.log_start, f.log_end.max(f.log_start)))
}

/// Parses Kafka's datetime forms: `YYYY-MM-DDTHH:mm:SS[.sss]` then nothing
/// (UTC), `Z`, or an offset `+HH:MM`, `+HHMM`, `+HH`. Returns epoch millis.
pub fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    let bad = || {
        anyhow!(
            "bad --to-datetime '{s}': expected YYYY-MM-DDTHH:mm:SS.sss, optionally followed \
             by Z or an offset like +01:00 (no offset means UTC)"
        )
    };
    let s = s.trim();
    if s.len() < 19 || s.as_bytes().get(10) != Some(&b'T') {
        return Err(bad());
    }
    // The zone, if any, starts after the seconds (and their fraction).
    let zone_at = s[19..]
        .find(['Z', 'z', '+', '-'])
        .map_or(s.len(), |i| i + 19);
    let (local, zone) = s.split_at(zone_at);
    if local.len() > 19 && !local[19..].starts_with('.') {
        return Err(bad());
    }
    let civil: jiff::civil::DateTime = local.parse().map_err(|_| bad())?;
    let offset_secs: i32 = match zone {
        "" | "Z" | "z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
            let colon_ok = match z[1..].find(':') {
                None => true,
                Some(i) => i == 2 && z[1..].matches(':').count() == 1,
            };
            if !colon_ok || !(digits.len() == 2 || digits.len() == 4) {
                return Err(bad());
            }
            if !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let hours: i32 = digits[..2].parse().map_err(|_| bad())?;
            let minutes: i32 = if digits.len() == 4 {
                digits[2..].parse().map_err(|_| bad())?
            } else {
                0
            };
            if hours > 18 || minutes > 59 {
                return Err(bad());
            }
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let offset = jiff::tz::Offset::from_seconds(offset_secs).map_err(|_| bad())?;
    let ts = offset.to_timestamp(civil).map_err(|_| bad())?;
    Ok(ts.as_millisecond())
}

/// Parses an ISO-8601 duration as Java's `Duration.parse` does (days,
/// hours, minutes, seconds; a day is 24 hours). Returns milliseconds.
pub fn parse_duration(s: &str) -> anyhow::Result<i64> {
    let bad = |why: &str| anyhow!("bad --by-duration '{s}': {why}");
    let iso = "expected an ISO-8601 duration such as PT1H, PT30M or P1DT12H";
    let t = s.trim();
    // jiff also reads "1 hour"; Kafka takes ISO-8601 only, and so do we.
    if !t.trim_start_matches(['+', '-']).starts_with(['P', 'p']) {
        return Err(bad(iso));
    }
    let span: jiff::Span = t.parse().map_err(|_| bad(iso))?;
    if span.get_years() != 0 || span.get_months() != 0 || span.get_weeks() != 0 {
        return Err(bad(
            "years, months and weeks have no fixed length; use days (P7D)",
        ));
    }
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| bad("out of range"))?;
    if d.is_negative() {
        return Err(bad("must not be negative"));
    }
    i64::try_from(d.as_millis()).map_err(|_| bad("out of range"))
}

/// Reads `topic,partition,offset` lines (or Kafka's multi-group
/// `group,topic,partition,offset`, keeping `group`'s lines).
pub fn parse_plan_csv(text: &str, group: &str) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (topic, partition, offset) = match fields.as_slice() {
            [t, p, o] => (*t, *p, *o),
            [g, t, p, o] => {
                if *g != group {
                    continue;
                }
                (*t, *p, *o)
            }
            _ => bail!(
                "line {}: expected topic,partition,offset but got '{line}'",
                n + 1
            ),
        };
        let partition: i32 = partition
            .parse()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| anyhow!("line {}: bad partition '{partition}'", n + 1))?;
        let offset: i64 = offset
            .parse()
            .map_err(|_| anyhow!("line {}: bad offset '{offset}'", n + 1))?;
        if topic.is_empty() {
            bail!("line {}: empty topic", n + 1);
        }
        out.insert((topic.to_string(), partition), offset);
    }
    if out.is_empty() {
        bail!("the file has no offsets for group '{group}'");
    }
    Ok(out)
}

/// One line of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedOffset {
    pub topic: String,
    pub partition: i32,
    pub current_offset: Option<i64>,
    pub new_offset: i64,
}

#[derive(Serialize)]
struct PlanJson<'a> {
    group: &'a str,
    executed: bool,
    partitions: &'a [PlannedOffset],
}

pub fn render_plan(group: &str, plan: &[PlannedOffset]) -> String {
    let mut t = Table::new(&[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "NEW-OFFSET",
    ]);
    for p in plan {
        t.row(vec![
            group.to_string(),
            p.topic.clone(),
            p.partition.to_string(),
            or_dash(p.current_offset),
            p.new_offset.to_string(),
        ]);
    }
    t.render()
}

/// Kafka's export format, which --from-file reads back.
pub fn render_csv(plan: &[PlannedOffset]) -> String {
    plan.iter()
        .map(|p| format!("{},{},{}\n", p.topic, p.partition, p.new_offset))
        .collect()
}

fn scenario_of(args: &ResetArgs) -> anyhow::Result<Scenario> {
    Ok(if args.to_earliest {
        Scenario::Earliest
    } else if args.to_latest {
        Scenario::Latest
    } else if let Some(o) = args.to_offset {
        Scenario::Offset(o)
    } else if let Some(s) = &args.to_datetime {
        // Negative timestamps mean "earliest"/"latest" to ListOffsets; no
        // record is older than the epoch anyway.
        Scenario::Time(parse_datetime(s)?.max(0))
    } else if let Some(s) = &args.by_duration {
        let back = parse_duration(s)?;
        Scenario::Time(cairn_client::records::now_ms().saturating_sub(back).max(0))
    } else if let Some(n) = args.shift_by {
        Scenario::ShiftBy(n)
    } else if args.to_current {
        Scenario::Current
    } else if let Some(path) = &args.from_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Scenario::Given(
            parse_plan_csv(&text, &args.group).with_context(|| format!("in {}", path.display()))?,
        )
    } else {
        bail!("choose how to reset: --to-earliest, --to-latest, --to-offset, ...")
    })
}

pub async fn run(client: &Client, common: &Common, args: ResetArgs) -> anyhow::Result<()> {
    // Bad input is reported before anything touches the network.
    let scenario = scenario_of(&args)?;
    let group = args.group.as_str();
    if args.topics.is_empty() && !args.all_topics && !matches!(scenario, Scenario::Given(_)) {
        bail!("say which partitions to reset: --topic TOPIC[:P,...] or --all-topics");
    }
    let specs = args
        .topics
        .iter()
        .map(|t| parse_topic_spec(t))
        .collect::<anyhow::Result<Vec<_>>>()?;

    if let Some((_, _, d)) = describe_one(client, group).await? {
        if d.state != "Empty" {
            bail!(
                "cannot reset offsets of group '{group}': it is {} with {} active member(s). \
                 Offsets can only be reset while the group is Empty: stop its consumers first",
                d.state,
                d.members.len()
            );
        }
    }
    let (_, conn) = coordinator(client, group).await?;
    let committed: BTreeMap<(String, i32), i64> = conn
        .fetch_all_offsets(group)
        .await
        .with_context(|| format!("cannot fetch the offsets of group '{group}'"))?
        .into_iter()
        .map(|c| ((c.topic, c.partition), c.offset))
        .collect();

    let mut partitions: Vec<(String, i32)> = if args.all_topics {
        committed.keys().cloned().collect()
    } else if !specs.is_empty() {
        resolve_partitions(client, &specs).await?
    } else {
        Vec::new()
    };
    if let Scenario::Given(map) = &scenario {
        let listed: Vec<(String, i32)> = map.keys().cloned().collect();
        if partitions.is_empty() && specs.is_empty() && !args.all_topics {
            partitions = listed;
        } else {
            // A scope with a file narrows the file to that scope.
            partitions.retain(|k| map.contains_key(k));
        }
        check_exist(client, &partitions).await?;
    }
    if partitions.is_empty() {
        bail!("nothing to reset: group '{group}' has no committed offsets in the chosen scope");
    }

    let mut progress = Progress::new("looking up offsets", 3);
    let lookup = |ts: i64| -> Vec<(String, i32, i64)> {
        partitions
            .iter()
            .map(|(t, p)| (t.clone(), *p, ts))
            .collect()
    };
    let starts = offsets(client, &lookup(EARLIEST_OFFSET)).await?;
    progress.step();
    let ends = offsets(client, &lookup(LATEST_OFFSET)).await?;
    progress.step();
    let by_time = match scenario {
        Scenario::Time(ts) => Some(offsets(client, &lookup(ts)).await?),
        _ => None,
    };
    progress.step();
    progress.finish();

    let mut plan = Vec::new();
    for (i, (topic, partition)) in partitions.iter().enumerate() {
        let current = committed.get(&(topic.clone(), *partition)).copied();
        let facts = PartitionFacts {
            log_start: starts[i],
            log_end: ends[i],
            committed: current,
            by_time: by_time.as_ref().map(|b| b[i]),
        };
        plan.push(PlannedOffset {
            topic: topic.clone(),
            partition: *partition,
            current_offset: current,
            new_offset: plan_offset(&scenario, topic, *partition, &facts)?,
        });
    }

    if args.execute {
        let offsets: Vec<(String, i32, i64)> = plan
            .iter()
            .map(|p| (p.topic.clone(), p.partition, p.new_offset))
            .collect();
        let outcomes = conn
            .commit_offsets_multi(group, -1, "", &offsets)
            .await
            .with_context(|| format!("cannot commit the new offsets of group '{group}'"))?;
        let failed: Vec<String> = outcomes
            .iter()
            .filter_map(|o| {
                o.error
                    .map(|e| format!("{}/{}: {}", o.topic, o.partition, error_name(e)))
            })
            .collect();
        if let Some(first) = outcomes.iter().find_map(|o| o.error) {
            if matches!(
                first,
                ResponseError::UnknownMemberId
                    | ResponseError::IllegalGeneration
                    | ResponseError::RebalanceInProgress
            ) {
                bail!(
                    "group '{group}' got active members while resetting; nothing was \
                     committed where it says {}: stop its consumers and run again",
                    error_name(first)
                );
            }
            bail!("some offsets were not committed: {}", failed.join(", "));
        }
    }

    if args.export {
        print(&render_csv(&plan))?;
    } else if common.json() {
        print_json(&PlanJson {
            group,
            executed: args.execute,
            partitions: &plan,
        })?;
    } else {
        print(&render_plan(group, &plan))?;
    }
    if !args.execute {
        eprintln!(
            "Dry run: nothing was changed. Run again with --execute to commit these offsets."
        );
    }
    Ok(())
}

/// Fails on the first partition that is not in the cluster.
async fn check_exist(client: &Client, partitions: &[(String, i32)]) -> anyhow::Result<()> {
    let mut topics: Vec<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
    topics.dedup();
    let meta = client.refresh_metadata(Some(&topics)).await?;
    for (t, p) in partitions {
        let known = meta
            .topics
            .get(t)
            .filter(|i| i.error.is_none())
            .ok_or_else(|| anyhow!("topic '{t}' does not exist"))?;
        if !known.partitions.iter().any(|x| x.partition == *p) {
            bail!("topic '{t}' has no partition {p}");
        }
    }
    Ok(())
}

/// ListOffsets answers in the order asked, failing on any partition error.
async fn offsets(client: &Client, queries: &[(String, i32, i64)]) -> anyhow::Result<Vec<i64>> {
    client
        .list_offsets_many(queries)
        .await?
        .into_iter()
        .map(|l| match l.error {
            None => Ok(l.offset),
            Some(e) => Err(anyhow!(
                "cannot look up offsets of {}/{}: {}",
                l.topic,
                l.partition,
                error_name(e)
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(start: i64, end: i64, committed: Option<i64>) -> PartitionFacts {
        PartitionFacts {
            log_start: start,
            log_end: end,
            committed,
            by_time: None,
        }
    }

    #[test]
    fn offsets_are_clamped_into_the_log() {
        let f = facts(10, 100, Some(50));
        let p = |s: Scenario| plan_offset(&s, "t", 0, &f).unwrap();
        assert_eq!(p(Scenario::Earliest), 10);
        assert_eq!(p(Scenario::Latest), 100);
        assert_eq!(p(Scenario::Offset(5)), 10);
        assert_eq!(p(Scenario::Offset(500)), 100);
        assert_eq!(p(Scenario::Offset(42)), 42);
        assert_eq!(p(Scenario::ShiftBy(-10)), 40);
        assert_eq!(p(Scenario::ShiftBy(-100)), 10);
        assert_eq!(p(Scenario::ShiftBy(1000)), 100);
        assert_eq!(p(Scenario::Current), 50);
    }

    #[test]
    fn uncommitted_partitions() {
        let f = facts(0, 100, None);
        assert_eq!(plan_offset(&Scenario::Current, "t", 0, &f).unwrap(), 100);
        let e = plan_offset(&Scenario::ShiftBy(1), "t", 3, &f).unwrap_err();
        assert!(e.to_string().contains("t/3"), "{e}");
    }

    #[test]
    fn times_after_the_last_record_go_to_the_end() {
        let mut f = facts(0, 100, Some(3));
        f.by_time = Some(-1);
        assert_eq!(plan_offset(&Scenario::Time(1), "t", 0, &f).unwrap(), 100);
        f.by_time = Some(60);
        assert_eq!(plan_offset(&Scenario::Time(1), "t", 0, &f).unwrap(), 60);
    }

    #[test]
    fn datetimes_in_kafkas_formats() {
        let utc = 1_704_067_200_000; // 2024-01-01T00:00:00Z
        assert_eq!(parse_datetime("2024-01-01T00:00:00.000").unwrap(), utc);
        assert_eq!(parse_datetime("2024-01-01T00:00:00").unwrap(), utc);
        assert_eq!(parse_datetime("2024-01-01T00:00:00.000Z").unwrap(), utc);
        assert_eq!(
            parse_datetime("2024-01-01T00:00:00.250Z").unwrap(),
            utc + 250
        );
        assert_eq!(
            parse_datetime("2024-01-01T01:00:00.000+01:00").unwrap(),
            utc
        );
        assert_eq!(parse_datetime("2024-01-01T01:30:00+0130").unwrap(), utc);
        assert_eq!(parse_datetime("2023-12-31T19:00:00-05").unwrap(), utc);
        for bad in [
            "2024-01-01",
            "yesterday",
            "2024-13-01T00:00:00",
            "2024-01-01 00:00:00",
            "2024-01-01T00:00:00+1:00",
            "2024-01-01T00:00:00.000+01:00:00",
            "2024-01-01T00:00:00x",
            "2024-01-01T00:00:00+25:00",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn durations_like_java() {
        assert_eq!(parse_duration("PT1H").unwrap(), 3_600_000);
        assert_eq!(parse_duration("PT0.5S").unwrap(), 500);
        assert_eq!(parse_duration("P1DT2H30M").unwrap(), 95_400_000);
        assert_eq!(parse_duration("pt15m").unwrap(), 900_000);
        assert!(parse_duration("1 hour").is_err());
        assert!(parse_duration("P1M").is_err());
        assert!(parse_duration("-PT1H").is_err());
    }

    #[test]
    fn plan_files() {
        let text =
            "# exported\norders,0,12\norders,1,7\n\nbilling,payments,0,3\nother,payments,0,9\n";
        let m = parse_plan_csv(text, "billing").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[&("payments".to_string(), 0)], 3);
        assert!(parse_plan_csv("orders,x,1", "g").is_err());
        assert!(parse_plan_csv("orders;0;1", "g").is_err());
        assert!(parse_plan_csv("", "g").is_err());
    }

    fn plan() -> Vec<PlannedOffset> {
        vec![
            PlannedOffset {
                topic: "orders".into(),
                partition: 0,
                current_offset: Some(120),
                new_offset: 0,
            },
            PlannedOffset {
                topic: "orders".into(),
                partition: 1,
                current_offset: None,
                new_offset: 37,
            },
        ]
    }

    #[test]
    fn plan_table() {
        insta::assert_snapshot!(render_plan("billing", &plan()));
    }

    #[test]
    fn plan_csv_round_trips() {
        let csv = render_csv(&plan());
        assert_eq!(csv, "orders,0,0\norders,1,37\n");
        let back = parse_plan_csv(&csv, "billing").unwrap();
        assert_eq!(back[&("orders".to_string(), 1)], 37);
    }
}
