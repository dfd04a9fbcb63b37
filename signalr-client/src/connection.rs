//! The hub connection: starting, the session's reader and writer, invocations, streams,
//! handlers, automatic and stateful reconnect.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use serde::de::DeserializeOwned;
use signalr_core::{
    Ack, CancelInvocation, Completion, CompletionResult, Encoding, HandshakeRequest,
    HandshakeResponse, HubMessage, HubProtocol, Invocation, MessageReader, RawValue, Sequence,
    StreamInvocation, StreamItem, TransportType,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::args::{Arguments, Upload};
use crate::builder::Options;
use crate::error::{Error, ErrorKind};
use crate::handlers::Handler;
use crate::negotiate::negotiate;
use crate::retry::RetryContext;
use crate::transport::{self, Ended, RequestParts, Sink, Started};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Not connected; [`HubConnection::start`] connects.
    Disconnected,
    /// Starting.
    Connecting,
    /// Connected.
    Connected,
    /// Lost; reconnecting under the retry policy.
    Reconnecting,
    /// Stopping.
    Disconnecting,
}

/// Something that happened to the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The connection was lost and automatic reconnect starts; with the reason.
    Reconnecting(Option<String>),
    /// Reconnected, with the new connection id (none when negotiation is skipped).
    Reconnected(Option<String>),
    /// The connection closed for good: after `stop` (no error) or a failure.
    Closed(Option<String>),
}

type ErasedHandler =
    Arc<dyn Fn(Vec<RawValue>, Encoding) -> crate::handlers::HandlerOutput + Send + Sync>;

/// A connection to a hub. Cheap to clone; every clone is the same connection, usable
/// from any task.
///
/// ```no_run
/// use futures_util::StreamExt;
/// use signalr_client::HubConnectionBuilder;
///
/// # async fn run() -> Result<(), signalr_client::Error> {
/// let connection = HubConnectionBuilder::new("http://localhost:5000/chat").build()?;
/// connection.on("ReceiveMessage", |user: String, text: String| async move {
///     println!("{user}: {text}");
/// });
/// connection.start().await?;
///
/// let sum: i32 = connection.invoke("Add", (1, 2)).await?;
/// connection.send("SendMessage", ("me", "hello")).await?;
/// let mut counter = connection.stream::<i32, _>("Counter", (10,)).await?;
/// while let Some(item) = counter.next().await {
///     println!("{}", item?);
/// }
/// connection.stop().await;
/// # let _ = sum;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HubConnection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HubConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnection")
            .field("url", &self.inner.options.url.as_str())
            .field("state", &self.state())
            .finish()
    }
}

struct Inner {
    options: Options,
    http: reqwest::Client,
    cookies: Arc<reqwest::cookie::Jar>,
    handlers: Mutex<HashMap<String, Vec<(u64, ErasedHandler)>>>,
    state: watch::Sender<ConnectionState>,
    session: Mutex<Option<Arc<Session>>>,
    events: broadcast::Sender<ConnectionEvent>,
    ids: AtomicU64,
    lifecycle: tokio::sync::Mutex<()>,
    /// Cancelled by `stop`; replaced by `start`.
    stopping: Mutex<CancellationToken>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a whole-value update; a poisoned value is consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An invocation or stream awaiting the server.
enum Pending {
    Invoke(oneshot::Sender<Result<CompletionResult, Error>>),
    Stream(mpsc::UnboundedSender<Result<RawValue, Error>>),
}

/// Stateful reconnect bookkeeping (the client's half).
struct Stateful {
    unacked: Mutex<VecDeque<(i64, Bytes)>>,
    next_sent: std::sync::atomic::AtomicI64,
    next_received: std::sync::atomic::AtomicI64,
    processed: std::sync::atomic::AtomicI64,
    acked: std::sync::atomic::AtomicI64,
}

impl Stateful {
    fn new() -> Self {
        Self {
            unacked: Mutex::new(VecDeque::new()),
            next_sent: 1.into(),
            next_received: 1.into(),
            processed: 0.into(),
            acked: 0.into(),
        }
    }
}

/// A call's wire arguments and its upload streams with their stream ids.
type Prepared = (Vec<RawValue>, Vec<(String, Upload)>);

/// What the writer sends.
struct Outgoing {
    bytes: Bytes,
    tracked: bool,
}

/// One logical connection to the server.
struct Session {
    connection_id: Option<String>,
    protocol: Arc<dyn HubProtocol>,
    outbound: mpsc::UnboundedSender<Outgoing>,
    pending: Mutex<HashMap<String, Pending>>,
    stateful: Option<Stateful>,
    /// Where to reconnect a dropped stateful transport.
    reconnect: Option<(Url, RequestParts)>,
    closed: CancellationToken,
    end: Mutex<Option<SessionEnd>>,
}

impl Session {
    fn send(&self, message: &HubMessage) -> Result<(), Error> {
        let bytes = self.protocol.to_bytes(message)?;
        self.outbound
            .send(Outgoing {
                bytes,
                tracked: message.is_trackable(),
            })
            .map_err(|_| Error::new(ErrorKind::NotConnected))
    }

