//! The EIP-712 digests x402 signs, built directly from fixed type hashes.
//!
//! The generic encoder (`crate::eip712`) would give the same bytes from a JSON document; this
//! path skips building one, and a test checks both agree. Type strings are copied from the
//! contracts (USDC `EIP3009.sol`, Permit2 `PermitHash.sol`, x402's Permit2 proxies).

use std::cell::RefCell;
use std::sync::LazyLock;
use std::thread::LocalKey;

use alloy_primitives::{keccak256, Address, B256, U256};

use super::payload::{Eip3009Authorization, Permit2Authorization};
use crate::primitives::{eip712_signing_digest, Digest};

/// Canonical Permit2, the same address on every chain.
pub const PERMIT2_ADDRESS: Address = alloy_primitives::address!("000000000022D473030F116dDEE9F6B43aC78BA3");

pub(crate) const EIP3009_DOMAIN_TYPE: &str = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
pub(crate) const TRANSFER_WITH_AUTHORIZATION_TYPE: &str =
    "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)";
pub(crate) const PERMIT2_DOMAIN_TYPE: &str = "EIP712Domain(string name,uint256 chainId,address verifyingContract)";
pub(crate) const TOKEN_PERMISSIONS_TYPE: &str = "TokenPermissions(address token,uint256 amount)";
pub(crate) const EXACT_WITNESS_TYPE: &str = "Witness(address to,uint256 validAfter)";
pub(crate) const UPTO_WITNESS_TYPE: &str = "Witness(address to,address facilitator,uint256 validAfter)";
const PERMIT_WITNESS_STUB: &str = "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,Witness witness)";

struct TypeHashes {
    eip3009_domain: B256,
    transfer_with_authorization: B256,
    permit2_domain: B256,
    permit2_name: B256,
    token_permissions: B256,
    exact_witness: B256,
    upto_witness: B256,
    exact_permit: B256,
    upto_permit: B256,
}

static HASHES: LazyLock<TypeHashes> = LazyLock::new(|| TypeHashes {
    eip3009_domain: keccak256(EIP3009_DOMAIN_TYPE),
    transfer_with_authorization: keccak256(TRANSFER_WITH_AUTHORIZATION_TYPE),
    permit2_domain: keccak256(PERMIT2_DOMAIN_TYPE),
    permit2_name: keccak256("Permit2"),
    token_permissions: keccak256(TOKEN_PERMISSIONS_TYPE),
    exact_witness: keccak256(EXACT_WITNESS_TYPE),
    upto_witness: keccak256(UPTO_WITNESS_TYPE),
    exact_permit: keccak256(format!("{PERMIT_WITNESS_STUB}{TOKEN_PERMISSIONS_TYPE}{EXACT_WITNESS_TYPE}")),
    upto_permit: keccak256(format!("{PERMIT_WITNESS_STUB}{TOKEN_PERMISSIONS_TYPE}{UPTO_WITNESS_TYPE}")),
});

/// keccak256 of 32-byte words, without building a Vec.
fn hash_words<const N: usize>(words: [&[u8; 32]; N]) -> B256 {
    let mut h = alloy_primitives::Keccak256::new();
    for w in words {
        h.update(w);
    }
    h.finalize()
}

fn word_u256(v: &U256) -> [u8; 32] {
    v.to_be_bytes::<32>()
}

fn word_addr(a: &Address) -> [u8; 32] {
    a.into_word().0
}

/// The hash kept in `slot` when its key `matches`; otherwise `hash()`, kept under `key()`.
/// Gateways hash the same domain and price on nearly every payment: one entry per thread
/// catches that without locks, and a different input only costs the hash it needed anyway.
fn remembered<K: 'static>(
    slot: &'static LocalKey<RefCell<Option<(K, B256)>>>,
    matches: impl FnOnce(&K) -> bool,
    key: impl FnOnce() -> K,
    hash: impl FnOnce() -> B256,
) -> B256 {
    slot.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((k, h)) if matches(k) => *h,
            _ => {
                let h = hash();
                *last = Some((key(), h));
                h
            }
        }
    })
}

/// A token's EIP-712 domain: name, version, chain id, contract.
type Eip3009Domain = (String, String, u64, Address);

