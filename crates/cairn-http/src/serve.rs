//! The HTTP/1 accept loop with the bounds a listener reachable from a browser needs: a header
//! read timeout (slow headers, and the longest an idle keep-alive connection waits for its next
//! request), an idle timeout (no bytes either way: a trickled body, a client that stops reading),
//! a Host check against DNS rebinding, and optionally TLS (with the header read timeout bounding
//! the handshake too).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How the listener guards itself.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Host names answered besides `localhost`, IP literals and the host given to `bind`; `*`
    /// answers any.
    pub allowed_hosts: Vec<String>,
    /// Request headers must be complete this long after the connection is ready for a request.
    pub read_timeout: Duration,
    /// A connection with no bytes moving either way for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> HttpOptions {
        HttpOptions {
            allowed_hosts: Vec::new(),
            read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Which Host headers are answered. DNS rebinding needs a browser to send the attacker's host
/// name, so what is refused is any name not configured. An IP literal cannot be rebound (the
/// browser's origin is then that address), so every IP literal is answered, as is `localhost`.
#[derive(Clone, Debug)]
pub(crate) struct HostCheck {
    any: bool,
    names: Vec<String>,
}

impl HostCheck {
    pub(crate) fn new(extra: &[String]) -> HostCheck {
        let mut names = vec!["localhost".to_string()];
        let mut any = false;
        for h in extra {
            let h = h.trim();
            if h == "*" {
                any = true;
            } else if !h.is_empty() {
                names.push(host_name(h).to_ascii_lowercase());
            }
        }
        HostCheck { any, names }
    }

    pub(crate) fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let name = host_name(host.trim());
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.contains(&name)
    }
}

/// `name`, `name:port`, `[v6]` or `[v6]:port` without the port and brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        // More than one colon and no brackets: a bare IPv6 address, keep it whole.
        Some((h, _)) if !h.contains(':') => h,
        _ => host,
    }
}

pub(crate) async fn check_host(
    State(check): State<Arc<HostCheck>>,
    req: Request,
    next: Next,
) -> Response {
    // Requests without a Host (HTTP/1.0 tools) do not come from a browser, so they cannot be a
    // rebinding attack.
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{0}").to_string())
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if !check.allows(&h) => (
            StatusCode::MISDIRECTED_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "unknown Host; add it to cairn.http.allowed.hosts\n",
        )
            .into_response(),
        _ => next.run(req).await,
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    opts: HttpOptions,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    conns.spawn(accepted_connection(
                        sock,
                        peer,
                        app.clone(),
                        opts.clone(),
                        tls.clone(),
                        stop_rx.clone(),
                    ));
                }
                Err(e) => {
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        conns.abort_all();
    }
    Ok(())
}

async fn accepted_connection(
    sock: TcpStream,
    peer: SocketAddr,
    app: Router,
    opts: HttpOptions,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
) {
    // Failed credentials are slowed down per address, so requests carry theirs.
    let app = app.layer(axum::Extension(crate::auth::Peer(peer.ip())));
    let Some(acceptor) = tls else {
        return connection(sock, app, opts, stop).await;
    };
    // A client that never finishes its handshake is bounded like one that never sends headers.
    match tokio::time::timeout(opts.read_timeout, acceptor.accept(sock)).await {
        Ok(Ok(stream)) => connection(stream, app, opts, stop).await,
        Ok(Err(e)) => tracing::debug!(peer = %peer, "HTTP TLS handshake failed: {e}"),
        Err(_) => tracing::debug!(peer = %peer, "HTTP TLS handshake timed out"),
    }
}

async fn connection<S>(sock: S, app: Router, opts: HttpOptions, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let base = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Watched {
        inner: sock,
        base,
        last: last.clone(),
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(opts.read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let idle_at =
            base + Duration::from_millis(last.load(Ordering::Relaxed)) + opts.idle_timeout;
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep_until(idle_at) => {
                let now_idle = base + Duration::from_millis(last.load(Ordering::Relaxed)) + opts.idle_timeout;
                if Instant::now() >= now_idle {
                    tracing::debug!("closing idle HTTP connection");
                    return;
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A socket that notes when bytes last moved, for the idle timeout.
struct Watched<S> {
    inner: S,
    base: Instant,
    last: Arc<AtomicU64>,
}

impl<S> Watched<S> {
    fn touch(&self) {
        self.last
            .store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client that asks for a large answer and stops reading: no bytes move, so the idle
    /// timeout closes the connection before the answer is through.
    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off() {
        const BODY: usize = 64 << 20;
        let app = Router::new().route("/big", axum::routing::get(|| async { vec![b'x'; BODY] }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let opts = HttpOptions {
            idle_timeout: Duration::from_millis(300),
            ..HttpOptions::default()
        };
        tokio::spawn(serve(listener, app, opts, None, std::future::pending()));
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        let read_all = async {
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read_all)
            .await
            .expect("the stalled connection was never closed");
        assert!(
            got < BODY,
            "the whole answer arrived ({got} bytes): nothing was cut"
        );
    }

    #[test]
    fn host_check_answers_loopback_ips_and_configured_names() {
        let c = HostCheck::new(&[]);
        for ok in [
            "127.0.0.1",
            "127.0.0.1:9644",
            "localhost",
            "LOCALHOST:9644",
            "[::1]",
            "[::1]:9644",
            "::1",
            "10.1.2.3:9644",
            "localhost.",
        ] {
            assert!(c.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9644",
            "localhost.evil.example",
            "",
            "127.0.0.1.evil.example",
        ] {
            assert!(!c.allows(bad), "{bad}");
        }
        // The listen address as given to bind is one of the names.
        let c = HostCheck::new(&[
            "Broker.Example:9644".into(),
            " ".into(),
            "0.0.0.0:9644".into(),
        ]);
        assert!(c.allows("broker.example"));
        assert!(c.allows("broker.example:80"));
        assert!(!c.allows("other.example"));
        assert!(HostCheck::new(&["*".into()]).allows("anything.example"));
    }
}