    fn fail_pending(&self, reason: Option<String>) {
        let pending: Vec<Pending> = lock(&self.pending).drain().map(|(_, p)| p).collect();
        for p in pending {
            let error = Error::new(ErrorKind::Closed(reason.clone()));
            match p {
                Pending::Invoke(tx) => {
                    let _ = tx.send(Err(error));
                }
                Pending::Stream(tx) => {
                    let _ = tx.send(Err(error));
                }
            }
        }
    }
}

/// Why a session ended.
struct SessionEnd {
    /// The error, if it was not a clean end.
    error: Option<String>,
    /// Whether the client may reconnect (a Close without `allowReconnect` says no).
    allow_reconnect: bool,
}

impl HubConnection {
    pub(crate) fn new(options: Options) -> Result<Self, Error> {
        let cookies = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(cookies.clone())
            .connect_timeout(options.handshake_timeout)
            .user_agent(transport::user_agent())
            .build()
            .map_err(|e| Error::new(ErrorKind::Config(e.to_string())))?;
        let (state, _) = watch::channel(ConnectionState::Disconnected);
        let (events, _) = broadcast::channel(64);
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                http,
                cookies,
                handlers: Mutex::new(HashMap::new()),
                state,
                session: Mutex::new(None),
                events,
                ids: AtomicU64::new(0),
                lifecycle: tokio::sync::Mutex::new(()),
                stopping: Mutex::new(CancellationToken::new()),
            }),
        })
    }

    /// The connection's state.
    pub fn state(&self) -> ConnectionState {
        *self.inner.state.borrow()
    }

    /// Waits for state changes: the receiver sees the current state and every later one.
    pub fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.subscribe()
    }

    /// Reconnecting, reconnected and closed events, as they happen from now on.
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner.events.subscribe()
    }

    /// The connection id negotiate gave, while connected (`None` with skipped
    /// negotiation).
    pub fn connection_id(&self) -> Option<String> {
        lock(&self.inner.session)
            .as_ref()
            .and_then(|s| s.connection_id.clone())
    }

    /// Registers a handler for server calls to `method` (matched case-insensitively).
    /// Its parameters are the call's arguments, deserialized in order. Returning a value
    /// answers a client-result invocation; several handlers may share a method. Returns an
    /// id for [`off`](Self::off).
    pub fn on<M, H: Handler<M>>(&self, method: &str, handler: H) -> u64 {
        let id = self.inner.ids.fetch_add(1, Ordering::Relaxed);
        let erased: ErasedHandler = Arc::new(move |args, encoding| handler.call(args, encoding));
        lock(&self.inner.handlers)
            .entry(method.to_lowercase())
            .or_default()
            .push((id, erased));
        id
    }

    /// Removes the handler `id` of `method`, or all of its handlers when `id` is `None`.
    pub fn off(&self, method: &str, id: Option<u64>) {
        let mut handlers = lock(&self.inner.handlers);
        let key = method.to_lowercase();
        match id {
            None => {
                handlers.remove(&key);
            }
            Some(id) => {
                if let Some(list) = handlers.get_mut(&key) {
                    list.retain(|(i, _)| *i != id);
                }
            }
        }
    }

    /// Connects: negotiates, picks a transport, handshakes.
    pub async fn start(&self) -> Result<(), Error> {
        let _guard = self.inner.lifecycle.lock().await;
        if self.state() != ConnectionState::Disconnected {
            return Err(Error::new(ErrorKind::Config(
                "Cannot start a HubConnection that is not in the 'Disconnected' state.".into(),
            )));
        }
        let stop = CancellationToken::new();
        *lock(&self.inner.stopping) = stop.clone();
        self.inner.state.send_replace(ConnectionState::Connecting);
        match Box::pin(connect(&self.inner)).await {
            Ok(session) => {
                self.run(session, stop);
                self.inner.state.send_replace(ConnectionState::Connected);
                Ok(())
            }
            Err(err) => {
                self.inner.state.send_replace(ConnectionState::Disconnected);
                Err(err)
            }
        }
    }

    /// Disconnects: sends a Close, closes the transport, fails pending invocations, stops
    /// reconnecting.
    pub async fn stop(&self) {
        let _guard = self.inner.lifecycle.lock().await;
        lock(&self.inner.stopping).cancel();
        let mut changes = self.inner.state.subscribe();
        let session = lock(&self.inner.session).clone();
        if let Some(session) = session {
            self.inner
                .state
                .send_replace(ConnectionState::Disconnecting);
            let _ = session.send(&HubMessage::Close(signalr_core::Close::default()));
            session.closed.cancel();
        }
        // Wait for the background task to settle (it reports Closed).
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            changes.wait_for(|s| *s == ConnectionState::Disconnected),
        )
        .await;
        self.inner.state.send_replace(ConnectionState::Disconnected);
    }

    fn session(&self) -> Result<Arc<Session>, Error> {
        match (self.state(), lock(&self.inner.session).clone()) {
            (ConnectionState::Connected, Some(session)) => Ok(session),
            _ => Err(Error::new(ErrorKind::NotConnected)),
        }
    }

    fn next_id(&self) -> String {
        self.inner.ids.fetch_add(1, Ordering::Relaxed).to_string()
    }

    fn prepare<M>(&self, session: &Session, args: impl Arguments<M>) -> Result<Prepared, Error> {
        let (values, uploads) = args.into_parts(session.protocol.encoding())?;
        let uploads = uploads.into_iter().map(|u| (self.next_id(), u)).collect();
        Ok((values, uploads))
    }

    fn start_uploads(session: &Arc<Session>, uploads: Vec<(String, Upload)>) {
        let encoding = session.protocol.encoding();
        for (id, upload) in uploads {
            let session = Arc::downgrade(session);
            let mut items = upload.into_stream(encoding);
            tokio::spawn(async move {
                let mut error = None;
                while let Some(item) = items.next().await {
                    let Some(session) = session.upgrade() else {
                        return;
                    };
                    match item {
                        Ok(item) => {
                            if session
                                .send(&HubMessage::StreamItem(StreamItem::new(id.clone(), item)))
                                .is_err()
                            {
                                return;
                            }
                        }
                        Err(err) => {
                            error = Some(err);
                            break;
                        }
                    }
                }
                if let Some(session) = session.upgrade() {
                    let completion = match error {
                        Some(error) => Completion::with_error(id, error),
                        None => Completion::void(id),
                    };
                    let _ = session.send(&HubMessage::Completion(completion));
                }
            });
        }
    }

    /// Invokes `method` and waits for its result, deserialized into `T` (use `()` for a
    /// method without one). `args` is `()`, a tuple (`(a, b)`, `("one",)`), or a
    /// `Vec<RawValue>`; an [`Upload`] among them streams to the method.
    ///
    /// Dropping the future stops waiting (the server still runs the method).
    pub async fn invoke<T: DeserializeOwned, M>(
        &self,
        method: &str,
        args: impl Arguments<M>,
    ) -> Result<T, Error> {
        let session = self.session()?;
        let (values, uploads) = self.prepare(&session, args)?;
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        lock(&session.pending).insert(id.clone(), Pending::Invoke(tx));
        let guard = PendingGuard {
            session: Arc::downgrade(&session),
            id: id.clone(),
        };
        let stream_ids = uploads.iter().map(|(i, _)| i.clone()).collect();
        session.send(&HubMessage::Invocation(
            Invocation::new(method, values)
                .with_invocation_id(id)
                .with_stream_ids(stream_ids),
        ))?;
        Self::start_uploads(&session, uploads);
        let outcome = rx
            .await
            .map_err(|_| Error::new(ErrorKind::Closed(None)))??;
        drop(guard);
        match outcome {
            CompletionResult::Value(value) => Ok(value.deserialize_owned()?),
            CompletionResult::Void => {
                Ok(RawValue::null(session.protocol.encoding()).deserialize_owned()?)
            }
            CompletionResult::Error(error) => Err(Error::new(ErrorKind::Hub(error))),
        }
    }

    /// Invokes `method` without waiting for it to run (no result, no error from the hub).
    pub async fn send<M>(&self, method: &str, args: impl Arguments<M>) -> Result<(), Error> {
        let session = self.session()?;
        let (values, uploads) = self.prepare(&session, args)?;
        let stream_ids = uploads.iter().map(|(i, _)| i.clone()).collect();
        session.send(&HubMessage::Invocation(
            Invocation::new(method, values).with_stream_ids(stream_ids),
        ))?;
        Self::start_uploads(&session, uploads);
        Ok(())
    }

    /// Starts a server-to-client stream. Items arrive as they are produced; dropping the
    /// returned stream before it ends cancels it on the server.
    pub async fn stream<T: DeserializeOwned, M>(
        &self,
        method: &str,
        args: impl Arguments<M>,
    ) -> Result<HubStream<T>, Error> {
        let session = self.session()?;
        let (values, uploads) = self.prepare(&session, args)?;
        let id = self.next_id();
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&session.pending).insert(id.clone(), Pending::Stream(tx));
        let stream_ids = uploads.iter().map(|(i, _)| i.clone()).collect();
        let sent = session.send(&HubMessage::StreamInvocation(
            StreamInvocation::new(id.clone(), method, values).with_stream_ids(stream_ids),
        ));
        if let Err(err) = sent {
            lock(&session.pending).remove(&id);
            return Err(err);
        }
        Self::start_uploads(&session, uploads);
        Ok(HubStream {
            rx,
            id,
            session: Arc::downgrade(&session),
            done: false,
            _item: std::marker::PhantomData,
        })
    }

    /// Runs a session in the background, then reconnects or reports the close.
    fn run(&self, session: Arc<Session>, stop: CancellationToken) {
        let inner = self.inner.clone();
        *lock(&inner.session) = Some(session.clone());
        tokio::spawn(async move {
            let mut session = session;
            loop {
                let end = session_ended(&session).await;
                *lock(&inner.session) = None;
                session.fail_pending(end.error.clone());
                let stopped = stop.is_cancelled();
                let retry = inner
                    .options
                    .retry
                    .clone()
                    .filter(|_| !stopped && end.allow_reconnect);
                let Some(policy) = retry else {
                    inner.state.send_replace(ConnectionState::Disconnected);
                    let _ = inner.events.send(ConnectionEvent::Closed(if stopped {
                        None
                    } else {
                        end.error
                    }));
                    return;
                };
                inner.state.send_replace(ConnectionState::Reconnecting);
                let _ = inner
                    .events
                    .send(ConnectionEvent::Reconnecting(end.error.clone()));
                let lost = Instant::now();
                let mut attempts = 0u32;
                let mut reason = end.error.unwrap_or_else(|| "connection lost".to_owned());
                let next = loop {
                    let context = RetryContext {
                        previous_retry_count: attempts,
                        elapsed: lost.elapsed(),
                        reason: reason.clone(),
                    };
                    let Some(delay) = policy.next_retry_delay(&context) else {
                        break None;
                    };
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = stop.cancelled() => break None,
                    }
                    attempts += 1;
                    match Box::pin(connect(&inner)).await {
                        Ok(next) => break Some(next),
                        Err(err) => {
                            tracing::debug!(error = %err, attempt = attempts, "reconnect attempt failed");
                            reason = err.to_string();
                        }
                    }
                };
                match next {
                    Some(next) if !stop.is_cancelled() => {
                        let id = next.connection_id.clone();
                        *lock(&inner.session) = Some(next.clone());
                        inner.state.send_replace(ConnectionState::Connected);
                        let _ = inner.events.send(ConnectionEvent::Reconnected(id));
                        session = next;
                    }
                    _ => {
                        inner.state.send_replace(ConnectionState::Disconnected);
                        let error = (!stop.is_cancelled()).then_some(reason);
                        let _ = inner.events.send(ConnectionEvent::Closed(error));
                        return;
                    }
                }
            }
        });
    }
}

