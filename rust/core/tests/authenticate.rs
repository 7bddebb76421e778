//! Batch authentication over cached payer keys agrees with per-item recovery on random
//! batches: sizes 1..1024, any share of bad items of every kind, repeat and distinct payers,
//! every signature policy, cold, warmed and hand-filled caches of any capacity. The check
//! itself is `check_authenticate` (tests/common/fuzz_checks.rs), shared with the fuzz target.

mod common {
    pub mod fuzz_checks;
}

use common::fuzz_checks::{check_authenticate, AUTH_KEYS};
use proptest::prelude::*;

/// The input `check_authenticate` reads: policy, capacity and warm mask, then per item the
/// pooled signature (payer k, signature j), how it is broken (0-3 intact), and a parameter.
fn input(policy: u8, cap: u8, warm: u8, items: &[(u8, u8, bool, u8, u8)]) -> Vec<u8> {
    let mut data = vec![policy, (cap & 3) | (warm << 2)];
    for &(k, j, bad, kind, param) in items {
        data.push((k % AUTH_KEYS as u8) * 24 + j % 24);
        data.push(if bad { 4 + kind % 12 } else { kind % 4 });
        data.push(param);
    }
    data
}

fn batch(max: usize) -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), any::<u8>(), 0u8..64, 1..=AUTH_KEYS as u8, 0.0f64..=1.0, 1..=max).prop_flat_map(|(policy, cap, warm, payers, share, n)| {
        let share = if share < 0.3 { 0.0 } else { share - 0.3 }; // a third of batches all good
        prop::collection::vec((0..payers, any::<u8>(), prop::bool::weighted(share.min(1.0)), any::<u8>(), any::<u8>()), n)
            .prop_map(move |items| input(policy, cap, warm, &items))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn small_batches_agree_with_recovery(data in batch(80)) {
        check_authenticate(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]
    #[test]
    fn large_batches_agree_with_recovery(data in batch(1024)) {
        check_authenticate(&data);
    }
}

/// Fixed mixes the random ones might miss: all good at the largest size on a warm cache, and
/// one of each bad kind among good items.
#[test]
fn every_bad_kind_among_good_items() {
    for kind in 0..12u8 {
        let mut items: Vec<(u8, u8, bool, u8, u8)> = (0..100u8).map(|i| (i % 3, i, false, 0, 0)).collect();
        items[37] = (1, 5, true, kind, 9);
        // All policies, the cache filled by hand for every payer, capacity 64.
        for policy in 0..8 {
            check_authenticate(&input(policy, 3, 0b111, &items));
        }
    }
    let all_good: Vec<(u8, u8, bool, u8, u8)> = (0..1024u32).map(|i| ((i % 6) as u8, (i / 6) as u8, false, 0, 0)).collect();
    check_authenticate(&input(1, 3, 0b111111, &all_good));
}

/// Whole x402 verdicts: every committed x402 corpus input (and the valid seeds repeated, so
/// their payers' keys are cached and batched), against each fixed requirements document, gives
/// the same verdict through the pipeline's stages (terms per item, then the authenticate stage
/// over the whole batch) as through `verify`,
/// on a cold cache, a warm one, and with the cache off.
#[test]
fn x402_batches_match_per_item_verify() {
    use common::fuzz_checks::{X402_NOW, X402_REQUIREMENTS};
    use std::sync::Arc;
    use x402_verify_core::authenticate::Authenticator;
    use x402_verify_core::json;
    use x402_verify_core::x402::stages::Authenticate;
    use x402_verify_core::x402::{parse_requirements, verify, Context, PayloadInput, Pipeline, VerifyConfig};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/x402");
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    inputs.sort();
    let valid: Vec<(String, Vec<u8>)> = inputs.iter().filter(|(n, _)| n.starts_with("valid_")).cloned().collect();
    assert!(!valid.is_empty());
    for _ in 0..12 {
        inputs.extend(valid.iter().cloned());
    }
    let cfg = VerifyConfig::sdk_defaults();
    let reqs: Vec<_> = X402_REQUIREMENTS.iter().map(|t| parse_requirements(&json::parse(t.as_bytes()).unwrap())).collect();
    for cache in [0usize, 64] {
        let auth = Arc::new(Authenticator::new(cache));
        let pipeline = Pipeline::new(cfg.clone()).with_stage(Authenticate::with(auth.clone()));
        for pass in 0..2 {
            for req in &reqs {
                let want: Vec<_> = inputs.iter().map(|(_, b)| verify(&PayloadInput::Text(b), req, X402_NOW, &cfg)).collect();
                for threads in [Some(1), Some(2)] {
                    let cx = Context { now: X402_NOW, threads };
                    let got = pipeline.run(&inputs, &cx, |p, (_, b)| p.prepare(&PayloadInput::Text(b), req, X402_NOW));
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(&g.verdict, w, "cache {cache}, pass {pass}, threads {threads:?}: {}", inputs[i].0);
                    }
                }
            }
        }
        let s = auth.stats();
        if cache > 0 {
            assert!(s.batch_verified > 0, "the valid seeds were batched: {s:?}");
        } else {
            assert_eq!(s.batch_verified, 0);
        }
    }
}
