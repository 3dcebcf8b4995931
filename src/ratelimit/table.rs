//! A fixed-size, set-associative table of per-key state in the process-wide shared store,
//! updated with bounded compare-and-swap retries.
//!
//! Why fixed: proxy-wasm shared data keys can never be deleted, so a table keyed by client would
//! grow without bound. Instead a table has `slots` shared-data keys (`<prefix>:<table id>:<slot>`);
//! a key hashes (SipHash-1-3, keyed per table) to one slot and a 64-bit fingerprint. Each slot
//! value holds [`WAYS`] tracked entries `(fingerprint, state)` and one *overflow* entry, in fixed
//! little-endian bytes, so one read and one CAS write update a key.
//!
//! Eviction rule: a new key may take over only an *idle* way, one whose state is equivalent to a
//! fresh one (a full bucket, an expired window), so evicting it loses nothing. An active entry is
//! never evicted, so a flood of new keys cannot reset an active abuser's state. When every way of
//! the slot is active, the new key is not tracked on its own: it shares the slot's overflow entry
//! with every other untracked key of that slot. It is limited (never waved through, never refused
//! outright), and the flood as a whole gets at most one overflow entry's allowance per slot.
//!
//! Concurrency: every update is read, modify, write-if-unchanged (the CAS token from the read).
//! A mismatch means another worker updated the slot in between; the update is recomputed from the
//! fresh value, at most [`MAX_ATTEMPTS`] times, then reported as [`TableError::Contended`]; the
//! caller decides what that means. Envoy's shared data accepts any write to a key that does not
//! exist yet, so two workers creating the same slot concurrently could lose one update: call
//! [`Table::prepare`] at configure time to create every slot first.
//!
//! Cost: one `get` per lookup, plus one `set` when the state changes. Memory per table:
//! `slots * (WAYS * (8 + E::SIZE) + E::SIZE)` value bytes plus Envoy's per-key overhead.

use crate::host::{SharedStore, StoreError};
use siphasher::sip128::SipHasher13;

/// Tracked entries per slot.
pub const WAYS: usize = 4;
/// Read-modify-CAS attempts before giving up on a contended slot.
pub const MAX_ATTEMPTS: u32 = 8;

/// Fixed-size state of one key, encoded little-endian.
pub trait Entry: Copy + Default {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Decodes exactly `SIZE` bytes (callers guarantee the length).
    fn decode(bytes: &[u8]) -> Self;
    /// Appends exactly `SIZE` bytes.
    fn encode(&self, out: &mut Vec<u8>);
    /// True when the entry is equivalent to a fresh one at `now_ms`: evicting it loses nothing.
    fn is_idle(&self, now_ms: u64) -> bool;
}

/// Reads a little-endian `u64` at `at`, or 0 when out of range (never panics).
pub fn read_u64(bytes: &[u8], at: usize) -> u64 {
    at.checked_add(8)
        .and_then(|end| bytes.get(at..end))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// Where a key's state lives in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Its own way (found, or an idle way taken over).
    Tracked,
    /// The slot's shared overflow entry: every way was active.
    Overflow,
}

/// Why an update did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    /// Every CAS attempt met a concurrent write.
    Contended,
    /// The host store refused a read or write.
    Unavailable,
}

/// The result of an update or a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome<R> {
    /// What the update function returned on the attempt that committed.
    pub value: R,
    /// Where the key's state is.
    pub place: Place,
    /// CAS attempts used (1 when uncontended).
    pub attempts: u32,
}

/// Where a key lands: its slot and fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Slot index.
    pub slot: u32,
    /// Non-zero fingerprint (0 marks an empty way).
    pub fingerprint: u64,
}

/// One fixed table: a name prefix, an identity and a slot count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    prefix: &'static str,
    id: u64,
    slots: u32,
}

/// A slot decoded: ways and overflow.
#[derive(Debug, Clone, Copy)]
struct Slot<E: Entry> {
    ways: [(u64, E); WAYS],
    overflow: E,
}

impl<E: Entry> Default for Slot<E> {
    fn default() -> Self {
        Self {
            ways: [(0, E::default()); WAYS],
            overflow: E::default(),
        }
    }
}

impl<E: Entry> Slot<E> {
    const BYTES: usize = WAYS * (8 + E::SIZE) + E::SIZE;

