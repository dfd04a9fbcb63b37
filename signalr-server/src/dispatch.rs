//! A connection's life: handshake, the read loop, dispatching hub messages, keep-alive
//! and timeouts, and the writer that drains the outbound queue into the transport.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use signalr_core::{
    Ack, Completion, CompletionResult, HandshakeRequest, HandshakeResponse, HubMessage,
    HubProtocol, MessageReader, ProtocolError, RawValue, Sequence, StreamItem, TransferFormat,
    TransportType,
};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::connection::{
    CloseCause, Connection, ConnectionHandle, Ended, Outgoing, Stateful, UploadItem,
};
use crate::error::HubError;
use crate::filter::{InvocationContext, LifecycleNext, Next};
use crate::handler::{BindError, Call, Caller};
use crate::hub::{HubShared, HubValue, MethodOutput};
use crate::identity::{Identity, RequestInfo};

/// The server side of a transport: where a connection's bytes go.
pub(crate) trait TransportSink: Send + 'static {
    /// Sends one transport frame holding one or more framed hub messages, giving up after
    /// `timeout` (a client that stopped reading). A send that completes at once is
    /// [`Sending::Done`]; one that waits is boxed with its timer ([`within`]).
    fn send(&mut self, data: Bytes, format: TransferFormat, timeout: Duration) -> Sending<'_>;
    /// As [`send`](Self::send), but the frame may wait in the transport's buffer until the
    /// next [`flush`](Self::flush) or `send`, so that several go out in one write. Where
    /// the transport has no such buffer, this is `send`.
    fn feed(&mut self, data: Bytes, format: TransferFormat, timeout: Duration) -> Sending<'_> {
        self.send(data, format, timeout)
    }
    /// Writes out what [`feed`](Self::feed) left in the buffer.
    fn flush(&mut self, _timeout: Duration) -> Sending<'_> {
        Sending::Done(Ok(()))
    }
    /// Closes the transport cleanly.
    fn close(&mut self) -> BoxFuture<'_, ()>;
}

/// A send under way: done at once (the usual case, which costs no allocation and no
/// timer), or waiting, boxed with its timeout.
pub(crate) enum Sending<'a> {
    Done(Result<(), ()>),
    Waiting(BoxFuture<'a, Result<(), ()>>),
}

impl Sending<'_> {
    /// Polls `send` once, without a waker that matters; if it is not done, it goes on (and
    /// is polled again, with the real waker) boxed with its timeout.
    pub(crate) fn start<'a>(
        timeout: Duration,
        mut send: impl Future<Output = Result<(), ()>> + Send + Unpin + 'a,
    ) -> Sending<'a> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut send).poll(&mut cx) {
            Poll::Ready(result) => Sending::Done(result),
            Poll::Pending => Sending::Waiting(within(timeout, send)),
        }
    }
}

impl Future for Sending<'_> {
    type Output = Result<(), ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
        match self.get_mut() {
            Sending::Done(result) => Poll::Ready(*result),
            Sending::Waiting(send) => send.as_mut().poll(cx),
        }
    }
}

/// A send that gives up after `timeout`, boxed with its timer: the writer's own state
/// stays small.
pub(crate) fn within<'a>(
    timeout: Duration,
    send: impl Future<Output = Result<(), ()>> + Send + 'a,
) -> BoxFuture<'a, Result<(), ()>> {
    Box::pin(async move {
        match tokio::time::timeout(timeout, send).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!("transport send timed out");
                Err(())
            }
        }
    })
}

/// A transport attached to a connection.
pub(crate) struct TransportIo {
    pub(crate) kind: TransportType,
    pub(crate) incoming: BoxStream<'static, Bytes>,
    pub(crate) sink: Box<dyn TransportSink>,
    /// How the incoming stream ended, once it has.
    pub(crate) end: Arc<TransportEnd>,
}

/// How a transport's incoming stream ended.
#[derive(Debug, Default)]
pub(crate) struct TransportEnd {
    /// The client closed it on purpose (a WebSocket close frame). Without it, the transport
    /// was dropped and stateful reconnect may follow.
    pub(crate) graceful: AtomicBool,
    /// Reading failed (a protocol error, an oversized frame, a reset).
    pub(crate) failed: AtomicBool,
}

impl TransportEnd {
    /// Flags for a transport that always ends cleanly (SSE and long polling end by request).
    pub(crate) fn graceful() -> Arc<Self> {
        Arc::new(Self {
            graceful: AtomicBool::new(true),
            failed: AtomicBool::new(false),
        })
    }
}

/// Who is connecting.
pub(crate) struct ConnectionInit {
    pub(crate) connection_id: String,
    pub(crate) identity: Option<Identity>,
    pub(crate) request: RequestInfo,
    /// New transports for the same connection, when it negotiated stateful reconnect.
    pub(crate) reattach: Option<mpsc::Receiver<TransportIo>>,
}

/// Largest transport frame the writer builds from queued messages.
const MAX_BATCH: usize = 64 * 1024;

/// How the writer behaves.
struct WriterConfig {
    /// Ping this often (not on transports with their own keep-alive).
    keep_alive: Option<Duration>,
    /// Give up on a send after this long.
    send_timeout: Duration,
}

