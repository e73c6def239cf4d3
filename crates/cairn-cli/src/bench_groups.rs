//! `cairn bench groups`: the consumer-group side of the broker.
//!
//! These measurements run against brokers the bench starts itself (from the
//! current executable, data in a temporary directory) so that it can choose
//! their settings and restart them (the assignor's, in process, needs none):
//!
//! * offset commits: many simple groups (generation -1, no members) commit
//!   offsets for a few partitions of one topic, each commit waiting for its
//!   answer, from several connections at once; once with the default
//!   durability and once with `log.flush.interval.messages=1`. Beside it the
//!   round trip of an OffsetFetch.
//! * rebalance: a group of N members run by the bench with the classic
//!   protocol (JoinGroup, a range assignment by the leader, SyncGroup, a
//!   heartbeat loop that rejoins on REBALANCE_IN_PROGRESS) is joined by one
//!   more member; the time from that member's JoinGroup until every member
//!   has its assignment of the new generation.
//! * consumer protocol (KIP-848): a group of consumer-protocol members
//!   (ConsumerGroupHeartbeat, broker-side assignment) is stable on a topic,
//!   then the topic grows by many partitions; the time from that change
//!   until every member has reconciled: each at the group epoch, owned sets
//!   disjoint and covering every partition.
//! * coordinator recovery: many offset-commit records are written to
//!   `__consumer_offsets`, the broker is stopped with SIGTERM and started
//!   again on the same data; the broker's own load figure and the wall time
//!   until an OffsetFetch returns the last committed offset.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use cairn_client::consumer_member::{ConsumerMember, MemberSnapshot, Subscription};
use cairn_client::groups::{decode_assignment, decode_subscription, encode_assignment};
use cairn_client::kafka_protocol::ResponseError;
use cairn_client::{Client, Connection, JoinGroupParams, JoinedMember, PartitionOffset, Uuid};
use serde_json::json;
use tokio::sync::{mpsc, watch, Barrier};

use crate::bench::{broker_command, loadavg, median, si, tail_of_file};

const CLIENT_ID: &str = "cairn-bench-groups";
const PROTOCOL_TYPE: &str = "consumer";
const ASSIGNOR: &str = "range";
/// JoinGroup v5 is the classic protocol with MEMBER_ID_REQUIRED (v4+) and
/// static membership fields; SyncGroup v3 and Heartbeat v3 are its peers.
const JOIN_VERSION: i16 = 5;
const SYNC_VERSION: i16 = 3;
const HEARTBEAT_VERSION: i16 = 3;
/// How long a group of members may take to settle before the bench gives up.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);
/// How long a broker may take to stop after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(60);

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Offset commit throughput and latency, OffsetFetch round trip.
    Commit,
    /// Time for a group to take in one more member.
    Rebalance,
    /// Time for a restarted broker to load `__consumer_offsets`.
    Recovery,
    /// KIP-848: time for consumer-protocol members to reconcile after the
    /// topic they consume grows.
    Consumer,
    /// The consumer groups' `uniform` assignor over a large group, in process.
    Assignor,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The broker's defaults: acknowledged once in the OS page cache.
    Default,
    /// `log.flush.interval.messages=1`: fsynced before acknowledging.
    Fsync,
}

impl Durability {
    fn name(self) -> &'static str {
        match self {
            Durability::Default => "default",
            Durability::Fsync => "fsync",
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct GroupBenchArgs {
    /// Which measurements to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "commit,rebalance,consumer,recovery,assignor"
    )]
    only: Vec<Part>,

    /// Members of the group the assignor part assigns.
    #[arg(long, default_value_t = 1000)]
    assignor_members: usize,

    /// Topics every member of that group subscribes to.
    #[arg(long, default_value_t = 1000)]
    assignor_topics: usize,

    /// Partitions over all those topics.
    #[arg(long, default_value_t = 50_000)]
    assignor_partitions: usize,

    /// Setting for every broker the bench starts, as for `serve -o` (repeatable).
    #[arg(long = "broker-opt", value_name = "KEY=VALUE")]
    broker_opts: Vec<String>,

    /// How many times each measurement is repeated; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,

    /// Also print a machine-readable JSON summary on the last line.
    #[arg(long)]
    json: bool,

    /// Seconds to wait for a started broker to answer.
    #[arg(long, default_value_t = 60.0)]
    startup_timeout: f64,

    /// Commit: durability settings to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "default,fsync")]
    modes: Vec<Durability>,

    /// Commit: number of simple groups committing.
    #[arg(long, default_value_t = 100)]
    commit_groups: usize,

    /// Commit: partitions of the topic, all committed by every commit.
    #[arg(long, default_value_t = 4)]
    commit_partitions: i32,

    /// Commit: connections committing in parallel, each waiting for every answer.
    #[arg(long, default_value_t = 8)]
    commit_connections: usize,

    /// Commit: length of each run in seconds.
    #[arg(long, default_value_t = 3.0)]
    commit_secs: f64,

    /// Commit: OffsetFetch round trips timed per run (one connection, one at a time).
    #[arg(long, default_value_t = 1000)]
    fetch_samples: usize,

    /// Rebalance: group sizes before the extra member joins, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,10,50")]
    members: Vec<usize>,

    /// Rebalance: interval between a member's heartbeats, in ms.
    #[arg(long, default_value_t = 500)]
    heartbeat_ms: u64,

    /// Rebalance: session timeout the members ask for, in ms.
    #[arg(long, default_value_t = 10_000)]
    session_timeout_ms: i32,

    /// Rebalance: rebalance timeout the members ask for, in ms.
    #[arg(long, default_value_t = 60_000)]
    rebalance_timeout_ms: i32,

    /// Rebalance: partitions of the subscribed topic (split by the range assignor).
    #[arg(long, default_value_t = 64)]
    rebalance_partitions: i32,

    /// Consumer: members of the consumer-protocol group.
    #[arg(long, default_value_t = 10)]
    consumer_members: usize,

    /// Consumer: partitions of the topic while the group settles.
    #[arg(long, default_value_t = 10)]
    consumer_partitions: i32,

    /// Consumer: partitions added to the topic (CreatePartitions) once it is stable.
    #[arg(long, default_value_t = 900)]
    consumer_added: i32,

    /// Consumer: members subscribe with a regular expression matching the
    /// topic (resolved by the broker) instead of its name.
    #[arg(long)]
    consumer_regex: bool,

    /// Consumer: server-side assignor the members ask for (the broker's default if unset).
    #[arg(long)]
    consumer_assignor: Option<String>,

    /// Recovery: offset-commit records to write before the restart.
    #[arg(long, default_value_t = 1_000_000)]
    recovery_records: u64,

    /// Recovery: groups the records are spread over.
    #[arg(long, default_value_t = 1000)]
    recovery_groups: usize,

    /// Recovery: partitions per commit request (one record each).
    #[arg(long, default_value_t = 100)]
    recovery_partitions: i32,

    /// Recovery: connections writing the records.
    #[arg(long, default_value_t = 2)]
    recovery_connections: usize,

    /// Recovery: commit requests kept outstanding on each connection.
    #[arg(long, default_value_t = 16)]
    recovery_in_flight: usize,
}

impl GroupBenchArgs {
    fn check(&self) -> Result<()> {
        if self.repeat == 0 {
            bail!("--repeat must be at least 1");
        }
        for opt in &self.broker_opts {
            if !opt.contains('=') {
                bail!("--broker-opt {opt:?} is not KEY=VALUE");
            }
        }
        if self.commit_groups == 0
            || self.commit_partitions < 1
            || self.commit_connections == 0
            || self.commit_secs.is_nan()
            || self.commit_secs <= 0.0
        {
            bail!("--commit-groups, --commit-partitions, --commit-connections and --commit-secs must be positive");
        }
        if self.members.contains(&0) || self.heartbeat_ms == 0 || self.rebalance_partitions < 1 {
            bail!("--members, --heartbeat-ms and --rebalance-partitions must be positive");
        }
        if self.consumer_members == 0 || self.consumer_partitions < 1 || self.consumer_added < 1 {
            bail!(
                "--consumer-members, --consumer-partitions and --consumer-added must be positive"
            );
        }
        if self.recovery_records == 0
            || self.recovery_groups == 0
            || self.recovery_partitions < 1
            || self.recovery_connections == 0
            || self.recovery_in_flight == 0
        {
            bail!("the --recovery-* sizes must be positive");
        }
        Ok(())
    }

