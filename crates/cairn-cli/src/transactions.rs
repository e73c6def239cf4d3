//! `cairn transactions`: what kafka-transactions.sh does — list and describe
//! transactions, describe a partition's producers, find hanging transactions
//! and abort one — over ListTransactions, DescribeTransactions,
//! DescribeProducers and WriteTxnMarkers, with that tool's columns.

use std::collections::{BTreeSet, HashMap};

use anyhow::{anyhow, bail};
use cairn_client::kafka_protocol::ResponseError;
use cairn_client::transactions::{
    parse_state, ListedTransaction, ProducerInfo, TransactionDescription, TRANSACTION_STATES,
};
use cairn_client::{Client, Error};
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;

use crate::common::{describe_error, parse_topic_spec, resolve_partitions, Common};
use crate::output::{print, print_json, Table};

const CLIENT_ID: &str = "cairn-transactions";

#[derive(Args)]
pub struct TransactionsArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: TransactionsCommand,
}

#[derive(Subcommand, Debug)]
enum TransactionsCommand {
    /// List transactional ids and their transactions' states, from every broker.
    List(ListArgs),
    /// Describe the transaction of a transactional id, at its coordinator.
    Describe {
        /// The transactional id to describe.
        #[arg(long = "transactional-id", value_name = "ID")]
        transactional_id: String,
    },
    /// Describe the producers a partition's leader keeps state for, with their open
    /// transactions.
    DescribeProducers(PartitionArgs),
    /// Abort an open (hanging) transaction on one partition by writing an ABORT marker there
    /// (needs CLUSTER_ACTION on the cluster when ACLs are enforced).
    Abort(AbortArgs),
    /// Find hanging transactions: open on a partition for longer than the maximum transaction
    /// timeout, and not part of a transaction their coordinator knows of.
    FindHanging(FindHangingArgs),
}

#[derive(Args, Debug)]
struct ListArgs {
    /// Only transactions in this state (repeatable): Empty, Ongoing, PrepareCommit,
    /// PrepareAbort, CompleteCommit, CompleteAbort, Dead, PrepareEpochFence.
    #[arg(long = "state", value_name = "STATE", value_parser = state_arg)]
    states: Vec<String>,
    /// Only the transaction of this producer id (repeatable).
    #[arg(long = "producer-id", value_name = "ID")]
    producer_ids: Vec<i64>,
    /// Only transactions running for longer than this.
    #[arg(long = "min-duration-ms", value_name = "MS", value_parser = clap::value_parser!(i64).range(0..))]
    min_duration_ms: Option<i64>,
}

#[derive(Args, Debug)]
struct PartitionArgs {
    /// The topic.
    #[arg(long)]
    topic: String,
    /// The partition.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    partition: i32,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("transaction").required(true).args(["start_offset", "producer_id"])))]
struct AbortArgs {
    #[command(flatten)]
    at: PartitionArgs,
    /// The first offset of the transaction to abort; its producer is found with
    /// DescribeProducers.
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..), conflicts_with_all = ["producer_id", "producer_epoch", "coordinator_epoch"])]
    start_offset: Option<i64>,
    /// Without --start-offset: the producer id of the transaction to abort.
    #[arg(long, value_name = "ID", requires = "producer_epoch")]
    producer_id: Option<i64>,
    /// With --producer-id: the producer's epoch.
    #[arg(long, value_name = "EPOCH", requires = "producer_id")]
    producer_epoch: Option<i16>,
    /// With --producer-id: the coordinator epoch for the marker [default: 0, which no
    /// partition's state is below].
    #[arg(long, value_name = "EPOCH", requires = "producer_id")]
    coordinator_epoch: Option<i32>,
}

#[derive(Args, Debug)]
struct FindHangingArgs {
    /// The topic to search.
    #[arg(long)]
    topic: String,
    /// Only this partition of the topic.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Transactions open for longer than this (the brokers' transaction.max.timeout.ms) are
    /// candidates.
    #[arg(
        long = "max-transaction-timeout-minutes",
        alias = "max-transaction-timeout",
        value_name = "MINUTES",
        default_value_t = 15,
        value_parser = clap::value_parser!(i64).range(0..)
    )]
    max_transaction_timeout_minutes: i64,
}

