//! One logical connection: identity, protocol, the bounded outbound queue, and the state
//! of its invocations, streams and client results.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use signalr_core::{Close, CompletionResult, HubMessage, HubProtocol, RawValue, TransportType};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::args::SerializedMessage;
use crate::dispatch::TransportSink;
use crate::error::{Error, ErrorKind, HubError};
use crate::identity::{Identity, Items, RequestInfo};

/// What the connection's writer sends.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Framed hub-protocol bytes; `tracked` marks the messages stateful reconnect numbers
    /// and buffers (invocations, stream items, completions, cancels).
    Data { bytes: Bytes, tracked: bool },
    /// Send nothing more; close the transport cleanly.
    Close,
}

/// The connection's single outbound queue, bounded by bytes. A plain locked queue: it
/// holds no memory while empty (most connections, most of the time), and the writer is
/// woken only when the queue goes from empty to not empty.
#[derive(Debug)]
pub(crate) struct Outbound {
    items: Mutex<VecDeque<Outgoing>>,
    /// The writer, waiting for something to send (it is the only one who waits).
    writer: AtomicWaker,
    queued: AtomicUsize,
    limit: usize,
    space: Notify,
    /// Senders waiting for room: the writer wakes them only when there are some.
    waiting: AtomicUsize,
}

impl Outbound {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            writer: AtomicWaker::new(),
            queued: AtomicUsize::new(0),
            limit,
            space: Notify::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    fn push(&self, item: Outgoing) {
        let was_empty = {
            let mut items = lock(&self.items);
            let was_empty = items.is_empty();
            items.push_back(item);
            was_empty
        };
        // A writer that found the queue empty waits, or has registered and looks again.
        if was_empty {
            self.writer.wake();
        }
    }

    /// The next queued item, if any.
    pub(crate) fn try_recv(&self) -> Option<Outgoing> {
        let mut items = lock(&self.items);
        let item = items.pop_front();
        // Give back what a burst left behind.
        if items.is_empty() && items.capacity() > 64 {
            *items = VecDeque::new();
        }
        item
    }

