//! Hub options, with ASP.NET Core's defaults.

use std::time::Duration;

use signalr_core::TransportType;

/// Per-hub options. Every default is ASP.NET Core's unless a setter says otherwise.
///
/// ```
/// use std::time::Duration;
/// use signalr_server::HubOptions;
///
/// let options = HubOptions::default()
///     .enable_detailed_errors(true)
///     .maximum_receive_message_size(Some(64 * 1024))
///     .keep_alive_interval(Duration::from_secs(10));
/// assert!(options.detailed_errors());
/// ```
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub(crate) keep_alive_interval: Duration,
    pub(crate) client_timeout_interval: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) maximum_receive_message_size: Option<usize>,
    pub(crate) stream_buffer_capacity: usize,
    pub(crate) maximum_parallel_invocations_per_client: usize,
    pub(crate) enable_detailed_errors: bool,
    pub(crate) client_result_timeout: Duration,
    pub(crate) outbound_buffer_limit: usize,
    pub(crate) websocket_read_buffer_size: usize,
    pub(crate) websocket_write_buffer_size: usize,
    pub(crate) disconnect_timeout: Duration,
    pub(crate) transports: Vec<TransportType>,
    pub(crate) long_polling_timeout: Duration,
    pub(crate) allow_stateful_reconnects: bool,
    pub(crate) stateful_reconnect_buffer_size: usize,
    pub(crate) transport_send_timeout: Duration,
    pub(crate) websocket_max_message_size: Option<usize>,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            keep_alive_interval: Duration::from_secs(15),
            client_timeout_interval: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            maximum_receive_message_size: Some(32 * 1024),
            stream_buffer_capacity: 10,
            maximum_parallel_invocations_per_client: 1,
            enable_detailed_errors: false,
            client_result_timeout: Duration::from_secs(30),
            outbound_buffer_limit: 1024 * 1024,
            websocket_read_buffer_size: 1024,
            websocket_write_buffer_size: 4 * 1024,
            disconnect_timeout: Duration::from_secs(15),
            transports: TransportType::ALL.to_vec(),
            long_polling_timeout: Duration::from_secs(90),
            allow_stateful_reconnects: false,
            stateful_reconnect_buffer_size: 100_000,
            transport_send_timeout: Duration::from_secs(10),
            websocket_max_message_size: None,
        }
    }
}

