//! One TCP connection to one broker, with request pipelining, optionally
//! inside TLS and authenticated with SASL (see [`Security`]).
//!
//! Requests are written under a lock by whoever calls [`Connection::submit`]; a
//! background task reads response frames and hands each one to the waiter
//! registered under its correlation id. Callers may therefore keep many
//! requests outstanding on the same connection.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Request, StrBytes, VersionRange,
};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

use crate::error::{within, Error, Result};
use crate::security::{SaslCredentials, Security};

/// Largest response frame accepted; guards against huge allocations from a
/// corrupt length prefix.
pub const MAX_FRAME_BYTES: usize = 512 * 1024 * 1024;

/// Limit for opening a connection and completing the ApiVersions handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Highest ApiVersions version this client tries first. v3 is the first
/// flexible version and what current Kafka clients send.
const API_VERSIONS_MAX: i16 = 3;

type FrameResult = Result<Bytes>;

#[derive(Default)]
struct Pending {
    waiters: HashMap<i32, oneshot::Sender<FrameResult>>,
    /// Set once the connection is unusable; explains why.
    closed: Option<String>,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave the map inconsistent,
        // so a poisoned lock is still safe to use.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, correlation_id: i32) -> Result<oneshot::Receiver<FrameResult>> {
        let mut pending = self.lock();
        if let Some(reason) = &pending.closed {
            return Err(Error::ConnectionClosed(reason.clone()));
        }
        let (tx, rx) = oneshot::channel();
        pending.waiters.insert(correlation_id, tx);
        Ok(rx)
    }

    /// Hands a frame to its waiter; false if nobody asked for it.
    fn complete(&self, correlation_id: i32, frame: Bytes) -> bool {
        let waiter = self.lock().waiters.remove(&correlation_id);
        match waiter {
            // The caller may have dropped its future; that is not an error.
            Some(tx) => {
                let _ = tx.send(Ok(frame));
                true
            }
            None => false,
        }
    }

    /// Marks the connection dead and fails every outstanding request.
    fn fail(&self, reason: String) {
        let waiters = {
            let mut pending = self.lock();
            if pending.closed.is_none() {
                pending.closed = Some(reason);
            }
            std::mem::take(&mut pending.waiters)
        };
        let reason = self.close_reason().unwrap_or_default();
        for (_, tx) in waiters {
            let _ = tx.send(Err(Error::ConnectionClosed(reason.clone())));
        }
    }

    fn close_reason(&self) -> Option<String> {
        self.lock().closed.clone()
    }
}

/// Fails the connection if a write is abandoned half way, because the byte
/// stream would then be out of step with the broker.
struct WriteGuard<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared
                .fail("a request write was cancelled part way".to_string());
        }
    }
}

