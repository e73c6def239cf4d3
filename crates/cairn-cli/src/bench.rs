//! `cairn bench`: produce and consume throughput and produce latency against a
//! broker, measured beside a plain loopback TCP baseline in the same run so
//! that the numbers can be read relative to what the machine can do at all.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use cairn_client::kafka_protocol::records::Compression;
use cairn_client::kafka_protocol::ResponseError;
use cairn_client::records::encode_batch;
use cairn_client::{Client, ProduceRecord, LATEST_OFFSET};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;

const CLIENT_ID: &str = "cairn-bench";
/// How long the broker is left alone before its resident memory is read.
const IDLE_SETTLE: Duration = Duration::from_millis(1500);
/// Size of the reply in the TCP ping-pong, close to a produce response.
const PONG_BYTES: usize = 64;
const MB: f64 = 1e6;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Another set of measurements instead of produce/consume.
    #[command(subcommand)]
    suite: Option<BenchSuite>,

    /// Use a running broker at HOST:PORT. Without it the bench starts its own
    /// (`cairn serve` on a free loopback port, data in a directory under
    /// $TMPDIR) and stops it at the end.
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap: Option<String>,

    /// Kafka client properties (TLS, SASL) for the --bootstrap broker's connections, as for the
    /// other commands.
    #[arg(long = "command-config", value_name = "FILE", requires = "bootstrap")]
    command_config: Option<std::path::PathBuf>,

    /// Loaded from --command-config once.
    #[arg(skip)]
    security: cairn_client::Security,

    /// Process id of the --bootstrap broker, to report its idle resident memory.
    #[arg(long, value_name = "PID", requires = "bootstrap")]
    broker_pid: Option<u32>,

    /// Setting for the broker the bench starts, as for `serve -o` (repeatable),
    /// e.g. --broker-opt log.flush.interval.messages=1.
    #[arg(
        long = "broker-opt",
        value_name = "KEY=VALUE",
        conflicts_with = "bootstrap"
    )]
    broker_opts: Vec<String>,

    /// Record payload produced, then consumed, per run. Suffixes: k, M, G
    /// (powers of 1000) or KiB, MiB, GiB. Large enough that a run lasts long enough to be steady.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    bytes: u64,

    /// Records per run; overrides --bytes.
    #[arg(long)]
    records: Option<u64>,

    /// Size of each record's value.
    #[arg(long, default_value = "1KiB", value_parser = parse_size)]
    record_size: u64,

    /// Record payload per produce request (one record batch); librdkafka batches up to 1 MB.
    #[arg(long, default_value = "128KiB", value_parser = parse_size)]
    batch_size: u64,

    /// Produce requests kept outstanding on each connection.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,

    /// Producer connections, each driven by its own task.
    #[arg(long, default_value_t = 1)]
    connections: usize,

    /// Partitions of each bench topic (also num.partitions of a started broker).
    #[arg(long, default_value_t = 1)]
    pub(crate) partitions: i32,

    /// Produce acks: 1 (leader) or -1 (all in-sync replicas).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    acks: i16,

    /// Largest response asked for in one Fetch.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    fetch_size: u64,

    /// Steady payload rate of the latency test, in MB/s (10^6 bytes).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,

    /// Length of each latency run in seconds.
    #[arg(long, default_value_t = 3.0)]
    latency_secs: f64,

    /// Record payload per request in the latency test.
    #[arg(long, default_value = "16KiB", value_parser = parse_size)]
    latency_batch_size: u64,

    /// How many times each measurement is repeated; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub(crate) repeat: usize,

    /// Skip the loopback TCP baseline.
    #[arg(long)]
    no_baseline: bool,

    /// Prefix of the topics the bench creates (fresh ones for every run).
    #[arg(long, default_value = "cairn-bench")]
    pub(crate) topic_prefix: String,

    /// Also print a machine-readable JSON summary on the last line.
    #[arg(long)]
    json: bool,

    /// Seconds to wait for a started broker to accept connections.
    #[arg(long, default_value_t = 30.0)]
    startup_timeout: f64,

    /// Measure what observability costs instead: produce throughput with N idle consumer groups
    /// (each with offsets committed on the produced topic, so every lag snapshot covers them) and
    /// the HTTP endpoints scraped every --scrape-every-ms, against the same broker without
    /// either; the two kinds of run alternate, medians and their ratio are reported.
    #[arg(long, value_name = "N", conflicts_with = "bootstrap")]
    with_idle_groups: Option<usize>,

    /// Measure what TLS and SASL cost instead: the started broker also gets a SASL_SSL listener
    /// (a throwaway certificate, PLAIN and SCRAM users); produce and consume throughput over
    /// PLAINTEXT and SASL_SSL alternate run by run, the medians' ratios are reported, and the
    /// time to open a connection ready for requests with each login.
    #[arg(long, conflicts_with_all = ["bootstrap", "with_idle_groups"])]
    with_sasl_ssl: bool,

    /// Listeners the started broker binds besides its PLAINTEXT one (set by --with-sasl-ssl).
    #[arg(skip)]
    extra_listeners: Option<String>,

    /// With --with-idle-groups: how often /metrics and /api/groups are fetched.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    scrape_every_ms: u64,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchSuite {
    /// Consumer groups: offset commit throughput and latency (default and
    /// fsync durability), rebalance time, coordinator recovery time.
    Groups(Box<crate::bench_groups::GroupBenchArgs>),
    /// Transactions: transactional against idempotent produce, EndTxn latency, read_committed
    /// against read_uncommitted consume.
    Transactions(Box<crate::bench_txn::TxnBenchArgs>),
}

