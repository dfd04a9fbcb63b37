//! How plain async functions become hub methods: parameters are extracted from the call
//! (wire arguments, upload streams, the caller's context), results and streams are
//! serialized for the caller's protocol.

use std::any::TypeId;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use signalr_core::{Encoding, RawValue, TransportType};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clients::{Clients, Groups, HubClients, HubContext};
use crate::connection::{CloseCause, Connection, UploadItem};
use crate::error::HubError;
use crate::hub::HubShared;
use crate::identity::{Identity, Items, RequestInfo};

/// Everything a parameter can be extracted from.
pub struct Call {
    pub(crate) shared: Arc<HubShared>,
    pub(crate) connection: Arc<Connection>,
    pub(crate) arguments: std::vec::IntoIter<RawValue>,
    pub(crate) uploads: std::vec::IntoIter<mpsc::Receiver<UploadItem>>,
    /// The invocation's own token (streams, which a client can cancel); `None`: a child of
    /// the connection's, made only if the method asks for one.
    pub(crate) cancel: Option<CancellationToken>,
    pub(crate) disconnect_error: Option<String>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("connection", &self.connection.id)
            .finish_non_exhaustive()
    }
}

/// What a parameter takes from the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// The next wire argument.
    Argument,
    /// The next upload stream.
    Upload,
    /// Something from the context; nothing on the wire.
    Context,
}

/// Why the call's arguments do not fit the method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindError {
    /// A wire argument does not deserialize into the parameter's type.
    Type,
    /// The extractor could not be provided (a missing state, say).
    Missing(String),
}

/// Marker: the parameter is a wire argument deserialized into `T`.
#[derive(Debug)]
pub enum ViaArgument {}
/// Marker: the parameter comes from the call's context.
#[derive(Debug)]
pub enum ViaContext {}

/// A hub method parameter. Implemented for every `T: DeserializeOwned` (a wire argument)
/// and for the context extractors: [`Caller`], [`Clients`], [`HubClients`], [`Groups`],
/// [`HubContext`], [`State`], [`CancellationToken`], [`UploadStream`],
/// [`DisconnectReason`].
pub trait FromCall<M>: Sized + Send {
    /// What the parameter takes from the call.
    const KIND: ParamKind;

    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn from_call(call: &mut Call) -> Result<Self, BindError>;
}

impl<T: DeserializeOwned + Send> FromCall<ViaArgument> for T {
    const KIND: ParamKind = ParamKind::Argument;

    #[allow(private_interfaces)]
    fn from_call(call: &mut Call) -> Result<Self, BindError> {
        let value = call.arguments.next().ok_or(BindError::Type)?;
        value.deserialize_owned().map_err(|_| BindError::Type)
    }
}

/// The connection that made the call: its ids, user, request, items; and a way to end it.
#[derive(Clone)]
pub struct Caller {
    pub(crate) connection: Arc<Connection>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("connection_id", &self.connection.id)
            .finish()
    }
}

impl Caller {
    /// The public connection id (negotiate's `connectionId`).
    pub fn connection_id(&self) -> &str {
        &self.connection.id
    }

    /// The user id from the hub's user-id provider.
    pub fn user_id(&self) -> Option<&str> {
        self.connection.user_id.as_deref()
    }

    /// The authenticated identity, if any.
    pub fn identity(&self) -> Option<&Identity> {
        self.connection.identity.as_ref()
    }

    /// The HTTP request that opened the transport.
    pub fn request(&self) -> &RequestInfo {
        &self.connection.request
    }

    /// Values kept for the connection's lifetime.
    pub fn items(&self) -> &Items {
        &self.connection.items
    }

    /// The transport in use.
    pub fn transport(&self) -> TransportType {
        self.connection.transport
    }

    /// The hub protocol's name (`json`, `messagepack`).
    pub fn protocol(&self) -> &str {
        self.connection.protocol.name()
    }

    /// Ends the connection: a Close message without `allowReconnect` is sent, so the
    /// official clients do not reconnect automatically (ASP.NET Core's `Context.Abort()`).
    pub fn abort(&self) {
        self.connection.close(CloseCause::Aborted);
    }

