//! secp256k1 signatures: parsed once under an explicit policy, then recovered.
//!
//! Each settling contract accepts a different set of encodings (security.md §1.1): USDC's
//! ECRecover takes 65 bytes, v 27/28, low s; Permit2 also takes 64-byte EIP-2098 and any s.
//! libsecp256k1 and most libraries accept more than either, so every rule is checked here,
//! before recovery, and the policy says which ones apply.

use alloy_primitives::{keccak256, Address, U256};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::Message;

use crate::error::{fail, Code, Error, Result};
use crate::primitives::Digest;

/// The curve order n.
const N: U256 = U256::from_be_bytes([
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2,
    0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
]);
/// n / 2, the largest s a low-s rule lets through.
const HALF_N: U256 = N.wrapping_shr(1);

/// Which encodings a verifier accepts. The defaults (`Default`, `eip3009()`) are the strictest
/// settling contract's: 65 bytes, v 27/28, low s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignaturePolicy {
    /// Accept 64-byte EIP-2098 `r || vs` (Permit2 does, USDC does not).
    pub allow_compact: bool,
    /// Reject s > n/2 (USDC and OpenZeppelin do; Permit2 and the ecrecover precompile do not).
    pub require_low_s: bool,
    /// Accept v = 0/1 besides 27/28 (no contract does; some off-chain signers emit it).
    pub allow_v01: bool,
}

impl Default for SignaturePolicy {
    fn default() -> Self {
        Self::eip3009()
    }
}

impl SignaturePolicy {
    /// USDC FiatToken `ECRecover`: 65 bytes, v in {27, 28}, s <= n/2.
    pub const fn eip3009() -> Self {
        SignaturePolicy { allow_compact: false, require_low_s: true, allow_v01: false }
    }

    /// Permit2 `SignatureVerification`: 65 bytes with v in {27, 28} or 64-byte EIP-2098; any s.
    pub const fn permit2() -> Self {
        SignaturePolicy { allow_compact: true, require_low_s: false, allow_v01: false }
    }
}

/// A signature that passed the policy: r and s in range, a recovery id of 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    r: U256,
    s: U256,
    y_parity: bool,
}

impl Signature {
    /// Parses `r || s || v` (65 bytes) or, where the policy allows, `r || vs` (64 bytes).
    pub fn parse(bytes: &[u8], policy: &SignaturePolicy) -> Result<Self> {
        let (r, s, y_parity) = match bytes.len() {
            65 => {
                let v = bytes[64];
                let y = match v {
                    27 | 28 => v == 28,
                    0 | 1 if policy.allow_v01 => v == 1,
                    _ => return fail(Code::InvalidSignatureV, format!("v is {v}; the settling contract needs 27 or 28")),
                };
                (U256::from_be_slice(&bytes[..32]), U256::from_be_slice(&bytes[32..64]), y)
            }
            64 if policy.allow_compact => {
                // EIP-2098: the top bit of vs is the y parity, the low 255 bits are s.
                let vs = U256::from_be_slice(&bytes[32..64]);
                let y = vs.bit(255);
                let mut s = vs;
                s.set_bit(255, false);
                (U256::from_be_slice(&bytes[..32]), s, y)
            }
            n => {
                let accepted = if policy.allow_compact { "65 or 64 (EIP-2098)" } else { "65" };
                return fail(Code::InvalidSignatureLength, format!("signature is {n} bytes; the policy accepts {accepted}"));
            }
        };
        if r.is_zero() || r >= N {
            return fail(Code::InvalidSignatureR, "r must lie in [1, n-1]");
        }
        if s.is_zero() || s >= N {
            return fail(Code::InvalidSignatureS, "s must lie in [1, n-1]");
        }
        if policy.require_low_s && s > HALF_N {
            return fail(Code::SignatureHighS, "s is above n/2; the settling contract rejects high-s signatures");
        }
        Ok(Signature { r, s, y_parity })
    }

    /// Parses 0x-prefixed hex text, then applies `parse`.
    pub fn parse_hex(text: &str, policy: &SignaturePolicy) -> Result<Self> {
        let bytes = crate::primitives::parse_hex_prefixed(text, Code::InvalidSignatureEncoding)?;
        Self::parse(&bytes, policy)
    }

    /// The `r` scalar, in [1, n-1].
    pub fn r(&self) -> U256 {
        self.r
    }
    /// The `s` scalar, in [1, n-1] (at most n/2 under a low-s policy).
    pub fn s(&self) -> U256 {
        self.s
    }
    /// The parity of R's y coordinate (v 28, or 1).
    pub fn y_parity(&self) -> bool {
        self.y_parity
    }