fn state_arg(s: &str) -> Result<String, String> {
    parse_state(s).map(str::to_string).ok_or_else(|| {
        format!(
            "unknown transaction state '{s}'; one of {}",
            TRANSACTION_STATES.join(", ")
        )
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct ListedView<'a> {
    transactional_id: &'a str,
    coordinator: i32,
    producer_id: i64,
    state: &'a str,
}

fn render_list(listed: &[ListedTransaction]) -> String {
    let mut t = Table::new(&[
        "TransactionalId",
        "Coordinator",
        "ProducerId",
        "TransactionState",
    ]);
    for l in listed {
        t.row(vec![
            l.transactional_id.clone(),
            l.coordinator_id.to_string(),
            l.producer_id.to_string(),
            l.state.clone(),
        ]);
    }
    t.render()
}

async fn list(client: &Client, common: &Common, args: &ListArgs) -> anyhow::Result<()> {
    let states: Vec<&str> = args.states.iter().map(String::as_str).collect();
    let listed = client
        .list_transactions(&states, &args.producer_ids, args.min_duration_ms)
        .await
        .map_err(|e| anyhow!("cannot list transactions: {}", describe_error(&e)))?;
    if common.json() {
        return print_json(
            &listed
                .iter()
                .map(|l| ListedView {
                    transactional_id: &l.transactional_id,
                    coordinator: l.coordinator_id,
                    producer_id: l.producer_id,
                    state: &l.state,
                })
                .collect::<Vec<_>>(),
        );
    }
    if listed.is_empty() {
        return print("No transactions.\n");
    }
    print(&render_list(&listed))
}

// ---------------------------------------------------------------------------
// describe
// ---------------------------------------------------------------------------

/// `topic-partition`, as Kafka's tools print a partition.
fn tp(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

#[derive(Serialize)]
struct DescriptionView<'a> {
    coordinator_id: i32,
    transactional_id: &'a str,
    producer_id: i64,
    producer_epoch: i16,
    state: &'a str,
    timeout_ms: i32,
    /// Absent when no transaction is in progress.
    start_time_ms: Option<i64>,
    duration_ms: Option<i64>,
    partitions: Vec<PartitionView<'a>>,
}

#[derive(Serialize)]
struct PartitionView<'a> {
    topic: &'a str,
    partition: i32,
}

fn start_time(d: &TransactionDescription) -> Option<i64> {
    Some(d.start_time_ms).filter(|t| *t >= 0)
}

fn render_description(d: &TransactionDescription, now_ms: i64) -> String {
    let mut t = Table::new(&[
        "CoordinatorId",
        "TransactionalId",
        "ProducerId",
        "ProducerEpoch",
        "TransactionState",
        "TransactionTimeoutMs",
        "CurrentTransactionStartTimeMs",
        "TransactionDurationMs",
        "TopicPartitions",
    ]);
    let start = start_time(d);
    let none = || "None".to_string();
    t.row(vec![
        d.coordinator_id.to_string(),
        d.transactional_id.clone(),
        d.producer_id.to_string(),
        d.producer_epoch.to_string(),
        d.state.clone(),
        d.timeout_ms.to_string(),
        start.map_or_else(none, |s| s.to_string()),
        start.map_or_else(none, |s| (now_ms - s).to_string()),
        d.partitions
            .iter()
            .map(|(topic, p)| tp(topic, *p))
            .collect::<Vec<_>>()
            .join(","),
    ]);
    t.render()
}

/// The description's own error, in operator terms.
fn description_error(d: &TransactionDescription) -> Option<String> {
    d.error.map(|error| {
        describe_error(&Error::Kafka {
            context: format!("transactional id '{}'", d.transactional_id),
            error,
            message: None,
        })
    })
}

async fn describe(client: &Client, common: &Common, id: &str) -> anyhow::Result<()> {
    let d = client
        .describe_transactions(&[id])
        .await
        .map_err(|e| {
            anyhow!(
                "cannot describe transactional id '{id}': {}",
                describe_error(&e)
            )
        })?
        .pop()
        .ok_or_else(|| anyhow!("no description of transactional id '{id}' came back"))?;
    if let Some(why) = description_error(&d) {
        bail!("cannot describe {why}");
    }
    let now = now_ms();
    if common.json() {
        let start = start_time(&d);
        return print_json(&DescriptionView {
            coordinator_id: d.coordinator_id,
            transactional_id: &d.transactional_id,
            producer_id: d.producer_id,
            producer_epoch: d.producer_epoch,
            state: &d.state,
            timeout_ms: d.timeout_ms,
            start_time_ms: start,
            duration_ms: start.map(|s| now - s),
            partitions: d
                .partitions
                .iter()
                .map(|(topic, partition)| PartitionView {
                    topic,
                    partition: *partition,
                })
                .collect(),
        });
    }
    print(&render_description(&d, now))
}

// ---------------------------------------------------------------------------
// describe-producers
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct ProducerView {
    producer_id: i64,
    producer_epoch: i32,
    coordinator_epoch: i32,
    last_sequence: i32,
    last_timestamp: i64,
    /// Absent when the producer has no open transaction on the partition.
    current_transaction_start_offset: Option<i64>,
}

fn txn_start(p: &ProducerInfo) -> Option<i64> {
    Some(p.current_txn_start_offset).filter(|o| *o >= 0)
}

fn render_producers(producers: &[ProducerInfo]) -> String {
    let mut t = Table::new(&[
        "ProducerId",
        "ProducerEpoch",
        "LatestCoordinatorEpoch",
        "LastSequence",
        "LastTimestamp",
        "CurrentTransactionStartOffset",
    ]);
    for p in producers {
        t.row(vec![
            p.producer_id.to_string(),
            p.producer_epoch.to_string(),
            p.coordinator_epoch.to_string(),
            p.last_sequence.to_string(),
            p.last_timestamp.to_string(),
            txn_start(p).map_or_else(|| "None".to_string(), |o| o.to_string()),
        ]);
    }
    t.render()
}

async fn producers_of(
    client: &Client,
    topic: &str,
    partition: i32,
) -> anyhow::Result<Vec<ProducerInfo>> {
    client
        .describe_producers(topic, partition)
        .await
        .map_err(|e| {
            anyhow!(
                "cannot describe the producers of {}: {}",
                tp(topic, partition),
                describe_error(&e)
            )
        })
}

async fn describe_producers(
    client: &Client,
    common: &Common,
    args: &PartitionArgs,
) -> anyhow::Result<()> {
    let producers = producers_of(client, &args.topic, args.partition).await?;
    if common.json() {
        return print_json(
            &producers
                .iter()
                .map(|p| ProducerView {
                    producer_id: p.producer_id,
                    producer_epoch: p.producer_epoch,
                    coordinator_epoch: p.coordinator_epoch,
                    last_sequence: p.last_sequence,
                    last_timestamp: p.last_timestamp,
                    current_transaction_start_offset: txn_start(p),
                })
                .collect::<Vec<_>>(),
        );
    }
    if producers.is_empty() {
        return print(&format!(
            "No producer state on {}.\n",
            tp(&args.topic, args.partition)
        ));
    }
    print(&render_producers(&producers))
}

// ---------------------------------------------------------------------------
// abort
// ---------------------------------------------------------------------------

/// The marker to write: (producer id, producer epoch, coordinator epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
struct AbortSpec {
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
}

/// What `abort` writes: given outright, or the producer whose open
/// transaction starts at `--start-offset` (from DescribeProducers).
fn abort_spec(args: &AbortArgs, producers: &[ProducerInfo]) -> anyhow::Result<AbortSpec> {
    let at = tp(&args.at.topic, args.at.partition);
    // A coordinator epoch of -1 means the partition never saw a marker from
    // this producer's coordinator; 0 is not above any epoch it could hold.
    let coordinator_epoch = |e: i32| e.max(0);
    if let Some(offset) = args.start_offset {
        let p = producers
            .iter()
            .find(|p| p.current_txn_start_offset == offset && offset >= 0)
            .ok_or_else(|| {
                anyhow!("could not find any open transaction starting at offset {offset} on partition {at}")
            })?;
        let producer_epoch = i16::try_from(p.producer_epoch).map_err(|_| {
            anyhow!(
                "producer {} on {at} has epoch {}, beyond what a marker can carry",
                p.producer_id,
                p.producer_epoch
            )
        })?;
        return Ok(AbortSpec {
            producer_id: p.producer_id,
            producer_epoch,
            coordinator_epoch: coordinator_epoch(p.coordinator_epoch),
        });
    }
    match (args.producer_id, args.producer_epoch) {
        (Some(producer_id), Some(producer_epoch)) => Ok(AbortSpec {
            producer_id,
            producer_epoch,
            coordinator_epoch: coordinator_epoch(args.coordinator_epoch.unwrap_or(0)),
        }),
        _ => bail!(
            "the transaction to abort must be identified either with --start-offset or with --producer-id and --producer-epoch"
        ),
    }
}

#[derive(Serialize)]
struct AbortedView<'a> {
    topic: &'a str,
    partition: i32,
    #[serde(flatten)]
    spec: AbortSpec,
}