async fn run_writer(
    connection: Arc<Connection>,
    mut sinks: Option<mpsc::UnboundedReceiver<Box<dyn TransportSink>>>,
    config: WriterConfig,
) {
    let format = connection.protocol.transfer_format();
    let stateful = connection.stateful.as_deref();
    // Whether `connection.sink` holds a transport (kept here too, for the waits below).
    let mut attached = true;
    // Which transport the writer writes to, to notice when it is dropped.
    let mut attachment = connection.attachment();
    let mut batch: Vec<Bytes> = Vec::new();
    let mut sinks_open = sinks.is_some();
    // Pings go straight to the transport from here, whatever the reading side is doing (a
    // slow invocation, a full upload buffer), every interval as ASP.NET Core does.
    let period = config.keep_alive.unwrap_or(Duration::from_secs(3600));
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // A dropped transport is dropped before anything else is sent on it.
            biased;
            () = std::future::poll_fn(|cx| connection.poll_dropped(cx, attachment)), if attached => {
                // Dropped abruptly: no close frame.
                connection.sink.lock().await.take();
                attached = false;
                if stateful.is_none() {
                    connection.close(CloseCause::Client);
                    break;
                }
                continue;
            }
            () = connection.outbound.ready() => {}
            _ = pings.tick(), if config.keep_alive.is_some() && attached => {
                let mut slot = connection.sink.lock().await;
                if let Some(s) = slot.as_deref_mut() {
                    if s.send(connection.ping.clone(), format, config.send_timeout).await.is_err() {
                        *slot = None;
                        attached = false;
                        if stateful.is_none() {
                            drop(slot);
                            connection.close(CloseCause::Client);
                            break;
                        }
                    }
                }
                continue;
            }
            new = next_sink(&mut sinks), if stateful.is_some() && sinks_open => {
                let Some(new) = new else {
                    sinks_open = false;
                    continue;
                };
                let mut slot = connection.sink.lock().await;
                *slot = Some(new);
                attachment = connection.attachment();
                if let Some(state) = stateful {
                    if !Box::pin(resend(&connection, state, &mut slot, format, config.send_timeout)).await {
                        *slot = None;
                    }
                }
                attached = slot.is_some();
                continue;
            }
        };
        // Items are taken only under the transport's lock: whoever holds it and finds the
        // queue empty may write straight through (`Connection::send_direct`).
        let mut slot = connection.sink.lock().await;
        let Some(first) = connection.outbound.try_recv() else {
            continue;
        };
        let mut size = 0;
        let mut closing = take(first, stateful, slot.is_some(), &mut batch, &mut size);
        while !closing && size < MAX_BATCH && stateful.is_none_or(Stateful::has_room) {
            match connection.outbound.try_recv() {
                Some(item) => {
                    closing |= take(item, stateful, slot.is_some(), &mut batch, &mut size);
                }
                None => break,
            }
        }
        if !batch.is_empty() && slot.is_some() {
            let frame = if batch.len() == 1 {
                batch.pop().unwrap_or_default()
            } else {
                let mut joined = BytesMut::with_capacity(size);
                for part in batch.iter() {
                    joined.extend_from_slice(part);
                }
                joined.freeze()
            };
            let sent = match slot.as_deref_mut() {
                Some(s) => s.send(frame, format, config.send_timeout).await,
                None => Ok(()),
            };
            if sent.is_err() {
                *slot = None;
                attached = false;
                if stateful.is_none() {
                    connection.outbound.sent(size);
                    drop(slot);
                    connection.close(CloseCause::Client);
                    break;
                }
            }
        }
        batch.clear();
        connection.outbound.sent(size);
        if closing {
            // A transport dropped on purpose gets no close frame.
            if connection.dropped_since(attachment) {
                *slot = None;
            }
            if let Some(mut s) = slot.take() {
                drop(slot);
                // As ASP.NET Core's WebSocket close timeout: do not wait forever on a peer
                // that does not read.
                let _ = tokio::time::timeout(Duration::from_secs(5), s.close()).await;
            }
            break;
        }
        drop(slot);
        // With stateful reconnect, wait for acknowledgements before taking more.
        if let Some(state) = stateful {
            while !state.has_room() && !connection.is_closed() {
                let space = state.space.notified();
                tokio::pin!(space);
                space.as_mut().enable();
                if state.has_room() {
                    break;
                }
                tokio::select! {
                    () = space => {}
                    () = connection.closed.cancelled() => {}
                    // The transport may drop, and a new one come, while acknowledgements
                    // are awaited: the client's acks arrive only on a working transport.
                    () = std::future::poll_fn(|cx| connection.poll_dropped(cx, attachment)), if attached => {
                        connection.sink.lock().await.take();
                        attached = false;
                    }
                    new = next_sink(&mut sinks), if sinks_open => {
                        sinks_open = new.is_some();
                        if let Some(new) = new {
                            let mut slot = connection.sink.lock().await;
                            *slot = Some(new);
                            attachment = connection.attachment();
                            if !Box::pin(resend(&connection, state, &mut slot, format, config.send_timeout)).await {
                                *slot = None;
                            }
                            attached = slot.is_some();
                        }
                    }
                }
            }
        }
    }
    // Whatever ended the loop, the transport goes with it.
    connection.release_sink();
}