/// Removes a pending invocation when its future is dropped.
struct PendingGuard {
    session: Weak<Session>,
    id: String,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if let Some(session) = self.session.upgrade() {
            lock(&session.pending).remove(&self.id);
        }
    }
}

/// Items of a server-to-client stream. Dropping it before the end cancels the stream on
/// the server.
pub struct HubStream<T> {
    rx: mpsc::UnboundedReceiver<Result<RawValue, Error>>,
    id: String,
    session: Weak<Session>,
    done: bool,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for HubStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubStream").field("id", &self.id).finish()
    }
}

impl<T: DeserializeOwned> Stream for HubStream<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(value))) => {
                Poll::Ready(Some(value.deserialize_owned().map_err(Error::from)))
            }
            Poll::Ready(Some(Err(err))) => {
                self.done = true;
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for HubStream<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(session) = self.session.upgrade() {
            if lock(&session.pending).remove(&self.id).is_some() {
                let _ = session.send(&HubMessage::CancelInvocation(CancelInvocation::new(
                    self.id.clone(),
                )));
            }
        }
    }
}

/// Makes a new session: token, negotiate (with redirects), transport fallback, handshake.
async fn connect(inner: &Arc<Inner>) -> Result<Arc<Session>, Error> {
    let options = &inner.options;
    let token = match &options.token {
        Some(provider) => Some(
            provider()
                .await
                .map_err(|e| Error::new(ErrorKind::Negotiate(e)))?,
        ),
        None => None,
    };
    let mut parts = RequestParts {
        http: inner.http.clone(),
        cookies: inner.cookies.clone(),
        headers: options.headers.clone(),
        token,
    };
    let format = options.protocol.transfer_format();
    if options.skip_negotiation {
        if !options.transports.contains(&TransportType::WebSockets) {
            return Err(Error::new(ErrorKind::Config(
                "Negotiation can only be skipped when using the WebSocket transport directly."
                    .into(),
            )));
        }
        let started =
            transport::start(TransportType::WebSockets, &options.url, format, &parts).await?;
        return handshake(inner, started, None, None, parts).await;
    }
    let mut failures = Vec::new();
    let mut negotiated = negotiate(&options.url, &mut parts, options.stateful_reconnect).await?;
    let offered: Vec<_> = negotiated.response.available_transports.clone();
    for entry in offered {
        let Some(kind) = entry.transport_type() else {
            continue;
        };
        if !options.transports.contains(&kind) {
            failures.push(format!("{kind} is disabled by the client."));
            continue;
        }
        if !entry.supports(format) {
            failures.push(format!("{kind} does not support {}.", format.as_str()));
            continue;
        }
        let token = negotiated
            .response
            .connection_token
            .clone()
            .or_else(|| negotiated.response.connection_id.clone())
            .unwrap_or_default();
        let mut url = negotiated.url.clone();
        url.query_pairs_mut().append_pair("id", &token);
        match transport::start(kind, &url, format, &parts).await {
            Ok(started) => {
                let stateful =
                    negotiated.response.use_stateful_reconnect && kind == TransportType::WebSockets;
                let reconnect = stateful.then(|| (url.clone(), parts.clone()));
                return handshake(
                    inner,
                    started,
                    negotiated.response.connection_id.clone(),
                    reconnect,
                    parts,
                )
                .await;
            }
            Err(err) => {
                failures.push(format!("{kind} failed: {err}"));
                // Tokens are single-use: negotiate again before the next transport.
                negotiated =
                    negotiate(&options.url, &mut parts, options.stateful_reconnect).await?;
            }
        }
    }
    Err(Error::new(ErrorKind::Transport(format!(
        "Unable to connect to the server with any of the available transports. {}",
        failures.join(" ")
    ))))
}