impl BenchArgs {
    pub(crate) fn push_broker_opts(&mut self, opts: impl IntoIterator<Item = String>) {
        self.broker_opts.extend(opts);
    }
    pub(crate) fn set_security(&mut self, security: cairn_client::Security) {
        self.security = security;
    }
}

/// Sizes derived from the arguments once, shared by every phase.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    records: u64,
    pub(crate) record_size: usize,
    records_per_batch: u64,
    latency_records_per_batch: u64,
    latency_interval: Duration,
    latency_requests: u64,
}

impl Plan {
    fn new(args: &BenchArgs) -> Result<Plan> {
        if args.record_size == 0 {
            bail!("--record-size must be at least 1 byte");
        }
        if args.in_flight == 0 || args.connections == 0 || args.partitions < 1 {
            bail!("--in-flight, --connections and --partitions must be at least 1");
        }
        if args.repeat == 0 {
            bail!("--repeat must be at least 1");
        }
        if args.acks != 1 && args.acks != -1 {
            bail!("--acks must be 1 or -1: acks=0 gets no reply to time");
        }
        if !(args.rate > 0.0 && args.latency_secs > 0.0) {
            bail!("--rate and --latency-secs must be positive");
        }
        if args.fetch_size == 0 || args.fetch_size > i32::MAX as u64 {
            bail!("--fetch-size must be between 1 byte and 2 GiB");
        }
        for opt in &args.broker_opts {
            if !opt.contains('=') {
                bail!("--broker-opt {opt:?} is not KEY=VALUE");
            }
        }
        let record_size = args.record_size as usize;
        let records = args.records.unwrap_or(args.bytes / args.record_size);
        if records == 0 {
            bail!("nothing to send: --bytes is smaller than one record");
        }
        let records_per_batch = (args.batch_size / args.record_size).max(1);
        let latency_records_per_batch = (args.latency_batch_size / args.record_size).max(1);
        let latency_payload = (latency_records_per_batch * args.record_size) as f64;
        let latency_interval = Duration::from_secs_f64(latency_payload / (args.rate * MB));
        let latency_requests =
            ((args.latency_secs / latency_interval.as_secs_f64()).ceil() as u64).max(1);
        Ok(Plan {
            records,
            record_size,
            records_per_batch,
            latency_records_per_batch,
            latency_interval,
            latency_requests,
        })
    }

    fn payload_bytes(&self) -> u64 {
        self.records * self.record_size as u64
    }

    fn batch_payload(&self) -> usize {
        self.records_per_batch as usize * self.record_size
    }
}

/// Runs the benchmark; the broker it started, if any, is stopped on every path.
pub async fn run(mut args: BenchArgs) -> Result<()> {
    if let Some(BenchSuite::Groups(groups)) = args.suite {
        return crate::bench_groups::run(*groups).await;
    }
    if let Some(BenchSuite::Transactions(txn)) = args.suite {
        return crate::bench_txn::run(*txn).await;
    }
    args.security = crate::common::load_security(args.command_config.as_deref())?;
    let secure = if args.with_sasl_ssl {
        let setup = crate::bench_security::prepare(&mut args)?;
        args.extra_listeners = Some(setup.listener.clone());
        Some(setup)
    } else {
        None
    };
    let plan = Plan::new(&args)?;
    let load_start = loadavg();
    let mut broker = match &args.bootstrap {
        Some(addr) => Broker {
            addr: addr.clone(),
            http: None,
            pid: args.broker_pid,
            spawned: None,
        },
        None => Broker::spawn(&args).await?,
    };
    println!(
        "cairn bench: broker {} ({}), {} partition(s), {} connection(s), {} in flight, \
         acks {}",
        broker.addr,
        match (&broker.spawned, broker.pid) {
            (Some(_), Some(pid)) => format!("started by the bench, pid {pid}"),
            (None, Some(pid)) => format!("external, pid {pid}"),
            _ => "external".to_string(),
        },
        args.partitions,
        args.connections,
        args.in_flight,
        args.acks
    );
    println!(
        "  {} records of {} B per run ({:.1} MB), {} records per batch ({} B), {} run(s)",
        plan.records,
        plan.record_size,
        plan.payload_bytes() as f64 / MB,
        plan.records_per_batch,
        plan.records_per_batch * plan.record_size as u64,
        args.repeat
    );
    if !args.broker_opts.is_empty() {
        println!("  broker options: {}", args.broker_opts.join(" "));
    }
    println!("loadavg at start: {load_start}");

    if let Some(setup) = &secure {
        let addr = broker.addr.clone();
        let outcome = tokio::select! {
            r = crate::bench_security::measure(&mut args, &plan, &addr, setup) => r.map(Some),
            _ = tokio::signal::ctrl_c() => Ok(None),
        };
        return finish(outcome, &mut broker).await;
    }

    if let Some(groups) = args.with_idle_groups {
        let outcome = tokio::select! {
            r = measure_overhead(&args, &plan, &broker, groups) => r.map(Some),
            _ = tokio::signal::ctrl_c() => Ok(None),
        };
        return finish(outcome, &mut broker).await;
    }

    let outcome = tokio::select! {
        r = measure(&args, &plan, &broker) => r.map(Some),
        _ = tokio::signal::ctrl_c() => Ok(None),
    };
    let log_path = broker.stop().await;
    let report = match outcome {
        Ok(Some(r)) => r,
        Ok(None) => bail!("interrupted"),
        Err(e) => {
            // The log lives in the temporary directory, gone once we return.
            if let Some(path) = log_path {
                eprintln!("last lines of the broker's output:");
                eprintln!("{}", tail_of_file(&path, 20));
            }
            return Err(e);
        }
    };
    let load_end = loadavg();
    println!("loadavg at end:   {load_end}");
    report.print(&args, &plan);
    if args.json {
        println!(
            "{}",
            report.to_json(&args, &plan, &broker, &load_start, &load_end)
        );
    }
    Ok(())
}

