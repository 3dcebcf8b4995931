//! What the core needs from the host, as traits: time, the process-wide shared store, and every
//! value a stream reads from the host ([`HostReads`]), always as bytes with a typed error.
//!
//! The adapter implements these over its own proxy-wasm ABI layer (`src/adapter/host.rs`), which
//! never panics: the SDK's helpers unwrap UTF-8 and panic on host statuses they do not expect,
//! and one Latin-1 header value would otherwise abort the VM. Tests use the fakes in [`fake`];
//! [`Counted`] counts host calls per kind so that a host-call budget can be asserted.

use crate::error::Reply;

/// Wall-clock time from the host (`proxy_get_current_time`), in milliseconds since the Unix epoch.
pub trait Clock {
    /// Current time in Unix milliseconds.
    fn now_ms(&self) -> u64;
    /// Current time in whole Unix seconds.
    fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// Why a shared-store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The compare-and-swap token did not match: someone else wrote first. Retry.
    CasMismatch,
    /// The host refused the operation for another reason.
    Unavailable,
}

/// The process-wide key/value store shared by every worker's VM (proxy-wasm shared data).
///
/// Values carry a CAS token: `set` with `Some(cas)` succeeds only if nobody wrote since the `get`
/// that returned it. `set` with `None` writes unconditionally.
pub trait SharedStore {
    /// The value and its CAS token, or `(None, None)`-like absence as `Ok(None)`.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError>;
    /// Writes `value` if `cas` still matches (or unconditionally with `None`).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// Why a host read failed. Absence is not an error (`Ok(None)` / an empty map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// The value does not exist in this phase (a response map during the request, a body that
    /// is gone): proxy-wasm `BadArgument`. Not the same as "deny all".
    NotAvailable,
    /// The host could not serialise the value (a whole message property such as `connection`).
    Serialization,
    /// The host answered with bytes that do not decode (a header map that does not parse).
    Malformed,
    /// Any other host status, by its proxy-wasm number.
    Status(u32),
}

/// Header-like maps the host exposes (names are bytes, values are bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapKind {
    /// Request headers, pseudo-headers included.
    RequestHeaders,
    /// Request trailers.
    RequestTrailers,
    /// Response headers.
    ResponseHeaders,
    /// Response trailers.
    ResponseTrailers,
    /// Headers of the answer to an HTTP call the plugin dispatched.
    HttpCallResponseHeaders,
}

/// Byte buffers the host exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferKind {
    /// The request body received so far.
    RequestBody,
    /// The response body received so far.
    ResponseBody,
    /// The body of the answer to a dispatched HTTP call.
    HttpCallResponseBody,
    /// The plugin configuration.
    PluginConfiguration,
    /// The message of a gRPC call's answer (e.g. the rate-limit service).
    GrpcReceiveBuffer,
}

/// A header map as the host gives it: (name, value) pairs in order, repeats kept.
pub type HeaderPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything the plugin reads from the host, each call one host round trip. Every value comes
/// back as bytes: whether it is text is the core's question, never a reason to fail.
pub trait HostReads {
    /// A whole header map.
    fn map(&self, kind: MapKind) -> Result<HeaderPairs, HostError>;
    /// One header's first value (`Ok(None)` when absent).
    fn map_value(&self, kind: MapKind, name: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// An Envoy attribute by path segments (`["connection", "mtls"]`).
    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError>;
    /// Up to `max` bytes of a buffer, from its start.
    fn buffer(&self, kind: BufferKind, max: usize) -> Result<Option<Vec<u8>>, HostError>;
    /// A shared-data entry and its CAS token.
    fn shared_data(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError>;
    /// Host wall-clock time in Unix milliseconds.
    fn now_ms(&self) -> Result<u64, HostError>;
    /// The status code and message of the gRPC call being answered (message as bytes).
    fn grpc_status(&self) -> Result<(u32, Option<Vec<u8>>), HostError>;
}

/// Host properties (Envoy attributes such as `connection.mtls`), read lazily by the stages that
/// need them.
pub trait Properties {
    /// The raw bytes of a property path, `None` if absent.
    fn get(&self, path: &[&str]) -> Option<Vec<u8>>;
}

/// Log levels of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Routine events (audit lines, key set updates).
    Info = 2,
    /// Something an operator should look at.
    Warn = 3,
    /// A request or a fetch could not be handled as configured.
    Error = 4,
    /// The VM is about to die.
    Critical = 5,
}

/// Everything a stream does with the host: the reads of [`HostReads`], plus header edits,
/// local replies, body writes, shared-data writes, logs and counters. The adapter implements it
/// over the proxy-wasm ABI; the core's stream flow ([`crate::pipeline::flow`]) only talks to it.
pub trait Host: HostReads {
    /// Replaces (or adds) a header.
    fn set_header(&self, kind: MapKind, name: &str, value: &[u8]) -> Result<(), HostError>;
    /// Adds a header value (keeps existing ones).
    fn add_header(&self, kind: MapKind, name: &str, value: &[u8]) -> Result<(), HostError>;
    /// Removes every value of a header.
    fn remove_header(&self, kind: MapKind, name: &[u8]) -> Result<(), HostError>;
    /// Replaces the first `len` bytes of a buffer (all that was read) with `value`.
    fn replace_buffer(&self, kind: BufferKind, len: usize, value: &[u8]) -> Result<(), HostError>;
    /// Answers the request locally (a gRPC status for gRPC requests when the reply has one).
    fn send_reply(&self, reply: &Reply) -> Result<(), HostError>;
    /// Resets the response stream (an answer that cannot be checked is never passed).
    fn reset_response(&self) -> Result<(), HostError>;
    /// Writes a shared-data entry if `cas` still matches (or unconditionally with `None`).
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
    /// Writes a log line.
    fn log(&self, level: Level, message: &str);
    /// Defines a counter (configure time only), returning its id.
    fn define_counter(&self, name: &str) -> Option<u32>;
    /// Adds one to a counter.
    fn increment_counter(&self, id: u32);
}

/// The clock, shared store and properties of any [`Host`], as the stages take them.
pub struct Via<'a>(pub &'a dyn Host);

