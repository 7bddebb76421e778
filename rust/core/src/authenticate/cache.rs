//! The payer-key cache: address -> public key, learned only from keys that recovery produced
//! for a signature whose signer matched the claimed payer, or handed in and checked here.
//!
//! Never filled from failed or mismatched recoveries: those keys are whatever an attacker's
//! signature bytes recover to, and letting them in would let anyone churn the cache.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use alloy_primitives::{keccak256, Address};
use lru::LruCache;
use secp_batch::PublicKey;

/// Shards, so threads verifying at once rarely wait on one lock.
const SHARDS: usize = 16;

/// Why a caller-supplied key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRejected {
    /// Not a point on secp256k1 (or a coordinate not below p).
    NotOnCurve,
    /// keccak256 of the key does not end in the address.
    AddressMismatch,
}

impl std::fmt::Display for KeyRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyRejected::NotOnCurve => "the public key is not a point on secp256k1",
            KeyRejected::AddressMismatch => "the public key does not hash to that address",
        })
    }
}

impl std::error::Error for KeyRejected {}

/// Bounded (least recently used out first), thread-safe, and counted.
pub struct KeyCache {
    shards: Vec<Mutex<LruCache<Address, PublicKey>>>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").field("capacity", &self.capacity).field("len", &self.len()).finish()
    }
}

impl KeyCache {
    /// A cache of at most `capacity` keys; 0 keeps none (every lookup misses).
    pub fn new(capacity: usize) -> Self {
        let shards = if capacity == 0 { 0 } else { SHARDS.min(capacity) };
        // Shard capacities add up to `capacity` exactly.
        let shards = (0..shards)
            .map(|i| {
                let cap = capacity / shards + usize::from(i < capacity % shards);
                Mutex::new(LruCache::new(NonZeroUsize::new(cap).expect("capacity >= shards")))
            })
            .collect();
        KeyCache { shards, capacity, hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    /// The most keys it holds (0: off).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn shard(&self, a: &Address) -> Option<&Mutex<LruCache<Address, PublicKey>>> {
        // Addresses are hashes: any byte spreads them evenly.
        let n = self.shards.len();
        (n > 0).then(|| &self.shards[a.0[19] as usize % n])
    }

    /// The key of `payer`, counting a hit or a miss.
    pub fn get(&self, payer: &Address) -> Option<PublicKey> {
        let found = self.shard(payer).and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).get(payer).copied());
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Remembers the key recovery produced for `payer`. Only `authenticate` calls this, and only
    /// after the recovered address equalled the claimed payer.
    pub(crate) fn learn(&self, payer: Address, key: PublicKey) {
        if let Some(s) = self.shard(&payer) {
            s.lock().unwrap_or_else(|p| p.into_inner()).put(payer, key);
        }
    }

    /// Adds a key the caller knows (64 bytes x || y, or 65 with the 0x04 prefix), after checking
    /// it is on the curve and hashes to `payer`.
    pub fn insert(&self, payer: Address, key: &[u8]) -> Result<(), KeyRejected> {
        let xy: &[u8; 64] = match key.len() {
            64 => key.try_into().expect("64 bytes"),
            65 if key[0] == 4 => key[1..].try_into().expect("64 bytes"),
            _ => return Err(KeyRejected::NotOnCurve),
        };
        let point = PublicKey::from_xy(xy).ok_or(KeyRejected::NotOnCurve)?;
        if Address::from_slice(&keccak256(xy)[12..]) != payer {
            return Err(KeyRejected::AddressMismatch);
        }
        self.learn(payer, point);
        Ok(())
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups that found a key.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that found none.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(i: u8) -> ([u8; 64], Address) {
        let mut b = [0u8; 32];
        b[31] = i + 1;
        let sk = secp256k1::SecretKey::from_secret_bytes(b).unwrap();
        let full = secp256k1::PublicKey::from_secret_key(&sk).serialize_uncompressed();
        let xy: [u8; 64] = full[1..].try_into().unwrap();
        (xy, Address::from_slice(&keccak256(xy)[12..]))
    }

    #[test]
    fn bounded_least_recent_out_and_counted() {
        let c = KeyCache::new(3);
        let keys: Vec<_> = (0..5).map(key_of).collect();
        // Capacity 3 spreads over 3 shards of 1: fill each shard's slot by address.
        for (xy, a) in &keys {
            c.insert(*a, xy).unwrap();
        }
        assert!(c.len() <= 3);
        let (hits0, misses0) = (c.hits(), c.misses());
        let present = keys.iter().filter(|(_, a)| c.get(a).is_some()).count();
        assert_eq!(present, c.len());
        assert_eq!(c.hits() - hits0, present as u64);
        assert_eq!(c.misses() - misses0, (5 - present) as u64);
    }

    #[test]
    fn lru_order_within_one_shard() {
        let c = KeyCache::new(1);
        let (k0, a0) = key_of(0);
        let (k1, a1) = key_of(1);
        c.insert(a0, &k0).unwrap();
        c.insert(a1, &k1).unwrap();
        assert_eq!(c.len(), 1);
        assert!(c.get(&a0).is_none());
        assert_eq!(c.get(&a1).unwrap().as_xy(), &k1);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let c = KeyCache::new(0);
        let (k, a) = key_of(0);
        c.insert(a, &k).unwrap();
        assert_eq!(c.len(), 0);
        assert!(c.get(&a).is_none());
        assert_eq!((c.hits(), c.misses()), (0, 1));
    }

    #[test]
    fn supplied_keys_are_checked() {
        let c = KeyCache::new(8);
        let (k, a) = key_of(0);
        let (_, other) = key_of(1);
        assert_eq!(c.insert(other, &k), Err(KeyRejected::AddressMismatch));
        let mut off = k;
        off[63] ^= 1;
        assert_eq!(c.insert(a, &off), Err(KeyRejected::NotOnCurve));
        assert_eq!(c.insert(a, &k[..63]), Err(KeyRejected::NotOnCurve));
        let mut prefixed = vec![4u8];
        prefixed.extend_from_slice(&k);
        c.insert(a, &prefixed).unwrap();
        prefixed[0] = 3;
        assert_eq!(c.insert(a, &prefixed), Err(KeyRejected::NotOnCurve));
        assert_eq!(c.len(), 1);
    }
}
