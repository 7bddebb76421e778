//! The verdict cache, for upto sessions resumed: a payment whose exact bytes were verified
//! before under the same requirements takes its remembered verdict, with no reading, hashing or
//! curve work, and only the time terms checked again (`terms::Clock`).
//!
//! Why this is exact: every check of the read and terms stages except the time checks is a
//! function of the payload's bytes, the requirements and the pipeline's configuration (fixed for
//! its life), and authentication is a function of the digest and the signature, so for the same
//! key those checks give what they gave. Only verdicts that passed every check up to and
//! including authentication are kept, so reused, the first check that can fail is a time check,
//! and `Clock::check` makes them in the terms stage's order with its codes and messages. The
//! stages after authentication (chain reads, the reservation) run on a remembered item as on any
//! other: nothing here stands in for a store.
//!
//! An entry never outlives its authorization's deadline (it is dropped when found past it), its
//! key is compared byte for byte (the hash only finds it), and the cache is bounded in entries
//! and in the size of a payload it keeps.
//!
//! A verdict is kept the second time its payment is seen, not the first: most payments are seen
//! once (an exact payment, a session's opening), and copying each into the cache would cost them
//! about 5% of their verification. A doorkeeper of hashes (4-way buckets of one word a slot, no
//! allocation; a full bucket gives up its slots in turn) remembers what was seen once: a payment
//! is kept late only when more than 4 others seen once since share its bucket.

use std::hash::BuildHasher;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

use super::super::config::VerifyConfig;
use super::super::payload::PaymentRequirements;
use super::super::verdict::Verdict;
use super::{Context, Item, Prepared, Stage};

/// Default number of verdicts a verifier keeps.
pub const DEFAULT_VERDICT_CACHE: usize = 4096;
/// Payloads longer than this are not remembered (an x402 header is about 1.2 KB), which
/// bounds the cache's memory to about capacity × 4.5 KB.
pub const MAX_REMEMBERED_BYTES: usize = 4096;
/// Locks, so that threads preparing one batch seldom wait on each other.
const SHARDS: usize = 16;
/// Slots of a doorkeeper bucket.
const WAYS: usize = 4;

struct Entry {
    bytes: Box<[u8]>,
    requirements: PaymentRequirements,
    verdict: Verdict,
    prepared: Prepared,
}

/// What the `Remember` stage needs to keep an item's verdict: its key, bytes and requirements.
#[derive(Clone, Debug)]
pub struct Pending {
    key: u64,
    bytes: Box<[u8]>,
    requirements: PaymentRequirements,
}

/// Work counters of the verdict cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecallStats {
    /// Payments that took a remembered verdict.
    pub hits: u64,
    /// Verdicts held now.
    pub size: u64,
}

/// Verdicts remembered by (payload bytes, requirements), least recently used out.
pub struct Recall {
    shards: Box<[Mutex<LruCache<u64, Entry>>]>,
    /// The keys of payments seen once, in buckets by the key's low bits.
    seen: Box<[[AtomicU64; WAYS]]>,
    /// Which slot a full bucket gives up next (shared: any spread will do).
    evict: AtomicU64,
    hasher: foldhash::quality::RandomState,
    hits: AtomicU64,
}

impl std::fmt::Debug for Recall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recall").field("stats", &self.stats()).finish()
    }
}

impl Recall {
    /// A cache of `capacity` verdicts at most (at least 1).
    pub fn new(capacity: usize) -> Self {
        let shards = SHARDS.min(capacity.max(1));
        let per = NonZeroUsize::new(capacity.max(1).div_ceil(shards)).unwrap_or(NonZeroUsize::MIN);
        // Twice the entries, and never fewer than 1,024 slots (8 KB): a small cache still sees
        // which of a batch's payments come back.
        let buckets = (capacity.max(1) * 2 / WAYS).max(256).next_power_of_two();
        Recall {
            shards: (0..shards).map(|_| Mutex::new(LruCache::new(per))).collect(),
            seen: (0..buckets).map(|_| std::array::from_fn(|_| AtomicU64::new(0))).collect(),
            evict: AtomicU64::new(0),
            hasher: Default::default(),
            hits: AtomicU64::new(0),
        }
    }

