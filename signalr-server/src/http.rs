//! The HTTP side: negotiate, the three transports, the status codes and texts of
//! ASP.NET Core's dispatcher, authentication, and the tower service that serves hubs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use bytes::{Bytes, BytesMut};
use futures_util::future::{BoxFuture, FutureExt};
use futures_util::sink::SinkExt;
use futures_util::stream::{BoxStream, SplitSink, StreamExt};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use signalr_core::{
    AvailableTransport, NegotiateResponse, TransferFormat, TransportType, select_negotiate_version,
    write_sse_event,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::auth::bearer_token;
use crate::dispatch::{
    ConnectionInit, Sending, TransportEnd, TransportIo, TransportSink, run_connection, within,
};
use crate::hub::Hub;
use crate::identity::{Identity, RequestInfo, query_param};
use crate::options::HubOptions;
use crate::raw::RawConnection;

/// Serves hubs over HTTP: `POST {path}/negotiate` and the transports on `{path}`.
///
/// Paths match case-insensitively, as ASP.NET Core's routing does. Use it as an axum
/// router, as a tower service in any hyper server, or with [`SignalR::serve`].
///
/// ```no_run
/// use signalr_server::{Hub, SignalR};
///
/// # async fn run() -> std::io::Result<()> {
/// let chat = Hub::builder("Chat")
///     .method("Echo", |text: String| async move { text })
///     .build();
/// let app = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .merge(SignalR::new().hub("/chat", chat).into_router());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
/// axum::serve(listener, app).await
/// # }
/// ```
#[derive(Clone)]
pub struct SignalR {
    hubs: Arc<Vec<(String, Endpoint)>>,
    inner: Arc<Inner>,
}

type Registry = Arc<Mutex<HashMap<String, Arc<HttpConnection>>>>;

type RawHandler = dyn Fn(RawConnection) -> BoxFuture<'static, ()> + Send + Sync;

/// What a path serves: a hub, or a raw connection handler.
#[derive(Clone)]
enum Endpoint {
    Hub(Hub),
    Raw(Arc<(HubOptions, Box<RawHandler>)>),
}

impl Endpoint {
    fn options(&self) -> &HubOptions {
        match self {
            Endpoint::Hub(hub) => hub.options(),
            Endpoint::Raw(raw) => &raw.0,
        }
    }

    /// Runs a connection on a task of its own, then `done`. The upgrade's task ends at once
    /// instead of holding its own state and a boxed connection future for the connection's
    /// whole life: about 1.3 KB less per idle WebSocket.
    fn spawn(&self, init: ConnectionInit, io: TransportIo, done: impl FnOnce() + Send + 'static) {
        match self {
            // `map`, not an async block awaiting the future: a block would hold the future
            // twice over (once captured, once being awaited).
            Endpoint::Hub(hub) => {
                tokio::spawn(run_connection(hub.shared.clone(), init, io).map(move |()| done()));
            }
            Endpoint::Raw(_) => {
                tokio::spawn(self.run(init, io).map(move |()| done()));
            }
        }
    }

    fn run(&self, init: ConnectionInit, io: TransportIo) -> BoxFuture<'static, ()> {
        match self {
            Endpoint::Hub(hub) => Box::pin(run_connection(hub.shared.clone(), init, io)),
            Endpoint::Raw(raw) => (raw.1)(RawConnection {
                connection_id: init.connection_id,
                transport: io.kind,
                request: init.request,
                identity: init.identity,
                incoming: io.incoming,
                sink: io.sink,
            }),
        }
    }
}

struct Inner {
    connections: Registry,
    sweeper: std::sync::Once,
}

/// A connection as the HTTP layer knows it, by its token.
struct HttpConnection {
    connection_id: String,
    hub_path: String,
    created: Instant,
    disconnect_timeout: Duration,
    state: Mutex<HttpState>,
}