    /// Waits until something is queued. For the writer only: there is one waiter.
    pub(crate) async fn ready(&self) {
        std::future::poll_fn(|cx| {
            self.writer.register(cx.waker());
            if lock(&self.items).is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }

    /// Queues `bytes` unless that would pass the limit (an empty queue takes any one
    /// message). Never waits.
    fn try_push(&self, bytes: Bytes, tracked: bool) -> Result<(), Bytes> {
        let len = bytes.len();
        let mut current = self.queued.load(Ordering::SeqCst);
        loop {
            if current > 0 && current + len > self.limit {
                return Err(bytes);
            }
            match self.queued.compare_exchange_weak(
                current,
                current + len,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.push(Outgoing::Data { bytes, tracked });
        Ok(())
    }

    /// Records that the writer sent `len` bytes, waking senders waiting for room.
    pub(crate) fn sent(&self, len: usize) {
        // SeqCst on both sides (here and in `send_own`): either the waiter sees the room,
        // or this sees the waiter.
        self.queued.fetch_sub(len, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.space.notify_waiters();
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.push(Outgoing::Close);
    }
}

/// What [`Connection::poll_ended`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The connection closed.
    Closed,
    /// The current transport was dropped.
    Dropped,
}

/// One sender waiting for room in an outbound queue, for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseCause {
    /// The client closed (transport closed or Close message without error).
    Client,
    /// The client's Close message carried an error.
    ClientError(String),
    /// The server closed it because of an error (parse error, message too large, client
    /// timeout); the detail is shown to the client with detailed errors.
    Error(Option<HubError>),
    /// `on_connected` refused it with this text; no reconnect.
    Rejected(String),
    /// Hub code called abort.
    Aborted,
    /// The connection could not keep up with what it was sent.
    TooSlow,
}

impl CloseCause {
    /// The error `on_disconnected` sees, or `None` for a normal close.
    pub(crate) fn error_text(&self) -> Option<String> {
        match self {
            CloseCause::Client | CloseCause::Aborted => None,
            CloseCause::ClientError(e) | CloseCause::Rejected(e) => Some(e.clone()),
            CloseCause::Error(Some(e)) => Some(e.detail()),
            CloseCause::Error(None) => Some("Connection closed with an error.".to_owned()),
            CloseCause::TooSlow => Some("The connection's outbound queue is full.".to_owned()),
        }
    }
}

/// What feeds an upload stream.
#[derive(Debug)]
pub(crate) enum UploadItem {
    /// An item.
    Item(RawValue),
    /// The client ended the stream with an error.
    Error(HubError),
    /// The client ended the stream normally.
    End,
}

/// How many replies [`Connection::send_direct`] leaves in the transport's buffer before it
/// writes them out without waiting for the read loop's flush: a bound on how long the first
/// of a run of pipelined replies waits for the last.
pub(crate) const MAX_UNFLUSHED: usize = 32;

/// A connected client.
pub(crate) struct Connection {
    pub(crate) id: String,
    pub(crate) protocol: Arc<dyn HubProtocol>,
    pub(crate) transport: TransportType,
    pub(crate) identity: Option<Identity>,
    pub(crate) user_id: Option<String>,
    pub(crate) request: RequestInfo,
    pub(crate) items: Items,
    pub(crate) outbound: Outbound,
    /// The transport's sending half. The writer takes items from `outbound` only while it
    /// holds this lock, so whoever holds it and finds the queue empty may write straight
    /// through without overtaking anything ([`send_direct`](Self::send_direct)).
    pub(crate) sink: tokio::sync::Mutex<Option<Box<dyn TransportSink>>>,
    /// Cancelled when the connection ends, for whatever reason (only by `close`).
    pub(crate) closed: CancellationToken,
    /// Set just before `closed` is cancelled: checked on every send, and an atomic load
    /// where the token's state sits behind a lock.
    is_closed: AtomicBool,
    /// Set while the current transport is dropped (`drop_transport` until `new_transport`).
    transport_dropped: AtomicBool,
    /// Replies [`send_direct`](Self::send_direct) left in the transport's buffer since the
    /// last [`flush_direct`](Self::flush_direct).
    unflushed: AtomicUsize,
    /// The read loop, waiting for the connection to close or its transport to drop.
    reader: AtomicWaker,
    cause: Mutex<Option<CloseCause>>,
    /// Server-to-client streams and cancellable invocations, by invocation id.
    pub(crate) running: Mutex<HashMap<String, CancellationToken>>,
    /// Client-to-server streams being fed, by stream id.
    pub(crate) uploads: Mutex<HashMap<String, mpsc::Sender<UploadItem>>>,
    /// Client-result invocations awaiting the client's completion.
    pending_results: Mutex<HashMap<String, oneshot::Sender<CompletionResult>>>,
    next_result_id: AtomicU64,
    pub(crate) received_ping: AtomicBool,
    detailed_errors: bool,
    pub(crate) ping: Bytes,
    /// Stateful reconnect bookkeeping, when the connection negotiated it.
    pub(crate) stateful: Option<Box<Stateful>>,
    /// How many transports were attached after the first: the writer notices that the
    /// transport it writes to was dropped by this number changing, or by
    /// `transport_dropped`.
    attachment: AtomicU64,
}

/// Stateful reconnect state: what was sent and not yet acknowledged, what was received.
#[derive(Debug)]
pub(crate) struct Stateful {
    /// Sent trackable messages not yet acknowledged, with their sequence ids.
    pub(crate) unacked: Mutex<VecDeque<(i64, Bytes)>>,
    pub(crate) unacked_bytes: AtomicUsize,
    /// The sequence id the next sent trackable message gets.
    pub(crate) next_sent: std::sync::atomic::AtomicI64,
    /// Freed buffer space.
    pub(crate) space: Notify,
    pub(crate) limit: usize,
    /// The sequence id of the next received trackable message.
    pub(crate) next_received: std::sync::atomic::AtomicI64,
    /// The highest received sequence id processed (later copies are duplicates).
    pub(crate) processed: std::sync::atomic::AtomicI64,
    /// The highest sequence id acknowledged to the client.
    pub(crate) acked: std::sync::atomic::AtomicI64,
}

impl Stateful {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            unacked: Mutex::new(VecDeque::new()),
            unacked_bytes: AtomicUsize::new(0),
            next_sent: std::sync::atomic::AtomicI64::new(1),
            space: Notify::new(),
            limit,
            next_received: std::sync::atomic::AtomicI64::new(1),
            processed: std::sync::atomic::AtomicI64::new(0),
            acked: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Numbers and keeps a sent trackable message.
    pub(crate) fn record(&self, bytes: Bytes) {
        let id = self.next_sent.fetch_add(1, Ordering::AcqRel);
        self.unacked_bytes.fetch_add(bytes.len(), Ordering::AcqRel);
        lock(&self.unacked).push_back((id, bytes));
    }

    /// Whether the buffer has room for more.
    pub(crate) fn has_room(&self) -> bool {
        self.unacked_bytes.load(Ordering::Acquire) < self.limit
    }

    /// The client acknowledged everything up to `id`.
    pub(crate) fn ack(&self, id: i64) {
        let mut unacked = lock(&self.unacked);
        while unacked.front().is_some_and(|(seq, _)| *seq <= id) {
            if let Some((_, bytes)) = unacked.pop_front() {
                self.unacked_bytes.fetch_sub(bytes.len(), Ordering::AcqRel);
            }
        }
        drop(unacked);
        self.space.notify_waiters();
    }

    /// What to resend after a reconnect: the first sequence id and the messages.
    pub(crate) fn resend(&self) -> (i64, Vec<Bytes>) {
        let unacked = lock(&self.unacked);
        let first = unacked
            .front()
            .map_or_else(|| self.next_sent.load(Ordering::Acquire), |(id, _)| *id);
        (first, unacked.iter().map(|(_, b)| b.clone()).collect())
    }

    /// Counts a received trackable message; false when it is a duplicate to drop.
    pub(crate) fn receive(&self) -> bool {
        let id = self.next_received.fetch_add(1, Ordering::AcqRel);
        if id <= self.processed.load(Ordering::Acquire) {
            return false;
        }
        self.processed.store(id, Ordering::Release);
        true
    }

    /// The client's Sequence: the next message it sends has id `id`. Fails when that is
    /// past what was received.
    pub(crate) fn sequence(&self, id: i64) -> Result<(), ()> {
        if id > self.processed.load(Ordering::Acquire) + 1 {
            return Err(());
        }
        self.next_received.store(id, Ordering::Release);
        Ok(())
    }

    /// The id to acknowledge, when something arrived since the last Ack.
    pub(crate) fn pending_ack(&self) -> Option<i64> {
        let processed = self.processed.load(Ordering::Acquire);
        (self.acked.swap(processed, Ordering::AcqRel) < processed).then_some(processed)
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("protocol", &self.protocol.name())
            .field("transport", &self.transport)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here is a single map operation: a panic inside one cannot
    // leave the map half-updated, so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Connection {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: String,
        protocol: Arc<dyn HubProtocol>,
        transport: TransportType,
        identity: Option<Identity>,
        user_id: Option<String>,
        request: RequestInfo,
        outbound_limit: usize,
        detailed_errors: bool,
        stateful: Option<Stateful>,
        sink: Box<dyn TransportSink>,
    ) -> Arc<Self> {
        let outbound = Outbound::new(outbound_limit);
        // Writing a Ping cannot fail for a protocol that works at all; an empty frame is
        // the harmless fallback.
        let ping = protocol.to_bytes(&HubMessage::Ping).unwrap_or_default();
        Arc::new(Self {
            id,
            protocol,
            transport,
            identity,
            user_id,
            request,
            items: Items::default(),
            outbound,
            sink: tokio::sync::Mutex::new(Some(sink)),
            closed: CancellationToken::new(),
            is_closed: AtomicBool::new(false),
            transport_dropped: AtomicBool::new(false),
            unflushed: AtomicUsize::new(0),
            reader: AtomicWaker::new(),
            cause: Mutex::new(None),
            running: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
            pending_results: Mutex::new(HashMap::new()),
            next_result_id: AtomicU64::new(1),
            received_ping: AtomicBool::new(false),
            detailed_errors,
            ping,
            stateful: stateful.map(Box::new),
            attachment: AtomicU64::new(0),
        })
    }

    /// Sends a message from anywhere but this connection's own invocations: never waits;
    /// a connection too slow to take it is closed.
    pub(crate) fn send_message(&self, message: &SerializedMessage) -> Result<(), Error> {
        let bytes = message.bytes_for(&*self.protocol)?;
        self.send_bytes(bytes)
    }

    /// As [`send_message`](Self::send_message), for an invocation already framed in this
    /// connection's protocol.
    pub(crate) fn send_bytes(&self, bytes: Bytes) -> Result<(), Error> {
        self.push(bytes, true)
    }

    /// Sends a message stateful reconnect does not track (ping, ack, sequence, handshake).
    pub(crate) fn send_control(&self, bytes: Bytes) -> Result<(), Error> {
        self.push(bytes, false)
    }

    fn push(&self, bytes: Bytes, tracked: bool) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::new(ErrorKind::Disconnected(self.id.clone())));
        }
        let len = bytes.len();
        if self.outbound.try_push(bytes, tracked).is_err() {
            tracing::warn!(
                connection_id = %self.id,
                queued = self.outbound.queued(),
                message = len,
                "closing a connection whose outbound queue is full"
            );
            metrics::counter!("signalr_slow_connections_closed_total").increment(1);
            self.close(CloseCause::TooSlow);
            return Err(Error::new(ErrorKind::Disconnected(self.id.clone())));
        }
        Ok(())
    }

