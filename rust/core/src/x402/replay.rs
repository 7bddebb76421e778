//! Replay keys: the canonical identity of what a signature authorizes, never its bytes.
//!
//! The settling contracts track nonces per (token, from) for EIP-3009 and per owner for
//! Permit2, so the key holds exactly those members plus the chain, hashed to a fixed 32 bytes:
//! a high-s twin, the EIP-2098 form, another JSON spelling of the same number or a checksum
//! variant of an address all map to the same key.

use alloy_primitives::{keccak256, Address, B256, U256};

use super::digest::PERMIT2_ADDRESS;
use super::payload::Authorization;

/// Which contract's nonce space a key lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NonceSpace {
    /// The token's own nonces, per (token, from).
    Eip3009,
    /// Permit2's nonces, per owner across all tokens.
    Permit2,
}

/// A fixed-size replay key and the unix time after which the authorization is dead on-chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplayKey {
    /// The 32-byte hash of the chain and the contract's nonce identity (see `eip3009_key`).
    pub key: B256,
    /// Which contract's nonces the key stands for.
    pub space: NonceSpace,
    /// `validBefore` (EIP-3009) or `deadline` (Permit2), clamped to u64.
    pub valid_until: u64,
}

/// `keccak256("x402-verify/eip3009" || chainId || token || from || nonce)`.
pub fn eip3009_key(chain_id: u64, token: &Address, from: &Address, nonce: &B256) -> B256 {
    let mut buf = Vec::with_capacity(19 + 32 + 20 + 20 + 32);
    buf.extend_from_slice(b"x402-verify/eip3009");
    buf.extend_from_slice(&U256::from(chain_id).to_be_bytes::<32>());
    buf.extend_from_slice(token.as_slice());
    buf.extend_from_slice(from.as_slice());
    buf.extend_from_slice(nonce.as_slice());
    keccak256(buf)
}

/// `keccak256("x402-verify/permit2" || chainId || permit2 || owner || nonce as uint256)`.
pub fn permit2_key(chain_id: u64, owner: &Address, nonce: &U256) -> B256 {
    let mut buf = Vec::with_capacity(19 + 32 + 20 + 20 + 32);
    buf.extend_from_slice(b"x402-verify/permit2");
    buf.extend_from_slice(&U256::from(chain_id).to_be_bytes::<32>());
    buf.extend_from_slice(PERMIT2_ADDRESS.as_slice());
    buf.extend_from_slice(owner.as_slice());
    buf.extend_from_slice(&nonce.to_be_bytes::<32>());
    keccak256(buf)
}

fn clamp(v: &U256) -> u64 {
    u64::try_from(*v).unwrap_or(u64::MAX)
}

/// The replay key of an authorization on a chain; for EIP-3009 `token` is the verifying contract.
pub fn replay_key(chain_id: u64, token: &Address, auth: &Authorization) -> ReplayKey {
    match auth {
        Authorization::Eip3009(a) => {
            ReplayKey { key: eip3009_key(chain_id, token, &a.from, &a.nonce), space: NonceSpace::Eip3009, valid_until: clamp(&a.valid_before) }
        }
        Authorization::Permit2(a) => ReplayKey { key: permit2_key(chain_id, &a.from, &a.nonce), space: NonceSpace::Permit2, valid_until: clamp(&a.deadline) },
    }
}
