//! Criterion benchmarks of the core's hot path: `cargo bench -p x402-verify-core`.
//!
//! - `signature/parse+recover`: `Signature::parse` + `recover_address_from_prehash`, one item.
//! - `eip712/hash_typed_data_json/permit2`: the digest of an x402 exact Permit2 document, and
//!   `eip712/stages/permit2/*` its stages (JSON parse, reading the types, the digest).
//! - `x402/<scheme>/verify/valid_remembered`: the same payment again through a pipeline with a
//!   verdict cache (an upto session resumed: only the time terms are checked again).
//! - `batch/recover_1000/threads=N`: `batch::map` over 1,000 recoveries on 1 and 2 threads.
//! - `authenticate/<case>/{recover,batch}`: `Authenticator::authenticate` on a warm key cache
//!   against per-item recovery of the same items (the floor the batch path is measured
//!   against), for repeat and distinct payers, one bad item in 256, and half bad.

use std::hint::black_box;
use std::sync::Arc;

use alloy_primitives::keccak256;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use x402_verify_core::x402::stages::{Authenticate, Recall, Remember};
use x402_verify_core::x402::{self, Context, PayloadInput, Pipeline, VerifyConfig};
use x402_verify_core::{batch, eip712, json, Address, Digest, Signature, SignaturePolicy};

/// reference/x402-permit2.md §7.5: exact Permit2 on Base Sepolia, signed by anvil #0.
const PERMIT2_DOC: &str = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"PermitWitnessTransferFrom":[{"name":"permitted","type":"TokenPermissions"},{"name":"spender","type":"address"},{"name":"nonce","type":"uint256"},{"name":"deadline","type":"uint256"},{"name":"witness","type":"Witness"}],"TokenPermissions":[{"name":"token","type":"address"},{"name":"amount","type":"uint256"}],"Witness":[{"name":"to","type":"address"},{"name":"validAfter","type":"uint256"}]},"primaryType":"PermitWitnessTransferFrom","domain":{"name":"Permit2","chainId":84532,"verifyingContract":"0x000000000022D473030F116dDEE9F6B43aC78BA3"},"message":{"permitted":{"token":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","amount":"10000"},"spender":"0x402085c248EeA27D92E8b30b2C58ed07f9E20001","nonce":"33247007178036348590600198031289925668252061821958005840077069883511451257277","deadline":"1740672154","witness":{"to":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","validAfter":"1740672089"}}}"#;
const PERMIT2_DIGEST: &str = "21528e1468aac114016416353e2309329f217dc180b21baa1d81cde941095685";
const PERMIT2_SIG: &str =
    "0x3b029ad182a14cdb81c9eb44f935279e124e88afdc4043ed1183345aba6781b95cd297107e2808d8ea2722260e88856b5a13a6db23e38a30e2604dca9e1ce1da1b";
const ANVIL_0: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