/// The sending side of the socket. An enum rather than a boxed trait
/// object so that the plaintext path stays a direct call.
pub(crate) enum Writer {
    Tcp(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

impl Writer {
    async fn write_all(&mut self, frame: &[u8]) -> std::io::Result<()> {
        match self {
            Writer::Tcp(w) => w.write_all(frame).await,
            Writer::Tls(w) => {
                w.write_all(frame).await?;
                // rustls may hold encrypted records until flushed.
                w.flush().await
            }
        }
    }
}

/// A connection to one broker that has completed the ApiVersions handshake
/// (and SASL authentication, when configured).
pub struct Connection {
    addr: String,
    client_id: StrBytes,
    writer: tokio::sync::Mutex<Writer>,
    shared: Arc<Shared>,
    next_correlation_id: AtomicI32,
    api_versions: HashMap<i16, VersionRange>,
    reader: JoinHandle<()>,
    /// Set when the connection authenticated with SASL.
    session: Option<Box<Session>>,
}

/// A SASL login and, when the broker limits it (KIP-368), its time line.
struct Session {
    credentials: SaslCredentials,
    times: Mutex<SessionTimes>,
}

#[derive(Clone, Copy, Default)]
struct SessionTimes {
    /// The next request written after this re-authenticates first.
    reauth_at: Option<Instant>,
    /// From here on the connection counts as closed: an idle connection
    /// whose session ran out would be closed by the broker on its next use.
    stale_at: Option<Instant>,
}

impl Session {
    fn times(&self) -> SessionTimes {
        *self.times.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("closed", &self.shared.close_reason())
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Connection {
    /// Opens a TCP connection and learns which API versions the broker
    /// speaks, giving up after [`DEFAULT_CONNECT_TIMEOUT`].
    pub async fn connect(addr: &str, client_id: &str) -> Result<Connection> {
        Self::connect_timeout(addr, client_id, DEFAULT_CONNECT_TIMEOUT).await
    }

    /// [`Self::connect`] with an explicit limit for TCP connect plus handshake.
    pub async fn connect_timeout(
        addr: &str,
        client_id: &str,
        limit: Duration,
    ) -> Result<Connection> {
        Self::connect_with(addr, client_id, limit, &Security::default()).await
    }

    /// Opens a connection secured as `security` says: TCP, then the TLS
    /// handshake, then ApiVersions, then SASL; all within `limit`.
    pub async fn connect_with(
        addr: &str,
        client_id: &str,
        limit: Duration,
        security: &Security,
    ) -> Result<Connection> {
        within(
            limit,
            || format!("connecting to {addr}"),
            Self::connect_inner(addr, client_id, security),
        )
        .await
    }

    async fn connect_inner(addr: &str, client_id: &str, security: &Security) -> Result<Connection> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| Error::Connect {
                addr: addr.to_string(),
                source,
            })?;
        stream.set_nodelay(true)?;
        let shared = Arc::new(Shared::default());
        // The reader task is generic over the stream, so plaintext reads go
        // straight to the socket.
        let (writer, reader) = match security.tls_config() {
            None => {
                let (read, write) = stream.into_split();
                let reader = tokio::spawn(read_loop(read, shared.clone()));
                (Writer::Tcp(write), reader)
            }
            Some(config) => {
                let tls = tls_handshake(stream, addr, config.clone()).await?;
                let (read, write) = tokio::io::split(tls);
                let reader = tokio::spawn(read_loop(read, shared.clone()));
                (Writer::Tls(write), reader)
            }
        };
        let mut conn = Connection {
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            writer: tokio::sync::Mutex::new(writer),
            shared,
            next_correlation_id: AtomicI32::new(0),
            api_versions: HashMap::new(),
            reader,
            session: None,
        };
        conn.api_versions = conn.handshake().await?;
        if let Some(credentials) = &security.sasl {
            conn.session = Some(Box::new(Session {
                credentials: credentials.clone(),
                times: Mutex::new(SessionTimes::default()),
            }));
            let mut writer = conn.writer.lock().await;
            conn.authenticate_locked(&mut writer).await?;
        }
        Ok(conn)
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Version ranges the broker advertised, keyed by API key.
    pub fn api_versions(&self) -> &HashMap<i16, VersionRange> {
        &self.api_versions
    }

    /// The broker's version range for one API, if it supports it at all.
    pub fn broker_versions(&self, api: ApiKey) -> Option<VersionRange> {
        self.api_versions.get(&(api as i16)).copied()
    }

    /// Why the connection stopped working, or `None` while it is usable.
    pub fn close_reason(&self) -> Option<String> {
        self.shared.close_reason()
    }

    /// Whether the connection has failed or been closed by the broker, or
    /// its SASL session is about to end (then it is not to be used for new
    /// work: the broker would close it).
    pub fn is_closed(&self) -> bool {
        let stale = self
            .session
            .as_ref()
            .is_some_and(|s| s.times().stale_at.is_some_and(|t| Instant::now() >= t));
        stale || self.close_reason().is_some()
    }

    /// When the next request will re-authenticate first, if the broker
    /// limited the SASL session.
    pub fn reauthenticate_at(&self) -> Option<Instant> {
        self.session.as_ref().and_then(|s| s.times().reauth_at)
    }

    /// Runs the SASL exchange with the writer held, so that no other
    /// request slips in between its steps; records the session's times.
    async fn authenticate_locked(&self, writer: &mut Writer) -> Result<()> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        let started = Instant::now();
        let lifetime = crate::auth::authenticate(self, writer, &session.credentials).await?;
        // Kafka's own client re-authenticates at 85-95% of the lifetime.
        let times = SessionTimes {
            reauth_at: lifetime.map(|l| started + l.mul_f64(0.85)),
            stale_at: lifetime.map(|l| started + l.mul_f64(0.95)),
        };
        *session.times.lock().unwrap_or_else(|e| e.into_inner()) = times;
        Ok(())
    }

    /// Sends one request on a writer already held and waits for its answer
    /// (for the SASL exchange, which must not interleave with other requests).
    pub(crate) async fn call_locked<R>(
        &self,
        writer: &mut Writer,
        req: R,
        version: i16,
    ) -> Result<R::Response>
    where
        R: Request,
    {
        let api = api_key::<R>()?;
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = self.encode_frame(&req, api, version, correlation_id)?;
        let rx = self.shared.register(correlation_id)?;
        if let Err(e) = writer.write_all(&frame).await {
            self.shared.fail(format!("write failed: {e}"));
            return Err(Error::Io(e));
        }
        decode_response(receive(rx).await?, api, version)
    }

    /// Requests written whose responses have not arrived yet.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().waiters.len()
    }

    /// Highest version of `R` that both sides speak.
    pub fn version_for<R: Request>(&self) -> Result<i16> {
        self.version_at_most::<R>(R::VERSIONS.max)
    }

    /// Like [`Self::version_for`], but never above `cap`. Useful when a newer
    /// version changes semantics the caller does not handle (for instance
    /// topic ids replacing topic names).
    pub fn version_at_most<R: Request>(&self, cap: i16) -> Result<i16> {
        let api = api_key::<R>()?;
        let broker = self
            .broker_versions(api)
            .ok_or(Error::UnsupportedApi(api))?;
        let client = VersionRange {
            min: R::VERSIONS.min,
            max: R::VERSIONS.max.min(cap),
        };
        let common = client.intersect(&broker);
        if common.is_empty() {
            return Err(Error::NoCommonVersion {
                api,
                client,
                broker,
            });
        }
        Ok(common.max)
    }

    /// Sends a request at the highest common version and waits for its response.
    ///
    /// A Produce request with `acks = 0` gets no response from the broker; it
    /// resolves as soon as it is written, to an empty `ProduceResponse`.
    ///
    /// The highest common version may address topics by id only (Produce and
    /// Fetch from v13); use [`Self::version_at_most`] with
    /// [`Self::send_versioned`] to stay on name-based versions.
    pub async fn send<R>(&self, req: R) -> Result<R::Response>
    where
        R: Request + 'static,
        R::Response: 'static,
    {
        self.submit(req).await?.await
    }

    /// Sends a request at an explicit version and waits for its response.
    pub async fn send_versioned<R>(&self, req: R, version: i16) -> Result<R::Response>
    where
        R: Request + 'static,
        R::Response: 'static,
    {
        self.submit_versioned(req, version).await?.await
    }

    /// Writes a request at the highest common version and returns without
    /// waiting for the response; await the returned future for it. This is
    /// what allows several requests in flight on one connection.
    pub async fn submit<R>(&self, req: R) -> Result<ResponseFuture<R::Response>>
    where
        R: Request + 'static,
        R::Response: 'static,
    {
        let version = self.version_for::<R>()?;
        self.submit_unchecked(&req, version).await
    }

    /// Like [`Self::submit`] at an explicit version, which both sides must support.
    pub async fn submit_versioned<R>(
        &self,
        req: R,
        version: i16,
    ) -> Result<ResponseFuture<R::Response>>
    where
        R: Request + 'static,
        R::Response: 'static,
    {
        let api = api_key::<R>()?;
        let broker = self
            .broker_versions(api)
            .ok_or(Error::UnsupportedApi(api))?;
        let in_range = |r: &VersionRange| r.min <= version && version <= r.max;
        if !in_range(&R::VERSIONS) || !in_range(&broker) {
            return Err(Error::VersionNotUsable {
                api,
                version,
                client: R::VERSIONS,
                broker,
            });
        }
        self.submit_unchecked(&req, version).await
    }

    async fn submit_unchecked<R>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<ResponseFuture<R::Response>>
    where
        R: Request + 'static,
        R::Response: 'static,
    {
        let api = api_key::<R>()?;
        let no_response = is_fire_and_forget(req);
        let rx = self.write_request(req, version, !no_response).await?;
        let state = match rx {
            Some(rx) => State::Waiting(rx),
            None => State::Ready(Some(empty_produce_response::<R::Response>()?)),
        };
        Ok(ResponseFuture {
            state,
            api,
            version,
        })
    }

    /// Encodes and writes one request; registers a waiter first when a
    /// response is expected so the reader can never see an unknown id.
    async fn write_request<R: Request>(
        &self,
        req: &R,
        version: i16,
        expect_response: bool,
    ) -> Result<Option<oneshot::Receiver<FrameResult>>> {
        let api = api_key::<R>()?;
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let frame = self.encode_frame(req, api, version, correlation_id)?;

        let rx = if expect_response {
            Some(self.shared.register(correlation_id)?)
        } else {
            if let Some(reason) = self.close_reason() {
                return Err(Error::ConnectionClosed(reason));
            }
            None
        };

        let mut writer = self.writer.lock().await;
        let mut guard = WriteGuard {
            shared: &self.shared,
            armed: true,
        };
        // KIP-368: re-authenticate in band once the session nears its end.
        // The guard covers it: an exchange abandoned half way leaves the
        // broker expecting the rest of it.
        if let Some(session) = &self.session {
            if session
                .times()
                .reauth_at
                .is_some_and(|t| Instant::now() >= t)
            {
                if let Err(e) = self.authenticate_locked(&mut writer).await {
                    guard.armed = false;
                    self.shared.fail(format!("re-authentication failed: {e}"));
                    return Err(e);
                }
            }
        }
        if let Err(e) = writer.write_all(&frame).await {
            guard.armed = false;
            self.shared.fail(format!("write failed: {e}"));
            return Err(Error::Io(e));
        }
        guard.armed = false;
        Ok(rx)
    }

    fn encode_frame<R: Request>(
        &self,
        req: &R,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<BytesMut> {
        let encode_err = |source| Error::Encode {
            api,
            version,
            source,
        };
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let header_version = R::header_version(version);
        let size = header
            .compute_size(header_version)
            .and_then(|h| Ok(h + req.compute_size(version)?))
            .map_err(encode_err)?;
        let size_i32 = i32::try_from(size)
            .map_err(|_| encode_err(anyhow::anyhow!("request of {size} bytes is too large")))?;
        let mut buf = BytesMut::with_capacity(4 + size);
        buf.put_i32(size_i32);
        header
            .encode(&mut buf, header_version)
            .and_then(|()| req.encode(&mut buf, version))
            .map_err(encode_err)?;
        if buf.len() != 4 + size {
            return Err(encode_err(anyhow::anyhow!(
                "encoded {} bytes but computed {size}",
                buf.len() - 4
            )));
        }
        Ok(buf)
    }

    /// ApiVersions at v3, retrying at v0 when the broker says it does not know
    /// v3 (older brokers answer that with a v0-encoded error response).
    async fn handshake(&self) -> Result<HashMap<i16, VersionRange>> {
        let resp = match self.api_versions_at(API_VERSIONS_MAX).await? {
            Ok(resp) => resp,
            Err(_) => match self.api_versions_at(0).await? {
                Ok(resp) => resp,
                Err(resp) => resp,
            },
        };
        Error::check_code(resp.error_code, None, || {
            format!("ApiVersions from {}", self.addr)
        })?;
        Ok(resp
            .api_keys
            .iter()
            .map(|k| {
                (
                    k.api_key,
                    VersionRange {
                        min: k.min_version,
                        max: k.max_version,
                    },
                )
            })
            .collect())
    }

    /// Returns `Err(response)` when the broker rejected the version itself.
    async fn api_versions_at(
        &self,
        version: i16,
    ) -> Result<std::result::Result<ApiVersionsResponse, ApiVersionsResponse>> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("cairn-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let rx = self
            .write_request(&req, version, true)
            .await?
            .expect("ApiVersions always has a response");
        let mut frame = receive(rx).await?;
        let decode_err = |source| Error::Decode {
            api: ApiKey::ApiVersions,
            version,
            source,
        };
        // The ApiVersions response header is always v0, whatever the version.
        ResponseHeader::decode(&mut frame, 0).map_err(decode_err)?;
        let unsupported = ResponseError::UnsupportedVersion.code();
        if version > 0
            && frame.len() >= 2
            && i16::from_be_bytes([frame[0], frame[1]]) == unsupported
        {
            let resp =
                ApiVersionsResponse::decode(&mut frame, 0).map_err(|source| Error::Decode {
                    api: ApiKey::ApiVersions,
                    version: 0,
                    source,
                })?;
            return Ok(Err(resp));
        }
        Ok(Ok(
            ApiVersionsResponse::decode(&mut frame, version).map_err(decode_err)?
        ))
    }
}

/// A response that will arrive later; resolves to the decoded message.
pub struct ResponseFuture<T> {
    state: State<T>,
    api: ApiKey,
    version: i16,
}

enum State<T> {
    Ready(Option<T>),
    Waiting(oneshot::Receiver<FrameResult>),
}

// The message is never pinned in place, only moved out when ready.
impl<T> Unpin for ResponseFuture<T> {}

impl<T> ResponseFuture<T> {
    /// The version the request was sent with (and the response is decoded at).
    pub fn version(&self) -> i16 {
        self.version
    }
}

impl<T: Decodable + HeaderVersion> Future for ResponseFuture<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            State::Ready(value) => Poll::Ready(Ok(value
                .take()
                .expect("ResponseFuture polled after completion"))),
            State::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(received) => {
                    let frame = flatten_received(received);
                    Poll::Ready(frame.and_then(|f| decode_response(f, this.api, this.version)))
                }
            },
        }
    }
}

