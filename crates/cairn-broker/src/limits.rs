//! Connection limits under Kafka's names: `max.connections` (the acceptor waits for a free slot),
//! `max.connections.per.ip` (+ overrides; an extra connection is closed at once),
//! `queued.max.request.bytes` (a byte budget for buffered requests; a connection that would exceed
//! it stops reading until bytes are released), `connections.max.idle.ms`, and Cairn's own bound on
//! how long one request frame may take to arrive.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_config::BrokerConfig;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::state::now_ms;

/// Bytes a connection may read past the frame it is assembling (the next pipelined frames), and
/// the smallest step by which a frame's buffer grows.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

pub(crate) struct Limits {
    /// One permit per connection (`max.connections`).
    pub total: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    per_ip_max: u32,
    per_ip_overrides: HashMap<IpAddr, u32>,
    /// One permit per buffered request byte. Sized one read chunk (and a size prefix) above the
    /// configured budget so that a single frame of `socket.request.max.bytes` always fits.
    pub queued: Arc<Semaphore>,
    pub queued_budget: u64,
    pub idle: Option<Duration>,
    pub frame_timeout: Duration,
    /// A TLS handshake must finish within this time of the connection being accepted.
    pub tls_handshake: Duration,
    pub log_per_ip: Throttled,
    pub log_total: Throttled,
    pub log_queued: Throttled,
    pub log_slow: Throttled,
    pub log_tls: Throttled,
}

impl Limits {
    pub async fn from_config(config: &BrokerConfig) -> anyhow::Result<Limits> {
        let mut per_ip_overrides = HashMap::new();
        for (host, n) in config.max_connections_per_ip_overrides() {
            let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .with_context(|| {
                        format!("max.connections.per.ip.overrides: cannot resolve host {host:?}")
                    })?
                    .map(|a| a.ip())
                    .collect(),
            };
            for ip in addrs {
                per_ip_overrides.insert(ip.to_canonical(), n);
            }
        }
        let budget = config.queued_max_request_bytes();
        let permits = (budget as usize)
            .saturating_add(READ_CHUNK + 4)
            .min(Semaphore::MAX_PERMITS);
        Ok(Limits {
            total: Arc::new(Semaphore::new(
                config.max_connections().min(Semaphore::MAX_PERMITS),
            )),
            per_ip: Mutex::new(HashMap::new()),
            per_ip_max: config.max_connections_per_ip(),
            per_ip_overrides,
            queued: Arc::new(Semaphore::new(permits)),
            queued_budget: budget,
            idle: config.connections_max_idle_ms().map(Duration::from_millis),
            frame_timeout: Duration::from_millis(config.request_read_timeout_ms()),
            // An idle connection closes after connections.max.idle.ms; a handshake is no exception.
            tls_handshake: Duration::from_millis(
                config
                    .tls_handshake_timeout_ms()
                    .min(config.connections_max_idle_ms().unwrap_or(u64::MAX)),
            ),
            log_per_ip: Throttled::default(),
            log_total: Throttled::default(),
            log_queued: Throttled::default(),
            log_slow: Throttled::default(),
            log_tls: Throttled::default(),
        })
    }

    /// Counts a new connection from `ip`; `Err(limit)` if that IP already has its maximum.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, u32> {
        let ip = ip.to_canonical();
        let max = self
            .per_ip_overrides
            .get(&ip)
            .copied()
            .unwrap_or(self.per_ip_max);
        let mut counts = self.per_ip.lock();
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                counts.remove(&ip);
            }
            return Err(max);
        }
        *n += 1;
        Ok(IpSlot {
            limits: self.clone(),
            ip,
        })
    }
}

/// A connection's place in its IP's count; released when the connection ends.
pub(crate) struct IpSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.per_ip.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Lets one log line through per second for a kind of event that a client can repeat at will, and
/// counts the ones it held back.
#[derive(Default)]
pub(crate) struct Throttled {
    next_ms: AtomicU64,
    held_back: AtomicU64,
}

impl Throttled {
    /// `Some(n)`: log now, mentioning the `n` events not logged since the last line.
    pub fn check(&self) -> Option<u64> {
        let now = now_ms().max(0) as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(next, now + 1000, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(pairs: &[(&str, &str)]) -> Arc<Limits> {
        let cfg =
            BrokerConfig::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Arc::new(rt.block_on(Limits::from_config(&cfg)).unwrap())
    }

    #[test]
    fn per_ip_limit_counts_and_releases() {
        let l = limits(&[
            ("max.connections.per.ip", "2"),
            ("max.connections.per.ip.overrides", "10.0.0.1:0,10.0.0.2:3"),
        ]);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let s1 = l.admit(a).unwrap();
        let _s2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).err(), Some(2));
        drop(s1);
        let _s3 = l.admit(a).unwrap();
        // An IPv4-mapped IPv6 peer is the same address.
        assert!(l.admit("::ffff:127.0.0.1".parse().unwrap()).is_err());
        assert_eq!(l.admit("10.0.0.1".parse().unwrap()).err(), Some(0));
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let _held: Vec<_> = (0..3).map(|_| l.admit(b).unwrap()).collect();
        assert_eq!(l.admit(b).err(), Some(3));
    }

    #[test]
    fn budget_always_fits_one_largest_frame() {
        let l = limits(&[
            ("socket.request.max.bytes", "1000000"),
            ("queued.max.request.bytes", "1000000"),
        ]);
        assert!(l.queued.available_permits() >= 1_000_004 + READ_CHUNK);
    }

    #[test]
    fn throttled_lets_one_line_a_second_through() {
        let t = Throttled::default();
        assert_eq!(t.check(), Some(0));
        assert_eq!(t.check(), None);
        assert_eq!(t.check(), None);
        t.next_ms.store(0, Ordering::Relaxed);
        assert_eq!(t.check(), Some(2));
    }
}
