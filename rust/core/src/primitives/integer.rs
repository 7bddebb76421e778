//! Integers: canonical decimal strings and EIP-712 hex magnitudes, read into U256.

use alloy_primitives::U256;

use super::hex::nibble;
use super::trunc;
use crate::error::{fail, Code, Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;

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
        for (s, want) in [
            ("0", Some(U256::ZERO)),
            ("1", Some(U256::from(1))),
            ("2105", Some(U256::from(0x2105))),
            ("de0b6b3a7640000", Some(U256::from(10u64.pow(18)))),
            ("DE0B6B3A7640000", Some(U256::from(10u64.pow(18)))),
            ("000000ff", Some(U256::from(255))),
            (&max, Some(U256::MAX)),
            (&format!("000{max}"), Some(U256::MAX)),
            (&format!("1{max}"), None),
        ] {
            assert_eq!(parse_hex_magnitude(s).unwrap(), want, "{s}");
        }
        for n in [1u64, 15, 16, 255, 256, u64::MAX] {
            assert_eq!(parse_hex_magnitude(&format!("{n:x}")).unwrap(), Some(U256::from(n)));
        }
        for s in ["", " 1", "1 ", "+1", "-1", "1_0", "g", "x1", "0x1", "\u{661}", "1.0"] {
            assert_eq!(parse_hex_magnitude(s).unwrap_err().code, Code::NonCanonicalNumber, "{s:?}");
        }
    }
}