/// The next transport a stateful connection reconnected with; never, without stateful
/// reconnect.
async fn next_sink(
    sinks: &mut Option<mpsc::UnboundedReceiver<Box<dyn TransportSink>>>,
) -> Option<Box<dyn TransportSink>> {
    match sinks {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Adds a queued item to the batch (numbering and keeping it for stateful reconnect);
/// returns true for the close marker.
fn take(
    item: Outgoing,
    stateful: Option<&Stateful>,
    attached: bool,
    batch: &mut Vec<Bytes>,
    size: &mut usize,
) -> bool {
    match item {
        Outgoing::Data { bytes, tracked } => {
            *size += bytes.len();
            match stateful {
                Some(state) if tracked => {
                    state.record(bytes.clone());
                    batch.push(bytes);
                }
                // Untracked messages (pings, acks) are not worth keeping while detached.
                _ if !attached => {}
                _ => batch.push(bytes),
            }
            false
        }
        Outgoing::Close => true,
    }
}

/// After a reconnect: a Sequence, then every unacknowledged message, in order.
async fn resend(
    connection: &Connection,
    state: &Stateful,
    sink: &mut Option<Box<dyn TransportSink>>,
    format: TransferFormat,
    timeout: Duration,
) -> bool {
    let (first, messages) = state.resend();
    let Some(sink) = sink else { return false };
    let Ok(sequence) = connection
        .protocol
        .to_bytes(&HubMessage::Sequence(Sequence::new(first)))
    else {
        return false;
    };
    let mut frame = BytesMut::from(sequence);
    for message in messages {
        if frame.len() + message.len() > MAX_BATCH
            && !frame.is_empty()
            && sink
                .send(frame.split().freeze(), format, timeout)
                .await
                .is_err()
        {
            return false;
        }
        frame.extend_from_slice(&message);
    }
    frame.is_empty() || sink.send(frame.freeze(), format, timeout).await.is_ok()
}

/// Handles a connection from its first byte to its end. (A plain function returning the
/// future, and `init` boxed: an async function keeps its arguments for its whole life, which
/// every connection would pay for twice.)
pub(crate) fn run_connection(
    shared: Arc<HubShared>,
    init: ConnectionInit,
    io: TransportIo,
) -> impl Future<Output = ()> + Send + 'static {
    let span = tracing::info_span!(
        "signalr_connection",
        hub = %shared.name,
        connection_id = %init.connection_id,
        transport = %io.kind,
    );
    serve(shared, Box::new(init), io).instrument(span)
}

async fn handshake(
    shared: &HubShared,
    kind: TransportType,
    incoming: &mut BoxStream<'static, Bytes>,
) -> Result<(Arc<dyn HubProtocol>, u32, BytesMut), Option<String>> {
    let limit = shared.options.maximum_receive_message_size;
    let mut buf = BytesMut::new();
    let deadline = tokio::time::sleep(shared.options.handshake_timeout);
    tokio::pin!(deadline);
    let request = loop {
        let chunk = tokio::select! {
            chunk = incoming.next() => chunk,
            () = &mut deadline => return Err(Some("Handshake was canceled.".to_owned())),
        };
        let Some(chunk) = chunk else { return Err(None) };
        buf.extend_from_slice(&chunk);
        match HandshakeRequest::parse(&mut buf, limit) {
            Ok(Some(request)) => break request,
            Ok(None) => {}
            Err(ProtocolError::MessageTooLarge { .. }) => {
                return Err(Some("Handshake was canceled.".to_owned()));
            }
            Err(err) => {
                let message = "An unexpected error occurred during connection handshake.";
                return Err(Some(if shared.options.enable_detailed_errors {
                    format!("{message} InvalidDataException: {err}")
                } else {
                    message.to_owned()
                }));
            }
        }
    };
    let Some(protocol) = shared.protocol(&request.protocol) else {
        return Err(Some(format!(
            "The protocol '{}' is not supported.",
            request.protocol
        )));
    };
    if !protocol.is_version_supported(request.version) {
        return Err(Some(format!(
            "The server does not support version {} of the '{}' protocol.",
            request.version, request.protocol
        )));
    }
    let format = protocol.transfer_format();
    if kind == TransportType::ServerSentEvents && format == TransferFormat::Binary {
        return Err(Some(format!(
            "Cannot use the '{}' protocol on the current transport. The transport does not support '{format}' transfer format.",
            request.protocol
        )));
    }
    Ok((protocol, request.version, buf))
}

#[allow(clippy::boxed_local)] // The point: the box is freed when this returns.
fn unbox<T>(value: Box<T>) -> T {
    *value
}

async fn serve(shared: Arc<HubShared>, init: Box<ConnectionInit>, io: TransportIo) {
    let TransportIo {
        kind,
        mut incoming,
        mut sink,
        end,
    } = io;
    let (protocol, version, leftover) =
        match Box::pin(handshake(&shared, kind, &mut incoming)).await {
            Ok(ok) => ok,
            Err(error) => {
                if let Some(error) = error {
                    tracing::debug!(%error, "handshake failed");
                    let _ = sink
                        .send(
                            HandshakeResponse::error(error).to_bytes(),
                            TransferFormat::Text,
                            shared.options.transport_send_timeout,
                        )
                        .await;
                }
                sink.close().await;
                return;
            }
        };
    // Unboxed in a function of its own, so that the box is freed here rather than kept to
    // the end of this future, and no field lives in the future beside it.
    let ConnectionInit {
        connection_id,
        identity,
        request,
        reattach,
    } = unbox(init);
    let user_id = shared.user_id_provider.user_id(identity.as_ref(), &request);
    // Stateful reconnect needs it negotiated, WebSockets, and hub protocol version 2.
    let reattach = reattach.filter(|_| kind == TransportType::WebSockets && version >= 2);
    let stateful = reattach
        .as_ref()
        .map(|_| Stateful::new(shared.options.stateful_reconnect_buffer_size));
    let connection = Connection::new(
        connection_id,
        protocol.clone(),
        kind,
        identity,
        user_id,
        request,
        shared.options.outbound_buffer_limit,
        shared.options.enable_detailed_errors,
        stateful,
        sink,
    );
    let _ = connection.send_control(HandshakeResponse::success().to_bytes());
    // New transports of a stateful connection go to the writer through this.
    let (sink_tx, sink_rx) = match reattach {
        Some(_) => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let config = WriterConfig {
        keep_alive: (kind != TransportType::LongPolling)
            .then_some(shared.options.keep_alive_interval),
        send_timeout: shared.options.transport_send_timeout,
    };
    let mut writer =
        tokio::spawn(run_writer(connection.clone(), sink_rx, config).in_current_span());

    let handle = ConnectionHandle(connection.clone());
    let hub_label = shared.name.clone();
    if let Err(err) = shared.backplane.on_connected(handle.clone()).await {
        tracing::warn!(error = %err, "backplane refused the connection");
        connection.close(CloseCause::Error(None));
        if tokio::time::timeout(Duration::from_secs(5), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
            let _ = writer.await;
        }
        connection.release_sink();
        return;
    }
    metrics::gauge!("signalr_connections_active", "hub" => hub_label.clone()).increment(1.0);
    tracing::debug!("connected");

    let connected = Box::pin(run_lifecycle(&shared, &connection, true, None)).await;
    if let Err(err) = &connected {
        let text = err.build_message(
            "Connection closed with an error.",
            shared.options.enable_detailed_errors,
        );
        connection.close(CloseCause::Rejected(text));
    } else {
        let transport = Attached {
            incoming,
            stash: None,
            ended: false,
            end,
            reattach,
            sinks: sink_tx,
            coalesce: false,
        };
        read_loop(&shared, &connection, transport, leftover, protocol).await;
    }

    // The end, whatever caused it.
    connection.close(CloseCause::Client);
    connection.tear_down();
    shared.backplane.on_disconnected(handle).await;
    metrics::gauge!("signalr_connections_active", "hub" => hub_label).decrement(1.0);
    if connected.is_ok() {
        let reason = connection.cause().and_then(|c| c.error_text());
        if let Err(err) = Box::pin(run_lifecycle(&shared, &connection, false, reason)).await {
            tracing::warn!(error = %err, "on_disconnected failed");
        }
    }
    // Let the writer send what is queued and the Close, but not forever: a client that
    // stopped reading would hold the socket and this task. One too slow to keep up loses
    // its socket at once.
    let grace = match connection.cause() {
        Some(CloseCause::TooSlow) => Duration::ZERO,
        _ => Duration::from_secs(5),
    };
    if tokio::time::timeout(grace, &mut writer).await.is_err() {
        writer.abort();
        // Aborted at its next await: the lock it may hold is let go by then.
        let _ = writer.await;
    }
    connection.release_sink();
    tracing::debug!(cause = ?connection.cause(), "disconnected");
}

async fn run_lifecycle(
    shared: &Arc<HubShared>,
    connection: &Arc<Connection>,
    connected: bool,
    error: Option<String>,
) -> Result<(), HubError> {
    let handler = if connected {
        shared.on_connected.as_ref()
    } else {
        shared.on_disconnected.as_ref()
    };
    if handler.is_none() && shared.filters.is_empty() {
        return Ok(());
    }
    let call = Call {
        shared: shared.clone(),
        connection: connection.clone(),
        arguments: Vec::new().into_iter(),
        uploads: Vec::new().into_iter(),
        cancel: None,
        disconnect_error: error.clone(),
    };
    let future: BoxFuture<'static, Result<(), HubError>> = match handler {
        Some(bind) => match bind(call) {
            Ok(future) => future,
            Err(err) => {
                return Err(HubError::exception(
                    "InvalidOperationException",
                    bind_text(&err),
                ));
            }
        },
        None => Box::pin(async { Ok(()) }),
    };
    let caller = Caller {
        connection: connection.clone(),
    };
    let next = LifecycleNext {
        filters: &shared.filters,
        caller: &caller,
        error: error.as_deref(),
        connected,
        handler: future,
    };
    match AssertUnwindSafe(next.run()).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(HubError::exception("Panic", panic_message(&*panic))),
    }
}