    /// The counters.
    pub fn stats(&self) -> RecallStats {
        let size = (0..self.shards.len()).map(|i| self.lock(i).len() as u64).sum();
        RecallStats { hits: self.hits.load(Ordering::Relaxed), size }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, LruCache<u64, Entry>> {
        // A panic elsewhere while holding the lock leaves entries that are each whole.
        self.shards[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shard(&self, key: u64) -> usize {
        (key % self.shards.len() as u64) as usize
    }

    pub(super) fn key(&self, bytes: &[u8], req: &PaymentRequirements) -> u64 {
        self.hasher.hash_one((bytes, req))
    }

    /// The item a remembered verdict gives at `now`, if there is one for exactly these bytes
    /// and requirements and its deadline has not passed.
    pub(super) fn get(&self, key: u64, bytes: &[u8], req: &PaymentRequirements, now: u64, cfg: &VerifyConfig) -> Option<Item> {
        let (verdict, mut prepared) = {
            let mut shard = self.lock(self.shard(key));
            let entry = shard.get(&key)?;
            if *entry.bytes != *bytes || entry.requirements != *req {
                return None;
            }
            if now > entry.prepared.expiry {
                shard.pop(&key);
                return None;
            }
            (entry.verdict.clone(), entry.prepared)
        };
        self.hits.fetch_add(1, Ordering::Relaxed);
        prepared.session.now = now;
        let mut item = Item::from_verdict(verdict);
        match prepared.clock.check(now, req, cfg) {
            Ok(()) => {
                item.prepared = Some(prepared);
                item.authenticated = true;
            }
            Err((code, message)) => {
                // As the terms stage leaves a payment refused at a time check: the signature
                // step was not reached.
                item.verdict.signed = None;
                item.verdict.fail(code, message);
            }
        }
        Some(item)
    }

    /// What to remember an item by: on its second sight, when it is small enough to keep.
    pub(super) fn pending(&self, key: u64, bytes: &[u8], req: &PaymentRequirements) -> Option<Box<Pending>> {
        (self.seen_before(key) && bytes.len() <= MAX_REMEMBERED_BYTES).then(|| Box::new(Pending { key, bytes: bytes.into(), requirements: req.clone() }))
    }

    /// Whether `key` was seen before; marks it seen. (Races between threads only make a
    /// payment wait one more sight, or be kept one early: never a wrong verdict.)
    fn seen_before(&self, key: u64) -> bool {
        // 0 marks an empty slot.
        let key = key.max(1);
        let bucket = &self.seen[(key as usize) & (self.seen.len() - 1)];
        if bucket.iter().any(|slot| slot.load(Ordering::Relaxed) == key) {
            return true;
        }
        let slot = match bucket.iter().find(|slot| slot.load(Ordering::Relaxed) == 0) {
            Some(empty) => empty,
            None => &bucket[(self.evict.fetch_add(1, Ordering::Relaxed) % WAYS as u64) as usize],
        };
        slot.store(key, Ordering::Relaxed);
        false
    }

    fn put(&self, pending: Pending, verdict: &Verdict, prepared: Prepared) {
        let Pending { key, bytes, requirements } = pending;
        let entry = Entry { bytes, requirements, verdict: verdict.clone(), prepared };
        self.lock(self.shard(key)).put(key, entry);
    }
}

/// The stage that fills the verdict cache: placed right after authentication, it keeps the
/// verdict of each item that passed everything so far and was not remembered already.
#[derive(Clone, Debug)]
pub struct Remember(pub Arc<Recall>);

impl Stage for Remember {
    fn name(&self) -> &'static str {
        "remember"
    }

    fn run(&self, items: &mut [Item], _cx: &Context) {
        for item in items.iter_mut() {
            let Some(pending) = item.recall.take() else { continue };
            if let (true, true, Some(prepared)) = (item.is_live(), item.authenticated, item.prepared) {
                self.0.put(*pending, &item.verdict, prepared);
            }
        }
    }
}
