//! The digest a signature signs, and EIP-712's rule for making one.

use alloy_primitives::B256;

use crate::error::{Code, Error, Result};

/// A 32-byte message digest: the thing a secp256k1 signature signs. A separate type so a
/// typehash or a nonce is never passed where a digest is meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digest(pub B256);

impl Digest {
    /// Reads a digest from exactly 32 bytes; any other length is `InvalidDigest`, never
    /// padded or truncated.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| Error::new(Code::InvalidDigest, format!("a digest is 32 bytes, got {}", bytes.len())))?;
        Ok(Digest(B256::from(arr)))
    }

    /// The 32 digest bytes, big-endian as hashed, for handing to a signature check.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0 .0
    }
}

/// `keccak256(0x19 0x01 || domain_separator || struct_hash)`: the EIP-712 signing digest.
pub fn eip712_signing_digest(domain_separator: &B256, struct_hash: &B256) -> Digest {
    let mut buf = [0u8; 66];
    buf[0] = 0x19;
    buf[1] = 0x01;
    buf[2..34].copy_from_slice(domain_separator.as_slice());
    buf[34..66].copy_from_slice(struct_hash.as_slice());
    Digest(alloy_primitives::keccak256(buf))
}
