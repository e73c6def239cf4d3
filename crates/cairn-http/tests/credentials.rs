//! The HTTP listener through its public API, with a stand-in broker: Basic credentials when the
//! broker asks for them, `/health` always open, and HTTPS.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use cairn_http::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

struct FakeBroker {
    required: bool,
    checks: AtomicUsize,
    /// How long a password check takes (the broker's PBKDF2).
    check_cost: Duration,
}

impl FakeBroker {
    fn new(required: bool) -> Arc<FakeBroker> {
        Arc::new(FakeBroker {
            required,
            checks: AtomicUsize::new(0),
            check_cost: Duration::ZERO,
        })
    }
}

impl BrokerView for FakeBroker {
    fn health(&self) -> Health {
        Health {
            serving: true,
            stores_loaded: true,
            groups_loaded: true,
            lag_snapshot_ms: Some(0),
            version: "test",
        }
    }
    fn groups(&self) -> GroupsPage {
        GroupsPage {
            snapshot_ms: Some(0),
            refresh_ms: 1000,
            groups: Vec::new(),
        }
    }
    fn group(&self, _: &str) -> Option<GroupDetail> {
        None
    }
    fn rebalances(&self, _: &str) -> Option<Vec<Rebalance>> {
        None
    }
    fn topics(&self) -> Vec<TopicInfo> {
        Vec::new()
    }
    fn metrics(&self) -> String {
        "# EOF\n".into()
    }
    fn http_credentials_required(&self) -> bool {
        self.required
    }
    fn check_password(&self, user: &str, password: &str) -> bool {
        self.checks.fetch_add(1, Ordering::SeqCst);
        // Blocking on purpose: a check that runs on the async threads would stall the listener.
        std::thread::sleep(self.check_cost);
        matches!(
            (user, password),
            ("alice", "alice-secret") | ("scram-bob", "bob:secret")
        )
    }
}

async fn start(
    view: Arc<FakeBroker>,
    tls: Option<Arc<rustls::ServerConfig>>,
    options: HttpOptions,
) -> std::net::SocketAddr {
    let server = HttpServer::bind("127.0.0.1:0")
        .await
        .unwrap()
        .with_options(options)
        .with_tls(tls);
    let addr = server.local_addr;
    let slot = ViewSlot::new();
    slot.set(view);
    tokio::spawn(server.serve(slot, std::future::pending()));
    addr
}

struct Answer {
    status: u16,
    head: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

async fn get_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    path: &str,
    creds: Option<(&str, &str)>,
) -> Answer {
    let auth = creds.map_or_else(String::new, |(u, p)| {
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    });
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{auth}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("no answer within 10 s")
        .ok();
    let text = String::from_utf8_lossy(&out).to_string();
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    Answer { status, head }
}

async fn get(addr: std::net::SocketAddr, path: &str, creds: Option<(&str, &str)>) -> Answer {
    get_on(TcpStream::connect(addr).await.unwrap(), path, creds).await
}

const PROTECTED: &[&str] = &[
    "/",
    "/dashboard/app.js",
    "/metrics",
    "/api/groups",
    "/api/topics",
    "/api/groups/g/rebalances",
    "/no/such/page",
];

#[tokio::test]
async fn without_credentials_everything_but_health_is_refused() {
    let addr = start(FakeBroker::new(true), None, HttpOptions::default()).await;
    for path in PROTECTED {
        let a = get(addr, path, None).await;
        assert_eq!(a.status, 401, "{path}");
        assert_eq!(
            a.header("www-authenticate"),
            Some("Basic realm=\"cairn\""),
            "{path}"
        );
    }
    assert_eq!(get(addr, "/health", None).await.status, 200);
    assert_eq!(
        get(addr, "/health", Some(("alice", "wrong"))).await.status,
        200
    );
}

#[tokio::test]
async fn good_credentials_open_everything_and_bad_ones_do_not() {
    let addr = start(FakeBroker::new(true), None, HttpOptions::default()).await;
    for path in [
        "/",
        "/dashboard/app.js",
        "/metrics",
        "/api/groups",
        "/api/topics",
    ] {
        assert_eq!(
            get(addr, path, Some(("alice", "alice-secret")))
                .await
                .status,
            200,
            "{path}"
        );
        // A password holding a colon: only the first one separates the user.
        assert_eq!(
            get(addr, path, Some(("scram-bob", "bob:secret")))
                .await
                .status,
            200,
            "{path}"
        );
    }
    for (u, p) in [
        ("alice", "alice-secreT"),
        ("alice", ""),
        ("", "alice-secret"),
        ("mallory", "alice-secret"),
    ] {
        let a = get(addr, "/api/groups", Some((u, p))).await;
        assert_eq!(a.status, 401, "{u}:{p}");
        assert!(a.header("www-authenticate").is_some());
    }
}

