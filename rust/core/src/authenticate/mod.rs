//! Authenticating many signatures at once: items whose claimed signer has a cached key are
//! checked together with one randomized multi-scalar multiplication (`secp_batch`), the rest
//! are recovered one by one, which teaches the cache their keys.
//!
//! The result for each item is exactly what `Signature::recover_address_from_prehash` gives
//! for it, so a caller cannot tell the two paths apart except by speed:
//! - an item the batch accepts gets `Ok(claimed)`: the batch equation holds only if recovery
//!   would return the cached key, whose address is `claimed` (up to 2⁻¹¹⁸ per check);
//! - every other item, however the batch judged it, is recovered, and gets recovery's answer.
//!
//! A batch that fails is narrowed down, cheapest first: a failed check names its single bad
//! item when there is one (`secp_batch::check` with `locate`), and that item is recovered at
//! once: only when recovery confirms it bad are the others of the range accepted (a named item
//! that recovers to its payer means the naming was wrong, and the range is split instead). With
//! two or more bad, a range is halved. Failed checks are paid from a budget per call; past it,
//! what is left is recovered.
//!
//! A call of 64 cached items or more is sampled, uniformly at random with OS randomness (so no
//! arrangement of bad items can keep them out). First 8 scouts are recovered, in every call:
//! two or more bad among them sends the whole batch to recovery with no curve work (a half-bad
//! batch escapes this with probability 9/256). Then a probe of 32 is checked, and two or more
//! bad in it does the same. When the probe runs depends on what the verifier has seen:
//! - wary (from construction, and after any call in which a check failed or a scout was bad):
//!   the probe goes first, so a batch of planted bad items that passes the scouts costs at most
//!   the probe's two sums over per-item recovery;
//! - trusting (after `CLEAN_CALLS` calls in a row whose checks all held and scouts were good):
//!   the rest of the batch is checked at once, and only if that check fails is the probe drawn
//!   from it. A clean batch then costs one pass over its points instead of two checks (the
//!   probe's keys and G multiplied twice); a bad batch that passes the scouts costs one pass
//!   more than in a wary call, and makes the verifier wary again.
//!
//! Which mode a call runs in changes what it costs, never a verdict.

mod cache;
mod sessions;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use alloy_primitives::{keccak256, Address};
use secp_batch::{Prepared, PublicKey, SigInput};

pub use cache::{KeyCache, KeyRejected};

/// True when this CPU lifts R with the vector square roots (`secp_batch::vector_roots`): a
/// matter of speed, reported by benchmarks.
pub fn vector_square_roots() -> bool {
    secp_batch::vector_roots()
}

use crate::error::Result;
use crate::primitives::Digest;
use crate::signature::Signature;

/// Default number of payer keys a verifier keeps (a gateway's active payers).
pub const DEFAULT_KEY_CACHE: usize = 16_384;

/// Below this many cached items a check costs about what recovering them does.
const MIN_BATCH: usize = 8;
/// Items checked apart, after the scouts, when there are at least `PROBE_FROM` (first in a wary
/// call, in a trusting one only once the check of the rest failed; see `run`; a smaller batch
/// is narrowed down within the budget): a uniform random sample, so that a batch whose bad
/// share is b passes its probe with at most one bad item with probability (1-b)^32 +
/// 32·b·(1-b)^31, about 8·10⁻⁹ at b = 1/2. A batch whose probe holds two or more bad items is
/// recovered whole.
const PROBE: usize = 32;
const PROBE_FROM: usize = 64;
/// Items recovered first, at random, in every call of `PROBE_FROM` or more: two or more bad
/// among them and the batch is recovered with no check at all (a half-bad batch escapes this
/// with probability 9/256), and what they cost is never wasted, since their verdicts are final.
const SCOUTS: usize = 8;
/// Calls in a row whose checks all held before a verifier trusts its traffic (see the module
/// docs): long enough that an adversary who plants bad items must do so in more than one
/// batch in `CLEAN_CALLS + 1` to meet unprobed checks.
pub const CLEAN_CALLS: u32 = 8;
/// A range this small is recovered rather than checked again.
const LEAF: usize = 2;
/// Points of failed checks allowed, per point of one check over the whole batch, before the
/// rest is recovered: enough to name a few bad items (a failed locating check is two passes;
/// each half after a split, two more), and a bound on what planted bad items can cost (a point
/// is about a sixth of a recovery).
const BUDGET_PASSES: u64 = 4;

