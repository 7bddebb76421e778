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
    run_counted(&auth, items)
}

/// The work `auth` does on `items` (checked against recovery).
fn run_counted(auth: &Authenticator, items: &[SigItem]) -> Stats {
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
fn a_wary_clean_batch_is_its_scouts_the_probe_and_one_check_of_the_rest() {
    let payers: Vec<Payer> = (0..16).map(payer).collect();
    let items = batch(&payers, 256);
    let s = warm_run(&payers, &items);
    // The scouts recovered, then the probe (32 random items, so up to 16 keys) and the rest:
    // two checks, each item's R multiplied once, each key at most twice.
    let checked = 256 - SCOUTS as u64;
    assert_eq!((s.recovered, s.batch_verified, s.batch_checks, s.failed_checks), (SCOUTS as u64, checked, 2, 0));
    assert!((checked + 16 + 2 + 1..=checked + 32 + 2).contains(&s.points_multiplied), "{s:?}");
}

#[test]
fn one_bad_item_in_256_is_named_by_one_extra_sum() {
    let payers: Vec<Payer> = (0..16).map(payer).collect();
    for bad in [3usize, 100, 255] {
        let mut items = batch(&payers, 256);
        items[bad] = flip_v(&items[bad]);
        let s = warm_run(&payers, &items);
        let scouts = SCOUTS as u64;
        if s.located == 0 {
            // A scout (8/256 likely): recovered first, and the rest checked clean.
            assert_eq!((s.recovered, s.batch_verified, s.failed_checks, s.bisections), (scouts, 256 - scouts, 0, 0), "bad at {bad}");
        } else {
            assert_eq!((s.recovered, s.batch_verified, s.located, s.bisections), (scouts + 1, 255 - scouts, 1, 0), "bad at {bad}");
        }
        // At most: probe + rest, one of them twice (the locating sum).
        assert!(s.points_multiplied <= 2 * (32 + 16 + 1) + 2 * (216 + 16 + 1), "bad at {bad}: {s:?}");
    }
}

/// Points multiplied per recovery's worth of work, at most: measured, a point of a check over
/// 32 items costs about a fifth of a recovery, and less in larger checks (`cargo bench
/// --bench core -- authenticate`).
const POINTS_PER_RECOVERY: u64 = 4;

#[test]
fn half_bad_costs_recovery_plus_the_probe() {
    let payers: Vec<Payer> = (0..16).map(payer).collect();
    // Half of each payer's items bad, in blocks and at random places: two or more of the 8
    // random scouts are bad (but for a 9/256 chance), and everything is recovered with no
    // check; else the random probe holds two or more (a probe of 32 from a half-bad batch
    // misses this with probability 33·2⁻³², about 8·10⁻⁹), and the only extra work is its
    // two sums.
    for pattern in 0..3 {
        let mut items = batch(&payers, 256);
        for (i, it) in items.iter_mut().enumerate() {
            let bad = match pattern {
                0 => (i / 16) % 2 == 0,
                1 => i % 2 == 0, // whole payers bad: 0, 2, 4, ...
                _ => keccak256((i as u32).to_be_bytes()).0[0] & 1 == 0,
            };
            if bad {
                *it = flip_v(it);
            }
        }
        let s = warm_run(&payers, &items);
        assert_eq!((s.recovered, s.batch_verified, s.bisections, s.fallbacks), (256, 0, 0, 256 - SCOUTS as u64), "{s:?}");
        assert!(s.failed_checks <= 1 && s.points_multiplied <= 2 * (32 + 16 + 1), "{s:?}");
        // In recoveries' worth: per-item recovery (256) + 10% at most.
        assert!(s.recovered * POINTS_PER_RECOVERY + s.points_multiplied <= 256 * POINTS_PER_RECOVERY * 11 / 10, "{s:?}");
    }
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
    let mut items = batch(&payers, 512);
    // One bad item of payer 0 and one of payer 7: in payer order, one in each half.
    items[8] = flip_v(&items[8]);
    items[15] = flip_v(&items[15]);
    let s = warm_run(&payers, &items);
    let scouts = SCOUTS as u64;
    match s.fallbacks {
        // Each bad item a scout, or named (in the probe, which names its one bad item, or in
        // the half of the rest it falls in after one split).
        0 => {
            assert!(s.located <= 2 && (s.recovered, s.batch_verified) == (scouts + s.located, 512 - scouts - s.located), "{s:?}");
            assert!(s.bisections <= 1 && s.failed_checks <= 3, "{s:?}");
        }
        // Both scouts, or both in the probe: the batch is recovered.
        _ => assert_eq!((s.recovered, s.batch_verified, s.fallbacks, s.bisections), (512, 0, 512 - scouts, 0), "{s:?}"),
    }
}

#[test]
fn a_small_batch_with_two_bad_items_is_split_once() {
    // Below PROBE_FROM there is no probe: sorted by payer (8 items a payer), item 1 is 9th and
    // item 7 is 57th, one in each half.
    let payers: Vec<Payer> = (0..8).map(payer).collect();
    let mut items = batch(&payers, 60);
    items[1] = flip_v(&items[1]);
    items[7] = flip_v(&items[7]);
    let s = warm_run(&payers, &items);
    assert_eq!((s.recovered, s.batch_verified, s.fallbacks), (2, 58, 0), "{s:?}");
    assert_eq!((s.bisections, s.located, s.failed_checks), (1, 2, 3), "{s:?}");
}

/// A check whose naming lies: when some item is bad, it names a good one (the first item whose
/// own check holds). The authenticator must recover the named item, see that it is good, and
/// not accept the others on the naming's word.
fn lying_check(items: &[Prepared], key_of: &[u32], keys: &[PublicKey], locate: bool) -> std::result::Result<secp_batch::Outcome, secp_batch::Error> {
    let mut outcome = secp_batch::check(items, key_of, keys, locate)?;
    if !outcome.holds && locate {
        outcome.bad = (0..items.len()).find(|&i| secp_batch::check(&items[i..=i], &key_of[i..=i], keys, false).is_ok_and(|o| o.holds));
    }
    Ok(outcome)
}

#[test]
fn a_named_bad_item_is_confirmed_by_recovery() {
    let payers: Vec<Payer> = (0..4).map(payer).collect();
    for n in [40usize, 300] {
        let mut items = batch(&payers, n);
        for b in [5usize, n / 2, n - 1] {
            items[b] = flip_v(&items[b]);
        }
        let mut auth = Authenticator::new(64);
        auth.checker = lying_check;
        let warmup: Vec<SigItem> = payers.iter().map(|p| item(p, 1_000_000)).collect();
        auth.authenticate(&warmup);
        assert_eq!(auth.authenticate(&items), reference(&items), "n = {n}");
        assert_eq!(auth.stats().located, 0, "a wrongly named item was counted as located");
        // With one bad item, the lie names a good one: that item is recovered, and the rest is
        // still not taken on the failed check's word.
        let mut one = batch(&payers, n);
        one[n / 3] = flip_v(&one[n / 3]);
        assert_eq!(auth.authenticate(&one), reference(&one), "n = {n}, one bad");
    }
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

fn half_bad(payers: &[Payer], n: usize, salt: u32) -> Vec<SigItem> {
    (0..n).map(|i| item(&payers[i % payers.len()], salt + i as u32)).map(|it| if keccak256(it.digest.0).0[0] & 1 == 0 { flip_v(&it) } else { it }).collect()
}

#[test]
fn clean_calls_in_a_row_turn_the_probe_off_and_a_failure_turns_it_on() {
    let payers: Vec<Payer> = (0..16).map(payer).collect();
    let auth = Authenticator::new(1024);
    auth.authenticate(&payers.iter().map(|p| item(p, 1_000_000)).collect::<Vec<_>>());
    let clean = |salt: u32| -> Vec<SigItem> { (0..256).map(|i| item(&payers[i % 16], salt + i as u32)).collect() };
    // Wary from the start: scouts, the probe and the rest, for CLEAN_CALLS calls.
    for c in 0..CLEAN_CALLS {
        assert!(auth.wary());
        let s = run_counted(&auth, &clean(10_000 * (c + 1)));
        assert_eq!((s.batch_checks, s.batch_verified, s.recovered), (2, 256 - SCOUTS as u64, SCOUTS as u64), "call {c}: {s:?}");
    }
    // Trusting: the scouts, then one check of the rest, each point once.
    assert!(!auth.wary());
    let s = run_counted(&auth, &clean(500_000));
    let rest = 256 - SCOUTS as u64;
    assert_eq!((s.recovered, s.batch_checks, s.batch_verified, s.points_multiplied), (SCOUTS as u64, 1, rest, rest + 16 + 1), "{s:?}");
    // A half-bad batch: the scouts send it to recovery (but for 9/256: then the check of the
    // rest fails and the probe drawn from it does), at most one pass and the probe's two sums
    // over recovery.
    let s = run_counted(&auth, &half_bad(&payers, 256, 600_000));
    assert_eq!((s.recovered, s.batch_verified, s.bisections), (256, 0, 0), "{s:?}");
    assert!(s.failed_checks <= 2 && s.points_multiplied <= (rest + 16 + 1) + 2 * (32 + 16 + 1), "{s:?}");
    // Wary again: the next half-bad batch costs what it does on a new verifier.
    assert!(auth.wary());
    let s = run_counted(&auth, &half_bad(&payers, 256, 700_000));
    assert_eq!((s.recovered, s.fallbacks), (256, 256 - SCOUTS as u64), "{s:?}");
    assert!(s.failed_checks <= 1 && s.points_multiplied <= 2 * (32 + 16 + 1), "{s:?}");
    // And one clean call is not a clean run.
    run_counted(&auth, &clean(800_000));
    assert!(auth.wary());
}

#[test]
fn a_trusting_call_names_one_bad_item_and_splits_two() {
    let payers: Vec<Payer> = (0..16).map(payer).collect();
    for bads in [vec![3usize], vec![100], vec![255], vec![3, 252]] {
        let mut items = batch(&payers, 256);
        for &b in &bads {
            items[b] = flip_v(&items[b]);
        }
        let auth = Authenticator::new(1024);
        auth.authenticate(&payers.iter().map(|p| item(p, 1_000_000)).collect::<Vec<_>>());
        auth.trust_history();
        let s = run_counted(&auth, &items);
        let n_bad = bads.len() as u64;
        assert_eq!(s.batch_verified + s.recovered, 256, "{bads:?}: {s:?}");
        if s.fallbacks == 0 {
            // The scouts drawn after the failed check, and each bad item a scout or named.
            assert!(s.located <= n_bad && s.recovered == SCOUTS as u64 + s.located, "{bads:?}: {s:?}");
        } else {
            // Both bad items among the scouts or in the probe (about 2.5% likely).
            assert_eq!((n_bad, s.recovered), (2, 256), "{bads:?}: {s:?}");
        }
        // At most: the failed whole check, the probe twice, the rest twice, and for two bad
        // items (of payers 3 and 12, so in the two halves of the rest sorted by payer) one
        // split, each half twice.
        let pass = 256 + 16 + 1;
        assert!(s.points_multiplied <= pass + 2 * (32 + 16 + 1) + 2 * pass + 2 * pass, "{bads:?}: {s:?}");
        assert!(auth.wary());
    }
}