impl Clock for Via<'_> {
    /// 0 if the host cannot tell, which only ever makes limits stricter.
    fn now_ms(&self) -> u64 {
        self.0.now_ms().unwrap_or(0)
    }
}

impl SharedStore for Via<'_> {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        self.0.shared_data(key).map_err(|_| StoreError::Unavailable)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.0.set_shared_data(key, value, cas)
    }
}

/// The host's clock read at most once: one callback's checks all see the same instant, for one
/// host call.
pub struct ClockOnce<'a> {
    host: &'a dyn Host,
    now: std::cell::Cell<Option<u64>>,
}

impl<'a> ClockOnce<'a> {
    /// A clock that reads `host` on first use.
    pub fn new(host: &'a dyn Host) -> Self {
        ClockOnce {
            host,
            now: std::cell::Cell::new(None),
        }
    }
}

impl Clock for ClockOnce<'_> {
    fn now_ms(&self) -> u64 {
        if let Some(now) = self.now.get() {
            return now;
        }
        let now = self.host.now_ms().unwrap_or(0);
        self.now.set(Some(now));
        now
    }
}

impl Properties for Via<'_> {
    /// A property the host cannot give (not in this phase, not serialisable) reads as absent:
    /// every check treats absence as "not proven".
    fn get(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.0.property(path).ok().flatten()
    }
}

/// Host calls made, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCalls {
    /// Whole maps read.
    pub map: u32,
    /// Single header values read.
    pub map_value: u32,
    /// Properties read.
    pub property: u32,
    /// Buffers read.
    pub buffer: u32,
    /// Shared-data entries read.
    pub shared_data: u32,
    /// Clock reads.
    pub clock: u32,
    /// gRPC call statuses read.
    pub grpc_status: u32,
    /// Header edits (set, add, remove).
    pub header_edit: u32,
    /// Buffer writes.
    pub buffer_write: u32,
    /// Local replies and stream resets.
    pub reply: u32,
    /// Shared-data writes.
    pub shared_write: u32,
    /// Log lines.
    pub log: u32,
    /// Counter increments (about 0.07 us each) and definitions.
    pub metric: u32,
}

impl HostCalls {
    /// Calls that return nothing but act (edits, replies, writes, logs), counters excluded.
    pub fn writes(&self) -> u32 {
        self.header_edit
            .saturating_add(self.buffer_write)
            .saturating_add(self.reply)
            .saturating_add(self.shared_write)
            .saturating_add(self.log)
    }
    /// All calls that returned data.
    pub fn total(&self) -> u32 {
        self.map
            .saturating_add(self.map_value)
            .saturating_add(self.property)
            .saturating_add(self.buffer)
            .saturating_add(self.shared_data)
            .saturating_add(self.clock)
            .saturating_add(self.grpc_status)
    }
}

/// Wraps a host and counts every call per kind (each costs about 0.8 us under V8).
#[derive(Debug, Default)]
pub struct Counted<H> {
    inner: H,
    calls: std::cell::Cell<HostCalls>,
}