fn bind_text(err: &BindError) -> String {
    match err {
        BindError::Type => {
            "Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked."
                .to_owned()
        }
        BindError::Missing(what) => format!("Could not provide {what}."),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a hub method panicked".to_owned()
    }
}

/// The reading half of the connection's transport, and where replacements come from.
///
/// The read loop reads the transport itself; while dispatching waits (for an invocation
/// slot, for room in an upload stream) it keeps watching it with [`Attached::watch`], so
/// that the transport's end is noticed at once then too.
struct Attached {
    incoming: BoxStream<'static, Bytes>,
    /// A chunk read ahead while dispatching waited, to parse next.
    stash: Option<Bytes>,
    /// The incoming stream has ended and [`Attached::on_end`] has run.
    ended: bool,
    end: Arc<TransportEnd>,
    reattach: Option<mpsc::Receiver<TransportIo>>,
    sinks: Option<mpsc::UnboundedSender<Box<dyn TransportSink>>>,
    /// Whether replies written straight to the socket may wait in its buffer for the
    /// replies to what else has arrived (see `read_loop`): on while the client pipelines.
    coalesce: bool,
}

impl Attached {
    /// Takes a new transport: reading switches to it, writing resends and goes on.
    fn swap(&mut self, connection: &Arc<Connection>, io: TransportIo) {
        // Whatever is left of the old transport is dropped without a close frame.
        connection.drop_transport();
        connection.new_transport();
        self.incoming = io.incoming;
        self.stash = None;
        self.ended = false;
        self.end = io.end;
        if let Some(sinks) = &self.sinks {
            let _ = sinks.send(io.sink);
        }
    }

    /// The transport's incoming stream ended: a stateful connection whose transport
    /// dropped waits for a reconnect; any other connection closes.
    fn on_end(&mut self, connection: &Connection) {
        self.ended = true;
        if connection.stateful.is_some() && !self.end.graceful.load(Ordering::Acquire) {
            tracing::debug!("transport dropped; waiting for a stateful reconnect");
            connection.drop_transport();
        } else if self.end.failed.load(Ordering::Acquire) {
            connection.close(CloseCause::Error(None));
        } else {
            connection.close(CloseCause::Client);
        }
    }

    /// [`on_end`](Self::on_end) for the read loop: true when the connection closed, else
    /// the time it was left without a transport.
    fn ended_now(
        &mut self,
        connection: &Connection,
        detached_since: &mut Option<tokio::time::Instant>,
    ) -> bool {
        self.on_end(connection);
        if connection.is_closed() {
            return true;
        }
        *detached_since = Some(tokio::time::Instant::now());
        false
    }

    /// Lets go of the transport's reading half (it was dropped on purpose).
    fn release(&mut self) {
        self.incoming = futures_util::stream::empty().boxed();
        self.ended = true;
    }

    /// While dispatching waits: writes out the replies left in the transport's buffer,
    /// reads one chunk ahead and notices the transport's end. Never completes; use it as
    /// one branch of the wait.
    async fn watch(&mut self, connection: &Connection, timeout: Duration) {
        connection.flush_direct(timeout).await;
        if self.stash.is_none() && !self.ended && !connection.transport_dropped() {
            match self.incoming.next().await {
                Some(chunk) => self.stash = Some(chunk),
                None => self.on_end(connection),
            }
        }
        std::future::pending::<()>().await;
    }
}