/// Sends the handshake, reads the answer, and starts the session's tasks.
async fn handshake(
    inner: &Arc<Inner>,
    started: Started,
    connection_id: Option<String>,
    reconnect: Option<(Url, RequestParts)>,
    _parts: RequestParts,
) -> Result<Arc<Session>, Error> {
    let options = &inner.options;
    let protocol = options.protocol.clone();
    let Started {
        kind,
        mut incoming,
        mut sink,
    } = started;
    // Version 2 only where stateful reconnect was agreed: older servers accept 1.
    let version = if reconnect.is_some() { 2 } else { 1 };
    sink.send(HandshakeRequest::new(protocol.name(), version).to_bytes())
        .await?;
    let mut buffer = BytesMut::new();
    let deadline = tokio::time::sleep(options.handshake_timeout);
    tokio::pin!(deadline);
    loop {
        let chunk = tokio::select! {
            chunk = incoming.next() => chunk,
            () = &mut deadline => {
                sink.close().await;
                return Err(Error::new(ErrorKind::Timeout("Server timeout elapsed without receiving a handshake response.")));
            }
        };
        match chunk {
            Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
            Some(Err(ended)) => {
                return Err(Error::new(ErrorKind::Handshake(
                    ended.error.unwrap_or_else(|| {
                        "the server closed the connection during the handshake".into()
                    }),
                )));
            }
            None => {
                return Err(Error::new(ErrorKind::Handshake(
                    "the transport ended".into(),
                )));
            }
        }
        match HandshakeResponse::parse(&mut buffer, None) {
            Ok(Some(response)) => {
                if let Some(error) = response.error {
                    sink.close().await;
                    return Err(Error::new(ErrorKind::Handshake(error)));
                }
                break;
            }
            Ok(None) => {}
            Err(err) => return Err(Error::new(ErrorKind::Handshake(err.to_string()))),
        }
    }
    let (outbound, rx) = mpsc::unbounded_channel();
    let session = Arc::new(Session {
        connection_id,
        protocol: protocol.clone(),
        outbound,
        pending: Mutex::new(HashMap::new()),
        stateful: reconnect.as_ref().map(|_| Stateful::new()),
        reconnect,
        closed: CancellationToken::new(),
        end: Mutex::new(None),
    });
    let reader = MessageReader::new(protocol, None);
    tokio::spawn(session_task(
        inner.clone(),
        session.clone(),
        kind,
        incoming,
        sink,
        rx,
        reader,
        buffer,
    ));
    Ok(session)
}

