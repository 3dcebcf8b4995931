//! Root context: compiles the plugin configuration once per configure and hands the immutable
//! policy to every stream.

use super::host::{self as abi, Envoy};
use super::stream::{Stream, Unconfigured};
use super::waiters::Waiters;
use super::{GIT_HASH, VERSION};
use crate::authn::config::ProviderId;
use crate::authn::keys::{FetchOutcome, FetchReport, FetchRequest};
use crate::counters::config_outcome;
use crate::host::{BufferKind, Clock, Host, HostReads, Level, MapKind, Via};
use crate::pipeline::respond::parse_status;
use crate::pipeline::Shared;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// How often (ms) the root polls the key manager while any provider has a remote JWKS.
const TICK_MS: u32 = 100;

/// The per-VM root context.
#[derive(Default)]
pub(crate) struct Root {
    shared: Option<Rc<Shared>>,
    waiters: Rc<Waiters>,
    /// JWKS fetches in flight: call token -> provider.
    inflight: HashMap<u32, ProviderId>,
}

impl Root {
    /// Polls the key manager, dispatches the fetches it (or a stage) asks for, and re-runs
    /// streams waiting for keys.
    fn drive_keys(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now = Via(&Envoy).now_ms();
        let fetches: Vec<FetchRequest> = match shared.runtime.try_borrow_mut() {
            Ok(mut rt) => {
                let mut f = std::mem::take(&mut rt.fetches);
                f.extend(rt.keys.poll(now, &Via(&Envoy)));
                f
            }
            Err(_) => Vec::new(),
        };
        for f in fetches {
            self.dispatch(&shared, f);
        }
        if !self.waiters.is_empty() {
            self.waiters.retry_all();
        }
    }

    fn dispatch(&mut self, shared: &Shared, f: FetchRequest) {
        let headers = vec![
            (":method", "GET"),
            (":path", f.path.as_str()),
            (":authority", f.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(f.timeout_ms);
        match hostcalls::dispatch_http_call(&f.cluster, headers, None, vec![], timeout) {
            Ok(token) => {
                self.inflight.insert(token, f.provider);
            }
            Err(status) => {
                log(
                    Level::Warn,
                    &format!(
                        "meshguard: JWKS fetch through cluster {:?} not dispatched: {status:?}",
                        f.cluster
                    ),
                );
                self.fetch_done(shared, f.provider, FetchOutcome::Failed);
            }
        }
    }

    fn fetch_done(&mut self, shared: &Shared, provider: ProviderId, outcome: FetchOutcome<'_>) {
        let now = Via(&Envoy).now_ms();
        let report = match shared.runtime.try_borrow_mut() {
            Ok(mut rt) => rt
                .keys
                .on_fetch_response(provider, outcome, now, &Via(&Envoy)),
            Err(_) => return,
        };
        let name = shared
            .policy
            .providers
            .get(provider)
            .map_or("?", |p| p.name.as_str());
        match report {
            FetchReport::Updated {
                generation,
                keys,
                warnings,
            } => {
                shared.counters.fetch(&Envoy, provider, true);
                log(
                    Level::Info,
                    &format!(
                        "meshguard: JWKS for provider {name}: generation {generation}, {keys} keys"
                    ),
                );
                for w in warnings {
                    log(
                        Level::Warn,
                        &format!("meshguard: JWKS for provider {name}: key skipped: {w:?}"),
                    );
                }
            }
            FetchReport::Failed {
                reason,
                kept_previous,
            } => {
                shared.counters.fetch(&Envoy, provider, false);
                log(
                    Level::Warn,
                    &format!(
                        "meshguard: JWKS fetch for provider {name} failed: {reason}; previous keys kept: {kept_previous}"
                    ),
                );
            }
            FetchReport::NotRemote => {}
        }
    }
}

fn log(level: Level, msg: &str) {
    Envoy.log(level, msg);
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(provider) = self.inflight.remove(&token_id) else {
            return;
        };
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let status = if num_headers == 0 {
            None
        } else {
            Envoy
                .map_value(MapKind::HttpCallResponseHeaders, ":status")
                .ok()
                .flatten()
                .and_then(|s| parse_status(&s))
        };
        // Copy at most one byte over the provider's `max_body_bytes` into the VM: enough for
        // the key manager to refuse the body as too large, without allocating whatever size
        // the JWKS server chose to send.
        let limit = shared
            .policy
            .providers
            .get(provider)
            .and_then(|p| p.remote())
            .map_or(0, |r| r.max_body_bytes);
        if body_size > limit {
            log(
                Level::Warn,
                &format!(
                    "meshguard: JWKS response of {body_size} bytes is over max_body_bytes {limit}"
                ),
            );
        }
        let body = Envoy
            .buffer(
                BufferKind::HttpCallResponseBody,
                body_size.min(limit.saturating_add(1)),
            )
            .ok()
            .flatten()
            .unwrap_or_default();
        let outcome = match status {
            Some(status) => FetchOutcome::Response {
                status,
                body: &body,
            },
            None => FetchOutcome::Failed,
        };
        self.fetch_done(&shared, provider, outcome);
        self.waiters.retry_all();
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        log(
            Level::Info,
            &format!("meshguard {VERSION} ({GIT_HASH}) VM started"),
        );
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match Envoy.buffer(BufferKind::PluginConfiguration, usize::MAX) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(e) => {
                log(
                    Level::Error,
                    &format!("meshguard config rejected: plugin configuration unreadable: {e:?}"),
                );
                config_outcome(&Envoy, false);
                return false;
            }
        };
        match crate::config::compile(&bytes) {
            Ok(policy) => {
                // Shared tables are created before any request can race to create them.
                for route in &policy.routes {
                    let prepared = route.rate_limits.prepare(&Via(&Envoy)).and_then(|_| {
                        route
                            .lockout
                            .as_ref()
                            .map_or(Ok(0), |l| l.prepare(&Via(&Envoy)))
                    });
                    if prepared.is_err() {
                        log(
                            Level::Error,
                            &format!(
                                "meshguard config rejected: routes.{}: shared data unavailable for rate-limit tables",
                                route.name.as_str()
                            ),
                        );
                        config_outcome(&Envoy, false);
                        return false;
                    }
                }
                for w in policy.providers.warnings().iter().chain(&policy.warnings) {
                    log(Level::Warn, &format!("meshguard: {w}"));
                }
                let remote = policy.providers.iter().any(|(_, p)| p.remote().is_some());
                log(
                    Level::Info,
                    &format!(
                        "meshguard {VERSION} ({GIT_HASH}) config accepted: {} routes",
                        policy.routes.len()
                    ),
                );
                self.shared = Some(Rc::new(Shared::new(&Envoy, policy)));
                self.inflight.clear();
                if remote {
                    // Keys are fetched from the tick: the first one comes right away.
                    let _ = abi::set_tick_period_ms(TICK_MS);
                }
                config_outcome(&Envoy, true);
                true
            }
            Err(e) => {
                // One line naming the field and the problem; Envoy then refuses the config.
                log(Level::Error, &format!("meshguard config rejected: {e}"));
                config_outcome(&Envoy, false);
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Returning `None` here makes the SDK's dispatcher panic (the VM would die). Without an
        // accepted configuration (which Envoy normally never lets serve) every request is
        // refused with a 503 problem instead: fail closed, VM alive.
        let Some(shared) = self.shared.clone() else {
            return Some(Box::new(Unconfigured));
        };
        Some(Box::new(Stream::new(
            context_id,
            shared,
            Rc::clone(&self.waiters),
        )))
    }

    fn on_tick(&mut self) {
        self.drive_keys();
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
