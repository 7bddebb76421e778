//! Stage 5, reserve: a `Reservation` record per valid payment, its outcome decided here (the
//! replay reason per nonce space, the upto cap), whichever store keeps it. The in-process store
//! is reserved inside the pipeline (`ReserveInMemory`); the Python stores (SQLite, Redis) take
//! the records of a batch in one call and hand back one outcome each (`conclude`).
//!
//! Owner tokens are opaque and random per reservation (`r:` + 128 random bits), never derived
//! from the payment: two concurrent copies of one header must not look like one payment's
//! retry. A caller that retries on purpose brings an idempotency id: the owner is then `i:` +
//! that id, and the same id reserves the same key again as its own.

use std::sync::Arc;

use alloy_primitives::{B256, U256};

use super::{Context, Item, Stage};
use crate::error::Code;
use crate::store::memory::{MemoryStore, Reserve};
use crate::store::{expires_at, StoreRefusal, MAX_OWNER_BYTES};
use crate::x402::replay::NonceSpace;
use crate::x402::verdict::{Scheme, Verdict};

/// The prefix of a random owner token.
pub const RANDOM_OWNER_PREFIX: &str = "r:";
/// The prefix of an owner token made from the caller's idempotency id.
pub const IDEMPOTENT_OWNER_PREFIX: &str = "i:";
/// The longest idempotency id, in UTF-8 bytes (the owner token adds its prefix).
pub const MAX_IDEMPOTENCY_ID_BYTES: usize = MAX_OWNER_BYTES - IDEMPOTENT_OWNER_PREFIX.len();

/// The invalid reason of a payment whose nonce is already reserved or settled, per nonce space.
pub const fn replay_code(space: NonceSpace) -> Code {
    match space {
        NonceSpace::Eip3009 => Code::Eip3009NonceAlreadyUsed,
        NonceSpace::Permit2 => Code::Permit2NonceAlreadyUsed,
    }
}

/// What a store with an exposure ledger answers for a payment the payer's capacity does not
/// cover (`reserve_exposed`), beside True (reserved), False (replay) and None (refused).
pub const EXPOSURE_OUTCOME: &str = "exposure";

/// What a store answered for one reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Reserved now, or already this owner's.
    Reserved,
    /// Reserved or settled by another owner.
    Replay,
    /// The payer's capacity is already promised (chain checks' exposure ledger).
    Exposure,
    /// The store refused or could not answer: the payment is refused, never accepted.
    Unavailable,
}

/// One payment's reservation: what a store keeps, and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The replay key.
    pub key: B256,
    /// Whose nonce space the key lives in.
    pub space: NonceSpace,
    /// The owner token (opaque: `r:` random, or `i:` + the caller's idempotency id).
    pub owner: String,
    /// validBefore / deadline: the store keeps the reservation until this plus its margin.
    pub valid_until: u64,
    /// The upto cap (the signed maximum); `None` for exact payments.
    pub cap: Option<U256>,
    /// The store's answer, once asked.
    pub outcome: Option<Outcome>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";
/// Random bytes per owner token.
const OWNER_RANDOM_BYTES: usize = 16;

/// Random owner tokens, `n` of them, from one draw of the OS CSPRNG (one system call per
/// batch, not per item); `None` when the OS has no randomness to give.
pub fn random_owners(n: usize) -> Option<Vec<String>> {
    let mut bytes = vec![0u8; n * OWNER_RANDOM_BYTES];
    getrandom::fill(&mut bytes).ok()?;
    Some(
        bytes
            .chunks_exact(OWNER_RANDOM_BYTES)
            .map(|b| {
                let mut s = String::with_capacity(RANDOM_OWNER_PREFIX.len() + 2 * OWNER_RANDOM_BYTES);
                s.push_str(RANDOM_OWNER_PREFIX);
                for x in b {
                    s.push(char::from(HEX[usize::from(x >> 4)]));
                    s.push(char::from(HEX[usize::from(x & 15)]));
                }
                s
            })
            .collect(),
    )
}

/// A fresh random owner token, or `None` when the OS has no randomness to give.
pub fn random_owner() -> Option<String> {
    random_owners(1).and_then(|mut v| v.pop())
}

/// The owner token of a caller's idempotency id.
pub fn idempotent_owner(id: &str) -> String {
    format!("{IDEMPOTENT_OWNER_PREFIX}{id}")
}

impl Reservation {
    /// The reservation a valid verdict asks for (`None`: not valid, or no replay key).
    /// `owner`: the token, made by the caller.
    pub fn of(verdict: &Verdict, owner: String) -> Option<Self> {
        let replay = verdict.replay.filter(|_| verdict.is_valid())?;
        let cap = match (verdict.scheme, &verdict.authorization) {
            (Some(Scheme::UptoPermit2), Some(a)) => Some(a.amount()),
            _ => None,
        };
        Some(Reservation { key: replay.key, space: replay.space, owner, valid_until: replay.valid_until, cap, outcome: None })
    }