    /// [`send_own`](Self::send_own) when it need not wait: the bytes back when the queue
    /// has no room for them now.
    pub(crate) fn try_send_own(&self, bytes: Bytes) -> Result<Result<(), Error>, Bytes> {
        if self.is_closed() {
            return Ok(Err(Error::new(ErrorKind::Disconnected(self.id.clone()))));
        }
        self.outbound.try_push(bytes, true).map(Ok)
    }

    /// Writes a reply of this connection's own straight to its WebSocket, when nothing is
    /// queued ahead of it and the writer is not sending: no queue, and no wake-up of the
    /// writer's task. `Ok` once the reply is written, or dropped because writing failed and
    /// the connection closed; the bytes back when the reply must go through the queue
    /// instead.
    ///
    /// Only the read loop calls this, and with `coalesce` it may leave the reply in the
    /// transport's buffer (up to [`MAX_UNFLUSHED`] of them), so that replies to invocations
    /// that arrived together leave together in one write. The read loop calls
    /// [`flush_direct`](Self::flush_direct) before it waits for more input; anything the
    /// writer sends meanwhile takes the buffered replies with it, ahead of its own. A write
    /// that cannot finish at once is waited for here, which slows the read loop to the
    /// client's pace.
    pub(crate) async fn send_direct(
        &self,
        bytes: Bytes,
        timeout: std::time::Duration,
        coalesce: bool,
    ) -> Result<(), Bytes> {
        // Stateful reconnect numbers and keeps what it sends: the writer does that.
        if self.transport != TransportType::WebSockets || self.stateful.is_some() {
            return Err(bytes);
        }
        let Ok(mut slot) = self.sink.try_lock() else {
            return Err(bytes);
        };
        // Anything queued (or taken by the writer and not yet sent) goes first.
        if self.outbound.queued() != 0 || self.is_closed() || self.transport_dropped() {
            return Err(bytes);
        }
        let Some(sink) = slot.as_deref_mut() else {
            return Err(bytes);
        };
        let format = self.protocol.transfer_format();
        let held = self.unflushed.load(Ordering::Relaxed) + 1;
        let sent = if !coalesce || held >= MAX_UNFLUSHED {
            self.unflushed.store(0, Ordering::Relaxed);
            sink.send(bytes, format, timeout).await
        } else {
            self.unflushed.store(held, Ordering::Relaxed);
            sink.feed(bytes, format, timeout).await
        };
        if sent.is_err() {
            *slot = None;
            drop(slot);
            self.close(CloseCause::Client);
        }
        Ok(())
    }

