//! The HTTP side: negotiate, the WebSocket transport, the status codes and texts of
//! ASP.NET Core's dispatcher, and the tower service that serves hubs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::sink::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use signalr_core::{
    AvailableTransport, NegotiateResponse, TransferFormat, TransportType, select_negotiate_version,
};

use crate::dispatch::{ConnectionInit, TransportIo, TransportSink, run_connection};
use crate::hub::Hub;
use crate::identity::{Identity, RequestInfo, query_param};

/// Serves hubs over HTTP: `POST {path}/negotiate` and the transports on `{path}`.
///
/// Paths match case-insensitively, as ASP.NET Core's routing does. Use it as an axum
/// router, or as a tower service in any hyper server.
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
    inner: Arc<Inner>,
}

struct Inner {
    hubs: Vec<(String, Hub)>,
    tokens: Arc<Mutex<HashMap<String, TokenState>>>,
    sweeper: std::sync::Once,
}

#[derive(Debug)]
enum TokenState {
    /// Negotiated; waiting for its transport.
    Pending {
        connection_id: String,
        created: Instant,
        timeout: Duration,
    },
    /// A transport is attached.
    Active,
}

impl std::fmt::Debug for SignalR {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.inner.hubs.iter().map(|(p, _)| p.as_str()).collect();
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

impl SignalR {
    /// No hubs yet.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                hubs: Vec::new(),
                tokens: Arc::new(Mutex::new(HashMap::new())),
                sweeper: std::sync::Once::new(),
            }),
        }
    }

    /// Serves `hub` at `path` (for example `/chat`): negotiate at `{path}/negotiate`,
    /// transports at `{path}`.
    pub fn hub(mut self, path: impl Into<String>, hub: Hub) -> Self {
        let mut path: String = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        while path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
        // Built before the first request, so the Arc has no other owner yet.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.hubs.push((path, hub));
        }
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
                let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let this = this.clone();
                    async move { Ok::<_, Infallible>(this.handle(request.map(Body::new)).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(err) = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await {
                    tracing::debug!(error = %err, "HTTP connection ended with an error");
                }
            });
        }
    }

    fn find(&self, path: &str) -> Option<(&Hub, bool)> {
        self.inner.hubs.iter().find_map(|(hub_path, hub)| {
            if path.eq_ignore_ascii_case(hub_path) {
                Some((hub, false))
            } else {
                let rest = path.get(hub_path.len()..)?;
                (path.get(..hub_path.len())?.eq_ignore_ascii_case(hub_path)
                    && (rest.eq_ignore_ascii_case("/negotiate")
                        || rest.eq_ignore_ascii_case("/negotiate/")))
                .then_some((hub, true))
            }
        })
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, TokenState>> {
        // Single map operations under the lock; a poisoned map is still consistent.
        self.inner
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn start_sweeper(&self) {
        let tokens = Arc::downgrade(&self.inner.tokens);
        self.inner.sweeper.call_once(|| {
            tokio::spawn(sweep(tokens));
        });
    }

    /// Handles one request.
    pub async fn handle(&self, request: Request<Body>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let Some((hub, negotiate)) = self.find(&path) else {
            return text_response(StatusCode::NOT_FOUND, "");
        };
        let hub = hub.clone();
        if negotiate {
            return self.negotiate(&hub, &request);
        }
        let query = request.uri().query().unwrap_or("").to_owned();
        let id = query_param(&query, "id");
        match *request.method() {
            Method::GET | Method::CONNECT => {
                let is_sse = request
                    .headers()
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/event-stream"));
                if is_sse {
                    return text_response(
                        StatusCode::NOT_FOUND,
                        "ServerSentEvents transport not supported by this end point type",
                    );
                }
                let (mut parts, _body) = request.into_parts();
                match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
                    Ok(upgrade) => self.websocket(hub, id, parts, upgrade),
                    Err(_) => match id {
                        None | Some(_) if id.as_deref().is_none_or(str::is_empty) => {
                            text_response(StatusCode::BAD_REQUEST, "Connection ID required")
                        }
                        _ => text_response(
                            StatusCode::NOT_FOUND,
                            "LongPolling transport not supported by this end point type",
                        ),
                    },
                }
            }
            Method::POST => match id.filter(|id| !id.is_empty()) {
                None => text_response(StatusCode::BAD_REQUEST, "Connection ID required"),
                Some(id) => match self.tokens().get(&id) {
                    Some(_) => text_response(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "POST requests are not allowed for WebSocket connections.",
                    ),
                    None => text_response(StatusCode::NOT_FOUND, "No Connection with that ID"),
                },
            },
            Method::DELETE => match id.filter(|id| !id.is_empty()) {
                None => text_response(StatusCode::BAD_REQUEST, "Connection ID required"),
                Some(id) => match self.tokens().get(&id) {
                    Some(_) => text_response(
                        StatusCode::BAD_REQUEST,
                        "Cannot terminate this connection using the DELETE endpoint.",
                    ),
                    None => text_response(StatusCode::NOT_FOUND, "No Connection with that ID"),
                },
            },
            _ => text_response(StatusCode::METHOD_NOT_ALLOWED, ""),
        }
    }

    fn negotiate(&self, hub: &Hub, request: &Request<Body>) -> Response<Body> {
        if request.method() != Method::POST {
            return text_response(StatusCode::METHOD_NOT_ALLOWED, "");
        }
        let query = request.uri().query().unwrap_or("");
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
                    response.connection_id = Some(connection_id.clone());
                    response.connection_token = Some(token.clone());
                    response
                        .available_transports
                        .push(AvailableTransport::new(TransportType::WebSockets));
                    self.start_sweeper();
                    self.tokens().insert(
                        token,
                        TokenState::Pending {
                            connection_id,
                            created: Instant::now(),
                            timeout: hub.options().disconnect_timeout,
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

    fn websocket(
        &self,
        hub: Hub,
        id: Option<String>,
        parts: http::request::Parts,
        upgrade: WebSocketUpgrade,
    ) -> Response<Body> {
        let (connection_id, token) = match id.filter(|id| !id.is_empty()) {
            None => {
                // Skip negotiation: a version-0 connection whose token is its id.
                let id = new_id();
                self.tokens().insert(id.clone(), TokenState::Active);
                (id.clone(), id)
            }
            Some(token) => {
                let mut tokens = self.tokens();
                match tokens.get_mut(&token) {
                    None => {
                        return text_response(StatusCode::NOT_FOUND, "No Connection with that ID");
                    }
                    Some(TokenState::Active) => return text_response(StatusCode::CONFLICT, ""),
                    Some(state) => {
                        let TokenState::Pending { connection_id, .. } =
                            std::mem::replace(state, TokenState::Active)
                        else {
                            return text_response(StatusCode::CONFLICT, "");
                        };
                        (connection_id, token)
                    }
                }
            }
        };
        let options = hub.options().clone();
        let identity = parts.extensions.get::<Identity>().cloned();
        let request = RequestInfo::new(parts.method, parts.uri, parts.headers);
        let ws_limit = options
            .maximum_receive_message_size
            .map_or(usize::MAX, |limit| {
                limit.saturating_mul(4).saturating_add(4096)
            });
        let tokens = Arc::downgrade(&self.inner.tokens);
        upgrade
            .read_buffer_size(options.websocket_read_buffer_size)
            .write_buffer_size(options.websocket_write_buffer_size)
            .max_message_size(ws_limit)
            .max_frame_size(ws_limit)
            .on_upgrade(move |socket| async move {
                let (sink, stream) = socket.split();
                let incoming = futures_util::stream::unfold(stream, |mut stream| async move {
                    loop {
                        match stream.next().await? {
                            Ok(Message::Text(text)) => return Some((Bytes::from(text), stream)),
                            Ok(Message::Binary(data)) => return Some((data, stream)),
                            Ok(Message::Close(_)) | Err(_) => return None,
                            Ok(_) => {}
                        }
                    }
                })
                .boxed();
                let io = TransportIo {
                    kind: TransportType::WebSockets,
                    incoming,
                    sink: Box::new(WebSocketSink(sink)),
                };
                let init = ConnectionInit {
                    connection_id,
                    identity,
                    request,
                };
                run_connection(hub.shared.clone(), init, io).await;
                if let Some(tokens) = tokens.upgrade() {
                    tokens
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&token);
                }
            })
    }
}

/// Drops negotiated connections whose transport never came.
async fn sweep(tokens: Weak<Mutex<HashMap<String, TokenState>>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(tokens) = tokens.upgrade() else {
            return;
        };
        let mut tokens = tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.retain(|_, state| match state {
            TokenState::Pending {
                created, timeout, ..
            } => created.elapsed() < *timeout,
            TokenState::Active => true,
        });
    }
}

struct WebSocketSink(SplitSink<WebSocket, Message>);

impl TransportSink for WebSocketSink {
    fn send(&mut self, data: Bytes, format: TransferFormat) -> BoxFuture<'_, Result<(), ()>> {
        Box::pin(async move {
            let message = match format {
                TransferFormat::Text => Message::Text(Utf8Bytes::try_from(data).map_err(|_| ())?),
                TransferFormat::Binary => Message::Binary(data),
            };
            self.0.send(message).await.map_err(|_| ())
        })
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