impl HubOptions {
    /// How often the server pings each client (WebSockets and SSE; long polling has its
    /// own keep-alive). Default: 15 seconds.
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.keep_alive_interval = interval;
        self
    }

    /// How long a client that has pinged at least once may stay silent before the server
    /// closes its connection with an error. Default: 30 seconds.
    pub fn client_timeout_interval(mut self, interval: Duration) -> Self {
        self.client_timeout_interval = interval;
        self
    }

    /// How long a new connection may take to send its handshake. Default: 15 seconds.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The largest message (framed) a client may send; a larger one closes the connection
    /// with an error. `None` means no limit. Default: 32 KiB (32,768 bytes).
    pub fn maximum_receive_message_size(mut self, size: Option<usize>) -> Self {
        self.maximum_receive_message_size = size;
        self
    }

    /// Items buffered per client-to-server stream before the connection's reading waits
    /// for the hub method to consume them. Default: 10.
    pub fn stream_buffer_capacity(mut self, capacity: usize) -> Self {
        self.stream_buffer_capacity = capacity.max(1);
        self
    }

    /// How many non-streaming invocations of one connection may run at once; while that
    /// many run, the connection's next invocation waits. Default: 1 (results in order).
    pub fn maximum_parallel_invocations_per_client(mut self, count: usize) -> Self {
        self.maximum_parallel_invocations_per_client = count.max(1);
        self
    }

    /// Whether error texts sent to clients include the error's type and message (hub
    /// exceptions always do). Default: false.
    pub fn enable_detailed_errors(mut self, enabled: bool) -> Self {
        self.enable_detailed_errors = enabled;
        self
    }

    /// Whether detailed errors are on.
    pub fn detailed_errors(&self) -> bool {
        self.enable_detailed_errors
    }

    /// How long a client-result invocation waits for the client's answer. ASP.NET Core has
    /// no default limit; this server does. Default: 30 seconds.
    pub fn client_result_timeout(mut self, timeout: Duration) -> Self {
        self.client_result_timeout = timeout;
        self
    }

    /// Bytes queued for one connection before it counts as too slow: messages from other
    /// connections and the hub context are then refused and the connection is closed,
    /// while the connection's own results and stream items wait for room. Not an ASP.NET
    /// Core option (it waits on slow clients instead). Default: 1 MiB.
    pub fn outbound_buffer_limit(mut self, bytes: usize) -> Self {
        self.outbound_buffer_limit = bytes.max(1);
        self
    }

    /// The WebSocket read buffer per connection: held for the connection's whole life, and
    /// the most read from the socket at once. Default: 1 KiB (tungstenite's own default is
    /// 128 KiB, too much for many idle connections). A message larger than the buffer is
    /// read in several calls: echoing 16 KB messages costs about 5 % more server CPU at
    /// 1 KiB than at 4 KiB, small messages cost the same (docs/benchmarks.md). Raise it
    /// when most messages are large and connections few.
    pub fn websocket_read_buffer_size(mut self, bytes: usize) -> Self {
        self.websocket_read_buffer_size = bytes.max(256);
        self
    }

    /// The WebSocket write buffer per connection. Default: 4 KiB.
    pub fn websocket_write_buffer_size(mut self, bytes: usize) -> Self {
        self.websocket_write_buffer_size = bytes;
        self
    }

    /// Which transports clients may use; negotiate lists them in ASP.NET Core's order
    /// (WebSockets, Server-Sent Events, Long Polling) whatever the order given. A request
    /// for another transport gets 404. Default: all three.
    pub fn transports(mut self, transports: impl IntoIterator<Item = TransportType>) -> Self {
        let wanted: Vec<TransportType> = transports.into_iter().collect();
        self.transports = TransportType::ALL
            .into_iter()
            .filter(|t| wanted.contains(t))
            .collect();
        self
    }

    /// Whether `transport` is enabled.
    pub fn allows(&self, transport: TransportType) -> bool {
        self.transports.contains(&transport)
    }

    /// How long a long poll waits for data before answering empty (the client then polls
    /// again). Default: 90 seconds.
    pub fn long_polling_timeout(mut self, timeout: Duration) -> Self {
        self.long_polling_timeout = timeout;
        self
    }

    /// How long one write to a transport may take; a client that stops reading for that
    /// long is disconnected. Default: 10 seconds.
    pub fn transport_send_timeout(mut self, timeout: Duration) -> Self {
        self.transport_send_timeout = timeout;
        self
    }

    /// The largest WebSocket message (or HTTP POST body) accepted. One may carry several
    /// hub messages, each checked against
    /// [`maximum_receive_message_size`](Self::maximum_receive_message_size). Default: 1 MiB
    /// or four times the hub message limit, whichever is larger (no limit when the hub
    /// message size is unlimited).
    pub fn websocket_max_message_size(mut self, bytes: usize) -> Self {
        self.websocket_max_message_size = Some(bytes.max(1024));
        self
    }

    /// The transport-level message limit in force.
    pub(crate) fn transport_message_limit(&self) -> usize {
        match (
            self.websocket_max_message_size,
            self.maximum_receive_message_size,
        ) {
            (Some(bytes), _) => bytes,
            (None, Some(limit)) => limit.saturating_mul(4).max(1024 * 1024),
            (None, None) => usize::MAX,
        }
    }

    /// Whether clients that ask for stateful reconnect (`useStatefulReconnect=true` on
    /// negotiate, WebSockets, hub protocol version 2) get it: a dropped WebSocket can be
    /// replaced within [`disconnect_timeout`](Self::disconnect_timeout) without losing a
    /// message either way. Default: false.
    pub fn allow_stateful_reconnects(mut self, allow: bool) -> Self {
        self.allow_stateful_reconnects = allow;
        self
    }

    /// Bytes of sent but unacknowledged messages kept per stateful connection; beyond it,
    /// sending waits for the client's acknowledgements. Default: 100,000.
    pub fn stateful_reconnect_buffer_size(mut self, bytes: usize) -> Self {
        self.stateful_reconnect_buffer_size = bytes.max(1);
        self
    }

    /// How long a negotiated connection may wait for its transport, and a long-polling
    /// connection for its next poll, before it is dropped. Default: 15 seconds.
    pub fn disconnect_timeout(mut self, timeout: Duration) -> Self {
        self.disconnect_timeout = timeout;
        self
    }
}
