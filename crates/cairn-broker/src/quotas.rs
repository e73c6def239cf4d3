//! Client quotas in the broker: the durable set (`client-quotas.json`), AlterClientQuotas'
//! path (persist, then install), and what each request is measured by (produce bytes, fetch
//! bytes, handler time) with the wait it earns. The rules are `cairn-quota`'s.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Context;
use cairn_config::BrokerConfig;
use cairn_quota::{
    Component, Entity, Op, QuotaError, QuotaKind, QuotaManager, Quotas, Values, WindowConfig,
};

pub struct ClientQuotas {
    dir: PathBuf,
    /// One alteration at a time: each writes the whole set before installing it.
    write: tokio::sync::Mutex<()>,
    quotas: parking_lot::Mutex<Quotas>,
    manager: parking_lot::Mutex<QuotaManager>,
    /// Per kind, whether any quota of it exists: the request path checks only this otherwise.
    enabled: [AtomicBool; 4],
}

/// Milliseconds on a clock that never goes back (rates must not jump with the wall clock).
fn now_ms() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as i64
}

/// The user part of a principal (`User:alice` → `alice`), as Kafka's quotas name users.
pub fn user_of(principal: &str) -> &str {
    principal
        .split_once(':')
        .map_or(principal, |(_, name)| name)
}

fn kind_index(kind: QuotaKind) -> usize {
    match kind {
        QuotaKind::Produce => 0,
        QuotaKind::Fetch => 1,
        QuotaKind::Request => 2,
        QuotaKind::Connection => 3,
    }
}

impl ClientQuotas {
    pub fn load(cfg: &BrokerConfig, dir: &Path) -> anyhow::Result<ClientQuotas> {
        let quotas = cairn_quota::store::load(dir).context("cannot load the client quotas")?;
        let (samples, window_ms) = cfg.quota_window();
        let mut manager = QuotaManager::new(WindowConfig { samples, window_ms });
        manager.set_quotas(&quotas);
        let me = ClientQuotas {
            dir: dir.to_owned(),
            write: tokio::sync::Mutex::new(()),
            quotas: parking_lot::Mutex::new(quotas),
            manager: parking_lot::Mutex::new(manager),
            enabled: Default::default(),
        };
        me.refresh_enabled();
        Ok(me)
    }

    fn refresh_enabled(&self) {
        let m = self.manager.lock();
        for kind in QuotaKind::ALL.into_iter().chain([QuotaKind::Connection]) {
            self.enabled[kind_index(kind)].store(m.enabled(kind), Ordering::Relaxed);
        }
    }

    pub fn describe(
        &self,
        filter: &[Component],
        strict: bool,
    ) -> Result<Vec<(Entity, Values)>, QuotaError> {
        let q = self.quotas.lock();
        Ok(q.describe(filter, strict)?
            .into_iter()
            .map(|(e, v)| (e.clone(), v.clone()))
            .collect())
    }

    /// Applies the alterations (unless `validate_only`), persisting the new set before it is
    /// used. `Err` is a storage failure: nothing changed.
    pub async fn alter(
        &self,
        alterations: Vec<(Result<Entity, QuotaError>, Vec<Op>)>,
        validate_only: bool,
    ) -> anyhow::Result<Vec<Result<(), QuotaError>>> {
        let _one = self.write.lock().await;
        let mut next = self.quotas.lock().clone();
        let (results, changed) = next.alter(alterations);
        if validate_only || !changed {
            return Ok(results);
        }
        let dir = self.dir.clone();
        let saved = next.clone();
        tokio::task::spawn_blocking(move || cairn_quota::store::save(&dir, &saved))
            .await
            .context("quota write task failed")??;
        self.manager.lock().set_quotas(&next);
        *self.quotas.lock() = next;
        self.refresh_enabled();
        tracing::info!("client quotas changed");
        Ok(results)
    }

    pub fn enabled(&self, kind: QuotaKind) -> bool {
        self.enabled[kind_index(kind)].load(Ordering::Relaxed)
    }

    /// Records `value` for the principal and client id; the wait in milliseconds it earns.
    pub fn record(&self, kind: QuotaKind, principal: &str, client_id: &str, value: f64) -> u64 {
        if !self.enabled(kind) {
            return 0;
        }
        self.manager
            .lock()
            .record(kind, user_of(principal), client_id, value, now_ms())
    }

    pub fn unrecord(&self, kind: QuotaKind, principal: &str, client_id: &str, value: f64) {
        if self.enabled(kind) {
            self.manager
                .lock()
                .unrecord(kind, user_of(principal), client_id, value, now_ms());
        }
    }

    /// A new connection from `ip`: how long to hold it before closing it, when the address is
    /// over its connection_creation_rate (0: serve it).
    pub fn connection_wait(&self, ip: std::net::IpAddr) -> u64 {
        if !self.enabled(QuotaKind::Connection) {
            return 0;
        }
        self.manager
            .lock()
            .record_connection(&ip.to_string(), now_ms())
    }

    /// The most bytes one fetch may return without certain throttling, if a quota applies.
    pub fn fetch_bytes_cap(&self, principal: &str, client_id: &str) -> Option<usize> {
        if !self.enabled(QuotaKind::Fetch) {
            return None;
        }
        self.manager
            .lock()
            .max_in_window(QuotaKind::Fetch, user_of(principal), client_id)
            // The records are not the whole answer (framing, partition headers): a cap at the
            // full allowance would be thrown away as throttled, fetch after fetch.
            .map(|b| (b * 0.9).min(i32::MAX as f64).max(0.0) as usize)
    }
}
