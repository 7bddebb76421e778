//! `0x`-prefixed hex byte strings.

use super::trunc;
use crate::error::{fail, Code, Error, Result};

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

/// The value of one hex digit of either case; `None` for anything else.
pub(super) fn nibble(c: u8) -> Option<u8> {
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
    // const-hex (alloy's `hex`: SIMD where the CPU has it) strips a leading `0x` itself, which
    // here could only come from a doubled prefix: the length check above then fails its own.
    alloy_primitives::hex::decode_to_slice(hex, out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex() {
        assert_eq!(parse_hex_prefixed("0x", Code::InvalidBytes).unwrap(), Vec::<u8>::new());
        assert_eq!(parse_hex_prefixed("0xAbff", Code::InvalidBytes).unwrap(), vec![0xab, 0xff]);
        for s in ["abff", "0xabf", "0xgg", "0X00", "0x0x00", "0x0X", "0x 0", "0x+f", "0x\u{e9}"] {
            assert!(parse_hex_prefixed(s, Code::InvalidBytes).is_err(), "{s}");
        }
    }

    #[test]
    fn decodes_exactly_the_digit_pairs() {
        // Every byte value in both cases, and every non-digit at each place of a pair.
        for b in 0..=255u8 {
            for text in [format!("{b:02x}"), format!("{b:02X}")] {
                let mut out = [0u8; 1];
                assert_eq!(decode_hex_into(text.as_bytes(), &mut out), Some(()), "{text}");
                assert_eq!(out[0], b);
            }
            if nibble(b).is_none() {
                for pair in [[b, b'0'], [b'0', b]] {
                    assert_eq!(decode_hex_into(&pair, &mut [0u8; 1]), None, "{pair:?}");
                }
            }
        }
        let mut out = [0u8; 20];
        assert_eq!(decode_hex_into(b"0x00000000000000000000000000000000000000", &mut out), None);
        assert_eq!(decode_hex_into(&[b'a'; 38], &mut out), None);
    }
}