/// Stops the broker after a measurement that prints its own report (`None`: interrupted); on an
/// error, the end of the broker's log says why.
async fn finish(outcome: Result<Option<()>>, broker: &mut Broker) -> Result<()> {
    let log_path = broker.stop().await;
    match outcome {
        Ok(Some(())) => {
            println!("loadavg at end:   {}", loadavg());
            Ok(())
        }
        Ok(None) => bail!("interrupted"),
        Err(e) => {
            if let Some(path) = log_path {
                eprintln!("last lines of the broker's output:");
                eprintln!("{}", tail_of_file(&path, 20));
            }
            Err(e)
        }
    }
}

struct Broker {
    addr: String,
    /// The HTTP listener of a broker the bench started (a free port, never the default one).
    http: Option<String>,
    pid: Option<u32>,
    spawned: Option<Spawned>,
}

struct Spawned {
    child: tokio::process::Child,
    // Held so the data directory lives exactly as long as the broker.
    _dir: tempfile::TempDir,
    log_path: PathBuf,
}

impl Broker {
    /// Starts `cairn serve` on a free loopback port with a throwaway data dir.
    async fn spawn(args: &BenchArgs) -> Result<Broker> {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.port()
        };
        let addr = format!("127.0.0.1:{port}");
        let http = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            format!("127.0.0.1:{}", probe.local_addr()?.port())
        };
        let dir = tempfile::Builder::new().prefix("cairn-bench-").tempdir()?;
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("broker.log");
        let log = std::fs::File::create(&log_path)?;
        let mut extra = vec![
            "--http".to_string(),
            http.clone(),
            "-o".to_string(),
            format!("num.partitions={}", args.partitions),
        ];
        for opt in &args.broker_opts {
            extra.push("-o".to_string());
            extra.push(opt.clone());
        }
        let listen = match &args.extra_listeners {
            Some(more) => format!("PLAINTEXT://{addr},{more}"),
            None => addr.clone(),
        };
        let mut cmd = broker_command(&listen, &data_dir, &extra, log)?;
        let mut child = cmd.spawn().context("cannot start the broker")?;
        let pid = child.id();

        let deadline = Instant::now() + Duration::from_secs_f64(args.startup_timeout);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the broker exited during startup ({status}); its output:\n{}",
                    tail_of_file(&log_path, 30)
                );
            }
            if TcpStream::connect(&addr).await.is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill().await;
                bail!(
                    "the broker did not accept connections on {addr} within {}s; its output:\n{}",
                    args.startup_timeout,
                    tail_of_file(&log_path, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Broker {
            addr,
            http: Some(http),
            pid,
            spawned: Some(Spawned {
                child,
                _dir: dir,
                log_path,
            }),
        })
    }

    /// Kills a started broker and waits for it; returns where its log was.
    async fn stop(&mut self) -> Option<PathBuf> {
        let spawned = self.spawned.as_mut()?;
        let _ = spawned.child.kill().await;
        Some(spawned.log_path.clone())
    }
}

/// Results of all runs.
#[derive(Default)]
struct Report {
    produce: Vec<Throughput>,
    consume: Vec<Throughput>,
    latency: Vec<Latency>,
    tcp_throughput: Vec<Throughput>,
    tcp_latency: Vec<Latency>,
    rss_start_kib: Option<u64>,
    rss_end_kib: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Throughput {
    bytes: u64,
    records: u64,
    secs: f64,
}

impl Throughput {
    pub(crate) fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / MB / self.secs
    }
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.secs
    }
}

#[derive(Clone, Debug)]
struct Latency {
    /// Sorted ascending.
    samples: Vec<Duration>,
    /// Payload bytes acknowledged per second over the run.
    achieved_mb_per_s: f64,
}

impl Latency {
    fn new(mut samples: Vec<Duration>, payload: u64, elapsed: Duration) -> Latency {
        samples.sort_unstable();
        Latency {
            samples,
            achieved_mb_per_s: payload as f64 / MB / elapsed.as_secs_f64(),
        }
    }

    /// Nearest-rank percentile in milliseconds.
    fn percentile_ms(&self, q: f64) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.samples.len() as f64).ceil() as usize).clamp(1, self.samples.len());
        self.samples[rank - 1].as_secs_f64() * 1e3
    }
}

const PERCENTILES: [(&str, f64); 3] = [("p50", 0.50), ("p99", 0.99), ("p999", 0.999)];

