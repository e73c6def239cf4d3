//! Which quota applies to a request and how long its client must wait: Kafka's default quota
//! callback and `ClientQuotaManager`, without clocks or I/O (the caller passes the time).
//!
//! A user/client-id pair is matched against the configured entities in Kafka's order of
//! precedence, most specific first:
//!
//! 1. user and client id;  2. user and the default client id;  3. user;
//! 4. the default user and client id;  5. the default user and default client id;
//! 6. the default user;  7. client id;  8. the default client id.
//!
//! The entity that matches also decides who shares the measured rate: a user-and-client quota
//! is measured per pair, a user quota across all that user's clients, a client-id quota across
//! all users of that client id. Each kind (produce bytes, fetch bytes, request time) is looked up
//! on its own key, so an entity with only a consumer quota does not shadow a producer quota.

use std::collections::HashMap;

use crate::rate::{Rate, WindowConfig};
use crate::{Entity, EntityType, Quotas};

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Bytes of produce requests.
    Produce,
    /// Bytes of fetch responses.
    Fetch,
    /// Percent of one handler's time (value recorded: percent-seconds).
    Request,
    /// Connections an IP address opens, per IP (its own entity type, not user or client id).
    Connection,
}

impl QuotaKind {
    pub const ALL: [QuotaKind; 3] = [QuotaKind::Produce, QuotaKind::Fetch, QuotaKind::Request];

    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => crate::PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => crate::CONSUMER_BYTE_RATE,
            QuotaKind::Request => crate::REQUEST_PERCENTAGE,
            QuotaKind::Connection => crate::CONNECTION_CREATION_RATE,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which part of an entity a lookup names: absent, the default, or a name.
type Part = Option<Option<String>>;

/// The quotas of one kind, by (user part, client-id part).
#[derive(Default)]
struct Table {
    bounds: HashMap<(Part, Part), f64>,
}

impl Table {
    fn get(&self, user: Part, client: Part) -> Option<f64> {
        self.bounds.get(&(user, client)).copied()
    }
    fn has(&self, user: Part, client: Part) -> bool {
        self.bounds.contains_key(&(user, client))
    }
}

struct Sensor {
    rate: Rate,
    last_used: i64,
}

/// Sensors idle this long are dropped (Kafka expires quota sensors after an hour).
const SENSOR_IDLE_MS: i64 = 3_600_000;
/// More sensors than this and the least recently used quarter is dropped: a client cycling
/// through client ids under a default quota must not grow the broker's memory without bound.
const MAX_SENSORS: usize = 100_000;

pub struct QuotaManager {
    cfg: WindowConfig,
    /// Per kind; the connection table is keyed by (absent, IP part).
    tables: [Table; 4],
    /// Keyed by kind and the (user, client id) tags the matching entity decides.
    sensors: HashMap<(QuotaKind, String, String), Sensor>,
    last_sweep: i64,
}

fn user_part(name: &str) -> Part {
    Some(Some(name.to_owned()))
}
const DEFAULT: Part = Some(None);
const ABSENT: Part = None;

impl QuotaManager {
    pub fn new(cfg: WindowConfig) -> QuotaManager {
        QuotaManager {
            cfg,
            tables: Default::default(),
            sensors: HashMap::new(),
            last_sweep: 0,
        }
    }

    /// Installs a new set of quotas; measured rates carry over.
    pub fn set_quotas(&mut self, quotas: &Quotas) {
        let mut tables: [Table; 4] = Default::default();
        let part = |e: &Entity, t| e.get(t).map(|n: Option<&str>| n.map(str::to_owned));
        for (entity, values) in quotas.entries() {
            if let Some(ip) = part(entity, EntityType::Ip) {
                if let Some(v) = values.get(QuotaKind::Connection.key()) {
                    tables[QuotaKind::Connection.index()]
                        .bounds
                        .insert((ABSENT, Some(ip)), *v);
                }
                continue;
            }
            let key = (
                part(entity, EntityType::User),
                part(entity, EntityType::ClientId),
            );
            for kind in QuotaKind::ALL {
                if let Some(v) = values.get(kind.key()) {
                    tables[kind.index()].bounds.insert(key.clone(), *v);
                }
            }
        }
        self.tables = tables;
    }

