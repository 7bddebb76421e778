//! Replay-protection state: reserve a nonce key before compute, then settle or release it.
//!
//! The lifecycle (the same in every store, and in the model the tests check them against):
//! - `reserve`: absent or expired -> reserved by `owner` until `expires_at`; reserved by the
//!   same owner -> no change (an idempotent retry); anything else -> replay. An item whose
//!   `expires_at` is not after `now` would be kept for no time at all: the store refuses it
//!   (`Expired`) rather than acknowledge a reservation it does not hold.
//! - `settle`: reserved by owner -> settled, and kept for as long as the store lives;
//!   settled by owner -> no change.
//! - `release`: reserved by owner -> absent (nothing was served, nothing broadcast).
//! - `charge` (upto sessions): reserved by owner with a cap -> charged += amount, never above cap.
//! - an unsettled reservation vanishes at `expires_at` (validBefore / deadline plus the
//!   store's margin): by then the time check refuses the authorization that made it.
//!
//! Why a settled key is never forgotten: on-chain the nonce is used for ever (USDC's
//! `authorizationState`, Permit2's bitmap), but a payer may sign a *new* authorization with the
//! same nonce and a later validBefore at any time. Its replay key is the same; only the store
//! remembers that it was spent. Forgetting it would serve a request whose settlement reverts.

pub mod memory;

use alloy_primitives::U256;

use crate::error::Code;

/// The latest expiry a store keeps (unix seconds, about 8.9 million years ahead): later
/// deadlines are clamped to it, so every store (SQLite's 64-bit integers, Redis' millisecond
/// lifetimes) gives the same answer for a deadline of 2^64 - 1 as for a merely distant one.
pub const MAX_EXPIRES_AT: u64 = 1 << 48;

/// The largest `now` a store accepts (SQLite stores 64-bit signed integers).
pub const MAX_NOW: u64 = i64::MAX as u64;

/// The largest `margin_seconds` a store accepts (about 136 years).
pub const MAX_MARGIN_SECONDS: u64 = u32::MAX as u64;

/// The longest owner token, in UTF-8 bytes.
pub const MAX_OWNER_BYTES: usize = 256;

/// The `expires_at` of a settled entry: it is kept for as long as the store lives.
pub const KEPT: u64 = u64::MAX;

/// When a reservation made for an authorization valid until `valid_until` expires.
pub fn expires_at(valid_until: u64, margin_seconds: u64) -> u64 {
    valid_until.saturating_add(margin_seconds).min(MAX_EXPIRES_AT)
}

/// Why a store refused (a state change on an existing reservation, or a reservation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreRefusal {
    /// No live reservation under the key: never made, expired, or released.
    NotFound,
    /// A live reservation exists, but under another owner token than the caller's.
    NotOwner,
    /// Settled already: released or charged no more.
    Closed,
    /// An exact payment has no session to charge against.
    NotUpto,
    /// The charge would pass the permitted maximum.
    ExceedsCap,
    /// The store has no room; it refuses rather than forgets.
    Full,
    /// The reservation would expire before it starts; nothing would be kept.
    Expired,
    /// The store could not answer (unreachable, timing out, closed, or an error reply).
    Unavailable,
}

impl StoreRefusal {
    /// Every refusal, in declaration order: for tests and for building the Python mirror,
    /// so a new variant cannot be forgotten there.
    pub const ALL: [StoreRefusal; 8] = [
        StoreRefusal::NotFound,
        StoreRefusal::NotOwner,
        StoreRefusal::Closed,
        StoreRefusal::NotUpto,
        StoreRefusal::ExceedsCap,
        StoreRefusal::Full,
        StoreRefusal::Expired,
        StoreRefusal::Unavailable,
    ];

    /// A stable name, for the Python stores that raise the same refusals.
    pub const fn name(self) -> &'static str {
        match self {
            StoreRefusal::NotFound => "not_found",
            StoreRefusal::NotOwner => "not_owner",
            StoreRefusal::Closed => "closed",
            StoreRefusal::NotUpto => "not_upto",
            StoreRefusal::ExceedsCap => "exceeds_cap",
            StoreRefusal::Full => "full",
            StoreRefusal::Expired => "expired",
            StoreRefusal::Unavailable => "unavailable",
        }
    }

    /// The reason code a verdict carries for this refusal. `Full`, `Expired` and
    /// `Unavailable` share `NonceStoreUnavailable`: to the client each means replay
    /// protection could not take the payment, and the store's condition stays private.
    pub const fn code(self) -> Code {
        match self {
            StoreRefusal::NotFound => Code::ReservationNotFound,
            StoreRefusal::NotOwner => Code::ReservationNotOwner,
            StoreRefusal::Closed => Code::ReservationClosed,
            StoreRefusal::NotUpto => Code::ReservationNotUpto,
            StoreRefusal::ExceedsCap => Code::UptoSettlementExceedsAmount,
            StoreRefusal::Full | StoreRefusal::Expired | StoreRefusal::Unavailable => Code::NonceStoreUnavailable,
        }
    }

    /// Fixed text, safe to show a client: it never carries store internals or input.
    pub const fn message(self) -> &'static str {
        match self {
            StoreRefusal::NotFound => "no live reservation under this key",
            StoreRefusal::NotOwner => "the reservation belongs to another owner token",
            StoreRefusal::Closed => "the reservation is settled and closed",
            StoreRefusal::NotUpto => "only upto reservations carry a session to charge",
            StoreRefusal::ExceedsCap => "the charge would exceed the permitted maximum",
            StoreRefusal::Full => "the nonce store is full; refusing rather than forgetting",
            StoreRefusal::Expired => "the reservation would end before it starts; refusing rather than keeping nothing",
            StoreRefusal::Unavailable => "replay protection could not answer; refused",
        }
    }
}

/// Reservation state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Held for a payment that is not settled yet; it can still be charged, settled or released.
    Reserved {
        /// The owner token that made the reservation; only it may change the entry.
        owner: String,
        /// The permitted maximum in token base units (upto payments); `None` for exact payments.
        cap: Option<U256>,
        /// Base units charged against `cap` so far; never above it.
        charged: U256,
    },
    /// Settled on-chain: kept (`KEPT`) so the same authorization is refused as a replay forever.
    Settled {
        /// The owner token that settled it.
        owner: String,
        /// The total settled, in token base units.
        total: U256,
    },
}

/// What a store holds under one replay key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Reserved or settled, with the owner token and amounts.
    pub state: State,
    /// Unix seconds; `KEPT` for a settled entry.
    pub expires_at: u64,
}

impl Entry {
    /// When the entry expires; `None` when it is kept for as long as the store lives.
    pub fn expires(&self) -> Option<u64> {
        (self.expires_at != KEPT).then_some(self.expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_clamped_and_never_kept_for_ever_unless_settled() {
        assert_eq!(expires_at(100, 60), 160);
        assert_eq!(expires_at(u64::MAX, 60), MAX_EXPIRES_AT);
        assert_eq!(expires_at(MAX_EXPIRES_AT - 1, 60), MAX_EXPIRES_AT);
        const { assert!(MAX_EXPIRES_AT < KEPT && MAX_EXPIRES_AT < MAX_NOW) };
    }

    #[test]
    fn names_are_unique() {
        let names: std::collections::HashSet<_> = StoreRefusal::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), StoreRefusal::ALL.len());
    }
}