    /// Whether [`send_direct`](Self::send_direct) left replies in the transport's buffer.
    pub(crate) fn has_unflushed(&self) -> bool {
        self.unflushed.load(Ordering::Relaxed) != 0
    }

    /// Writes out the replies [`send_direct`](Self::send_direct) left in the transport's
    /// buffer, if any, waiting for the writer to let go of the transport first.
    pub(crate) async fn flush_direct(&self, timeout: std::time::Duration) {
        if !self.has_unflushed() {
            return;
        }
        // Waited for: the writer may hold the transport only to find its queue empty, and
        // then sends nothing that would take the replies along.
        let mut slot = self.sink.lock().await;
        self.unflushed.store(0, Ordering::Relaxed);
        let Some(sink) = slot.as_deref_mut() else {
            return;
        };
        if sink.flush(timeout).await.is_err() {
            *slot = None;
            drop(slot);
            self.close(CloseCause::Client);
        }
    }

    /// Lets go of the transport's sending half, unless someone is using it.
    pub(crate) fn release_sink(&self) {
        if let Ok(mut slot) = self.sink.try_lock() {
            slot.take();
        }
    }

    /// Sends bytes produced by this connection's own invocations: waits for room instead
    /// of closing, so a hub method or stream is slowed to the client's pace.
    pub(crate) async fn send_own(&self, bytes: Bytes) -> Result<(), Error> {
        // Usually there is room: no waiting machinery then.
        let mut bytes = match self.try_send_own(bytes) {
            Ok(result) => return result,
            Err(bytes) => bytes,
        };
        let outbound = &self.outbound;
        outbound.waiting.fetch_add(1, Ordering::SeqCst);
        // Counted out again however this ends, a dropped future included.
        let _waiting = Waiting(&outbound.waiting);
        loop {
            if self.is_closed() {
                return Err(Error::new(ErrorKind::Disconnected(self.id.clone())));
            }
            let notified = outbound.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match outbound.try_push(bytes, true) {
                Ok(()) => return Ok(()),
                Err(back) => bytes = back,
            }
            tokio::select! {
                () = notified => {}
                () = self.closed.cancelled() => {}
            }
        }
    }