    /// Drops the connection's transport abruptly, as a network fault would: no Close
    /// message, no close frame. A client with stateful reconnect comes back on a new
    /// transport and nothing is lost; any other client is disconnected. For testing fault
    /// handling.
    pub fn drop_transport(&self) {
        self.connection.drop_transport();
    }

    /// A token cancelled when the connection ends. Cancelling it yourself does not end
    /// the connection (use [`abort`](Self::abort) for that).
    pub fn closed(&self) -> CancellationToken {
        self.connection.closed.child_token()
    }
}

macro_rules! context_extractor {
    ($ty:ty, |$call:ident| $body:expr) => {
        impl FromCall<ViaContext> for $ty {
            const KIND: ParamKind = ParamKind::Context;

            #[allow(private_interfaces)]
            fn from_call($call: &mut Call) -> Result<Self, BindError> {
                Ok($body)
            }
        }
    };
}

context_extractor!(Caller, |call| Caller {
    connection: call.connection.clone()
});
context_extractor!(HubClients, |call| HubClients {
    shared: call.shared.clone()
});
context_extractor!(Clients, |call| Clients {
    hub: HubClients {
        shared: call.shared.clone()
    },
    caller: call.connection.id.clone(),
});
context_extractor!(Groups, |call| Groups {
    shared: call.shared.clone()
});
context_extractor!(HubContext, |call| HubContext {
    shared: call.shared.clone()
});
context_extractor!(CancellationToken, |call| call
    .cancel
    .clone()
    .unwrap_or_else(|| call.connection.closed.child_token()));
context_extractor!(DisconnectReason, |call| DisconnectReason {
    error: call.disconnect_error.clone()
});

/// A wire argument kept as it arrived, for forwarding without knowing its type.
impl FromCall<ViaContext> for RawValue {
    const KIND: ParamKind = ParamKind::Argument;

    #[allow(private_interfaces)]
    fn from_call(call: &mut Call) -> Result<Self, BindError> {
        call.arguments.next().ok_or(BindError::Type)
    }
}

/// Shared state registered with [`HubBuilder::state`](crate::HubBuilder::state), cloned
/// into each call.
#[derive(Debug, Clone)]
pub struct State<S>(pub S);

impl<S: Clone + Send + Sync + 'static> FromCall<ViaContext> for State<S> {
    const KIND: ParamKind = ParamKind::Context;

    #[allow(private_interfaces)]
    fn from_call(call: &mut Call) -> Result<Self, BindError> {
        call.shared
            .state
            .get::<S>()
            .cloned()
            .map(State)
            .ok_or_else(|| {
                BindError::Missing(format!("no state of type {}", std::any::type_name::<S>()))
            })
    }
}

/// Why a connection ended, for `on_disconnected` handlers: `None` for a normal close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectReason {
    error: Option<String>,
}

impl DisconnectReason {
    /// The error that ended the connection, if it did not end normally.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// A client-to-server stream parameter: the items the client sends for one of the
/// invocation's stream ids, in order.
///
/// Items that do not deserialize into `T` are dropped (as ASP.NET Core does). When the
/// client ends the stream with an error, the stream yields that error once (a
/// [`HubError::new`], so `?` reports it to the client as `HubException: ...`). When the
/// connection closes before the client ended the stream, it yields an
/// `OperationCanceledException` error, so a cut-off upload is never taken for a whole one.
pub struct UploadStream<T> {
    rx: mpsc::Receiver<UploadItem>,
    ended: bool,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for UploadStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadStream").finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Stream for UploadStream<T> {
    type Item = Result<T, HubError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(UploadItem::Item(raw))) => match raw.deserialize_owned::<T>() {
                    Ok(item) => return Poll::Ready(Some(Ok(item))),
                    Err(err) => {
                        tracing::debug!(error = %err, "dropping an upload stream item that does not bind");
                    }
                },
                Poll::Ready(Some(UploadItem::Error(err))) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Ready(Some(UploadItem::End)) => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                // The channel closed without the client ending the stream: the connection
                // went away, and what arrived is not the whole stream.
                Poll::Ready(None) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(HubError::exception(
                        "OperationCanceledException",
                        "The underlying connection was closed.",
                    ))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> FromCall<ViaContext> for UploadStream<T> {
    const KIND: ParamKind = ParamKind::Upload;

    #[allow(private_interfaces)]
    fn from_call(call: &mut Call) -> Result<Self, BindError> {
        let rx = call
            .uploads
            .next()
            .ok_or_else(|| BindError::Missing("upload stream".into()))?;
        Ok(UploadStream {
            rx,
            ended: false,
            _item: std::marker::PhantomData,
        })
    }
}

/// Marker for plain return values.
#[derive(Debug)]
pub enum Plain {}
/// Marker for `Result` return values.
#[derive(Debug)]
pub enum Fallible {}

/// What a non-streaming hub method may return: any serializable value (`()` means no
/// result), or `Result<T, E>` with `E: Into<HubError>`.
pub trait IntoHubResult<M>: Send + 'static {
    /// The result encoded for the caller, or the method's error.
    fn into_hub_result(self, encoding: Encoding) -> Result<Option<RawValue>, HubError>;
}