#[derive(Default)]
struct HttpState {
    transport: Option<TransportType>,
    /// A WebSocket or an event stream is attached.
    attached: bool,
    /// Feeds POST bodies into the connection (Server-Sent Events, Long Polling).
    input: Option<mpsc::Sender<Bytes>>,
    /// The receiving end of `input`, when data was posted before the transport started
    /// (as ASP.NET Core buffers it from negotiate on).
    early_input: Option<mpsc::Receiver<Bytes>>,
    long_poll: Option<Arc<LongPoll>>,
    /// Negotiated stateful reconnect.
    stateful: bool,
    /// Where a reconnecting WebSocket goes, for a stateful connection.
    reattach: Option<mpsc::Sender<TransportIo>>,
}

impl HttpConnection {
    fn state(&self) -> std::sync::MutexGuard<'_, HttpState> {
        // Every critical section assigns whole fields; a poisoned state is consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The server half of long polling.
struct LongPoll {
    /// What the connection's writer produced, waiting for a poll.
    mailbox: tokio::sync::Mutex<mpsc::Receiver<Bytes>>,
    /// The poll in flight (by number), cancelled when a newer poll arrives.
    current: Mutex<Option<(u64, CancellationToken)>>,
    polls: std::sync::atomic::AtomicU64,
    /// When the last poll ended, while none is in flight.
    idle_since: Mutex<Option<Instant>>,
    /// Cancelled once a poll has answered 204: everything queued, the Close included, has
    /// been collected.
    drained: CancellationToken,
}

impl std::fmt::Debug for SignalR {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.hubs.iter().map(|(p, _)| p.as_str()).collect();
        f.debug_struct("SignalR").field("hubs", &paths).finish()
    }
}

impl Default for SignalR {
    fn default() -> Self {
        Self::new()
    }
}

fn text_response(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if !body.is_empty() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    response
}

fn no_cache(response: &mut Response<Body>) {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::EXPIRES,
        HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
}

fn poll_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let content_type = if status == StatusCode::OK {
        "application/octet-stream"
    } else {
        "text/plain"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    no_cache(&mut response);
    response
}

fn not_supported(transport: TransportType) -> Response<Body> {
    text_response(
        StatusCode::NOT_FOUND,
        match transport {
            TransportType::WebSockets => {
                "WebSockets transport not supported by this end point type"
            }
            TransportType::ServerSentEvents => {
                "ServerSentEvents transport not supported by this end point type"
            }
            TransportType::LongPolling => {
                "LongPolling transport not supported by this end point type"
            }
        },
    )
}

fn normalize(mut path: String) -> String {
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    while path.len() > 1 && path.ends_with('/') {
        path.pop();
    }
    path
}

fn new_id() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    // A connection id or token must be unguessable; without an OS random source the
    // server cannot safely accept connections, so this is one of the few places that
    // may fail loudly.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How the caller of a hub request is authenticated.
enum Auth {
    Allowed(Option<Identity>),
    Denied(Response<Body>),
}

impl SignalR {
    /// No hubs yet.
    pub fn new() -> Self {
        Self {
            hubs: Arc::new(Vec::new()),
            inner: Arc::new(Inner {
                connections: Arc::new(Mutex::new(HashMap::new())),
                sweeper: std::sync::Once::new(),
            }),
        }
    }

    /// Serves `hub` at `path` (for example `/chat`): negotiate at `{path}/negotiate`,
    /// transports at `{path}`.
    pub fn hub(mut self, path: impl Into<String>, hub: Hub) -> Self {
        let path = path.into();
        Arc::make_mut(&mut self.hubs).push((normalize(path), Endpoint::Hub(hub)));
        self
    }

