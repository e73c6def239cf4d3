//! `cairn bench transactions`: what exactly-once costs, against a broker the
//! bench starts itself.
//!
//! * produce: the same 1 KiB records, batches and in-flight window, once from
//!   a transactional producer that commits every --commit-interval-ms
//!   (AddPartitionsToTxn when a transaction begins, sequenced transactional
//!   batches, every produce answered, then EndTxn) and once from a plain
//!   idempotent producer (a producer id without transactional id, sequenced
//!   batches); the two take turns in segments (ABBA order) within each run,
//!   and the ratio of their throughputs is taken run by run.
//! * EndTxn latency over the transactional runs, from sending EndTxn to its answer.
//! * consume: the committed data of the transactional run read from the start
//!   by a read_committed and a read_uncommitted fetcher, several passes each
//!   in ABBA order, the median pass of each counting.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use cairn_client::kafka_protocol::records::Compression;
use cairn_client::records::encode_batch;
use cairn_client::txn_producer::TransactionalProducer;
use cairn_client::{Client, Connection, ProduceRecord, LATEST_OFFSET};
use serde_json::json;

use crate::bench::{broker_command, create_topic, loadavg, median, parse_size, tail_of_file};

const CLIENT_ID: &str = "cairn-bench-txn";
const MB: f64 = 1e6;
/// Kafka's published overhead is about 3%; the bar leaves a little more.
const BAR: f64 = 0.95;
/// Idempotent producers need acknowledgement by all in-sync replicas.
const ACKS: i16 = -1;

#[derive(clap::Args, Debug)]
pub struct TxnBenchArgs {
    /// Setting for the broker the bench starts, as for `serve -o` (repeatable).
    #[arg(long = "broker-opt", value_name = "KEY=VALUE")]
    broker_opts: Vec<String>,

    /// How many times each measurement is repeated; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,

    /// Also print a machine-readable JSON summary on the last line.
    #[arg(long)]
    json: bool,

    /// Seconds to wait for the started broker to answer.
    #[arg(long, default_value_t = 60.0)]
    startup_timeout: f64,

    /// Record payload produced per run by each producer. Suffixes: k, M, G (powers of 1000) or
    /// KiB, MiB, GiB.
    #[arg(long, default_value = "128MiB", value_parser = parse_size)]
    bytes: u64,

    /// Size of each record's value.
    #[arg(long, default_value = "1KiB", value_parser = parse_size)]
    record_size: u64,

    /// Record payload per produce request (one record batch).
    #[arg(long, default_value = "128KiB", value_parser = parse_size)]
    batch_size: u64,

    /// Produce requests kept outstanding (Kafka allows an idempotent producer at most 5).
    #[arg(long, default_value_t = 5)]
    in_flight: usize,

    /// Partitions of each bench topic; batches go to them in turn.
    #[arg(long, default_value_t = 1)]
    partitions: i32,

    /// A transaction is committed once it is this old.
    #[arg(long, default_value_t = 100)]
    commit_interval_ms: u64,

    /// Turns each producer takes per run (ABBA order); each run's payload is split between them.
    #[arg(long, default_value_t = 8)]
    segments: u64,

    /// Read passes per mode and run (read_committed and read_uncommitted interleaved); the
    /// median pass of each mode is the run's figure.
    #[arg(long, default_value_t = 3)]
    consume_passes: usize,

    /// Largest response asked for in one Fetch.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    fetch_size: u64,

    /// Prefix of the topics and transactional ids the bench creates.
    #[arg(long, default_value = "cairn-bench-txn")]
    topic_prefix: String,
}

/// Sizes derived from the arguments once.
#[derive(Debug, Clone, Copy)]
struct Plan {
    record_size: usize,
    records_per_batch: u64,
    batches: u64,
}

impl Plan {
    fn new(args: &TxnBenchArgs) -> Result<Plan> {
        if args.repeat == 0
            || args.in_flight == 0
            || args.partitions < 1
            || args.consume_passes == 0
            || args.segments == 0
        {
            bail!(
                "--repeat, --in-flight, --partitions, --segments and --consume-passes must be at \
                 least 1"
            );
        }
        if args.record_size == 0 || args.commit_interval_ms == 0 {
            bail!("--record-size and --commit-interval-ms must be positive");
        }
        if args.fetch_size == 0 || args.fetch_size > i32::MAX as u64 {
            bail!("--fetch-size must be between 1 byte and 2 GiB");
        }
        for opt in &args.broker_opts {
            if !opt.contains('=') {
                bail!("--broker-opt {opt:?} is not KEY=VALUE");
            }
        }
        let records_per_batch = (args.batch_size / args.record_size).max(1);
        let batch_bytes = records_per_batch * args.record_size;
        let batches = args.bytes.div_ceil(batch_bytes).max(1);
        Ok(Plan {
            record_size: args.record_size as usize,
            records_per_batch,
            batches,
        })
    }