async fn measure(args: &BenchArgs, plan: &Plan, broker: &Broker) -> Result<Report> {
    let mut report = Report::default();
    let admin = connect(args, &broker.addr)
        .await
        .with_context(|| format!("cannot reach the broker at {}", broker.addr))?;
    if let Some(pid) = broker.pid {
        tokio::time::sleep(IDLE_SETTLE).await;
        report.rss_start_kib = Some(rss_kib(pid)?);
    }
    // Unique per invocation so runs against a long-lived broker never collide.
    let stamp = format!(
        "{}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        std::process::id()
    );

    for run in 1..=args.repeat {
        let topic = format!("{}-{stamp}-r{run}", args.topic_prefix);
        create_topic(&admin, &topic, args.partitions).await?;
        let produce = produce_throughput(args, plan, &broker.addr, &topic)
            .await
            .context("produce throughput")?;
        let consume = consume_throughput(args, plan, &broker.addr, &topic)
            .await
            .context("consume throughput")?;

        let lat_topic = format!("{}-{stamp}-lat{run}", args.topic_prefix);
        create_topic(&admin, &lat_topic, 1).await?;
        let latency = produce_latency(args, plan, &broker.addr, &lat_topic)
            .await
            .context("produce latency")?;

        let mut line = format!(
            "run {run}/{}: produce {:.1} MB/s, consume {:.1} MB/s, latency p50 {:.3} ms \
             p99 {:.3} ms",
            args.repeat,
            produce.mb_per_s(),
            consume.mb_per_s(),
            latency.percentile_ms(0.5),
            latency.percentile_ms(0.99),
        );
        report.produce.push(produce);
        report.consume.push(consume);
        report.latency.push(latency);

        if !args.no_baseline {
            let tcp = tcp_throughput(plan.payload_bytes(), plan.batch_payload())
                .await
                .context("TCP baseline throughput")?;
            let tcp_lat = tcp_latency(plan).await.context("TCP baseline latency")?;
            line += &format!(
                " | tcp {:.1} MB/s, rtt p50 {:.3} ms",
                tcp.mb_per_s(),
                tcp_lat.percentile_ms(0.5)
            );
            report.tcp_throughput.push(Throughput {
                records: plan.records,
                ..tcp
            });
            report.tcp_latency.push(tcp_lat);
        }
        println!("{line}");
    }

    if let Some(pid) = broker.pid {
        tokio::time::sleep(IDLE_SETTLE).await;
        report.rss_end_kib = Some(rss_kib(pid)?);
    }
    Ok(report)
}

/// What the HTTP scraper saw during one run.
#[derive(Default, Debug)]
struct ScrapeStats {
    scrapes: u64,
    metrics_bytes: usize,
    slowest: Duration,
}

/// Fetches /metrics and /api/groups every `every` until stopped, as Prometheus and an open
/// dashboard would.
fn start_scraper(
    http: String,
    every: Duration,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<ScrapeStats>>,
) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut stats = ScrapeStats::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stopped => return Ok(stats),
                _ = tick.tick() => {}
            }
            let start = Instant::now();
            let (status, body) = crate::history::get(&http, "/metrics").await?;
            if status != 200 {
                bail!("GET /metrics answered {status}");
            }
            let (status, _) = crate::history::get(&http, "/api/groups").await?;
            if status != 200 {
                bail!("GET /api/groups answered {status}");
            }
            stats.scrapes += 1;
            stats.metrics_bytes = body.len();
            stats.slowest = stats.slowest.max(start.elapsed());
        }
    });
    (stop, task)
}

/// How many groups `/api/groups` lists (from the broker's latest lag snapshot).
async fn snapshot_groups(http: &str) -> Result<usize> {
    let (status, body) = crate::history::get(http, "/api/groups").await?;
    if status != 200 {
        bail!("GET /api/groups answered {status}");
    }
    let page: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(page["groups"].as_array().map_or(0, |g| g.len()))
}

