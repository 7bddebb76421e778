//! Cost and behaviour of the batch path on fixed mixes (the differential check over random
//! mixes is `check_authenticate` in tests/common/fuzz_checks.rs).

use super::*;
use crate::signature::SignaturePolicy;

struct Payer {
    sk: secp256k1::SecretKey,
    address: Address,
}

fn payer(i: u32) -> Payer {
    let mut b = [0x22u8; 32];
    b[28..].copy_from_slice(&i.to_be_bytes());
    let sk = secp256k1::SecretKey::from_secret_bytes(b).unwrap();
    let full = secp256k1::PublicKey::from_secret_key(&sk).serialize_uncompressed();
    Payer { sk, address: Address::from_raw_public_key(&full[1..]) }
}

fn item(p: &Payer, j: u32) -> SigItem {
    use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
    let d = keccak256([p.address.as_slice(), &j.to_be_bytes()].concat());
    let (id, rs) = RecoverableSignature::sign_ecdsa_recoverable(secp256k1::Message::from_digest(d.0), &p.sk).serialize_compact();
    let mut b = [0u8; 65];
    b[..64].copy_from_slice(&rs);
    b[64] = 27 + u8::from(id == RecoveryId::One);
    SigItem { digest: Digest(d), signature: Signature::parse(&b, &SignaturePolicy::permit2()).unwrap(), claimed: p.address, session: None }
}

fn flip_v(it: &SigItem) -> SigItem {
    let mut b = it.signature.to_rsv_bytes();
    b[64] ^= 27 ^ 28;
    SigItem { signature: Signature::parse(&b, &SignaturePolicy::permit2()).unwrap(), ..*it }
}

fn batch(payers: &[Payer], n: usize) -> Vec<SigItem> {
    (0..n).map(|i| item(&payers[i % payers.len()], i as u32)).collect()
}

fn reference(items: &[SigItem]) -> Vec<Result<Address>> {
    items.iter().map(|it| it.signature.recover_address_from_prehash(&it.digest)).collect()
}

/// Runs a batch on a cache warmed with every payer's key, and returns the work it did.
fn warm_run(payers: &[Payer], items: &[SigItem]) -> Stats {
    let auth = Authenticator::new(1024);
    let warmup: Vec<SigItem> = payers.iter().map(|p| item(p, 1_000_000)).collect();
    auth.authenticate(&warmup);
    let before = auth.stats();
    assert_eq!(auth.authenticate(items), reference(items));
    let after = auth.stats();
    Stats {
        key_cache_hits: after.key_cache_hits - before.key_cache_hits,
        key_cache_misses: after.key_cache_misses - before.key_cache_misses,
        key_cache_size: after.key_cache_size,
        batch_verified: after.batch_verified - before.batch_verified,
        recovered: after.recovered - before.recovered,
        batch_checks: after.batch_checks - before.batch_checks,
        failed_checks: after.failed_checks - before.failed_checks,
        bisections: after.bisections - before.bisections,
        located: after.located - before.located,
        points_multiplied: after.points_multiplied - before.points_multiplied,
        fallbacks: after.fallbacks - before.fallbacks,
        session_hits: after.session_hits - before.session_hits,
        session_size: after.session_size,
    }
}

#[test]
fn cold_cache_recovers_and_learns_then_batches() {
    let payers: Vec<Payer> = (0..4).map(payer).collect();
    let items = batch(&payers, 40);
    let auth = Authenticator::new(16);
    assert_eq!(auth.authenticate(&items), reference(&items));
    let s = auth.stats();
    assert_eq!((s.recovered, s.batch_verified, s.key_cache_size), (40, 0, 4));
    assert_eq!(auth.authenticate(&items), reference(&items));
    let s = auth.stats();
    assert_eq!((s.recovered, s.batch_verified, s.batch_checks), (40, 40, 1));
}

