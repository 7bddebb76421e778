//! The outcome of verifying one payment: what every stage reads and amends.

use alloy_primitives::Address;

use super::payload::Authorization;
use super::replay::ReplayKey;
use crate::error::{Code, Error};
use crate::primitives::Digest;

/// Which x402 payment flow a payload follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `exact` with an EIP-3009 `transferWithAuthorization`.
    ExactEip3009,
    /// `exact` through x402's exact Permit2 proxy.
    ExactPermit2,
    /// `upto` through x402's upto Permit2 proxy (a session charged up to a cap).
    UptoPermit2,
}

impl Scheme {
    /// The stable name (`exact_eip3009`, `exact_permit2`, `upto_permit2`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::ExactEip3009 => "exact_eip3009",
            Scheme::ExactPermit2 => "exact_permit2",
            Scheme::UptoPermit2 => "upto_permit2",
        }
    }
}

/// The outcome of verifying one payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `None` when the payment is valid.
    pub reason: Option<Code>,
    /// Why, for humans (empty when valid).
    pub message: String,
    /// The claimed payer (`from`), or the recovered signer once it matched.
    pub payer: Option<Address>,
    /// The payload's `x402Version`, once read.
    pub x402_version: Option<u8>,
    /// The payment flow, once the requirements and payload agree on one.
    pub scheme: Option<Scheme>,
    /// The requirements' chain, once known.
    pub chain_id: Option<u64>,
    /// The signed terms, once read.
    pub authorization: Option<Authorization>,
    /// Set whenever the authorization was read and its chain is known.
    pub replay: Option<ReplayKey>,
    /// What a chain check needs once the cascade reached the signature step (every other
    /// check passed): the requirements' asset, the EIP-712 digest and the signature bytes.
    pub signed: Option<SignedPayment>,
}

/// The signed digest of a payment and its signature, for checks only the chain can make
/// (ERC-1271 / ERC-6492 wallets, EIP-7702 delegated accounts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPayment {
    /// The requirements' asset (the token).
    pub asset: Address,
    /// The EIP-712 digest the payer signed.
    pub digest: Digest,
    /// The signature bytes as sent.
    pub signature: Vec<u8>,
}

impl Verdict {
    /// Whether the payment passed every stage so far.
    pub fn is_valid(&self) -> bool {
        self.reason.is_none()
    }

    /// A verdict that knows nothing but why it failed.
    pub(crate) fn invalid(code: Code, message: impl Into<String>) -> Self {
        Verdict {
            reason: Some(code),
            message: message.into(),
            payer: None,
            x402_version: None,
            scheme: None,
            chain_id: None,
            authorization: None,
            replay: None,
            signed: None,
        }
    }

    /// The verdict for input that could not be read at all.
    pub fn from_error(e: &Error) -> Self {
        Verdict::invalid(e.code, error_message(e))
    }

    /// Marks the verdict invalid with `code` (whatever it said before).
    pub fn fail(&mut self, code: Code, message: impl Into<String>) {
        self.reason = Some(code);
        self.message = message.into();
    }
}

/// An error's message, prefixed by its path when it has one.
pub(crate) fn error_message(e: &Error) -> String {
    let path = e.path();
    if path.is_empty() {
        e.message.clone()
    } else {
        format!("{path}: {}", e.message)
    }
}