/// The USDC-style domain separator: `EIP712Domain(name, version, chainId, verifyingContract)`.
pub fn eip3009_domain_separator(name: &str, version: &str, chain_id: u64, token: &Address) -> B256 {
    thread_local! {
        static LAST: RefCell<Option<(Eip3009Domain, B256)>> = const { RefCell::new(None) };
    }
    remembered(
        &LAST,
        |(n, v, c, t)| n == name && v == version && *c == chain_id && t == token,
        || (name.to_owned(), version.to_owned(), chain_id, *token),
        || {
            let h = &*HASHES;
            hash_words([&h.eip3009_domain.0, &keccak256(name).0, &keccak256(version).0, &word_u256(&U256::from(chain_id)), &word_addr(token)])
        },
    )
}

/// The digest a `TransferWithAuthorization` signature signs.
pub fn eip3009_digest(domain_separator: &B256, a: &Eip3009Authorization) -> Digest {
    let h = &*HASHES;
    let struct_hash = hash_words([
        &h.transfer_with_authorization.0,
        &word_addr(&a.from),
        &word_addr(&a.to),
        &word_u256(&a.value),
        &word_u256(&a.valid_after),
        &word_u256(&a.valid_before),
        &a.nonce.0,
    ]);
    eip712_signing_digest(domain_separator, &struct_hash)
}

/// Permit2's domain separator on a chain (no `version` member).
pub fn permit2_domain_separator(chain_id: u64) -> B256 {
    thread_local! {
        static LAST: RefCell<Option<(u64, B256)>> = const { RefCell::new(None) };
    }
    remembered(
        &LAST,
        |c| *c == chain_id,
        || chain_id,
        || {
            let h = &*HASHES;
            hash_words([&h.permit2_domain.0, &h.permit2_name.0, &word_u256(&U256::from(chain_id)), &word_addr(&PERMIT2_ADDRESS)])
        },
    )
}

/// `TokenPermissions(token, amount)`: a route's price in a route's token.
fn token_permissions_hash(token: &Address, amount: &U256) -> B256 {
    thread_local! {
        static LAST: RefCell<Option<((Address, U256), B256)>> = const { RefCell::new(None) };
    }
    remembered(
        &LAST,
        |(t, a)| t == token && a == amount,
        || (*token, *amount),
        || hash_words([&HASHES.token_permissions.0, &word_addr(token), &word_u256(amount)]),
    )
}

/// `to`, the upto `facilitator`, `validAfter`.
type Witness = (Address, Option<Address>, U256);

/// The witness struct's hash. Remembered like the token's: payments of one route share `to`,
/// and clients that set `validAfter` from their clock share it within a second.
fn witness_hash(to: &Address, facilitator: Option<&Address>, valid_after: &U256) -> B256 {
    thread_local! {
        static LAST: RefCell<Option<(Witness, B256)>> = const { RefCell::new(None) };
    }
    let h = &*HASHES;
    remembered(
        &LAST,
        |(t, f, v)| t == to && f.as_ref() == facilitator && v == valid_after,
        || (*to, facilitator.copied(), *valid_after),
        || match facilitator {
            Some(f) => hash_words([&h.upto_witness.0, &word_addr(to), &word_addr(f), &word_u256(valid_after)]),
            None => hash_words([&h.exact_witness.0, &word_addr(to), &word_u256(valid_after)]),
        },
    )
}