    /// When a store with `margin_seconds` lets the unsettled reservation go.
    pub fn expires_at(&self, margin_seconds: u64) -> u64 {
        expires_at(self.valid_until, margin_seconds)
    }
}

/// Makes the reservation record of every valid item not yet reserved; returns their indices.
/// An item whose owner token cannot be made (no randomness) is refused `nonce_store_unavailable`.
pub fn plan(items: &mut [Item]) -> Vec<usize> {
    let wanted = |item: &Item| item.reservation.is_none() && item.verdict.is_valid() && item.verdict.replay.is_some();
    let random = items.iter().filter(|i| wanted(i) && i.idempotency_id.is_none()).count();
    let mut owners = random_owners(random).unwrap_or_default().into_iter();
    let mut picked = Vec::new();
    for (i, item) in items.iter_mut().enumerate() {
        if !wanted(item) {
            continue;
        }
        let owner = match &item.idempotency_id {
            Some(id) => Some(idempotent_owner(id)),
            None => owners.next(),
        };
        match owner.and_then(|o| Reservation::of(&item.verdict, o)) {
            Some(r) => {
                item.reservation = Some(r);
                picked.push(i);
            }
            None => apply(&mut item.verdict, Outcome::Unavailable),
        }
    }
    picked
}

/// Records each store answer on its item (in `picked` order) and decides its verdict: a replay
/// gets its nonce space's reason, a refusal `nonce_store_unavailable`. Missing answers (a store
/// that answered fewer) are refusals: a payment is never accepted unreserved.
pub fn conclude(items: &mut [Item], picked: &[usize], outcomes: &[Outcome]) {
    for (n, &i) in picked.iter().enumerate() {
        let outcome = outcomes.get(n).copied().filter(|_| outcomes.len() == picked.len()).unwrap_or(Outcome::Unavailable);
        let item = &mut items[i];
        if let Some(r) = item.reservation.as_mut() {
            r.outcome = Some(outcome);
        }
        apply(&mut item.verdict, outcome);
    }
}

/// The verdict an outcome gives (a reserved payment stays valid).
pub fn apply(v: &mut Verdict, outcome: Outcome) {
    match outcome {
        Outcome::Reserved => {}
        Outcome::Replay => {
            let code = replay_code(v.replay.map_or(NonceSpace::Permit2, |r| r.space));
            v.fail(code, code.description());
        }
        Outcome::Exposure => v.fail(Code::PayerExposureExceeded, Code::PayerExposureExceeded.description()),
        Outcome::Unavailable => v.fail(Code::NonceStoreUnavailable, StoreRefusal::Unavailable.message()),
    }
}

/// The reserve stage with the in-process store: the whole batch in one lock, in the same call
/// (and, from Python, with the GIL released) as the verification.
#[derive(Clone)]
pub struct ReserveInMemory {
    store: Arc<MemoryStore>,
    margin: u64,
}

impl std::fmt::Debug for ReserveInMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReserveInMemory").field("margin", &self.margin).finish_non_exhaustive()
    }
}

impl ReserveInMemory {
    /// Reserves into `store`, keeping unsettled reservations `margin_seconds` past their deadline.
    pub fn new(store: Arc<MemoryStore>, margin_seconds: u64) -> Self {
        ReserveInMemory { store, margin: margin_seconds }
    }

    /// Plans, reserves and concludes `items` (the stage's work, callable on its own).
    pub fn reserve(&self, items: &mut [Item], now: u64) {
        let picked = plan(items);
        if picked.is_empty() {
            return;
        }
        let requests: Vec<Reserve<'_>> = picked
            .iter()
            .filter_map(|&i| items[i].reservation.as_ref())
            .map(|r| Reserve { key: r.key, owner: &r.owner, expires_at: r.expires_at(self.margin), cap: r.cap })
            .collect();
        let outcomes: Vec<Outcome> = self
            .store
            .reserve_many(&requests, now)
            .into_iter()
            .map(|o| match o {
                Ok(true) => Outcome::Reserved,
                Ok(false) => Outcome::Replay,
                Err(_) => Outcome::Unavailable,
            })
            .collect();
        conclude(items, &picked, &outcomes);
    }
}

impl Stage for ReserveInMemory {
    fn name(&self) -> &'static str {
        "reserve"
    }

    fn run(&self, items: &mut [Item], cx: &Context) {
        self.reserve(items, cx.now);
    }
}
