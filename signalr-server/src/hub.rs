//! Declaring a hub: its methods, streams, lifecycle handlers, filters, options and
//! backplane.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use signalr_core::{HubProtocol, JsonHubProtocol, MessagePackHubProtocol, RawValue};

use crate::auth::{Authenticator, Policy};
use crate::backplane::{Backplane, InMemoryBackplane};
use crate::clients::HubContext;
use crate::error::HubError;
use crate::filter::HubFilter;
use crate::handler::{
    BindError, Call, Handler, IntoHubResult, IntoHubStream, IntoLifecycleResult, ItemStream,
    ParamKind,
};
use crate::identity::{DefaultUserIdProvider, UserIdProvider};
use crate::options::HubOptions;

/// What a bound method produces when run.
pub(crate) enum MethodOutput {
    /// A non-streaming method's result (`None`: no result).
    Value(Option<RawValue>),
    /// A streaming method's items.
    Stream(ItemStream),
}

/// The outcome of running a method, as filters see it.
pub type InvokeResult = Result<HubValue, HubError>;

/// A method's successful outcome, opaque to filters.
pub struct HubValue(pub(crate) MethodOutput);

impl std::fmt::Debug for HubValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            MethodOutput::Value(v) => f.debug_tuple("HubValue").field(v).finish(),
            MethodOutput::Stream(_) => f.write_str("HubValue(<stream>)"),
        }
    }
}

type BoundMethod =
    Box<dyn Fn(Call) -> Result<BoxFuture<'static, InvokeResult>, BindError> + Send + Sync>;
type BoundLifecycle =
    Box<dyn Fn(Call) -> Result<BoxFuture<'static, Result<(), HubError>>, BindError> + Send + Sync>;

/// A registered method.
pub(crate) struct Method {
    pub(crate) name: String,
    /// The name as a metrics label value, shared instead of copied per invocation.
    pub(crate) label: metrics::SharedString,
    /// This method's metric handles, registered on its first invocation.
    pub(crate) metrics: std::sync::OnceLock<MethodMetrics>,
    pub(crate) streaming: bool,
    pub(crate) arguments: usize,
    pub(crate) uploads: usize,
    pub(crate) bind: BoundMethod,
}

/// A method's metrics: how long invocations took, how many failed.
pub(crate) struct MethodMetrics {
    pub(crate) duration: metrics::Histogram,
    pub(crate) errors: metrics::Counter,
}

impl Method {
    /// The method's metric handles. They are registered with the recorder installed at the
    /// method's first invocation (install one before serving).
    pub(crate) fn metrics(&self, hub: &metrics::SharedString) -> &MethodMetrics {
        self.metrics.get_or_init(|| {
            let labels = [
                metrics::Label::new("hub", hub.clone()),
                metrics::Label::new("method", self.label.clone()),
            ];
            MethodMetrics {
                duration: metrics::histogram!("signalr_invocation_duration_seconds", labels.iter()),
                errors: metrics::counter!("signalr_invocation_errors_total", labels.iter()),
            }
        })
    }
}

/// What every connection of a hub shares.
pub(crate) struct HubShared {
    pub(crate) name: String,
    /// The name as a metrics label value, shared instead of copied per message.
    pub(crate) label: metrics::SharedString,
    /// Messages received on this hub, registered with the first one.
    pub(crate) received: std::sync::OnceLock<metrics::Counter>,
    /// Methods by lower-case name (ASP.NET Core matches targets case-insensitively).
    pub(crate) methods: HashMap<String, Arc<Method>>,
    /// Methods by their registered name: the usual spelling, found without lower-casing.
    /// Looked up once per invocation, so with a fast hash: the table is fixed when the hub is
    /// built, so names a client sends cannot make it collide.
    pub(crate) exact: rustc_hash::FxHashMap<String, Arc<Method>>,
    pub(crate) options: HubOptions,
    pub(crate) protocols: Vec<Arc<dyn HubProtocol>>,
    pub(crate) backplane: Arc<dyn Backplane>,
    pub(crate) user_id_provider: Arc<dyn UserIdProvider>,
    pub(crate) on_connected: Option<BoundLifecycle>,
    pub(crate) on_disconnected: Option<BoundLifecycle>,
    pub(crate) filters: Vec<Arc<dyn HubFilter>>,
    pub(crate) state: http::Extensions,
    pub(crate) authenticator: Option<Arc<dyn Authenticator>>,
    pub(crate) hub_policy: Option<Policy>,
    pub(crate) method_policies: HashMap<String, Policy>,
}

