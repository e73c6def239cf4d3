//! Who a connection is and what it may do: the listeners' security settings, the SASL exchange
//! on a connection (`sasl.rs`), TLS (`tls.rs`), SCRAM credentials and ACLs (kept durable through
//! `cairn-auth`'s store) and the authorization check every handler calls.

pub mod tls;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cairn_auth::{
    AclBinding, Authorizer, Operation, ResourceType, ScramCredential, ScramMechanism, ScramServer,
};
use cairn_config::{BrokerConfig, ListenerSpec, SecurityProtocol};
use parking_lot::{Mutex, RwLock};

use crate::limits::Throttled;

/// The principal of a connection that did not authenticate, as Kafka names it.
pub const ANONYMOUS: &str = "User:ANONYMOUS";
/// The one cluster resource's name in ACLs.
pub const CLUSTER: &str = "kafka-cluster";

/// Kafka's authorizer class names; either turns ACLs on.
const AUTHORIZERS: &[&str] = &[
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// Failed authentications from one address within [`FAIL_WINDOW`] beyond which every further
/// attempt from it waits [`THROTTLED_DELAY`] before it is even checked.
const FAIL_THRESHOLD: u32 = 20;
const FAIL_WINDOW: Duration = Duration::from_secs(10);
const THROTTLED_DELAY: Duration = Duration::from_secs(1);
/// Addresses tracked for failures at most; the oldest windows are dropped first.
const FAIL_TRACKED: usize = 10_000;

/// SASL mechanisms Cairn offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    pub fn parse(s: &str) -> Option<Mechanism> {
        match s {
            "PLAIN" => Some(Mechanism::Plain),
            _ => ScramMechanism::from_name(s).map(Mechanism::Scram),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }
}

/// One bound listener's settings, shared by its connections.
pub struct ListenerCtx {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN users from the listener's JAAS configuration.
    pub plain_users: HashMap<String, String>,
    /// What Metadata, FindCoordinator and DescribeCluster tell clients that came in here.
    pub advertised_host: String,
    pub advertised_port: i32,
}

impl ListenerCtx {
    /// Builds a listener's context; any unusable setting stops the start with the key to fix.
    pub fn new(
        cfg: &BrokerConfig,
        spec: &ListenerSpec,
        advertised: (String, i32),
    ) -> anyhow::Result<ListenerCtx> {
        let tls = if spec.protocol.tls() {
            let config = tls::server_config(cfg, &spec.name, spec.protocol.sasl())
                .with_context(|| format!("listener {} ({})", spec.name, spec.protocol.name()))?;
            Some(tokio_rustls::TlsAcceptor::from(config))
        } else {
            None
        };
        let mut mechanisms = Vec::new();
        let mut plain_users = HashMap::new();
        if spec.protocol.sasl() {
            let enabled = cfg
                .listener_value(&spec.name, "sasl.enabled.mechanisms")
                .unwrap_or_default();
            for m in enabled.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let Some(mech) = Mechanism::parse(m) else {
                    bail!(
                        "listener {}: SASL mechanism {m} is not offered by Cairn \
                         (set sasl.enabled.mechanisms to PLAIN, SCRAM-SHA-256 and/or SCRAM-SHA-512)",
                        spec.name
                    );
                };
                if mech == Mechanism::Plain {
                    let Some(jaas) = cfg.jaas_config(&spec.name, "PLAIN") else {
                        bail!(
                            "listener {}: PLAIN is enabled but listener.name.{}.plain.sasl.jaas.config is not set",
                            spec.name,
                            spec.name.to_ascii_lowercase()
                        );
                    };
                    let users = cairn_auth::parse_jaas_users(&jaas).map_err(|e| {
                        anyhow::anyhow!(
                            "listener.name.{}.plain.sasl.jaas.config: {e}",
                            spec.name.to_ascii_lowercase()
                        )
                    })?;
                    plain_users.extend(users);
                }
                mechanisms.push(mech);
            }
            if mechanisms.is_empty() {
                bail!(
                    "listener {} uses SASL but sasl.enabled.mechanisms is empty",
                    spec.name
                );
            }
        }
        Ok(ListenerCtx {
            name: spec.name.clone(),
            protocol: spec.protocol,
            tls,
            mechanisms,
            plain_users,
            advertised_host: advertised.0,
            advertised_port: advertised.1,
        })
    }
}

