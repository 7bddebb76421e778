//! Strict parsers for the atoms of payment data: digests, addresses, canonical integers, hex.

use alloy_primitives::{Address, B256, U256};

use crate::error::{fail, Code, Error, Result};

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

/// The checksummed (EIP-55) text of an address.
pub fn checksum(addr: &Address) -> String {
    addr.to_checksum(None)
}

/// Parses `0x` + 40 hex digits. All-lower and all-upper are accepted; mixed case must carry a
/// valid EIP-55 checksum, because a wrong one usually means a typo in a pasted address.
pub fn parse_address(s: &str) -> Result<Address> {
    let Some(hex) = s.strip_prefix("0x") else {
        return fail(Code::InvalidAddress, format!("address must start with 0x: {:?}", trunc(s)));
    };
    if hex.len() != 40 {
        return fail(Code::InvalidAddress, format!("address must have 40 hex digits, got {}", hex.len()));
    }
    let mut out = [0u8; 20];
    decode_hex_into(hex.as_bytes(), &mut out).ok_or_else(|| Error::new(Code::InvalidAddress, format!("address is not hex: {:?}", trunc(s))))?;
    let addr = Address::from(out);
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    if has_upper && has_lower && !eip55_case_matches(hex.as_bytes()) {
        return fail(Code::InvalidAddressChecksum, format!("bad EIP-55 checksum in {s}"));
    }
    Ok(addr)
}

/// EIP-55: a letter is upper-case exactly when its nibble of keccak(lowercase hex) is >= 8.
/// Checked in place rather than by printing the checksummed form: this runs for every address
/// of every payment.
fn eip55_case_matches(hex: &[u8]) -> bool {
    // Gateways see the same token, spender and payTo on every request: remember the mixed-case
    // spellings already found valid (per thread, a small direct-mapped table: a hit costs one
    // 40-byte compare, not a keccak) instead of hashing them again.
    const SLOTS: usize = 256;
    thread_local! {
        static VALID: std::cell::RefCell<Vec<[u8; 40]>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let Ok(text) = <[u8; 40]>::try_from(hex) else {
        return false;
    };
    // Any spread of the text will do for the slot; a collision only costs a keccak.
    let slot = text.chunks_exact(8).fold(0u64, |h, c| (h ^ u64::from_le_bytes(c.try_into().unwrap_or_default())).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let slot = (slot >> 56) as usize % SLOTS;
    if VALID.with(|v| v.borrow().get(slot) == Some(&text)) {
        return true;
    }
    let ok = eip55_case_matches_uncached(hex);
    if ok {
        VALID.with(|v| {
            let mut v = v.borrow_mut();
            if v.is_empty() {
                // An empty slot (zero bytes) matches no hex text.
                v.resize(SLOTS, [0u8; 40]);
            }
            v[slot] = text;
        });
    }
    ok
}

fn eip55_case_matches_uncached(hex: &[u8]) -> bool {
    let mut lower = [0u8; 40];
    for (l, c) in lower.iter_mut().zip(hex) {
        *l = c.to_ascii_lowercase();
    }
    let hash = alloy_primitives::keccak256(lower);
    hex.iter().enumerate().all(|(i, c)| {
        let nibble = if i % 2 == 0 { hash[i / 2] >> 4 } else { hash[i / 2] & 0x0f };
        !c.is_ascii_alphabetic() || c.is_ascii_uppercase() == (nibble >= 8)
    })
}

/// Decodes an exact decimal magnitude (digits only) into a U256, `None` if >= 2^256.
pub(crate) fn decimal_to_u256(digits: &str) -> Option<U256> {
    if digits.len() > 78 {
        return None;
    }
    // Nineteen digits at a time fit a u64 (Permit2 nonces are 78-digit numbers on every
    // payment): five one-limb multiply-adds instead of one per digit.
    let mut acc = U256::ZERO;
    for chunk in digits.as_bytes().chunks(19) {
        let mut part: u64 = 0;
        for b in chunk {
            part = part * 10 + u64::from(b - b'0');
        }
        acc = mul_add_small(acc, POW10[chunk.len()], part)?;
    }
    Some(acc)
}

const POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `acc * m + add`, `None` on overflow. By hand because ruint's multiply is the general
/// 256 x 256 product, four times the work when one side is a single limb.
fn mul_add_small(acc: U256, m: u64, add: u64) -> Option<U256> {
    let mut limbs = acc.into_limbs();
    let mut carry = u128::from(add);
    for limb in &mut limbs {
        let t = u128::from(*limb) * u128::from(m) + carry;
        *limb = t as u64;
        carry = t >> 64;
    }
    (carry == 0).then(|| U256::from_limbs(limbs))
}

/// Parses canonical ASCII decimal: `0` or `[1-9][0-9]*`, nothing else. Python's `int()` (and so
/// eth-account) also takes `" 100"`, `"+1"`, `"1_0"` and non-ASCII digits; those are rejected.
pub fn parse_uint_decimal(s: &str) -> Result<U256> {
    parse_decimal_magnitude(s)?.ok_or_else(|| Error::new(Code::NumberOutOfRange, format!("{} does not fit in 256 bits", trunc(s))))
}

/// Canonical decimal magnitude check; `Ok(None)` when canonical but >= 2^256.
pub(crate) fn parse_decimal_magnitude(s: &str) -> Result<Option<U256>> {
    let b = s.as_bytes();
    let canonical = !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1);
    if !canonical {
        return fail(Code::NonCanonicalNumber, format!("{:?} is not a canonical decimal integer (digits only, no leading zeros)", trunc(s)));
    }
    Ok(decimal_to_u256(s))
}

/// An EIP-712 integer written as `0x` hex, as wallets and `eth_signTypedData_v4` callers do:
/// `hex` is what follows the `0x`. Digits of either case and leading zeros are accepted (hex is
/// never read as octal, and zero-padded words are common); no sign, no spaces, no underscores,
/// not empty. The value is a magnitude: `Ok(None)` when it is 2^256 or more.
pub(crate) fn parse_hex_magnitude(hex: &str) -> Result<Option<U256>> {
    let b = hex.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_hexdigit) {
        return fail(Code::NonCanonicalNumber, format!("\"0x{}\" is not 0x followed by hex digits", trunc(hex)));
    }
    let significant = &b[b.iter().position(|&c| c != b'0').unwrap_or(b.len())..];
    if significant.len() > 64 {
        return Ok(None);
    }
    let mut word = [0u8; 32];
    for (i, &c) in significant.iter().rev().enumerate() {
        let n = nibble(c).unwrap_or(0);
        word[31 - i / 2] |= if i % 2 == 0 { n } else { n << 4 };
    }
    Ok(Some(U256::from_be_bytes(word)))
}