    /// Whether any quota of this kind is configured: without one nothing is measured.
    pub fn enabled(&self, kind: QuotaKind) -> bool {
        !self.tables[kind.index()].bounds.is_empty()
    }

    /// The sensor tags for a user and client id, by the matching entity (Kafka's
    /// `quotaMetricTags`). An IP is measured on its own, under its quota or the default's.
    fn tags(&self, kind: QuotaKind, user: &str, client: &str) -> (String, String) {
        if kind == QuotaKind::Connection {
            return (user.to_owned(), String::new());
        }
        let t = &self.tables[kind.index()];
        let (u, c) = (user_part(user), user_part(client));
        let pair = (user.to_owned(), client.to_owned());
        if t.has(u.clone(), c.clone()) || t.has(u.clone(), DEFAULT) {
            pair
        } else if t.has(u, ABSENT) {
            (user.to_owned(), String::new())
        } else if t.has(DEFAULT, c) || t.has(DEFAULT, DEFAULT) {
            pair
        } else if t.has(DEFAULT, ABSENT) {
            (user.to_owned(), String::new())
        } else {
            (String::new(), client.to_owned())
        }
    }

    /// The bound for a set of tags (Kafka's `quotaLimit`).
    fn bound(&self, kind: QuotaKind, user: &str, client: &str) -> Option<f64> {
        let t = &self.tables[kind.index()];
        if kind == QuotaKind::Connection {
            return t
                .get(ABSENT, user_part(user))
                .or_else(|| t.get(ABSENT, DEFAULT));
        }
        let (u, c) = (user_part(user), user_part(client));
        match (user.is_empty(), client.is_empty()) {
            (false, false) => t
                .get(u.clone(), c.clone())
                .or_else(|| t.get(u, DEFAULT))
                .or_else(|| t.get(DEFAULT, c))
                .or_else(|| t.get(DEFAULT, DEFAULT)),
            (false, true) => t.get(u, ABSENT).or_else(|| t.get(DEFAULT, ABSENT)),
            (true, false) => t.get(ABSENT, c).or_else(|| t.get(ABSENT, DEFAULT)),
            (true, true) => None,
        }
    }

    /// The quota that applies to this user and client id, if any.
    pub fn quota(&self, kind: QuotaKind, user: &str, client: &str) -> Option<f64> {
        if !self.enabled(kind) {
            return None;
        }
        let (u, c) = self.tags(kind, user, client);
        self.bound(kind, &u, &c)
    }

    /// Records `value` for this user and client id and returns how long, in milliseconds, the
    /// client must wait for its rate to come back under its quota (0 when within it). A request
    /// quota's wait is capped at one window, as Kafka caps it.
    pub fn record(
        &mut self,
        kind: QuotaKind,
        user: &str,
        client: &str,
        value: f64,
        now: i64,
    ) -> u64 {
        if !self.enabled(kind) {
            return 0;
        }
        let (u, c) = self.tags(kind, user, client);
        let Some(bound) = self.bound(kind, &u, &c) else {
            return 0;
        };
        self.sweep(now);
        let cfg = self.cfg;
        let sensor = self.sensors.entry((kind, u, c)).or_insert_with(|| Sensor {
            rate: Rate::default(),
            last_used: now,
        });
        sensor.last_used = now;
        sensor.rate.record(cfg, value, now);
        let measured = sensor.rate.measure(cfg, now);
        if measured <= bound {
            return 0;
        }
        let window = sensor.rate.window_size(cfg, now) as f64;
        let ms = ((measured - bound) / bound * window).round().max(0.0) as u64;
        match kind {
            QuotaKind::Request => ms.min(cfg.window_ms.max(0) as u64),
            QuotaKind::Connection => {
                // The connection will be closed, not served: it does not count (Kafka's rule).
                sensor.rate.record(cfg, -value, now);
                ms.min(cfg.window_ms.max(0) as u64)
            }
            _ => ms,
        }
    }

