//! Listener, connections and framing. A connection reads one size-prefixed frame at a time and
//! answers it before reading the next, as Kafka does (a connection is muted while its request is
//! in flight), which keeps per-partition ordering of pipelined produce requests trivially right.
//!
//! Bounds (see `limits.rs`): a frame's buffer grows with the bytes that arrive, never by the size
//! its prefix claims; buffered bytes draw on the `queued.max.request.bytes` budget; a frame must
//! arrive whole within `cairn.request.read.timeout.ms` of its first byte; a connection with no
//! bytes in either direction for `connections.max.idle.ms` is closed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use anyhow::Context;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use cairn_config::BrokerConfig;
use cairn_log::Store;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;

use crate::flusher::Flusher;
use crate::groups::Groups;
use crate::handlers;
use crate::lag::{LagEngine, SnapshotCell};
use crate::limits::{Limits, READ_CHUNK};
use crate::metrics::Metrics;
use crate::security::{tls, ListenerCtx, Security, Session};
use crate::state::{log_config_for, now_ms, BrokerState};
use crate::view::View;

pub struct BrokerOptions {
    /// `--listen`: Kafka's listener list or a bare `host:port`; `None` uses `listeners`.
    pub listen: Option<String>,
    pub data_dir: PathBuf,
    pub config: BrokerConfig,
}

/// A running broker. Dropping it does not stop it; call [`Broker::shutdown`].
pub struct Broker {
    /// The first listener's address.
    pub local_addr: SocketAddr,
    /// Every listener's name and bound address.
    pub listeners: Vec<(String, SocketAddr)>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    state: Arc<BrokerState>,
    view: Arc<View>,
}