    fn startup_limit(&self) -> Duration {
        Duration::from_secs_f64(self.startup_timeout)
    }

    /// Commits each recovery group makes so that at least --recovery-records are written.
    fn recovery_rounds(&self) -> u64 {
        let per_round = self.recovery_groups as u64 * self.recovery_partitions as u64;
        self.recovery_records.div_ceil(per_round)
    }
}

pub async fn run(args: GroupBenchArgs) -> Result<()> {
    args.check()?;
    let load_start = loadavg();
    println!(
        "cairn bench groups: brokers started by the bench (one per setting), {} run(s) of each \
         measurement, medians reported",
        args.repeat
    );
    if !args.broker_opts.is_empty() {
        println!("  broker options: {}", args.broker_opts.join(" "));
    }
    println!("loadavg at start: {load_start}");

    let outcome = tokio::select! {
        r = measure(&args) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
    };
    let report = outcome?;
    let load_end = loadavg();
    println!("loadavg at end:   {load_end}");
    if args.json {
        println!("{}", report.to_json(&args, &load_start, &load_end));
    }
    Ok(())
}

#[derive(Default)]
struct Report {
    commit: Vec<(Durability, Vec<CommitRun>)>,
    rebalance: Vec<(usize, Vec<RebalanceRun>)>,
    consumer: Vec<ConsumerRun>,
    recovery: Option<Recovery>,
    assignor: Option<crate::bench_assignor::AssignorRun>,
}

async fn measure(args: &GroupBenchArgs) -> Result<Report> {
    let mut report = Report::default();
    if args.only.contains(&Part::Commit) {
        println!();
        println!(
            "offset commits: {} simple groups (generation -1) x {} partition(s) of one topic, \
             {} connection(s) each waiting for every answer, {} s per run",
            args.commit_groups, args.commit_partitions, args.commit_connections, args.commit_secs
        );
        for &mode in &args.modes {
            let runs = commit_bench(args, mode)
                .await
                .with_context(|| format!("offset commits, {} durability", mode.name()))?;
            report.commit.push((mode, runs));
        }
        print_commit(&report.commit);
    }
    if args.only.contains(&Part::Rebalance) {
        println!();
        println!(
            "rebalance: a stable group of N members (JoinGroup v{JOIN_VERSION}, range assignment \
             over {} partitions, heartbeat every {} ms) is joined by one more member; time from \
             its JoinGroup until every member has synced the new generation",
            args.rebalance_partitions, args.heartbeat_ms
        );
        report.rebalance = rebalance_bench(args).await.context("rebalance")?;
        print_rebalance(args, &report.rebalance);
    }
    if args.only.contains(&Part::Consumer) {
        println!();
        println!(
            "consumer protocol (KIP-848): {} members (ConsumerGroupHeartbeat, broker-side \
             assignor {}) stable on a topic of {} partition(s), then {} partitions are added; time \
             from the CreatePartitions request until every member has reconciled (at the group \
             epoch, owned sets disjoint, covering every partition)",
            args.consumer_members,
            args.consumer_assignor
                .as_deref()
                .unwrap_or("(broker default)"),
            args.consumer_partitions,
            args.consumer_added
        );
        report.consumer = consumer_bench(args).await.context("consumer protocol")?;
        print_consumer(&report.consumer);
    }
    if args.only.contains(&Part::Recovery) {
        println!();
        report.recovery = Some(recovery_bench(args).await.context("coordinator recovery")?);
        print_recovery(report.recovery.as_ref().expect("just set"));
    }
    if args.only.contains(&Part::Assignor) {
        println!();
        let run = crate::bench_assignor::run(
            args.assignor_members,
            args.assignor_topics,
            args.assignor_partitions,
            args.repeat.max(5),
        );
        crate::bench_assignor::print(&run);
        report.assignor = Some(run);
    }
    Ok(report)
}

// ---------------------------------------------------------------------------
// Brokers

/// A `cairn serve` child process on a loopback port.
struct BrokerProc {
    child: tokio::process::Child,
    addr: String,
    log_path: PathBuf,
    started: Instant,
}

impl BrokerProc {
    /// Starts a broker on `data_dir`, without waiting for it to answer.
    fn spawn(data_dir: &Path, log_path: &Path, opts: &[String]) -> Result<BrokerProc> {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.port()
        };
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(log_path)?;
        let extra: Vec<String> = opts
            .iter()
            .flat_map(|o| ["-o".to_string(), o.to_string()])
            .collect();
        let mut cmd = broker_command(&addr, data_dir, &extra, log)?;
        let started = Instant::now();
        let child = cmd.spawn().context("cannot start the broker")?;
        Ok(BrokerProc {
            child,
            addr,
            log_path: log_path.to_path_buf(),
            started,
        })
    }

    /// Waits until the broker completes an ApiVersions handshake.
    async fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let deadline = self.started + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the broker exited during startup ({status}); its output:\n{}",
                    tail_of_file(&self.log_path, 30)
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "the broker on {} did not answer within {limit:?}; its output:\n{}",
                    self.addr,
                    tail_of_file(&self.log_path, 30)
                );
            }
            match Connection::connect_timeout(&self.addr, CLIENT_ID, left).await {
                Ok(_) => return Ok(()),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// SIGTERM, then waits for the exit; how long that took, and the status.
    async fn stop(&mut self) -> Result<(Duration, std::process::ExitStatus)> {
        let t0 = Instant::now();
        if let Some(status) = self.child.try_wait()? {
            return Ok((Duration::ZERO, status));
        }
        let pid = self
            .child
            .id()
            .ok_or_else(|| anyhow!("broker has no pid"))?;
        // SAFETY: plain kill(2) on our own child, which has not been reaped.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) } != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot signal the broker");
        }
        match tokio::time::timeout(STOP_LIMIT, self.child.wait()).await {
            Ok(status) => Ok((t0.elapsed(), status?)),
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("the broker did not stop within {STOP_LIMIT:?} of SIGTERM")
            }
        }
    }

    fn log_tail(&self) -> String {
        tail_of_file(&self.log_path, 20)
    }
}

/// Runs `body` against a fresh broker with `opts`, stops it with SIGTERM, and
/// shows the end of its output if anything failed.
async fn with_broker<T>(
    args: &GroupBenchArgs,
    label: &str,
    opts: Vec<String>,
    body: impl AsyncFnOnce(&str) -> Result<T>,
) -> Result<T> {
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-groups-")
        .tempdir()?;
    let mut broker = BrokerProc::spawn(
        &dir.path().join("data"),
        &dir.path().join("broker.log"),
        &opts,
    )?;
    broker.wait_ready(args.startup_limit()).await?;
    println!(
        "  [{label}] broker pid {} on {}, options: {}",
        broker.child.id().unwrap_or(0),
        broker.addr,
        if opts.is_empty() {
            "(defaults)".to_string()
        } else {
            opts.join(" ")
        }
    );
    let result = body(&broker.addr).await;
    let stopped = broker.stop().await;
    match (&result, stopped) {
        (Err(_), _) => {
            eprintln!("last lines of the broker's output:\n{}", broker.log_tail());
        }
        (Ok(_), Ok((_, status))) if !status.success() => {
            println!(
                "  [{label}] WARNING: the broker exited with {status} after SIGTERM; its output:\n{}",
                broker.log_tail()
            );
        }
        (Ok(_), Err(e)) => println!("  [{label}] WARNING: stopping the broker: {e:#}"),
        _ => {}
    }
    result
}

async fn create_topic(admin: &Client, topic: &str, partitions: i32) -> Result<()> {
    match admin.create_topic(topic, partitions, -1, &[]).await {
        Ok(()) => {}
        Err(e) if e.kafka_error() == Some(ResponseError::TopicAlreadyExists) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create topic {topic}")),
    }
    admin.wait_for_topic(topic, Duration::from_secs(10)).await?;
    Ok(())
}

