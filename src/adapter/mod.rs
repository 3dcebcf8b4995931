//! The only code that names `proxy_wasm`: it snapshots request facts from Envoy, calls the core
//! ([`crate::decide`]), and applies the verdict. No decision is made here.

mod host;
mod metrics;
mod response;
mod root;
mod stream;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

/// Version and build id logged at VM start.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit the module was built from (set by `make build`).
pub(crate) const GIT_HASH: &str = match option_env!("MESHGUARD_GIT_HASH") {
    Some(h) => h,
    None => "unknown",
};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        // A panic aborts this VM: say so loudly, with where, so it is found and fixed.
        let _ = proxy_wasm::hostcalls::log(LogLevel::Critical, &format!("meshguard panic: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::Root::default()) });
}}