async fn abort(client: &Client, common: &Common, args: &AbortArgs) -> anyhow::Result<()> {
    let (topic, partition) = (&args.at.topic, args.at.partition);
    let producers = if args.start_offset.is_some() {
        producers_of(client, topic, partition).await?
    } else {
        Vec::new()
    };
    let spec = abort_spec(args, &producers)?;
    client
        .write_txn_markers_abort(
            topic,
            partition,
            spec.producer_id,
            spec.producer_epoch,
            spec.coordinator_epoch,
        )
        .await
        .map_err(|e| {
            // The generic text names ALTER and DESCRIBE; writing markers needs CLUSTER_ACTION.
            if e.kafka_error() == Some(ResponseError::ClusterAuthorizationFailed) {
                anyhow!(
                    "cannot abort the transaction: CLUSTER_AUTHORIZATION_FAILED (writing transaction markers needs CLUSTER_ACTION on the cluster, or a super user)"
                )
            } else {
                anyhow!("cannot abort the transaction: {}", describe_error(&e))
            }
        })?;
    if common.json() {
        return print_json(&AbortedView {
            topic,
            partition,
            spec,
        });
    }
    print(&format!(
        "Aborted the transaction of producer {} (epoch {}) on {}.\n",
        spec.producer_id,
        spec.producer_epoch,
        tp(topic, partition)
    ))
}

