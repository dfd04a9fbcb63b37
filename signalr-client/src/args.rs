//! Arguments for hub methods, including client-to-server streams.

use std::fmt::Display;

use futures_util::stream::{BoxStream, Stream, StreamExt};
use serde::Serialize;
use signalr_core::{Encoding, RawValue, ValueError};

type MakeStream = Box<dyn FnOnce(Encoding) -> BoxStream<'static, Result<RawValue, String>> + Send>;

/// A client-to-server stream: pass one as an argument to [`invoke`](crate::HubConnection::invoke),
/// [`send`](crate::HubConnection::send) or [`stream`](crate::HubConnection::stream), and the
/// hub method's stream parameter receives its items.
///
/// ```
/// use futures_util::stream;
/// use signalr_client::Upload;
///
/// let numbers = Upload::new(stream::iter([1, 2, 3]));
/// # let _ = numbers;
/// ```
pub struct Upload {
    make: MakeStream,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upload")
    }
}

impl Upload {
    /// Streams every item of `stream`, then completes.
    pub fn new<S, T>(stream: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
        T: Serialize + Send + 'static,
    {
        Self {
            make: Box::new(move |encoding| {
                stream
                    .map(move |item| RawValue::encode(encoding, &item).map_err(|e| e.to_string()))
                    .boxed()
            }),
        }
    }

    /// Streams the items of `stream`; an `Err` ends the stream with that error, which the
    /// hub method sees (ASP.NET Core: `HubException`).
    pub fn try_new<S, T, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<T, E>> + Send + 'static,
        T: Serialize + Send + 'static,
        E: Display + Send + 'static,
    {
        Self {
            make: Box::new(move |encoding| {
                stream
                    .map(move |item| match item {
                        Ok(item) => RawValue::encode(encoding, &item).map_err(|e| e.to_string()),
                        Err(err) => Err(err.to_string()),
                    })
                    .boxed()
            }),
        }
    }

    pub(crate) fn into_stream(
        self,
        encoding: Encoding,
    ) -> BoxStream<'static, Result<RawValue, String>> {
        (self.make)(encoding)
    }
}

/// Marker: an argument serialized as a value.
#[derive(Debug)]
pub enum ValueArg {}
/// Marker: an argument that is an [`Upload`].
#[derive(Debug)]
pub enum StreamArg {}

/// One argument: any serializable value, or an [`Upload`].
pub trait Argument<M>: Send + 'static {
    #[doc(hidden)]
    fn push(
        self,
        encoding: Encoding,
        values: &mut Vec<RawValue>,
        uploads: &mut Vec<Upload>,
    ) -> Result<(), ValueError>;
}

impl<T: Serialize + Send + 'static> Argument<ValueArg> for T {
    fn push(
        self,
        encoding: Encoding,
        values: &mut Vec<RawValue>,
        _: &mut Vec<Upload>,
    ) -> Result<(), ValueError> {
        values.push(RawValue::encode(encoding, &self)?);
        Ok(())
    }
}

impl Argument<StreamArg> for Upload {
    fn push(
        self,
        _: Encoding,
        _: &mut Vec<RawValue>,
        uploads: &mut Vec<Upload>,
    ) -> Result<(), ValueError> {
        uploads.push(self);
        Ok(())
    }
}

/// The arguments of a hub method call: `()`, a tuple of up to eight [`Argument`]s (note the
/// trailing comma of a one-element tuple: `("hello",)`), or a `Vec<RawValue>`.
pub trait Arguments<M>: Send + 'static {
    #[doc(hidden)]
    fn into_parts(self, encoding: Encoding) -> Result<(Vec<RawValue>, Vec<Upload>), ValueError>;
}

impl Arguments<()> for () {
    fn into_parts(self, _: Encoding) -> Result<(Vec<RawValue>, Vec<Upload>), ValueError> {
        Ok((Vec::new(), Vec::new()))
    }
}

impl Arguments<Vec<RawValue>> for Vec<RawValue> {
    fn into_parts(self, encoding: Encoding) -> Result<(Vec<RawValue>, Vec<Upload>), ValueError> {
        let values = self
            .into_iter()
            .map(|v| v.to_encoding(encoding))
            .collect::<Result<_, _>>()?;
        Ok((values, Vec::new()))
    }
}

macro_rules! tuple_arguments {
    ($($m:ident $t:ident),+) => {
        impl<$($m, $t: Argument<$m>),+> Arguments<($($m,)+)> for ($($t,)+) {
            #[allow(non_snake_case)]
            fn into_parts(self, encoding: Encoding) -> Result<(Vec<RawValue>, Vec<Upload>), ValueError> {
                let ($($t,)+) = self;
                let mut values = Vec::new();
                let mut uploads = Vec::new();
                $($t.push(encoding, &mut values, &mut uploads)?;)+
                Ok((values, uploads))
            }
        }
    };
}
tuple_arguments!(M1 A1);
tuple_arguments!(M1 A1, M2 A2);
tuple_arguments!(M1 A1, M2 A2, M3 A3);
tuple_arguments!(M1 A1, M2 A2, M3 A3, M4 A4);
tuple_arguments!(M1 A1, M2 A2, M3 A3, M4 A4, M5 A5);
tuple_arguments!(M1 A1, M2 A2, M3 A3, M4 A4, M5 A5, M6 A6);
tuple_arguments!(M1 A1, M2 A2, M3 A3, M4 A4, M5 A5, M6 A6, M7 A7);
tuple_arguments!(M1 A1, M2 A2, M3 A3, M4 A4, M5 A5, M6 A6, M7 A7, M8 A8);