    /// Serves a raw connection handler at `path`: negotiate and the three transports as
    /// for a hub, but the handler gets the bytes themselves ([`RawConnection`]) instead of
    /// hub messages. `options` supplies the transports and timeouts.
    ///
    /// ```
    /// use signalr_server::{HubOptions, SignalR};
    ///
    /// // Echo every message back.
    /// let echo = SignalR::new().connection("/echo", HubOptions::default(), |mut connection| async move {
    ///     while let Some(data) = connection.recv().await {
    ///         if connection.send(data).await.is_err() {
    ///             return;
    ///         }
    ///     }
    ///     connection.close().await;
    /// });
    /// # let _ = echo;
    /// ```
    pub fn connection<F, Fut>(
        mut self,
        path: impl Into<String>,
        options: HubOptions,
        handler: F,
    ) -> Self
    where
        F: Fn(RawConnection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Box<RawHandler> = Box::new(move |connection| Box::pin(handler(connection)));
        Arc::make_mut(&mut self.hubs).push((
            normalize(path.into()),
            Endpoint::Raw(Arc::new((options, handler))),
        ));
        self
    }

    /// An axum router serving the hubs, to merge with other routes or nest.
    pub fn into_router(self) -> axum::Router {
        axum::Router::new().fallback_service(self)
    }

