//! Error type shared by the connection and the high-level client.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

/// Everything that can go wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// The TLS handshake failed (untrusted certificate, wrong host name, a
    /// plaintext listener...).
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// SASL authentication could not complete on the client's side (the
    /// broker's own refusals arrive as `Error::Kafka`).
    #[error("SASL authentication: {0}")]
    Sasl(String),

    /// Reading or writing the socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// The connection is gone; pending and later requests fail with this.
    #[error("connection closed: {0}")]
    ConnectionClosed(String),

    /// The broker did not list the API in its ApiVersions response.
    #[error("broker does not support {0:?}")]
    UnsupportedApi(ApiKey),

    /// Client and broker support the API but share no version of it.
    #[error("no common version for {api:?}: client supports {client}, broker supports {broker}")]
    NoCommonVersion {
        api: ApiKey,
        client: VersionRange,
        broker: VersionRange,
    },

    /// An explicit version was asked for that one of the sides cannot speak.
    #[error(
        "{api:?} v{version} is not usable: client supports {client}, broker supports {broker}"
    )]
    VersionNotUsable {
        api: ApiKey,
        version: i16,
        client: VersionRange,
        broker: VersionRange,
    },

    /// Encoding a request failed (usually a field that the chosen version cannot carry).
    #[error("cannot encode {api:?} v{version}: {source}")]
    Encode {
        api: ApiKey,
        version: i16,
        #[source]
        source: anyhow::Error,
    },

    /// A response frame did not decode as the expected message.
    #[error("cannot decode {api:?} v{version} response: {source}")]
    Decode {
        api: ApiKey,
        version: i16,
        #[source]
        source: anyhow::Error,
    },

    /// The peer broke framing rules (bad length, unknown correlation id, ...).
    #[error("protocol violation: {0}")]
    Protocol(String),

    /// The broker answered with a Kafka error code.
    #[error("{context}: {error} (code {code}){detail}", code = error.code(), detail = detail(message))]
    Kafka {
        context: String,
        error: ResponseError,
        message: Option<String>,
    },

    /// Record batches could not be built or parsed.
    #[error("record batch: {0}")]
    Records(#[source] anyhow::Error),

    /// No answer within the time limit.
    #[error("{what}: no answer within {after:?}")]
    Timeout {
        what: String,
        after: std::time::Duration,
    },

    /// Metadata has no usable answer for the topic or partition.
    #[error("{0}")]
    Metadata(String),
}

impl Error {
    /// The Kafka error carried by this error, if the broker sent one.
    pub fn kafka_error(&self) -> Option<ResponseError> {
        match self {
            Error::Kafka { error, .. } => Some(*error),
            _ => None,
        }
    }

    /// Turns a non-zero error code into `Error::Kafka`.
    pub(crate) fn check_code(
        code: i16,
        message: Option<&str>,
        context: impl FnOnce() -> String,
    ) -> Result<()> {
        match ResponseError::try_from_code(code) {
            None => Ok(()),
            Some(error) => Err(Error::Kafka {
                context: context(),
                error,
                message: message.filter(|m| !m.is_empty()).map(str::to_owned),
            }),
        }
    }
}

fn detail(message: &Option<String>) -> String {
    match message {
        Some(m) => format!(": {m}"),
        None => String::new(),
    }
}

/// Runs `fut`, giving up with `Error::Timeout` after `limit`.
pub(crate) async fn within<T>(
    limit: std::time::Duration,
    what: impl FnOnce() -> String,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            what: what(),
            after: limit,
        }),
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