/// Decodes `0x`-prefixed, even-length hex. `code` names the failure for this field.
pub fn parse_hex_prefixed(s: &str, code: Code) -> Result<Vec<u8>> {
    let Some(hex) = s.strip_prefix("0x") else {
        return fail(code, format!("hex must start with 0x: {:?}", trunc(s)));
    };
    if hex.len() % 2 != 0 {
        return fail(code, "hex has an odd number of digits");
    }
    let mut out = vec![0u8; hex.len() / 2];
    decode_hex_into(hex.as_bytes(), &mut out).ok_or_else(|| Error::new(code, format!("not hex: {:?}", trunc(s))))?;
    Ok(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Fills `out` from exactly `2 * out.len()` hex digits.
pub(crate) fn decode_hex_into(hex: &[u8], out: &mut [u8]) -> Option<()> {
    if hex.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(())
}

/// Shortens attacker-sized input before it goes into an error message.
pub(crate) fn trunc(s: &str) -> String {
    if s.len() <= 80 {
        s.to_owned()
    } else {
        let mut end = 77;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let good = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
        assert!(parse_address(good).is_ok());
        assert!(parse_address(&good.to_lowercase()).is_ok());
        assert!(parse_address(&format!("0x{}", good[2..].to_uppercase())).is_ok());
        let bad = "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
        assert_eq!(parse_address(bad).unwrap_err().code, Code::InvalidAddressChecksum);
        for s in ["f39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "0x1234", "0xzz9fd6e51aad88f6f4ce6ab8827279cfffb92266", "0x"] {
            assert_eq!(parse_address(s).unwrap_err().code, Code::InvalidAddress, "{s}");
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_uint_decimal("0").unwrap(), U256::ZERO);
        assert_eq!(parse_uint_decimal("100").unwrap(), U256::from(100));
        let max = U256::MAX.to_string();
        assert_eq!(parse_uint_decimal(&max).unwrap(), U256::MAX);
        // Every length and the edges of 2^256, against ruint's own parser.
        let mut digits = String::new();
        for i in 0..78 {
            digits.push(char::from(b'1' + (i % 9) as u8));
            assert_eq!(parse_uint_decimal(&digits).ok(), U256::from_str_radix(&digits, 10).ok(), "{digits}");
        }
        for edge in [U256::MAX - U256::from(1), U256::MAX >> 1, U256::from(u64::MAX), U256::from(u64::MAX) + U256::from(1)] {
            assert_eq!(parse_uint_decimal(&edge.to_string()).unwrap(), edge);
        }
        assert_eq!(parse_uint_decimal(&"9".repeat(78)).unwrap_err().code, Code::NumberOutOfRange);
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert_eq!(parse_uint_decimal(over).unwrap_err().code, Code::NumberOutOfRange);
        for s in ["", " 100", "+1", "1_0", "1e6", "0100", "0x64", "-1", "\u{661}\u{660}\u{660}", "1.0", "100\n"] {
            assert_eq!(parse_uint_decimal(s).unwrap_err().code, Code::NonCanonicalNumber, "{s:?}");
        }
    }

    #[test]
    fn hex_magnitudes() {
        let max = "f".repeat(64);
        for (s, want) in [("0", Some(U256::ZERO)), ("1", Some(U256::from(1))), ("2105", Some(U256::from(0x2105))), ("de0b6b3a7640000", Some(U256::from(10u64.pow(18)))), ("DE0B6B3A7640000", Some(U256::from(10u64.pow(18)))), ("000000ff", Some(U256::from(255))), (&max, Some(U256::MAX)), (&format!("000{max}"), Some(U256::MAX)), (&format!("1{max}"), None)] {
            assert_eq!(parse_hex_magnitude(s).unwrap(), want, "{s}");
        }
        for n in [1u64, 15, 16, 255, 256, u64::MAX] {
            assert_eq!(parse_hex_magnitude(&format!("{n:x}")).unwrap(), Some(U256::from(n)));
        }
        for s in ["", " 1", "1 ", "+1", "-1", "1_0", "g", "x1", "0x1", "\u{661}", "1.0"] {
            assert_eq!(parse_hex_magnitude(s).unwrap_err().code, Code::NonCanonicalNumber, "{s:?}");
        }
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex_prefixed("0x", Code::InvalidBytes).unwrap(), Vec::<u8>::new());
        assert_eq!(parse_hex_prefixed("0xAbff", Code::InvalidBytes).unwrap(), vec![0xab, 0xff]);
        for s in ["abff", "0xabf", "0xgg", "0X00"] {
            assert!(parse_hex_prefixed(s, Code::InvalidBytes).is_err(), "{s}");
        }
    }
}
