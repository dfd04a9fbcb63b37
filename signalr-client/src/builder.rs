//! Configuring a connection.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue};
use signalr_core::{HubProtocol, JsonHubProtocol, MessagePackHubProtocol, TransportType};
use url::Url;

use crate::connection::HubConnection;
use crate::error::{Error, ErrorKind};
use crate::retry::{DefaultRetryPolicy, RetryPolicy};

/// Produces the bearer token for each HTTP request and WebSocket.
pub(crate) type TokenProvider =
    Arc<dyn Fn() -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// Everything the connection was configured with.
#[derive(Clone)]
pub(crate) struct Options {
    pub(crate) url: Url,
    pub(crate) protocol: Arc<dyn HubProtocol>,
    pub(crate) transports: Vec<TransportType>,
    pub(crate) skip_negotiation: bool,
    pub(crate) token: Option<TokenProvider>,
    pub(crate) headers: HeaderMap,
    pub(crate) retry: Option<Arc<dyn RetryPolicy>>,
    pub(crate) stateful_reconnect: bool,
    pub(crate) stateful_buffer: usize,
    pub(crate) server_timeout: Duration,
    pub(crate) keep_alive_interval: Duration,
    pub(crate) handshake_timeout: Duration,
}

/// Builds a [`HubConnection`].
///
/// ```no_run
/// use std::time::Duration;
/// use signalr_client::HubConnectionBuilder;
///
/// # async fn run() -> Result<(), signalr_client::Error> {
/// let connection = HubConnectionBuilder::new("http://localhost:5000/chat")
///     .messagepack()
///     .with_automatic_reconnect()
///     .server_timeout(Duration::from_secs(60))
///     .build()?;
/// connection.start().await?;
/// # Ok(()) }
/// ```
pub struct HubConnectionBuilder {
    url: String,
    options: Result<Options, Error>,
}

impl std::fmt::Debug for HubConnectionBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConnectionBuilder")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HubConnectionBuilder {
    /// A connection to the hub at `url` (`http://` or `https://`).
    pub fn new(url: impl Into<String>) -> Self {
        let url: String = url.into();
        let options = Url::parse(&url)
            .map_err(|e| Error::new(ErrorKind::Config(format!("invalid URL '{url}': {e}"))))
            .and_then(|parsed| match parsed.scheme() {
                "http" | "https" => Ok(parsed),
                other => Err(Error::new(ErrorKind::Config(format!(
                    "the URL must be http or https, not {other}"
                )))),
            })
            .map(|parsed| Options {
                url: parsed,
                protocol: Arc::new(JsonHubProtocol::new()),
                transports: TransportType::ALL.to_vec(),
                skip_negotiation: false,
                token: None,
                headers: HeaderMap::new(),
                retry: None,
                stateful_reconnect: false,
                stateful_buffer: 100_000,
                server_timeout: Duration::from_secs(30),
                keep_alive_interval: Duration::from_secs(15),
                handshake_timeout: Duration::from_secs(15),
            });
        Self { url, options }
    }

    fn edit(mut self, change: impl FnOnce(&mut Options)) -> Self {
        if let Ok(options) = &mut self.options {
            change(options);
        }
        self
    }

    /// Uses the JSON hub protocol. Default.
    pub fn json(self) -> Self {
        self.protocol(Arc::new(JsonHubProtocol::new()))
    }

    /// Uses the MessagePack hub protocol (which Server-Sent Events cannot carry).
    /// Default: JSON.
    pub fn messagepack(self) -> Self {
        self.protocol(Arc::new(MessagePackHubProtocol::new()))
    }

    /// Uses any hub protocol. Default: JSON.
    pub fn protocol(self, protocol: Arc<dyn HubProtocol>) -> Self {
        self.edit(|o| o.protocol = protocol)
    }

    /// The transports the client may use, tried in the server's order. Default: all three.
    pub fn transports(self, transports: impl IntoIterator<Item = TransportType>) -> Self {
        let transports: Vec<TransportType> = transports.into_iter().collect();
        self.edit(|o| o.transports = transports)
    }

    /// Connects a WebSocket straight away, without negotiating (the server must allow
    /// WebSockets; the connection then has no connection id). Default: false.
    pub fn skip_negotiation(self, skip: bool) -> Self {
        self.edit(|o| o.skip_negotiation = skip)
    }

    /// Calls `provider` for a bearer token before each connection attempt; the token goes
    /// in the `Authorization` header of every request, the WebSocket upgrade included.
    /// Default: none.
    pub fn access_token_provider<F, Fut>(self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        let provider: TokenProvider = Arc::new(move || Box::pin(provider()));
        self.edit(|o| o.token = Some(provider))
    }

    /// Adds a header to every request (it replaces the library's own, `User-Agent`
    /// included). Invalid names or values make [`build`](Self::build) fail. Default: none.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|n| {
                HeaderValue::from_str(value)
                    .map(|v| (n, v))
                    .map_err(|e| e.to_string())
            });
        match parsed {
            Ok((name, value)) => self.edit(|o| {
                o.headers.insert(name, value);
            }),
            Err(err) => {
                self.options = Err(Error::new(ErrorKind::Config(format!(
                    "invalid header: {err}"
                ))));
                self
            }
        }
    }

    /// Reconnects automatically after a lost connection, with the official clients' delays:
    /// 0, 2, 10 and 30 seconds, then gives up. Default: no automatic reconnect.
    pub fn with_automatic_reconnect(self) -> Self {
        self.retry_policy(DefaultRetryPolicy::default())
    }

    /// Reconnects automatically under `policy` (see [`ExponentialBackoff`](crate::ExponentialBackoff)
    /// or write your own). Default: no automatic reconnect.
    pub fn retry_policy(self, policy: impl RetryPolicy) -> Self {
        let policy: Arc<dyn RetryPolicy> = Arc::new(policy);
        self.edit(|o| o.retry = Some(policy))
    }

    /// Asks for stateful reconnect: a dropped WebSocket is replaced on the same connection
    /// and nothing sent either way is lost (the server must allow it). Default: false.
    pub fn with_stateful_reconnect(self) -> Self {
        self.edit(|o| o.stateful_reconnect = true)
    }

    /// Bytes of unacknowledged messages kept for stateful reconnect; beyond it, sending
    /// waits. Default: 100,000.
    pub fn stateful_reconnect_buffer_size(self, bytes: usize) -> Self {
        self.edit(|o| o.stateful_buffer = bytes.max(1))
    }

    /// How long the server may stay silent before the connection is considered lost.
    /// Default: 30 seconds.
    pub fn server_timeout(self, timeout: Duration) -> Self {
        self.edit(|o| o.server_timeout = timeout)
    }

    /// How long the client may stay silent before it pings. Default: 15 seconds.
    pub fn keep_alive_interval(self, interval: Duration) -> Self {
        self.edit(|o| o.keep_alive_interval = interval)
    }

    /// How long the server may take to answer the handshake. Default: 15 seconds.
    pub fn handshake_timeout(self, timeout: Duration) -> Self {
        self.edit(|o| o.handshake_timeout = timeout)
    }

    /// The connection, not started yet.
    pub fn build(self) -> Result<HubConnection, Error> {
        HubConnection::new(self.options?)
    }
}
