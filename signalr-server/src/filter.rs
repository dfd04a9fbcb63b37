//! Hub filters: code around every invocation, connect and disconnect.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use signalr_core::RawValue;

use crate::error::HubError;
use crate::handler::Caller;
use crate::hub::InvokeResult;

/// An invocation as filters see it.
#[derive(Debug)]
pub struct InvocationContext {
    pub(crate) caller: Caller,
    pub(crate) hub: String,
    pub(crate) method: String,
    pub(crate) arguments: Vec<RawValue>,
}

impl InvocationContext {
    /// The calling connection.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The hub's name.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// The method's registered name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The wire arguments.
    pub fn arguments(&self) -> &[RawValue] {
        &self.arguments
    }
}

/// The rest of the filter chain and the method itself.
pub struct Next<'a> {
    pub(crate) filters: &'a [Arc<dyn HubFilter>],
    pub(crate) context: &'a InvocationContext,
    pub(crate) method: BoxFuture<'static, InvokeResult>,
}

impl std::fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("filters", &self.filters.len())
            .finish()
    }
}

impl<'a> Next<'a> {
    /// Runs the remaining filters and the method.
    pub fn run(self) -> BoxFuture<'a, InvokeResult> {
        match self.filters.split_first() {
            Some((first, rest)) => first.on_invoke(
                self.context,
                Next {
                    filters: rest,
                    context: self.context,
                    method: self.method,
                },
            ),
            None => self.method,
        }
    }
}

/// The rest of a connect or disconnect chain.
pub struct LifecycleNext<'a> {
    pub(crate) filters: &'a [Arc<dyn HubFilter>],
    pub(crate) caller: &'a Caller,
    pub(crate) error: Option<&'a str>,
    pub(crate) connected: bool,
    pub(crate) handler: BoxFuture<'static, Result<(), HubError>>,
}

impl std::fmt::Debug for LifecycleNext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifecycleNext")
            .field("filters", &self.filters.len())
            .finish()
    }
}

impl<'a> LifecycleNext<'a> {
    /// Runs the remaining filters and the hub's handler.
    pub fn run(self) -> BoxFuture<'a, Result<(), HubError>> {
        match self.filters.split_first() {
            Some((first, rest)) => {
                let next = LifecycleNext {
                    filters: rest,
                    caller: self.caller,
                    error: self.error,
                    connected: self.connected,
                    handler: self.handler,
                };
                if self.connected {
                    first.on_connected(self.caller, next)
                } else {
                    first.on_disconnected(self.caller, self.error, next)
                }
            }
            None => self.handler,
        }
    }
}

/// Code that wraps a hub's invocations and lifecycle events: logging, authorization, rate
/// limits. Every method has a default that just continues the chain.
///
/// ```
/// use futures_util::future::BoxFuture;
/// use signalr_server::{HubError, HubFilter, InvocationContext, InvokeResult, Next};
///
/// struct NoDeletes;
///
/// impl HubFilter for NoDeletes {
///     fn on_invoke<'a>(&'a self, call: &'a InvocationContext, next: Next<'a>) -> BoxFuture<'a, InvokeResult> {
///         if call.method().starts_with("Delete") {
///             return Box::pin(async { Err(HubError::new("Deleting is disabled.")) });
///         }
///         next.run()
///     }
/// }
/// ```
pub trait HubFilter: Send + Sync + 'static {
    /// Wraps one invocation. Return `next.run()` to continue, or an error to refuse.
    fn on_invoke<'a>(
        &'a self,
        invocation: &'a InvocationContext,
        next: Next<'a>,
    ) -> BoxFuture<'a, InvokeResult> {
        let _ = invocation;
        next.run()
    }

    /// Wraps the hub's connect handler; an error rejects the connection.
    fn on_connected<'a>(
        &'a self,
        caller: &'a Caller,
        next: LifecycleNext<'a>,
    ) -> BoxFuture<'a, Result<(), HubError>> {
        let _ = caller;
        next.run()
    }

    /// Wraps the hub's disconnect handler.
    fn on_disconnected<'a>(
        &'a self,
        caller: &'a Caller,
        error: Option<&'a str>,
        next: LifecycleNext<'a>,
    ) -> BoxFuture<'a, Result<(), HubError>> {
        let _ = (caller, error);
        next.run()
    }
}
