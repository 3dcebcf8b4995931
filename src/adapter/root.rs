//! Root context: compiles the plugin configuration once per configure and hands the immutable
//! policy to every stream.

use super::metrics::{config_outcome, Metrics};
use super::stream::Stream;
use super::{GIT_HASH, VERSION};
use crate::policy::Policy;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel};
use std::rc::Rc;

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
        Some(Box::new(Stream::new(context_id, shared)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
