//! What the core needs from the host, as traits: time, the process-wide shared store, and every
//! value a stream reads from the host ([`HostReads`]), always as bytes with a typed error.
//!
//! The adapter implements these over its own proxy-wasm ABI layer (`src/adapter/host.rs`), which
//! never panics: the SDK's helpers unwrap UTF-8 and panic on host statuses they do not expect,
//! and one Latin-1 header value would otherwise abort the VM. Tests use the fakes in [`fake`];
//! [`Counted`] counts host calls per kind so that a host-call budget can be asserted.

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
    /// Up to `max` bytes of a buffer from `start`.
    fn buffer(
        &self,
        kind: BufferKind,
        start: usize,
        max: usize,
    ) -> Result<Option<Vec<u8>>, HostError>;
    /// A shared-data entry and its CAS token.
    fn shared_data(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError>;
    /// Host wall-clock time in Unix milliseconds.
    fn now_ms(&self) -> Result<u64, HostError>;
    /// The status code and message of the gRPC call being answered (message as bytes).
    fn grpc_status(&self) -> Result<(u32, Option<Vec<u8>>), HostError>;
}

/// Host calls made, per kind of read.
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
}

impl HostCalls {
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
    fn buffer(
        &self,
        kind: BufferKind,
        start: usize,
        max: usize,
    ) -> Result<Option<Vec<u8>>, HostError> {
        self.bump(|c| c.buffer = c.buffer.saturating_add(1));
        self.inner.buffer(kind, start, max)
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

/// Deterministic stand-ins for tests: a settable clock and an in-memory CAS store.
pub mod fake {
    use super::{
        BufferKind, Clock, HeaderPairs, HostError, HostReads, MapKind, SharedStore, StoreError,
    };
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    /// A clock that only moves when told to.
    #[derive(Debug, Default)]
    pub struct FakeClock {
        ms: Cell<u64>,
    }

    impl FakeClock {
        /// A clock at `ms` Unix milliseconds.
        pub fn at_ms(ms: u64) -> Self {
            Self { ms: Cell::new(ms) }
        }
        /// A clock at `secs` Unix seconds.
        pub fn at_secs(secs: u64) -> Self {
            Self::at_ms(secs.saturating_mul(1000))
        }
        /// Moves the clock forward.
        pub fn advance_ms(&self, ms: u64) {
            self.ms.set(self.ms.get().saturating_add(ms));
        }
        /// Sets the clock.
        pub fn set_ms(&self, ms: u64) {
            self.ms.set(ms);
        }
    }

    impl Clock for FakeClock {
        fn now_ms(&self) -> u64 {
            self.ms.get()
        }
    }

    /// A host that answers from fixed bytes: any header bytes, properties, buffers and errors a
    /// test wants to feed the plugin. Wrap it in [`super::Counted`] to count calls.
    #[derive(Debug, Default)]
    pub struct FakeHost {
        /// Header maps by kind (absent kind: not available in this phase).
        pub maps: HashMap<MapKind, HeaderPairs>,
        /// Properties by path joined with `.`; `Err` entries make the read fail.
        pub properties: HashMap<String, Result<Vec<u8>, HostError>>,
        /// Buffers by kind.
        pub buffers: HashMap<BufferKind, Vec<u8>>,
        /// Shared data.
        pub store: MemStore,
        /// Clock.
        pub clock: FakeClock,
        /// Status of the gRPC call being answered.
        pub grpc: Option<(u32, Option<Vec<u8>>)>,
    }

    impl FakeHost {
        /// A host whose request headers are `pairs`.
        pub fn with_request_headers(pairs: HeaderPairs) -> Self {
            let mut h = FakeHost::default();
            h.maps.insert(MapKind::RequestHeaders, pairs);
            h
        }
    }

    impl HostReads for FakeHost {
        fn map(&self, kind: MapKind) -> Result<HeaderPairs, HostError> {
            self.maps.get(&kind).cloned().ok_or(HostError::NotAvailable)
        }
        fn map_value(&self, kind: MapKind, name: &str) -> Result<Option<Vec<u8>>, HostError> {
            let map = self.maps.get(&kind).ok_or(HostError::NotAvailable)?;
            Ok(map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| v.clone()))
        }
        fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
            match self.properties.get(&path.join(".")) {
                None => Ok(None),
                Some(Ok(v)) => Ok(Some(v.clone())),
                Some(Err(e)) => Err(*e),
            }
        }
        fn buffer(
            &self,
            kind: BufferKind,
            start: usize,
            max: usize,
        ) -> Result<Option<Vec<u8>>, HostError> {
            let Some(b) = self.buffers.get(&kind) else {
                return Ok(None);
            };
            let end = start.saturating_add(max).min(b.len());
            Ok(b.get(start.min(end)..end).map(<[u8]>::to_vec))
        }
        fn shared_data(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
            self.store.get(key).map_err(|_| HostError::NotAvailable)
        }
        fn now_ms(&self) -> Result<u64, HostError> {
            Ok(self.clock.now_ms())
        }
        fn grpc_status(&self) -> Result<(u32, Option<Vec<u8>>), HostError> {
            self.grpc.clone().ok_or(HostError::NotAvailable)
        }
    }

    /// An in-memory shared store with CAS semantics like Envoy's shared data.
    #[derive(Debug, Default)]
    pub struct MemStore {
        map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    }

    impl MemStore {
        /// Number of keys stored.
        pub fn len(&self) -> usize {
            self.map.borrow().len()
        }
        /// True when nothing is stored.
        pub fn is_empty(&self) -> bool {
            self.map.borrow().is_empty()
        }
    }

    impl SharedStore for MemStore {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
            Ok(self.map.borrow().get(key).cloned())
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            let mut map = self.map.borrow_mut();
            let current = map.get(key).map(|(_, c)| *c);
            if let (Some(want), Some(have)) = (cas, current) {
                if want != have {
                    return Err(StoreError::CasMismatch);
                }
            }
            let next = current.unwrap_or(0).wrapping_add(1).max(1);
            map.insert(key.to_string(), (value.to_vec(), next));
            Ok(())
        }
    }
}

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
