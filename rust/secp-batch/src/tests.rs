//! The batch equation against libsecp256k1's own recovery (through the `secp256k1` crate).

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, SecretKey};

use super::*;

/// The curve order n, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2,
    0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

fn secret(i: u32) -> SecretKey {
    let mut b = [0u8; 32];
    b[28..].copy_from_slice(&(i + 1).to_be_bytes());
    b[0] = 0x5a;
    SecretKey::from_secret_bytes(b).unwrap()
}

fn key(i: u32) -> PublicKey {
    let full = secp256k1::PublicKey::from_secret_key(&secret(i)).serialize_uncompressed();
    PublicKey::from_xy(full[1..].try_into().unwrap()).unwrap()
}

fn digest(i: u32) -> [u8; 32] {
    let mut d = [0u8; 32];
    d[..4].copy_from_slice(&i.to_be_bytes());
    d[31] = 0x77;
    d
}

fn sign(k: u32, d: [u8; 32]) -> SigInput {
    let (id, rs) = RecoverableSignature::sign_ecdsa_recoverable(Message::from_digest(d), &secret(k)).serialize_compact();
    SigInput { r: rs[..32].try_into().unwrap(), s: rs[32..].try_into().unwrap(), z: d, y_odd: id == RecoveryId::One }
}

/// What recovery says: the 64-byte key, or None.
fn recover(s: &SigInput) -> Option<[u8; 64]> {
    let mut rs = [0u8; 64];
    rs[..32].copy_from_slice(&s.r);
    rs[32..].copy_from_slice(&s.s);
    let id = if s.y_odd { RecoveryId::One } else { RecoveryId::Zero };
    let sig = RecoverableSignature::from_compact(&rs, id).ok()?;
    let full = sig.recover_ecdsa(Message::from_digest(s.z)).ok()?.serialize_uncompressed();
    Some(full[1..].try_into().unwrap())
}

fn prepared(sigs: &[SigInput]) -> Vec<Prepared> {
    prepare(sigs).unwrap().into_iter().map(|p| p.expect("prepares")).collect()
}

#[test]
fn tables_hold_g_and_2_128_g() {
    assert!(selftest());
}

#[test]
fn valid_batches_hold_and_count_their_points() {
    let keys: Vec<PublicKey> = (0..5).map(key).collect();
    for n in [1usize, 2, 3, 16, 87, 88, 89, 200] {
        let key_of: Vec<u32> = (0..n as u32).map(|i| i % 5).collect();
        let sigs: Vec<SigInput> = (0..n as u32).map(|i| sign(i % 5, digest(i))).collect();
        let out = check(&prepared(&sigs), &key_of, &keys, false).unwrap();
        assert!(out.holds, "n={n}");
        assert_eq!(out.points, n + n.min(5) + 1, "n={n}");
    }
}

