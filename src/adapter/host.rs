//! The host layer: meshguard's own calls into the proxy-wasm ABI. Nothing here can panic.
//!
//! The SDK's helpers are not used for anything that returns data or can fail: `get_map` and
//! `get_map_value` unwrap the result of `String::from_utf8` (one Latin-1 header value aborts the
//! VM), and every `hostcalls::*` function panics on a host status it does not list (`BadArgument`
//! for a map that does not exist in this phase, `Unimplemented`), while statuses outside the SDK's
//! `Status` enum would not even be valid values. Here every import returns a plain `u32`, every
//! value arrives as bytes, and failures become [`HostError`]s.
//!
//! Audit of what remains of the SDK: its dispatcher and context traits (the callbacks), and
//! `hostcalls::dispatch_http_call` (it registers the call token with the dispatcher, which
//! otherwise panics on the answer; it panics only on statuses Envoy's `http_call` never returns).

use crate::error::Reply;
use crate::host::{
    decode_pairs, encode_pairs, BufferKind, HeaderPairs, Host, HostError, HostReads, Level,
    MapKind, StoreError,
};
use std::ptr::{null, null_mut};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_close_stream(stream_type: u32) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_get_status(
        return_code: *mut u32,
        return_message_data: *mut *mut u8,
        return_message_size: *mut usize,
    ) -> u32;
}

/// Declares the header-map writes: one signature (map type, name, value), two effects.
macro_rules! header_map_writes {
    ($($name:ident),+) => {
        #[link(wasm_import_module = "env")]
        extern "C" {
            $(fn $name(
                map_type: u32,
                key_data: *const u8,
                key_size: usize,
                value_data: *const u8,
                value_size: usize,
            ) -> u32;)+
        }
    };
}

// `proxy_replace_header_map_value` sets a header (one value), `proxy_add_header_map_value`
// appends one more value.
header_map_writes!(proxy_replace_header_map_value, proxy_add_header_map_value);

/// A header-map write import (see `header_map_writes`).
type HeaderMapWrite = unsafe extern "C" fn(u32, *const u8, usize, *const u8, usize) -> u32;

// proxy-wasm ABI numbers (WasmResult).
const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
const BAD_ARGUMENT: u32 = 2;
const SERIALIZATION_FAILURE: u32 = 3;
const CAS_MISMATCH: u32 = 8;

fn status(code: u32) -> Result<(), HostError> {
    match code {
        OK => Ok(()),
        BAD_ARGUMENT => Err(HostError::NotAvailable),
        SERIALIZATION_FAILURE => Err(HostError::Serialization),
        other => Err(HostError::Status(other)),
    }
}

/// Takes ownership of bytes the host wrote into memory it obtained from the module's allocator
/// (`proxy_on_memory_allocate`, which hands out exactly `size` bytes).
fn owned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: the host allocated `size` bytes at `data` through the SDK's exported allocator
    // (a boxed slice of exactly `size` bytes) and passed ownership to us; this is the only owner.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Sets or adds (per `write`) header `name` of map `kind`.