/// The security state of one connection.
pub struct Session {
    pub listener: Arc<ListenerCtx>,
    pub peer: SocketAddr,
    pub principal: Arc<str>,
    pub(crate) auth: AuthState,
    /// Set by a handler whose answer must be the connection's last (a failed authentication).
    pub(crate) close_after_reply: bool,
    /// After a SaslHandshake v0 the client sends its SASL tokens as bare size-prefixed frames,
    /// without a request header, until the exchange ends.
    pub(crate) raw_tokens: bool,
    /// Set when a response throttled the client for a quota: the next request is not read
    /// before then (KIP-219: the client is told to wait and the broker holds it to that).
    pub(crate) mute_until: Option<Instant>,
}

pub(crate) enum AuthState {
    /// No SASL on this listener: the principal is fixed at connect (certificate or anonymous).
    Open,
    /// Waiting for SaslHandshake (`reauth`: the connection had authenticated before).
    Handshake { reauth: bool },
    /// Waiting for the first SaslAuthenticate of `mechanism`.
    Authenticate { mechanism: Mechanism, reauth: bool },
    /// Between SCRAM's two rounds.
    Scram {
        server: Box<ScramServer>,
        reauth: bool,
    },
    /// Authenticated; the session must be renewed before `expires`, if set.
    Done { expires: Option<Instant> },
}

impl Session {
    pub fn new(listener: Arc<ListenerCtx>, peer: SocketAddr, principal: Option<String>) -> Session {
        let auth = if listener.protocol.sasl() {
            AuthState::Handshake { reauth: false }
        } else {
            AuthState::Open
        };
        Session {
            listener,
            peer,
            principal: Arc::from(principal.as_deref().unwrap_or(ANONYMOUS)),
            auth,
            close_after_reply: false,
            raw_tokens: false,
            mute_until: None,
        }
    }

    /// Ordinary requests may flow (re-authentication in progress keeps them flowing).
    pub fn authenticated(&self) -> bool {
        match &self.auth {
            AuthState::Open | AuthState::Done { .. } => true,
            AuthState::Handshake { reauth }
            | AuthState::Authenticate { reauth, .. }
            | AuthState::Scram { reauth, .. } => *reauth,
        }
    }

    /// The session ended without being renewed (KIP-368): the connection must close.
    pub fn expired(&self, now: Instant) -> bool {
        matches!(self.auth, AuthState::Done { expires: Some(t) } if now >= t)
    }
}

/// Failed authentications per address, for the delay that slows password guessing.
#[derive(Default)]
struct Failures {
    by_ip: HashMap<IpAddr, (Instant, u32)>,
}

/// The broker-wide security state.
pub struct Security {
    /// `None`: no authorizer is configured and every request is allowed.
    authorizer: Option<RwLock<Arc<Authorizer>>>,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
    scram: RwLock<BTreeMap<String, Vec<ScramCredential>>>,
    /// Serializes changes so each is persisted before the next starts.
    write: Mutex<()>,
    dir: PathBuf,
    pub reauth: Option<Duration>,
    pub fail_delay: Duration,
    pub max_unauthenticated_frame: i64,
    /// PLAIN users of every listener, for the HTTP listener's Basic credentials.
    plain_users: HashMap<String, String>,
    /// Some listener authenticates with SASL.
    pub sasl_enabled: bool,
    failures: Mutex<Failures>,
    pub(crate) log_denied: Throttled,
    pub(crate) log_failed: Throttled,
}