// ---------------------------------------------------------------------------
// find-hanging
// ---------------------------------------------------------------------------

/// A transaction open on one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OpenTransaction {
    topic: String,
    partition: i32,
    producer: ProducerInfo,
}

/// Open transactions whose producer last wrote to the partition longer ago
/// than the maximum transaction timeout: no live transaction can be that old.
fn candidates(
    producers: &[((String, i32), Vec<ProducerInfo>)],
    now_ms: i64,
    max_timeout_ms: i64,
) -> Vec<OpenTransaction> {
    producers
        .iter()
        .flat_map(|((topic, partition), ps)| {
            ps.iter()
                .filter(|p| p.current_txn_start_offset >= 0)
                .filter(move |p| now_ms - p.last_timestamp > max_timeout_ms)
                .map(|p| OpenTransaction {
                    topic: topic.clone(),
                    partition: *partition,
                    producer: *p,
                })
        })
        .collect()
}

/// Kafka's rule: a candidate hangs unless its producer id belongs to a
/// transactional id whose coordinator still counts the partition in the
/// current transaction (Ongoing, or Prepare* with the marker still to
/// write). `ids` maps producer ids to transactional ids (ListTransactions);
/// `descriptions` has `None` for ids the coordinator does not know.
fn hanging(
    candidates: Vec<OpenTransaction>,
    ids: &HashMap<i64, String>,
    descriptions: &HashMap<String, Option<TransactionDescription>>,
) -> Vec<OpenTransaction> {
    candidates
        .into_iter()
        .filter(|c| {
            let Some(d) = ids
                .get(&c.producer.producer_id)
                .and_then(|id| descriptions.get(id))
                .and_then(Option::as_ref)
            else {
                return true;
            };
            !d.partitions
                .iter()
                .any(|(t, p)| *t == c.topic && *p == c.partition)
        })
        .collect()
}