    /// The 65-byte `r || s || v` form with v in {27, 28}.
    pub fn to_rsv_bytes(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r.to_be_bytes::<32>());
        out[32..64].copy_from_slice(&self.s.to_be_bytes::<32>());
        out[64] = 27 + u8::from(self.y_parity);
        out
    }

    /// Recovers the public key that signed `digest`, as its 64-byte uncompressed `x || y`.
    pub fn recover_public_key_from_prehash(&self, digest: &Digest) -> Result<[u8; 64]> {
        let mut rs = [0u8; 64];
        rs[..32].copy_from_slice(&self.r.to_be_bytes::<32>());
        rs[32..].copy_from_slice(&self.s.to_be_bytes::<32>());
        let recid = if self.y_parity { RecoveryId::One } else { RecoveryId::Zero };
        let sig =
            RecoverableSignature::from_compact(&rs, recid).map_err(|_| Error::new(Code::SignatureRecoveryFailed, "libsecp256k1 rejected the signature"))?;
        let key = sig
            .recover_ecdsa(Message::from_digest(*digest.as_bytes()))
            .map_err(|_| Error::new(Code::SignatureRecoveryFailed, "no public key recovers from this signature and digest"))?;
        let full = key.serialize_uncompressed();
        let mut out = [0u8; 64];
        out.copy_from_slice(&full[1..]);
        Ok(out)
    }

    /// Recovers the Ethereum address (keccak of the public key) that signed `digest`.
    pub fn recover_address_from_prehash(&self, digest: &Digest) -> Result<Address> {
        let key = self.recover_public_key_from_prehash(digest)?;
        Ok(Address::from_slice(&keccak256(key)[12..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::parse_address;

    // x402 spec example (reference/x402-permit2.md §7.3): recovers to `from`.
    const DIGEST: &str = "f256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6";
    const SIG: &str = "0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c";
    const FROM: &str = "0x857b06519E91e3A54538791bDbb0E22373e36b66";

    fn digest() -> Digest {
        let mut d = [0u8; 32];
        crate::primitives::decode_hex_into(DIGEST.as_bytes(), &mut d).unwrap();
        Digest(d.into())
    }

    #[test]
    fn spec_example_recovers() {
        let sig = Signature::parse_hex(SIG, &SignaturePolicy::eip3009()).unwrap();
        assert_eq!(sig.recover_address_from_prehash(&digest()).unwrap(), parse_address(FROM).unwrap());
    }

    #[test]
    fn twins_and_policies() {
        let base = Signature::parse_hex(SIG, &SignaturePolicy::eip3009()).unwrap();
        let want = parse_address(FROM).unwrap();
        // High-s twin: (r, n - s, !parity) recovers the same key; only a lenient policy takes it.
        let mut twin = base.to_rsv_bytes();
        twin[32..64].copy_from_slice(&(N - base.s()).to_be_bytes::<32>());
        twin[64] = if base.y_parity() { 27 } else { 28 };
        assert_eq!(Signature::parse(&twin, &SignaturePolicy::eip3009()).unwrap_err().code, Code::SignatureHighS);
        let t = Signature::parse(&twin, &SignaturePolicy::permit2()).unwrap();
        assert_eq!(t.recover_address_from_prehash(&digest()).unwrap(), want);
        // EIP-2098 compact form.
        let mut compact = [0u8; 64];
        compact.copy_from_slice(&base.to_rsv_bytes()[..64]);
        if base.y_parity() {
            compact[32] |= 0x80;
        }
        assert_eq!(Signature::parse(&compact, &SignaturePolicy::eip3009()).unwrap_err().code, Code::InvalidSignatureLength);
        let c = Signature::parse(&compact, &SignaturePolicy::permit2()).unwrap();
        assert_eq!(c.recover_address_from_prehash(&digest()).unwrap(), want);
        // v = 0/1 only under allow_v01.
        let mut v01 = base.to_rsv_bytes();
        v01[64] -= 27;
        assert_eq!(Signature::parse(&v01, &SignaturePolicy::permit2()).unwrap_err().code, Code::InvalidSignatureV);
        let lenient = SignaturePolicy { allow_v01: true, ..SignaturePolicy::eip3009() };
        assert_eq!(Signature::parse(&v01, &lenient).unwrap().recover_address_from_prehash(&digest()).unwrap(), want);
    }

    #[test]
    fn ranges() {
        let p = SignaturePolicy::permit2();
        let mk = |r: U256, s: U256| {
            let mut b = [0u8; 65];
            b[..32].copy_from_slice(&r.to_be_bytes::<32>());
            b[32..64].copy_from_slice(&s.to_be_bytes::<32>());
            b[64] = 27;
            b
        };
        let one = U256::from(1);
        assert_eq!(Signature::parse(&mk(U256::ZERO, one), &p).unwrap_err().code, Code::InvalidSignatureR);
        assert_eq!(Signature::parse(&mk(N, one), &p).unwrap_err().code, Code::InvalidSignatureR);
        assert_eq!(Signature::parse(&mk(U256::MAX, one), &p).unwrap_err().code, Code::InvalidSignatureR);
        assert_eq!(Signature::parse(&mk(one, U256::ZERO), &p).unwrap_err().code, Code::InvalidSignatureS);
        assert_eq!(Signature::parse(&mk(one, N), &p).unwrap_err().code, Code::InvalidSignatureS);
        let strict = SignaturePolicy::eip3009();
        assert!(Signature::parse(&mk(one, HALF_N), &strict).is_ok());
        assert_eq!(Signature::parse(&mk(one, HALF_N + one), &strict).unwrap_err().code, Code::SignatureHighS);
        for v in [0u8, 1, 2, 26, 29, 35, 37, 255] {
            let mut b = mk(one, one);
            b[64] = v;
            assert_eq!(Signature::parse(&b, &p).unwrap_err().code, Code::InvalidSignatureV, "v={v}");
        }
        for n in [0usize, 63, 66, 130] {
            assert_eq!(Signature::parse(&vec![1u8; n], &p).unwrap_err().code, Code::InvalidSignatureLength);
        }
    }
}
