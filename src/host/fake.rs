//! Deterministic stand-ins for tests: a settable clock, an in-memory CAS store, and a host that
//! answers from fixed bytes and records what is done to it.

use super::{
    BufferKind, Clock, HeaderPairs, Host, HostError, HostReads, Level, MapKind, SharedStore,
    StoreError,
};
use crate::error::Reply;
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
    /// What was done to the host, in order.
    pub done: RefCell<Vec<Done>>,
}

/// One thing done to a [`FakeHost`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// A header set (replaced or added).
    Set(MapKind, String, Vec<u8>),
    /// A header value added next to existing ones.
    Add(MapKind, String, Vec<u8>),
    /// A header removed.
    Remove(MapKind, Vec<u8>),
    /// A buffer rewritten with these bytes.
    Buffer(BufferKind, Vec<u8>),
    /// A local reply with this status.
    Reply(u16),
    /// The response stream reset.
    Reset,
    /// A log line.
    Log(Level, String),
    /// A counter defined, by name.
    Define(String),
    /// A counter incremented, by id.
    Increment(u32),
}

impl FakeHost {
    /// Everything done so far, drained.
    pub fn take_done(&self) -> Vec<Done> {
        std::mem::take(&mut *self.done.borrow_mut())
    }
    /// Statuses of the local replies sent so far.
    pub fn replies(&self) -> Vec<u16> {
        self.done
            .borrow()
            .iter()
            .filter_map(|d| match d {
                Done::Reply(s) => Some(*s),
                _ => None,
            })
            .collect()
    }
    fn record(&self, d: Done) {
        self.done.borrow_mut().push(d);
    }
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
    fn buffer(&self, kind: BufferKind, max: usize) -> Result<Option<Vec<u8>>, HostError> {
        let Some(b) = self.buffers.get(&kind) else {
            return Ok(None);
        };
        Ok(b.get(..max.min(b.len())).map(<[u8]>::to_vec))
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

impl Host for FakeHost {
    fn set_header(&self, kind: MapKind, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.record(Done::Set(kind, name.to_string(), value.to_vec()));
        Ok(())
    }
    fn add_header(&self, kind: MapKind, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.record(Done::Add(kind, name.to_string(), value.to_vec()));
        Ok(())
    }
    fn remove_header(&self, kind: MapKind, name: &[u8]) -> Result<(), HostError> {
        self.record(Done::Remove(kind, name.to_vec()));
        Ok(())
    }
    fn replace_buffer(&self, kind: BufferKind, _len: usize, value: &[u8]) -> Result<(), HostError> {
        self.record(Done::Buffer(kind, value.to_vec()));
        Ok(())
    }
    fn send_reply(&self, reply: &Reply) -> Result<(), HostError> {
        self.record(Done::Reply(reply.status));
        Ok(())
    }
    fn reset_response(&self) -> Result<(), HostError> {
        self.record(Done::Reset);
        Ok(())
    }
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        self.store.set(key, value, cas)
    }
    fn log(&self, level: Level, message: &str) {
        self.record(Done::Log(level, message.to_string()));
    }
    fn define_counter(&self, name: &str) -> Option<u32> {
        let mut done = self.done.borrow_mut();
        let id = done.iter().filter(|d| matches!(d, Done::Define(_))).count();
        done.push(Done::Define(name.to_string()));
        u32::try_from(id).ok()
    }
    fn increment_counter(&self, id: u32) {
        self.record(Done::Increment(id));
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
