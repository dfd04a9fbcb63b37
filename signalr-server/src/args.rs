//! Arguments for client methods, and messages serialized once per protocol.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use signalr_core::{
    Encoding, HubMessage, HubProtocol, Invocation, ProtocolError, RawValue, ValueError,
};

/// The arguments of a call to a client method: `()`, a tuple of up to eight serializable
/// values, or a `Vec<RawValue>` forwarded as it is.
///
/// ```
/// use signalr_core::Encoding;
/// use signalr_server::Arguments;
///
/// let args = ("alice".to_string(), 42);
/// let encoded = args.encode(Encoding::Json)?;
/// assert_eq!(encoded[1].as_bytes(), b"42");
/// # Ok::<(), signalr_core::ValueError>(())
/// ```
pub trait Arguments: Send + Sync + 'static {
    /// The arguments, each encoded with `encoding`.
    fn encode(&self, encoding: Encoding) -> Result<Vec<RawValue>, ValueError>;
}

impl Arguments for () {
    fn encode(&self, _: Encoding) -> Result<Vec<RawValue>, ValueError> {
        Ok(Vec::new())
    }
}

impl Arguments for Vec<RawValue> {
    fn encode(&self, _: Encoding) -> Result<Vec<RawValue>, ValueError> {
        Ok(self.clone())
    }
}

macro_rules! tuple_arguments {
    ($($name:ident)+) => {
        impl<$($name: Serialize + Send + Sync + 'static),+> Arguments for ($($name,)+) {
            #[allow(non_snake_case)]
            fn encode(&self, encoding: Encoding) -> Result<Vec<RawValue>, ValueError> {
                let ($($name,)+) = self;
                Ok(vec![$(RawValue::encode(encoding, $name)?),+])
            }
        }
    };
}
tuple_arguments!(A);
tuple_arguments!(A B);
tuple_arguments!(A B C);
tuple_arguments!(A B C D);
tuple_arguments!(A B C D E);
tuple_arguments!(A B C D E F);
tuple_arguments!(A B C D E F G);
tuple_arguments!(A B C D E F G H);

type Build = dyn Fn(&dyn HubProtocol) -> Result<Bytes, ProtocolError> + Send + Sync;

/// A message for many connections, serialized at most once per hub protocol.
///
/// The first recipient that speaks a protocol pays for serializing; every other recipient
/// of that protocol gets the same [`Bytes`]. Backplanes carry it between servers with
/// [`SerializedMessage::from_serialized`] and [`SerializedMessage::serialize_all`].
pub struct SerializedMessage {
    build: Option<Box<Build>>,
    cache: Mutex<Vec<(String, Bytes)>>,
}

impl std::fmt::Debug for SerializedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached: Vec<String> = self.lock().iter().map(|(name, _)| name.clone()).collect();
        f.debug_struct("SerializedMessage")
            .field("serialized", &cached)
            .finish()
    }
}

impl SerializedMessage {
    /// A message built on demand for each protocol.
    pub fn new(message: HubMessage) -> Self {
        Self {
            build: Some(Box::new(move |protocol| protocol.to_bytes(&message))),
            cache: Mutex::new(Vec::new()),
        }
    }

    /// An invocation of `target` on clients, with typed arguments encoded per protocol.
    pub fn invocation(target: impl Into<String>, args: impl Arguments) -> Self {
        let target: String = target.into();
        Self {
            build: Some(Box::new(move |protocol| {
                let arguments = args
                    .encode(protocol.encoding())
                    .map_err(|e| ProtocolError::Serialize(e.to_string()))?;
                protocol.to_bytes(&HubMessage::Invocation(Invocation::new(
                    target.clone(),
                    arguments,
                )))
            })),
            cache: Mutex::new(Vec::new()),
        }
    }

    /// A message that arrived already serialized (from another server), one framed form
    /// per protocol name. Protocols missing from the list cannot be served.
    pub fn from_serialized(serialized: Vec<(String, Bytes)>) -> Self {
        Self {
            build: None,
            cache: Mutex::new(serialized),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Bytes)>> {
        // A panic while holding this lock cannot leave the cache inconsistent (entries are
        // pushed whole), so a poisoned lock is still usable.
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The framed bytes for `protocol`, serializing them if no recipient needed them yet.
    pub fn bytes_for(&self, protocol: &dyn HubProtocol) -> Result<Bytes, ProtocolError> {
        let name = protocol.name();
        if let Some((_, bytes)) = self.lock().iter().find(|(n, _)| n == name) {
            return Ok(bytes.clone());
        }
        let Some(build) = &self.build else {
            return Err(ProtocolError::Serialize(
                "This message was received from another server that did not have the requested protocol available."
                    .into(),
            ));
        };
        let bytes = build(protocol)?;
        metrics::counter!("signalr_messages_serialized_total", "protocol" => name.to_owned())
            .increment(1);
        let mut cache = self.lock();
        if let Some((_, existing)) = cache.iter().find(|(n, _)| n == name) {
            return Ok(existing.clone());
        }
        cache.push((name.to_owned(), bytes.clone()));
        Ok(bytes)
    }

    /// The framed bytes for every protocol in `protocols`, as a backplane publishes them.
    pub fn serialize_all(
        &self,
        protocols: &[Arc<dyn HubProtocol>],
    ) -> Result<Vec<(String, Bytes)>, ProtocolError> {
        protocols
            .iter()
            .map(|p| Ok((p.name().to_owned(), self.bytes_for(&**p)?)))
            .collect()
    }
}
