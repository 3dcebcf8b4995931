//! What the core needs from the host, as traits: time and the process-wide shared store.
//!
//! The adapter implements these over proxy-wasm host calls; tests use the fakes in [`fake`].

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

/// Deterministic stand-ins for tests: a settable clock and an in-memory CAS store.
pub mod fake {
    use super::{Clock, SharedStore, StoreError};
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