    /// A value of the wrong length (another format, corruption) reads as an empty slot.
    fn decode(bytes: &[u8]) -> Self {
        let mut slot = Self::default();
        if bytes.len() != Self::BYTES {
            return slot;
        }
        let mut at = 0usize;
        for way in slot.ways.iter_mut() {
            way.0 = read_u64(bytes, at);
            way.1 = bytes
                .get(at + 8..at + 8 + E::SIZE)
                .map(E::decode)
                .unwrap_or_default();
            at += 8 + E::SIZE;
        }
        slot.overflow = bytes
            .get(at..at + E::SIZE)
            .map(E::decode)
            .unwrap_or_default();
        slot
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::BYTES);
        for (fp, entry) in &self.ways {
            out.extend_from_slice(&fp.to_le_bytes());
            entry.encode(&mut out);
        }
        self.overflow.encode(&mut out);
        out
    }

    /// The key's entry: its own way, an idle way taken over (reset to fresh), or the overflow.
    fn entry_for(&mut self, fingerprint: u64, now_ms: u64) -> (&mut E, Place) {
        let found = self.ways.iter().position(|(fp, _)| *fp == fingerprint);
        let index = found.or_else(|| {
            // Prefer a never-used way, then any idle one.
            self.ways
                .iter()
                .position(|(fp, _)| *fp == 0)
                .or_else(|| self.ways.iter().position(|(_, e)| e.is_idle(now_ms)))
        });
        match index.and_then(|i| self.ways.get_mut(i)) {
            Some(way) => {
                if way.0 != fingerprint {
                    *way = (fingerprint, E::default());
                }
                (&mut way.1, Place::Tracked)
            }
            None => (&mut self.overflow, Place::Overflow),
        }
    }
}

impl Table {
    /// A table named `prefix:<id>` with room for about `max_keys` tracked keys
    /// (rounded up to whole slots of [`WAYS`]).
    pub fn new(prefix: &'static str, identity: &str, max_keys: u32) -> Self {
        let id = SipHasher13::new_with_keys(0x6d65_7368_6775_6172, 0x7461_626c_6569_6400)
            .hash(identity.as_bytes())
            .h1;
        let slots = max_keys.div_ceil(WAYS as u32).max(1);
        Self { prefix, id, slots }
    }

    /// Number of slots (shared-data keys).
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Bytes of one slot value for entries of type `E`.
    pub fn slot_bytes<E: Entry>(&self) -> usize {
        Slot::<E>::BYTES
    }

    /// The shared-data key of a slot.
    pub fn slot_key(&self, slot: u32) -> String {
        format!("{}:{:016x}:{}", self.prefix, self.id, slot)
    }

    /// Where `key` lands.
    pub fn locate(&self, key: &[u8]) -> Location {
        // Keyed by the table id: keys that pile into one slot of a table spread in another.
        let h = SipHasher13::new_with_keys(self.id, 0x6b65_7966_7072_696e).hash(key);
        let slot = u32::try_from(h.h2 % u64::from(self.slots.max(1))).unwrap_or(0);
        Location {
            slot,
            fingerprint: h.h1.max(1),
        }
    }

    /// Creates every missing slot (empty), so that later updates are all compare-and-swap.
    /// Returns how many were created. Call at configure time; existing slots are kept.
    pub fn prepare<E: Entry, S: SharedStore + ?Sized>(&self, store: &S) -> Result<u32, StoreError> {
        let empty = Slot::<E>::default().encode();
        let mut created = 0u32;
        for slot in 0..self.slots {
            let key = self.slot_key(slot);
            if store.get(&key)?.is_none() {
                store.set(&key, &empty, None)?;
                created = created.saturating_add(1);
            }
        }
        Ok(created)
    }

    /// The key's current state without changing anything (a fresh entry if it would be newly
    /// tracked, the overflow entry if its slot is full).
    pub fn read<E: Entry, S: SharedStore + ?Sized>(
        &self,
        store: &S,
        key: &[u8],
        now_ms: u64,
    ) -> Result<Outcome<E>, TableError> {
        let loc = self.locate(key);
        let got = store
            .get(&self.slot_key(loc.slot))
            .map_err(|_| TableError::Unavailable)?;
        let mut slot = got
            .map(|(bytes, _)| Slot::<E>::decode(&bytes))
            .unwrap_or_default();
        let (entry, place) = slot.entry_for(loc.fingerprint, now_ms);
        Ok(Outcome {
            value: *entry,
            place,
            attempts: 1,
        })
    }

    /// Applies `f` to the key's entry and stores the result if `f` says it changed.
    ///
    /// `f` may run several times (once per CAS attempt), each time on a fresh read; it must
    /// depend only on the entry it is given. It returns its result and whether to write.
    pub fn update<E, S, R, F>(
        &self,
        store: &S,
        key: &[u8],
        now_ms: u64,
        mut f: F,
    ) -> Result<Outcome<R>, TableError>
    where
        E: Entry,
        S: SharedStore + ?Sized,
        F: FnMut(&mut E) -> (R, bool),
    {
        let loc = self.locate(key);
        let slot_key = self.slot_key(loc.slot);
        for attempt in 1..=MAX_ATTEMPTS {
            let got = store.get(&slot_key).map_err(|_| TableError::Unavailable)?;
            let (mut slot, cas) = match got {
                Some((bytes, cas)) => (Slot::<E>::decode(&bytes), Some(cas)),
                None => (Slot::default(), None),
            };
            let (entry, place) = slot.entry_for(loc.fingerprint, now_ms);
            let (value, write) = f(entry);
            let outcome = Outcome {
                value,
                place,
                attempts: attempt,
            };
            if !write {
                // Decided on a consistent snapshot; nothing to commit.
                return Ok(outcome);
            }
            match store.set(&slot_key, &slot.encode(), cas) {
                Ok(()) => return Ok(outcome),
                Err(StoreError::CasMismatch) => continue,
                Err(StoreError::Unavailable) => return Err(TableError::Unavailable),
            }
        }
        Err(TableError::Contended)
    }
}