/// Finds the coordinator of every group (which also makes the broker create
/// `__consumer_offsets`); the bench runs against one broker, so all must agree.
async fn coordinator_of(admin: &Client, groups: &[String]) -> Result<i32> {
    let mut node = None;
    for g in groups {
        let c = admin
            .find_coordinator(g)
            .await
            .with_context(|| format!("FindCoordinator for {g}"))?;
        match node {
            None => node = Some(c.node_id),
            Some(n) if n != c.node_id => {
                bail!("groups have different coordinators ({n} and {}); this bench expects one broker", c.node_id)
            }
            _ => {}
        }
    }
    node.ok_or_else(|| anyhow!("no groups"))
}

fn base_opts(args: &GroupBenchArgs, extra: &[&str]) -> Vec<String> {
    let mut opts = args.broker_opts.clone();
    opts.extend(extra.iter().map(|s| s.to_string()));
    opts
}

// ---------------------------------------------------------------------------
// Offset commits

struct CommitRun {
    commits: u64,
    offsets: u64,
    secs: f64,
    /// Sorted.
    latency: Vec<Duration>,
    /// Sorted.
    fetch: Vec<Duration>,
}

impl CommitRun {
    fn commits_per_s(&self) -> f64 {
        self.commits as f64 / self.secs
    }
    fn offsets_per_s(&self) -> f64 {
        self.offsets as f64 / self.secs
    }
}

async fn commit_bench(args: &GroupBenchArgs, mode: Durability) -> Result<Vec<CommitRun>> {
    let opts = match mode {
        Durability::Default => base_opts(args, &[]),
        Durability::Fsync => base_opts(args, &["log.flush.interval.messages=1"]),
    };
    with_broker(args, mode.name(), opts, async |addr: &str| {
        let admin = Client::connect(addr, CLIENT_ID).await?;
        let topic = "bench-commits";
        create_topic(&admin, topic, args.commit_partitions).await?;
        let groups: Vec<String> = (0..args.commit_groups)
            .map(|g| format!("bench-commit-{g}"))
            .collect();
        coordinator_of(&admin, &groups).await?;
        let partitions: Vec<i32> = (0..args.commit_partitions).collect();
        // One unmeasured commit per group first: the groups then exist.
        let conn = Connection::connect(addr, CLIENT_ID).await?;
        for g in &groups {
            conn.commit_offsets(g, -1, "", topic, &offsets_at(&partitions, 0))
                .await?;
        }
        let mut runs = Vec::new();
        for run in 1..=args.repeat {
            let r = commit_run(args, addr, topic, &groups, &partitions, run as i64).await?;
            println!(
                "  [{}] run {run}/{}: {} commits/s ({} offsets/s), p50 {:.3} ms, p99 {:.3} ms; \
                 OffsetFetch p50 {:.3} ms",
                mode.name(),
                args.repeat,
                si(r.commits_per_s()),
                si(r.offsets_per_s()),
                pct_ms(&r.latency, 0.5),
                pct_ms(&r.latency, 0.99),
                pct_ms(&r.fetch, 0.5),
            );
            runs.push(r);
        }
        Ok(runs)
    })
    .await
}

fn offsets_at(partitions: &[i32], offset: i64) -> Vec<PartitionOffset> {
    partitions
        .iter()
        .map(|&partition| PartitionOffset { partition, offset })
        .collect()
}

async fn commit_run(
    args: &GroupBenchArgs,
    addr: &str,
    topic: &str,
    groups: &[String],
    partitions: &[i32],
    run: i64,
) -> Result<CommitRun> {
    let tasks = args.commit_connections;
    let duration = Duration::from_secs_f64(args.commit_secs);
    let barrier = Arc::new(Barrier::new(tasks + 1));
    let mut handles = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let conn = Connection::connect(addr, CLIENT_ID).await?;
        let mine: Vec<String> = groups.iter().skip(t).step_by(tasks).cloned().collect();
        let (barrier, topic, partitions) =
            (barrier.clone(), topic.to_string(), partitions.to_vec());
        handles.spawn(async move {
            barrier.wait().await;
            let mut samples = Vec::new();
            let mut last: HashMap<String, i64> = HashMap::new();
            if mine.is_empty() {
                return Ok((samples, last));
            }
            let start = Instant::now();
            let mut k = 0usize;
            while start.elapsed() < duration {
                let group = &mine[k % mine.len()];
                // Offsets only grow, run after run.
                let offset = run * 1_000_000_000 + k as i64;
                let offsets = offsets_at(&partitions, offset);
                let sent = Instant::now();
                conn.commit_offsets(group, -1, "", &topic, &offsets).await?;
                samples.push(sent.elapsed());
                last.insert(group.clone(), offset);
                k += 1;
            }
            Ok::<_, anyhow::Error>((samples, last))
        });
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut latency = Vec::new();
    let mut last = HashMap::new();
    while let Some(done) = handles.join_next().await {
        let (s, l) = done??;
        latency.extend(s);
        last.extend(l);
    }
    let secs = start.elapsed().as_secs_f64();
    latency.sort_unstable();
    let commits = latency.len() as u64;

    // OffsetFetch round trips; the first pass over the groups also checks
    // that each returns exactly what was committed last.
    let conn = Connection::connect(addr, CLIENT_ID).await?;
    let mut fetch = Vec::with_capacity(args.fetch_samples);
    for i in 0..args.fetch_samples.max(groups.len()) {
        let group = &groups[i % groups.len()];
        let sent = Instant::now();
        let got = conn.fetch_offsets(group, topic, partitions).await?;
        let took = sent.elapsed();
        if i < args.fetch_samples {
            fetch.push(took);
        }
        if let Some(&want) = last.get(group) {
            if got.iter().any(|o| o.offset != want) {
                bail!("OffsetFetch for {group} returned {got:?}, last committed {want}");
            }
        }
    }
    fetch.sort_unstable();
    Ok(CommitRun {
        commits,
        offsets: commits * partitions.len() as u64,
        secs,
        latency,
        fetch,
    })
}

fn print_commit(results: &[(Durability, Vec<CommitRun>)]) {
    println!("  medians:");
    println!(
        "  {:<8} {:>10} {:>10} {:>9} {:>9} {:>9}   {:>9} {:>9}",
        "mode", "commits/s", "offsets/s", "p50 ms", "p99 ms", "p999 ms", "fetch p50", "fetch p99"
    );
    for (mode, runs) in results {
        println!(
            "  {:<8} {:>10} {:>10} {:>9.3} {:>9.3} {:>9.3}   {:>9.3} {:>9.3}",
            mode.name(),
            si(median(runs.iter().map(CommitRun::commits_per_s))),
            si(median(runs.iter().map(CommitRun::offsets_per_s))),
            median(runs.iter().map(|r| pct_ms(&r.latency, 0.5))),
            median(runs.iter().map(|r| pct_ms(&r.latency, 0.99))),
            median(runs.iter().map(|r| pct_ms(&r.latency, 0.999))),
            median(runs.iter().map(|r| pct_ms(&r.fetch, 0.5))),
            median(runs.iter().map(|r| pct_ms(&r.fetch, 0.99))),
        );
    }
}

/// Nearest-rank percentile of sorted samples, in ms.
fn pct_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------
// Rebalance

struct RebalanceRun {
    /// New member's first JoinGroup sent until the last member synced.
    total: Duration,
    /// New member's first JoinGroup sent until its own SyncGroup answer.
    joiner: Duration,
    /// Generations the group moved through (1 when it settled at once).
    generations: i32,
    /// Time for the initial N members to settle first.
    settle: Duration,
    /// New member's JoinGroup until the last old member's heartbeat answer
    /// told it to rejoin: the heartbeat wait.
    noticed: Option<Duration>,
    /// That last answer until everyone synced: the protocol's own part.
    after_notice: Option<Duration>,
}

#[derive(Clone)]
struct MemberSetup {
    addr: String,
    group: String,
    topic: String,
    partitions: i32,
    heartbeat: Duration,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
}

enum Event {
    /// The member is about to send its first JoinGroup.
    Joining { at: Instant },
    /// The member has its assignment for this generation.
    Synced {
        member: usize,
        generation: i32,
        partitions: usize,
        at: Instant,
    },
    /// A heartbeat answer told the member to rejoin.
    Rejoining { member: usize, at: Instant },
    /// The member stopped on an error.
    Failed { member: usize, error: String },
}