/// One signature to authenticate: its digest, the signature parsed under the policy, and the
/// signer the payment claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigItem {
    /// The digest that was signed (the EIP-712 signing hash).
    pub digest: Digest,
    /// The signature, parsed under the payment's `SignaturePolicy`.
    pub signature: Signature,
    /// The signer the payment names (`authorization.from` / `permit2Authorization.from`).
    pub claimed: Address,
    /// When set, a signature authenticated for `claimed` is remembered until the deadline, and
    /// one remembered is accepted with no curve work while the deadline is not past.
    pub session: Option<Session>,
}

/// The clock of the verification, and the authorization's deadline (validBefore / deadline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// The verification's clock (unix seconds).
    pub now: u64,
    /// The authorization's deadline (unix seconds): nothing about it is remembered past this.
    pub expires: u64,
}

/// Deterministic work counters (what was done, not how long it took).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lookups of a claimed payer that found its key.
    pub key_cache_hits: u64,
    /// Lookups of a claimed payer that found none.
    pub key_cache_misses: u64,
    /// Keys held now.
    pub key_cache_size: u64,
    /// Items accepted by a batch check.
    pub batch_verified: u64,
    /// Items recovered one by one (uncached, unbatchable, bad or past the budget).
    pub recovered: u64,
    /// Batch checks run.
    pub batch_checks: u64,
    /// Batch checks that failed (some item in them did not recover to its payer).
    pub failed_checks: u64,
    /// Ranges split in two after a failed check named no single bad item.
    pub bisections: u64,
    /// Bad items a failed check named and recovery confirmed.
    pub located: u64,
    /// Points multiplied in batch checks (items + keys + G, per sum).
    pub points_multiplied: u64,
    /// Items recovered because the failure budget ran out, or the scouts or the probe found the
    /// batch bad.
    pub fallbacks: u64,
    /// Items accepted from the session cache (no curve work).
    pub session_hits: u64,
    /// Signatures the session cache holds now.
    pub session_size: u64,
}

#[derive(Default)]
struct Counters {
    batch_verified: AtomicU64,
    recovered: AtomicU64,
    batch_checks: AtomicU64,
    failed_checks: AtomicU64,
    bisections: AtomicU64,
    located: AtomicU64,
    points_multiplied: AtomicU64,
    fallbacks: AtomicU64,
    session_hits: AtomicU64,
}

fn bump(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

/// A batch check: `secp_batch::check`, or in this module's tests one that lies about which
/// item is bad.
type Checker = fn(&[Prepared], &[u32], &[PublicKey], bool) -> std::result::Result<secp_batch::Outcome, secp_batch::Error>;

/// The key cache and the counters one verifier shares across calls and threads.
pub struct Authenticator {
    keys: KeyCache,
    sessions: sessions::Sessions,
    counters: Counters,
    checker: Checker,
    /// Calls in a row whose checks all held, up to `CLEAN_CALLS` (a cost heuristic: races
    /// between threads only move it, and it never decides a verdict).
    clean_calls: AtomicU32,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("keys", &self.keys).field("stats", &self.stats()).finish()
    }
}

impl Authenticator {
    /// `key_cache` keys at most, and as many remembered session signatures; 0 turns both off
    /// (every item is recovered).
    pub fn new(key_cache: usize) -> Self {
        Authenticator {
            keys: KeyCache::new(key_cache),
            sessions: sessions::Sessions::new(key_cache),
            counters: Counters::default(),
            checker: secp_batch::check,
            clean_calls: AtomicU32::new(0),
        }
    }

    /// Starts trusting now, as after `CLEAN_CALLS` clean calls (for tests and fuzzing of that
    /// mode; a verifier reaches it on its own).
    #[doc(hidden)]
    pub fn trust_history(&self) {
        self.clean_calls.store(CLEAN_CALLS, Ordering::Relaxed);
    }

    /// True while the probe goes first (see the module docs).
    pub fn wary(&self) -> bool {
        self.clean_calls.load(Ordering::Relaxed) < CLEAN_CALLS
    }