impl<H> Counted<H> {
    /// Counts the calls made through `inner`.
    pub fn new(inner: H) -> Self {
        Self {
            inner,
            calls: std::cell::Cell::new(HostCalls::default()),
        }
    }
    /// Calls so far.
    pub fn calls(&self) -> HostCalls {
        self.calls.get()
    }
    /// Calls so far, and starts counting again from zero.
    pub fn take_calls(&self) -> HostCalls {
        self.calls.replace(HostCalls::default())
    }
    /// The wrapped host.
    pub fn inner(&self) -> &H {
        &self.inner
    }
    fn bump(&self, f: impl FnOnce(&mut HostCalls)) {
        let mut c = self.calls.get();
        f(&mut c);
        self.calls.set(c);
    }
}

impl<H: HostReads> HostReads for Counted<H> {
    fn map(&self, kind: MapKind) -> Result<HeaderPairs, HostError> {
        self.bump(|c| c.map = c.map.saturating_add(1));
        self.inner.map(kind)
    }
    fn map_value(&self, kind: MapKind, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.bump(|c| c.map_value = c.map_value.saturating_add(1));
        self.inner.map_value(kind, name)
    }
    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        self.bump(|c| c.property = c.property.saturating_add(1));
        self.inner.property(path)
    }
    fn buffer(&self, kind: BufferKind, max: usize) -> Result<Option<Vec<u8>>, HostError> {
        self.bump(|c| c.buffer = c.buffer.saturating_add(1));
        self.inner.buffer(kind, max)
    }
    fn shared_data(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        self.bump(|c| c.shared_data = c.shared_data.saturating_add(1));
        self.inner.shared_data(key)
    }
    fn now_ms(&self) -> Result<u64, HostError> {
        self.bump(|c| c.clock = c.clock.saturating_add(1));
        self.inner.now_ms()
    }
    fn grpc_status(&self) -> Result<(u32, Option<Vec<u8>>), HostError> {
        self.bump(|c| c.grpc_status = c.grpc_status.saturating_add(1));
        self.inner.grpc_status()
    }
}

impl<H: Host> Host for Counted<H> {
    fn set_header(&self, kind: MapKind, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.bump(|c| c.header_edit = c.header_edit.saturating_add(1));
        self.inner.set_header(kind, name, value)
    }
    fn add_header(&self, kind: MapKind, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.bump(|c| c.header_edit = c.header_edit.saturating_add(1));
        self.inner.add_header(kind, name, value)
    }
    fn remove_header(&self, kind: MapKind, name: &[u8]) -> Result<(), HostError> {
        self.bump(|c| c.header_edit = c.header_edit.saturating_add(1));
        self.inner.remove_header(kind, name)
    }
    fn replace_buffer(&self, kind: BufferKind, len: usize, value: &[u8]) -> Result<(), HostError> {
        self.bump(|c| c.buffer_write = c.buffer_write.saturating_add(1));
        self.inner.replace_buffer(kind, len, value)
    }
    fn send_reply(&self, reply: &Reply) -> Result<(), HostError> {
        self.bump(|c| c.reply = c.reply.saturating_add(1));
        self.inner.send_reply(reply)
    }
    fn reset_response(&self) -> Result<(), HostError> {
        self.bump(|c| c.reply = c.reply.saturating_add(1));
        self.inner.reset_response()
    }
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.bump(|c| c.shared_write = c.shared_write.saturating_add(1));
        self.inner.set_shared_data(key, value, cas)
    }
    fn log(&self, level: Level, message: &str) {
        self.bump(|c| c.log = c.log.saturating_add(1));
        self.inner.log(level, message);
    }
    fn define_counter(&self, name: &str) -> Option<u32> {
        self.bump(|c| c.metric = c.metric.saturating_add(1));
        self.inner.define_counter(name)
    }
    fn increment_counter(&self, id: u32) {
        self.bump(|c| c.metric = c.metric.saturating_add(1));
        self.inner.increment_counter(id);
    }
}