impl<T: Serialize + Send + 'static> IntoHubResult<Plain> for T {
    fn into_hub_result(self, encoding: Encoding) -> Result<Option<RawValue>, HubError> {
        if TypeId::of::<T>() == TypeId::of::<()>() {
            return Ok(None);
        }
        RawValue::encode(encoding, &self)
            .map(Some)
            .map_err(|e| HubError::exception("SerializationException", e.to_string()))
    }
}

impl<T: Serialize + Send + 'static, E: Into<HubError> + Send + 'static> IntoHubResult<Fallible>
    for Result<T, E>
{
    fn into_hub_result(self, encoding: Encoding) -> Result<Option<RawValue>, HubError> {
        self.map_err(Into::into)?.into_hub_result(encoding)
    }
}

/// Marker for a result in wire form.
#[derive(Debug)]
pub enum Raw {}

impl IntoHubResult<Raw> for RawValue {
    fn into_hub_result(self, encoding: Encoding) -> Result<Option<RawValue>, HubError> {
        self.to_encoding(encoding)
            .map(Some)
            .map_err(|e| HubError::exception("SerializationException", e.to_string()))
    }
}

/// What a stream item may be: a serializable value, or `Result<T, E>` whose error ends
/// the stream with that error.
pub trait IntoStreamItem<M>: Send + 'static {
    /// The item encoded for the caller, or the stream's error.
    fn into_stream_item(self, encoding: Encoding) -> Result<RawValue, HubError>;
}

impl<T: Serialize + Send + 'static> IntoStreamItem<Plain> for T {
    fn into_stream_item(self, encoding: Encoding) -> Result<RawValue, HubError> {
        RawValue::encode(encoding, &self)
            .map_err(|e| HubError::exception("SerializationException", e.to_string()))
    }
}

impl<T: Serialize + Send + 'static, E: Into<HubError> + Send + 'static> IntoStreamItem<Fallible>
    for Result<T, E>
{
    fn into_stream_item(self, encoding: Encoding) -> Result<RawValue, HubError> {
        self.map_err(Into::into)?.into_stream_item(encoding)
    }
}

/// An encoded server-to-client stream.
pub(crate) type ItemStream = BoxStream<'static, Result<RawValue, HubError>>;

/// What a streaming hub method may return: any `Stream` of stream items, or a `Result`
/// of one (an error fails the invocation before any item).
pub trait IntoHubStream<M>: Send + 'static {
    /// The stream with its items encoded for the caller.
    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn into_hub_stream(self, encoding: Encoding) -> Result<ItemStream, HubError>;
}

impl<S, I, IM> IntoHubStream<(Plain, IM)> for S
where
    S: Stream<Item = I> + Send + 'static,
    I: IntoStreamItem<IM>,
{
    #[allow(private_interfaces)]
    fn into_hub_stream(self, encoding: Encoding) -> Result<ItemStream, HubError> {
        Ok(self
            .map(move |item| item.into_stream_item(encoding))
            .boxed())
    }
}