async fn wait_snapshot_groups(http: &str, want: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = snapshot_groups(http).await?;
        if n == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the lag snapshot lists {n} groups, expected {want}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Produce throughput with and without idle groups plus scraping, on one broker, alternating
/// which goes first in each round so that drift (page cache, CPU frequency) hits both alike.
async fn measure_overhead(
    args: &BenchArgs,
    plan: &Plan,
    broker: &Broker,
    idle_groups: usize,
) -> Result<()> {
    let http = broker
        .http
        .clone()
        .ok_or_else(|| anyhow!("--with-idle-groups needs the broker the bench starts"))?;
    let every = Duration::from_millis(args.scrape_every_ms.max(1));
    println!(
        "overhead: produce with {idle_groups} idle groups and /metrics + /api/groups fetched every \
         {} ms (HTTP {http}), against the same broker without them",
        every.as_millis()
    );
    let admin = Client::connect(&broker.addr, CLIENT_ID)
        .await
        .with_context(|| format!("cannot reach the broker at {}", broker.addr))?;
    let conn = cairn_client::Connection::connect(&broker.addr, CLIENT_ID).await?;
    let partitions: Vec<cairn_client::PartitionOffset> = (0..args.partitions)
        .map(|partition| cairn_client::PartitionOffset {
            partition,
            offset: 0,
        })
        .collect();
    let stamp = std::process::id();
    let (mut plain, mut observed) = (Vec::new(), Vec::new());
    for run in 1..=args.repeat {
        let order = if run % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        let mut line = format!("run {run}/{}:", args.repeat);
        for with in order {
            let kind = if with { "obs" } else { "plain" };
            let topic = format!("{}-{stamp}-{kind}{run}", args.topic_prefix);
            create_topic(&admin, &topic, args.partitions).await?;
            let groups: Vec<String> = if with {
                (0..idle_groups)
                    .map(|g| format!("{}-{stamp}-idle{run}-{g}", args.topic_prefix))
                    .collect()
            } else {
                Vec::new()
            };
            // Unmeasured: the groups commit (pipelined), then the snapshot must list them.
            let mut pending = VecDeque::new();
            for g in &groups {
                if pending.len() >= 64 {
                    let ack: cairn_client::Result<()> =
                        pending.pop_front().expect("non-empty").await;
                    ack?;
                }
                pending.push_back(
                    conn.submit_commit_offsets(g, -1, "", &topic, &partitions)
                        .await?,
                );
            }
            while let Some(ack) = pending.pop_front() {
                ack.await?;
            }
            wait_snapshot_groups(&http, groups.len()).await?;
            let scraper = with.then(|| start_scraper(http.clone(), every));
            let result = produce_throughput(args, plan, &broker.addr, &topic).await;
            let stats = match scraper {
                Some((stop, task)) => {
                    let _ = stop.send(());
                    Some(task.await??)
                }
                None => None,
            };
            let t = result.context("produce throughput")?;
            match stats {
                Some(s) => {
                    line += &format!(
                        " with {:.1} MB/s ({} scrapes, /metrics {} KB, slowest scrape {:.1} ms)",
                        t.mb_per_s(),
                        s.scrapes,
                        s.metrics_bytes / 1000,
                        s.slowest.as_secs_f64() * 1e3
                    )
                }
                None => line += &format!(" without {:.1} MB/s", t.mb_per_s()),
            }
            if with {
                observed.push(t);
            } else {
                plain.push(t);
            }
            // Leave the broker as it was: no groups, no data.
            for chunk in groups.chunks(200) {
                let names: Vec<&str> = chunk.iter().map(String::as_str).collect();
                conn.delete_groups(&names).await?;
            }
            admin.delete_topic(&topic).await?;
            wait_snapshot_groups(&http, 0).await?;
            line += ";";
        }
        println!("{}", line.trim_end_matches(';'));
    }
    let without = median(plain.iter().map(Throughput::mb_per_s));
    let with = median(observed.iter().map(Throughput::mb_per_s));
    let ratio = with / without;
    println!(
        "produce median: without {without:.1} MB/s, with {idle_groups} idle groups + scrapes \
         {with:.1} MB/s, ratio {ratio:.3} ({:+.1}%), {} the 5% budget",
        (ratio - 1.0) * 100.0,
        if ratio >= 0.95 { "within" } else { "OVER" }
    );
    if args.json {
        println!(
            "{}",
            json!({
                "suite": "overhead",
                "idle_groups": idle_groups,
                "scrape_every_ms": every.as_millis() as u64,
                "runs": args.repeat,
                "produce_mb_per_s_without": plain.iter().map(Throughput::mb_per_s).collect::<Vec<_>>(),
                "produce_mb_per_s_with": observed.iter().map(Throughput::mb_per_s).collect::<Vec<_>>(),
                "median_without": without,
                "median_with": with,
                "ratio": ratio,
            })
        );
    }
    Ok(())
}

pub(crate) async fn create_topic(admin: &Client, topic: &str, partitions: i32) -> Result<()> {
    match admin.create_topic(topic, partitions, -1, &[]).await {
        Ok(()) => {}
        Err(e) if e.kafka_error() == Some(ResponseError::TopicAlreadyExists) => {}
        // Brokers without CreateTopics usually create topics on first metadata.
        Err(cairn_client::Error::UnsupportedApi(_)) => {
            admin.fetch_metadata(Some(&[topic]), true).await?;
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create topic {topic}")),
    }
    let info = admin.wait_for_topic(topic, Duration::from_secs(10)).await?;
    if info.partitions.len() != partitions as usize {
        bail!(
            "topic {topic} has {} partitions, wanted {partitions}",
            info.partitions.len()
        );
    }
    Ok(())
}

/// A few distinct pre-encoded batches, reused for every request, so the
/// client spends its CPU on sending rather than on encoding.
fn make_batches(record_size: usize, per_batch: u64, kinds: usize, seed: u64) -> Result<Vec<Bytes>> {
    let mut rng = XorShift(seed | 1);
    (0..kinds)
        .map(|_| {
            let records: Vec<ProduceRecord> = (0..per_batch)
                .map(|_| ProduceRecord::new(rng.bytes(record_size)))
                .collect();
            Ok(encode_batch(&records, Compression::None)?)
        })
        .collect()
}

/// A client secured as --command-config says (PLAINTEXT without it).
pub(crate) async fn connect(args: &BenchArgs, addr: &str) -> cairn_client::Result<Client> {
    Client::connect_with(
        addr,
        CLIENT_ID,
        cairn_client::DEFAULT_CONNECT_TIMEOUT,
        args.security.clone(),
    )
    .await
}

pub(crate) async fn produce_throughput(
    args: &BenchArgs,
    plan: &Plan,
    addr: &str,
    topic: &str,
) -> Result<Throughput> {
    let full = Arc::new(make_batches(
        plan.record_size,
        plan.records_per_batch,
        4,
        7,
    )?);
    let total_batches = plan.records.div_ceil(plan.records_per_batch);
    let tail_records = plan.records % plan.records_per_batch;
    let tail = if tail_records > 0 {
        Some(make_batches(plan.record_size, tail_records, 1, 11)?.remove(0))
    } else {
        None
    };

    let tasks = args.connections;
    let barrier = Arc::new(Barrier::new(tasks + 1));
    // A JoinSet aborts the remaining tasks when one fails.
    let mut handles = tokio::task::JoinSet::new();
    for task in 0..tasks {
        // Each task owns a client, hence its own connection(s).
        let client = connect(args, addr).await?;
        let partitions: Vec<i32> = if args.partitions as usize >= tasks {
            (0..args.partitions)
                .filter(|p| *p as usize % tasks == task)
                .collect()
        } else {
            vec![(task % args.partitions as usize) as i32]
        };
        for &p in &partitions {
            client.leader_connection(topic, p).await?;
        }
        let batches: Vec<Bytes> = (task as u64..total_batches)
            .step_by(tasks)
            .map(|b| match &tail {
                Some(t) if b == total_batches - 1 => t.clone(),
                _ => full[(b % full.len() as u64) as usize].clone(),
            })
            .collect();
        let (barrier, topic, in_flight, acks) = (
            barrier.clone(),
            topic.to_string(),
            args.in_flight,
            args.acks,
        );
        handles.spawn(async move {
            barrier.wait().await;
            let mut pending = VecDeque::with_capacity(in_flight);
            for (i, batch) in batches.into_iter().enumerate() {
                if pending.len() >= in_flight {
                    let ack: cairn_client::Result<_> =
                        pending.pop_front().expect("non-empty").await;
                    ack?;
                }
                let partition = partitions[i % partitions.len()];
                pending.push_back(
                    client
                        .submit_produce(&topic, partition, batch, acks)
                        .await?,
                );
            }
            while let Some(ack) = pending.pop_front() {
                ack.await?;
            }
            Ok::<_, cairn_client::Error>(())
        });
    }
    barrier.wait().await;
    let start = Instant::now();
    while let Some(done) = handles.join_next().await {
        done??;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Throughput {
        bytes: plan.payload_bytes(),
        records: plan.records,
        secs,
    })
}

pub(crate) async fn consume_throughput(
    args: &BenchArgs,
    plan: &Plan,
    addr: &str,
    topic: &str,
) -> Result<Throughput> {
    let client = Arc::new(connect(args, addr).await?);
    let mut ends = Vec::new();
    for p in 0..args.partitions {
        ends.push((p, client.list_offsets(topic, p, LATEST_OFFSET).await?));
    }
    let max_bytes = args.fetch_size as i32;
    let start = Instant::now();
    let mut handles = tokio::task::JoinSet::new();
    for (partition, end) in ends {
        let (client, topic) = (client.clone(), topic.to_string());
        handles.spawn(async move {
            let (mut offset, mut records, mut bytes, mut idle) = (0i64, 0u64, 0u64, 0u32);
            while offset < end {
                let fetched = client.fetch(&topic, partition, offset, max_bytes, 500).await?;
                if fetched.records.is_empty() {
                    idle += 1;
                    if idle > 20 {
                        bail!("partition {partition} stopped returning data at offset {offset} of {end}");
                    }
                    continue;
                }
                idle = 0;
                records += fetched.records.len() as u64;
                bytes += fetched
                    .records
                    .iter()
                    .map(|r| r.value.as_ref().map_or(0, |v| v.len()) as u64)
                    .sum::<u64>();
                offset = fetched.next_offset(offset);
            }
            Ok((records, bytes))
        });
    }
    let (mut records, mut bytes) = (0, 0);
    while let Some(done) = handles.join_next().await {
        let (r, b) = done??;
        records += r;
        bytes += b;
    }
    let secs = start.elapsed().as_secs_f64();
    if records != plan.records || bytes != plan.payload_bytes() {
        bail!(
            "read back {records} records / {bytes} bytes, produced {} / {}",
            plan.records,
            plan.payload_bytes()
        );
    }
    Ok(Throughput {
        bytes,
        records,
        secs,
    })
}

/// A paced producer: one request every `latency_interval`, independent of
/// acks (open loop), timing each request from its write to its ack.
async fn produce_latency(
    args: &BenchArgs,
    plan: &Plan,
    addr: &str,
    topic: &str,
) -> Result<Latency> {
    let batches = make_batches(plan.record_size, plan.latency_records_per_batch, 4, 13)?;
    let client = connect(args, addr).await?;
    client.leader_connection(topic, 0).await?;
    // Bounded so a stalled broker cannot make the bench queue without limit.
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let collector = tokio::spawn(async move {
        let mut samples = Vec::new();
        while let Some((sent, ack)) = rx.recv().await {
            let ack: cairn_client::Result<_> = ack;
            let ack = ack?;
            ack.await?;
            let sent: Instant = sent;
            samples.push(sent.elapsed());
        }
        Ok::<_, cairn_client::Error>(samples)
    });
    let start = Instant::now();
    for k in 0..plan.latency_requests {
        tokio::time::sleep_until((start + plan.latency_interval * k as u32).into()).await;
        let batch = batches[(k % batches.len() as u64) as usize].clone();
        let sent = Instant::now();
        let ack = client.submit_produce(topic, 0, batch, args.acks).await;
        let failed = ack.is_err();
        if tx.send((sent, ack)).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let samples = collector.await??;
    let elapsed = start.elapsed();
    let payload = samples.len() as u64 * plan.latency_records_per_batch * plan.record_size as u64;
    Ok(Latency::new(samples, payload, elapsed))
}

/// Plain loopback TCP moving the same payload in writes of the batch size.
async fn tcp_throughput(total: u64, write_size: usize) -> Result<Throughput> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let receiver = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await?;
        sock.set_nodelay(true)?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut received = 0u64;
        while received < total {
            let n = sock.read(&mut buf).await?;
            if n == 0 {
                bail!("baseline sender closed early");
            }
            received += n as u64;
        }
        Ok(Instant::now())
    });
    let mut sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let chunk = XorShift(5).bytes(write_size.max(1));
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let n = chunk.len().min((total - sent) as usize);
        sock.write_all(&chunk[..n]).await?;
        sent += n as u64;
    }
    let end = receiver.await??;
    Ok(Throughput {
        bytes: total,
        records: 0,
        secs: (end - start).as_secs_f64(),
    })
}