/// `x402_verify._samples.x402_items(...)[0]`: an exact Permit2 and an EIP-3009 v2 header.
const PERMIT2_HEADER: &str = "eyJ4NDAyVmVyc2lvbiI6MiwiYWNjZXB0ZWQiOnsic2NoZW1lIjoiZXhhY3QiLCJuZXR3b3JrIjoiZWlwMTU1Ojg0NTMifSwicGF5bG9hZCI6eyJzaWduYXR1cmUiOiIweGE5MDkyYjQxMjdlZGRkMTI3MjU1YmMzNjQ4M2I1NmY0YzFiMTk1YjM2MTcyNzI2M2M5NzEzZGZkYzI1NWQwMTE3ZGU5Y2Y4ZWZiODZjMGY3M2ZkYmMwNmY3YTI1NDk5N2ZlYTNiMWY0NWRhYmViYzY4NDY2MmI3MDI1YWQwZDBlMWIiLCJwZXJtaXQyQXV0aG9yaXphdGlvbiI6eyJmcm9tIjoiMHhFNzAwNTc1NzkwYTk1OUNlODg4MTc3NUM0MTQzOWQ3NUFmN2YxMjkyIiwicGVybWl0dGVkIjp7InRva2VuIjoiMHhGYkMyMDUxQUUyMjY1Njg2YTQ2OTQyMWIyQzVBMkQ1NDYyRmJGNWVCIiwiYW1vdW50IjoiNDYxNzAwMDAwMDAwMDAwMDAwMCJ9LCJzcGVuZGVyIjoiMHg0MDIwODVjMjQ4RWVBMjdEOTJFOGIzMGIyQzU4ZWQwN2Y5RTIwMDAxIiwibm9uY2UiOiIxMDIxNzA5NDQ0NDUwMDQ5Mzg3ODcwMzE0NTQ4NTk1MjY0OTc2OTAyNzg3MzUyODY2ODgzMjY3MTkwMjg3Mjk4NTY3MTQ2OTU4MjczMzYiLCJkZWFkbGluZSI6IjE3NjcyMjkyMDAiLCJ3aXRuZXNzIjp7InRvIjoiMHgwNDlkM2U4Mjk0MUY2OEJBMjlFZTcwMDFmNTdGY2FERTQzQ2E0NDg5IiwidmFsaWRBZnRlciI6IjE3NjcyMjUwMDAifX19fQ==";
const PERMIT2_REQUIREMENTS: &str = r#"{"scheme":"exact","network":"eip155:8453","amount":"4617000000000000000","asset":"0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB","payTo":"0x049d3e82941F68BA29Ee7001f57FcaDE43Ca4489","maxTimeoutSeconds":3600,"extra":{"assetTransferMethod":"permit2"}}"#;
const EIP3009_HEADER: &str = "eyJ4NDAyVmVyc2lvbiI6MiwiYWNjZXB0ZWQiOnsic2NoZW1lIjoiZXhhY3QiLCJuZXR3b3JrIjoiZWlwMTU1Ojg0NTMifSwicGF5bG9hZCI6eyJzaWduYXR1cmUiOiIweGY3YzI0MWE5ZTMyOGY3MTRmOGU0NTZlYjZmOTFiZTY3ZTdkNDU2ZTM2MTZiZmZkY2QxN2ZhOWM3ZmFmODY5MWI1Mjc3YzJiNzAzZjdmNDNhMTgzZjJjMjFiZjRkODI0NDUxMWEzN2I2NDU1OThjNWI0NGM4ZTA5N2JmMTI0OWY4MWMiLCJhdXRob3JpemF0aW9uIjp7ImZyb20iOiIweEU3MDA1NzU3OTBhOTU5Q2U4ODgxNzc1QzQxNDM5ZDc1QWY3ZjEyOTIiLCJ0byI6IjB4MDQ5ZDNlODI5NDFGNjhCQTI5RWU3MDAxZjU3RmNhREU0M0NhNDQ4OSIsInZhbHVlIjoiNzY1NzAwMCIsInZhbGlkQWZ0ZXIiOiIxNzY3MjI1MDAwIiwidmFsaWRCZWZvcmUiOiIxNzY3MjI5MjAwIiwibm9uY2UiOiIweDI3ODE2MGU5ZDY5YTFlNmEyZGFkNDM2YTZhN2QzOWU3M2RjNDhjMmI1ZmZmNjUxYzU0NmJmNDE1MGU1OTBkN2QifX19";
const EIP3009_REQUIREMENTS: &str = r#"{"scheme":"exact","network":"eip155:8453","amount":"7657000","asset":"0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913","payTo":"0x049d3e82941F68BA29Ee7001f57FcaDE43Ca4489","maxTimeoutSeconds":3600,"extra":{"name":"USD Coin","version":"2"}}"#;
/// `_samples.VALID_AT`: every sample is valid then.
const VALID_AT: u64 = 1_767_228_200;