    /// Serves the hubs, and nothing else, on `listener` with hyper alone (HTTP/1.1 and
    /// HTTP/2, with WebSocket upgrades). Runs until the task is dropped; a failed accept
    /// (such as running out of file descriptors) is logged and retried, not fatal.
    ///
    /// ```no_run
    /// # async fn run(hub: signalr_server::Hub) -> std::io::Result<()> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
    /// signalr_server::SignalR::new().hub("/chat", hub).serve(listener).await
    /// # }
    /// ```
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let this = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: Request<hyper::body::Incoming>| {
                        let this = this.clone();
                        async move { Ok::<_, Infallible>(this.handle(request.map(Body::new)).await) }
                    },
                );
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(err) = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %err, "HTTP connection ended with an error");
                }
            });
        }
    }

    fn find(&self, path: &str) -> Option<(&str, &Endpoint, bool)> {
        self.hubs.iter().find_map(|(hub_path, hub)| {
            if path.eq_ignore_ascii_case(hub_path) {
                Some((hub_path.as_str(), hub, false))
            } else {
                let rest = path.get(hub_path.len()..)?;
                (path.get(..hub_path.len())?.eq_ignore_ascii_case(hub_path)
                    && (rest.eq_ignore_ascii_case("/negotiate")
                        || rest.eq_ignore_ascii_case("/negotiate/")))
                .then_some((hub_path.as_str(), hub, true))
            }
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<HttpConnection>>> {
        // Single map operations under the lock; a poisoned map is still consistent.
        self.inner
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lookup(&self, hub_path: &str, token: &str) -> Option<Arc<HttpConnection>> {
        self.registry()
            .get(token)
            .filter(|c| c.hub_path == hub_path)
            .cloned()
    }

    fn start_sweeper(&self) {
        let registry = Arc::downgrade(&self.inner.connections);
        self.inner.sweeper.call_once(|| {
            tokio::spawn(sweep(registry));
        });
    }

    fn register(&self, token: String, connection: HttpConnection) -> Arc<HttpConnection> {
        self.start_sweeper();
        let connection = Arc::new(connection);
        self.registry().insert(token, connection.clone());
        connection
    }

    async fn authenticate(
        &self,
        hub: &Endpoint,
        request: &RequestInfo,
        extensions: &http::Extensions,
    ) -> Auth {
        let mut identity = extensions.get::<Identity>().cloned();
        let Endpoint::Hub(hub) = hub else {
            return Auth::Allowed(identity);
        };
        let shared = &hub.shared;
        if identity.is_none() {
            if let Some(authenticator) = &shared.authenticator {
                let token = bearer_token(request);
                match authenticator.authenticate(request, token.as_deref()).await {
                    Ok(found) => identity = found,
                    // As ASP.NET Core's authentication: bad credentials make the caller
                    // anonymous; only a hub that requires authorization then refuses it.
                    Err(rejection) => {
                        tracing::debug!(reason = %rejection, "authentication failed");
                    }
                }
            }
        }
        if let Some(policy) = &shared.hub_policy {
            if !policy(identity.as_ref()) {
                let status = if identity.is_none() {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                return Auth::Denied(text_response(status, ""));
            }
        }
        Auth::Allowed(identity)
    }

    /// Handles one request.
    pub async fn handle(&self, request: Request<Body>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let Some((hub_path, hub, negotiate)) = self.find(&path) else {
            return text_response(StatusCode::NOT_FOUND, "");
        };
        let hub_path = hub_path.to_owned();
        let hub = hub.clone();
        let (mut parts, body) = request.into_parts();
        let info = RequestInfo::new(
            parts.method.clone(),
            parts.uri.clone(),
            parts.headers.clone(),
        );
        let identity = match self.authenticate(&hub, &info, &parts.extensions).await {
            Auth::Allowed(identity) => identity,
            Auth::Denied(response) => return response,
        };
        if negotiate {
            return self.negotiate(&hub_path, &hub, &parts);
        }
        let id = query_param(parts.uri.query().unwrap_or(""), "id").filter(|id| !id.is_empty());
        match parts.method {
            Method::GET | Method::CONNECT => {
                let accept = parts
                    .headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok());
                if accept.is_some_and(|v| v.contains("text/event-stream")) {
                    return self.server_sent_events(&hub_path, hub, id, info, identity);
                }
                match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
                    Ok(upgrade) => self.websocket(&hub_path, hub, id, info, identity, upgrade),
                    Err(_) => self.long_poll(&hub_path, hub, id, info, identity).await,
                }
            }
            Method::POST => self.post(&hub_path, &hub, id, body).await,
            Method::DELETE => self.delete(&hub_path, id),
            _ => text_response(StatusCode::METHOD_NOT_ALLOWED, ""),
        }
    }

    fn negotiate(
        &self,
        hub_path: &str,
        hub: &Endpoint,
        parts: &http::request::Parts,
    ) -> Response<Body> {
        if parts.method != Method::POST {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "");
        }
        let query = parts.uri.query().unwrap_or("");
        let body =
            match select_negotiate_version(query_param(query, "negotiateVersion").as_deref(), 0) {
                Err(err) => NegotiateResponse::error(err.to_string()),
                Ok(version) => {
                    let connection_id = new_id();
                    let token = if version > 0 {
                        new_id()
                    } else {
                        connection_id.clone()
                    };
                    let mut response = NegotiateResponse::new(version);
                    response.use_stateful_reconnect = hub.options().allow_stateful_reconnects
                        && query_param(query, "useStatefulReconnect")
                            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                    response.connection_id = Some(connection_id.clone());
                    response.connection_token = Some(token.clone());
                    for transport in &hub.options().transports {
                        response
                            .available_transports
                            .push(AvailableTransport::new(*transport));
                    }
                    self.register(
                        token,
                        HttpConnection {
                            connection_id,
                            hub_path: hub_path.to_owned(),
                            created: Instant::now(),
                            disconnect_timeout: hub.options().disconnect_timeout,
                            state: Mutex::new(HttpState {
                                stateful: response.use_stateful_reconnect,
                                ..HttpState::default()
                            }),
                        },
                    );
                    response
                }
            };
        let mut response = Response::new(Body::from(body.to_bytes()));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    /// Claims a negotiated connection for `transport`, as ASP.NET Core's dispatcher does.
    #[allow(clippy::result_large_err)] // the error is the response itself, built once
    fn claim(
        &self,
        hub_path: &str,
        hub: &Endpoint,
        token: Option<&str>,
        transport: TransportType,
    ) -> Result<Arc<HttpConnection>, Response<Body>> {
        if !hub.options().allows(transport) {
            return Err(not_supported(transport));
        }
        let Some(token) = token else {
            return Err(text_response(
                StatusCode::BAD_REQUEST,
                "Connection ID required",
            ));
        };
        let Some(connection) = self.lookup(hub_path, token) else {
            return Err(text_response(
                StatusCode::NOT_FOUND,
                "No Connection with that ID",
            ));
        };
        {
            let mut state = connection.state();
            match state.transport {
                Some(current) if current != transport => {
                    return Err(text_response(
                        StatusCode::BAD_REQUEST,
                        "Cannot change transports mid-connection",
                    ));
                }
                Some(_) if state.attached || transport == TransportType::WebSockets => {
                    return Err(text_response(StatusCode::CONFLICT, ""));
                }
                Some(_) => {}
                None => {
                    state.transport = Some(transport);
                    state.attached = transport != TransportType::LongPolling;
                }
            }
        }
        Ok(connection)
    }

    fn finish(registry: &Weak<Mutex<HashMap<String, Arc<HttpConnection>>>>, token: &str) {
        if let Some(registry) = registry.upgrade() {
            registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(token);
        }
    }

    fn websocket(
        &self,
        hub_path: &str,
        hub: Endpoint,
        id: Option<String>,
        request: RequestInfo,
        identity: Option<Identity>,
        upgrade: WebSocketUpgrade,
    ) -> Response<Body> {
        let mut reattach = None;
        let (connection_id, token) = match id {
            None => {
                if !hub.options().allows(TransportType::WebSockets) {
                    return not_supported(TransportType::WebSockets);
                }
                // Skip negotiation: a version-0 connection whose token is its id.
                let id = new_id();
                let connection = self.register(
                    id.clone(),
                    HttpConnection {
                        connection_id: id.clone(),
                        hub_path: hub_path.to_owned(),
                        created: Instant::now(),
                        disconnect_timeout: hub.options().disconnect_timeout,
                        state: Mutex::new(HttpState::default()),
                    },
                );
                let mut state = connection.state();
                state.transport = Some(TransportType::WebSockets);
                state.attached = true;
                (id.clone(), id)
            }
            Some(token) => {
                if let Some(target) = self.reattach_target(hub_path, &token) {
                    let options = hub.options().clone();
                    return configure(upgrade, &options).on_upgrade(move |socket| async move {
                        // The connection may have given up in the meantime; the socket
                        // is then dropped.
                        let _ = target.send(websocket_io(socket)).await;
                    });
                }
                match self.claim(hub_path, &hub, Some(&token), TransportType::WebSockets) {
                    Ok(connection) => {
                        let mut state = connection.state();
                        if state.stateful {
                            let (tx, rx) = mpsc::channel(1);
                            state.reattach = Some(tx);
                            reattach = Some(rx);
                        }
                        drop(state);
                        (connection.connection_id.clone(), token)
                    }
                    Err(response) => return response,
                }
            }
        };
        let options = hub.options().clone();
        let registry = Arc::downgrade(&self.inner.connections);
        configure(upgrade, &options).on_upgrade(move |socket| {
            let io = websocket_io(socket);
            let init = ConnectionInit {
                connection_id,
                identity,
                request,
                reattach,
            };
            hub.spawn(init, io, move || Self::finish(&registry, &token));
            std::future::ready(())
        })
    }

    /// The reconnect channel of a stateful WebSocket connection, if `token` names one.
    fn reattach_target(&self, hub_path: &str, token: &str) -> Option<mpsc::Sender<TransportIo>> {
        let connection = self.lookup(hub_path, token)?;
        let state = connection.state();
        state.reattach.clone().filter(|tx| !tx.is_closed())
    }

    /// Starts the connection's hub side fed by POST bodies, for SSE and long polling.
    #[allow(clippy::too_many_arguments)]
    fn start_posted(
        &self,
        hub: &Endpoint,
        connection: &Arc<HttpConnection>,
        token: String,
        kind: TransportType,
        request: RequestInfo,
        identity: Option<Identity>,
        sink: Box<dyn TransportSink>,
    ) {
        let rx = {
            let mut state = connection.state();
            match state.early_input.take() {
                Some(rx) => rx,
                None => {
                    let (tx, rx) = mpsc::channel::<Bytes>(8);
                    state.input = Some(tx);
                    rx
                }
            }
        };
        let incoming: BoxStream<'static, Bytes> = futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|b| (b, rx)) },
        )
        .boxed();
        let io = TransportIo {
            kind,
            incoming,
            sink,
            end: TransportEnd::graceful(),
        };
        let init = ConnectionInit {
            connection_id: connection.connection_id.clone(),
            identity,
            request,
            reattach: None,
        };
        let run = hub.run(init, io);
        let registry = Arc::downgrade(&self.inner.connections);
        let http_connection = connection.clone();
        tokio::spawn(async move {
            run.await;
            // A long-polling client collects what was queued (the Close among it) with its
            // next poll: keep the connection until then, or until it stops polling.
            let poll = http_connection.state().long_poll.clone();
            if let Some(poll) = poll {
                tokio::select! {
                    () = poll.drained.cancelled() => {}
                    () = tokio::time::sleep(http_connection.disconnect_timeout) => {}
                }
            }
            Self::finish(&registry, &token);
        });
    }

    fn server_sent_events(
        &self,
        hub_path: &str,
        hub: Endpoint,
        id: Option<String>,
        request: RequestInfo,
        identity: Option<Identity>,
    ) -> Response<Body> {
        let connection = match self.claim(
            hub_path,
            &hub,
            id.as_deref(),
            TransportType::ServerSentEvents,
        ) {
            Ok(connection) => connection,
            Err(response) => return response,
        };
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        // A comment first: some browsers fire the event source's `open` only on data.
        let _ = tx.try_send(Bytes::from_static(b":\r\n"));
        let token = id.unwrap_or_default();
        self.start_posted(
            &hub,
            &connection,
            token,
            TransportType::ServerSentEvents,
            request,
            identity,
            Box::new(SseSink(Some(tx))),
        );
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
        });
        let mut response = Response::new(Body::from_stream(body));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache,no-store"),
        );
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        response
    }

    async fn long_poll(
        &self,
        hub_path: &str,
        hub: Endpoint,
        id: Option<String>,
        request: RequestInfo,
        identity: Option<Identity>,
    ) -> Response<Body> {
        let connection = match self.claim(hub_path, &hub, id.as_deref(), TransportType::LongPolling)
        {
            Ok(connection) => connection,
            Err(response) => return response,
        };
        let existing = connection.state().long_poll.clone();
        let Some(poll) = existing else {
            // The first poll starts the connection and answers at once.
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            let poll = Arc::new(LongPoll {
                mailbox: tokio::sync::Mutex::new(rx),
                current: Mutex::new(None),
                polls: std::sync::atomic::AtomicU64::new(0),
                idle_since: Mutex::new(Some(Instant::now())),
                drained: CancellationToken::new(),
            });
            connection.state().long_poll = Some(poll);
            self.start_posted(
                &hub,
                &connection,
                id.unwrap_or_default(),
                TransportType::LongPolling,
                request,
                identity,
                Box::new(LongPollSink(Some(tx))),
            );
            return poll_response(StatusCode::OK, Bytes::new());
        };
        let mine = CancellationToken::new();
        let number = poll.polls.fetch_add(1, Ordering::Relaxed);
        if let Some((_, previous)) = lock(&poll.current).replace((number, mine.clone())) {
            previous.cancel();
        }
        *lock(&poll.idle_since) = None;
        let timeout = hub.options().long_polling_timeout;
        let response = {
            let mut mailbox = tokio::select! {
                mailbox = poll.mailbox.lock() => mailbox,
                () = mine.cancelled() => return poll_response(StatusCode::NO_CONTENT, Bytes::new()),
            };
            tokio::select! {
                first = mailbox.recv() => match first {
                    Some(first) => {
                        let mut body = BytesMut::from(first);
                        while let Ok(more) = mailbox.try_recv() {
                            body.extend_from_slice(&more);
                        }
                        poll_response(StatusCode::OK, body.freeze())
                    }
                    None => {
                        poll.drained.cancel();
                        poll_response(StatusCode::NO_CONTENT, Bytes::new())
                    }
                },
                () = mine.cancelled() => poll_response(StatusCode::NO_CONTENT, Bytes::new()),
                () = tokio::time::sleep(timeout) => poll_response(StatusCode::OK, Bytes::new()),
            }
        };
        let mut current = lock(&poll.current);
        if current.as_ref().is_some_and(|(n, _)| *n == number) {
            *current = None;
            *lock(&poll.idle_since) = Some(Instant::now());
        }
        response
    }

    async fn post(
        &self,
        hub_path: &str,
        hub: &Endpoint,
        id: Option<String>,
        body: Body,
    ) -> Response<Body> {
        let Some(token) = id else {
            return text_response(StatusCode::BAD_REQUEST, "Connection ID required");
        };
        let Some(connection) = self.lookup(hub_path, &token) else {
            return text_response(StatusCode::NOT_FOUND, "No Connection with that ID");
        };
        let input = {
            let mut state = connection.state();
            if state.transport == Some(TransportType::WebSockets) {
                return text_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "POST requests are not allowed for WebSocket connections.",
                );
            }
            if state.transport.is_none() && state.input.is_none() {
                // Sent before the first poll or event stream: keep it for the transport.
                let (tx, rx) = mpsc::channel::<Bytes>(8);
                state.input = Some(tx);
                state.early_input = Some(rx);
            }
            state.input.clone()
        };
        let Some(input) = input else {
            return text_response(StatusCode::NOT_FOUND, "");
        };
        let limit = hub.options().transport_message_limit();
        let Ok(data) = axum::body::to_bytes(body, limit).await else {
            return text_response(StatusCode::BAD_REQUEST, "");
        };
        if input.send(data).await.is_err() {
            return text_response(StatusCode::NOT_FOUND, "");
        }
        text_response(StatusCode::OK, "")
    }

    fn delete(&self, hub_path: &str, id: Option<String>) -> Response<Body> {
        let Some(token) = id else {
            return text_response(StatusCode::BAD_REQUEST, "Connection ID required");
        };
        let Some(connection) = self.lookup(hub_path, &token) else {
            return text_response(StatusCode::NOT_FOUND, "No Connection with that ID");
        };
        let mut state = connection.state();
        if state.transport != Some(TransportType::LongPolling) {
            return text_response(
                StatusCode::BAD_REQUEST,
                "Cannot terminate this connection using the DELETE endpoint.",
            );
        }
        // Ending the input ends the connection; its writer then closes the mailbox, which
        // answers the pending poll with 204.
        state.input = None;
        text_response(StatusCode::ACCEPTED, "")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Whole-value assignments only; a poisoned value is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn configure(upgrade: WebSocketUpgrade, options: &HubOptions) -> WebSocketUpgrade {
    let limit = options.transport_message_limit();
    upgrade
        .read_buffer_size(options.websocket_read_buffer_size)
        .write_buffer_size(options.websocket_write_buffer_size)
        .max_message_size(limit)
        .max_frame_size(limit)
}

/// A WebSocket as a transport: text and binary messages in, a flag for a clean close.
fn websocket_io(socket: WebSocket) -> TransportIo {
    let (sink, stream) = socket.split();
    let end = Arc::new(TransportEnd::default());
    let flag = end.clone();
    let incoming = futures_util::stream::unfold((stream, flag), |(mut stream, flag)| async move {
        loop {
            match stream.next().await? {
                Ok(Message::Text(text)) => return Some((Bytes::from(text), (stream, flag))),
                Ok(Message::Binary(data)) => return Some((data, (stream, flag))),
                Ok(Message::Close(_)) => {
                    flag.graceful.store(true, Ordering::Release);
                    return None;
                }
                Err(err) => {
                    tracing::debug!(error = %err, "WebSocket read failed");
                    flag.failed.store(true, Ordering::Release);
                    return None;
                }
                Ok(_) => {}
            }
        }
    })
    .boxed();
    TransportIo {
        kind: TransportType::WebSockets,
        incoming,
        sink: Box::new(WebSocketSink(sink)),
        end,
    }
}

/// Drops negotiated connections whose transport never came, and long-polling connections
/// whose client stopped polling.
async fn sweep(registry: Weak<Mutex<HashMap<String, Arc<HttpConnection>>>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let mut registry = registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        registry.retain(|_, connection| {
            let mut state = connection.state();
            match state.transport {
                None => connection.created.elapsed() < connection.disconnect_timeout,
                Some(TransportType::LongPolling) => {
                    let idle = state
                        .long_poll
                        .as_ref()
                        .and_then(|p| *lock(&p.idle_since))
                        .is_some_and(|since| since.elapsed() >= connection.disconnect_timeout);
                    if idle {
                        // Ends the connection; its task removes the entry when done.
                        state.input = None;
                    }
                    true
                }
                Some(_) => true,
            }
        });
    }
}