impl Security {
    /// Loads credentials and ACLs from `dir` (the data directory); a damaged file stops the
    /// start rather than serve with fewer ACLs than were granted.
    pub fn load(
        cfg: &BrokerConfig,
        dir: PathBuf,
        listeners: &[Arc<ListenerCtx>],
    ) -> anyhow::Result<Security> {
        let state =
            cairn_auth::store::load(&dir).context("cannot load ACLs and SCRAM credentials")?;
        let class = cfg.get("authorizer.class.name").unwrap_or_default();
        let super_users: Vec<String> = cfg
            .get("super.users")
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let allow_if_no_acl = cfg.get("allow.everyone.if.no.acl.found").as_deref() == Some("true");
        let authorizer = if class.trim().is_empty() {
            None
        } else if AUTHORIZERS.contains(&class.trim()) {
            Some(RwLock::new(Arc::new(Authorizer::new(
                super_users.clone(),
                allow_if_no_acl,
                state.acls,
            ))))
        } else {
            bail!(
                "authorizer.class.name={class}: Cairn provides Kafka's StandardAuthorizer \
                 (org.apache.kafka.metadata.authorizer.StandardAuthorizer)"
            );
        };
        let mut plain_users = HashMap::new();
        for l in listeners {
            for (u, p) in &l.plain_users {
                plain_users.entry(u.clone()).or_insert_with(|| p.clone());
            }
        }
        let reauth_ms = cfg
            .get("connections.max.reauth.ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let delay_ms = cfg
            .get("connection.failed.authentication.delay.ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(100);
        Ok(Security {
            authorizer,
            super_users,
            allow_if_no_acl,
            scram: RwLock::new(state.scram),
            write: Mutex::new(()),
            dir,
            reauth: (reauth_ms > 0).then(|| Duration::from_millis(reauth_ms)),
            fail_delay: Duration::from_millis(delay_ms),
            max_unauthenticated_frame: cfg
                .get("sasl.server.max.receive.size")
                .and_then(|v| v.parse().ok())
                .unwrap_or(524_288),
            plain_users,
            sasl_enabled: listeners.iter().any(|l| l.protocol.sasl()),
            failures: Mutex::new(Failures::default()),
            log_denied: Throttled::default(),
            log_failed: Throttled::default(),
        })
    }

    pub fn authorizer_enabled(&self) -> bool {
        self.authorizer.is_some()
    }

    pub fn authorizer(&self) -> Option<Arc<Authorizer>> {
        self.authorizer.as_ref().map(|a| a.read().clone())
    }

    /// Whether `principal` at `host` may do `op` on the resource; denials leave an audit line.
    pub fn allowed(
        &self,
        principal: &str,
        host: &IpAddr,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        let ok = self.allowed_quietly(principal, host, op, rt, name);
        if !ok {
            self.audit(principal, &host.to_string(), op, rt, name);
        }
        ok
    }

    /// Allowed without an audit line: for filtering lists (Metadata, ListGroups), where a
    /// resource left out is not a refused request.
    pub fn allowed_quietly(
        &self,
        principal: &str,
        host: &IpAddr,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        match &self.authorizer {
            None => true,
            Some(a) => a
                .read()
                .authorize(principal, &host.to_string(), op, rt, name),
        }
    }

    /// `op` on at least one resource of the type (Kafka's authorizeByResourceType).
    pub fn allowed_any(
        &self,
        principal: &str,
        host: &IpAddr,
        op: Operation,
        rt: ResourceType,
    ) -> bool {
        match &self.authorizer {
            None => true,
            Some(a) => a.read().authorize_any(principal, &host.to_string(), op, rt),
        }
    }

    /// The authorized-operations bit field, or Kafka's "not provided" when no authorizer runs.
    pub fn authorized_operations(
        &self,
        principal: &str,
        host: &IpAddr,
        rt: ResourceType,
        name: &str,
    ) -> i32 {
        match &self.authorizer {
            // Without an authorizer every operation is allowed: Kafka then reports all the
            // operations the resource type supports (not "unknown"), which clients such as
            // kafka-python's admin client decode.
            None => rt
                .supported_operations()
                .iter()
                .fold(0i32, |bits, op| bits | (1 << op.code())),
            Some(a) => a
                .read()
                .authorized_operations(principal, &host.to_string(), rt, name),
        }
    }

    fn audit(&self, principal: &str, host: &str, op: Operation, rt: ResourceType, name: &str) {
        if let Some(held_back) = self.log_denied.check() {
            tracing::info!(
                target: "cairn::audit",
                principal,
                host,
                operation = op.name(),
                resource_type = ?rt,
                resource = name,
                held_back,
                "authorization denied"
            );
        }
    }

    /// Persists the ACL list and then makes it the one checked.
    pub fn replace_acls(
        &self,
        make: impl FnOnce(&Authorizer) -> Vec<AclBinding>,
    ) -> anyhow::Result<()> {
        let Some(lock) = &self.authorizer else {
            bail!("no authorizer");
        };
        let _w = self.write.lock();
        let current = lock.read().clone();
        let next = make(&current);
        cairn_auth::store::save_acls(&self.dir, &next)?;
        let fresh = Authorizer::new(self.super_users.clone(), self.allow_if_no_acl, next);
        *lock.write() = Arc::new(fresh);
        Ok(())
    }

    pub fn scram_users(&self) -> BTreeMap<String, Vec<ScramCredential>> {
        self.scram.read().clone()
    }

    pub fn scram_credential(&self, user: &str, mech: ScramMechanism) -> Option<ScramCredential> {
        self.scram
            .read()
            .get(user)?
            .iter()
            .find(|c| c.mechanism == mech)
            .cloned()
    }

    /// Persists the SCRAM credentials and then makes them the ones checked.
    pub fn replace_scram(
        &self,
        make: impl FnOnce(
            &BTreeMap<String, Vec<ScramCredential>>,
        ) -> BTreeMap<String, Vec<ScramCredential>>,
    ) -> anyhow::Result<()> {
        let _w = self.write.lock();
        let next = make(&self.scram.read());
        cairn_auth::store::save_scram(&self.dir, &next)?;
        *self.scram.write() = next;
        Ok(())
    }

    /// A user's password, checked against the PLAIN users and the SCRAM credentials (for the
    /// HTTP listener's Basic authentication). Costs a PBKDF2 run per SCRAM credential.
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        if let Some(p) = self.plain_users.get(user) {
            if cairn_auth::constant_time_eq(p.as_bytes(), password.as_bytes()) {
                return true;
            }
        }
        let creds = self.scram.read().get(user).cloned().unwrap_or_default();
        creds.iter().any(|c| c.verify_password(password))
    }

    /// How long to wait before checking an authentication from `ip`: longer once the address
    /// has failed often lately.
    pub fn attempt_delay(&self, ip: IpAddr) -> Option<Duration> {
        let f = self.failures.lock();
        match f.by_ip.get(&ip) {
            Some((since, n)) if *n >= FAIL_THRESHOLD && since.elapsed() < FAIL_WINDOW => {
                Some(THROTTLED_DELAY)
            }
            _ => None,
        }
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut f = self.failures.lock();
        let now = Instant::now();
        if f.by_ip.len() >= FAIL_TRACKED && !f.by_ip.contains_key(&ip) {
            f.by_ip
                .retain(|_, (since, _)| since.elapsed() < FAIL_WINDOW);
            if f.by_ip.len() >= FAIL_TRACKED {
                // Still full of live windows: forget the oldest to make room.
                if let Some(oldest) = f.by_ip.iter().min_by_key(|(_, (s, _))| *s).map(|(k, _)| *k) {
                    f.by_ip.remove(&oldest);
                }
            }
        }
        let e = f.by_ip.entry(ip).or_insert((now, 0));
        if e.0.elapsed() >= FAIL_WINDOW {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
    }
}