/// The digest of x402's `PermitWitnessTransferFrom`; the upto witness when `facilitator` is set.
pub fn permit2_witness_digest(domain_separator: &B256, a: &Permit2Authorization) -> Digest {
    let h = &*HASHES;
    let permitted = token_permissions_hash(&a.token, &a.amount);
    let witness = witness_hash(&a.to, a.facilitator.as_ref(), &a.valid_after);
    let permit_type = if a.facilitator.is_some() { &h.upto_permit } else { &h.exact_permit };
    let struct_hash = hash_words([&permit_type.0, &permitted.0, &word_addr(&a.spender), &word_u256(&a.nonce), &word_u256(&a.deadline), &witness.0]);
    eip712_signing_digest(domain_separator, &struct_hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::parse_address;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn typehashes_match_the_contracts() {
        let h = &*HASHES;
        assert_eq!(hex(h.transfer_with_authorization.as_slice()), "7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267");
        assert_eq!(hex(h.exact_permit.as_slice()), "ebc156cd23678a74c94df13d772ef5478420637f0c94bd10d509e1dc98f521c7");
        assert_eq!(hex(h.upto_permit.as_slice()), "51dff6974ad4388c499e7fcfe838d2bd767162553a144098ce20ea661d70c2ee");
        assert_eq!(hex(permit2_domain_separator(8453).as_slice()), "3b6f35e4fce979ef8eac3bcdc8c3fc38fe7911bb0c69c8fe72bf1fd1a17e6f07");
        assert_eq!(hex(permit2_domain_separator(1).as_slice()), "866a5aba21966af95d6c7ab78eb2b2fc913915c28be3b9aa07cc04ff903e3f28");
        let usdc = parse_address("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913").unwrap();
        assert_eq!(hex(eip3009_domain_separator("USD Coin", "2", 8453, &usdc).as_slice()), "02fa7265e7c5d81118673727957699e4d68f74cd74b7db77da710fe8a2c7834f");
    }

    #[test]
    fn remembered_separators_follow_their_inputs() {
        let usdc = parse_address("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913").unwrap();
        let other = parse_address("0x036CbD53842c5426634e7929541eC2318f3dCF7e").unwrap();
        let h = &*HASHES;
        let fresh = |name: &str, version: &str, chain: u64, token: &Address| {
            hash_words([&h.eip3009_domain.0, &keccak256(name).0, &keccak256(version).0, &word_u256(&U256::from(chain)), &word_addr(token)])
        };
        let inputs = [
            ("USD Coin", "2", 8453, usdc),
            ("USD Coin", "2", 8453, other),
            ("USDC", "2", 8453, usdc),
            ("USD Coin", "1", 8453, usdc),
            ("USD Coin", "2", 1, usdc),
        ];
        for _ in 0..2 {
            for (n, v, c, t) in inputs.iter().chain(inputs.iter().rev()) {
                assert_eq!(eip3009_domain_separator(n, v, *c, t), fresh(n, v, *c, t));
            }
        }
        let amounts = [U256::from(1), U256::from(2), U256::MAX, U256::from(1)];
        for (token, amount) in [usdc, other, usdc].iter().flat_map(|t| amounts.iter().map(move |a| (t, a))) {
            assert_eq!(token_permissions_hash(token, amount), hash_words([&h.token_permissions.0, &word_addr(token), &word_u256(amount)]));
        }
        // Each witness field alone changes, then returns: a remembered hash is never another's.
        let witnesses = [
            (usdc, None, U256::from(7)),
            (other, None, U256::from(7)),
            (other, Some(usdc), U256::from(7)),
            (other, Some(other), U256::from(7)),
            (other, Some(other), U256::from(8)),
            (other, None, U256::from(8)),
        ];
        for (to, f, after) in witnesses.iter().chain(witnesses.iter().rev()).chain(witnesses.iter()) {
            let fresh = match f {
                Some(f) => hash_words([&h.upto_witness.0, &word_addr(to), &word_addr(f), &word_u256(after)]),
                None => hash_words([&h.exact_witness.0, &word_addr(to), &word_u256(after)]),
            };
            assert_eq!(witness_hash(to, f.as_ref(), after), fresh);
        }
        for chain in [8453, 1, 8453, 84_532, 84_532, 1] {
            let fresh = hash_words([&h.permit2_domain.0, &h.permit2_name.0, &word_u256(&U256::from(chain)), &word_addr(&PERMIT2_ADDRESS)]);
            assert_eq!(permit2_domain_separator(chain), fresh);
        }
    }

    #[test]
    fn reference_digests() {
        // reference/x402-permit2.md §7.5: exact and upto Permit2 on Base Sepolia.
        let mut a = Permit2Authorization {
            from: parse_address("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266").unwrap(),
            token: parse_address("0x036CbD53842c5426634e7929541eC2318f3dCF7e").unwrap(),
            amount: U256::from(10_000),
            spender: parse_address("0x402085c248EeA27D92E8b30b2C58ed07f9E20001").unwrap(),
            nonce: "33247007178036348590600198031289925668252061821958005840077069883511451257277".parse().unwrap(),
            deadline: U256::from(1_740_672_154u64),
            to: parse_address("0x209693Bc6afc0C5328bA36FaF03C514EF312287C").unwrap(),
            valid_after: U256::from(1_740_672_089u64),
            facilitator: None,
        };
        let ds = permit2_domain_separator(84_532);
        assert_eq!(hex(permit2_witness_digest(&ds, &a).as_bytes()), "21528e1468aac114016416353e2309329f217dc180b21baa1d81cde941095685");
        a.spender = parse_address("0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002").unwrap();
        a.amount = U256::from(5_000_000);
        a.facilitator = Some(parse_address("0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap());
        assert_eq!(hex(permit2_witness_digest(&ds, &a).as_bytes()), "22340f12e045f90a2bdf0bb39dd61d8c4674579544873480e8af265f383d4837");
    }
}