    /// Ends the connection: the first cause wins; the writer sends the Close message the
    /// cause calls for (as ASP.NET Core does) and closes the transport.
    pub(crate) fn close(&self, cause: CloseCause) {
        {
            let mut slot = lock(&self.cause);
            if slot.is_some() {
                return;
            }
            *slot = Some(cause.clone());
        }
        let message = match cause {
            CloseCause::Client | CloseCause::ClientError(_) => None,
            CloseCause::Aborted => Some(Close::new(None, false)),
            CloseCause::Error(detail) => {
                let prefix = "Connection closed with an error.";
                let error = match detail {
                    Some(detail) => detail.build_message(prefix, self.detailed_errors),
                    None => prefix.to_owned(),
                };
                Some(Close::new(Some(error), true))
            }
            CloseCause::Rejected(error) => Some(Close::new(Some(error), false)),
            CloseCause::TooSlow => Some(Close::new(
                Some("Connection closed with an error.".to_owned()),
                true,
            )),
        };
        if let Some(message) = message {
            if let Ok(bytes) = self.protocol.to_bytes(&HubMessage::Close(message)) {
                // Closing bypasses the queue limit: the Close must get out even when the
                // queue is full.
                self.outbound
                    .queued
                    .fetch_add(bytes.len(), Ordering::AcqRel);
                self.outbound.push(Outgoing::Data {
                    bytes,
                    tracked: false,
                });
            }
        }
        self.outbound.close();
        self.is_closed.store(true, Ordering::Release);
        self.closed.cancel();
        self.reader.wake();
    }

    /// Whether the connection has ended (`closed` is, or is about to be, cancelled).
    pub(crate) fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    /// Whether the current transport was dropped (and no new one attached since).
    pub(crate) fn transport_dropped(&self) -> bool {
        self.transport_dropped.load(Ordering::Acquire)
    }

    /// Which transport is attached: a number that changes with each new one.
    pub(crate) fn attachment(&self) -> u64 {
        self.attachment.load(Ordering::Acquire)
    }

    /// Whether the transport that was attached as `attachment` has been dropped since.
    pub(crate) fn dropped_since(&self, attachment: u64) -> bool {
        // The flag first: a new transport clears it only after changing the number.
        self.transport_dropped() || self.attachment() != attachment
    }