fn flatten_received(
    received: std::result::Result<FrameResult, oneshot::error::RecvError>,
) -> FrameResult {
    match received {
        Ok(frame) => frame,
        Err(_) => Err(Error::ConnectionClosed(
            "connection dropped before the response arrived".to_string(),
        )),
    }
}

async fn receive(rx: oneshot::Receiver<FrameResult>) -> FrameResult {
    flatten_received(rx.await)
}

fn decode_response<T: Decodable + HeaderVersion>(
    mut frame: Bytes,
    api: ApiKey,
    version: i16,
) -> Result<T> {
    let decode_err = |source| Error::Decode {
        api,
        version,
        source,
    };
    ResponseHeader::decode(&mut frame, T::header_version(version)).map_err(decode_err)?;
    T::decode(&mut frame, version).map_err(decode_err)
}

fn api_key<R: Request>() -> Result<ApiKey> {
    ApiKey::try_from(R::KEY).map_err(|_| Error::Protocol(format!("unknown API key {}", R::KEY)))
}

/// Produce with acks=0 is the one request Kafka never answers.
fn is_fire_and_forget<R: 'static>(req: &R) -> bool {
    (req as &dyn Any)
        .downcast_ref::<ProduceRequest>()
        .is_some_and(|p| p.acks == 0)
}