/// Loopback ping-pong on the latency test's schedule: a request the size of
/// a latency-test batch, answered by a small reply.
async fn tcp_latency(plan: &Plan) -> Result<Latency> {
    let size = (plan.latency_records_per_batch as usize) * plan.record_size;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await?;
        sock.set_nodelay(true)?;
        let mut buf = vec![0u8; size];
        let pong = [0u8; PONG_BYTES];
        loop {
            match sock.read_exact(&mut buf).await {
                Ok(_) => sock.write_all(&pong).await?,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(anyhow::Error::from(e)),
            }
        }
    });
    let mut sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let ping = XorShift(9).bytes(size);
    let mut pong = [0u8; PONG_BYTES];
    let mut samples = Vec::with_capacity(plan.latency_requests as usize);
    let start = Instant::now();
    for k in 0..plan.latency_requests {
        tokio::time::sleep_until((start + plan.latency_interval * k as u32).into()).await;
        let sent = Instant::now();
        sock.write_all(&ping).await?;
        sock.read_exact(&mut pong).await?;
        samples.push(sent.elapsed());
    }
    let elapsed = start.elapsed();
    drop(sock);
    server.await??;
    Ok(Latency::new(
        samples,
        plan.latency_requests * size as u64,
        elapsed,
    ))
}