#[test]
fn off_means_recovery_only() {
    let payers: Vec<Payer> = (0..2).map(payer).collect();
    let items = batch(&payers, 20);
    let auth = Authenticator::new(0);
    for _ in 0..2 {
        assert_eq!(auth.authenticate(&items), reference(&items));
    }
    let s = auth.stats();
    assert_eq!((s.recovered, s.batch_verified, s.key_cache_size, s.key_cache_hits), (40, 0, 0, 0));
}

#[test]
fn failed_recoveries_and_mismatches_never_enter_the_cache() {
    let payers: Vec<Payer> = (0..3).map(payer).collect();
    let mut items = batch(&payers, 12);
    for it in items.iter_mut().take(6) {
        *it = flip_v(it); // recovers to some other key
    }
    items[7].claimed = Address::repeat_byte(7); // good signature, claimed for an unrelated payer
    let auth = Authenticator::new(64);
    assert_eq!(auth.authenticate(&items), reference(&items));
    // Only the payers with an item that recovered to them are cached.
    let learned: Vec<bool> = payers.iter().map(|p| auth.keys().get(&p.address).is_some()).collect();
    let expected: Vec<bool> = payers.iter().map(|p| items.iter().skip(6).any(|it| it.claimed == p.address)).collect();
    assert_eq!(learned, expected);
    assert!(auth.keys().get(&Address::repeat_byte(7)).is_none());
    assert_eq!(auth.keys().len(), expected.iter().filter(|b| **b).count());
}

#[test]
fn clean_batch_is_one_check_of_n_plus_keys_plus_g_points() {
    let payers: Vec<Payer> = (0..16).map(payer).collect();
    let items = batch(&payers, 256);
    let s = warm_run(&payers, &items);
    // The probe (a run of 16 in payer order: one or two payers) and the rest: two checks, no
    // recovery, each point multiplied once.
    assert_eq!((s.recovered, s.batch_verified, s.batch_checks, s.failed_checks), (0, 256, 2, 0));
    assert!((256 + 16 + 2..=256 + 16 + 4).contains(&s.points_multiplied), "{s:?}");
}

#[test]
fn one_bad_item_in_256_is_named_by_one_extra_sum() {
    let payers: Vec<Payer> = (0..16).map(payer).collect();
    for bad in [3usize, 100, 255] {
        let mut items = batch(&payers, 256);
        items[bad] = flip_v(&items[bad]);
        let s = warm_run(&payers, &items);
        assert_eq!((s.recovered, s.batch_verified, s.located, s.bisections), (1, 255, 1, 0), "bad at {bad}");
        // At most: probe + rest, one of them twice (the locating sum).
        assert!(s.points_multiplied <= 2 * (16 + 2 + 1) + 2 * (240 + 16 + 1), "bad at {bad}: {s:?}");
    }
}

#[test]
fn half_bad_costs_recovery_plus_the_probe() {
    let payers: Vec<Payer> = (0..16).map(payer).collect();
    let mut items = batch(&payers, 256);
    // Every other item of each payer (so of any run in payer order) is bad.
    for i in (0..256).filter(|i| (i / 16) % 2 == 0) {
        items[i] = flip_v(&items[i]);
    }
    let s = warm_run(&payers, &items);
    // The probe finds two or more bad and everything is recovered: the only extra work is
    // the probe's two sums over 16 items.
    assert_eq!((s.recovered, s.batch_verified, s.failed_checks, s.bisections), (256, 0, 1, 0));
    assert!(s.points_multiplied <= 2 * (16 + 2 + 1), "{s:?}");
    assert_eq!(s.fallbacks, 256);
}