#[derive(Serialize)]
struct HangingView<'a> {
    topic: &'a str,
    partition: i32,
    producer_id: i64,
    producer_epoch: i32,
    coordinator_epoch: i32,
    start_offset: i64,
    last_timestamp: i64,
    duration_minutes: i64,
}

fn minutes_since(now_ms: i64, t: i64) -> i64 {
    (now_ms - t) / 60_000
}

fn render_hanging(rows: &[OpenTransaction], now_ms: i64) -> String {
    let mut t = Table::new(&[
        "Topic",
        "Partition",
        "ProducerId",
        "ProducerEpoch",
        "CoordinatorEpoch",
        "StartOffset",
        "LastTimestamp",
        "Duration(min)",
    ]);
    for o in rows {
        let p = &o.producer;
        t.row(vec![
            o.topic.clone(),
            o.partition.to_string(),
            p.producer_id.to_string(),
            p.producer_epoch.to_string(),
            p.coordinator_epoch.to_string(),
            p.current_txn_start_offset.to_string(),
            p.last_timestamp.to_string(),
            minutes_since(now_ms, p.last_timestamp).to_string(),
        ]);
    }
    t.render()
}

async fn find_hanging(
    client: &Client,
    common: &Common,
    args: &FindHangingArgs,
) -> anyhow::Result<()> {
    let spec = match args.partition {
        Some(p) => parse_topic_spec(&format!("{}:{p}", args.topic))?,
        None => parse_topic_spec(&args.topic)?,
    };
    let partitions = resolve_partitions(client, &[spec]).await?;
    let mut producers = Vec::new();
    for (topic, partition) in partitions {
        let ps = producers_of(client, &topic, partition).await?;
        producers.push(((topic, partition), ps));
    }
    let now = now_ms();
    let found = candidates(
        &producers,
        now,
        args.max_transaction_timeout_minutes * 60_000,
    );
    let found = if found.is_empty() {
        found
    } else {
        let mut producer_ids: Vec<i64> = found.iter().map(|c| c.producer.producer_id).collect();
        producer_ids.sort_unstable();
        producer_ids.dedup();
        let listed = client
            .list_transactions(&[], &producer_ids, None)
            .await
            .map_err(|e| {
                anyhow!(
                    "cannot list the transactions of {} producers: {}",
                    producer_ids.len(),
                    describe_error(&e)
                )
            })?;
        // Only the producer ids asked about, as a broker might list others.
        let ids: HashMap<i64, String> = listed
            .into_iter()
            .filter(|l| producer_ids.contains(&l.producer_id))
            .map(|l| (l.producer_id, l.transactional_id))
            .collect();
        let names: Vec<&str> = ids
            .values()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut descriptions = HashMap::new();
        if !names.is_empty() {
            let described = client.describe_transactions(&names).await.map_err(|e| {
                anyhow!(
                    "cannot describe {} transactions: {}",
                    names.len(),
                    describe_error(&e)
                )
            })?;
            for d in described {
                match d.error {
                    None => {
                        descriptions.insert(d.transactional_id.clone(), Some(d));
                    }
                    Some(ResponseError::TransactionalIdNotFound) => {
                        descriptions.insert(d.transactional_id.clone(), None);
                    }
                    Some(_) => bail!(
                        "cannot describe {}",
                        description_error(&d).unwrap_or_default()
                    ),
                }
            }
        }
        hanging(found, &ids, &descriptions)
    };
    if common.json() {
        return print_json(
            &found
                .iter()
                .map(|o| HangingView {
                    topic: &o.topic,
                    partition: o.partition,
                    producer_id: o.producer.producer_id,
                    producer_epoch: o.producer.producer_epoch,
                    coordinator_epoch: o.producer.coordinator_epoch,
                    start_offset: o.producer.current_txn_start_offset,
                    last_timestamp: o.producer.last_timestamp,
                    duration_minutes: minutes_since(now, o.producer.last_timestamp),
                })
                .collect::<Vec<_>>(),
        );
    }
    if found.is_empty() {
        return print("No hanging transactions.\n");
    }
    print(&render_hanging(&found, now))
}