impl Broker {
    pub async fn start(opts: BrokerOptions) -> anyhow::Result<Broker> {
        let config = Arc::new(opts.config);
        let specs = config.listeners(opts.listen.as_deref())?;
        let advertised = config.advertised_listeners()?;
        for a in &advertised {
            if !specs.iter().any(|s| s.name == a.name) {
                anyhow::bail!(
                    "advertised.listeners names {} which is not one of the listeners",
                    a.name
                );
            }
        }
        let mut bound = Vec::new();
        for spec in &specs {
            let addr = spec.bind_address();
            let l = TcpListener::bind(&addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (listener {})", spec.name))?;
            let local = l.local_addr()?;
            // Unless advertised.listeners says otherwise, clients are told the bound address.
            let adv = advertised
                .iter()
                .find(|a| a.name == spec.name)
                .map(|a| (a.host.clone(), a.port as i32))
                .unwrap_or_else(|| {
                    let host =
                        if spec.host.is_empty() || spec.host == "0.0.0.0" || spec.host == "::" {
                            local.ip().to_string()
                        } else {
                            spec.host.clone()
                        };
                    (host, local.port() as i32)
                });
            let ctx = Arc::new(ListenerCtx::new(&config, spec, adv)?);
            bound.push((l, local, ctx));
        }
        let local_addr = bound[0].1;
        let listener_ctxs: Vec<Arc<ListenerCtx>> = bound.iter().map(|b| b.2.clone()).collect();
        let security = Arc::new(Security::load(
            &config,
            opts.data_dir.clone(),
            &listener_ctxs,
        )?);
        let dynamic = Arc::new(crate::dynamic_config::DynamicConfigs::load(
            config.clone(),
            &opts.data_dir,
        )?);
        let quotas = Arc::new(crate::quotas::ClientQuotas::load(&config, &opts.data_dir)?);
        let cfg_for_store = dynamic.clone();
        let data_dir = opts.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || {
            Store::open(
                &data_dir,
                // Read at every derivation, so a dynamic broker default reaches the partitions.
                Arc::new(move |t: &cairn_log::TopicMeta| {
                    log_config_for(&cfg_for_store.current(), t)
                }),
            )
        })
        .await?
        .with_context(|| format!("cannot open data directory {}", opts.data_dir.display()))?;

        let limits = Arc::new(Limits::from_config(&config).await?);
        let flusher = (config.log_flush_interval_messages() <= 1).then(Flusher::start);
        let store = Arc::new(store);
        let snapshots = Arc::new(SnapshotCell::default());
        let metrics = Arc::new(Metrics::new(snapshots.clone()));
        let groups = Arc::new(Groups::new(&config, store.clone(), metrics.clone()));
        let started = std::time::Instant::now();
        let loader = groups.clone();
        let loaded = tokio::task::spawn_blocking(move || loader.load()).await?;
        if loaded > 0 {
            tracing::info!(
                records = loaded,
                ms = started.elapsed().as_millis() as u64,
                "group coordinator loaded"
            );
        }
        let txns = Arc::new(crate::txns::Txns::new(
            &config,
            store.clone(),
            groups.clone(),
            metrics.clone(),
        ));
        let loader = txns.clone();
        let loaded = tokio::task::spawn_blocking(move || loader.load()).await?;
        if loaded > 0 {
            tracing::info!(records = loaded, "transaction coordinator loaded");
        }
        let state = Arc::new(BrokerState {
            groups,
            txns,
            node_id: config.node_id(),
            security,
            appended: watch::channel(0).0,
            flusher,
            store,
            config,
            metrics: metrics.clone(),
            topics: Default::default(),
            dynamic,
            quotas,
        });
        let weak = Arc::downgrade(&state);
        state.txns.set_on_marker(Arc::new(move || {
            if let Some(s) = weak.upgrade() {
                s.notify_append();
            }
        }));
        let lag = Arc::new(LagEngine::new(
            state.store.clone(),
            state.groups.clone(),
            snapshots,
            state.config.lag_refresh_ms(),
            state.config.lag_window_samples(),
        ));
        // Kafka clients are served from here on; the HTTP API (started by the caller once this
        // returns) waits for a first lag snapshot so it never starts empty.
        let (shutdown, shutdown_rx) = watch::channel(false);
        spawn_background(state.clone(), shutdown_rx.clone());
        tokio::spawn(state.groups.clone().run_timers(shutdown_rx.clone()));
        tokio::spawn(state.txns.clone().run_until(shutdown_rx.clone()));
        let mut tasks = Vec::new();
        let mut listeners = Vec::new();
        for (l, local, ctx) in bound {
            tracing::info!(
                name = %ctx.name,
                addr = %local,
                protocol = ctx.protocol.name(),
                advertised = %format!("{}:{}", ctx.advertised_host, ctx.advertised_port),
                "cairn listener bound"
            );
            listeners.push((ctx.name.clone(), local));
            tasks.push(tokio::spawn(accept_loop(
                l,
                ctx,
                state.clone(),
                limits.clone(),
                shutdown_rx.clone(),
            )));
        }
        let first = lag.clone();
        tokio::task::spawn_blocking(move || first.refresh()).await?;
        tokio::spawn(lag.clone().run(shutdown_rx));
        let view = Arc::new(View {
            state: state.clone(),
            lag: lag.clone(),
            metrics,
            serving: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        });
        tracing::info!(
            listen = %local_addr,
            data_dir = %opts.data_dir.display(),
            cluster_id = %state.store.cluster_id(),
            fsync_before_ack = state.flusher.is_some(),
            "cairn broker started"
        );

        Ok(Broker {
            local_addr,
            listeners,
            shutdown,
            tasks,
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
        for t in self.tasks {
            let _ = t.await;
        }
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
    ctx: Arc<ListenerCtx>,
    state: Arc<BrokerState>,
    limits: Arc<Limits>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    'accept: loop {
        // At max.connections the acceptor waits for a slot, as Kafka's does; new connections
        // wait in the kernel's backlog meanwhile.
        if limits.total.available_permits() == 0 {
            if let Some(held_back) = limits.log_total.check() {
                tracing::warn!(
                    max_connections = state.config.max_connections(),
                    held_back,
                    "max.connections reached; not accepting until a connection closes"
                );
            }
        }
        let slot = loop {
            tokio::select! {
                _ = shutdown.changed() => break 'accept,
                p = limits.total.clone().acquire_owned() => match p {
                    Ok(p) => break p,
                    Err(_) => break 'accept,
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        };
        let (sock, peer) = loop {
            tokio::select! {
                _ = shutdown.changed() => break 'accept,
                accepted = listener.accept() => match accepted {
                    Ok(a) => break a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        };
        // Over its IP's limit: closed at once, as Kafka does.
        let ip_slot = match limits.admit(peer.ip()) {
            Ok(s) => s,
            Err(max) => {
                if let Some(held_back) = limits.log_per_ip.check() {
                    tracing::warn!(
                        %peer,
                        max,
                        held_back,
                        "connection refused: max.connections.per.ip reached for this address"
                    );
                }
                drop(sock);
                continue;
            }
        };
        // Over its IP's connection_creation_rate: held for the wait, then closed unserved, as
        // Kafka does, so a client reconnecting in a loop is slowed rather than spun.
        let wait = state.quotas.connection_wait(peer.ip());
        if wait > 0 {
            tracing::debug!(%peer, wait_ms = wait, "connection refused: connection_creation_rate reached for this address");
            state.metrics.quota_throttled("connection", wait);
            // It keeps its connection slots while held, as in Kafka: a flood of refused
            // connections stays within max.connections.
            conns.spawn(async move {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                drop((sock, ip_slot, slot));
            });
            continue;
        }
        let _ = sock.set_nodelay(true);
        let guard = state.metrics.connection_opened();
        let (st, lim, sd, lc) = (state.clone(), limits.clone(), shutdown.clone(), ctx.clone());
        conns.spawn(async move {
            connection(sock, peer, lc, st, &lim, sd).await;
            drop((guard, ip_slot, slot));
        });
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

/// Why a connection stopped reading.
#[derive(Clone, Copy)]
enum Stop {
    /// The peer closed, the socket failed or the broker is shutting down.
    Quiet,
    Idle,
    SlowFrame,
}

async fn connection(
    sock: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerCtx>,
    state: Arc<BrokerState>,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(acceptor) = listener.tls.clone() else {
        let session = Session::new(listener, peer, None);
        return serve(sock, session, state, limits, shutdown).await;
    };
    // A handshake that never finishes must not hold its connection slot for long.
    let handshake = tokio::time::timeout(limits.tls_handshake, acceptor.accept(sock));
    let tls = tokio::select! {
        _ = shutdown.changed() => return,
        r = handshake => r,
    };
    match tls {
        Ok(Ok(tls)) => {
            // With a client certificate, its subject is the principal (SASL replaces it).
            let principal = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| tls::principal_from_cert(c));
            let session = Session::new(listener, peer, principal);
            serve(tls, session, state, limits, shutdown).await
        }
        Ok(Err(e)) => {
            if let Some(held_back) = limits.log_tls.check() {
                tracing::warn!(%peer, listener = %listener.name, held_back, "TLS handshake failed: {e}");
            }
        }
        Err(_) => {
            if let Some(held_back) = limits.log_tls.check() {
                tracing::warn!(%peer, listener = %listener.name, held_back, timeout_ms = limits.tls_handshake.as_millis() as u64, "TLS handshake not complete in time; closing connection");
            }
        }
    }
}

/// A connection's byte stream: plain TCP or TLS over it. Between frames the connection waits
/// for readiness without holding a buffer, which needs a non-blocking read besides the async one.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    /// Resolves when a read may make progress (spurious wake-ups are fine).
    fn ready(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
    /// Reads what is available now, at most `max` bytes, without waiting.
    fn try_read_into(&mut self, buf: &mut BytesMut, max: usize) -> std::io::Result<usize>;
}

impl Transport for TcpStream {
    async fn ready(&mut self) -> std::io::Result<()> {
        self.readable().await
    }
    fn try_read_into(&mut self, buf: &mut BytesMut, max: usize) -> std::io::Result<usize> {
        self.try_read_buf(&mut buf.limit(max))
    }
}

impl Transport for tokio_rustls::server::TlsStream<TcpStream> {
    async fn ready(&mut self) -> std::io::Result<()> {
        let (tcp, conn) = self.get_mut();
        // Decrypted bytes already buffered do not make the socket readable again.
        match conn.process_new_packets() {
            Ok(state) if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => {
                tcp.readable().await
            }
            _ => Ok(()),
        }
    }
    fn try_read_into(&mut self, buf: &mut BytesMut, max: usize) -> std::io::Result<usize> {
        use std::task::{Context, Poll, Waker};
        // One poll with a no-op waker: a pending read leaves nothing behind, and the caller
        // waits on `ready` (which registers a real waker) before trying again.
        let start = buf.len();
        buf.resize(start + max, 0);
        let mut rb = tokio::io::ReadBuf::new(&mut buf[start..]);
        let mut cx = Context::from_waker(Waker::noop());
        let r = std::pin::Pin::new(&mut *self).poll_read(&mut cx, &mut rb);
        let n = rb.filled().len();
        buf.truncate(start + n);
        match r {
            Poll::Ready(Ok(())) => Ok(n),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }
}

async fn serve<S: Transport>(
    mut sock: S,
    mut session: Session,
    state: Arc<BrokerState>,
    limits: &Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = session.peer;
    let max = state.config.socket_request_max_bytes();
    let max_unauthenticated = state.security.max_unauthenticated_frame.min(max);
    // Frames are cut out of one read buffer: pipelined requests arrive in few reads and each frame
    // is handed on without another copy. `held` is this connection's share of the
    // queued.max.request.bytes budget, covering every byte the buffer may hold.
    let mut rbuf = BytesMut::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut last_io = Instant::now();
    let far = || Instant::now() + Duration::from_secs(365 * 86_400);
    loop {
        // A frame starts with its first byte; leftovers of a pipelined read start it now.
        let mut frame_start = (!rbuf.is_empty()).then(Instant::now);
        let frame = loop {
            let need = if rbuf.len() >= 4 {
                let size = i32::from_be_bytes([rbuf[0], rbuf[1], rbuf[2], rbuf[3]]);
                // Before authentication only the small SASL exchange may arrive (Kafka's
                // sasl.server.max.receive.size).
                let max = if session.authenticated() {
                    max
                } else {
                    max_unauthenticated
                };
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
                need
            } else {
                4
            };
            let idle_at = limits.idle.map(|d| last_io + d);
            let (deadline, stop) = match frame_start {
                None => (idle_at.unwrap_or_else(far), Stop::Idle),
                Some(t) => {
                    let cut = t + limits.frame_timeout;
                    match idle_at {
                        Some(i) if i < cut => (i, Stop::Idle),
                        _ => (cut, Stop::SlowFrame),
                    }
                }
            };
            let timer = tokio::time::sleep_until(deadline);
            tokio::pin!(timer);
            let between_frames = rbuf.is_empty();
            if between_frames {
                // Between frames a connection holds neither budget nor (once it has to wait) a
                // buffer, so idle connections cost no request memory.
                let now_ready = tokio::select! {
                    biased;
                    r = sock.ready() => Some(r),
                    _ = std::future::ready(()) => None,
                };
                let ready = match now_ready {
                    Some(r) => r.map_err(|_| Stop::Quiet),
                    None => {
                        rbuf = BytesMut::new();
                        tokio::select! {
                            _ = shutdown.changed() => Err(Stop::Quiet),
                            _ = &mut timer => Err(stop),
                            r = sock.ready() => r.map_err(|_| Stop::Quiet),
                        }
                    }
                };
                if let Err(why) = ready {
                    return closing(peer, why, limits);
                }
            }
            // Grow by what may arrive: a chunk (which also reads ahead into pipelined frames), or
            // up to doubling what is already here for a large frame, so a claimed size costs
            // nothing until its bytes come.
            let remaining = need - rbuf.len();
            let want = remaining.min(rbuf.len()).max(READ_CHUNK);
            let have = held.as_ref().map_or(0, |p| p.num_permits());
            if rbuf.len() + want > have {
                let more = (rbuf.len() + want - have) as u32;
                let permit = match limits.queued.clone().try_acquire_many_owned(more) {
                    Ok(p) => p,
                    Err(_) => {
                        if let Some(held_back) = limits.log_queued.check() {
                            tracing::warn!(
                                budget = limits.queued_budget,
                                held_back,
                                "queued.max.request.bytes reached; connections wait before reading more"
                            );
                        }
                        let got = tokio::select! {
                            _ = shutdown.changed(), if between_frames => Err(Stop::Quiet),
                            _ = &mut timer => Err(stop),
                            p = limits.queued.clone().acquire_many_owned(more) => p.map_err(|_| Stop::Quiet),
                        };
                        match got {
                            Ok(p) => p,
                            Err(why) => return closing(peer, why, limits),
                        }
                    }
                };
                match held.as_mut() {
                    Some(h) => h.merge(permit),
                    None => held = Some(permit),
                }
            }
            rbuf.reserve(want);
            let read = if between_frames {
                // Readiness can be stale: only bytes that really arrive start a frame.
                match sock.try_read_into(&mut rbuf, want) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        release_beyond(&mut held, 0);
                        continue;
                    }
                    r => r,
                }
            } else {
                let mut limited = (&mut sock).take(want as u64);
                tokio::select! {
                    _ = &mut timer => return closing(peer, stop, limits),
                    r = limited.read_buf(&mut rbuf) => r,
                }
            };
            match read {
                Ok(0) => {
                    if !rbuf.is_empty() {
                        tracing::debug!(%peer, "connection closed mid-frame");
                    }
                    return;
                }
                Ok(_) => {
                    last_io = Instant::now();
                    frame_start.get_or_insert(last_io);
                }
                Err(_) => return,
            }
        };
        let handled = handlers::handle(&state, frame, &mut session).await;
        // The request's bytes go back to the budget once it is handled; what stays buffered (the
        // start of the next pipelined frame) stays counted.
        release_beyond(&mut held, rbuf.len());
        match handled {
            Ok(Some(resp)) => {
                // TLS buffers what it encrypts: the flush puts it on the wire.
                if sock.write_all(&resp).await.is_err() || sock.flush().await.is_err() {
                    return;
                }
                if session.close_after_reply {
                    return;
                }
            }
            Ok(None) => {} // acks=0 produce: Kafka sends nothing back
            Err(e) => {
                tracing::warn!(%peer, "closing connection: {e:#}");
                return;
            }
        }
        if let Some(until) = session.mute_until.take() {
            // A quota throttled this client: its next request waits, as in Kafka.
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
        last_io = Instant::now();
    }
}

fn release_beyond(held: &mut Option<OwnedSemaphorePermit>, keep: usize) {
    if let Some(h) = held.as_mut() {
        let n = h.num_permits();
        if n > keep {
            drop(h.split(n - keep));
        }
        if keep == 0 {
            *held = None;
        }
    }
}

fn closing(peer: SocketAddr, why: Stop, limits: &Limits) {
    match why {
        Stop::Quiet => {}
        // Kafka closes idle connections silently too; clients reconnect when they need to.
        Stop::Idle => tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)"),
        Stop::SlowFrame => {
            if let Some(held_back) = limits.log_slow.check() {
                tracing::warn!(
                    %peer,
                    timeout_ms = limits.frame_timeout.as_millis() as u64,
                    held_back,
                    "request frame not complete in time (cairn.request.read.timeout.ms); closing connection"
                );
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