async fn rebalance_bench(args: &GroupBenchArgs) -> Result<Vec<(usize, Vec<RebalanceRun>)>> {
    let opts = base_opts(args, &["group.initial.rebalance.delay.ms=0"]);
    with_broker(args, "rebalance", opts, async |addr: &str| {
        let admin = Client::connect(addr, CLIENT_ID).await?;
        let topic = "bench-rebalance";
        create_topic(&admin, topic, args.rebalance_partitions).await?;
        let mut out = Vec::new();
        for &n in &args.members {
            let mut runs = Vec::new();
            for run in 1..=args.repeat {
                let setup = MemberSetup {
                    addr: addr.to_string(),
                    group: format!("bench-rebalance-n{n}-r{run}"),
                    topic: topic.to_string(),
                    partitions: args.rebalance_partitions,
                    heartbeat: Duration::from_millis(args.heartbeat_ms),
                    session_timeout_ms: args.session_timeout_ms,
                    rebalance_timeout_ms: args.rebalance_timeout_ms,
                };
                // Runs join at evenly spread points of the members'
                // heartbeat cycle: (2k-1)/2R of it after they synced.
                let phase = Duration::from_secs_f64(
                    args.heartbeat_ms as f64 / 1e3 * (2 * run - 1) as f64
                        / (2 * args.repeat) as f64,
                );
                let r = rebalance_run(&admin, setup, n, phase)
                    .await
                    .with_context(|| format!("{n} members, run {run}"))?;
                println!(
                    "  N={n:<3} run {run}/{}: joined {:.0} ms into the heartbeat cycle; everyone \
                     consuming again after {:.1} ms = {} ms until the last old member's \
                     heartbeat noticed + {} ms JoinGroup/SyncGroup after that (new member synced \
                     after {:.1} ms, {} generation(s); the first {n} had settled in {:.0} ms)",
                    args.repeat,
                    ms(phase),
                    ms(r.total),
                    opt_ms(r.noticed),
                    opt_ms(r.after_notice),
                    ms(r.joiner),
                    r.generations,
                    ms(r.settle)
                );
                runs.push(r);
            }
            out.push((n, runs));
        }
        Ok(out)
    })
    .await
}

async fn rebalance_run(
    admin: &Client,
    setup: MemberSetup,
    n: usize,
    phase: Duration,
) -> Result<RebalanceRun> {
    coordinator_of(admin, std::slice::from_ref(&setup.group)).await?;
    let setup = Arc::new(setup);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut members = tokio::task::JoinSet::new();
    let mut spawn_member = |idx: usize| {
        let (setup, events, stop) = (setup.clone(), events_tx.clone(), stop_rx.clone());
        members.spawn(async move {
            if let Err(e) = member(idx, &setup, &events, stop).await {
                let _ = events.send(Event::Failed {
                    member: idx,
                    error: format!("{e:#}"),
                });
            }
        });
    };
    // Latest (generation, partitions, time) each member synced.
    let mut latest: Vec<Option<(i32, usize, Instant)>> = vec![None; n + 1];
    let t_settle = Instant::now();
    for idx in 0..n {
        spawn_member(idx);
    }
    let mut ignored = None;
    let mut noticed = vec![None; n + 1];
    let before = wait_all(
        &mut events,
        &mut latest,
        n,
        i32::MIN,
        &mut ignored,
        &mut noticed,
    )
    .await?;
    let settle = t_settle.elapsed();
    // Drain "joining" notices of the first members, then wait for the phase.
    tokio::time::sleep(phase).await;
    while let Ok(ev) = events.try_recv() {
        if let Event::Failed { member, error } = ev {
            bail!("member {member}: {error}");
        }
    }
    let mut joining = None;
    noticed.iter_mut().for_each(|x| *x = None);
    spawn_member(n);
    let after = wait_all(
        &mut events,
        &mut latest,
        n + 1,
        before,
        &mut joining,
        &mut noticed,
    )
    .await?;
    // When the last old member learned of the rebalance, if all did.
    let last_notice = noticed[..n]
        .iter()
        .copied()
        .collect::<Option<Vec<Instant>>>()
        .and_then(|v| v.into_iter().max());
    let joined_at = joining.ok_or_else(|| anyhow!("the new member never reported joining"))?;
    let done = latest
        .iter()
        .map(|l| l.expect("all synced").2)
        .max()
        .expect("members");
    let joiner_done = latest[n].expect("synced").2;
    let assigned: usize = latest.iter().map(|l| l.expect("synced").1).sum();
    if assigned != setup.partitions as usize {
        bail!(
            "the members hold {assigned} partitions of {} after the rebalance",
            setup.partitions
        );
    }

    // Everyone leaves; members still waiting on the broker are cut off.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while members.join_next().await.is_some() {}
    })
    .await;
    members.abort_all();
    Ok(RebalanceRun {
        total: done - joined_at,
        joiner: joiner_done - joined_at,
        generations: after - before,
        settle,
        noticed: last_notice.map(|t| t.saturating_duration_since(joined_at)),
        after_notice: last_notice.map(|t| done.saturating_duration_since(t)),
    })
}

/// Reads member events until the first `count` members have all synced the
/// same generation above `above`; returns that generation. Notes the first
/// "joining" time seen.
async fn wait_all(
    events: &mut mpsc::UnboundedReceiver<Event>,
    latest: &mut [Option<(i32, usize, Instant)>],
    count: usize,
    above: i32,
    joining: &mut Option<Instant>,
    noticed: &mut [Option<Instant>],
) -> Result<i32> {
    let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
    loop {
        let settled = latest[..count]
            .iter()
            .map(|l| l.map(|(g, _, _)| g))
            .collect::<Option<Vec<i32>>>()
            .filter(|gens| gens.iter().all(|&g| g == gens[0] && g > above));
        if let Some(gens) = settled {
            return Ok(gens[0]);
        }
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| anyhow!("the group did not settle within {SETTLE_LIMIT:?}"))?
            .ok_or_else(|| anyhow!("all members stopped"))?;
        match ev {
            Event::Joining { at } => {
                if joining.is_none() {
                    *joining = Some(at);
                }
            }
            Event::Synced {
                member,
                generation,
                partitions,
                at,
            } => latest[member] = Some((generation, partitions, at)),
            Event::Rejoining { member, at } => {
                noticed[member].get_or_insert(at);
            }
            Event::Failed { member, error } => bail!("member {member}: {error}"),
        }
    }
}