struct WebSocketSink(SplitSink<WebSocket, Message>);

/// One WebSocket message for a frame: text (checked to be UTF-8) or binary.
fn ws_message(data: Bytes, format: TransferFormat) -> Option<Message> {
    match format {
        TransferFormat::Text => Utf8Bytes::try_from(data).ok().map(Message::Text),
        TransferFormat::Binary => Some(Message::Binary(data)),
    }
}

impl TransportSink for WebSocketSink {
    fn send(&mut self, data: Bytes, format: TransferFormat, timeout: Duration) -> Sending<'_> {
        let Some(message) = ws_message(data, format) else {
            return Sending::Done(Err(()));
        };
        // `SinkExt::send` is Unpin here (the split sink is), so it can be tried at once.
        Sending::start(timeout, self.0.send(message).map(|r| r.map_err(|_| ())))
    }

    fn feed(&mut self, data: Bytes, format: TransferFormat, timeout: Duration) -> Sending<'_> {
        let Some(message) = ws_message(data, format) else {
            return Sending::Done(Err(()));
        };
        Sending::start(timeout, self.0.feed(message).map(|r| r.map_err(|_| ())))
    }

    fn flush(&mut self, timeout: Duration) -> Sending<'_> {
        Sending::start(timeout, self.0.flush().map(|r| r.map_err(|_| ())))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let frame = CloseFrame {
                code: 1000,
                reason: Utf8Bytes::from_static(""),
            };
            let _ = self.0.send(Message::Close(Some(frame))).await;
            let _ = self.0.close().await;
        })
    }
}