    /// For the writer: ready once the transport attached as `attachment` is dropped. It
    /// waits on the writer's waker, which [`drop_transport`](Self::drop_transport) wakes.
    pub(crate) fn poll_dropped(&self, cx: &mut Context<'_>, attachment: u64) -> Poll<()> {
        self.outbound.writer.register(cx.waker());
        if self.dropped_since(attachment) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Starts a new transport attachment.
    pub(crate) fn new_transport(&self) {
        self.attachment.fetch_add(1, Ordering::AcqRel);
        self.transport_dropped.store(false, Ordering::Release);
    }

    /// Drops the current transport abruptly, as a network fault would: no Close message,
    /// no close frame. With stateful reconnect the client can come back.
    pub(crate) fn drop_transport(&self) {
        self.transport_dropped.store(true, Ordering::Release);
        self.reader.wake();
        self.outbound.writer.wake();
    }

    /// For the read loop: ready once the connection has closed or (with `watch_drop`) its
    /// transport was dropped. One atomic waker, where two cancellation futures would each
    /// take a lock on every poll.
    pub(crate) fn poll_ended(&self, cx: &mut Context<'_>, watch_drop: bool) -> Poll<Ended> {
        self.reader.register(cx.waker());
        if self.is_closed() {
            Poll::Ready(Ended::Closed)
        } else if watch_drop && self.transport_dropped() {
            Poll::Ready(Ended::Dropped)
        } else {
            Poll::Pending
        }
    }

    pub(crate) fn cause(&self) -> Option<CloseCause> {
        lock(&self.cause).clone()
    }

    /// Registers a client-result invocation; returns its id and the receiver of the
    /// client's completion.
    pub(crate) fn register_result(&self) -> (String, oneshot::Receiver<CompletionResult>) {
        let id = format!("s{}", self.next_result_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        lock(&self.pending_results).insert(id.clone(), tx);
        (id, rx)
    }

    pub(crate) fn forget_result(&self, id: &str) {
        lock(&self.pending_results).remove(id);
    }

    /// Completes a pending client result. Returns false when none has this id.
    pub(crate) fn complete_result(&self, id: &str, result: CompletionResult) -> bool {
        match lock(&self.pending_results).remove(id) {
            Some(tx) => {
                let _ = tx.send(result);
                true
            }
            None => false,
        }
    }

    /// Fails every pending client result and stops every stream: the connection is gone.
    pub(crate) fn tear_down(&self) {
        let pending: Vec<_> = lock(&self.pending_results).drain().collect();
        drop(pending);
        for (_, token) in lock(&self.running).drain() {
            token.cancel();
        }
        lock(&self.uploads).clear();
    }

    pub(crate) fn add_running(&self, id: &str, token: CancellationToken) -> bool {
        let mut running = lock(&self.running);
        if running.contains_key(id) {
            return false;
        }
        running.insert(id.to_owned(), token);
        true
    }

    pub(crate) fn remove_running(&self, id: &str) {
        lock(&self.running).remove(id);
    }

    pub(crate) fn cancel_running(&self, id: &str) -> bool {
        match lock(&self.running).get(id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    pub(crate) fn add_upload(&self, id: String, tx: mpsc::Sender<UploadItem>) {
        lock(&self.uploads).insert(id, tx);
    }

    pub(crate) fn upload(&self, id: &str) -> Option<mpsc::Sender<UploadItem>> {
        lock(&self.uploads).get(id).cloned()
    }

    pub(crate) fn remove_upload(&self, id: &str) -> Option<mpsc::Sender<UploadItem>> {
        lock(&self.uploads).remove(id)
    }
}

/// A connection as a backplane sees it: its id, user, protocol, and a way to deliver a
/// message to it.
#[derive(Debug, Clone)]
pub struct ConnectionHandle(pub(crate) Arc<Connection>);

impl ConnectionHandle {
    /// The public connection id.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The user id, when the connection has one.
    pub fn user_id(&self) -> Option<&str> {
        self.0.user_id.as_deref()
    }

    /// The connection's hub protocol.
    pub fn protocol(&self) -> &Arc<dyn HubProtocol> {
        &self.0.protocol
    }

    /// Delivers `message`, serialized for this connection's protocol (at most once per
    /// protocol across all recipients). Never waits: a connection whose outbound queue is
    /// full is closed and the call fails.
    pub fn send(&self, message: &SerializedMessage) -> Result<(), Error> {
        self.0.send_message(message)
    }

    /// Delivers bytes already framed in this connection's protocol. Never waits, as
    /// [`send`](Self::send).
    pub fn send_bytes(&self, bytes: Bytes) -> Result<(), Error> {
        self.0.send_bytes(bytes)
    }

    /// Whether two handles are the same connection.
    pub fn same(&self, other: &ConnectionHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Waits for the client's Completion of an invocation whose id was chosen elsewhere,
    /// such as a client-result invocation another server relays through a backplane: send
    /// the invocation with [`send_bytes`](Self::send_bytes) after calling this. The
    /// returned future yields `None` when the connection ends first. Call
    /// [`forget_completion`](Self::forget_completion) if you stop waiting.
    pub fn expect_completion(
        &self,
        invocation_id: impl Into<String>,
    ) -> impl Future<Output = Option<CompletionResult>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        // A connection already ended is torn down (or about to be, which drains the map):
        // registering then would wait forever.
        if !self.0.is_closed() {
            lock(&self.0.pending_results).insert(invocation_id.into(), tx);
        }
        async move { rx.await.ok() }
    }

    /// Stops waiting for a completion registered with
    /// [`expect_completion`](Self::expect_completion).
    pub fn forget_completion(&self, invocation_id: &str) {
        self.0.forget_result(invocation_id);
    }
}
