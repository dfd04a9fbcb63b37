//! Handlers for the methods the server calls on the client.

use std::any::TypeId;
use std::fmt::Display;
use std::future::Future;

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use signalr_core::{Encoding, RawValue};

/// An error a handler answers a client-result call with: the server receives its text.
///
/// ```
/// use signalr_client::HandlerError;
///
/// async fn pick(n: i32) -> Result<i32, HandlerError> {
///     if n < 0 {
///         return Err(HandlerError::new("negative"));
///     }
///     Ok(n * 2)
/// }
/// # let _ = pick;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError(String);

impl HandlerError {
    /// An error with this text.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Marker for plain handler results.
#[derive(Debug)]
pub enum Plain {}
/// Marker for `Result` handler results.
#[derive(Debug)]
pub enum Fallible {}

/// What a handler may return: `()` (no result), any serializable value (a client result
/// the server can wait for), or `Result<T, E>` whose error text goes back to the server.
///
/// For `E`, use an error type (anything `Display` that is not itself serializable, such as
/// `std::io::Error`) or [`HandlerError`]. `Result<T, String>` does not compile: a `String`
/// error makes the whole `Result` serializable too, and the two meanings clash; write
/// `Err(HandlerError::new("..."))` instead.
pub trait IntoClientResult<M>: Send + 'static {
    /// The result encoded for the server, `None` for no result, or the error text.
    fn into_client_result(self, encoding: Encoding) -> Result<Option<RawValue>, String>;
}

impl<T: Serialize + Send + 'static> IntoClientResult<Plain> for T {
    fn into_client_result(self, encoding: Encoding) -> Result<Option<RawValue>, String> {
        if TypeId::of::<T>() == TypeId::of::<()>() {
            return Ok(None);
        }
        RawValue::encode(encoding, &self)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

impl<T: Serialize + Send + 'static, E: Display + Send + 'static> IntoClientResult<Fallible>
    for Result<T, E>
{
    fn into_client_result(self, encoding: Encoding) -> Result<Option<RawValue>, String> {
        self.map_err(|e| e.to_string())?
            .into_client_result(encoding)
    }
}

/// What a handler's call produces.
pub(crate) type HandlerOutput = BoxFuture<'static, Result<Option<RawValue>, String>>;

/// An async function the server can call: its parameters are the invocation's arguments,
/// deserialized in order (missing ones as `null`, so `Option` parameters may be left out).
pub trait Handler<M>: Send + Sync + 'static {
    #[doc(hidden)]
    fn call(&self, arguments: Vec<RawValue>, encoding: Encoding) -> HandlerOutput;
}

fn argument<T: DeserializeOwned>(
    arguments: &mut std::vec::IntoIter<RawValue>,
    encoding: Encoding,
) -> Result<T, String> {
    let value = arguments.next().unwrap_or_else(|| RawValue::null(encoding));
    value
        .deserialize_owned()
        .map_err(|e| format!("argument does not deserialize: {e}"))
}

impl<F, Fut, R, RM> Handler<(RM,)> for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoClientResult<RM>,
{
    fn call(&self, _: Vec<RawValue>, encoding: Encoding) -> HandlerOutput {
        let future = self();
        Box::pin(async move { future.await.into_client_result(encoding) })
    }
}

macro_rules! handler {
    ($($t:ident),+) => {
        impl<F, Fut, R, RM, $($t),+> Handler<(RM, $($t,)+)> for F
        where
            F: Fn($($t),+) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoClientResult<RM>,
            $($t: DeserializeOwned + Send + 'static,)+
        {
            #[allow(non_snake_case)]
            fn call(&self, arguments: Vec<RawValue>, encoding: Encoding) -> HandlerOutput {
                let mut arguments = arguments.into_iter();
                $(let $t = match argument::<$t>(&mut arguments, encoding) {
                    Ok(value) => value,
                    Err(err) => return Box::pin(async move { Err(err) }),
                };)+
                let future = self($($t),+);
                Box::pin(async move { future.await.into_client_result(encoding) })
            }
        }
    };
}
handler!(T1);
handler!(T1, T2);
handler!(T1, T2, T3);
handler!(T1, T2, T3, T4);
handler!(T1, T2, T3, T4, T5);
handler!(T1, T2, T3, T4, T5, T6);
handler!(T1, T2, T3, T4, T5, T6, T7);
handler!(T1, T2, T3, T4, T5, T6, T7, T8);
