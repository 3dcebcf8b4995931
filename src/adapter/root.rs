//! Root context: compiles the plugin configuration once per configure and hands the immutable
//! policy to every stream.

use super::host::HostStore;
use super::metrics::{config_outcome, Metrics};
use super::stream::{Stream, StreamState};
use super::{GIT_HASH, VERSION};
use crate::policy::Policy;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::{Rc, Weak};

/// Streams paused until a dependency (JWKS keys) changes, by context id.
#[derive(Default)]
pub(crate) struct Waiters {
    list: RefCell<Vec<(u32, Weak<RefCell<StreamState>>)>>,
}

impl Waiters {
    /// Registers a paused stream (once).
    pub(crate) fn add(&self, id: u32, state: Weak<RefCell<StreamState>>) {
        if let Ok(mut list) = self.list.try_borrow_mut() {
            if !list.iter().any(|(i, _)| *i == id) {
                list.push((id, state));
            }
        }
    }

    /// Re-runs every waiting stream; finished ones are answered or resumed and dropped from the
    /// list. Streams that are gone (client went away) are dropped too.
    pub(crate) fn retry_all(&self) {
        let pending = match self.list.try_borrow_mut() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(_) => return,
        };
        let mut still = Vec::new();
        for (id, weak) in pending {
            let Some(state) = weak.upgrade() else {
                continue;
            };
            if hostcalls::set_effective_context(id).is_err() {
                continue;
            }
            let outcome = match state.try_borrow_mut() {
                Ok(mut s) => s.retry(),
                Err(_) => None,
            };
            match outcome {
                None => still.push((id, weak)),
                Some(true) => {
                    let _ = hostcalls::resume_http_request();
                }
                Some(false) => {}
            }
        }
        if let Ok(mut list) = self.list.try_borrow_mut() {
            list.extend(still);
        }
    }

    /// True when no stream waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.try_borrow().map_or(true, |l| l.is_empty())
    }
}

/// What every stream of this configuration shares, read-only.
pub(crate) struct Shared {
    /// The compiled policy.
    pub(crate) policy: Policy,
    /// Counter ids for it.
    pub(crate) metrics: Metrics,
}

/// The per-VM root context.
#[derive(Default)]
pub(crate) struct Root {
    shared: Option<Rc<Shared>>,
    waiters: Rc<Waiters>,
}

fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        log(
            LogLevel::Info,
            &format!("meshguard {VERSION} ({GIT_HASH}) VM started"),
        );
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        match crate::config::compile(&bytes) {
            Ok(policy) => {
                // Shared tables are created before any request can race to create them.
                for route in &policy.routes {
                    let prepared = route.rate_limits.prepare(&HostStore).and_then(|_| {
                        route
                            .lockout
                            .as_ref()
                            .map_or(Ok(0), |l| l.prepare(&HostStore))
                    });
                    if prepared.is_err() {
                        log(
                            LogLevel::Error,
                            &format!(
                                "meshguard config rejected: routes.{}: shared data unavailable for rate-limit tables",
                                route.name.as_str()
                            ),
                        );
                        config_outcome(false);
                        return false;
                    }
                }
                let metrics = Metrics::define(&policy);
                log(
                    LogLevel::Info,
                    &format!(
                        "meshguard {VERSION} ({GIT_HASH}) config accepted: {} routes",
                        policy.routes.len()
                    ),
                );
                self.shared = Some(Rc::new(Shared { policy, metrics }));
                config_outcome(true);
                true
            }
            Err(e) => {
                // One line naming the field and the problem; Envoy then refuses the config.
                log(LogLevel::Error, &format!("meshguard config rejected: {e}"));
                config_outcome(false);
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Without an accepted configuration no context is created; Envoy's fail-closed setting
        // then governs the request (the VM never starts serving with a bad config anyway).
        let shared = self.shared.clone()?;
        Some(Box::new(Stream::new(
            context_id,
            shared,
            Rc::clone(&self.waiters),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
