//! Listener, connections and framing. A connection reads one size-prefixed frame at a time and
//! answers it before reading the next, as Kafka does (a connection is muted while its request is
//! in flight), which keeps per-partition ordering of pipelined produce requests trivially right.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::{Buf, Bytes, BytesMut};
use cairn_config::BrokerConfig;
use cairn_log::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::flusher::Flusher;
use crate::groups::Groups;
use crate::handlers;
use crate::lag::{LagEngine, SnapshotCell};
use crate::metrics::Metrics;
use crate::state::{log_config_for, now_ms, BrokerState};
use crate::view::View;

pub struct BrokerOptions {
    pub listen: String,
    pub data_dir: PathBuf,
    pub config: BrokerConfig,
}

/// A running broker. Dropping it does not stop it; call [`Broker::shutdown`].
pub struct Broker {
    pub local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    state: Arc<BrokerState>,
    view: Arc<View>,
}

impl Broker {
    pub async fn start(opts: BrokerOptions) -> anyhow::Result<Broker> {
        let config = Arc::new(opts.config);
        let listener = TcpListener::bind(&opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        let local_addr = listener.local_addr()?;
        let cfg_for_store = config.clone();
        let data_dir = opts.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || {
            Store::open(
                &data_dir,
                Arc::new(move |t: &cairn_log::TopicMeta| log_config_for(&cfg_for_store, t)),
            )
        })
        .await?
        .with_context(|| format!("cannot open data directory {}", opts.data_dir.display()))?;

        let (adv_host, adv_port) = config
            .advertised_listener()
            .unwrap_or_else(|| (local_addr.ip().to_string(), local_addr.port()));
        let flusher = (config.log_flush_interval_messages() <= 1).then(Flusher::start);
        let store = Arc::new(store);
        let snapshots = Arc::new(SnapshotCell::default());
        let metrics = Arc::new(Metrics::new(snapshots.clone()));
        let groups = Arc::new(Groups::new(
            &config,
            store.clone(),
            flusher.clone(),
            metrics.clone(),
        ));
        let started = std::time::Instant::now();
        let loaded = groups.load();
        if loaded > 0 {
            tracing::info!(
                records = loaded,
                ms = started.elapsed().as_millis() as u64,
                "group coordinator loaded"
            );
        }
        let state = Arc::new(BrokerState {
            groups,
            node_id: config.node_id(),
            advertised_host: adv_host,
            advertised_port: adv_port as i32,
            appended: watch::channel(0).0,
            flusher,
            store,
            config,
            metrics: metrics.clone(),
        });
        let lag = Arc::new(LagEngine::new(
            state.store.clone(),
            state.groups.clone(),
            snapshots,
            state.config.lag_refresh_ms(),
            state.config.lag_window_samples(),
        ));
        // A first snapshot before serving, so the HTTP API never starts empty.
        let first = lag.clone();
        tokio::task::spawn_blocking(move || first.refresh()).await?;
        let view = Arc::new(View {
            state: state.clone(),
            lag: lag.clone(),
            metrics,
            serving: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        });
        tracing::info!(
            listen = %local_addr,
            advertised = %format!("{}:{}", state.advertised_host, state.advertised_port),
            data_dir = %opts.data_dir.display(),
            cluster_id = %state.store.cluster_id(),
            fsync_before_ack = state.flusher.is_some(),
            "cairn broker started"
        );

        let (shutdown, shutdown_rx) = watch::channel(false);
        spawn_background(state.clone(), shutdown_rx.clone());
        tokio::spawn(state.groups.clone().run_timers(shutdown_rx.clone()));
        tokio::spawn(lag.run(shutdown_rx.clone()));
        let task = tokio::spawn(accept_loop(listener, state.clone(), shutdown_rx));
        Ok(Broker {
            local_addr,
            shutdown,
            task,
            state,
            view,
        })
    }

    /// What the HTTP listener shows: lag, groups, topics, metrics, health.
    pub fn view(&self) -> Arc<dyn cairn_http::BrokerView> {
        self.view.clone()
    }