impl Report {
    fn print(&self, args: &BenchArgs, plan: &Plan) {
        let produce = median(self.produce.iter().map(Throughput::mb_per_s));
        let consume = median(self.consume.iter().map(Throughput::mb_per_s));
        let tcp = (!self.tcp_throughput.is_empty())
            .then(|| median(self.tcp_throughput.iter().map(Throughput::mb_per_s)));
        println!();
        println!(
            "median of {} run(s); MB = 10^6 bytes of record payload",
            args.repeat
        );
        for (name, runs, mb) in [
            ("produce", &self.produce, produce),
            ("consume", &self.consume, consume),
        ] {
            let recs = median(runs.iter().map(Throughput::records_per_s));
            let mut line = format!("{name:<9}{mb:>9.1} MB/s {:>8} rec/s", si(recs));
            if let Some(tcp) = tcp {
                line += &format!("   baseline {tcp:>8.1} MB/s   ratio {:.2}", mb / tcp);
            }
            println!("{line}");
            println!(
                "{:9}runs: {}",
                "",
                runs.iter()
                    .map(|r| format!("{:.1}", r.mb_per_s()))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }

        let lat = |set: &[Latency], q: f64| median(set.iter().map(|l| l.percentile_ms(q)));
        let achieved = median(self.latency.iter().map(|l| l.achieved_mb_per_s));
        let mut line = format!("{:<9}", "latency");
        for (name, q) in PERCENTILES {
            line += &format!("{name} {:.3} ms  ", lat(&self.latency, q));
        }
        println!(
            "{line} at {:.1} MB/s, {} B requests (achieved {achieved:.1} MB/s, {} samples/run)",
            args.rate,
            plan.latency_records_per_batch * plan.record_size as u64,
            self.latency.first().map_or(0, |l| l.samples.len())
        );
        let runs: Vec<String> = PERCENTILES
            .iter()
            .map(|&(name, q)| {
                let values: Vec<String> = self
                    .latency
                    .iter()
                    .map(|l| format!("{:.3}", l.percentile_ms(q)))
                    .collect();
                format!("{name}: {}", values.join(" "))
            })
            .collect();
        println!("{:9}runs {}", "", runs.join("   "));
        if !self.tcp_latency.is_empty() {
            let mut line = format!("{:<9}", "tcp rtt");
            let mut ratios = Vec::new();
            for (name, q) in PERCENTILES {
                let base = lat(&self.tcp_latency, q);
                line += &format!("{name} {base:.3} ms  ");
                ratios.push(format!("{name} {:.1}", lat(&self.latency, q) / base));
            }
            println!("{line} ratio {}", ratios.join("  "));
        }
        match (self.rss_start_kib, self.rss_end_kib) {
            (Some(a), Some(b)) => println!(
                "{:<9}idle RSS {:.1} MiB at start, {:.1} MiB after the runs",
                "broker",
                a as f64 / 1024.0,
                b as f64 / 1024.0
            ),
            _ => println!("{:<9}idle RSS not measured (no broker pid)", "broker"),
        }
    }

    fn to_json(
        &self,
        args: &BenchArgs,
        plan: &Plan,
        broker: &Broker,
        load_start: &str,
        load_end: &str,
    ) -> String {
        let tput = |runs: &[Throughput]| {
            json!({
                "mb_per_s": median(runs.iter().map(Throughput::mb_per_s)),
                "records_per_s": median(runs.iter().map(Throughput::records_per_s)),
                "runs": runs.iter().map(|r| json!({
                    "mb_per_s": r.mb_per_s(),
                    "records_per_s": r.records_per_s(),
                    "secs": r.secs,
                    "bytes": r.bytes,
                    "records": r.records,
                })).collect::<Vec<_>>(),
            })
        };
        let lat = |runs: &[Latency]| {
            let mut obj = serde_json::Map::new();
            for (name, q) in PERCENTILES {
                obj.insert(
                    format!("{name}_ms"),
                    json!(median(runs.iter().map(|l| l.percentile_ms(q)))),
                );
            }
            obj.insert(
                "achieved_mb_per_s".into(),
                json!(median(runs.iter().map(|l| l.achieved_mb_per_s))),
            );
            obj.insert(
                "runs".into(),
                runs.iter()
                    .map(|l| {
                        json!({
                            "p50_ms": l.percentile_ms(0.5),
                            "p99_ms": l.percentile_ms(0.99),
                            "p999_ms": l.percentile_ms(0.999),
                            "samples": l.samples.len(),
                            "achieved_mb_per_s": l.achieved_mb_per_s,
                        })
                    })
                    .collect(),
            );
            serde_json::Value::Object(obj)
        };
        let baseline = (!self.tcp_throughput.is_empty()).then(|| {
            json!({
                "throughput": tput(&self.tcp_throughput),
                "latency": lat(&self.tcp_latency),
            })
        });
        let ratio = |a: f64, b: Option<f64>| b.map(|b| a / b);
        let tcp_mb = baseline
            .as_ref()
            .map(|_| median(self.tcp_throughput.iter().map(Throughput::mb_per_s)));
        let tcp_p = |q| {
            baseline
                .as_ref()
                .map(|_| median(self.tcp_latency.iter().map(|l| l.percentile_ms(q))))
        };
        let p = |q| median(self.latency.iter().map(|l| l.percentile_ms(q)));
        json!({
            "broker": {
                "addr": broker.addr,
                "started_by_bench": broker.spawned.is_some(),
                "pid": broker.pid,
                "options": args.broker_opts,
                "idle_rss_kib_start": self.rss_start_kib,
                "idle_rss_kib_end": self.rss_end_kib,
            },
            "config": {
                "records": plan.records,
                "record_size": plan.record_size,
                "records_per_batch": plan.records_per_batch,
                "in_flight": args.in_flight,
                "connections": args.connections,
                "partitions": args.partitions,
                "acks": args.acks,
                "fetch_size": args.fetch_size,
                "latency_rate_mb_per_s": args.rate,
                "latency_records_per_batch": plan.latency_records_per_batch,
                "repeat": args.repeat,
            },
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "produce": tput(&self.produce),
            "consume": tput(&self.consume),
            "latency": lat(&self.latency),
            "baseline": baseline,
            "ratios": {
                "produce": ratio(median(self.produce.iter().map(Throughput::mb_per_s)), tcp_mb),
                "consume": ratio(median(self.consume.iter().map(Throughput::mb_per_s)), tcp_mb),
                "latency_p50": ratio(p(0.5), tcp_p(0.5)),
                "latency_p99": ratio(p(0.99), tcp_p(0.99)),
                "latency_p999": ratio(p(0.999), tcp_p(0.999)),
            },
        })
        .to_string()
    }
}

pub(crate) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// 422200 -> "422.2k".
pub(crate) fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Parses "65536", "64k", "64KiB", "1.5M", "2GiB" (k/M/G are powers of 1000).
pub(crate) fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" | "b" => 1.0,
        "k" | "K" | "kB" | "KB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "KiB" | "Ki" => 1024.0,
        "MiB" | "Mi" => 1024.0 * 1024.0,
        "GiB" | "Gi" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    Ok((num * mult).round() as u64)
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unavailable".to_string())
}