async fn read_loop(
    shared: &Arc<HubShared>,
    connection: &Arc<Connection>,
    mut transport: Attached,
    leftover: BytesMut,
    protocol: Arc<dyn HubProtocol>,
) {
    let options = &shared.options;
    let mut reader: MessageReader<Arc<dyn HubProtocol>> =
        MessageReader::new(protocol, options.maximum_receive_message_size);
    reader.feed(&leftover);
    let invocations = Arc::new(Semaphore::new(
        options.maximum_parallel_invocations_per_client,
    ));
    let mut last_received = Instant::now();
    let mut got_data = true;
    // Stateful connections acknowledge what they received every second.
    let mut acks = connection
        .stateful
        .is_some()
        .then(|| tokio::time::interval(Duration::from_secs(1)));
    // One timer for the client timeout, re-armed when it fires early (data came in since it
    // was set) rather than moved for every chunk.
    let far = || tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let timeout = tokio::time::sleep_until(far());
    tokio::pin!(timeout);
    let mut detached_since: Option<tokio::time::Instant> = None;
    let mut drained = false;
    // Chunks read since the read loop last had to wait for one. A client that pipelines
    // (its next invocations are already here when one is answered) gets its replies written
    // together: after a run of more than one chunk, replies written straight to the socket
    // wait in its buffer while more input is at hand, and go out in one write before the
    // read loop waits. One chunk at a time, each reply is written at once, which costs less
    // than looking for more input that is not there.
    let mut run: usize = 0;
    loop {
        // Parse and dispatch whatever is complete. Time spent dispatching does not count
        // against the client timeout: the clock restarts when dispatching is done.
        loop {
            match reader.next_message() {
                Ok(Some(message)) => {
                    shared
                        .received
                        .get_or_init(|| metrics::counter!("signalr_messages_received_total", "hub" => shared.label.clone()))
                        .increment(1);
                    if message.is_trackable() {
                        if let Some(state) = &connection.stateful {
                            if !state.receive() {
                                continue;
                            }
                        }
                    }
                    // After the connection closed, what already arrived is still handed over
                    // (upload items, completions); new invocations are not started.
                    // Boxed: what dispatching holds while it waits is large, and kept only
                    // for the message at hand instead of in every connection's state.
                    dispatch_boxed(shared, connection, &invocations, &mut transport, message).await;
                }
                Ok(None) => match transport.stash.take() {
                    Some(chunk) => {
                        got_data = true;
                        reader.feed_bytes(chunk);
                    }
                    None => {
                        if !connection.has_unflushed() {
                            break;
                        }
                        // Replies wait in the transport's buffer: what else has already
                        // arrived is answered first, so that they all leave in one write.
                        let next = if detached_since.is_none() && !transport.ended {
                            transport.incoming.next().now_or_never()
                        } else {
                            None
                        };
                        if let Some(Some(chunk)) = next {
                            got_data = true;
                            run += 1;
                            reader.feed_bytes(chunk);
                            continue;
                        }
                        connection
                            .flush_direct(options.transport_send_timeout)
                            .await;
                        if next.is_some() && transport.ended_now(connection, &mut detached_since) {
                            return;
                        }
                        break;
                    }
                },
                Err(err) => {
                    tracing::debug!(error = %err, "closing a connection that sent invalid data");
                    let detail = HubError::exception("InvalidDataException", err.to_string());
                    connection.close(CloseCause::Error(Some(detail)));
                    return;
                }
            }
        }
        if got_data {
            last_received = Instant::now();
        }
        got_data = false;
        let timeout_at = if connection.received_ping.load(Ordering::Relaxed) {
            tokio::time::Instant::from_std(last_received + options.client_timeout_interval)
        } else {
            far()
        };
        if timeout.deadline() > timeout_at {
            timeout.as_mut().reset(timeout_at);
        }
        let stateful = connection.stateful.is_some();
        let mut waited = false;
        tokio::select! {
            chunk = std::future::poll_fn(|cx| {
                let polled = transport.incoming.poll_next_unpin(cx);
                waited |= polled.is_pending();
                polled
            }), if detached_since.is_none() && !transport.ended => match chunk {
                Some(chunk) => {
                    got_data = true;
                    if waited {
                        transport.coalesce = run > 1;
                        run = 0;
                    }
                    run += 1;
                    reader.feed_bytes(chunk);
                }
                None => {
                    if transport.ended_now(connection, &mut detached_since) {
                        return;
                    }
                }
            },
            ended = std::future::poll_fn(|cx| connection.poll_ended(cx, detached_since.is_none())) => {
                if ended == Ended::Dropped {
                    // Let go of the dropped transport's reading half, so that its socket
                    // closes.
                    transport.release();
                    if stateful {
                        detached_since = Some(tokio::time::Instant::now());
                    } else {
                        connection.close(CloseCause::Client);
                        return;
                    }
                    continue;
                }
                // Closed: hand over what had already arrived (read ahead, or waiting in
                // the transport), once, then stop.
                if drained {
                    return;
                }
                drained = true;
                let mut more = false;
                if let Some(chunk) = transport.stash.take() {
                    reader.feed_bytes(chunk);
                    more = true;
                }
                if !transport.ended {
                    if let Some(Some(chunk)) = transport.incoming.next().now_or_never() {
                        reader.feed_bytes(chunk);
                        more = true;
                    }
                }
                if !more {
                    return;
                }
                got_data = true;
            }
            io = async {
                match transport.reattach.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            }, if stateful => {
                let Some(io) = io else { continue };
                tracing::debug!("stateful reconnect");
                transport.swap(connection, io);
                detached_since = None;
                got_data = true;
                // The client starts its half with a Sequence; partial data from the old
                // transport is gone.
                reader = MessageReader::new(connection.protocol.clone(), options.maximum_receive_message_size);
            }
            () = async {
                if let Some(since) = detached_since {
                    tokio::time::sleep_until(since + options.disconnect_timeout).await;
                }
            }, if detached_since.is_some() => {
                tracing::debug!("no stateful reconnect in time");
                connection.close(CloseCause::Client);
                return;
            }
            () = async {
                match acks.as_mut() {
                    Some(acks) => { acks.tick().await; }
                    None => std::future::pending().await,
                }
            }, if stateful && detached_since.is_none() => {
                if let Some(id) = connection.stateful.as_deref().and_then(Stateful::pending_ack) {
                    if let Ok(bytes) = connection.protocol.to_bytes(&HubMessage::Ack(Ack::new(id))) {
                        let _ = connection.send_control(bytes);
                    }
                }
            }
            () = &mut timeout, if detached_since.is_none() => {
                if tokio::time::Instant::now() < timeout_at {
                    // Set for an earlier deadline; data has come since.
                    timeout.as_mut().reset(timeout_at);
                    continue;
                }
                let detail = HubError::exception(
                    "OperationCanceledException",
                    "Client hasn't sent a message/ping within the configured ClientTimeoutInterval.",
                );
                connection.close(CloseCause::Error(Some(detail)));
                return;
            }
        }
    }
}

/// [`dispatch`], boxed; invocations, the usual message, go to [`invoke`] without
/// `dispatch`'s future around it, which would also hold the message. Under 1,032 bytes, the
/// box of an invocation stays in the allocator's thread cache.
fn dispatch_boxed<'a>(
    shared: &'a Arc<HubShared>,
    connection: &'a Arc<Connection>,
    invocations: &'a Arc<Semaphore>,
    transport: &'a mut Attached,
    message: HubMessage,
) -> BoxFuture<'a, ()> {
    match message {
        HubMessage::Invocation(m) => Box::pin(invoke(
            shared,
            connection,
            invocations,
            transport,
            m.invocation_id,
            m.target,
            m.arguments,
            m.stream_ids,
            false,
        )),
        message => Box::pin(dispatch(
            shared,
            connection,
            invocations,
            transport,
            message,
        )),
    }
}