/// Waits until the session's task ends, and says why.
async fn session_ended(session: &Arc<Session>) -> SessionEnd {
    session.closed.cancelled().await;
    lock(&session.end).take().unwrap_or(SessionEnd {
        error: None,
        allow_reconnect: false,
    })
}

/// Ends the session with `end` (the first end wins).
fn finish(session: &Session, end: SessionEnd) {
    {
        let mut slot = lock(&session.end);
        if slot.is_none() && !session.closed.is_cancelled() {
            *slot = Some(end);
        }
    }
    session.closed.cancel();
}

const SERVER_TIMEOUT: &str = "Server timeout elapsed without receiving a message from the server.";

/// The session's reader and writer, in one task.
#[allow(clippy::too_many_arguments)]
async fn session_task(
    inner: Arc<Inner>,
    session: Arc<Session>,
    kind: TransportType,
    mut incoming: BoxStream<'static, Result<Bytes, Ended>>,
    mut sink: Box<dyn Sink>,
    mut outbound: mpsc::UnboundedReceiver<Outgoing>,
    mut reader: MessageReader<Arc<dyn HubProtocol>>,
    leftover: BytesMut,
) {
    let options = &inner.options;
    reader.feed(&leftover);
    // Long polling is its own keep-alive: no pings, no server timeout.
    let keep_alive = kind != TransportType::LongPolling;
    let mut last_sent = Instant::now();
    let mut last_received = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut acks = tokio::time::interval(Duration::from_secs(1));
    loop {
        loop {
            match reader.next_message() {
                Ok(Some(message)) => {
                    if let Some(end) = handle(&inner, &session, message) {
                        finish(&session, end);
                        sink.close().await;
                        return;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    finish(
                        &session,
                        SessionEnd {
                            error: Some(format!("Invalid data from the server: {err}")),
                            allow_reconnect: true,
                        },
                    );
                    sink.close().await;
                    return;
                }
            }
        }
        tokio::select! {
            chunk = incoming.next() => match chunk {
                Some(Ok(chunk)) => {
                    last_received = Instant::now();
                    reader.feed_bytes(chunk);
                }
                Some(Err(ended)) => {
                    match reattach(&session, options, ended.clone()).await {
                        Some((new_incoming, new_sink)) => {
                            incoming = new_incoming;
                            sink = new_sink;
                            reader = MessageReader::new(session.protocol.clone(), None);
                            last_received = Instant::now();
                        }
                        None => {
                            let error = ended.error.or_else(|| (!ended.graceful).then(|| "The connection was lost.".to_owned()));
                            finish(&session, SessionEnd { error, allow_reconnect: true });
                            return;
                        }
                    }
                }
                None => {
                    finish(&session, SessionEnd { error: None, allow_reconnect: true });
                    return;
                }
            },
            item = outbound.recv() => {
                let Some(first) = item else {
                    finish(&session, SessionEnd { error: None, allow_reconnect: false });
                    return;
                };
                let mut batch = BytesMut::new();
                let push = |item: Outgoing, batch: &mut BytesMut| {
                    if item.tracked {
                        if let Some(state) = &session.stateful {
                            let id = state.next_sent.fetch_add(1, Ordering::AcqRel);
                            lock(&state.unacked).push_back((id, item.bytes.clone()));
                        }
                    }
                    batch.extend_from_slice(&item.bytes);
                };
                push(first, &mut batch);
                while batch.len() < 64 * 1024 {
                    match outbound.try_recv() {
                        Ok(item) => push(item, &mut batch),
                        Err(_) => break,
                    }
                }
                if let Err(err) = sink.send(batch.freeze()).await {
                    // The transport failed under us; the incoming side reports it next, and a
                    // stateful session resends what was just lost.
                    tracing::debug!(error = %err, "send failed");
                }
                last_sent = Instant::now();
            }
            _ = tick.tick() => {
                if keep_alive && last_sent.elapsed() >= options.keep_alive_interval {
                    if let Ok(ping) = session.protocol.to_bytes(&HubMessage::Ping) {
                        let _ = sink.send(ping).await;
                    }
                    last_sent = Instant::now();
                }
                if keep_alive && last_received.elapsed() >= options.server_timeout {
                    finish(&session, SessionEnd { error: Some(SERVER_TIMEOUT.to_owned()), allow_reconnect: true });
                    sink.close().await;
                    return;
                }
            }
            _ = acks.tick(), if session.stateful.is_some() => {
                if let Some(state) = &session.stateful {
                    let processed = state.processed.load(Ordering::Acquire);
                    if state.acked.swap(processed, Ordering::AcqRel) < processed {
                        if let Ok(ack) = session.protocol.to_bytes(&HubMessage::Ack(Ack::new(processed))) {
                            let _ = sink.send(ack).await;
                        }
                    }
                }
            }
            () = session.closed.cancelled() => {
                // Stopping: send what is queued (the Close among it), then close.
                let mut batch = BytesMut::new();
                while let Ok(item) = outbound.try_recv() {
                    batch.extend_from_slice(&item.bytes);
                }
                if !batch.is_empty() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(batch.freeze())).await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
                return;
            }
        }
    }
}

