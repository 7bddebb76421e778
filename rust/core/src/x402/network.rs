//! Network identifiers: CAIP-2 `eip155:<chainId>` (x402 v2) and the v1 names.

use std::collections::HashMap;

/// x402 v1 network names (TypeScript `EVM_NETWORK_CHAIN_ID_MAP`), extendable per verifier.
pub const V1_NETWORKS: &[(&str, u64)] = &[
    ("ethereum", 1),
    ("sepolia", 11_155_111),
    ("base", 8453),
    ("base-sepolia", 84_532),
    ("abstract", 2741),
    ("abstract-testnet", 11_124),
    ("avalanche-fuji", 43_113),
    ("avalanche", 43_114),
    ("iotex", 4689),
    ("sei", 1329),
    ("sei-testnet", 1328),
    ("polygon", 137),
    ("polygon-amoy", 80_002),
    ("peaq", 3338),
    ("story", 1514),
    ("educhain", 41_923),
    ("skale-base-sepolia", 324_705_682),
    ("megaeth", 4326),
    ("monad", 143),
    ("stable", 988),
    ("stable-testnet", 2201),
];

/// The default v1 name table.
pub fn default_names() -> HashMap<String, u64> {
    V1_NETWORKS.iter().map(|(n, id)| ((*n).to_owned(), *id)).collect()
}

/// Parses `eip155:<decimal chain id>` strictly (no sign, no leading zeros, fits u64, not 0).
pub fn parse_caip2(network: &str) -> Option<u64> {
    let digits = network.strip_prefix("eip155:")?;
    let b = digits.as_bytes();
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) || b[0] == b'0' {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caip2() {
        assert_eq!(parse_caip2("eip155:8453"), Some(8453));
        for bad in ["eip155:", "eip155:0", "eip155:08453", "eip155:+1", "eip155:1 ", "base", "solana:abc", "eip155:99999999999999999999"] {
            assert_eq!(parse_caip2(bad), None, "{bad}");
        }
    }
}