/// Handles one message other than an invocation: those come through [`dispatch_boxed`],
/// which hands them to [`invoke`] itself.
async fn dispatch(
    shared: &Arc<HubShared>,
    connection: &Arc<Connection>,
    invocations: &Arc<Semaphore>,
    transport: &mut Attached,
    message: HubMessage,
) {
    match message {
        HubMessage::StreamInvocation(m) => {
            invoke(
                shared,
                connection,
                invocations,
                transport,
                Some(m.invocation_id),
                m.target,
                m.arguments,
                m.stream_ids,
                true,
            )
            .await;
        }
        HubMessage::StreamItem(item) => match connection.upload(&item.invocation_id) {
            // Waiting here applies the upload stream's buffer limit to the whole
            // connection, as ASP.NET Core does.
            Some(tx) => {
                let sent = match tx.try_send(UploadItem::Item(item.item)) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(value)) if !connection.is_closed() => {
                        let timeout = shared.options.transport_send_timeout;
                        Box::pin(async {
                            tokio::select! {
                                sent = tx.send(value) => sent.is_ok(),
                                () = connection.closed.cancelled() => true,
                                () = transport.watch(connection, timeout) => true,
                            }
                        })
                        .await
                    }
                    Err(_) => false,
                };
                if !sent {
                    connection.remove_upload(&item.invocation_id);
                }
            }
            None => tracing::debug!("No stream with id '{}' could be found.", item.invocation_id),
        },
        HubMessage::Completion(completion) => {
            if let Some(tx) = connection.remove_upload(&completion.invocation_id) {
                let last = match completion.result {
                    CompletionResult::Error(error) => UploadItem::Error(HubError::new(error)),
                    _ => UploadItem::End,
                };
                if let Err(mpsc::error::TrySendError::Full(last)) = tx.try_send(last) {
                    if !connection.is_closed() {
                        let timeout = shared.options.transport_send_timeout;
                        Box::pin(async {
                            tokio::select! {
                                _ = tx.send(last) => {}
                                () = connection.closed.cancelled() => {}
                                () = transport.watch(connection, timeout) => {}
                            }
                        })
                        .await;
                    }
                }
            } else if !connection.complete_result(&completion.invocation_id, completion.result) {
                tracing::debug!(
                    "Unexpected completion for invocation '{}'.",
                    completion.invocation_id
                );
            }
        }
        HubMessage::CancelInvocation(cancel)
            if !connection.cancel_running(&cancel.invocation_id) =>
        {
            tracing::debug!(
                "CancelInvocation for unknown invocation '{}'.",
                cancel.invocation_id
            );
        }
        HubMessage::Ping => {
            connection.received_ping.store(true, Ordering::Relaxed);
        }
        HubMessage::Close(close) => {
            connection.close(match close.error {
                Some(error) if !error.is_empty() => CloseCause::ClientError(error),
                _ => CloseCause::Client,
            });
        }
        HubMessage::Ack(ack) => {
            if let Some(state) = &connection.stateful {
                state.ack(ack.sequence_id);
            }
        }
        HubMessage::Sequence(sequence) => {
            if let Some(state) = &connection.stateful {
                if state.sequence(sequence.sequence_id).is_err() {
                    let detail = HubError::exception(
                        "InvalidOperationException",
                        "Sequence ID greater than amount of messages we've received.",
                    );
                    connection.close(CloseCause::Error(Some(detail)));
                }
            }
        }
        _ => {}
    }
}

fn failed_to_invoke(target: &str, detail: &HubError, detailed: bool) -> String {
    detail.build_message(
        &format!("Failed to invoke '{target}' due to an error on the server."),
        detailed,
    )
}

/// An invocation's method, bound to its arguments and ready to run.
struct Bound {
    method: Arc<crate::hub::Method>,
    future: BoxFuture<'static, Result<HubValue, HubError>>,
    context: Option<InvocationContext>,
    cancel: Option<CancellationToken>,
    tracked: bool,
}