/// After a stateful session's transport dropped: a new WebSocket with the same token, then
/// a Sequence and everything not acknowledged. Tries for up to 15 seconds (the server's
/// default window).
async fn reattach(
    session: &Session,
    options: &Options,
    ended: Ended,
) -> Option<(BoxStream<'static, Result<Bytes, Ended>>, Box<dyn Sink>)> {
    let (state, (url, parts)) = (session.stateful.as_ref()?, session.reconnect.as_ref()?);
    if ended.graceful {
        return None;
    }
    let started_at = Instant::now();
    let mut delay = Duration::from_millis(0);
    while started_at.elapsed() < Duration::from_secs(15) && !session.closed.is_cancelled() {
        tokio::time::sleep(delay).await;
        delay = (delay * 2)
            .max(Duration::from_millis(100))
            .min(Duration::from_secs(2));
        let Ok(started) = transport::start(
            TransportType::WebSockets,
            url,
            options.protocol.transfer_format(),
            parts,
        )
        .await
        else {
            continue;
        };
        let mut sink = started.sink;
        let (first, messages): (i64, Vec<Bytes>) = {
            let unacked = lock(&state.unacked);
            let first = unacked
                .front()
                .map_or_else(|| state.next_sent.load(Ordering::Acquire), |(id, _)| *id);
            (first, unacked.iter().map(|(_, b)| b.clone()).collect())
        };
        let Ok(sequence) = session
            .protocol
            .to_bytes(&HubMessage::Sequence(Sequence::new(first)))
        else {
            return None;
        };
        let mut frame = BytesMut::from(sequence);
        for message in messages {
            frame.extend_from_slice(&message);
        }
        if sink.send(frame.freeze()).await.is_ok() {
            tracing::debug!("stateful reconnect");
            return Some((started.incoming, sink));
        }
    }
    None
}

