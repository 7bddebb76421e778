//! Signatures already authenticated, remembered until their authorization's deadline, so an
//! upto session's authorization presented again needs no curve work at all.
//!
//! An entry is one signature-level fact: this exact signature over this exact digest recovers
//! to this payer. Recovery is a function of (digest, signature), so the fact never turns false;
//! it is dropped at the deadline only so that nothing outlives the authorization. It skips no
//! other check: the caller runs every term check (time, amount, session terms) before asking,
//! and the store reservation after.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use alloy_primitives::{Address, B256};
use lru::LruCache;

/// The exact signed bytes and signer an entry vouches for.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    digest: B256,
    rsv: [u8; 65],
    claimed: Address,
}

pub(super) struct Sessions {
    entries: Option<Mutex<LruCache<Key, u64>>>,
}

impl Sessions {
    pub(super) fn new(capacity: usize) -> Self {
        Sessions { entries: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))) }
    }

    fn key(item: &super::SigItem) -> Key {
        Key { digest: item.digest.0, rsv: item.signature.to_rsv_bytes(), claimed: item.claimed }
    }

    /// True when this signature was authenticated for this payer and its deadline has not
    /// passed at `now`.
    pub(super) fn known(&self, item: &super::SigItem, now: u64) -> bool {
        let Some(entries) = &self.entries else { return false };
        let key = Self::key(item);
        let mut entries = entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&key) {
            Some(&expires) if now <= expires => true,
            Some(_) => {
                entries.pop(&key);
                false
            }
            None => false,
        }
    }

    /// Remembers a signature that authenticated for its claimed payer, until `expires`.
    pub(super) fn remember(&self, item: &super::SigItem, expires: u64) {
        if let Some(entries) = &self.entries {
            entries.lock().unwrap_or_else(|p| p.into_inner()).put(Self::key(item), expires);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.lock().unwrap_or_else(|p| p.into_inner()).len())
    }
}