    fn record_call(&self, clean: bool) {
        if clean {
            let _ = self.clean_calls.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| (c < CLEAN_CALLS).then_some(c + 1));
        } else {
            self.clean_calls.store(0, Ordering::Relaxed);
        }
    }

    /// The payer-key cache (to supply keys the caller knows, or to look one up).
    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// The work counters since construction.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            key_cache_hits: self.keys.hits(),
            key_cache_misses: self.keys.misses(),
            key_cache_size: self.keys.len() as u64,
            batch_verified: get(&c.batch_verified),
            recovered: get(&c.recovered),
            batch_checks: get(&c.batch_checks),
            failed_checks: get(&c.failed_checks),
            bisections: get(&c.bisections),
            located: get(&c.located),
            points_multiplied: get(&c.points_multiplied),
            fallbacks: get(&c.fallbacks),
            session_hits: get(&c.session_hits),
            session_size: self.sessions.len() as u64,
        }
    }

    /// For each item, what `item.signature.recover_address_from_prehash(&item.digest)` returns.
    pub fn authenticate(&self, items: &[SigItem]) -> Vec<Result<Address>> {
        let mut out: Vec<Option<Result<Address>>> = vec![None; items.len()];
        let mut batch = Batch::default();
        if self.keys.capacity() > 0 {
            for (i, item) in items.iter().enumerate() {
                if item.session.is_some_and(|s| self.sessions.known(item, s.now)) {
                    bump(&self.counters.session_hits, 1);
                    out[i] = Some(Ok(item.claimed));
                    continue;
                }
                if let Some(key) = self.keys.get(&item.claimed) {
                    batch.add(i, item.claimed, key);
                }
            }
        }
        if batch.members.len() >= MIN_BATCH {
            self.run(items, &mut batch, &mut out);
        }
        for (i, slot) in out.iter_mut().enumerate() {
            if slot.is_none() {
                *slot = Some(self.recover(&items[i]));
            }
        }
        let out: Vec<Result<Address>> = out.into_iter().map(|r| r.expect("every item resolved")).collect();
        for (item, r) in items.iter().zip(&out) {
            if let (Some(s), Ok(a)) = (item.session, r) {
                if *a == item.claimed {
                    self.sessions.remember(item, s.expires);
                }
            }
        }
        out
    }

    /// Recovery, as the per-item path does it; a key that recovers to the claimed payer is
    /// learned.
    fn recover(&self, item: &SigItem) -> Result<Address> {
        bump(&self.counters.recovered, 1);
        let xy = item.signature.recover_public_key_from_prehash(&item.digest)?;
        let signer = Address::from_slice(&keccak256(xy)[12..]);
        if signer == item.claimed && self.keys.capacity() > 0 {
            if let Some(key) = PublicKey::from_xy(&xy) {
                self.keys.learn(signer, key);
            }
        }
        Ok(signer)
    }

    fn run(&self, items: &[SigItem], batch: &mut Batch, out: &mut [Option<Result<Address>>]) {
        let m = batch.members.len();
        let keys = &batch.keys;
        let full = BUDGET_PASSES * (m + keys.len() + 1) as u64;
        let mut budget = full;
        let mut clean = true;
        let mut rest = if m < PROBE_FROM {
            // A small batch is its own probe: narrowed down within the budget.
            self.prepare(items, &batch.members)
        } else {
            // The scouts, in every call: a half-bad batch is recovered before any curve work
            // but for a 9/256 chance, whatever the verifier's history.
            if !shuffle_front(&mut batch.members, SCOUTS + PROBE) {
                return; // no randomness: recovery decides each item
            }
            match self.scout(items, batch.members[..SCOUTS].iter(), out) {
                0 => {}
                1 => clean = false,
                _ => {
                    bump(&self.counters.fallbacks, (m - SCOUTS) as u64);
                    self.record_call(false);
                    return;
                }
            }
            if self.wary() || !clean {
                // The probe next, and only its items prepared.
                let probe = self.prepare(items, &batch.members[SCOUTS..SCOUTS + PROBE]);
                if !self.probe_passes(items, &probe, m - SCOUTS - PROBE, keys, &mut budget, out) {
                    return;
                }
                self.prepare(items, &batch.members[SCOUTS + PROBE..])
            } else {
                let mut all = self.prepare(items, &batch.members[SCOUTS..]);
                match self.check_all(items, &all, keys, out) {
                    Whole::Unchecked => return,
                    Whole::Held => {
                        self.record_call(true);
                        return;
                    }
                    // Not paid from the budget: it stands for the probe a wary call would have
                    // checked first, and the narrowing that follows gets what a wary call gets.
                    Whole::Failed => clean = false,
                }
                // Some item is bad: the probe, drawn from the batch now, decides as in a wary
                // call.
                if !shuffle_front(&mut all, PROBE) {
                    return;
                }
                let probe: Vec<(Member, Prepared)> = all.drain(..PROBE.min(all.len())).collect();
                if !self.probe_passes(items, &probe, all.len(), keys, &mut budget, out) {
                    return;
                }
                all
            }
        };
        // Items of one payer side by side: a sub-range after a split then names few keys.
        rest.sort_by_key(|(m, _)| m.key);
        for chunk in rest.chunks(secp_batch::MAX_LOCATE) {
            self.resolve(items, chunk, keys, &mut budget, out);
        }
        self.record_call(clean && budget == full);
    }

    /// Checks the probe; when it holds two or more bad items, the `rest` items after it are left
    /// to recovery (counted as fallbacks), the call is recorded as not clean, and false.
    fn probe_passes(
        &self,
        items: &[SigItem],
        probe: &[(Member, Prepared)],
        rest: usize,
        keys: &[PublicKey],
        budget: &mut u64,
        out: &mut [Option<Result<Address>>],
    ) -> bool {
        if self.check(items, probe, keys, budget, out, true) {
            return true;
        }
        bump(&self.counters.fallbacks, rest as u64);
        self.record_call(false);
        false
    }

    /// Recovers the scouts (their verdicts are final); returns how many did not recover to
    /// their payer.
    fn scout<'a>(&self, items: &[SigItem], scouts: impl Iterator<Item = &'a Member>, out: &mut [Option<Result<Address>>]) -> usize {
        let mut bad = 0;
        for m in scouts {
            let verdict = self.recover(&items[m.item]);
            bad += usize::from(verdict.as_ref().ok() != Some(&items[m.item].claimed));
            out[m.item] = Some(verdict);
        }
        bad
    }

    /// One check of every prepared item, not locating (a trusting call's first step): accepts
    /// them all when it holds, none when it fails.
    fn check_all(&self, items: &[SigItem], all: &[(Member, Prepared)], keys: &[PublicKey], out: &mut [Option<Result<Address>>]) -> Whole {
        match self.checked(items, all, keys, false, out) {
            None => Whole::Unchecked,
            Some(o) if o.holds => Whole::Held,
            Some(_) => Whole::Failed,
        }
    }

    /// One check of `range`, counted; when it holds, every item of it is accepted. None when no
    /// check could be made (no randomness or no memory).
    fn checked(
        &self,
        items: &[SigItem],
        range: &[(Member, Prepared)],
        keys: &[PublicKey],
        locate: bool,
        out: &mut [Option<Result<Address>>],
    ) -> Option<secp_batch::Outcome> {
        let prepared: Vec<Prepared> = range.iter().map(|(_, p)| *p).collect();
        let key_of: Vec<u32> = range.iter().map(|(m, _)| m.key).collect();
        let outcome = (self.checker)(&prepared, &key_of, keys, locate).ok()?;
        bump(&self.counters.batch_checks, 1);
        bump(&self.counters.points_multiplied, outcome.points as u64);
        if outcome.holds {
            for (m, _) in range {
                out[m.item] = Some(Ok(items[m.item].claimed));
            }
            bump(&self.counters.batch_verified, range.len() as u64);
        } else {
            bump(&self.counters.failed_checks, 1);
        }
        Some(outcome)
    }

    /// Prepares members for checking; one that cannot be (r is no point's x) is left to
    /// recovery, which gives its exact error.
    fn prepare(&self, items: &[SigItem], members: &[Member]) -> Vec<(Member, Prepared)> {
        let inputs: Vec<SigInput> = members
            .iter()
            .map(|m| {
                let item = &items[m.item];
                SigInput {
                    r: item.signature.r().to_be_bytes::<32>(),
                    s: item.signature.s().to_be_bytes::<32>(),
                    z: *item.digest.as_bytes(),
                    y_odd: item.signature.y_parity(),
                }
            })
            .collect();
        // Out of memory: none prepared, so recovery decides each item.
        let prepared = secp_batch::prepare(&inputs).unwrap_or_default();
        members.iter().zip(prepared).filter_map(|(m, p)| p.map(|p| (*m, p))).collect()
    }

    /// Checks `range`, narrowing a failure down until every item is accepted or left to
    /// recovery; returns false when the range held two or more bad items that were not
    /// narrowed down (only asked for the probe: `probe = true` stops there).
    fn check(
        &self,
        items: &[SigItem],
        range: &[(Member, Prepared)],
        keys: &[PublicKey],
        budget: &mut u64,
        out: &mut [Option<Result<Address>>],
        probe: bool,
    ) -> bool {
        if range.len() <= LEAF {
            return true; // left to recovery
        }
        let Some(outcome) = self.checked(items, range, keys, range.len() <= secp_batch::MAX_LOCATE, out) else {
            return true; // recovery decides each item
        };
        if outcome.holds {
            return true;
        }
        *budget = budget.saturating_sub(outcome.points as u64);
        let mut rest = std::borrow::Cow::Borrowed(range);
        if let Some(b) = outcome.bad {
            // Never taken on trust: the named item is recovered now, and only if recovery
            // refuses it (or names another signer) are the others accepted.
            let (named, _) = range[b];
            let verdict = self.recover(&items[named.item]);
            let confirmed = verdict.as_ref().ok() != Some(&items[named.item].claimed);
            out[named.item] = Some(verdict);
            if confirmed {
                bump(&self.counters.located, 1);
                for (i, (m, _)) in range.iter().enumerate() {
                    if i != b {
                        out[m.item] = Some(Ok(items[m.item].claimed));
                    }
                }
                bump(&self.counters.batch_verified, range.len() as u64 - 1);
                return true;
            }
            // The named item is good, so the naming was wrong (two or more bad items, at the
            // 2⁻¹⁰⁸ chance): the rest is narrowed down as if nothing had been named.
            rest = std::borrow::Cow::Owned(range.iter().enumerate().filter(|&(i, _)| i != b).map(|(_, x)| *x).collect());
        }
        let range = &rest[..];
        if probe || *budget == 0 {
            bump(&self.counters.fallbacks, range.len() as u64);
            return false;
        }
        bump(&self.counters.bisections, 1);
        let (left, right) = range.split_at(range.len() / 2);
        self.resolve(items, left, keys, budget, out);
        self.resolve(items, right, keys, budget, out);
        true
    }

    fn resolve(&self, items: &[SigItem], range: &[(Member, Prepared)], keys: &[PublicKey], budget: &mut u64, out: &mut [Option<Result<Address>>]) {
        if *budget == 0 {
            bump(&self.counters.fallbacks, range.len() as u64);
            return;
        }
        self.check(items, range, keys, budget, out, false);
    }
}