impl HubShared {
    pub(crate) fn method(&self, target: &str) -> Option<&Arc<Method>> {
        self.exact
            .get(target)
            .or_else(|| self.methods.get(&target.to_lowercase()))
    }

    /// The authorization policy of a method, if it has one.
    pub(crate) fn method_policy(&self, method: &Method) -> Option<&Policy> {
        if self.method_policies.is_empty() {
            return None;
        }
        self.method_policies.get(&method.name.to_lowercase())
    }

    pub(crate) fn protocol(&self, name: &str) -> Option<Arc<dyn HubProtocol>> {
        self.protocols
            .iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
            .cloned()
    }
}

/// A hub: named methods that clients call, and the means to call clients back.
///
/// Build one with [`Hub::builder`], serve it with [`SignalR`](crate::SignalR), and reach its
/// clients from anywhere with [`Hub::context`]. Cloning is cheap.
#[derive(Clone)]
pub struct Hub {
    pub(crate) shared: Arc<HubShared>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut methods: Vec<&str> = self
            .shared
            .methods
            .values()
            .map(|m| m.name.as_str())
            .collect();
        methods.sort_unstable();
        f.debug_struct("Hub")
            .field("name", &self.shared.name)
            .field("methods", &methods)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// Starts declaring a hub named `name` (used in logs, metrics and as the backplane's
    /// channel prefix; give it the .NET hub's full type name to share a backplane with
    /// ASP.NET Core servers).
    pub fn builder(name: impl Into<String>) -> HubBuilder {
        HubBuilder {
            name: name.into(),
            methods: HashMap::new(),
            options: HubOptions::default(),
            protocols: vec![
                Arc::new(JsonHubProtocol::new()),
                Arc::new(MessagePackHubProtocol::new()),
            ],
            backplane: None,
            user_id_provider: Arc::new(DefaultUserIdProvider),
            on_connected: None,
            on_disconnected: None,
            filters: Vec::new(),
            state: http::Extensions::new(),
            authenticator: None,
            hub_policy: None,
            method_policies: HashMap::new(),
        }
    }

    /// Sends to the hub's clients and manages its groups from outside hub methods.
    pub fn context(&self) -> HubContext {
        HubContext {
            shared: self.shared.clone(),
        }
    }

    /// The hub's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The hub's options.
    pub fn options(&self) -> &HubOptions {
        &self.shared.options
    }
}

/// Declares a hub. See [`Hub::builder`].
pub struct HubBuilder {
    name: String,
    methods: HashMap<String, Arc<Method>>,
    options: HubOptions,
    protocols: Vec<Arc<dyn HubProtocol>>,
    backplane: Option<Arc<dyn Backplane>>,
    user_id_provider: Arc<dyn UserIdProvider>,
    on_connected: Option<BoundLifecycle>,
    on_disconnected: Option<BoundLifecycle>,
    filters: Vec<Arc<dyn HubFilter>>,
    state: http::Extensions,
    authenticator: Option<Arc<dyn Authenticator>>,
    hub_policy: Option<Policy>,
    method_policies: HashMap<String, Policy>,
}

impl std::fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubBuilder")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn counts(params: &[ParamKind]) -> (usize, usize) {
    let arguments = params.iter().filter(|p| **p == ParamKind::Argument).count();
    let uploads = params.iter().filter(|p| **p == ParamKind::Upload).count();
    (arguments, uploads)
}

