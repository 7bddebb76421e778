//! The in-process store: one mutex over a hash map, taken once per batch. Bounded: expired
//! unsettled entries are swept when the map fills, and a map still full (of live
//! reservations and settled keys, which are never dropped) refuses new reservations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use alloy_primitives::{B256, U256};

use super::{Entry, State, StoreRefusal, KEPT};

/// The default replay store, local to one process: holds at most `max_entries` keys, so
/// replay protection is only as wide as the process (use a shared store across workers).
pub struct MemoryStore {
    max_entries: usize,
    map: Mutex<HashMap<B256, Entry>>,
    /// The `now` of the last sweep made because the map was full. A full map is swept at most
    /// once per clock second, so someone who fills it cannot make every request scan it.
    full_sweep_at: Mutex<Option<u64>>,
    /// Set by `close`: every later reservation is refused (`Unavailable`).
    closed: AtomicBool,
}

/// One reservation request.
pub struct Reserve<'a> {
    /// The replay key (`x402::replay`), never the signature bytes.
    pub key: B256,
    /// The caller's owner token; a later state change must present the same one.
    pub owner: &'a str,
    /// Unix seconds after which the reservation is dead and may be swept (`store::expires_at`).
    pub expires_at: u64,
    /// The permitted maximum in token base units for an upto payment; `None` for exact.
    pub cap: Option<U256>,
}

impl MemoryStore {
    /// An empty store that holds at most `max_entries` keys (live reservations and settled
    /// keys together) before it refuses with `Full`.
    pub fn new(max_entries: usize) -> Self {
        MemoryStore { max_entries, map: Mutex::new(HashMap::new()), full_sweep_at: Mutex::new(None), closed: AtomicBool::new(false) }
    }