#[test]
fn every_kind_of_bad_item_fails_the_batch_alone_and_among_good_ones() {
    let keys: Vec<PublicKey> = (0..3).map(key).collect();
    let good: Vec<SigInput> = (0..40).map(|i| sign(i % 3, digest(i))).collect();
    let key_of: Vec<u32> = (0..40).map(|i| i % 3).collect();
    let base = sign(1, digest(1000));
    let mut flipped = base;
    flipped.y_odd = !flipped.y_odd;
    let mut corrupt_digest = base;
    corrupt_digest.z[5] ^= 1;
    let other_key = sign(2, digest(1000));
    let mut s_twin = base; // (r, n - s, !parity) recovers the same key: it must hold.
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = N[i] as i16 - base.s[i] as i16 - borrow;
        s_twin.s[i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    s_twin.y_odd = !base.y_odd;
    for (name, bad, holds) in
        [("flipped v", flipped, false), ("corrupted digest", corrupt_digest, false), ("other key", other_key, false), ("s twin", s_twin, true)]
    {
        // Recovery's view, the reference.
        assert_eq!(recover(&bad) == Some(*keys[1].as_xy()), holds, "{name}");
        let alone = check(&prepared(&[bad]), &[1], &keys, false).unwrap();
        assert_eq!(alone.holds, holds, "{name} alone");
        for at in [0usize, 17, 40] {
            let mut sigs = good.clone();
            let mut ks = key_of.clone();
            sigs.insert(at, bad);
            ks.insert(at, 1);
            assert_eq!(check(&prepared(&sigs), &ks, &keys, false).unwrap().holds, holds, "{name} at {at}");
        }
    }
}

#[test]
fn unliftable_and_out_of_range_r_s_do_not_prepare() {
    let base = sign(0, digest(1));
    let mut cases = Vec::new();
    let mut zero_r = base;
    zero_r.r = [0; 32];
    cases.push(zero_r);
    let mut n_r = base;
    n_r.r = N;
    cases.push(n_r);
    let mut zero_s = base;
    zero_s.s = [0; 32];
    cases.push(zero_s);
    let mut n_s = base;
    n_s.s = N;
    cases.push(n_s);
    // x = 5 is not the x of any point (5^3 + 7 = 132 is a non-residue mod p).
    let mut no_point = base;
    no_point.r = [0; 32];
    no_point.r[31] = 5;
    assert!(recover(&no_point).is_none());
    cases.push(no_point);
    cases.push(base);
    let out = prepare(&cases).unwrap();
    assert_eq!(out.iter().map(Option::is_some).collect::<Vec<_>>(), [false, false, false, false, false, true]);
    // The one good item among failures still got its own 1/s from the shared inversion.
    assert!(check(&[out[5].unwrap()], &[0], &[key(0)], false).unwrap().holds);
}

#[test]
fn prepare_matches_recovery_on_many_signatures() {
    // A mixed batch: the shared inversion must give each item its own u1, u2.
    let keys: Vec<PublicKey> = (0..7).map(key).collect();
    let sigs: Vec<SigInput> = (0..64).map(|i| sign(i % 7, digest(i))).collect();
    let p = prepared(&sigs);
    for (i, item) in p.iter().enumerate() {
        assert!(check(&[*item], &[(i % 7) as u32], &keys, false).unwrap().holds, "item {i}");
        assert!(!check(&[*item], &[((i + 1) % 7) as u32], &keys, false).unwrap().holds, "item {i} against another key");
    }
}

#[test]
fn public_keys_are_validated() {
    let good = *key(3).as_xy();
    assert!(PublicKey::from_xy(&good).is_some());
    let mut off = good;
    off[63] ^= 1;
    assert!(PublicKey::from_xy(&off).is_none());
    let mut big = good;
    big[..32].fill(0xff); // x >= p
    assert!(PublicKey::from_xy(&big).is_none());
    assert!(PublicKey::from_xy(&[0; 64]).is_none());
}

#[test]
fn fixed_randomizers_would_let_cancelling_items_through() {
    // Two bad items whose errors cancel: u1 moved by +d on one and -d on the other. With equal
    // fixed weights the sum is O; fresh random weights catch it. This is why the weights are
    // drawn per call and never predictable.
    let keys = [key(0)];
    let sigs = [sign(0, digest(1)), sign(0, digest(2))];
    let mut p = prepared(&sigs);
    let bump = |u: &mut [u8; 32], up: bool| {
        // +-1 on the low byte; the values are far from 0 and n for these digests.
        if up {
            u[31] = u[31].wrapping_add(1);
        } else {
            u[31] = u[31].wrapping_sub(1);
        }
    };
    if p[0].u1[31] == 0xff || p[1].u1[31] == 0 {
        p.swap(0, 1);
    }
    assert!(p[0].u1[31] != 0xff && p[1].u1[31] != 0, "pick other digests");
    bump(&mut p[0].u1, true);
    bump(&mut p[1].u1, false);
    let mut ones = vec![0u8; 32];
    ones[15] = 1;
    ones[31] = 1; // weights (1, 1)
    assert!(check_fixed(&p, &[0, 0], &keys, &ones).unwrap().holds);
    assert!(!check(&p, &[0, 0], &keys, false).unwrap().holds);
    assert!(!check(&p[..1], &[0], &keys, false).unwrap().holds);
}

#[test]
fn empty_batch_holds() {
    assert_eq!(check(&[], &[], &[], true).unwrap(), Outcome { holds: true, points: 0, bad: None });
    assert_eq!(prepare(&[]).unwrap(), vec![]);
}

#[test]
fn threads_check_at_once() {
    let keys: Vec<PublicKey> = (0..2).map(key).collect();
    let sigs: Vec<SigInput> = (0..30).map(|i| sign(i % 2, digest(i))).collect();
    let p = prepared(&sigs);
    let key_of: Vec<u32> = (0..30).map(|i| i % 2).collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20 {
                    assert!(check(&p, &key_of, &keys, false).unwrap().holds);
                }
            });
        }
    });
}