    fn records(&self) -> u64 {
        self.batches * self.records_per_batch
    }

    fn payload(&self) -> u64 {
        self.records() * self.record_size as u64
    }
}

/// One producer run.
#[derive(Debug, Clone, Default)]
struct ProduceRun {
    secs: f64,
    payload: u64,
    /// EndTxn round trips, sorted (transactional runs only).
    end_txn: Vec<Duration>,
    /// Time spent waiting for the window of produces to drain before each EndTxn.
    drain: Duration,
    add_partitions: Duration,
    add_partitions_calls: u64,
    retries: u64,
}

impl ProduceRun {
    fn mb_per_s(&self) -> f64 {
        self.payload as f64 / MB / self.secs
    }
    fn end_txn_total(&self) -> Duration {
        self.end_txn.iter().sum()
    }
}

#[derive(Debug, Clone, Copy)]
struct ConsumeRun {
    secs: f64,
    payload: u64,
    fetches: u64,
}

impl ConsumeRun {
    fn mb_per_s(&self) -> f64 {
        self.payload as f64 / MB / self.secs
    }
}

#[derive(Default)]
struct Report {
    idempotent: Vec<ProduceRun>,
    transactional: Vec<ProduceRun>,
    uncommitted: Vec<ConsumeRun>,
    committed: Vec<ConsumeRun>,
}

impl Report {
    fn produce_ratios(&self) -> Vec<f64> {
        self.transactional
            .iter()
            .zip(&self.idempotent)
            .map(|(t, i)| t.mb_per_s() / i.mb_per_s())
            .collect()
    }
    fn consume_ratios(&self) -> Vec<f64> {
        self.committed
            .iter()
            .zip(&self.uncommitted)
            .map(|(c, u)| c.mb_per_s() / u.mb_per_s())
            .collect()
    }
}

pub async fn run(args: TxnBenchArgs) -> Result<()> {
    let plan = Plan::new(&args)?;
    let load_start = loadavg();
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-txn-")
        .tempdir()?;
    let log_path = dir.path().join("broker.log");
    let mut broker = spawn_broker(&args, &dir.path().join("data"), &log_path).await?;
    println!(
        "cairn bench transactions: broker pid {} on {} started by the bench, {} run(s), medians \
         reported",
        broker.id().unwrap_or(0),
        broker_addr(&broker),
        args.repeat
    );
    println!(
        "  {} records of {} B per producer run ({:.1} MB), {} records per batch, {} in flight, \
         {} partition(s), acks {ACKS}, transactional producer commits every {} ms, {} read \
         pass(es) per isolation level and run",
        plan.records(),
        plan.record_size,
        plan.payload() as f64 / MB,
        plan.records_per_batch,
        args.in_flight,
        args.partitions,
        args.commit_interval_ms,
        args.consume_passes
    );
    if !args.broker_opts.is_empty() {
        println!("  broker options: {}", args.broker_opts.join(" "));
    }
    println!("loadavg at start: {load_start}");
    let addr = broker_addr(&broker);
    let outcome = tokio::select! {
        r = measure(&args, &plan, &addr) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let _ = broker.child.kill().await;
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "last lines of the broker's output:\n{}",
                tail_of_file(&log_path, 20)
            );
            return Err(e);
        }
    };
    let load_end = loadavg();
    println!("loadavg at end:   {load_end}");
    print_report(&args, &report);
    if args.json {
        println!("{}", to_json(&args, &plan, &report, &load_start, &load_end));
    }
    Ok(())
}

struct BrokerChild {
    child: tokio::process::Child,
    addr: String,
}

impl BrokerChild {
    fn id(&self) -> Option<u32> {
        self.child.id()
    }
}

fn broker_addr(b: &BrokerChild) -> String {
    b.addr.clone()
}

