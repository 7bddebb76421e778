//! x402-verify core: strict EIP-712 hashing, secp256k1 recovery under explicit signature
//! policies, and batch execution. Pure Rust; the Python bindings live in a separate crate.
//!
//! The pipeline, one module a stage: `json` (strict parsing) -> `eip712` (digest) ->
//! `signature` (policy + recovery) -> `batch` (many at once).

#![forbid(unsafe_code)]

pub mod authenticate;
pub mod batch;
pub mod eip712;
pub mod error;
pub mod json;
pub mod primitives;
pub mod signature;
pub mod store;
pub mod x402;

pub use alloy_primitives::{Address, B256, U256};
pub use error::{Code, Error, Kind, Result};
pub use primitives::Digest;
pub use signature::{Signature, SignaturePolicy};

/// Recovers the signer of a digest: parse under `policy`, then recover.
pub fn recover_hash(digest: &Digest, signature: &[u8], policy: &SignaturePolicy) -> Result<Address> {
    Signature::parse(signature, policy)?.recover_address_from_prehash(digest)
}

/// Recovers the signer of a parsed typed-data document.
pub fn recover_typed_data(doc: &json::Value, signature: &[u8], policy: &SignaturePolicy) -> Result<Address> {
    // The signature is parsed first: it is the cheaper of the two to refuse.
    let sig = Signature::parse(signature, policy)?;
    sig.recover_address_from_prehash(&eip712::hash_typed_data(doc)?)
}

/// Recovers the signer of a typed-data document given as JSON text.
pub fn recover_typed_data_json(doc: &[u8], signature: &[u8], policy: &SignaturePolicy, max_bytes: usize) -> Result<Address> {
    // The signature is parsed first: it is the cheaper of the two to refuse.
    let sig = Signature::parse(signature, policy)?;
    sig.recover_address_from_prehash(&eip712::hash_typed_data_json(doc, max_bytes)?)
}