impl<S, E, SM> IntoHubStream<(Fallible, SM)> for Result<S, E>
where
    S: IntoHubStream<SM>,
    E: Into<HubError> + Send + 'static,
{
    #[allow(private_interfaces)]
    fn into_hub_stream(self, encoding: Encoding) -> Result<ItemStream, HubError> {
        self.map_err(Into::into)?.into_hub_stream(encoding)
    }
}

/// What a lifecycle handler may return: `()` or `Result<(), E>`.
pub trait IntoLifecycleResult<M>: Send + 'static {
    /// The outcome.
    fn into_lifecycle_result(self) -> Result<(), HubError>;
}

impl IntoLifecycleResult<Plain> for () {
    fn into_lifecycle_result(self) -> Result<(), HubError> {
        Ok(())
    }
}

impl<E: Into<HubError> + Send + 'static> IntoLifecycleResult<Fallible> for Result<(), E> {
    fn into_lifecycle_result(self) -> Result<(), HubError> {
        self.map_err(Into::into)
    }
}

/// An async function usable as a hub method or lifecycle handler: any `Fn` of up to
/// twelve [`FromCall`] parameters returning a future.
pub trait Handler<M>: Clone + Send + Sync + 'static {
    /// The future's output.
    type Output: Send + 'static;

    /// What each parameter takes.
    fn params() -> Vec<ParamKind>;

    #[doc(hidden)]
    #[allow(private_interfaces)]
    fn bind(&self, call: Call) -> Result<BoxFuture<'static, Self::Output>, BindError>;
}

impl<F, Fut> Handler<()> for F
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Output = Fut::Output;

    fn params() -> Vec<ParamKind> {
        Vec::new()
    }

    #[allow(private_interfaces)]
    fn bind(&self, _call: Call) -> Result<BoxFuture<'static, Self::Output>, BindError> {
        Ok(Box::pin(self()))
    }
}

macro_rules! handler {
    ($($m:ident $t:ident),+) => {
        impl<F, Fut, $($m, $t),+> Handler<($($m, $t),+,)> for F
        where
            F: Fn($($t),+) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: Send + 'static,
            $($t: FromCall<$m> + 'static,)+
        {
            type Output = Fut::Output;

            fn params() -> Vec<ParamKind> {
                vec![$(<$t as FromCall<$m>>::KIND),+]
            }

            #[allow(private_interfaces, non_snake_case)]
            fn bind(&self, mut call: Call) -> Result<BoxFuture<'static, Self::Output>, BindError> {
                $(let $t = <$t as FromCall<$m>>::from_call(&mut call)?;)+
                Ok(Box::pin(self($($t),+)))
            }
        }
    };
}

handler!(M1 T1);
handler!(M1 T1, M2 T2);
handler!(M1 T1, M2 T2, M3 T3);
handler!(M1 T1, M2 T2, M3 T3, M4 T4);
handler!(M1 T1, M2 T2, M3 T3, M4 T4, M5 T5);
handler!(M1 T1, M2 T2, M3 T3, M4 T4, M5 T5, M6 T6);
handler!(M1 T1, M2 T2, M3 T3, M4 T4, M5 T5, M6 T6, M7 T7);
handler!(M1 T1, M2 T2, M3 T3, M4 T4, M5 T5, M6 T6, M7 T7, M8 T8);
handler!(M1 T1, M2 T2, M3 T3, M4 T4, M5 T5, M6 T6, M7 T7, M8 T8, M9 T9);
handler!(M1 T1, M2 T2, M3 T3, M4 T4, M5 T5, M6 T6, M7 T7, M8 T8, M9 T9, M10 T10);
handler!(M1 T1, M2 T2, M3 T3, M4 T4, M5 T5, M6 T6, M7 T7, M8 T8, M9 T9, M10 T10, M11 T11);
handler!(M1 T1, M2 T2, M3 T3, M4 T4, M5 T5, M6 T6, M7 T7, M8 T8, M9 T9, M10 T10, M11 T11, M12 T12);
