//! Strict parsers for the atoms of payment data: digests, addresses, canonical integers, hex.

mod address;
mod digest;
mod hex;
mod integer;

pub use address::{checksum, parse_address};
pub use digest::{eip712_signing_digest, Digest};
pub(crate) use hex::decode_hex_into;
pub use hex::parse_hex_prefixed;
pub use integer::parse_uint_decimal;
pub(crate) use integer::{decimal_to_u256, parse_decimal_magnitude, parse_hex_magnitude};

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