#[test]
fn a_failed_check_names_its_one_bad_item_and_only_then() {
    let keys: Vec<PublicKey> = (0..4).map(key).collect();
    let n = 100usize;
    let sigs: Vec<SigInput> = (0..n as u32).map(|i| sign(i % 4, digest(i))).collect();
    let key_of: Vec<u32> = (0..n as u32).map(|i| i % 4).collect();
    let good = prepared(&sigs);
    let clean = check(&good, &key_of, &keys, true).unwrap();
    assert_eq!((clean.holds, clean.points, clean.bad), (true, n + 4 + 1, None), "a passing check computes one sum");
    for b in [0usize, 1, 37, 99] {
        let mut s = sigs.clone();
        s[b].y_odd = !s[b].y_odd;
        let out = check(&prepared(&s), &key_of, &keys, true).unwrap();
        assert_eq!((out.holds, out.bad), (false, Some(b)), "bad at {b}");
        assert_eq!(out.points, 2 * (n + 4 + 1), "locating computes a second sum");
        // Without locate: no name, one sum.
        let plain = check(&prepared(&s), &key_of, &keys, false).unwrap();
        assert_eq!((plain.holds, plain.bad, plain.points), (false, None, n + 4 + 1));
    }
    // Two bad items: no single culprit is named.
    for (b1, b2) in [(0usize, 1usize), (5, 90), (98, 99)] {
        let mut s = sigs.clone();
        s[b1].z[0] ^= 0x80;
        s[b2] = sign((b2 as u32 + 1) % 4, digest(b2 as u32));
        let out = check(&prepared(&s), &key_of, &keys, true).unwrap();
        assert_eq!((out.holds, out.bad), (false, None), "bad at {b1} and {b2}");
    }
}

#[test]
fn locate_at_its_largest_size() {
    let keys = [key(0), key(1)];
    let mut sigs: Vec<SigInput> = (0..MAX_LOCATE as u32).map(|i| sign(i % 2, digest(i))).collect();
    let key_of: Vec<u32> = (0..MAX_LOCATE as u32).map(|i| i % 2).collect();
    sigs[MAX_LOCATE - 1].y_odd = !sigs[MAX_LOCATE - 1].y_odd;
    let out = check(&prepared(&sigs), &key_of, &keys, true).unwrap();
    assert_eq!(out.bad, Some(MAX_LOCATE - 1));
}

#[test]
#[should_panic(expected = "MAX_LOCATE")]
fn locate_refuses_more_than_it_can_name() {
    let p = prepared(&[sign(0, digest(0))]);
    let items = vec![p[0]; MAX_LOCATE + 1];
    let _ = check(&items, &vec![0; MAX_LOCATE + 1], &[key(0)], true);
}

#[test]
fn wide_randomizers_are_refused_by_the_c_side() {
    let p = prepared(&[sign(0, digest(0))]);
    let mut a = vec![0u8; 16];
    a[0] = 1; // 2^120: wider than 118 bits
    assert_eq!(check_with(&p, &[0], &[key(0)], false, &a), Err(Error::Malformed));
}

#[test]
fn vector_roots_lift_exactly_what_libsecp256k1_lifts() {
    // Valid signatures of both parities, their flips, and r that is no point's x, out of range
    // or zero, in runs long and short enough for the kernel's groups of 16 and its short last
    // group (and the scalar path below 7).
    let mut sigs: Vec<SigInput> = (0..300u32).map(|i| sign(i % 7, digest(i))).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..300 {
        let mut s = sigs[i];
        match i % 5 {
            0 => s.y_odd = !s.y_odd,
            1 | 2 => {
                for b in s.r.iter_mut() {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    *b = seed as u8; // about half of all x have no point
                }
            }
            3 => s.r = N,
            _ => s.r = [0; 32],
        }
        sigs.push(s);
    }
    for len in [0usize, 1, 6, 7, 15, 16, 17, 33, 600] {
        let part = &sigs[sigs.len() - len..];
        assert_eq!(prepare_with(part, true).unwrap(), prepare_with(part, false).unwrap(), "{len} items");
    }
    let lifted = prepare_with(&sigs, true).unwrap().iter().filter(|p| p.is_some()).count();
    assert!(lifted > 300 && lifted < 600, "{lifted}");
    // And the kernel itself: its candidates are libsecp256k1's powers (checked or not, a wrong
    // one would only cost the scalar root), on 16 000 elements and the edges.
    // SAFETY: takes a count; reads and writes only its own locals.
    let mismatches = unsafe { ffi::x402b_vsqrt_mismatches(1000) };
    assert_eq!(mismatches, if vector_roots() { 0 } else { -1 });
    eprintln!("vector roots on this CPU: {}", vector_roots());
}