#[tokio::test]
async fn a_broker_without_authentication_asks_for_nothing() {
    let view = FakeBroker::new(false);
    let addr = start(view.clone(), None, HttpOptions::default()).await;
    for path in ["/", "/metrics", "/api/groups", "/health"] {
        assert_eq!(get(addr, path, None).await.status, 200, "{path}");
    }
    assert_eq!(view.checks.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn successes_are_remembered_and_failures_are_not() {
    let view = FakeBroker::new(true);
    let addr = start(view.clone(), None, HttpOptions::default()).await;
    for _ in 0..5 {
        assert_eq!(
            get(addr, "/api/groups", Some(("alice", "alice-secret")))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        view.checks.load(Ordering::SeqCst),
        1,
        "successes re-checked"
    );
    for _ in 0..3 {
        assert_eq!(
            get(addr, "/api/groups", Some(("alice", "nope")))
                .await
                .status,
            401
        );
    }
    assert_eq!(view.checks.load(Ordering::SeqCst), 4, "failures remembered");
    // The remembered success is for that password only.
    assert_eq!(
        get(addr, "/api/groups", Some(("alice", "alice-secret")))
            .await
            .status,
        200
    );
    assert_eq!(view.checks.load(Ordering::SeqCst), 4);
}

/// On a single-threaded runtime, a slow password check must not stop the listener answering.
#[tokio::test(flavor = "current_thread")]
async fn a_slow_password_check_does_not_block_the_listener() {
    let view = Arc::new(FakeBroker {
        required: true,
        checks: AtomicUsize::new(0),
        check_cost: Duration::from_secs(2),
    });
    let addr = start(view, None, HttpOptions::default()).await;
    // Timed from before the slow request: a check run on the runtime's only thread would stop
    // every timer and socket (the test's own included) for its 2 s.
    let t = Instant::now();
    let slow =
        tokio::spawn(
            async move { get(addr, "/api/groups", Some(("alice", "alice-secret"))).await },
        );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(addr, "/health", None).await.status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "/health answered {:?} after a 2 s password check began",
        t.elapsed()
    );
    assert_eq!(slow.await.unwrap().status, 200);
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_slowed_down() {
    let addr = start(FakeBroker::new(true), None, HttpOptions::default()).await;
    let t = Instant::now();
    for _ in 0..4 {
        assert_eq!(
            get(addr, "/metrics", Some(("alice", "x"))).await.status,
            401
        );
    }
    // 100 + 200 + 300 + 400 ms held back.
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "4 failures answered in {:?}",
        t.elapsed()
    );
}

fn tls_pair() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    client: &Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(client.clone())
        .connect(name, tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn https_serves_with_credentials_and_plain_http_gets_nothing() {
    let (server, client) = tls_pair();
    let addr = start(FakeBroker::new(true), Some(server), HttpOptions::default()).await;
    let a = get_on(tls_connect(addr, &client).await, "/health", None).await;
    assert_eq!(a.status, 200);
    let a = get_on(tls_connect(addr, &client).await, "/api/groups", None).await;
    assert_eq!(a.status, 401);
    let a = get_on(
        tls_connect(addr, &client).await,
        "/api/groups",
        Some(("alice", "alice-secret")),
    )
    .await;
    assert_eq!(a.status, 200);

    // Plain HTTP to the TLS port: no HTTP answer, and the connection is closed.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("plain HTTP on the TLS port was not closed")
        .ok();
    assert!(!out.starts_with(b"HTTP/"), "{out:?}");
}

#[tokio::test]
async fn an_unfinished_tls_handshake_is_closed_by_the_read_timeout() {
    let (server, client) = tls_pair();
    let options = HttpOptions {
        read_timeout: Duration::from_millis(300),
        ..HttpOptions::default()
    };
    let addr = start(FakeBroker::new(false), Some(server), options).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Half a ClientHello record header, then nothing.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
    let t = Instant::now();
    for s in [&mut silent, &mut half] {
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an unfinished handshake was kept open");
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    }
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Others are served meanwhile and after.
    let a = get_on(tls_connect(addr, &client).await, "/health", None).await;
    assert_eq!(a.status, 200);
}