/// Handles one message from the server; returns how the session ends, if it does.
fn handle(inner: &Inner, session: &Arc<Session>, message: HubMessage) -> Option<SessionEnd> {
    if message.is_trackable() {
        if let Some(state) = &session.stateful {
            let id = state.next_received.fetch_add(1, Ordering::AcqRel);
            if id <= state.processed.load(Ordering::Acquire) {
                return None;
            }
            state.processed.store(id, Ordering::Release);
        }
    }
    match message {
        HubMessage::Invocation(invocation) => dispatch_call(inner, session, invocation),
        HubMessage::StreamItem(item) => {
            if let Some(Pending::Stream(tx)) = lock(&session.pending).get(&item.invocation_id) {
                let _ = tx.send(Ok(item.item));
            }
        }
        HubMessage::Completion(completion) => {
            match lock(&session.pending).remove(&completion.invocation_id) {
                Some(Pending::Invoke(tx)) => {
                    let _ = tx.send(Ok(completion.result));
                }
                Some(Pending::Stream(tx)) => {
                    if let CompletionResult::Error(error) = completion.result {
                        let _ = tx.send(Err(Error::new(ErrorKind::Hub(error))));
                    }
                }
                None => tracing::debug!(
                    "completion for unknown invocation '{}'",
                    completion.invocation_id
                ),
            }
        }
        HubMessage::Close(close) => {
            return Some(SessionEnd {
                error: close
                    .error
                    .map(|e| format!("Server returned an error on close: {e}")),
                allow_reconnect: close.allow_reconnect,
            });
        }
        HubMessage::Ack(ack) => {
            if let Some(state) = &session.stateful {
                let mut unacked = lock(&state.unacked);
                while unacked
                    .front()
                    .is_some_and(|(id, _)| *id <= ack.sequence_id)
                {
                    unacked.pop_front();
                }
            }
        }
        HubMessage::Sequence(sequence) => {
            if let Some(state) = &session.stateful {
                if sequence.sequence_id > state.processed.load(Ordering::Acquire) + 1 {
                    return Some(SessionEnd {
                        error: Some(
                            "Sequence ID greater than amount of messages we've received.".into(),
                        ),
                        allow_reconnect: true,
                    });
                }
                state
                    .next_received
                    .store(sequence.sequence_id, Ordering::Release);
            }
        }
        _ => {}
    }
    None
}