/// The part of an invocation that never waits: the checks, the upload streams and the
/// binding; the error to answer with when the method cannot run. A function of its own, so
/// that nothing it handles takes room in the invocation's future, which the read loop
/// allocates for every message.
fn bind_invocation(
    shared: &Arc<HubShared>,
    connection: &Arc<Connection>,
    invocation_id: Option<&str>,
    target: &str,
    arguments: Vec<RawValue>,
    stream_ids: &[String],
    streaming: bool,
) -> Result<Bound, String> {
    let detailed = shared.options.enable_detailed_errors;
    let Some(method) = shared.method(target).cloned() else {
        tracing::debug!(%target, "unknown hub method");
        return Err(failed_to_invoke(
            target,
            &HubError::new("Method does not exist."),
            detailed,
        ));
    };
    if method.streaming != streaming {
        return Err(if streaming {
            format!(
                "The client attempted to invoke the non-streaming '{target}' method with a streaming invocation."
            )
        } else {
            format!(
                "The client attempted to invoke the streaming '{target}' method with a non-streaming invocation."
            )
        });
    }
    if let Some(policy) = shared.method_policy(&method) {
        if !policy(connection.identity.as_ref()) {
            return Err(format!(
                "Failed to invoke '{target}' because user is unauthorized"
            ));
        }
    }
    if arguments.len() != method.arguments {
        let detail = HubError::exception(
            "InvalidDataException",
            format!(
                "Invocation provides {} argument(s) but target expects {}.",
                arguments.len(),
                method.arguments
            ),
        );
        return Err(failed_to_invoke(target, &detail, detailed));
    }
    if stream_ids.len() != method.uploads {
        let detail = HubError::new(format!(
            "Client sent {} stream(s), Hub method expects {}.",
            stream_ids.len(),
            method.uploads
        ));
        return Err(detail.build_message(
            &format!("An unexpected error occurred invoking '{target}' on the server."),
            detailed,
        ));
    }
    // Only streams can be cancelled by the client (as in ASP.NET Core), so only they get a
    // token of their own and an entry in the running map; other methods that ask for a
    // token get one tied to the connection.
    let cancel = streaming.then(|| connection.closed.child_token());
    let tracked = match (invocation_id, &cancel) {
        (Some(id), Some(token)) => {
            if !connection.add_running(id, token.clone()) {
                return Err(format!("Invocation ID '{id}' is already in use."));
            }
            true
        }
        _ => false,
    };
    let mut uploads = Vec::with_capacity(stream_ids.len());
    for id in stream_ids {
        let (tx, rx) = mpsc::channel(shared.options.stream_buffer_capacity);
        connection.add_upload(id.clone(), tx);
        uploads.push(rx);
    }
    let context = (!shared.filters.is_empty()).then(|| InvocationContext {
        caller: Caller {
            connection: connection.clone(),
        },
        hub: shared.name.clone(),
        method: method.name.clone(),
        arguments: arguments.clone(),
    });
    let call = Call {
        shared: shared.clone(),
        connection: connection.clone(),
        arguments: arguments.into_iter(),
        uploads: uploads.into_iter(),
        cancel: cancel.clone(),
        disconnect_error: None,
    };
    match (method.bind)(call) {
        Ok(future) => Ok(Bound {
            method,
            future,
            context,
            cancel,
            tracked,
        }),
        Err(err) => {
            finish(connection, stream_ids, tracked, invocation_id);
            let detail = HubError::exception("InvalidDataException", bind_text(&err));
            Err(failed_to_invoke(target, &detail, detailed))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn invoke(
    shared: &Arc<HubShared>,
    connection: &Arc<Connection>,
    invocations: &Arc<Semaphore>,
    transport: &mut Attached,
    invocation_id: Option<String>,
    target: String,
    arguments: Vec<RawValue>,
    stream_ids: Vec<String>,
    streaming: bool,
) {
    if connection.is_closed() {
        return;
    }
    // Used field by field, not taken apart: each binding would take room of its own in this
    // future, kept with the report's.
    let mut bound = match bind_invocation(
        shared,
        connection,
        invocation_id.as_deref(),
        &target,
        arguments,
        &stream_ids,
        streaming,
    ) {
        Ok(bound) => bound,
        Err(error) => {
            if let Some(id) = invocation_id {
                // Boxed, as the waits below: rare, and what they hold would otherwise take
                // room in every invocation's future.
                Box::pin(send_completion(
                    connection,
                    Completion::with_error(id, error),
                ))
                .await;
            }
            return;
        }
    };
    // Non-streaming invocations without upload streams take a slot; with the default of one
    // slot, the next invocation waits here, which keeps results in order.
    let permit = if streaming || !stream_ids.is_empty() {
        None
    } else if let Ok(permit) = invocations.clone().try_acquire_owned() {
        Some(permit)
    } else {
        let timeout = shared.options.transport_send_timeout;
        let waited = Box::pin(async {
            tokio::select! {
                permit = invocations.clone().acquire_owned() => Some(permit.ok()),
                () = transport.watch(connection, timeout) => Some(None),
                () = connection.closed.cancelled() => None,
            }
        })
        .await;
        match waited {
            Some(permit) => permit,
            None => {
                finish(
                    connection,
                    &stream_ids,
                    bound.tracked,
                    invocation_id.as_deref(),
                );
                return;
            }
        }
    };
    // Made only when a subscriber wants it: without one, `tracing`'s `log` fallback (which
    // axum's default features turn on) would record the span's fields on every invocation.
    let span = if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::debug_span!("signalr_invocation", method = %bound.method.name)
    } else {
        tracing::Span::none()
    };
    let done = Invocated {
        method: bound.method,
        invocation_id,
        target,
        cancel: bound.cancel,
        permit,
        stream_ids,
        tracked: bound.tracked,
        started: Instant::now(),
    };
    let Some(context) = bound.context else {
        // Most methods finish without waiting (an echo, a send to a group): without
        // filters, poll the method here, at once, and make a task only for one that waits.
        // A method polled here and found waiting is polled again by its task, which then
        // holds the waker that matters.
        // In a block of its own: what the poll holds (a context, a panic) must be gone
        // before the report awaits.
        let outcome = {
            let polled = {
                let _entered = span.enter();
                let mut cx = Context::from_waker(std::task::Waker::noop());
                std::panic::catch_unwind(AssertUnwindSafe(|| bound.future.as_mut().poll(&mut cx)))
            };
            match polled {
                Ok(Poll::Ready(outcome)) => outcome,
                Ok(Poll::Pending) => {
                    let connection = connection.clone();
                    tokio::spawn(
                        finish_invocation(shared.clone(), connection, bound.future, done)
                            .instrument(span),
                    );
                    return;
                }
                Err(panic) => panicked(&*panic),
            }
        };
        let coalesce = transport.coalesce;
        done.report_now(shared, connection, outcome, coalesce).await;
        return;
    };
    let connection = connection.clone();
    let shared = shared.clone();
    let mut task = Box::pin(
        async move {
            let run = Next {
                filters: &shared.filters,
                context: &context,
                method: bound.future,
            }
            .run();
            let outcome = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(outcome) => outcome,
                Err(panic) => panicked(&*panic),
            };
            done.report(shared, connection, outcome).await;
        }
        .instrument(span),
    );
    let mut cx = Context::from_waker(std::task::Waker::noop());
    if task.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(task);
    }
}

/// What is left to do once a method has run: metrics, the completion or stream, and
/// letting go of the invocation slot and uploads.
struct Invocated {
    method: Arc<crate::hub::Method>,
    invocation_id: Option<String>,
    target: String,
    cancel: Option<CancellationToken>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    stream_ids: Vec<String>,
    tracked: bool,
    started: Instant,
}

impl Invocated {
    /// As [`Invocated::report`], for a method that finished at once: a completion goes
    /// straight to the socket when nothing is queued ahead of it
    /// ([`Connection::send_direct`]), else into the outbound queue when there is room; a
    /// stream, or a completion that must wait for room, goes on in a task of its own.
    /// With `coalesce`, the completion may wait in the socket's buffer for the next ones.
    async fn report_now(
        mut self,
        shared: &Arc<HubShared>,
        connection: &Arc<Connection>,
        outcome: Result<HubValue, HubError>,
        coalesce: bool,
    ) {
        self.record(shared, &outcome);
        let detailed = shared.options.enable_detailed_errors;
        // The completion takes the id, unless the running map still needs it (streams).
        let id = if self.tracked {
            self.invocation_id.clone()
        } else {
            self.invocation_id.take()
        };
        let bytes = match reply(id, &self.target, outcome, detailed) {
            Reply::Nothing => None,
            Reply::Send(completion) => completion_bytes(connection, completion),
            Reply::Stream(items) => {
                let connection = connection.clone();
                tokio::spawn(async move {
                    if let Some(id) = self.invocation_id.as_deref() {
                        stream_items(&connection, id, items, self.cancel.as_ref(), detailed).await;
                    }
                    self.done(&connection);
                });
                return;
            }
        };
        if let Some(bytes) = bytes {
            // Straight to the socket when nothing is queued ahead; else into the queue;
            // else (no room) on a task that waits for room.
            let timeout = shared.options.transport_send_timeout;
            let queued = match connection.send_direct(bytes, timeout, coalesce).await {
                Ok(()) => Ok(Ok(())),
                Err(bytes) => connection.try_send_own(bytes),
            };
            if let Err(bytes) = queued {
                let connection = connection.clone();
                tokio::spawn(async move {
                    let _ = connection.send_own(bytes).await;
                    self.done(&connection);
                });
                return;
            }
        }
        self.done(connection);
    }

