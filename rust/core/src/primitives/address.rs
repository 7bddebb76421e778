//! Addresses: strict parsing with the EIP-55 checksum, and checksummed printing.

use alloy_primitives::Address;

use super::hex::decode_hex_into;
use super::trunc;
use crate::error::{fail, Code, Error, Result};

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
}