fn x402_stages(c: &mut Criterion) {
    let cfg = VerifyConfig::sdk_defaults();
    for (name, header, req) in [("permit2", PERMIT2_HEADER, PERMIT2_REQUIREMENTS), ("eip3009", EIP3009_HEADER, EIP3009_REQUIREMENTS)] {
        let req = x402::parse_requirements(&json::parse(req.as_bytes()).unwrap());
        let input = PayloadInput::Text(header.as_bytes());
        assert!(x402::verify(&input, &req, VALID_AT, &cfg).is_valid());
        let late = x402::verify(&input, &req, VALID_AT + 1_000_000, &cfg);
        assert!(!late.is_valid() && late.replay.is_some());
        let mut g = c.benchmark_group(format!("x402/{name}"));
        g.bench_function("header::decode", |b| b.iter(|| x402::header::decode(black_box(header.as_bytes()), cfg.max_payload_bytes).unwrap()));
        let value = x402::header::decode(header.as_bytes(), cfg.max_payload_bytes).unwrap();
        g.bench_function("parse_payload", |b| b.iter(|| x402::payload::parse_payload(black_box(&value)).unwrap()));
        g.bench_function("verify/refused_at_time_check", |b| b.iter(|| x402::verify(black_box(&input), &req, VALID_AT + 1_000_000, &cfg)));
        g.bench_function("verify/valid", |b| b.iter(|| x402::verify(black_box(&input), &req, VALID_AT, &cfg)));
        // The same header presented again to a pipeline that verified it (a resumed session).
        let recall = Arc::new(Recall::new(16));
        let pipeline = Pipeline::new(cfg.clone()).with_recall(recall.clone()).with_stage(Authenticate::recovery()).with_stage(Remember(recall.clone()));
        let cx = Context { now: VALID_AT, threads: Some(1) };
        let run = || pipeline.run(&[header.as_bytes()], &cx, |pl, h| pl.prepare(&PayloadInput::Text(h), &req, VALID_AT));
        assert!((0..3).all(|_| run()[0].verdict.is_valid()) && recall.stats().hits == 1);
        g.bench_function("verify/valid_remembered", |b| b.iter(|| black_box(run())));
        g.finish();
    }
}

fn hex32(s: &str) -> Digest {
    let bytes: Vec<u8> = (0..64).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    Digest::from_slice(&bytes).unwrap()
}

fn sig_bytes() -> Vec<u8> {
    let s = PERMIT2_SIG.trim_start_matches("0x");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn signature(c: &mut Criterion) {
    let digest = hex32(PERMIT2_DIGEST);
    let sig = sig_bytes();
    let policy = SignaturePolicy::permit2();
    let want: Address = ANVIL_0.parse().unwrap();
    assert_eq!(Signature::parse(&sig, &policy).unwrap().recover_address_from_prehash(&digest).unwrap(), want);
    c.bench_function("signature/parse+recover", |b| {
        b.iter(|| Signature::parse(black_box(&sig), &policy).unwrap().recover_address_from_prehash(black_box(&digest)).unwrap())
    });
}

fn typed_data(c: &mut Criterion) {
    let max = eip712::DEFAULT_MAX_BYTES;
    assert_eq!(eip712::hash_typed_data_json(PERMIT2_DOC.as_bytes(), max).unwrap(), hex32(PERMIT2_DIGEST));
    c.bench_function("eip712/hash_typed_data_json/permit2", |b| b.iter(|| eip712::hash_typed_data_json(black_box(PERMIT2_DOC.as_bytes()), max).unwrap()));
    // Its stages: JSON parse; reading the types (incl. typehashes); the digest of a read document.
    let doc = json::parse(PERMIT2_DOC.as_bytes()).unwrap();
    let td = eip712::TypedData::from_value(&doc).unwrap();
    let mut g = c.benchmark_group("eip712/stages/permit2");
    g.bench_function("json::parse", |b| b.iter(|| json::parse(black_box(PERMIT2_DOC.as_bytes())).unwrap()));
    g.bench_function("TypedData::from_value", |b| b.iter(|| eip712::TypedData::from_value(black_box(&doc)).map(|_| ()).unwrap()));
    g.bench_function("signing_digest", |b| b.iter(|| black_box(&td).signing_digest().unwrap()));
    g.bench_function("keccak256/64B", |b| b.iter(|| keccak256(black_box([7u8; 64]))));
    g.finish();
}

fn batch_recover(c: &mut Criterion) {
    // One real signature over 1,000 distinct digests: each recovers some key (a different
    // address per digest), which costs the same as recovering the true signer.
    let policy = SignaturePolicy::permit2();
    let sig = sig_bytes();
    let items: Vec<(Digest, Vec<u8>)> = (0u32..1000).map(|i| (Digest(keccak256(i.to_be_bytes())), sig.clone())).collect();
    let mut group = c.benchmark_group("batch/recover_1000");
    group.throughput(Throughput::Elements(items.len() as u64));
    // ~30 ms an iteration: fewer samples keep the default run short.
    group.sample_size(20);
    for threads in [1usize, 2] {
        group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, &t| {
            b.iter(|| {
                let out = batch::map(black_box(&items), Some(t), |(d, s)| Signature::parse(s, &policy)?.recover_address_from_prehash(d));
                assert!(out.iter().all(Result::is_ok));
                out
            })
        });
    }
    group.finish();
}