    /// Records a new connection from `ip`: how long to hold it before closing it when the IP is
    /// over its `connection_creation_rate` (0: accept it).
    pub fn record_connection(&mut self, ip: &str, now: i64) -> u64 {
        self.record(QuotaKind::Connection, ip, "", 1.0, now)
    }

    /// Takes back a recorded value (a throttled fetch answers empty, so its bytes were not sent).
    pub fn unrecord(&mut self, kind: QuotaKind, user: &str, client: &str, value: f64, now: i64) {
        if !self.enabled(kind) {
            return;
        }
        let (u, c) = self.tags(kind, user, client);
        if let Some(s) = self.sensors.get_mut(&(kind, u, c)) {
            s.rate.record(self.cfg, -value, now);
        }
    }

    /// The most that may be taken at once without certain throttling: the quota over all but
    /// one window. Bounds a fetch response's size.
    pub fn max_in_window(&self, kind: QuotaKind, user: &str, client: &str) -> Option<f64> {
        let q = self.quota(kind, user, client)?;
        Some(q * (self.cfg.samples.max(1) - 1) as f64 * self.cfg.window_ms as f64 / 1000.0)
    }

    #[cfg(test)]
    fn sensor_count(&self) -> usize {
        self.sensors.len()
    }

    fn sweep(&mut self, now: i64) {
        let full = self.sensors.len() >= MAX_SENSORS;
        if !full && now - self.last_sweep < 60_000 {
            return;
        }
        self.last_sweep = now;
        self.sensors
            .retain(|_, s| now - s.last_used < SENSOR_IDLE_MS);
        if self.sensors.len() >= MAX_SENSORS {
            let mut ages: Vec<i64> = self.sensors.values().map(|s| s.last_used).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 4];
            self.sensors.retain(|_, s| s.last_used > cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entity, Quotas, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};

    /// (entity parts, key, value).
    type Setting<'a> = (&'a [(&'a str, Option<&'a str>)], &'a str, f64);

    fn quotas(list: &[Setting]) -> QuotaManager {
        let mut q = Quotas::default();
        for (parts, key, v) in list {
            let e = Entity::new(parts.iter().copied()).unwrap();
            let (res, _) = q.alter(vec![(Ok(e), vec![(key.to_string(), Some(*v))])]);
            res[0].as_ref().unwrap();
        }
        let mut m = QuotaManager::new(WindowConfig::default());
        m.set_quotas(&q);
        m
    }

    #[test]
    fn precedence_follows_kafka() {
        let p = PRODUCER_BYTE_RATE;
        let m = quotas(&[
            (
                &[("user", Some("alice")), ("client-id", Some("app"))],
                p,
                1.0,
            ),
            (&[("user", Some("alice")), ("client-id", None)], p, 2.0),
            (&[("user", Some("alice"))], p, 3.0),
            (&[("user", None), ("client-id", Some("app"))], p, 4.0),
            (&[("user", None), ("client-id", None)], p, 5.0),
            (&[("user", None)], p, 6.0),
            (&[("client-id", Some("app"))], p, 7.0),
            (&[("client-id", None)], p, 8.0),
        ]);
        let q = |u, c| m.quota(QuotaKind::Produce, u, c);
        assert_eq!(q("alice", "app"), Some(1.0));
        assert_eq!(q("alice", "other"), Some(2.0));
        assert_eq!(q("bob", "app"), Some(4.0));
        assert_eq!(q("bob", "other"), Some(5.0));
        // Another kind has no quota at all.
        assert_eq!(m.quota(QuotaKind::Fetch, "alice", "app"), None);

        let m = quotas(&[
            (&[("user", Some("alice"))], p, 3.0),
            (&[("user", None)], p, 6.0),
            (&[("client-id", Some("app"))], p, 7.0),
            (&[("client-id", None)], p, 8.0),
            (&[("client-id", Some("x"))], CONSUMER_BYTE_RATE, 9.0),
        ]);
        let q = |u, c| m.quota(QuotaKind::Produce, u, c);
        assert_eq!(q("alice", "app"), Some(3.0));
        assert_eq!(q("bob", "app"), Some(6.0));
        let m = quotas(&[
            (&[("client-id", Some("app"))], p, 7.0),
            (&[("client-id", None)], p, 8.0),
        ]);
        let q = |u, c| m.quota(QuotaKind::Produce, u, c);
        assert_eq!(q("alice", "app"), Some(7.0));
        assert_eq!(q("alice", "x"), Some(8.0));
    }

    #[test]
    fn a_user_quota_is_shared_by_the_users_clients() {
        let mut m = quotas(&[(&[("user", Some("alice"))], PRODUCER_BYTE_RATE, 1000.0)]);
        // 10 s worth of quota, split over two client ids, then one byte more from either.
        assert_eq!(m.record(QuotaKind::Produce, "alice", "a", 5000.0, 0), 0);
        assert_eq!(m.record(QuotaKind::Produce, "alice", "b", 5000.0, 0), 0);
        assert!(m.record(QuotaKind::Produce, "alice", "a", 1000.0, 0) > 0);
        assert_eq!(m.sensor_count(), 1);
        // Nobody else is measured.
        assert_eq!(m.record(QuotaKind::Produce, "bob", "a", 1e9, 0), 0);
    }

    #[test]
    fn throttle_time_brings_the_rate_back_to_the_quota() {
        let mut m = quotas(&[(&[("client-id", Some("app"))], PRODUCER_BYTE_RATE, 1000.0)]);
        // 20,000 bytes over a 10 s window is twice the quota: wait as long again.
        let t = m.record(QuotaKind::Produce, "ANONYMOUS", "app", 20_000.0, 0);
        assert_eq!(t, 10_000);
        m.unrecord(QuotaKind::Produce, "ANONYMOUS", "app", 20_000.0, 0);
        assert_eq!(m.record(QuotaKind::Produce, "ANONYMOUS", "app", 1.0, 0), 0);
    }

    #[test]
    fn request_throttle_is_capped_at_one_window() {
        let mut m = quotas(&[(&[("user", None)], crate::REQUEST_PERCENTAGE, 1.0)]);
        assert_eq!(m.record(QuotaKind::Request, "u", "c", 500.0, 0), 1000);
    }

    #[test]
    fn connections_are_counted_per_ip_and_refused_ones_do_not_count() {
        let mut m = quotas(&[
            (
                &[("ip", Some("10.0.0.1"))],
                crate::CONNECTION_CREATION_RATE,
                1.0,
            ),
            (&[("ip", None)], crate::CONNECTION_CREATION_RATE, 2.0),
        ]);
        // 1 per second over a 10 s window: ten at once pass, the eleventh waits.
        for _ in 0..10 {
            assert_eq!(m.record_connection("10.0.0.1", 0), 0);
        }
        let wait = m.record_connection("10.0.0.1", 0);
        assert!(wait > 0 && wait <= 1000, "{wait}");
        // The refused one was taken back: the next is refused for the same reason, no more.
        assert_eq!(m.record_connection("10.0.0.1", 0), wait);
        // Other addresses fall under the default, each measured on its own.
        for _ in 0..20 {
            assert_eq!(m.record_connection("10.0.0.2", 0), 0);
            assert_eq!(m.record_connection("10.0.0.3", 0), 0);
        }
        assert!(m.record_connection("10.0.0.2", 0) > 0);
        assert_eq!(m.quota(QuotaKind::Produce, "10.0.0.2", ""), None);
    }

    #[test]
    fn fetch_size_is_bounded_by_the_window() {
        let m = quotas(&[(&[("client-id", None)], CONSUMER_BYTE_RATE, 100.0)]);
        assert_eq!(m.max_in_window(QuotaKind::Fetch, "u", "c"), Some(1000.0));
        assert_eq!(m.max_in_window(QuotaKind::Produce, "u", "c"), None);
    }
}