fn empty_produce_response<T: 'static>() -> Result<T> {
    let empty: Box<dyn Any> = Box::new(ProduceResponse::default());
    empty
        .downcast::<T>()
        .map(|b| *b)
        .map_err(|_| Error::Protocol("acks=0 response type mismatch".to_string()))
}

async fn tls_handshake(
    stream: TcpStream,
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<TlsStream<TcpStream>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| Error::Protocol(format!("'{host}' is not a valid TLS server name: {e}")))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|source| Error::Tls {
            addr: addr.to_string(),
            source,
        })
}

async fn read_loop<R: AsyncRead + Unpin>(read: R, shared: Arc<Shared>) {
    let reason = match read_frames(read, &shared).await {
        Ok(()) => "closed by the broker".to_string(),
        Err(e) => e.to_string(),
    };
    shared.fail(reason);
}

async fn read_frames<R: AsyncRead + Unpin>(read: R, shared: &Shared) -> Result<()> {
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    loop {
        let len = match reader.read_i32().await {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if len < 4 || len as usize > MAX_FRAME_BYTES {
            return Err(Error::Protocol(format!("bad response frame length {len}")));
        }
        let len = len as usize;
        // read_buf fills spare capacity directly, avoiding a zeroing pass.
        let mut buf = BytesMut::with_capacity(len);
        while buf.len() < len {
            let want = (len - buf.len()) as u64;
            if (&mut reader).take(want).read_buf(&mut buf).await? == 0 {
                return Err(Error::ConnectionClosed(
                    "broker closed the connection mid-frame".to_string(),
                ));
            }
        }
        let frame = buf.freeze();
        let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        if !shared.complete(correlation_id, frame) {
            return Err(Error::Protocol(format!(
                "response for unknown correlation id {correlation_id}"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeBroker, FakeConfig};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, TopicName};

    fn metadata_for(topic: &str) -> MetadataRequest {
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]))
    }

    fn topic_names(resp: &kafka_protocol::messages::MetadataResponse) -> Vec<String> {
        resp.topics
            .iter()
            .map(|t| t.name.as_ref().unwrap().0.to_string())
            .collect()
    }

    fn with_metadata_range(min: i16, max: i16) -> FakeConfig {
        let mut config = FakeConfig::default();
        for api in &mut config.apis {
            if api.0 == ApiKey::Metadata {
                *api = (ApiKey::Metadata, min, max);
            }
        }
        config
    }

    #[tokio::test]
    async fn handshake_then_highest_common_version() {
        // v4 uses the classic headers, v12 the flexible ones (tagged fields);
        // the fake broker rejects any frame that does not decode exactly.
        for max in [4, 12] {
            let broker = FakeBroker::start(with_metadata_range(0, max)).await;
            let conn = Connection::connect(&broker.addr, "test-client")
                .await
                .unwrap();
            assert_eq!(
                conn.broker_versions(ApiKey::Metadata),
                Some(VersionRange { min: 0, max })
            );
            let resp = conn.send(metadata_for("alpha")).await.unwrap();
            assert_eq!(topic_names(&resp), ["alpha"]);

            let seen = broker.seen();
            assert_eq!(seen.len(), 2);
            assert_eq!(seen[0].api_key, ApiKey::ApiVersions as i16);
            assert_eq!(seen[0].version, API_VERSIONS_MAX);
            assert_eq!(seen[1].api_key, ApiKey::Metadata as i16);
            assert_eq!(seen[1].version, max);
            assert_ne!(seen[0].correlation_id, seen[1].correlation_id);
            assert_eq!(seen[1].client_id.as_deref(), Some("test-client"));
            assert!(broker.errors().is_empty(), "{:?}", broker.errors());
        }
    }

    #[tokio::test]
    async fn api_versions_falls_back_to_v0() {
        let config = FakeConfig {
            api_versions_max: 0,
            ..FakeConfig::default()
        };
        let broker = FakeBroker::start(config).await;
        let conn = Connection::connect(&broker.addr, "test-client")
            .await
            .unwrap();
        let versions: Vec<i16> = broker.seen().iter().map(|s| s.version).collect();
        assert_eq!(versions, [API_VERSIONS_MAX, 0]);
        assert!(conn.broker_versions(ApiKey::Metadata).is_some());
        let resp = conn.send(metadata_for("beta")).await.unwrap();
        assert_eq!(topic_names(&resp), ["beta"]);
        assert!(broker.errors().is_empty(), "{:?}", broker.errors());
    }

    #[tokio::test]
    async fn pipelined_responses_are_matched_by_correlation_id() {
        let config = FakeConfig {
            reverse_batches_of: 3,
            ..FakeConfig::default()
        };
        let broker = FakeBroker::start(config).await;
        let conn = Connection::connect(&broker.addr, "test-client")
            .await
            .unwrap();
        let mut futures = Vec::new();
        for name in ["t0", "t1", "t2"] {
            futures.push(conn.submit(metadata_for(name)).await.unwrap());
        }
        // The broker answers only once it has all three, in reverse order.
        assert_eq!(conn.in_flight(), 3);
        let mut names = Vec::new();
        for f in futures {
            names.push(topic_names(&f.await.unwrap()).remove(0));
        }
        assert_eq!(names, ["t0", "t1", "t2"]);
        assert_eq!(conn.in_flight(), 0);
    }

    #[tokio::test]
    async fn version_negotiation_errors() {
        let mut config = with_metadata_range(0, 4);
        config.apis.retain(|a| a.0 != ApiKey::CreateTopics);
        for api in &mut config.apis {
            if api.0 == ApiKey::Produce {
                *api = (ApiKey::Produce, 20, 21);
            }
        }
        let broker = FakeBroker::start(config).await;
        let conn = Connection::connect(&broker.addr, "test-client")
            .await
            .unwrap();

        let err = conn.send(ProduceRequest::default()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoCommonVersion {
                    api: ApiKey::Produce,
                    ..
                }
            ),
            "{err}"
        );
        let err = conn.send(CreateTopicsRequest::default()).await.unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedApi(ApiKey::CreateTopics)),
            "{err}"
        );
        let err = conn.send_versioned(metadata_for("x"), 9).await.unwrap_err();
        assert!(
            matches!(err, Error::VersionNotUsable { version: 9, .. }),
            "{err}"
        );
        assert_eq!(conn.version_at_most::<MetadataRequest>(2).unwrap(), 2);

        // None of the refused requests reached the wire.
        assert_eq!(broker.seen().len(), 1);
        let resp = conn.send_versioned(metadata_for("y"), 1).await.unwrap();
        assert_eq!(topic_names(&resp), ["y"]);
        assert_eq!(broker.seen()[1].version, 1);
    }

    #[tokio::test]
    async fn acks_zero_produce_registers_no_waiter() {
        let broker = FakeBroker::start(FakeConfig::default()).await;
        let conn = Connection::connect(&broker.addr, "test-client")
            .await
            .unwrap();
        let produce = ProduceRequest::default().with_acks(0).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("nowhere")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(
                        crate::records::encode_batch(
                            &[crate::records::ProduceRecord::new("v")],
                            kafka_protocol::records::Compression::None,
                        )
                        .unwrap(),
                    ))]),
        ]);
        let resp = conn.send(produce).await.unwrap();
        assert!(resp.responses.is_empty());
        assert_eq!(conn.in_flight(), 0);

        // The connection stays in step: the next answer is the metadata one.
        let resp = conn.send(metadata_for("after")).await.unwrap();
        assert_eq!(topic_names(&resp), ["after"]);
        let apis: Vec<i16> = broker.seen().iter().map(|s| s.api_key).collect();
        assert_eq!(
            apis,
            [
                ApiKey::ApiVersions as i16,
                ApiKey::Produce as i16,
                ApiKey::Metadata as i16
            ]
        );
        assert!(broker.errors().is_empty(), "{:?}", broker.errors());
    }

    #[tokio::test]
    async fn broker_closing_fails_pending_and_later_requests() {
        let config = FakeConfig {
            close_on_request: Some(1),
            ..FakeConfig::default()
        };
        let broker = FakeBroker::start(config).await;
        let conn = Connection::connect(&broker.addr, "test-client")
            .await
            .unwrap();
        let err = conn.send(metadata_for("a")).await.unwrap_err();
        assert!(matches!(err, Error::ConnectionClosed(_)), "{err}");
        assert!(conn.is_closed());
        let err = conn.send(metadata_for("b")).await.unwrap_err();
        assert!(matches!(err, Error::ConnectionClosed(_)), "{err}");
    }

    #[tokio::test]
    async fn oversized_frame_is_a_protocol_error() {
        let config = FakeConfig {
            bogus_length: true,
            ..FakeConfig::default()
        };
        let broker = FakeBroker::start(config).await;
        let conn = Connection::connect(&broker.addr, "test-client")
            .await
            .unwrap();
        let err = conn.send(metadata_for("a")).await.unwrap_err();
        let reason = conn.close_reason().unwrap();
        assert!(reason.contains("frame length"), "{reason}");
        assert!(matches!(err, Error::ConnectionClosed(_)), "{err}");
    }

    #[tokio::test]
    async fn handshake_times_out_on_a_mute_peer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let holder = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(sock);
        });
        let limit = Duration::from_millis(100);
        let err = Connection::connect_timeout(&addr, "test-client", limit)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Timeout { after, .. } if after == limit),
            "{err}"
        );
        holder.abort();
    }

    #[tokio::test]
    async fn connect_error_names_the_address() {
        // Bind and drop to get a port that is very likely closed.
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let err = Connection::connect(&addr, "test-client").await.unwrap_err();
        assert!(
            matches!(&err, Error::Connect { addr: a, .. } if *a == addr),
            "{err}"
        );
    }
}