async fn spawn_broker(
    args: &TxnBenchArgs,
    data_dir: &std::path::Path,
    log_path: &PathBuf,
) -> Result<BrokerChild> {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.port()
    };
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(log_path)?;
    let mut extra = vec!["--http".to_string(), "off".to_string()];
    for opt in &args.broker_opts {
        extra.push("-o".to_string());
        extra.push(opt.clone());
    }
    let mut cmd = broker_command(&addr, data_dir, &extra, log)?;
    let mut child = cmd.spawn().context("cannot start the broker")?;
    let limit = Duration::from_secs_f64(args.startup_timeout);
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the broker exited during startup ({status}); its output:\n{}",
                tail_of_file(log_path, 30)
            );
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill().await;
            bail!(
                "the broker on {addr} did not answer within {limit:?}; its output:\n{}",
                tail_of_file(log_path, 30)
            );
        }
        match Connection::connect_timeout(&addr, CLIENT_ID, left).await {
            Ok(_) => return Ok(BrokerChild { child, addr }),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn measure(args: &TxnBenchArgs, plan: &Plan, addr: &str) -> Result<Report> {
    let admin = Client::connect(addr, CLIENT_ID).await?;
    let stamp = std::process::id();
    let templates = make_batches(plan.record_size, plan.records_per_batch, 4, stamp as u64)?;

    // Unmeasured: the first transaction creates the transaction state topic.
    let warm = format!("{}-{stamp}-warmup", args.topic_prefix);
    create_topic(&admin, &warm, args.partitions).await?;
    let warm_plan = Plan {
        batches: (args.partitions as u64).max(2),
        ..*plan
    };
    let mut writer = Writer::open(args, addr, &warm, Some(&warm)).await?;
    writer
        .segment(args, &warm_plan, &templates, warm_plan.batches)
        .await
        .context("warm-up transaction")?;

    let mut report = Report::default();
    for run in 1..=args.repeat {
        let txn_first = run % 2 == 1;
        let txn_topic = format!("{}-{stamp}-txn{run}", args.topic_prefix);
        let idem_topic = format!("{}-{stamp}-idem{run}", args.topic_prefix);
        create_topic(&admin, &txn_topic, args.partitions).await?;
        create_topic(&admin, &idem_topic, args.partitions).await?;
        let txn_id = format!("{}-{stamp}-p{run}", args.topic_prefix);
        let mut txn = Writer::open(args, addr, &txn_topic, Some(&txn_id))
            .await
            .context("transactional producer")?;
        let mut idem = Writer::open(args, addr, &idem_topic, None)
            .await
            .context("idempotent producer")?;
        // The two take turns in ABBA order, segment by segment, so that what else the machine
        // does at any moment weighs on both alike.
        let segments = args.segments.min(plan.batches);
        for k in 0..segments {
            let batches = plan.batches / segments + u64::from(k < plan.batches % segments);
            let first = txn_first == (k % 2 == 0);
            for transactional in [first, !first] {
                if transactional {
                    txn.segment(args, plan, &templates, batches)
                        .await
                        .context("transactional produce")?;
                } else {
                    idem.segment(args, plan, &templates, batches)
                        .await
                        .context("idempotent produce")?;
                }
            }
        }
        let (txn, idem) = (txn.finish(), idem.finish());
        let ends = wait_stable(&admin, &txn_topic, args.partitions).await?;
        // Reads are short and cheap to repeat: several passes in ABBA order, each mode's
        // median pass counts, so one slow moment on a shared machine does not decide the run.
        let (mut rcs, mut rus) = (Vec::new(), Vec::new());
        let order = (0..args.consume_passes).flat_map(|k| {
            let first = txn_first == (k % 2 == 0);
            [first, !first]
        });
        for committed in order {
            let r = consume_run(args, plan, addr, &txn_topic, &ends, committed)
                .await
                .with_context(|| {
                    format!(
                        "{} consume",
                        if committed {
                            "read_committed"
                        } else {
                            "read_uncommitted"
                        }
                    )
                })?;
            if committed {
                rcs.push(r);
            } else {
                rus.push(r);
            }
        }
        let (rc, ru) = (median_pass(rcs), median_pass(rus));
        println!(
            "run {run}/{}: idempotent {:.1} MB/s, transactional {:.1} MB/s (ratio {:.3}; {} \
             commits, EndTxn p50 {:.3} ms p99 {:.3} ms) | read_uncommitted {:.1} MB/s, \
             read_committed {:.1} MB/s (ratio {:.3})",
            args.repeat,
            idem.mb_per_s(),
            txn.mb_per_s(),
            txn.mb_per_s() / idem.mb_per_s(),
            txn.end_txn.len(),
            pct_ms(&txn.end_txn, 0.5),
            pct_ms(&txn.end_txn, 0.99),
            ru.mb_per_s(),
            rc.mb_per_s(),
            rc.mb_per_s() / ru.mb_per_s(),
        );
        report.idempotent.push(idem);
        report.transactional.push(txn);
        report.uncommitted.push(ru);
        report.committed.push(rc);
    }
    Ok(report)
}

/// One producer writing to `topic`, round-robin over its partitions, keeping
/// --in-flight requests outstanding; transactional when it has a
/// transactional id. It writes in segments, so that the two kinds of
/// producer can take turns within a run; only the segments are timed.
struct Writer {
    producer: TransactionalProducer,
    topic: String,
    partitions: Vec<i32>,
    transactional: bool,
    /// Batches written so far (which template and partition come next).
    written: u64,
    run: ProduceRun,
}

impl Writer {
    async fn open(
        args: &TxnBenchArgs,
        addr: &str,
        topic: &str,
        txn_id: Option<&str>,
    ) -> Result<Writer> {
        let client = Arc::new(Client::connect(addr, CLIENT_ID).await?);
        let partitions: Vec<i32> = (0..args.partitions).collect();
        for &p in &partitions {
            client.leader_connection(topic, p).await?;
        }
        let producer = match txn_id {
            Some(id) => TransactionalProducer::init(client, id, Duration::from_secs(60)).await?,
            None => TransactionalProducer::idempotent(client).await?,
        };
        Ok(Writer {
            producer,
            topic: topic.to_string(),
            partitions,
            transactional: txn_id.is_some(),
            written: 0,
            run: ProduceRun::default(),
        })
    }

    /// Writes `batches` more batches and waits for all of them; a
    /// transactional writer commits whenever its transaction is
    /// --commit-interval-ms old, and at the end of the segment.
    async fn segment(
        &mut self,
        args: &TxnBenchArgs,
        plan: &Plan,
        templates: &[Bytes],
        batches: u64,
    ) -> Result<()> {
        let interval = Duration::from_millis(args.commit_interval_ms);
        let parts = self.partitions.len() as u64;
        let mut pending = VecDeque::with_capacity(args.in_flight);
        let start = Instant::now();
        let mut txn_start = start;
        for k in 0..batches {
            let b = self.written + k;
            let partition = self.partitions[(b % parts) as usize];
            if self.transactional && !self.producer.in_transaction() {
                // Begin: add, in one request, the partitions this transaction will write.
                let ahead = (batches - k).min(parts);
                let next: Vec<i32> = (0..ahead)
                    .map(|i| self.partitions[((b + i) % parts) as usize])
                    .collect();
                self.producer.add_partitions(&self.topic, &next).await?;
                txn_start = Instant::now();
            }
            if pending.len() >= args.in_flight {
                let ack: cairn_client::Result<_> = pending.pop_front().expect("non-empty").await;
                ack?;
            }
            let batch = &templates[(b % templates.len() as u64) as usize];
            pending.push_back(
                self.producer
                    .send_batch(&self.topic, partition, batch, ACKS)
                    .await?,
            );
            if self.transactional && txn_start.elapsed() >= interval {
                commit(&mut self.producer, &mut pending, &mut self.run).await?;
            }
        }
        if self.transactional {
            commit(&mut self.producer, &mut pending, &mut self.run).await?;
        }
        while let Some(ack) = pending.pop_front() {
            ack.await?;
        }
        self.run.secs += start.elapsed().as_secs_f64();
        self.run.payload += batches * plan.records_per_batch * plan.record_size as u64;
        self.written += batches;
        Ok(())
    }

    fn finish(mut self) -> ProduceRun {
        self.run.end_txn.sort_unstable();
        let stats = self.producer.stats();
        self.run.add_partitions = stats.add_partitions_time;
        self.run.add_partitions_calls = stats.add_partitions;
        self.run.retries = stats.retries;
        self.run
    }
}

/// Waits for every produce of the transaction, then commits it, timing EndTxn.
async fn commit<F>(
    producer: &mut TransactionalProducer,
    pending: &mut VecDeque<F>,
    run: &mut ProduceRun,
) -> Result<()>
where
    F: std::future::Future<Output = cairn_client::Result<cairn_client::ProduceAck>>,
{
    let drain = Instant::now();
    while let Some(ack) = pending.pop_front() {
        ack.await?;
    }
    run.drain += drain.elapsed();
    if !producer.in_transaction() {
        return Ok(());
    }
    let sent = Instant::now();
    producer.commit().await?;
    run.end_txn.push(sent.elapsed());
    Ok(())
}

/// After the last commit the markers are written in the background; the
/// consumers start once every partition's last stable offset reached its end.
async fn wait_stable(admin: &Client, topic: &str, partitions: i32) -> Result<Vec<i64>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ends = Vec::new();
    for p in 0..partitions {
        loop {
            let end = admin.list_offsets(topic, p, LATEST_OFFSET).await?;
            let f = admin
                .fetch_isolated(topic, p, end, 1, 0, true)
                .await
                .context("read_committed fetch")?;
            if f.last_stable_offset >= end && f.high_watermark == end {
                ends.push(end);
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{topic}/{p}: last stable offset {} still below {end} after 60 s",
                    f.last_stable_offset
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(ends)
}

/// Reads every partition of `topic` from 0 to its end, one task per
/// partition, counting the payload of the data records returned.
async fn consume_run(
    args: &TxnBenchArgs,
    plan: &Plan,
    addr: &str,
    topic: &str,
    ends: &[i64],
    read_committed: bool,
) -> Result<ConsumeRun> {
    let client = Arc::new(Client::connect(addr, CLIENT_ID).await?);
    for p in 0..args.partitions {
        client.leader_connection(topic, p).await?;
    }
    let max_bytes = args.fetch_size as i32;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (partition, &end) in ends.iter().enumerate() {
        let (client, topic) = (client.clone(), topic.to_string());
        let partition = partition as i32;
        tasks.spawn(async move {
            let (mut offset, mut records, mut bytes, mut fetches, mut idle) =
                (0i64, 0u64, 0u64, 0u64, 0u32);
            while offset < end {
                let f = client
                    .fetch_isolated(&topic, partition, offset, max_bytes, 500, read_committed)
                    .await?;
                fetches += 1;
                if f.next_offset <= offset {
                    idle += 1;
                    if idle > 20 {
                        bail!("{topic}/{partition} stopped returning data at {offset} of {end}");
                    }
                    continue;
                }
                idle = 0;
                records += f.records.len() as u64;
                bytes += f
                    .records
                    .iter()
                    .map(|r| r.value.as_ref().map_or(0, |v| v.len()) as u64)
                    .sum::<u64>();
                offset = f.next_offset;
            }
            Ok((records, bytes, fetches))
        });
    }
    let (mut records, mut bytes, mut fetches) = (0, 0, 0);
    while let Some(done) = tasks.join_next().await {
        let (r, b, f) = done??;
        records += r;
        bytes += b;
        fetches += f;
    }
    let secs = start.elapsed().as_secs_f64();
    if records != plan.records() || bytes != plan.payload() {
        bail!(
            "read back {records} records / {bytes} bytes, produced {} / {}",
            plan.records(),
            plan.payload()
        );
    }
    Ok(ConsumeRun {
        secs,
        payload: bytes,
        fetches,
    })
}

/// The pass with the median throughput (the upper one of an even count).
fn median_pass(mut passes: Vec<ConsumeRun>) -> ConsumeRun {
    passes.sort_by(|a, b| a.mb_per_s().total_cmp(&b.mb_per_s()));
    passes[passes.len() / 2]
}

/// A few distinct batches of random values (not compressible), encoded once;
/// the producers stamp them with their identity and sequence per request.
fn make_batches(record_size: usize, per_batch: u64, kinds: usize, seed: u64) -> Result<Vec<Bytes>> {
    let mut state = seed | 1;
    let mut bytes = |n: usize| {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            v.extend_from_slice(&state.to_le_bytes());
        }
        v.truncate(n);
        Bytes::from(v)
    };
    (0..kinds)
        .map(|_| {
            let records: Vec<ProduceRecord> = (0..per_batch)
                .map(|_| ProduceRecord::new(bytes(record_size)))
                .collect();
            Ok(encode_batch(&records, Compression::None)?)
        })
        .collect()
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
fn pct_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

fn verdict(ratio: f64) -> &'static str {
    if ratio >= BAR {
        "met"
    } else {
        "MISSED"
    }
}

fn runs_line(values: impl Iterator<Item = f64>, digits: usize) -> String {
    values
        .map(|v| format!("{v:.digits$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_report(args: &TxnBenchArgs, r: &Report) {
    let idem = median(r.idempotent.iter().map(ProduceRun::mb_per_s));
    let txn = median(r.transactional.iter().map(ProduceRun::mb_per_s));
    let produce_ratio = median(r.produce_ratios().into_iter());
    let ru = median(r.uncommitted.iter().map(ConsumeRun::mb_per_s));
    let rc = median(r.committed.iter().map(ConsumeRun::mb_per_s));
    let consume_ratio = median(r.consume_ratios().into_iter());
    println!();
    println!(
        "median of {} run(s); MB = 10^6 bytes of record payload; ratios are taken run by run \
         (same broker, same run), then their median",
        args.repeat
    );
    println!(
        "produce  idempotent       {idem:>9.1} MB/s   runs: {}",
        runs_line(r.idempotent.iter().map(ProduceRun::mb_per_s), 1)
    );
    println!(
        "         transactional    {txn:>9.1} MB/s   runs: {}",
        runs_line(r.transactional.iter().map(ProduceRun::mb_per_s), 1)
    );
    println!(
        "         ratio transactional/idempotent {produce_ratio:.3} (runs: {})   bar >= {BAR}: {}",
        runs_line(r.produce_ratios().into_iter(), 3),
        verdict(produce_ratio)
    );
    let p = |q: f64| median(r.transactional.iter().map(|t| pct_ms(&t.end_txn, q)));
    let commits = median(r.transactional.iter().map(|t| t.end_txn.len() as f64));
    println!(
        "EndTxn   p50 {:.3} ms   p99 {:.3} ms   ({commits:.0} commits per run, one every {} ms; \
         from sending EndTxn to its answer)   runs p99: {}",
        p(0.5),
        p(0.99),
        args.commit_interval_ms,
        runs_line(r.transactional.iter().map(|t| pct_ms(&t.end_txn, 0.99)), 3)
    );
    println!(
        "consume  read_uncommitted {ru:>9.1} MB/s   runs: {}",
        runs_line(r.uncommitted.iter().map(ConsumeRun::mb_per_s), 1)
    );
    println!(
        "         read_committed   {rc:>9.1} MB/s   runs: {}",
        runs_line(r.committed.iter().map(ConsumeRun::mb_per_s), 1)
    );
    println!(
        "         ratio read_committed/read_uncommitted {consume_ratio:.3} (runs: {})   bar >= {BAR}: {}",
        runs_line(r.consume_ratios().into_iter(), 3),
        verdict(consume_ratio)
    );
    // Where a transactional run's extra time goes, as shares of its length.
    let share = |f: &dyn Fn(&ProduceRun) -> f64| {
        median(r.transactional.iter().map(|t| 100.0 * f(t) / t.secs))
    };
    println!(
        "transactional run time: EndTxn {:.1}%, waiting for the produces of a transaction before \
         its EndTxn {:.1}%, AddPartitionsToTxn {:.1}% ({:.0} calls, {:.0} retried answers per run)",
        share(&|t| t.end_txn_total().as_secs_f64()),
        share(&|t| t.drain.as_secs_f64()),
        share(&|t| t.add_partitions.as_secs_f64()),
        median(
            r.transactional
                .iter()
                .map(|t| t.add_partitions_calls as f64)
        ),
        median(r.transactional.iter().map(|t| t.retries as f64)),
    );
}

fn to_json(
    args: &TxnBenchArgs,
    plan: &Plan,
    r: &Report,
    load_start: &str,
    load_end: &str,
) -> String {
    let produce_runs = |runs: &[ProduceRun]| {
        runs.iter()
            .map(|t| {
                json!({
                    "mb_per_s": t.mb_per_s(),
                    "secs": t.secs,
                    "commits": t.end_txn.len(),
                    "end_txn_p50_ms": if t.end_txn.is_empty() { None } else { Some(pct_ms(&t.end_txn, 0.5)) },
                    "end_txn_p99_ms": if t.end_txn.is_empty() { None } else { Some(pct_ms(&t.end_txn, 0.99)) },
                    "end_txn_secs": t.end_txn_total().as_secs_f64(),
                    "drain_secs": t.drain.as_secs_f64(),
                    "add_partitions_secs": t.add_partitions.as_secs_f64(),
                    "add_partitions_calls": t.add_partitions_calls,
                    "retries": t.retries,
                })
            })
            .collect::<Vec<_>>()
    };
    let consume_runs = |runs: &[ConsumeRun]| {
        runs.iter()
            .map(|c| json!({"mb_per_s": c.mb_per_s(), "secs": c.secs, "fetches": c.fetches}))
            .collect::<Vec<_>>()
    };
    let produce_ratio = median(r.produce_ratios().into_iter());
    let consume_ratio = median(r.consume_ratios().into_iter());
    json!({
        "suite": "transactions",
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "broker_options": args.broker_opts,
        "config": {
            "repeat": args.repeat,
            "records": plan.records(),
            "record_size": plan.record_size,
            "records_per_batch": plan.records_per_batch,
            "in_flight": args.in_flight,
            "partitions": args.partitions,
            "acks": ACKS,
            "commit_interval_ms": args.commit_interval_ms,
            "fetch_size": args.fetch_size,
            "consume_passes": args.consume_passes,
            "segments": args.segments,
        },
        "bar": BAR,
        "produce": {
            "idempotent_mb_per_s": median(r.idempotent.iter().map(ProduceRun::mb_per_s)),
            "transactional_mb_per_s": median(r.transactional.iter().map(ProduceRun::mb_per_s)),
            "ratio": produce_ratio,
            "ratio_runs": r.produce_ratios(),
            "met": produce_ratio >= BAR,
            "idempotent_runs": produce_runs(&r.idempotent),
            "transactional_runs": produce_runs(&r.transactional),
        },
        "end_txn": {
            "p50_ms": median(r.transactional.iter().map(|t| pct_ms(&t.end_txn, 0.5))),
            "p99_ms": median(r.transactional.iter().map(|t| pct_ms(&t.end_txn, 0.99))),
            "commits_per_run": r.transactional.iter().map(|t| t.end_txn.len()).collect::<Vec<_>>(),
        },
        "consume": {
            "read_uncommitted_mb_per_s": median(r.uncommitted.iter().map(ConsumeRun::mb_per_s)),
            "read_committed_mb_per_s": median(r.committed.iter().map(ConsumeRun::mb_per_s)),
            "ratio": consume_ratio,
            "ratio_runs": r.consume_ratios(),
            "met": consume_ratio >= BAR,
            "read_uncommitted_runs": consume_runs(&r.uncommitted),
            "read_committed_runs": consume_runs(&r.committed),
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_rounds_up_to_whole_batches() {
        let args = TxnBenchArgs {
            broker_opts: vec![],
            repeat: 3,
            json: false,
            startup_timeout: 1.0,
            bytes: 300_000,
            record_size: 1024,
            batch_size: 128 * 1024,
            in_flight: 5,
            partitions: 1,
            commit_interval_ms: 100,
            consume_passes: 3,
            segments: 8,
            fetch_size: 1 << 20,
            topic_prefix: "t".into(),
        };
        let plan = Plan::new(&args).unwrap();
        assert_eq!(plan.records_per_batch, 128);
        assert_eq!(plan.batches, 3);
        assert_eq!(plan.records(), 384);
        assert_eq!(plan.payload(), 384 * 1024);
        assert!(Plan::new(&TxnBenchArgs {
            in_flight: 0,
            ..args
        })
        .is_err());
    }

    #[test]
    fn ratios_pair_runs() {
        let p = |mb: f64| ProduceRun {
            secs: 1.0,
            payload: (mb * MB) as u64,
            ..ProduceRun::default()
        };
        let r = Report {
            idempotent: vec![p(100.0), p(200.0)],
            transactional: vec![p(95.0), p(100.0)],
            ..Report::default()
        };
        let ratios = r.produce_ratios();
        assert!((ratios[0] - 0.95).abs() < 1e-9 && (ratios[1] - 0.5).abs() < 1e-9);
        assert_eq!(verdict(0.95), "met");
        assert_eq!(verdict(0.949), "MISSED");
        let c = |mb: f64| ConsumeRun {
            secs: 1.0,
            payload: (mb * MB) as u64,
            fetches: 1,
        };
        assert_eq!(median_pass(vec![c(9.0), c(1.0), c(5.0)]).mb_per_s(), 5.0);
    }
}
