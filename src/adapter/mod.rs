//! The only code that names `proxy_wasm`: host calls only. [`host`] implements the core's
//! [`crate::host::Host`] over the proxy-wasm ABI (`Envoy`); [`stream`] maps each HTTP callback
//! onto the core's [`crate::pipeline::Flow`]; [`root`] compiles the configuration, dispatches
//! JWKS fetches and drives waiting streams. No decision and no flow logic is made here.

mod host;
mod root;
mod stream;
mod waiters;

use proxy_wasm::traits::RootContext;

/// Version and build id logged at VM start.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit the module was built from (set by `make build`).
pub(crate) const GIT_HASH: &str = match option_env!("MESHGUARD_GIT_HASH") {
    Some(h) => h,
    None => "unknown",
};

proxy_wasm::main! {{
    // The SDK's `set_log_level` is not called: its logger and panic hook unwrap host statuses.
    // meshguard logs through its own host layer and never through the `log` crate.
    std::panic::set_hook(Box::new(|info| {
        // A panic aborts this VM: say so loudly, with where, so it is found and fixed.
        host::log(crate::host::Level::Critical, &format!("meshguard panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::Root::default()) });
}}