    /// The bound given to `new`.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<B256, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written (every write is
        // one insert or remove), so a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves each key in order; `Ok(true)` reserved (or already the caller's), `Ok(false)`
    /// replay, `Err(Full | Expired)` refused. The same key twice in one batch: the second sees
    /// the first.
    pub fn reserve_many(&self, items: &[Reserve<'_>], now: u64) -> Vec<Result<bool, StoreRefusal>> {
        if self.is_closed() {
            return vec![Err(StoreRefusal::Unavailable); items.len()];
        }
        let mut map = self.lock();
        items
            .iter()
            .map(|r| {
                if let Some(e) = map.get(&r.key) {
                    if e.expires_at > now {
                        return Ok(matches!(&e.state, State::Reserved { owner, .. } if owner == r.owner));
                    }
                }
                if r.expires_at <= now {
                    // Dead on arrival: keeping it for no time would acknowledge a reservation
                    // that is not held, so it is refused (and an expired entry dropped).
                    map.remove(&r.key);
                    return Err(StoreRefusal::Expired);
                }
                if map.len() >= self.max_entries && !map.contains_key(&r.key) {
                    let mut swept = self.full_sweep_at.lock().unwrap_or_else(|p| p.into_inner());
                    if *swept != Some(now) {
                        map.retain(|_, e| e.expires_at > now);
                        *swept = Some(now);
                    }
                    if map.len() >= self.max_entries {
                        return Err(StoreRefusal::Full);
                    }
                }
                let state = State::Reserved { owner: r.owner.to_owned(), cap: r.cap, charged: U256::ZERO };
                map.insert(r.key, Entry { state, expires_at: r.expires_at });
                Ok(true)
            })
            .collect()
    }

    /// Runs `f` on the live entry of `key`.
    fn with_live<T>(&self, key: &B256, now: u64, f: impl FnOnce(&mut HashMap<B256, Entry>) -> Result<T, StoreRefusal>) -> Result<T, StoreRefusal> {
        let mut map = self.lock();
        match map.get(key) {
            Some(e) if e.expires_at > now => f(&mut map),
            Some(_) => {
                map.remove(key);
                Err(StoreRefusal::NotFound)
            }
            None => Err(StoreRefusal::NotFound),
        }
    }

    /// Marks the caller's reservation settled, and keeps it for as long as the store lives;
    /// returns the upto total charged (0 for exact).
    pub fn settle(&self, key: &B256, owner: &str, now: u64) -> Result<U256, StoreRefusal> {
        self.with_live(key, now, |map| {
            let e = map.get_mut(key).ok_or(StoreRefusal::NotFound)?;
            match &e.state {
                State::Reserved { owner: o, charged, .. } if o == owner => {
                    let total = *charged;
                    e.state = State::Settled { owner: owner.to_owned(), total };
                    e.expires_at = KEPT;
                    Ok(total)
                }
                State::Settled { owner: o, total } if o == owner => Ok(*total),
                _ => Err(StoreRefusal::NotOwner),
            }
        })
    }

    /// Drops the caller's reservation (nothing served, nothing broadcast).
    pub fn release(&self, key: &B256, owner: &str, now: u64) -> Result<(), StoreRefusal> {
        self.with_live(key, now, |map| match &map.get(key).ok_or(StoreRefusal::NotFound)?.state {
            State::Reserved { owner: o, .. } if o == owner => {
                map.remove(key);
                Ok(())
            }
            State::Settled { owner: o, .. } if o == owner => Err(StoreRefusal::Closed),
            _ => Err(StoreRefusal::NotOwner),
        })
    }

    /// Debits an upto session; returns the new total.
    pub fn charge(&self, key: &B256, owner: &str, amount: U256, now: u64) -> Result<U256, StoreRefusal> {
        self.with_live(key, now, |map| {
            let e = map.get_mut(key).ok_or(StoreRefusal::NotFound)?;
            match &mut e.state {
                State::Reserved { owner: o, cap, charged } if o == owner => {
                    let cap = cap.ok_or(StoreRefusal::NotUpto)?;
                    let total = charged.checked_add(amount).filter(|t| *t <= cap).ok_or(StoreRefusal::ExceedsCap)?;
                    *charged = total;
                    Ok(total)
                }
                State::Settled { owner: o, .. } if o == owner => Err(StoreRefusal::Closed),
                _ => Err(StoreRefusal::NotOwner),
            }
        })
    }

    /// The live state of a key, for inspection.
    pub fn get(&self, key: &B256, now: u64) -> Option<Entry> {
        self.lock().get(key).filter(|e| e.expires_at > now).cloned()
    }

    /// Drops every expired (unsettled) entry; returns how many remain.
    pub fn sweep(&self, now: u64) -> usize {
        let mut map = self.lock();
        map.retain(|_, e| e.expires_at > now);
        map.len()
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Forgets every entry and refuses every later reservation.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.clear();
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Keys held now, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is held, expired or not.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> B256 {
        B256::repeat_byte(n)
    }

    #[test]
    fn lifecycle() {
        let s = MemoryStore::new(10);
        let r = |k, o| Reserve { key: key(k), owner: o, expires_at: 100, cap: None };
        assert_eq!(s.reserve_many(&[r(1, "a"), r(1, "b"), r(1, "a")], 0), vec![Ok(true), Ok(false), Ok(true)]);
        assert_eq!(s.settle(&key(1), "b", 0), Err(StoreRefusal::NotOwner));
        assert_eq!(s.settle(&key(1), "a", 0), Ok(U256::ZERO));
        assert_eq!(s.release(&key(1), "a", 0), Err(StoreRefusal::Closed));
        assert_eq!(s.reserve_many(&[r(1, "a")], 0), vec![Ok(false)]);
        // Settled: kept past its expiry, a replay for ever.
        assert_eq!(s.get(&key(1), u64::MAX - 1).map(|e| e.expires()), Some(None));
        assert_eq!(s.reserve_many(&[r(1, "c")], 1_000_000), vec![Ok(false)]);
        assert_eq!(s.sweep(1_000_000), 1);
        // Unsettled and expired: gone, and reservable again.
        assert_eq!(s.reserve_many(&[r(2, "a")], 0), vec![Ok(true)]);
        assert_eq!(s.get(&key(2), 100), None);
        assert_eq!(s.reserve_many(&[r(2, "c")], 100), vec![Err(StoreRefusal::Expired)]);
        assert_eq!(s.reserve_many(&[Reserve { key: key(2), owner: "c", expires_at: 200, cap: None }], 100), vec![Ok(true)]);
    }

    #[test]
    fn full_of_settled_keys_refuses() {
        let s = MemoryStore::new(2);
        let r = |k| Reserve { key: key(k), owner: "o", expires_at: 10, cap: None };
        assert_eq!(s.reserve_many(&[r(1), r(2)], 0), vec![Ok(true), Ok(true)]);
        s.settle(&key(1), "o", 0).unwrap();
        s.settle(&key(2), "o", 0).unwrap();
        let later = Reserve { key: key(3), owner: "o", expires_at: 1000, cap: None };
        assert_eq!(s.reserve_many(&[later], 500), vec![Err(StoreRefusal::Full)]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn upto_charges_and_bounds() {
        let s = MemoryStore::new(10);
        let cap = Some(U256::from(10));
        assert_eq!(s.reserve_many(&[Reserve { key: key(2), owner: "o", expires_at: 100, cap }], 0), vec![Ok(true)]);
        assert_eq!(s.charge(&key(2), "o", U256::from(4), 0), Ok(U256::from(4)));
        assert_eq!(s.charge(&key(2), "o", U256::from(7), 0), Err(StoreRefusal::ExceedsCap));
        assert_eq!(s.charge(&key(2), "o", U256::from(6), 0), Ok(U256::from(10)));
        assert_eq!(s.charge(&key(2), "o", U256::MAX, 0), Err(StoreRefusal::ExceedsCap));
        assert_eq!(s.settle(&key(2), "o", 0), Ok(U256::from(10)));
        assert_eq!(s.charge(&key(2), "o", U256::from(1), 0), Err(StoreRefusal::Closed));
    }

    #[test]
    fn full_refuses_after_sweep() {
        let s = MemoryStore::new(2);
        let r = |k, exp| Reserve { key: key(k), owner: "o", expires_at: exp, cap: None };
        assert_eq!(s.reserve_many(&[r(1, 10), r(2, 100)], 0), vec![Ok(true), Ok(true)]);
        assert_eq!(s.reserve_many(&[r(3, 100)], 5), vec![Err(StoreRefusal::Full)]);
        assert_eq!(s.reserve_many(&[r(3, 100)], 10), vec![Ok(true)]);
    }
}