fn write_header(
    write: HeaderMapWrite,
    kind: MapKind,
    name: &str,
    value: &[u8],
) -> Result<(), HostError> {
    // SAFETY: `name` and `value` are valid for their lengths.
    status(unsafe {
        write(
            map_code(kind),
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

fn map_code(kind: MapKind) -> u32 {
    match kind {
        MapKind::RequestHeaders => 0,
        MapKind::RequestTrailers => 1,
        MapKind::ResponseHeaders => 2,
        MapKind::ResponseTrailers => 3,
        MapKind::HttpCallResponseHeaders => 6,
    }
}

fn buffer_code(kind: BufferKind) -> u32 {
    match kind {
        BufferKind::RequestBody => 0,
        BufferKind::ResponseBody => 1,
        BufferKind::HttpCallResponseBody => 4,
        BufferKind::PluginConfiguration => 7,
        BufferKind::GrpcReceiveBuffer => 5,
    }
}

/// Envoy, as the core sees it ([`Host`]): every read as bytes with a typed error.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Envoy;

impl HostReads for Envoy {
    fn map(&self, kind: MapKind) -> Result<HeaderPairs, HostError> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer and a size into the two locals.
        let code = unsafe { proxy_get_header_map_pairs(map_code(kind), &mut data, &mut size) };
        let bytes = owned(data, size);
        if code == NOT_FOUND {
            return Ok(Vec::new());
        }
        status(code)?;
        bytes.map_or(Ok(Vec::new()), |b| decode_pairs(&b))
    }

    fn map_value(&self, kind: MapKind, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: `name` is valid for its length; the host writes into the two locals.
        let code = unsafe {
            proxy_get_header_map_value(
                map_code(kind),
                name.as_ptr(),
                name.len(),
                &mut data,
                &mut size,
            )
        };
        let bytes = owned(data, size);
        if code == NOT_FOUND {
            return Ok(None);
        }
        status(code)?;
        Ok(Some(bytes.unwrap_or_default()))
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        // Segments joined by NUL bytes, as the ABI wants them.
        let serialized = path.join("\0");
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: `serialized` is valid for its length; the host writes into the two locals.
        let code = unsafe {
            proxy_get_property(serialized.as_ptr(), serialized.len(), &mut data, &mut size)
        };
        let bytes = owned(data, size);
        if code == NOT_FOUND {
            return Ok(None);
        }
        status(code)?;
        Ok(bytes)
    }

    fn buffer(&self, kind: BufferKind, max: usize) -> Result<Option<Vec<u8>>, HostError> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer and a size into the two locals.
        let code =
            unsafe { proxy_get_buffer_bytes(buffer_code(kind), 0, max, &mut data, &mut size) };
        let bytes = owned(data, size);
        if code == NOT_FOUND {
            return Ok(None);
        }
        status(code)?;
        Ok(bytes)
    }

    fn shared_data(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        let mut cas: u32 = 0;
        // SAFETY: `key` is valid for its length; the host writes into the three locals.
        let code = unsafe {
            proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas)
        };
        let bytes = owned(data, size);
        if code == NOT_FOUND {
            return Ok(None);
        }
        status(code)?;
        Ok(bytes.map(|b| (b, cas)))
    }

    fn now_ms(&self) -> Result<u64, HostError> {
        let mut nanos: u64 = 0;
        // SAFETY: the host writes the time into the local.
        status(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
        Ok(nanos / 1_000_000)
    }

    fn grpc_status(&self) -> Result<(u32, Option<Vec<u8>>), HostError> {
        let mut code: u32 = 0;
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes into the three locals.
        let result = unsafe { proxy_get_status(&mut code, &mut data, &mut size) };
        let message = owned(data, size);
        status(result)?;
        Ok((code, message))
    }
}

impl Host for Envoy {
    fn set_header(&self, kind: MapKind, name: &str, value: &[u8]) -> Result<(), HostError> {
        write_header(proxy_replace_header_map_value, kind, name, value)
    }

    fn add_header(&self, kind: MapKind, name: &str, value: &[u8]) -> Result<(), HostError> {
        write_header(proxy_add_header_map_value, kind, name, value)
    }

    /// Names are matched case-insensitively by Envoy.
    fn remove_header(&self, kind: MapKind, name: &[u8]) -> Result<(), HostError> {
        // SAFETY: `name` is valid for its length.
        status(unsafe { proxy_remove_header_map_value(map_code(kind), name.as_ptr(), name.len()) })
    }

    fn replace_buffer(&self, kind: BufferKind, len: usize, value: &[u8]) -> Result<(), HostError> {
        // SAFETY: `value` is valid for its length.
        status(unsafe {
            proxy_set_buffer_bytes(buffer_code(kind), 0, len, value.as_ptr(), value.len())
        })
    }

    /// `grpc_status` set: Envoy answers a gRPC request trailers-only with that status and the
    /// body as `grpc-message`.
    fn send_reply(&self, reply: &Reply) -> Result<(), HostError> {
        let (status_code, body) = (reply.status, &reply.body);
        let headers = encode_pairs(&reply.headers);
        let grpc = reply
            .grpc_status
            .and_then(|g| i32::try_from(g).ok())
            .unwrap_or(-1);
        // SAFETY: every buffer is valid for its length; details are empty.
        status(unsafe {
            proxy_send_local_response(
                u32::from(status_code),
                null(),
                0,
                body.as_ptr(),
                body.len(),
                headers.as_ptr(),
                headers.len(),
                grpc,
            )
        })
    }

    /// The client gets an incomplete answer.
    fn reset_response(&self) -> Result<(), HostError> {
        // SAFETY: no pointers. 1 is the response direction.
        status(unsafe { proxy_close_stream(1) })
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        // SAFETY: `key` and `value` are valid for their lengths.
        let code = unsafe {
            proxy_set_shared_data(
                key.as_ptr(),
                key.len(),
                value.as_ptr(),
                value.len(),
                cas.unwrap_or(0),
            )
        };
        match code {
            OK => Ok(()),
            CAS_MISMATCH => Err(StoreError::CasMismatch),
            _ => Err(StoreError::Unavailable),
        }
    }

    /// A failure to log is ignored: there is nowhere else to say it.
    fn log(&self, level: Level, message: &str) {
        log(level, message);
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        let mut id: u32 = 0;
        // SAFETY: `name` is valid for its length; the host writes the id into the local.
        let code = unsafe { proxy_define_metric(0, name.as_ptr(), name.len(), &mut id) };
        (code == OK).then_some(id)
    }

    fn increment_counter(&self, id: u32) {
        // SAFETY: no pointers.
        let _ = unsafe { proxy_increment_metric(id, 1) };
    }
}

/// Writes a log line (also from the panic hook, where no host value is at hand).
pub(crate) fn log(level: Level, message: &str) {
    // SAFETY: `message` is valid for its length.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// Makes `context_id` the context later calls act on (a waiting stream driven from the root).
pub(crate) fn set_effective_context(context_id: u32) -> Result<(), HostError> {
    // SAFETY: no pointers.
    status(unsafe { proxy_set_effective_context(context_id) })
}

/// Resumes the request of the effective stream.
pub(crate) fn resume_http_request() -> Result<(), HostError> {
    // SAFETY: no pointers. 0 is the request direction.
    status(unsafe { proxy_continue_stream(0) })
}

/// Sets the root context's tick period.
pub(crate) fn set_tick_period_ms(ms: u32) -> Result<(), HostError> {
    // SAFETY: no pointers.
    status(unsafe { proxy_set_tick_period_milliseconds(ms) })
}
