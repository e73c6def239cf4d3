//! HTTP Basic credentials in front of everything but `/health`, when the broker says
//! authentication is required. The password check is the broker's ([`BrokerView::check_password`]);
//! this module keeps it off the async threads, remembers recent successes so a dashboard polling
//! every second does not run PBKDF2 every second, and slows down an address that keeps failing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::view::BrokerView;
use crate::ViewSlot;

/// How long a successful check is trusted. A changed or removed password still opens the HTTP
/// endpoints for at most this long.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Bounds the cache; past it, expired entries go, and if none had expired, all of them.
const CACHE_MAX: usize = 1024;
/// Failures from one address are remembered this long.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The answer to a failed check is held back this long per recent failure from that address...
const FAILURE_DELAY_STEP: Duration = Duration::from_millis(100);
/// ...up to this much.
const FAILURE_DELAY_MAX: Duration = Duration::from_secs(2);
/// At most one log line about failed checks per this long; the others are counted in it.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Bounds the addresses remembered for failures.
const FAILURE_ADDRS_MAX: usize = 4096;
/// Uncached checks running at once: a flood of guesses from many connections must not take every
/// blocking thread (and core) for PBKDF2.
const CONCURRENT_CHECKS: usize = 4;

/// The address of the peer of the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub(crate) IpAddr);

#[derive(Default)]
struct Failures {
    by_addr: HashMap<IpAddr, (u32, Instant)>,
    last_log: Option<Instant>,
    unlogged: u64,
}

pub(crate) struct BasicAuth {
    slot: ViewSlot,
    /// (user, SHA-256 of the password) -> trusted until. The password itself is never kept.
    cache: Mutex<HashMap<(String, [u8; 32]), Instant>>,
    failures: Mutex<Failures>,
    checks: tokio::sync::Semaphore,
}

impl BasicAuth {
    pub(crate) fn new(slot: ViewSlot) -> BasicAuth {
        BasicAuth {
            slot,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(Failures::default()),
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
        }
    }

    fn cached(&self, key: &(String, [u8; 32])) -> bool {
        let mut cache = self.cache.lock();
        match cache.get(key) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                cache.remove(key);
                false
            }
            None => false,
        }
    }

    fn remember(&self, key: (String, [u8; 32])) {
        let now = Instant::now();
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, until| *until > now);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, now + CACHE_TTL);
    }

    /// Notes a failure and says how long to hold back its answer.
    fn failed(&self, peer: Option<IpAddr>, user: &str) -> Duration {
        let now = Instant::now();
        let mut f = self.failures.lock();
        let count = match peer {
            Some(addr) => {
                if f.by_addr.len() >= FAILURE_ADDRS_MAX {
                    f.by_addr
                        .retain(|_, (_, last)| now.duration_since(*last) < FAILURE_WINDOW);
                    if f.by_addr.len() >= FAILURE_ADDRS_MAX {
                        f.by_addr.clear();
                    }
                }
                let e = f.by_addr.entry(addr).or_insert((0, now));
                if now.duration_since(e.1) >= FAILURE_WINDOW {
                    e.0 = 0;
                }
                e.0 = e.0.saturating_add(1);
                e.1 = now;
                e.0
            }
            None => 1,
        };
        let due = f
            .last_log
            .is_none_or(|last| now.duration_since(last) >= LOG_EVERY);
        if due {
            let suppressed = std::mem::take(&mut f.unlogged);
            f.last_log = Some(now);
            let peer = peer.map_or_else(|| "?".to_string(), |a| a.to_string());
            tracing::warn!(
                peer = %peer,
                user = %user,
                recent_failures_from_peer = count,
                suppressed,
                "HTTP authentication failed"
            );
        } else {
            f.unlogged += 1;
        }
        FAILURE_DELAY_STEP
            .saturating_mul(count)
            .min(FAILURE_DELAY_MAX)
    }

    /// Whether `user`/`password` are good, asking the broker at most once per [`CACHE_TTL`].
    async fn check(&self, view: Arc<dyn BrokerView>, user: String, password: String) -> bool {
        let key = (user, Sha256::digest(password.as_bytes()).into());
        if self.cached(&key) {
            return true;
        }
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        let name = key.0.clone();
        // The broker's check may run PBKDF2 for milliseconds: not on the I/O threads.
        let ok = tokio::task::spawn_blocking(move || view.check_password(&name, &password))
            .await
            .unwrap_or(false);
        if ok {
            self.remember(key);
        }
        ok
    }
}

/// `Authorization: Basic base64(user:password)`, as user and password.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn challenge() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cairn\""),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        "{\"error\":\"authentication required\"}",
    )
        .into_response()
}

pub(crate) async fn require_credentials(
    State(auth): State<Arc<BasicAuth>>,
    req: Request,
    next: Next,
) -> Response {
    // Liveness probes carry no credentials, and the health answer shows nothing private.
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    // Before the broker is up nothing says whether credentials are needed; every data route then
    // answers 503 and the dashboard's static files show nothing.
    let Some(view) = auth.slot.get() else {
        return next.run(req).await;
    };
    if !view.http_credentials_required() {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    let Some((user, password)) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(basic_credentials)
    else {
        return challenge();
    };
    if auth.check(view, user.clone(), password).await {
        return next.run(req).await;
    }
    let delay = auth.failed(peer, &user);
    tokio::time::sleep(delay).await;
    challenge()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_parsed_like_browsers_send_them() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let h = |s: String| HeaderValue::from_str(&s).unwrap();
        assert_eq!(
            basic_credentials(&h(format!("Basic {}", enc("alice:se:cret")))),
            Some(("alice".into(), "se:cret".into()))
        );
        assert_eq!(
            basic_credentials(&h(format!("basic {}", enc("bob:")))),
            Some(("bob".into(), "".into()))
        );
        assert_eq!(
            basic_credentials(&h(format!("Basic {}", enc("nocolon")))),
            None
        );
        assert_eq!(
            basic_credentials(&h(format!("Bearer {}", enc("a:b")))),
            None
        );
        assert_eq!(basic_credentials(&h("Basic !!!".into())), None);
        assert_eq!(basic_credentials(&h("Basic".into())), None);
    }

    #[test]
    fn failures_from_one_address_are_slowed_down_more_and_more() {
        let auth = BasicAuth::new(ViewSlot::new());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = auth.failed(Some(a), "x");
        let second = auth.failed(Some(a), "x");
        assert!(second > first);
        for _ in 0..100 {
            auth.failed(Some(a), "x");
        }
        assert_eq!(auth.failed(Some(a), "x"), FAILURE_DELAY_MAX);
        // Another address is not slowed down by the first one's failures.
        assert_eq!(auth.failed(Some(b), "x"), first);
    }
}