/// Runs the handlers of a server call. Each handler is polled once right away, so a
/// handler that does not wait (the usual event handler) has run before the next message
/// from the server is looked at, as in the official clients; one that waits goes on in a
/// task of its own, and the reading does not wait for it.
fn dispatch_call(inner: &Inner, session: &Arc<Session>, call: Invocation) {
    let handlers: Vec<ErasedHandler> = lock(&inner.handlers)
        .get(&call.target.to_lowercase())
        .map(|list| list.iter().map(|(_, h)| h.clone()).collect())
        .unwrap_or_default();
    if handlers.is_empty() {
        tracing::warn!("No client method with the name '{}' found.", call.target);
    }
    let encoding = session.protocol.encoding();
    let mut done = Vec::new();
    let mut waiting = Vec::new();
    let waker = futures_util::task::noop_waker_ref();
    let mut cx = Context::from_waker(waker);
    for handler in handlers {
        let mut future = handler(call.arguments.clone(), encoding);
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(outcome) => done.push(outcome),
            Poll::Pending => waiting.push(future),
        }
    }
    let id = call.invocation_id;
    if waiting.is_empty() {
        if let Some(id) = id {
            let _ = session.send(&HubMessage::Completion(client_result(id, done)));
        }
        return;
    }
    let session = Arc::downgrade(session);
    tokio::spawn(async move {
        for future in waiting {
            done.push(future.await);
        }
        if let (Some(id), Some(session)) = (id, session.upgrade()) {
            let _ = session.send(&HubMessage::Completion(client_result(id, done)));
        }
    });
}

/// The answer to a client-result invocation from its handlers' outcomes, with the
/// official clients' texts.
fn client_result(id: String, outcomes: Vec<Result<Option<RawValue>, String>>) -> Completion {
    let mut results = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(Some(value)) => results.push(value),
            Ok(None) => {}
            Err(err) => return Completion::with_error(id, err),
        }
    }
    match results.len() {
        0 => Completion::with_error(id, "Client didn't provide a result."),
        1 => Completion::with_result(id, results.remove(0)),
        _ => Completion::with_error(id, "Client provided multiple results."),
    }
}
