//! Property probe: for each line of the plugin configuration (a property path, segments separated
//! by `|`, e.g. `connection|sha256_peer_certificate_digest`), sets request header `x-probe-<n>`
//! (n = line number from 0) to the lowercase hex of the raw bytes the host returns, `absent` for
//! `None`, or `error:<status>` when the host refuses. Used only by the e2e tests to observe what
//! Envoy's property ABI really returns; it never decides anything about a request.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { paths: Vec::new() }) });
}}

struct Root {
    paths: Vec<Vec<String>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let raw = hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&raw);
        self.paths = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().split('|').map(str::to_string).collect())
            .collect();
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Probe { paths: self.paths.clone() }))
    }
}

struct Probe {
    paths: Vec<Vec<String>>,
}

impl Context for Probe {}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        for (i, path) in self.paths.iter().enumerate() {
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            let value = match hostcalls::get_property(segments) {
                Ok(Some(bytes)) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
                Ok(None) => "absent".to_string(),
                Err(status) => format!("error:{status:?}"),
            };
            let _ = hostcalls::set_map_value(
                proxy_wasm::types::MapType::HttpRequestHeaders,
                &format!("x-probe-{i}"),
                Some(&value),
            );
        }
        Action::Continue
    }
}