/// What a trusting call's one check of everything found.
enum Whole {
    /// Every item accepted.
    Held,
    /// Some item is bad; none accepted.
    Failed,
    /// No check could be made (no randomness or no memory): recovery decides each item.
    Unchecked,
}

/// Moves a uniform random sample of `k` (or all, when fewer) to the front: a partial
/// Fisher-Yates with OS randomness, so that no arrangement of bad items can keep them out of
/// it. False when the OS source failed.
fn shuffle_front<T>(v: &mut [T], k: usize) -> bool {
    let n = v.len();
    for i in 0..k.min(n) {
        let Ok(r) = secp_batch::random_u64() else { return false };
        let j = i + (r % (n - i) as u64) as usize;
        v.swap(i, j);
    }
    true
}

#[derive(Clone, Copy, Debug)]
struct Member {
    item: usize,
    key: u32,
}

/// The cached items of one call and the distinct keys they name.
#[derive(Default)]
struct Batch {
    members: Vec<Member>,
    keys: Vec<PublicKey>,
    index: HashMap<Address, u32>,
}

impl Batch {
    fn add(&mut self, item: usize, payer: Address, key: PublicKey) {
        let keys = &mut self.keys;
        let k = *self.index.entry(payer).or_insert_with(|| {
            keys.push(key);
            (keys.len() - 1) as u32
        });
        self.members.push(Member { item, key: k });
    }
}

#[cfg(test)]
mod tests;