/// Decodes a proxy-wasm serialised header map: a little-endian `u32` count, then a `u32` name
/// length and value length per pair, then each name and value followed by a NUL byte. Any
/// inconsistency (lengths past the end, missing NULs) is [`HostError::Malformed`], never a panic.
pub fn decode_pairs(bytes: &[u8]) -> Result<HeaderPairs, HostError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let word = |at: usize| -> Result<usize, HostError> {
        let end = at.checked_add(4).ok_or(HostError::Malformed)?;
        let raw: [u8; 4] = bytes
            .get(at..end)
            .and_then(|s| s.try_into().ok())
            .ok_or(HostError::Malformed)?;
        usize::try_from(u32::from_le_bytes(raw)).map_err(|_| HostError::Malformed)
    };
    let count = word(0)?;
    // Each pair takes at least 10 bytes (two lengths and two NULs): bound the count by the size.
    if count > bytes.len() / 10 {
        return Err(HostError::Malformed);
    }
    let mut data = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .ok_or(HostError::Malformed)?;
    let mut out = Vec::with_capacity(count);
    let mut take = |len: usize| -> Result<Vec<u8>, HostError> {
        let end = data.checked_add(len).ok_or(HostError::Malformed)?;
        let field = bytes.get(data..end).ok_or(HostError::Malformed)?.to_vec();
        if bytes.get(end) != Some(&0) {
            return Err(HostError::Malformed);
        }
        data = end.checked_add(1).ok_or(HostError::Malformed)?;
        Ok(field)
    };
    for n in 0..count {
        let at = n.checked_mul(8).and_then(|x| x.checked_add(4));
        let at = at.ok_or(HostError::Malformed)?;
        let name_len = word(at)?;
        let value_len = word(at.checked_add(4).ok_or(HostError::Malformed)?)?;
        let name = take(name_len)?;
        let value = take(value_len)?;
        out.push((name, value));
    }
    Ok(out)
}

/// Serialises header pairs the way proxy-wasm expects them (the inverse of [`decode_pairs`]).
/// Pairs longer than `u32::MAX` bytes cannot occur in a header map and are skipped.
pub fn encode_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Vec<u8> {
    let fits = |b: &[u8]| u32::try_from(b.len()).ok();
    let kept: Vec<(&[u8], &[u8], u32, u32)> = pairs
        .iter()
        .filter_map(|(n, v)| {
            let (n, v) = (n.as_ref(), v.as_ref());
            Some((n, v, fits(n)?, fits(v)?))
        })
        .collect();
    let size: usize = kept.iter().fold(4usize, |acc, (n, v, _, _)| {
        acc.saturating_add(n.len())
            .saturating_add(v.len())
            .saturating_add(10)
    });
    let mut out = Vec::with_capacity(size);
    let count = u32::try_from(kept.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for (_, _, nl, vl) in &kept {
        out.extend_from_slice(&nl.to_le_bytes());
        out.extend_from_slice(&vl.to_le_bytes());
    }
    for (n, v, _, _) in &kept {
        out.extend_from_slice(n);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Deterministic stand-ins for tests: a settable clock, an in-memory CAS store, and a host
/// that answers from fixed bytes and records what is done to it.
pub mod fake;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::fake::FakeHost;
    use super::*;

    #[test]
    fn pairs_round_trip_with_any_bytes() {
        let pairs: HeaderPairs = vec![
            (b":path".to_vec(), b"/a".to_vec()),
            (b"x-name".to_vec(), vec![0xe9, 0xff, 0x80]),
            (b"empty".to_vec(), Vec::new()),
        ];
        assert_eq!(decode_pairs(&encode_pairs(&pairs)).unwrap(), pairs);
        assert_eq!(decode_pairs(&[]).unwrap(), Vec::new());
    }

    #[test]
    fn truncated_or_lying_maps_are_malformed_not_panics() {
        let good = encode_pairs(&[(b"a".to_vec(), b"b".to_vec())]);
        for cut in 1..good.len() {
            assert_eq!(
                decode_pairs(&good[..cut]),
                Err(HostError::Malformed),
                "cut {cut}"
            );
        }
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_pairs(&huge), Err(HostError::Malformed));
        let mut long = good;
        long[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_pairs(&long), Err(HostError::Malformed));
    }

    #[test]
    fn counted_host_counts_each_call_by_kind() {
        let host = Counted::new(FakeHost::with_request_headers(vec![(
            b"x".to_vec(),
            vec![0xff],
        )]));
        assert_eq!(host.map(MapKind::RequestHeaders).unwrap().len(), 1);
        assert_eq!(
            host.map_value(MapKind::RequestHeaders, "X").unwrap(),
            Some(vec![0xff])
        );
        assert_eq!(
            host.map(MapKind::ResponseHeaders),
            Err(HostError::NotAvailable)
        );
        assert_eq!(host.property(&["connection", "mtls"]).unwrap(), None);
        let calls = host.calls();
        assert_eq!((calls.map, calls.map_value, calls.property), (2, 1, 1));
        assert_eq!(calls.total(), 4);
    }
}