#[test]
fn planted_bad_items_cannot_force_more_than_the_budget() {
    // Two bad items in every 32: the adversary's best case for bisection.
    let payers: Vec<Payer> = (0..4).map(payer).collect();
    let mut items = batch(&payers, 512);
    let mut order: Vec<usize> = (0..512).collect();
    order.sort_by_key(|&i| i % 4); // the order the batch path sorts into (by payer)
    for (pos, &i) in order.iter().enumerate() {
        if pos % 32 < 2 {
            items[i] = flip_v(&items[i]);
        }
    }
    let s = warm_run(&payers, &items);
    // Failed checks may cost at most the budget plus the one check that crossed it, besides
    // the checks that passed (at most one pass over everything).
    let budget = BUDGET_PASSES * (512 + 4 + 1);
    assert!(s.points_multiplied <= budget + 2 * (512 + 4 + 1) + (512 + 4 + 1), "{s:?}");
    assert!(s.fallbacks > 0, "{s:?}");
}

#[test]
fn two_bad_items_are_named_after_one_split() {
    let payers: Vec<Payer> = (0..8).map(payer).collect();
    let mut items = batch(&payers, 60);
    // In payer order (8 items a payer) item 1 is 9th and item 7 is 57th: one in each half.
    items[1] = flip_v(&items[1]);
    items[7] = flip_v(&items[7]);
    let s = warm_run(&payers, &items);
    assert_eq!((s.recovered, s.batch_verified, s.fallbacks), (2, 58, 0), "{s:?}");
    assert_eq!((s.bisections, s.located, s.failed_checks), (1, 2, 3), "{s:?}");
}

#[test]
fn small_batches_and_unliftable_r_go_to_recovery() {
    let payers: Vec<Payer> = (0..2).map(payer).collect();
    let items = batch(&payers, MIN_BATCH - 1);
    let s = warm_run(&payers, &items);
    assert_eq!((s.recovered, s.batch_checks), (MIN_BATCH as u64 - 1, 0));
    // r = 5 is no point's x: recovery gives the error, the rest still batch.
    let mut items = batch(&payers, 20);
    let mut b = items[4].signature.to_rsv_bytes();
    b[..32].fill(0);
    b[31] = 5;
    items[4].signature = Signature::parse(&b, &SignaturePolicy::permit2()).unwrap();
    let s = warm_run(&payers, &items);
    assert_eq!((s.recovered, s.batch_verified), (1, 19));
}

#[test]
fn sessions_remember_good_signatures_until_their_deadline_only() {
    let p = payer(1);
    let good = SigItem { session: Some(Session { now: 100, expires: 200 }), ..item(&p, 5) };
    let bad = SigItem { session: Some(Session { now: 100, expires: 200 }), ..flip_v(&item(&p, 6)) };
    let auth = Authenticator::new(16);
    let items = [good, bad];
    assert_eq!(auth.authenticate(&items), reference(&items));
    assert_eq!((auth.stats().recovered, auth.stats().session_size), (2, 1));
    // Presented again: the good one needs no curve work, the bad one is recovered again.
    assert_eq!(auth.authenticate(&items), reference(&items));
    let s = auth.stats();
    assert_eq!((s.session_hits, s.recovered), (1, 3));
    // At the deadline still; past it, recovered again.
    let at = |now| SigItem { session: Some(Session { now, expires: 200 }), ..good };
    assert_eq!(auth.authenticate(&[at(200)]), reference(&[good]));
    assert_eq!(auth.stats().session_hits, 2);
    assert_eq!(auth.authenticate(&[at(201)]), reference(&[good]));
    assert_eq!((auth.stats().session_hits, auth.stats().recovered), (2, 4));
    // The same signature claimed for another payer is not vouched for.
    let other = SigItem { claimed: payer(2).address, ..at(150) };
    assert_eq!(auth.authenticate(&[other]), reference(&[other]));
    assert_eq!(auth.stats().session_hits, 3 - 1);
    // Without a session, nothing is remembered or used.
    let plain = Authenticator::new(16);
    let no_session = [item(&p, 5), item(&p, 5)];
    plain.authenticate(&no_session);
    plain.authenticate(&no_session);
    assert_eq!((plain.stats().session_hits, plain.stats().session_size), (0, 0));
}