fn lifecycle<H, HM, RM>(handler: H) -> BoundLifecycle
where
    H: Handler<HM>,
    H::Output: IntoLifecycleResult<RM>,
{
    Box::new(move |call: Call| {
        let future = handler.bind(call)?;
        Ok(Box::pin(async move { future.await.into_lifecycle_result() }) as BoxFuture<'static, _>)
    })
}

impl HubBuilder {
    fn insert(&mut self, method: Method) {
        let key = method.name.to_lowercase();
        if self.methods.contains_key(&key) {
            // Registration happens at startup, from code: failing loudly is the useful
            // behaviour, as ASP.NET Core does for overloads.
            #[allow(clippy::panic)]
            {
                panic!(
                    "Duplicate definitions of '{}'. Overloading is not supported.",
                    method.name
                );
            }
        }
        self.methods.insert(key, Arc::new(method));
    }

    /// Registers a method that clients `invoke` or `send`.
    ///
    /// `handler` is an async function whose parameters are the wire arguments (any
    /// `DeserializeOwned` type, in order) mixed with context extractors ([`Caller`],
    /// [`Clients`], [`Groups`], [`State`], [`UploadStream`], [`CancellationToken`], ...). It
    /// returns any serializable value (`()` for none) or a `Result<T, E>` with
    /// `E: Into<HubError>`. Names match case-insensitively; registering one twice panics.
    ///
    /// [`Caller`]: crate::Caller
    /// [`Clients`]: crate::Clients
    /// [`Groups`]: crate::Groups
    /// [`State`]: crate::State
    /// [`UploadStream`]: crate::UploadStream
    /// [`CancellationToken`]: crate::CancellationToken
    pub fn method<H, HM, RM>(mut self, name: impl Into<String>, handler: H) -> Self
    where
        H: Handler<HM>,
        H::Output: IntoHubResult<RM>,
    {
        let (arguments, uploads) = counts(&H::params());
        let bind: BoundMethod = Box::new(move |call: Call| {
            let encoding = call.connection.protocol.encoding();
            let future = handler.bind(call)?;
            Ok(Box::pin(async move {
                future
                    .await
                    .into_hub_result(encoding)
                    .map(|v| HubValue(MethodOutput::Value(v)))
            }) as BoxFuture<'static, _>)
        });
        let name: String = name.into();
        self.insert(Method {
            label: metrics::SharedString::from(Arc::<str>::from(name.as_str())),
            metrics: std::sync::OnceLock::new(),
            name,
            streaming: false,
            arguments,
            uploads,
            bind,
        });
        self
    }

    /// Registers a streaming method that clients `stream`: `handler` returns any
    /// `Stream` of serializable items (or of `Result<T, E>`), or a `Result` of such a
    /// stream. The client's cancel, or the connection's end, drops the stream.
    pub fn stream<H, HM, SM>(mut self, name: impl Into<String>, handler: H) -> Self
    where
        H: Handler<HM>,
        H::Output: IntoHubStream<SM>,
    {
        let (arguments, uploads) = counts(&H::params());
        let bind: BoundMethod = Box::new(move |call: Call| {
            let encoding = call.connection.protocol.encoding();
            let future = handler.bind(call)?;
            Ok(Box::pin(async move {
                future
                    .await
                    .into_hub_stream(encoding)
                    .map(|s| HubValue(MethodOutput::Stream(s)))
            }) as BoxFuture<'static, _>)
        });
        let name: String = name.into();
        self.insert(Method {
            label: metrics::SharedString::from(Arc::<str>::from(name.as_str())),
            metrics: std::sync::OnceLock::new(),
            name,
            streaming: true,
            arguments,
            uploads,
            bind,
        });
        self
    }

    /// Runs after a connection's handshake, before its first invocation. Takes context
    /// extractors; returning an error closes the connection with a Close message carrying
    /// the error (and no reconnect).
    pub fn on_connected<H, HM, RM>(mut self, handler: H) -> Self
    where
        H: Handler<HM>,
        H::Output: IntoLifecycleResult<RM>,
    {
        self.on_connected = Some(lifecycle(handler));
        self
    }

    /// Runs when a connection ends. Takes context extractors, including
    /// [`DisconnectReason`](crate::DisconnectReason).
    pub fn on_disconnected<H, HM, RM>(mut self, handler: H) -> Self
    where
        H: Handler<HM>,
        H::Output: IntoLifecycleResult<RM>,
    {
        self.on_disconnected = Some(lifecycle(handler));
        self
    }

    /// Adds a filter around every invocation, connect and disconnect; the first added is
    /// the outermost.
    pub fn filter(mut self, filter: impl HubFilter) -> Self {
        self.filters.push(Arc::new(filter));
        self
    }

    /// Makes `state` available to handlers through [`State<S>`](crate::State). One value
    /// per type.
    pub fn state<S: Clone + Send + Sync + 'static>(mut self, state: S) -> Self {
        self.state.insert(state);
        self
    }

    /// Authenticates the hub's negotiate and transport requests. Without one, a connection
    /// gets the [`Identity`](crate::Identity) an outer middleware put in the request's
    /// extensions, if any. Default: none.
    pub fn authenticator(mut self, authenticator: impl Authenticator) -> Self {
        self.authenticator = Some(Arc::new(authenticator));
        self
    }

    /// Requires every negotiate and transport request to pass `policy`: an anonymous
    /// caller gets 401, an authenticated one the policy refuses gets 403 (both with empty
    /// bodies). [`authenticated`](crate::authenticated) requires any identity.
    pub fn authorize(mut self, policy: Policy) -> Self {
        self.hub_policy = Some(policy);
        self
    }

    /// Requires invocations of `method` to pass `policy`; refused calls fail with
    /// `Failed to invoke 'M' because user is unauthorized`.
    pub fn authorize_method(mut self, method: &str, policy: Policy) -> Self {
        self.method_policies.insert(method.to_lowercase(), policy);
        self
    }

    /// Sets the hub's options. Default: [`HubOptions::default`].
    pub fn options(mut self, options: HubOptions) -> Self {
        self.options = options;
        self
    }

    /// Replaces the hub protocols. Default: JSON and MessagePack.
    pub fn protocols(mut self, protocols: Vec<Arc<dyn HubProtocol>>) -> Self {
        self.protocols = protocols;
        self
    }

    /// Sets the backplane. Default: [`InMemoryBackplane`].
    pub fn backplane(mut self, backplane: Arc<dyn Backplane>) -> Self {
        self.backplane = Some(backplane);
        self
    }

    /// Sets how connections get their user id. Default: the identity's name identifier.
    pub fn user_id_provider(mut self, provider: impl UserIdProvider) -> Self {
        self.user_id_provider = Arc::new(provider);
        self
    }

    /// Finishes the hub.
    pub fn build(self) -> Hub {
        Hub {
            shared: Arc::new(HubShared {
                label: metrics::SharedString::from(Arc::<str>::from(self.name.as_str())),
                received: std::sync::OnceLock::new(),
                name: self.name,
                exact: self
                    .methods
                    .values()
                    .map(|m| (m.name.clone(), m.clone()))
                    .collect(),
                methods: self.methods,
                options: self.options,
                protocols: self.protocols,
                backplane: self
                    .backplane
                    .unwrap_or_else(|| Arc::new(InMemoryBackplane::new())),
                user_id_provider: self.user_id_provider,
                on_connected: self.on_connected,
                on_disconnected: self.on_disconnected,
                filters: self.filters,
                state: self.state,
                authenticator: self.authenticator,
                hub_policy: self.hub_policy,
                method_policies: self.method_policies,
            }),
        }
    }
}
