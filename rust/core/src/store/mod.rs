//! Replay-protection state: reserve a nonce key before compute, then settle or release it.
//!
//! The lifecycle (the same in every store, and in the model the tests check them against):
//! - `reserve`: absent or expired -> reserved by `owner`; reserved by the same owner -> no
//!   change (an idempotent retry); anything else -> replay.
//! - `settle`: reserved by owner -> settled (kept until expiry); settled by owner -> no change.
//! - `release`: reserved by owner -> absent (nothing was served, nothing broadcast).
//! - `charge` (upto sessions): reserved by owner with a cap -> charged += amount, never above cap.
//! - an entry vanishes at `expires_at` (validBefore / deadline plus the store's margin); after
//!   that the time check, not the store, refuses the payment.

pub mod memory;

use alloy_primitives::U256;

use crate::error::Code;

/// Why a state change on an existing reservation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreRefusal {
    NotFound,
    NotOwner,
    /// Settled already: released or charged no more.
    Closed,
    /// An exact payment has no session to charge against.
    NotUpto,
    /// The charge would pass the permitted maximum.
    ExceedsCap,
    /// The store has no room; it refuses rather than forgets.
    Full,
}

impl StoreRefusal {
    pub const fn code(self) -> Code {
        match self {
            StoreRefusal::NotFound => Code::ReservationNotFound,
            StoreRefusal::NotOwner => Code::ReservationNotOwner,
            StoreRefusal::Closed => Code::ReservationClosed,
            StoreRefusal::NotUpto => Code::ReservationNotUpto,
            StoreRefusal::ExceedsCap => Code::UptoSettlementExceedsAmount,
            StoreRefusal::Full => Code::NonceStoreUnavailable,
        }
    }

    pub const fn message(self) -> &'static str {
        match self {
            StoreRefusal::NotFound => "no live reservation under this key",
            StoreRefusal::NotOwner => "the reservation belongs to another owner token",
            StoreRefusal::Closed => "the reservation is settled and closed",
            StoreRefusal::NotUpto => "only upto reservations carry a session to charge",
            StoreRefusal::ExceedsCap => "the charge would exceed the permitted maximum",
            StoreRefusal::Full => "the nonce store is full; refusing rather than forgetting",
        }
    }
}

/// Reservation state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Reserved { owner: String, cap: Option<U256>, charged: U256 },
    Settled { owner: String, total: U256 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub state: State,
    pub expires_at: u64,
}