/// Writes each batch as one Server-Sent Event into the response body.
struct SseSink(Option<mpsc::Sender<Bytes>>);

impl TransportSink for SseSink {
    fn send(&mut self, data: Bytes, _: TransferFormat, timeout: Duration) -> Sending<'_> {
        Sending::Waiting(within(timeout, async move {
            let mut event = BytesMut::with_capacity(data.len() + 16);
            write_sse_event(&data, &mut event);
            match &self.0 {
                Some(tx) => tx.send(event.freeze()).await.map_err(|_| ()),
                None => Err(()),
            }
        }))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        // Ending the body ends the event stream.
        self.0 = None;
        Box::pin(async {})
    }
}

/// Hands each batch to the next poll.
struct LongPollSink(Option<mpsc::Sender<Bytes>>);

impl TransportSink for LongPollSink {
    fn send(&mut self, data: Bytes, _: TransferFormat, timeout: Duration) -> Sending<'_> {
        Sending::Waiting(within(timeout, async move {
            match &self.0 {
                Some(tx) => tx.send(data).await.map_err(|_| ()),
                None => Err(()),
            }
        }))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        // Closing the mailbox answers the pending poll with 204.
        self.0 = None;
        Box::pin(async {})
    }
}

impl tower::Service<Request<Body>> for SignalR {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(request).await) })
    }
}