    /// Stops accepting, lets connections finish the request they are on, then flushes and closes
    /// every partition so the next start is a clean one.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.view
            .serving
            .store(false, std::sync::atomic::Ordering::Release);
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.store.close()).await??;
        tracing::info!("cairn broker stopped cleanly");
        Ok(())
    }
}

fn spawn_background(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let retention_every =
        Duration::from_millis(state.config.log_retention_check_interval_ms() as u64);
    let flush_every = state
        .config
        .log_flush_interval_ms()
        .map(|ms| Duration::from_millis(ms.max(1) as u64));
    tokio::spawn(async move {
        let mut retention = tokio::time::interval(retention_every);
        retention.tick().await;
        let mut flush = flush_every.map(tokio::time::interval);
        loop {
            let flush_tick = async {
                match flush.as_mut() {
                    Some(f) => {
                        f.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = retention.tick() => {
                    let st = state.clone();
                    let work = move || {
                        let retention = st.store.enforce_retention(now_ms());
                        // Compaction shares the tick: both only touch rolled segments.
                        (retention, st.store.compact(now_ms()))
                    };
                    match tokio::task::spawn_blocking(work).await {
                        Ok((retention, compaction)) => {
                            match retention {
                                Ok(n) if n > 0 => tracing::info!(segments = n, "retention deleted segments"),
                                Ok(_) => {}
                                Err(e) => tracing::warn!("retention failed: {e}"),
                            }
                            match compaction {
                                Ok(n) if n > 0 => tracing::info!(records = n, "compaction removed records"),
                                Ok(_) => tracing::debug!("compaction found nothing to remove"),
                                Err(e) => tracing::warn!("compaction failed: {e}"),
                            }
                        }
                        Err(e) => tracing::warn!("retention task failed: {e}"),
                    }
                }
                _ = flush_tick => {
                    let st = state.clone();
                    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || st.store.sync_all()).await {
                        tracing::warn!("background flush failed: {e}");
                    }
                }
            }
        }
    });
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let guard = state.metrics.connection_opened();
                    let (st, sd) = (state.clone(), shutdown.clone());
                    conns.spawn(async move {
                        connection(sock, peer, st, sd).await;
                        drop(guard);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    // Give in-flight requests a moment to be answered; then drop the rest.
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        conns.abort_all();
    }
}

async fn connection(
    mut sock: TcpStream,
    peer: SocketAddr,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max = state.config.socket_request_max_bytes();
    // Frames are cut out of one growing read buffer: pipelined requests arrive in few reads and
    // each frame is handed on without another copy.
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    loop {
        let frame = loop {
            if rbuf.len() >= 4 {
                let size = i32::from_be_bytes([rbuf[0], rbuf[1], rbuf[2], rbuf[3]]);
                if size < 0 || size as i64 > max {
                    tracing::warn!(%peer, size, max, "request frame size out of bounds; closing connection");
                    return;
                }
                let need = 4 + size as usize;
                if rbuf.len() >= need {
                    let mut f = rbuf.split_to(need);
                    f.advance(4);
                    break f.freeze();
                }
                rbuf.reserve(need - rbuf.len());
            } else {
                rbuf.reserve(64 * 1024);
            }
            let read = tokio::select! {
                _ = shutdown.changed(), if rbuf.is_empty() => return,
                r = sock.read_buf(&mut rbuf) => r,
            };
            match read {
                Ok(0) => {
                    if !rbuf.is_empty() {
                        tracing::debug!(%peer, "connection closed mid-frame");
                    }
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        };
        match handlers::handle(&state, frame, peer).await {
            Ok(Some(resp)) => {
                if sock.write_all(&resp).await.is_err() {
                    return;
                }
            }
            Ok(None) => {} // acks=0 produce: Kafka sends nothing back
            Err(e) => {
                tracing::warn!(%peer, "closing connection: {e:#}");
                return;
            }
        }
    }
}

/// The three fixed fields every request header starts with, readable before knowing its version.
pub(crate) fn peek_header(frame: &Bytes) -> Option<(i16, i16, i32)> {
    if frame.len() < 8 {
        return None;
    }
    let mut b = &frame[..8];
    Some((b.get_i16(), b.get_i16(), b.get_i32()))
}