    fn record(&self, shared: &HubShared, outcome: &Result<HubValue, HubError>) {
        let handles = self.method.metrics(&shared.label);
        handles
            .duration
            .record(self.started.elapsed().as_secs_f64());
        if outcome.is_err() {
            handles.errors.increment(1);
        }
    }

    /// Lets go of the invocation slot, then forgets the uploads and running entry.
    fn done(self, connection: &Connection) {
        drop(self.permit);
        finish(
            connection,
            &self.stream_ids,
            self.tracked,
            self.invocation_id.as_deref(),
        );
    }

    async fn report(
        self,
        shared: Arc<HubShared>,
        connection: Arc<Connection>,
        outcome: Result<HubValue, HubError>,
    ) {
        self.record(&shared, &outcome);
        deliver(
            &connection,
            self.invocation_id.as_deref(),
            &self.target,
            outcome,
            self.cancel.as_ref(),
            shared.options.enable_detailed_errors,
        )
        .await;
        self.done(&connection);
    }
}

/// A method that did not finish at once, on a task of its own.
async fn finish_invocation(
    shared: Arc<HubShared>,
    connection: Arc<Connection>,
    future: BoxFuture<'static, Result<HubValue, HubError>>,
    done: Invocated,
) {
    let outcome = match AssertUnwindSafe(future).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(panic) => panicked(&*panic),
    };
    done.report(shared, connection, outcome).await;
}

fn panicked(panic: &(dyn std::any::Any + Send)) -> Result<HubValue, HubError> {
    let message = panic_message(panic);
    tracing::error!(%message, "hub method panicked");
    Err(HubError::exception("Panic", message))
}

/// Forgets an invocation's upload streams and, for a stream, its running entry.
fn finish(
    connection: &Connection,
    stream_ids: &[String],
    tracked: bool,
    invocation_id: Option<&str>,
) {
    for id in stream_ids {
        connection.remove_upload(id);
    }
    if tracked {
        if let Some(id) = invocation_id {
            connection.remove_running(id);
        }
    }
}

async fn send_completion(connection: &Connection, completion: Completion) {
    if let Some(bytes) = completion_bytes(connection, completion) {
        let _ = connection.send_own(bytes).await;
    }
}

fn completion_bytes(connection: &Connection, completion: Completion) -> Option<Bytes> {
    match connection
        .protocol
        .to_bytes(&HubMessage::Completion(completion))
    {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            tracing::warn!(error = %err, "could not write a completion");
            None
        }
    }
}

/// What a method's outcome calls for.
enum Reply {
    /// Nothing: a non-blocking invocation.
    Nothing,
    /// A completion: the result, no result, or the error.
    Send(Completion),
    /// Stream items, then a completion.
    Stream(crate::handler::ItemStream),
}

fn reply(
    invocation_id: Option<String>,
    target: &str,
    outcome: Result<HubValue, HubError>,
    detailed: bool,
) -> Reply {
    let Some(id) = invocation_id else {
        if let Err(err) = outcome {
            tracing::debug!(error = %err, "non-blocking invocation failed");
        }
        return Reply::Nothing;
    };
    match outcome {
        Err(err) => Reply::Send(Completion::with_error(
            id,
            err.build_message(
                &format!("An unexpected error occurred invoking '{target}' on the server."),
                detailed,
            ),
        )),
        Ok(HubValue(MethodOutput::Value(Some(result)))) => {
            Reply::Send(Completion::with_result(id, result))
        }
        Ok(HubValue(MethodOutput::Value(None))) => Reply::Send(Completion::void(id)),
        Ok(HubValue(MethodOutput::Stream(items))) => Reply::Stream(items),
    }
}

async fn deliver(
    connection: &Connection,
    invocation_id: Option<&str>,
    target: &str,
    outcome: Result<HubValue, HubError>,
    cancel: Option<&CancellationToken>,
    detailed: bool,
) {
    match reply(invocation_id.map(str::to_owned), target, outcome, detailed) {
        Reply::Nothing => {}
        Reply::Send(completion) => send_completion(connection, completion).await,
        Reply::Stream(items) => {
            if let Some(id) = invocation_id {
                stream_items(connection, id, items, cancel, detailed).await;
            }
        }
    }
}

/// Sends a stream's items as they come, then its completion.
async fn stream_items(
    connection: &Connection,
    id: &str,
    mut items: crate::handler::ItemStream,
    cancel: Option<&CancellationToken>,
    detailed: bool,
) {
    loop {
        let item = match cancel {
            Some(cancel) => tokio::select! {
                item = items.next() => item,
                () = cancel.cancelled() => None,
            },
            None => items.next().await,
        };
        match item {
            Some(Ok(item)) => {
                let bytes = match connection
                    .protocol
                    .to_bytes(&HubMessage::StreamItem(StreamItem::new(id, item)))
                {
                    Ok(bytes) => bytes,
                    Err(err) => {
                        let detail = HubError::exception("SerializationException", err.to_string());
                        let text = detail.build_message(
                            "An error occurred on the server while streaming results.",
                            detailed,
                        );
                        send_completion(connection, Completion::with_error(id, text)).await;
                        return;
                    }
                };
                if connection.send_own(bytes).await.is_err() {
                    return;
                }
            }
            Some(Err(err)) => {
                let text = err.build_message(
                    "An error occurred on the server while streaming results.",
                    detailed,
                );
                send_completion(connection, Completion::with_error(id, text)).await;
                return;
            }
            None => break,
        }
    }
    drop(items);
    send_completion(connection, Completion::void(id)).await;
}