/// The slots created by several [`Table::prepare`] calls, added up; the first error stops.
pub fn sum_created(
    prepared: impl IntoIterator<Item = Result<u32, StoreError>>,
) -> Result<u32, StoreError> {
    prepared
        .into_iter()
        .try_fold(0u32, |total, created| Ok(total.saturating_add(created?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::MemStore;

    /// A test entry: a deadline; idle once passed.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct Until(u64);

    impl Entry for Until {
        const SIZE: usize = 8;
        fn decode(bytes: &[u8]) -> Self {
            Until(read_u64(bytes, 0))
        }
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.0.to_le_bytes());
        }
        fn is_idle(&self, now_ms: u64) -> bool {
            self.0 <= now_ms
        }
    }

    /// Keys that all land in slot 0 of a one-slot table.
    fn one_slot() -> Table {
        Table::new("t", "one", 1)
    }

    fn set_until(table: &Table, store: &MemStore, key: &str, now: u64, until: u64) -> Place {
        table
            .update(store, key.as_bytes(), now, |e: &mut Until| {
                e.0 = until;
                ((), true)
            })
            .unwrap()
            .place
    }

    fn read(table: &Table, store: &MemStore, key: &str, now: u64) -> (Until, Place) {
        let o = table.read::<Until, _>(store, key.as_bytes(), now).unwrap();
        (o.value, o.place)
    }

    #[test]
    fn slot_value_has_fixed_size() {
        let t = one_slot();
        let store = MemStore::default();
        set_until(&t, &store, "a", 0, 5);
        let (bytes, _) = store.get(&t.slot_key(0)).unwrap().unwrap();
        assert_eq!(bytes.len(), WAYS * 16 + 8);
        assert_eq!(t.slot_bytes::<Until>(), bytes.len());
    }

    #[test]
    fn keys_are_tracked_until_the_ways_are_full() {
        let t = one_slot();
        let store = MemStore::default();
        for k in ["a", "b", "c", "d"] {
            assert_eq!(set_until(&t, &store, k, 0, 100), Place::Tracked);
        }
        assert_eq!(set_until(&t, &store, "e", 0, 100), Place::Overflow);
        assert_eq!(read(&t, &store, "a", 0), (Until(100), Place::Tracked));
        assert_eq!(read(&t, &store, "f", 0), (Until(100), Place::Overflow));
    }

    #[test]
    fn new_keys_never_evict_an_active_entry() {
        let t = one_slot();
        let store = MemStore::default();
        set_until(&t, &store, "abuser", 0, 1_000);
        for i in 0..1000 {
            set_until(&t, &store, &format!("fresh-{i}"), 10, 20);
        }
        assert_eq!(
            read(&t, &store, "abuser", 10),
            (Until(1_000), Place::Tracked)
        );
    }

    #[test]
    fn idle_entries_are_taken_over_fresh() {
        let t = one_slot();
        let store = MemStore::default();
        for k in ["a", "b", "c", "d"] {
            set_until(&t, &store, k, 0, 50);
        }
        // At 60 all are idle: a new key takes a way and starts from a fresh entry.
        let (e, place) = read(&t, &store, "new", 60);
        assert_eq!((e, place), (Until(0), Place::Tracked));
        assert_eq!(set_until(&t, &store, "new", 60, 70), Place::Tracked);
    }

    #[test]
    fn undecodable_slot_reads_as_empty() {
        let t = one_slot();
        let store = MemStore::default();
        store.set(&t.slot_key(0), b"garbage", None).unwrap();
        assert_eq!(read(&t, &store, "a", 0), (Until(0), Place::Tracked));
        assert_eq!(set_until(&t, &store, "a", 0, 9), Place::Tracked);
        assert_eq!(read(&t, &store, "a", 0).0, Until(9));
    }

    #[test]
    fn prepare_creates_each_slot_once() {
        let t = Table::new("t", "prep", 10);
        let store = MemStore::default();
        assert_eq!(t.slots(), 3);
        assert_eq!(t.prepare::<Until, _>(&store), Ok(3));
        assert_eq!(t.prepare::<Until, _>(&store), Ok(0));
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn tables_with_different_identities_use_different_keys() {
        let a = Table::new("t", "route-a/limit", 8);
        let b = Table::new("t", "route-b/limit", 8);
        assert_ne!(a.slot_key(0), b.slot_key(0));
    }

    #[test]
    fn keys_spread_over_slots() {
        let t = Table::new("t", "spread", 4 * 64);
        let mut used = std::collections::HashSet::new();
        for i in 0..1000 {
            used.insert(t.locate(format!("k{i}").as_bytes()).slot);
        }
        assert_eq!(used.len(), 64);
    }
}