/// One group member: join, sync (the leader computes a range assignment),
/// heartbeat every `heartbeat` until told to rejoin, leave when stopped.
async fn member(
    idx: usize,
    setup: &MemberSetup,
    events: &mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let conn = Connection::connect(&setup.addr, CLIENT_ID).await?;
    let subscription = cairn_client::groups::encode_subscription(&[&setup.topic])?;
    let sync_limit = Duration::from_millis(setup.rebalance_timeout_ms as u64 + 30_000);
    let mut member_id = String::new();
    let mut first = true;
    'join: loop {
        if *stop.borrow() {
            break;
        }
        let params = JoinGroupParams {
            group_id: setup.group.clone(),
            member_id: member_id.clone(),
            group_instance_id: None,
            protocol_type: PROTOCOL_TYPE.to_string(),
            protocols: vec![(ASSIGNOR.to_string(), subscription.clone())],
            session_timeout_ms: setup.session_timeout_ms,
            rebalance_timeout_ms: setup.rebalance_timeout_ms,
            max_version: JOIN_VERSION,
        };
        if first {
            first = false;
            let _ = events.send(Event::Joining { at: Instant::now() });
        }
        let joined = tokio::select! {
            r = conn.join_group(&params) => r,
            _ = stop.changed() => break 'join,
        };
        let joined = match joined {
            Ok(j) => j,
            Err(e) if rejoin_error(&e) => {
                if e.kafka_error() == Some(ResponseError::UnknownMemberId) {
                    member_id.clear();
                }
                continue 'join;
            }
            Err(e) => return Err(e.into()),
        };
        member_id = joined.member_id.clone();
        let assignments = if joined.is_leader() {
            range_assign(&joined.members, &setup.topic, setup.partitions)?
        } else {
            Vec::new()
        };
        let synced = tokio::select! {
            r = conn.sync_group(
                &setup.group,
                joined.generation_id,
                &member_id,
                PROTOCOL_TYPE,
                joined.protocol_name.as_deref().unwrap_or(ASSIGNOR),
                assignments,
                SYNC_VERSION,
                sync_limit,
            ) => r,
            _ = stop.changed() => break 'join,
        };
        let assignment = match synced {
            Ok(a) => a,
            Err(e) if rejoin_error(&e) => {
                if e.kafka_error() == Some(ResponseError::UnknownMemberId) {
                    member_id.clear();
                }
                continue 'join;
            }
            Err(e) => return Err(e.into()),
        };
        let partitions: usize = decode_assignment(assignment)?
            .iter()
            .filter(|(t, _)| *t == setup.topic)
            .map(|(_, ps)| ps.len())
            .sum();
        let _ = events.send(Event::Synced {
            member: idx,
            generation: joined.generation_id,
            partitions,
            at: Instant::now(),
        });
        loop {
            tokio::select! {
                _ = tokio::time::sleep(setup.heartbeat) => {}
                _ = stop.changed() => break 'join,
            }
            match conn
                .heartbeat(
                    &setup.group,
                    joined.generation_id,
                    &member_id,
                    HEARTBEAT_VERSION,
                )
                .await
            {
                Ok(()) => {}
                Err(e) if rejoin_error(&e) => {
                    let _ = events.send(Event::Rejoining {
                        member: idx,
                        at: Instant::now(),
                    });
                    if e.kafka_error() == Some(ResponseError::UnknownMemberId) {
                        member_id.clear();
                    }
                    continue 'join;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if !member_id.is_empty() && !conn.is_closed() {
        let _ = conn.leave_group(&setup.group, &member_id).await;
    }
    Ok(())
}

/// Errors after which a consumer joins the group again.
fn rejoin_error(e: &cairn_client::Error) -> bool {
    matches!(
        e.kafka_error(),
        Some(
            ResponseError::RebalanceInProgress
                | ResponseError::IllegalGeneration
                | ResponseError::UnknownMemberId
        )
    )
}

/// Kafka's range assignor for one topic: members sorted by id, each gets a
/// contiguous run of partitions, the first `partitions % members` one more.
fn range_assign(
    members: &[JoinedMember],
    topic: &str,
    partitions: i32,
) -> Result<Vec<(String, Bytes)>> {
    let mut subscribed = Vec::new();
    let mut others = Vec::new();
    for m in members {
        let topics = decode_subscription(m.metadata.clone())
            .with_context(|| format!("subscription of {}", m.member_id))?;
        if topics.iter().any(|t| t == topic) {
            subscribed.push(m.member_id.clone());
        } else {
            others.push(m.member_id.clone());
        }
    }
    subscribed.sort();
    let count = subscribed.len().max(1) as i32;
    let (each, extra) = (partitions / count, partitions % count);
    let mut next = 0;
    let mut out = Vec::new();
    for (i, m) in subscribed.into_iter().enumerate() {
        let take = each + i32::from((i as i32) < extra);
        let ps: Vec<i32> = (next..next + take).collect();
        next += take;
        out.push((m, encode_assignment(&[(topic.to_string(), ps)])?));
    }
    for m in others {
        out.push((m, encode_assignment(&[])?));
    }
    Ok(out)
}

fn print_rebalance(args: &GroupBenchArgs, results: &[(usize, Vec<RebalanceRun>)]) {
    println!("  medians:");
    println!(
        "  {:>7} {:>14} {:>16} {:>16} {:>12}   runs, all synced (ms)",
        "members", "all synced ms", "heartbeat wait", "join+sync after", "generations"
    );
    let opt_median = |runs: &[RebalanceRun], f: fn(&RebalanceRun) -> Option<Duration>| {
        median(runs.iter().filter_map(f).map(ms))
    };
    for (n, runs) in results {
        println!(
            "  {:>3}+1   {:>14.1} {:>16.1} {:>16.1} {:>12}   {}",
            n,
            median(runs.iter().map(|r| ms(r.total))),
            opt_median(runs, |r| r.noticed),
            opt_median(runs, |r| r.after_notice),
            median(runs.iter().map(|r| r.generations as f64)),
            runs.iter()
                .map(|r| format!("{:.1}", ms(r.total)))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    println!(
        "  note: \"all synced\" includes the old members waiting for their next heartbeat \
         (every {} ms; the runs join at evenly spread points of that cycle) to learn of the \
         rebalance, so it is bounded by the heartbeat interval plus the JoinGroup/SyncGroup round \
         trips; \"join+sync after\" is the part after the last of them learned of it",
        args.heartbeat_ms
    );
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "?".to_string(), |d| format!("{:.1}", ms(d)))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------
// Consumer protocol (KIP-848)
//
// Kafka's own figure for this scenario is 10 consumers while 900 partitions
// are added: 5 s (against 103 s with the classic protocol). The members learn
// of the new group epoch at their next heartbeat, so the time is bounded by
// one heartbeat interval (`group.consumer.heartbeat.interval.ms`, 5 s by
// default) plus the reconciliation itself.
//
// The second KIP-848 figure, the uniform assignor's own time for 1,000
// members x 1,000 topics x 50,000 partitions, calls the assignor directly
// rather than going through a broker: `Part::Assignor`.

struct ConsumerRun {
    /// CreatePartitions sent until every member had reconciled.
    total: Duration,
    /// CreatePartitions sent until ConsumerGroupDescribe showed a new
    /// group epoch.
    epoch_bumped: Option<Duration>,
    /// When the change was made: time since the members' latest heartbeat.
    phase: Duration,
    /// CreatePartitions sent until the first member had new partitions:
    /// the wait for a heartbeat.
    first_assigned: Option<Duration>,
    /// CreatePartitions sent until the last member had its new partitions.
    last_assigned: Option<Duration>,
    /// Group epoch before and after.
    epochs: (i32, i32),
    /// Heartbeat interval the broker gave the members.
    heartbeat: Duration,
    /// Time for the members to settle on the small topic first.
    settle: Duration,
    /// Times members were fenced and joined again (0 in a clean run).
    rejoins: u32,
}

async fn consumer_bench(args: &GroupBenchArgs) -> Result<Vec<ConsumerRun>> {
    let opts = base_opts(args, &[]);
    with_broker(args, "consumer", opts, async |addr: &str| {
        let client = Arc::new(Client::connect(addr, CLIENT_ID).await?);
        let mut runs = Vec::new();
        for run in 1..=args.repeat {
            let r = consumer_run(args, &client, run)
                .await
                .with_context(|| format!("run {run}"))?;
            println!(
                "  run {run}/{}: partitions added {:.0} ms after the members' latest heartbeat; all {} \
                 members reconciled {:.1} ms later (first member had new partitions after {} ms, \
                 the last after {} ms; group epoch {} -> {}, seen bumped after {} ms; heartbeat \
                 interval {} ms; the group first settled in {:.0} ms; {} rejoin(s))",
                args.repeat,
                ms(r.phase),
                args.consumer_members,
                ms(r.total),
                opt_ms(r.first_assigned),
                opt_ms(r.last_assigned),
                r.epochs.0,
                r.epochs.1,
                opt_ms(r.epoch_bumped),
                r.heartbeat.as_millis(),
                ms(r.settle),
                r.rejoins
            );
            runs.push(r);
        }
        Ok(runs)
    })
    .await
}

async fn consumer_run(
    args: &GroupBenchArgs,
    client: &Arc<Client>,
    run: usize,
) -> Result<ConsumerRun> {
    let topic = format!("bench-consumer-r{run}");
    let group = format!("bench-consumer-r{run}");
    create_topic(client, &topic, args.consumer_partitions).await?;
    let topic_id = client
        .wait_for_topic(&topic, Duration::from_secs(10))
        .await?
        .topic_id;
    coordinator_of(client, std::slice::from_ref(&group)).await?;
    let t0 = Instant::now();
    let mut members = Vec::with_capacity(args.consumer_members);
    for _ in 0..args.consumer_members {
        let m = ConsumerMember::join(
            client.clone(),
            &group,
            if args.consumer_regex {
                // The broker resolves it (RE2/J syntax); it matches this run's topic only.
                Subscription::Regex(format!("^{topic}$"))
            } else {
                Subscription::Topics(vec![topic.clone()])
            },
            args.consumer_assignor.as_deref(),
            None,
        )
        .await
        .context("ConsumerGroupHeartbeat join")?;
        members.push(m);
    }
    let before = wait_reconciled(
        client,
        &group,
        &members,
        topic_id,
        args.consumer_partitions,
        None,
        SETTLE_LIMIT,
    )
    .await
    .context("the group did not settle on the first partitions")?;
    let settle = t0.elapsed();
    // Runs change the topic at evenly spread points of the members' heartbeat
    // cycle, (2k-1)/2R of it after the latest heartbeat, so that their median
    // is a typical heartbeat wait rather than a lucky or unlucky one.
    let interval = members
        .first()
        .map_or(Duration::ZERO, |m| m.snapshot().heartbeat_interval);
    let target = interval.mul_f64((2 * run - 1) as f64 / (2 * args.repeat) as f64);
    let latest_heartbeat = |members: &[ConsumerMember]| {
        members
            .iter()
            .filter_map(|m| m.snapshot().last_heartbeat_at)
            .max()
    };
    if let Some(last) = latest_heartbeat(&members) {
        let mut at = last + target;
        while at < Instant::now() {
            at += interval;
        }
        tokio::time::sleep_until(at.into()).await;
    }
    let total_partitions = args.consumer_partitions + args.consumer_added;
    // Timed from the request, not its answer: a heartbeat during the
    // CreatePartitions round trip may already bring the new partitions.
    let changed = Instant::now();
    client
        .create_partitions(&topic, total_partitions)
        .await
        .context("CreatePartitions")?;
    // The phase actually hit: time since the latest heartbeat before the change.
    let phase = latest_heartbeat(&members)
        .filter(|&l| l <= changed)
        .map_or(Duration::ZERO, |l| changed - l);
    let after = wait_reconciled(
        client,
        &group,
        &members,
        topic_id,
        total_partitions,
        Some(before.group_epoch),
        SETTLE_LIMIT,
    )
    .await
    .context("the members did not reconcile after the partitions were added")?;
    let total = changed.elapsed();
    // The member's own view agrees: it waits for the same epoch.
    let epoch = members[0]
        .wait_reconciled(Duration::from_secs(10))
        .await
        .context("a member's own wait for reconciliation")?;
    if epoch != after.group_epoch {
        bail!(
            "a member reconciled at group epoch {epoch}, the bench saw {}",
            after.group_epoch
        );
    }
    let snaps: Vec<MemberSnapshot> = members.iter().map(|m| m.snapshot()).collect();
    // Each member commits its partitions with its member epoch (OffsetCommit
    // v9), which a reconciled member must be allowed to do, then leaves.
    for m in &members {
        let offsets: Vec<(String, i32, i64)> = m
            .assignment()
            .await?
            .into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p, 0)))
            .collect();
        for o in m.commit(&offsets).await.context("commit")? {
            if let Some(e) = o.error {
                bail!(
                    "commit of {}/{} with the member epoch refused: {e:?}",
                    o.topic,
                    o.partition
                );
            }
        }
    }
    for m in members {
        m.leave().await.context("leave")?;
    }
    let left = client
        .describe_consumer_groups(&[&group])
        .await?
        .pop()
        .map_or(0, |d| d.members.len());
    if left != 0 {
        bail!("{left} member(s) still in {group} after leaving");
    }
    let assigned: Vec<Duration> = snaps
        .iter()
        .filter_map(|s| s.owned_changed_at)
        .filter(|&at| at >= changed)
        .map(|at| at - changed)
        .collect();
    Ok(ConsumerRun {
        total,
        epoch_bumped: after
            .epoch_bumped
            .map(|at| at.saturating_duration_since(changed)),
        phase,
        first_assigned: assigned.iter().min().copied(),
        last_assigned: assigned.iter().max().copied(),
        epochs: (before.group_epoch, after.group_epoch),
        heartbeat: snaps
            .first()
            .map_or(Duration::ZERO, |s| s.heartbeat_interval),
        settle,
        rejoins: snaps.iter().map(|s| s.rejoins).sum(),
    })
}

struct Reconciled {
    group_epoch: i32,
    /// When a description first showed a group epoch above the one given.
    epoch_bumped: Option<Instant>,
}

/// Polls ConsumerGroupDescribe until every member has reconciled with a
/// group epoch above `above` (if given) over `partitions` partitions.
async fn wait_reconciled(
    client: &Client,
    group: &str,
    members: &[ConsumerMember],
    topic_id: Uuid,
    partitions: i32,
    above: Option<i32>,
    limit: Duration,
) -> Result<Reconciled> {
    let t0 = Instant::now();
    let mut epoch_bumped = None;
    loop {
        let d = client
            .describe_consumer_groups(&[group])
            .await?
            .pop()
            .ok_or_else(|| anyhow!("no description of {group}"))?;
        if let Some(e) = d.error {
            bail!("ConsumerGroupDescribe of {group}: {e:?}");
        }
        let bumped = above.is_none_or(|a| d.group_epoch > a);
        if bumped && epoch_bumped.is_none() {
            epoch_bumped = Some(Instant::now());
        }
        let snaps: Vec<MemberSnapshot> = members.iter().map(|m| m.snapshot()).collect();
        if let Some(f) = snaps.iter().find_map(|s| s.failed.clone()) {
            bail!("a member stopped: {f}");
        }
        if bumped
            && d.members.len() == members.len()
            && members.iter().all(|m| m.reconciled_with(&d))
            && covers_once(&snaps, topic_id, partitions)
        {
            return Ok(Reconciled {
                group_epoch: d.group_epoch,
                epoch_bumped,
            });
        }
        if t0.elapsed() > limit {
            bail!(
                "not reconciled within {limit:?}: group epoch {}, member epochs {:?}, owned {:?}",
                d.group_epoch,
                snaps.iter().map(|s| s.member_epoch).collect::<Vec<_>>(),
                snaps
                    .iter()
                    .map(|s| s.owned.values().map(Vec::len).sum::<usize>())
                    .collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether the members own every partition of the topic exactly once and
/// nothing else.
fn covers_once(snaps: &[MemberSnapshot], topic_id: Uuid, partitions: i32) -> bool {
    let mut seen = vec![false; partitions.max(0) as usize];
    for s in snaps {
        for (id, ps) in &s.owned {
            if *id != topic_id {
                return false;
            }
            for &p in ps {
                match seen.get_mut(p as usize) {
                    Some(slot) if !*slot => *slot = true,
                    _ => return false,
                }
            }
        }
    }
    seen.iter().all(|&s| s)
}

fn print_consumer(runs: &[ConsumerRun]) {
    if runs.is_empty() {
        return;
    }
    let heartbeat = ms(runs[0].heartbeat);
    let total = median(runs.iter().map(|r| ms(r.total)));
    let after_first = median(
        runs.iter()
            .filter_map(|r| r.first_assigned.map(|f| ms(r.total) - ms(f))),
    );
    let max_total = runs.iter().map(|r| ms(r.total)).fold(0.0, f64::max);
    println!(
        "  median: {total:.1} ms until every member reconciled (runs: {}; worst {max_total:.1}); \
         of that, {after_first:.1} ms after the first member's heartbeat brought new partitions; \
         heartbeat interval {heartbeat:.0} ms, so the bar (1 s + one interval) is {:.0} ms",
        runs.iter()
            .map(|r| format!("{:.1}", ms(r.total)))
            .collect::<Vec<_>>()
            .join(" "),
        1000.0 + heartbeat
    );
    println!(
        "  note: the members learn of the new partitions at their next heartbeat, so each run \
         includes up to one interval of waiting (the runs change the topic at evenly spread \
         points of that cycle); the time after the first new assignment is the reconciliation \
         itself"
    );
}

// ---------------------------------------------------------------------------
// Coordinator recovery

struct Recovery {
    records_written: u64,
    write_secs: f64,
    groups: usize,
    rounds: u64,
    partitions: i32,
    data_bytes: u64,
    runs: Vec<RecoveryRun>,
}

struct RecoveryRun {
    stop_secs: f64,
    /// From the broker's `group coordinator loaded` line.
    loaded_records: Option<u64>,
    loaded_ms: Option<u64>,
    /// Spawn until an OffsetFetch returned the last committed offsets.
    ready_secs: f64,
}

async fn recovery_bench(args: &GroupBenchArgs) -> Result<Recovery> {
    let rounds = args.recovery_rounds();
    let records = rounds * args.recovery_groups as u64 * args.recovery_partitions as u64;
    println!(
        "coordinator recovery: {records} offset-commit records ({} groups x {rounds} commits x {} \
         partitions per commit), then SIGTERM and a restart on the same data, {} time(s)",
        args.recovery_groups, args.recovery_partitions, args.repeat
    );
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-groups-")
        .tempdir()?;
    let data_dir = dir.path().join("data");
    let opts = base_opts(args, &[]);
    let topic = "bench-recovery";
    let groups: Vec<String> = (0..args.recovery_groups)
        .map(|g| format!("bench-recovery-{g}"))
        .collect();
    let partitions: Vec<i32> = (0..args.recovery_partitions).collect();

    let mut broker = BrokerProc::spawn(&data_dir, &dir.path().join("broker-0.log"), &opts)?;
    let written = async {
        broker.wait_ready(args.startup_limit()).await?;
        let admin = Client::connect(&broker.addr, CLIENT_ID).await?;
        create_topic(&admin, topic, args.recovery_partitions).await?;
        coordinator_of(&admin, &groups).await?;
        let t0 = Instant::now();
        write_commits(args, &broker.addr, topic, &groups, &partitions, rounds).await?;
        Ok::<_, anyhow::Error>(t0.elapsed())
    }
    .await;
    let write = match written {
        Ok(w) => w,
        Err(e) => {
            eprintln!("last lines of the broker's output:\n{}", broker.log_tail());
            return Err(e);
        }
    };
    println!(
        "  wrote {records} records in {:.2} s ({} records/s, {} commit requests/s)",
        write.as_secs_f64(),
        si(records as f64 / write.as_secs_f64()),
        si((rounds * groups.len() as u64) as f64 / write.as_secs_f64())
    );

    let mut runs = Vec::new();
    for run in 1..=args.repeat {
        let (stop, status) = broker.stop().await?;
        if !status.success() {
            bail!(
                "the broker exited with {status} after SIGTERM; its output:\n{}",
                broker.log_tail()
            );
        }
        let data_bytes = dir_size(&data_dir).unwrap_or(0);
        let log_path = dir.path().join(format!("broker-{run}.log"));
        broker = BrokerProc::spawn(&data_dir, &log_path, &opts)?;
        // A group picked per run; its last commit wrote offset `rounds` + p.
        let group = &groups[(run * 7919) % groups.len()];
        let ready = match first_fetch(&broker, group, topic, &partitions, rounds, args).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("last lines of the broker's output:\n{}", broker.log_tail());
                return Err(e);
            }
        };
        let (loaded_records, loaded_ms) = loaded_line(&log_path);
        let r = RecoveryRun {
            stop_secs: stop.as_secs_f64(),
            loaded_records,
            loaded_ms,
            ready_secs: ready.as_secs_f64(),
        };
        println!(
            "  run {run}/{}: broker log: loaded {} records in {} ms; OffsetFetch of {group} \
             returned its last offsets {:.3} s after spawn (previous stop took {:.2} s, data dir \
             {:.1} MB)",
            args.repeat,
            opt_num(r.loaded_records),
            opt_num(r.loaded_ms),
            r.ready_secs,
            r.stop_secs,
            data_bytes as f64 / 1e6
        );
        runs.push(r);
    }
    let _ = broker.stop().await;
    let data_bytes = dir_size(&data_dir).unwrap_or(0);
    Ok(Recovery {
        records_written: records,
        write_secs: write.as_secs_f64(),
        groups: groups.len(),
        rounds,
        partitions: args.recovery_partitions,
        data_bytes,
        runs,
    })
}

/// Every group commits `rounds` times, offset k + partition in round k,
/// pipelined on a few connections.
async fn write_commits(
    args: &GroupBenchArgs,
    addr: &str,
    topic: &str,
    groups: &[String],
    partitions: &[i32],
    rounds: u64,
) -> Result<()> {
    let tasks = args.recovery_connections;
    let mut handles = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let conn = Connection::connect(addr, CLIENT_ID).await?;
        let mine: Vec<String> = groups.iter().skip(t).step_by(tasks).cloned().collect();
        let (topic, partitions, in_flight) = (
            topic.to_string(),
            partitions.to_vec(),
            args.recovery_in_flight,
        );
        handles.spawn(async move {
            let mut pending = std::collections::VecDeque::with_capacity(in_flight);
            for k in 1..=rounds as i64 {
                for g in &mine {
                    if pending.len() >= in_flight {
                        let done: cairn_client::Result<()> =
                            pending.pop_front().expect("non-empty").await;
                        done?;
                    }
                    let offsets: Vec<PartitionOffset> = partitions
                        .iter()
                        .map(|&p| PartitionOffset {
                            partition: p,
                            offset: k + p as i64,
                        })
                        .collect();
                    pending.push_back(
                        conn.submit_commit_offsets(g, -1, "", &topic, &offsets)
                            .await?,
                    );
                }
            }
            while let Some(done) = pending.pop_front() {
                done.await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = handles.join_next().await {
        done??;
    }
    Ok(())
}

/// Time from the broker's spawn until an OffsetFetch for `group` returns the
/// offsets of its last commit. Connection refusals and the coordinator's
/// "not ready" answers are retried.
async fn first_fetch(
    broker: &BrokerProc,
    group: &str,
    topic: &str,
    partitions: &[i32],
    rounds: u64,
    args: &GroupBenchArgs,
) -> Result<Duration> {
    let deadline = broker.started + args.startup_limit();
    let retry = |e: &cairn_client::Error| {
        matches!(
            e.kafka_error(),
            Some(
                ResponseError::CoordinatorLoadInProgress
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::NotCoordinator
            )
        ) || matches!(
            e,
            cairn_client::Error::Connect { .. } | cairn_client::Error::ConnectionClosed(_)
        )
    };
    let mut conn: Option<Connection> = None;
    loop {
        if Instant::now() >= deadline {
            bail!(
                "no OffsetFetch answer with the committed offsets within {:?} of the spawn",
                args.startup_limit()
            );
        }
        let attempt = async {
            if conn.as_ref().is_none_or(|c| c.is_closed()) {
                let left = deadline.saturating_duration_since(Instant::now());
                conn = Some(Connection::connect_timeout(&broker.addr, CLIENT_ID, left).await?);
            }
            let c = conn.as_ref().expect("connected");
            c.find_coordinator(group).await?;
            c.fetch_offsets(group, topic, partitions).await
        };
        match attempt.await {
            Ok(got) => {
                let at = broker.started.elapsed();
                let want: Vec<i64> = partitions
                    .iter()
                    .map(|&p| rounds as i64 + p as i64)
                    .collect();
                let have: Vec<i64> = got.iter().map(|o| o.offset).collect();
                if have != want {
                    bail!(
                        "after the restart OffsetFetch for {group} returned {:?}, last committed {:?}",
                        &have[..have.len().min(8)],
                        &want[..want.len().min(8)]
                    );
                }
                return Ok(at);
            }
            Err(e) if retry(&e) => tokio::time::sleep(Duration::from_millis(2)).await,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `records=N ms=M` from the broker's `group coordinator loaded` line.
fn loaded_line(log: &Path) -> (Option<u64>, Option<u64>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let Some(line) = text
        .lines()
        .find(|l| l.contains("group coordinator loaded"))
    else {
        return (None, None);
    };
    let field = |name: &str| {
        line.split_whitespace()
            .filter_map(|w| w.strip_prefix(name))
            .map(|v| {
                v.chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect::<String>()
            })
            .find_map(|v| v.parse().ok())
    };
    (field("records="), field("ms="))
}

fn dir_size(path: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

fn opt_num(v: Option<u64>) -> String {
    v.map_or_else(|| "?".to_string(), |v| v.to_string())
}

fn print_recovery(r: &Recovery) {
    let loaded = median(
        r.runs
            .iter()
            .filter_map(|x| x.loaded_records)
            .map(|v| v as f64),
    );
    let loaded_ms = median(r.runs.iter().filter_map(|x| x.loaded_ms).map(|v| v as f64));
    let ready = median(r.runs.iter().map(|x| x.ready_secs));
    println!(
        "  medians: broker loaded {loaded:.0} records in {:.3} s (its log line); first OffsetFetch \
         with the last offsets {ready:.3} s after spawn; {} records on disk take {:.1} MB",
        loaded_ms / 1e3,
        r.records_written,
        r.data_bytes as f64 / 1e6
    );
    let verdict = if ready < 5.0 { "within" } else { "OVER" };
    println!(
        "  bar: recovery of {} commit records under 5 s: {verdict} ({ready:.3} s wall)",
        r.records_written
    );
}

// ---------------------------------------------------------------------------
// JSON

impl Report {
    fn to_json(&self, args: &GroupBenchArgs, load_start: &str, load_end: &str) -> String {
        let commit: serde_json::Map<String, serde_json::Value> = self
            .commit
            .iter()
            .map(|(mode, runs)| {
                let m = |f: &dyn Fn(&CommitRun) -> f64| median(runs.iter().map(f));
                (
                    mode.name().to_string(),
                    json!({
                        "commits_per_s": m(&CommitRun::commits_per_s),
                        "offsets_per_s": m(&CommitRun::offsets_per_s),
                        "p50_ms": m(&|r| pct_ms(&r.latency, 0.5)),
                        "p99_ms": m(&|r| pct_ms(&r.latency, 0.99)),
                        "p999_ms": m(&|r| pct_ms(&r.latency, 0.999)),
                        "fetch_p50_ms": m(&|r| pct_ms(&r.fetch, 0.5)),
                        "fetch_p99_ms": m(&|r| pct_ms(&r.fetch, 0.99)),
                        "runs": runs.iter().map(|r| json!({
                            "commits": r.commits,
                            "secs": r.secs,
                            "commits_per_s": r.commits_per_s(),
                            "p50_ms": pct_ms(&r.latency, 0.5),
                            "p99_ms": pct_ms(&r.latency, 0.99),
                            "fetch_p50_ms": pct_ms(&r.fetch, 0.5),
                        })).collect::<Vec<_>>(),
                    }),
                )
            })
            .collect();
        let rebalance: Vec<serde_json::Value> = self
            .rebalance
            .iter()
            .map(|(n, runs)| {
                json!({
                    "members_before": n,
                    "all_synced_ms": median(runs.iter().map(|r| ms(r.total))),
                    "joiner_synced_ms": median(runs.iter().map(|r| ms(r.joiner))),
                    "heartbeat_wait_ms": median(runs.iter().filter_map(|r| r.noticed).map(ms)),
                    "after_notice_ms": median(runs.iter().filter_map(|r| r.after_notice).map(ms)),
                    "runs": runs.iter().map(|r| json!({
                        "all_synced_ms": ms(r.total),
                        "joiner_synced_ms": ms(r.joiner),
                        "generations": r.generations,
                        "settle_ms": ms(r.settle),
                        "heartbeat_wait_ms": r.noticed.map(ms),
                        "after_notice_ms": r.after_notice.map(ms),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let recovery = self.recovery.as_ref().map(|r| {
            json!({
                "records_written": r.records_written,
                "groups": r.groups,
                "commits_per_group": r.rounds,
                "partitions_per_commit": r.partitions,
                "write_secs": r.write_secs,
                "data_bytes": r.data_bytes,
                "loaded_records": median(r.runs.iter().filter_map(|x| x.loaded_records).map(|v| v as f64)),
                "loaded_secs": median(r.runs.iter().filter_map(|x| x.loaded_ms).map(|v| v as f64 / 1e3)),
                "ready_secs": median(r.runs.iter().map(|x| x.ready_secs)),
                "runs": r.runs.iter().map(|x| json!({
                    "loaded_records": x.loaded_records,
                    "loaded_ms": x.loaded_ms,
                    "ready_secs": x.ready_secs,
                    "stop_secs": x.stop_secs,
                })).collect::<Vec<_>>(),
            })
        });
        json!({
            "suite": "groups",
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "broker_options": args.broker_opts,
            "config": {
                "repeat": args.repeat,
                "commit_groups": args.commit_groups,
                "commit_partitions": args.commit_partitions,
                "commit_connections": args.commit_connections,
                "commit_secs": args.commit_secs,
                "fetch_samples": args.fetch_samples,
                "heartbeat_ms": args.heartbeat_ms,
                "session_timeout_ms": args.session_timeout_ms,
                "rebalance_partitions": args.rebalance_partitions,
            },
            "commit": commit,
            "rebalance": {
                "heartbeat_ms": args.heartbeat_ms,
                "includes_heartbeat_wait": true,
                "sizes": rebalance,
            },
            "consumer": {
                "members": args.consumer_members,
                "partitions_before": args.consumer_partitions,
                "partitions_added": args.consumer_added,
                "assignor": args.consumer_assignor,
                "regex": args.consumer_regex,
                "heartbeat_interval_ms": self.consumer.first().map(|r| ms(r.heartbeat)),
                "reconciled_ms": (!self.consumer.is_empty())
                    .then(|| median(self.consumer.iter().map(|r| ms(r.total)))),
                "runs": self.consumer.iter().map(|r| json!({
                    "reconciled_ms": ms(r.total),
                    "epoch_bumped_ms": r.epoch_bumped.map(ms),
                    "phase_ms": ms(r.phase),
                    "first_assigned_ms": r.first_assigned.map(ms),
                    "last_assigned_ms": r.last_assigned.map(ms),
                    "group_epoch_before": r.epochs.0,
                    "group_epoch_after": r.epochs.1,
                    "settle_ms": ms(r.settle),
                    "rejoins": r.rejoins,
                })).collect::<Vec<_>>(),
            },
            "recovery": recovery,
            "assignor": self.assignor.as_ref().map(crate::bench_assignor::to_json),
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_client::groups::encode_subscription;

    fn member(id: &str, topics: &[&str]) -> JoinedMember {
        JoinedMember {
            member_id: id.to_string(),
            group_instance_id: None,
            metadata: encode_subscription(topics).unwrap(),
        }
    }

    #[test]
    fn range_assignment_splits_in_member_order() {
        let members = [
            member("c", &["t"]),
            member("a", &["t"]),
            member("b", &["t"]),
        ];
        let out = range_assign(&members, "t", 7).unwrap();
        let got: Vec<(String, Vec<i32>)> = out
            .into_iter()
            .map(|(m, a)| (m, decode_assignment(a).unwrap().remove(0).1))
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_string(), vec![0, 1, 2]),
                ("b".to_string(), vec![3, 4]),
                ("c".to_string(), vec![5, 6]),
            ]
        );
        // More members than partitions: the last ones get nothing, and a
        // member subscribed elsewhere gets an empty assignment.
        let members = [
            member("a", &["t"]),
            member("b", &["t"]),
            member("x", &["u"]),
        ];
        let out = range_assign(&members, "t", 1).unwrap();
        let sizes: Vec<usize> = out
            .into_iter()
            .map(|(_, a)| {
                decode_assignment(a)
                    .unwrap()
                    .iter()
                    .map(|t| t.1.len())
                    .sum()
            })
            .collect();
        assert_eq!(sizes, [1, 0, 0]);
    }

    #[test]
    fn coverage_needs_every_partition_exactly_once() {
        let t = Uuid::from_u128(7);
        let snap = |owned: Vec<(Uuid, Vec<i32>)>| MemberSnapshot {
            member_id: "m".into(),
            member_epoch: 1,
            heartbeat_interval: Duration::from_secs(5),
            owned: owned.into_iter().collect(),
            acknowledged: true,
            rejoins: 0,
            heartbeats: 1,
            failed: None,
            owned_changed_at: None,
            last_heartbeat_at: None,
        };
        let a = snap(vec![(t, vec![0, 2])]);
        let b = snap(vec![(t, vec![1])]);
        assert!(covers_once(&[a.clone(), b.clone()], t, 3));
        assert!(
            !covers_once(std::slice::from_ref(&a), t, 3),
            "partition 1 unowned"
        );
        assert!(
            !covers_once(&[a.clone(), b.clone(), snap(vec![(t, vec![1])])], t, 3),
            "owned twice"
        );
        assert!(
            !covers_once(&[a, b, snap(vec![(Uuid::from_u128(8), vec![0])])], t, 3),
            "other topic"
        );
    }

    #[test]
    fn loaded_line_is_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(
            &path,
            "2025-01-01T00:00:00Z  INFO cairn_broker::server: group coordinator loaded records=1000000 ms=1234\n",
        )
        .unwrap();
        assert_eq!(loaded_line(&path), (Some(1_000_000), Some(1234)));
        std::fs::write(&path, "nothing\n").unwrap();
        assert_eq!(loaded_line(&path), (None, None));
    }
}
