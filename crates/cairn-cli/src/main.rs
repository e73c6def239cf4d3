//! `cairn`: the broker (`serve`) and the operator's toolbox in one binary.

use std::path::PathBuf;

use anyhow::Context;
use cairn_broker::{Broker, BrokerOptions};
use cairn_config::BrokerConfig;
use clap::{Parser, Subcommand};

mod acls;
mod bench;
mod bench_assignor;
mod bench_groups;
mod bench_security;
mod bench_txn;
mod check;
mod common;
mod configs;
mod groups;
mod history;
mod log_dirs;
mod output;
mod quick;
mod quotas;
mod reset;
mod topics;
mod transactions;
mod users;

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "A Kafka-compatible broker built around consumer groups"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker with an embedded, durable store.
    Serve(ServeArgs),
    /// Measure produce/consume throughput and latency against a broker, beside a raw TCP
    /// baseline; `bench groups` measures consumer groups instead.
    Bench(bench::BenchArgs),
    /// List, describe, create, alter and delete topics.
    Topics(topics::TopicsArgs),
    /// Consumer groups: list, describe (offsets and lag), reset offsets, delete.
    Groups(groups::GroupsArgs),
    /// Produce lines from standard input, one record per line.
    Produce(quick::ProduceArgs),
    /// Print records of a topic, directly or as a member of a consumer group.
    Consume(quick::ConsumeArgs),
    /// ACLs: list, add and remove (what kafka-acls.sh does).
    Acls(acls::AclsArgs),
    /// Transactions: list, describe, describe producers, find hanging ones and abort them
    /// (what kafka-transactions.sh does).
    Transactions(transactions::TransactionsArgs),
    /// SCRAM users: list, add and remove credentials (kafka-configs.sh's job for users).
    Users(users::UsersArgs),
    /// Topic and broker configs: describe and alter (kafka-configs.sh's job for topics and
    /// brokers).
    Configs(configs::ConfigsArgs),
    /// Log dirs: each broker's, with partition sizes and free space (what kafka-log-dirs.sh
    /// --describe shows).
    LogDirs(log_dirs::LogDirsArgs),
    /// Check every segment of a data directory, read-only: exit 0 if intact, 1 if damage was
    /// found, 2 if the directory cannot be checked.
    Check(check::CheckArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Kafka listeners: `host:port` (PLAINTEXT) or Kafka's list, e.g.
    /// `SASL_SSL://0.0.0.0:9093,PLAINTEXT://127.0.0.1:9092` [default: `listeners`, else 127.0.0.1:9092].
    #[arg(long)]
    listen: Option<String>,
    /// Data directory [default: ./data, or `log.dirs`].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A Kafka-style properties file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one setting, Kafka's property name: -o num.partitions=4 (repeatable).
    #[arg(short = 'o', long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// HTTP listener for /metrics, /health, the JSON API and the dashboard, or `off`
    /// [default: 127.0.0.1:9644; skipped with a warning if that port is taken].
    #[arg(long, value_name = "HOST:PORT|off")]
    http: Option<String>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes belong on a terminal; in a log file they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    // Offline and synchronous: no runtime needed, and its exit code tells scripts what it found.
    if let Command::Check(args) = cli.command {
        return match check::run(args) {
            Ok(code) => std::process::ExitCode::from(code),
            Err(e) => {
                eprintln!("cairn: {e:#}");
                std::process::ExitCode::from(check::EXIT_UNREADABLE)
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Topics(args) => topics::run(args).await,
            Command::Groups(args) => groups::run(args).await,
            Command::Produce(args) => quick::produce(args).await,
            Command::Consume(args) => quick::consume(args).await,
            Command::Acls(args) => acls::run(args).await,
            Command::Users(args) => users::run(args).await,
            Command::Configs(args) => configs::run(args).await,
            Command::LogDirs(args) => log_dirs::run(args).await,
            Command::Transactions(args) => transactions::run(args).await,
            Command::Check(_) => unreachable!("handled before the runtime starts"),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = args
        .overrides
        .iter()
        .map(|s| cairn_config::parse_override(s))
        .collect::<Result<Vec<_>, _>>()
        .context("bad -o option")?;
    let config = BrokerConfig::load(args.config.as_deref(), &overrides)?;
    for key in &config.unknown {
        tracing::warn!(key = %key, "unknown configuration key ignored");
    }
    let listen = args.listen;
    let data_dir = args
        .data_dir
        .or_else(|| config.get("log.dirs").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data"));
    // The HTTP listener comes up first so /health can answer 503 while the stores load.
    let slot = cairn_http::ViewSlot::new();
    let http_options = cairn_http::HttpOptions {
        allowed_hosts: config.http_allowed_hosts(),
        read_timeout: std::time::Duration::from_millis(config.http_read_timeout_ms()),
        idle_timeout: std::time::Duration::from_millis(config.http_idle_timeout_ms()),
    };
    let http_tls = cairn_broker::http_server_config(&config)?;
    let (http_stop, http_task) =
        match start_http(args.http.as_deref(), &slot, http_options, http_tls).await? {
            Some((stop, task)) => (Some(stop), Some(task)),
            None => (None, None),
        };
    // Signals are caught from before the broker starts: Kafka clients are served while the
    // start finishes (the first lag snapshot), and a SIGTERM then must still mean a clean stop.
    let signals = Signals::catch()?;
    let broker = Broker::start(BrokerOptions {
        listen,
        data_dir,
        config,
    })
    .await?;
    slot.set(broker.view());
    signals.wait().await;
    tracing::info!("shutting down");
    slot.clear();
    let result = broker.shutdown().await;
    if let (Some(stop), Some(task)) = (http_stop, http_task) {
        let _ = stop.send(());
        let _ = task.await;
    }
    result
}

type HttpHandle = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// Binds the HTTP listener: an explicit address must work; the default one may be taken (another
/// broker on this machine), which only costs the HTTP endpoints.
async fn start_http(
    arg: Option<&str>,
    slot: &cairn_http::ViewSlot,
    options: cairn_http::HttpOptions,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> anyhow::Result<Option<HttpHandle>> {
    const DEFAULT: &str = "127.0.0.1:9644";
    let server = match arg {
        Some("off") => return Ok(None),
        Some(addr) => cairn_http::HttpServer::bind(addr).await?,
        None => match cairn_http::HttpServer::bind(DEFAULT).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("{e:#}; serving without HTTP (pass --http HOST:PORT)");
                return Ok(None);
            }
        },
    };
    let https = tls.is_some();
    let server = server.with_options(options).with_tls(tls);
    tracing::info!(http = %server.local_addr, tls = https, "HTTP listener: /metrics, /health, /api, dashboard");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(slot.clone(), async {
        let _ = stopped.await;
    }));
    Ok(Some((stop, task)))
}

/// SIGTERM and SIGINT, caught from creation on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn catch() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
