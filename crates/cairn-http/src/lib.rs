//! The broker's HTTP listener: `/health`, `/metrics`, the JSON API and the dashboard.
//!
//! This crate only routes and renders. What it shows comes from a [`BrokerView`], which the
//! broker implements; the listener can start before the broker is ready (it answers 503 until a
//! view is installed in its [`ViewSlot`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::RwLock;
use serde::Serialize;

mod auth;
mod serve;
mod view;

pub use serve::HttpOptions;
pub use view::*;

/// Where the broker's view is installed once the broker is up, and removed when it stops.
#[derive(Clone, Default)]
pub struct ViewSlot(Arc<RwLock<Option<Arc<dyn BrokerView>>>>);

impl ViewSlot {
    pub fn new() -> ViewSlot {
        ViewSlot::default()
    }

    pub fn set(&self, view: Arc<dyn BrokerView>) {
        *self.0.write() = Some(view);
    }

    pub fn clear(&self) {
        *self.0.write() = None;
    }

    fn get(&self) -> Option<Arc<dyn BrokerView>> {
        self.0.read().clone()
    }
}

/// A bound HTTP listener, not yet serving.
pub struct HttpServer {
    listener: tokio::net::TcpListener,
    pub local_addr: SocketAddr,
    options: HttpOptions,
    /// The host as given to `bind` (a name there is one clients will use in `Host`).
    bound_host: String,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl HttpServer {
    pub async fn bind(addr: &str) -> anyhow::Result<HttpServer> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {addr}: {e}"))?;
        let local_addr = listener.local_addr()?;
        Ok(HttpServer {
            listener,
            local_addr,
            options: HttpOptions::default(),
            bound_host: addr.to_string(),
            tls: None,
        })
    }

    pub fn with_options(mut self, options: HttpOptions) -> HttpServer {
        self.options = options;
        self
    }

    /// Serves HTTPS with this configuration (built by the caller from its certificate settings)
    /// instead of plain HTTP.
    pub fn with_tls(mut self, tls: Option<Arc<rustls::ServerConfig>>) -> HttpServer {
        self.tls = tls;
        self
    }

    /// Serves until `shutdown` completes. When the installed view says so, every path but
    /// `/health` asks for HTTP Basic credentials.
    pub async fn serve(
        self,
        slot: ViewSlot,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut names = self.options.allowed_hosts.clone();
        names.push(self.bound_host);
        let check = Arc::new(serve::HostCheck::new(&names));
        let basic = Arc::new(auth::BasicAuth::new(slot.clone()));
        // The Host check runs first (the outer layer): a rebinding page gets no challenge.
        let app = router(slot)
            .layer(axum::middleware::from_fn_with_state(
                basic,
                auth::require_credentials,
            ))
            .layer(axum::middleware::from_fn_with_state(
                check,
                serve::check_host,
            ));
        let tls = self.tls.map(tokio_rustls::TlsAcceptor::from);
        serve::serve(self.listener, app, self.options, tls, shutdown).await
    }
}

pub fn router(slot: ViewSlot) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/dashboard/{file}", get(asset))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/groups", get(groups))
        .route("/api/groups/{group}", get(group))
        .route("/api/groups/{group}/rebalances", get(rebalances))
        .route("/api/topics", get(topics))
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "not found", None) })
        .with_state(slot)
}

/// The dashboard, compiled into the binary so the broker needs no files or network at run time.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("dashboard/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/style.css"),
    ),
];

fn serve_asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ty, body)) => ([(header::CONTENT_TYPE, *ty)], *body).into_response(),
        None => json_error(StatusCode::NOT_FOUND, "not found", None),
    }
}

async fn index() -> Response {
    serve_asset("index.html")
}

async fn asset(Path(file): Path<String>) -> Response {
    serve_asset(&file)
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn json_error(status: StatusCode, error: &str, group: Option<&str>) -> Response {
    #[derive(Serialize)]
    struct Error<'a> {
        error: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        group: Option<&'a str>,
    }
    json(status, &Error { error, group })
}

fn unavailable() -> Response {
    json_error(StatusCode::SERVICE_UNAVAILABLE, "broker not ready", None)
}

async fn health(State(slot): State<ViewSlot>) -> Response {
    let h = slot.get().map_or_else(Health::not_ready, |v| v.health());
    let status = if h.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &h)
}

async fn metrics(State(slot): State<ViewSlot>) -> Response {
    let Some(view) = slot.get() else {
        return unavailable();
    };
    // Rendering thousands of series is CPU work; keep it off the I/O threads.
    match tokio::task::spawn_blocking(move || view.metrics()).await {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn groups(State(slot): State<ViewSlot>) -> Response {
    match slot.get() {
        Some(v) => json(StatusCode::OK, &v.groups()),
        None => unavailable(),
    }
}

async fn group(State(slot): State<ViewSlot>, Path(id): Path<String>) -> Response {
    match slot.get() {
        Some(v) => match v.group(&id) {
            Some(d) => json(StatusCode::OK, &d),
            None => json_error(StatusCode::NOT_FOUND, "unknown group", Some(&id)),
        },
        None => unavailable(),
    }
}

async fn rebalances(State(slot): State<ViewSlot>, Path(id): Path<String>) -> Response {
    #[derive(Serialize)]
    struct Page<'a> {
        group: &'a str,
        rebalances: Vec<Rebalance>,
    }
    match slot.get() {
        Some(v) => match v.rebalances(&id) {
            Some(rebalances) => json(
                StatusCode::OK,
                &Page {
                    group: &id,
                    rebalances,
                },
            ),
            None => json_error(StatusCode::NOT_FOUND, "unknown group", Some(&id)),
        },
        None => unavailable(),
    }
}

async fn topics(State(slot): State<ViewSlot>) -> Response {
    #[derive(Serialize)]
    struct Page {
        topics: Vec<TopicInfo>,
    }
    match slot.get() {
        Some(v) => json(StatusCode::OK, &Page { topics: v.topics() }),
        None => unavailable(),
    }
}