fn authenticate(c: &mut Criterion) {
    use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
    use x402_verify_core::authenticate::{Authenticator, SigItem};
    let payer = |i: u32| {
        let mut b = [0x33u8; 32];
        b[28..].copy_from_slice(&i.to_be_bytes());
        let sk = secp256k1::SecretKey::from_secret_bytes(b).unwrap();
        let full = secp256k1::PublicKey::from_secret_key(&sk).serialize_uncompressed();
        (sk, Address::from_raw_public_key(&full[1..]))
    };
    let sign = |(sk, addr): &(secp256k1::SecretKey, Address), j: u32, flip: bool| {
        let d = keccak256([addr.as_slice(), &j.to_be_bytes()].concat());
        let (id, rs) = RecoverableSignature::sign_ecdsa_recoverable(secp256k1::Message::from_digest(d.0), sk).serialize_compact();
        let mut b = [0u8; 65];
        b[..64].copy_from_slice(&rs);
        b[64] = 27 + u8::from((id == RecoveryId::One) != flip);
        SigItem { digest: Digest(d), signature: Signature::parse(&b, &SignaturePolicy::permit2()).unwrap(), claimed: *addr, session: None }
    };
    // (name, items, payers, bad every k-th item)
    for (name, n, payers, bad_every) in [
        ("n=16,payers=1", 16usize, 1u32, None),
        ("n=256,payers=16", 256, 16, None),
        ("n=256,payers=256", 256, 256, None),
        ("n=1024,payers=16", 1024, 16, None),
        ("n=256,payers=16,1_bad", 256, 16, Some(256usize)),
        ("n=256,payers=16,half_bad", 256, 16, Some(2)),
    ] {
        let ps: Vec<_> = (0..payers).map(payer).collect();
        let items: Vec<SigItem> = (0..n).map(|i| sign(&ps[i % ps.len()], i as u32, bad_every.is_some_and(|k| i % k == k / 2))).collect();
        let auth = Authenticator::new(4096);
        let warm: Vec<SigItem> = ps.iter().map(|p| sign(p, 1 << 30, false)).collect();
        auth.authenticate(&warm);
        let want: Vec<_> = items.iter().map(|it| it.signature.recover_address_from_prehash(&it.digest)).collect();
        assert_eq!(auth.authenticate(&items), want);
        let mut g = c.benchmark_group(format!("authenticate/{name}"));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function("recover", |b| {
            b.iter(|| black_box(&items).iter().map(|it| it.signature.recover_address_from_prehash(&it.digest)).collect::<Vec<_>>())
        });
        g.bench_function("batch", |b| b.iter(|| auth.authenticate(black_box(&items))));
        g.finish();
    }
}

criterion_group!(benches, signature, typed_data, batch_recover, x402_stages, authenticate);
criterion_main!(benches);