pub async fn run(args: TransactionsArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let client = common.connect(CLIENT_ID).await?;
    match &args.command {
        TransactionsCommand::List(l) => list(&client, common, l).await,
        TransactionsCommand::Describe { transactional_id } => {
            describe(&client, common, transactional_id).await
        }
        TransactionsCommand::DescribeProducers(p) => describe_producers(&client, common, p).await,
        TransactionsCommand::Abort(a) => abort(&client, common, a).await,
        TransactionsCommand::FindHanging(f) => find_hanging(&client, common, f).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: TransactionsCommand,
    }

    fn parse(args: &str) -> Result<TransactionsCommand, clap::Error> {
        let argv = std::iter::once("transactions").chain(args.split_whitespace());
        Cli::try_parse_from(argv).map(|c| c.command)
    }

    fn abort_args(args: &str) -> AbortArgs {
        match parse(&format!("abort {args}")).unwrap() {
            TransactionsCommand::Abort(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn producer(id: i64, epoch: i32, start: i64, last_timestamp: i64) -> ProducerInfo {
        ProducerInfo {
            producer_id: id,
            producer_epoch: epoch,
            last_sequence: -1,
            last_timestamp,
            coordinator_epoch: -1,
            current_txn_start_offset: start,
        }
    }

    fn description(
        id: &str,
        producer_id: i64,
        partitions: &[(&str, i32)],
    ) -> TransactionDescription {
        TransactionDescription {
            transactional_id: id.to_string(),
            error: None,
            coordinator_id: 1,
            state: "Ongoing".to_string(),
            producer_id,
            producer_epoch: 0,
            timeout_ms: 60_000,
            start_time_ms: 1_000,
            partitions: partitions
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect(),
        }
    }

    #[test]
    fn list_states_are_checked_and_spelled_as_kafka_does() {
        match parse(
            "list --state ongoing --state complete_commit --producer-id 7 --min-duration-ms 5",
        )
        .unwrap()
        {
            TransactionsCommand::List(l) => {
                assert_eq!(l.states, ["Ongoing", "CompleteCommit"]);
                assert_eq!(l.producer_ids, [7]);
                assert_eq!(l.min_duration_ms, Some(5));
            }
            other => panic!("{other:?}"),
        }
        let e = parse("list --state Committed").unwrap_err().to_string();
        assert!(e.contains("unknown transaction state"), "{e}");
        assert!(parse("list --min-duration-ms -1").is_err());
    }

    #[test]
    fn abort_needs_one_way_to_name_the_transaction() {
        assert!(parse("abort --topic t --partition 0").is_err());
        assert!(parse(
            "abort --topic t --partition 0 --start-offset 3 --producer-id 1 --producer-epoch 0"
        )
        .is_err());
        assert!(parse("abort --topic t --partition 0 --producer-id 1").is_err());
        assert!(
            parse("abort --topic t --partition 0 --producer-epoch 1 --start-offset 3").is_err()
        );
        assert!(parse("abort --topic t --partition -1 --start-offset 3").is_err());
        let a = abort_args("--topic t --partition 0 --producer-id 9 --producer-epoch 2");
        assert_eq!(
            abort_spec(&a, &[]).unwrap(),
            AbortSpec {
                producer_id: 9,
                producer_epoch: 2,
                coordinator_epoch: 0
            }
        );
        let a = abort_args(
            "--topic t --partition 0 --producer-id 9 --producer-epoch 2 --coordinator-epoch 4",
        );
        assert_eq!(abort_spec(&a, &[]).unwrap().coordinator_epoch, 4);
    }

    #[test]
    fn abort_by_start_offset_finds_the_open_transaction_there() {
        let producers = [
            producer(5, 1, -1, 0),
            producer(6, 3, 42, 0),
            producer(7, 0, 40, 0),
        ];
        let a = abort_args("--topic t --partition 2 --start-offset 42");
        assert_eq!(
            abort_spec(&a, &producers).unwrap(),
            AbortSpec {
                producer_id: 6,
                producer_epoch: 3,
                coordinator_epoch: 0
            }
        );
        let a = abort_args("--topic t --partition 2 --start-offset 41");
        let e = abort_spec(&a, &producers).unwrap_err().to_string();
        assert_eq!(
            e,
            "could not find any open transaction starting at offset 41 on partition t-2"
        );
        // -1 means "no open transaction", never an offset to look for.
        assert!(parse("abort --topic t --partition 2 --start-offset=-1").is_err());
    }

    #[test]
    fn find_hanging_follows_kafkas_rules() {
        let now = 100 * 60_000;
        let max = 15 * 60_000;
        let old = now - max - 1;
        let producers = vec![
            (
                ("t".to_string(), 0),
                vec![
                    producer(1, 0, 10, old),     // known, partition in its transaction
                    producer(2, 0, 11, old),     // known, partition not in its transaction
                    producer(3, 0, 12, old),     // no transactional id lists it
                    producer(4, 0, 13, now - 5), // too recent to be a candidate
                    producer(5, 0, -1, old),     // no open transaction
                    producer(6, 0, 14, old),     // id the coordinator does not know
                ],
            ),
            (("t".to_string(), 1), vec![producer(1, 0, 20, now - max)]),
        ];
        let found = candidates(&producers, now, max);
        let ids_of = |v: &[OpenTransaction]| {
            v.iter()
                .map(|o| (o.partition, o.producer.producer_id))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids_of(&found), [(0, 1), (0, 2), (0, 3), (0, 6)]);
        let ids = HashMap::from([
            (1, "a".to_string()),
            (2, "b".to_string()),
            (6, "gone".to_string()),
        ]);
        let descriptions = HashMap::from([
            ("a".to_string(), Some(description("a", 1, &[("t", 0)]))),
            ("b".to_string(), Some(description("b", 2, &[("t", 1)]))),
            ("gone".to_string(), None),
        ]);
        let hung = hanging(found, &ids, &descriptions);
        assert_eq!(ids_of(&hung), [(0, 2), (0, 3), (0, 6)]);
        insta::assert_snapshot!(render_hanging(&hung, now));
    }

    #[test]
    fn tables_use_kafkas_headers() {
        let listed = [
            ListedTransaction {
                transactional_id: "orders-tx".into(),
                coordinator_id: 1,
                producer_id: 1000,
                state: "Ongoing".into(),
            },
            ListedTransaction {
                transactional_id: "x".into(),
                coordinator_id: 1,
                producer_id: 7,
                state: "CompleteCommit".into(),
            },
        ];
        let ongoing = description("orders-tx", 1000, &[("orders", 0), ("orders", 3)]);
        let mut empty = description("x", 7, &[]);
        empty.state = "CompleteCommit".into();
        empty.start_time_ms = -1;
        let producers = [
            producer(1000, 0, 42, 1_700_000_000_000),
            producer(7, 2, -1, 1_700_000_000_500),
        ];
        insta::assert_snapshot!(format!(
            "{}---\n{}---\n{}---\n{}",
            render_list(&listed),
            render_description(&ongoing, 3_500),
            render_description(&empty, 3_500),
            render_producers(&producers)
        ));
    }
}