/// Resident set size of a process in KiB, from /proc/<pid>/status.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read the status of process {pid}"))?;
    parse_vm_rss(&status).ok_or_else(|| anyhow!("no VmRSS line for process {pid}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn tail_of_file(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Cheap pseudo-random bytes so payloads are not trivially compressible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Bytes {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        Bytes::from(v)
    }
}

/// A `cairn serve` child for the benches: output to `log`, killed with the bench even if the
/// bench itself dies without cleaning up, so no broker is ever orphaned.
pub(crate) fn broker_command(
    listen: &str,
    data_dir: &std::path::Path,
    extra_args: &[String],
    log: std::fs::File,
) -> Result<tokio::process::Command> {
    let exe = std::env::current_exe().context("cannot locate the cairn binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("serve")
        .arg("--listen")
        .arg(listen)
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra_args)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours. It makes the kernel kill
    // the broker if the bench dies without running its cleanup (SIGKILL, a crash).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(64_000));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("1.5M"), Ok(1_500_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples = (1..=1000).map(Duration::from_millis).collect();
        let l = Latency::new(samples, 0, Duration::from_secs(1));
        assert_eq!(l.percentile_ms(0.5), 500.0);
        assert_eq!(l.percentile_ms(0.99), 990.0);
        assert_eq!(l.percentile_ms(0.999), 999.0);
        let one = Latency::new(vec![Duration::from_millis(3)], 0, Duration::from_secs(1));
        assert_eq!(one.percentile_ms(0.999), 3.0);
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert!(median(std::iter::empty()).is_nan());
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tcairn\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[tokio::test]
    async fn tcp_baseline_moves_every_byte() {
        let t = tcp_throughput(1_000_003, 4096).await.unwrap();
        assert_eq!(t.bytes, 1_000_003);
        assert!(t.secs > 0.0);
    }
}
