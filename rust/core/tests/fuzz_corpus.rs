//! Replays every committed fuzz corpus file (rust/core/fuzz/corpus/<target>/*) through the
//! same invariant checks the libFuzzer targets run, so plain `cargo test` covers them.

mod common {
    pub mod fuzz_checks;
}

use std::path::{Path, PathBuf};

use common::fuzz_checks::{check, TARGETS};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus").join(target)
}

fn replay(target: &str) {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no corpus files", dir.display());
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        // Name the file on failure: the check's own panic message follows.
        let result = std::panic::catch_unwind(|| check(target, &data));
        if let Err(payload) = result {
            eprintln!("fuzz corpus file {} broke the {target} invariants", path.display());
            std::panic::resume_unwind(payload);
        }
    }
}

#[test]
fn corpus_envelope() {
    replay("envelope");
}

#[test]
fn corpus_json() {
    replay("json");
}

#[test]
fn corpus_typed_data() {
    replay("typed_data");
}

#[test]
fn corpus_typed_data_gen() {
    replay("typed_data_gen");
}

#[test]
fn corpus_signature() {
    replay("signature");
}

#[test]
fn corpus_primitives() {
    replay("primitives");
}

#[test]
fn corpus_x402() {
    replay("x402");
}

#[test]
fn corpus_store() {
    replay("store");
}

#[test]
fn corpus_authenticate() {
    replay("authenticate");
}

#[test]
fn every_corpus_directory_has_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus");
    for entry in std::fs::read_dir(&root).expect("corpus root") {
        let name = entry.expect("directory entry").file_name().into_string().expect("UTF-8 name");
        assert!(TARGETS.contains(&name.as_str()), "corpus/{name} has no fuzz target in fuzz_checks::TARGETS");
    }
}

/// The named seeds still mean what they were added for (so the corpus is not silently a pile
/// of inputs that all fail at the first check).
#[test]
fn key_seeds_are_meaningful() {
    use x402_verify_core::eip712::{hash_typed_data_json, DEFAULT_MAX_BYTES};
    use x402_verify_core::primitives::parse_address;
    use x402_verify_core::{Code, Digest, Signature, SignaturePolicy};

    let read = |t: &str, f: &str| std::fs::read(corpus_dir(t).join(f)).unwrap();
    let mail_digest = Digest::from_slice(&common::fuzz_checks::FIXED_DIGEST).unwrap();
    assert_eq!(hash_typed_data_json(&read("typed_data", "mail.json"), DEFAULT_MAX_BYTES).unwrap(), mail_digest);
    assert_eq!(hash_typed_data_json(&read("typed_data", "mail_pretty.json"), DEFAULT_MAX_BYTES).unwrap(), mail_digest);
    for f in [
        "permit2_PermitTransferFrom.json",
        "eip3009_base_sepolia.json",
        "x402_permit2_witness_base_sepolia.json",
        "ints_bytes_arrays.json",
        "recursive_dynamic_array.json",
    ] {
        hash_typed_data_json(&read("typed_data", f), DEFAULT_MAX_BYTES).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    assert_eq!(hash_typed_data_json(&read("typed_data", "cyclic.json"), DEFAULT_MAX_BYTES).unwrap_err().code, Code::CyclicType);

    let signer = parse_address("0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826").unwrap();
    let strict = SignaturePolicy::eip3009();
    let permit2 = SignaturePolicy::permit2();
    let rec = |f: &str, p: &SignaturePolicy| Signature::parse(&read("signature", f), p).and_then(|s| s.recover_address_from_prehash(&mail_digest));
    assert_eq!(rec("mail_rsv", &strict).unwrap(), signer);
    assert_eq!(rec("mail_compact", &permit2).unwrap(), signer);
    assert_eq!(rec("mail_high_s_twin", &permit2).unwrap(), signer);
    assert_eq!(rec("mail_high_s_twin", &strict).unwrap_err().code, Code::SignatureHighS);
    assert_eq!(rec("mail_compact", &strict).unwrap_err().code, Code::InvalidSignatureLength);
    assert_eq!(rec("mail_v01", &strict).unwrap_err().code, Code::InvalidSignatureV);
}

/// The generator behind `typed_data_gen` mostly builds documents that hash (so that target
/// exercises the encoder rather than the early refusals); a deterministic sample checks it.
#[test]
fn typed_data_gen_mostly_reaches_the_encoder() {
    use common::fuzz_checks::{check_typed_data_gen, generate_typed_data, render};
    let mut state = 0x402u64;
    let mut next = || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
    };
    let (mut ok, total) = (0, 300);
    for i in 0..total {
        let data: Vec<u8> = (0..16 + i).map(|_| next()).collect();
        check_typed_data_gen(&data);
        let text = render(&generate_typed_data(&data), false);
        ok += usize::from(x402_verify_core::eip712::hash_typed_data_json(text.as_bytes(), usize::MAX).is_ok());
    }
    eprintln!("{ok}/{total} generated documents hash");
    assert!(ok * 4 >= total, "only {ok}/{total} generated documents hash");
}

/// The x402 seeds (rust/core/fuzz/seeds/make_seeds.py) mean what their names say: every
/// `valid_*` payment is valid under exactly one of the fixed requirements at `X402_NOW` (so the
/// fuzzer starts from payments that reach the end of the cascade), every `bad_*` one is valid
/// under none, and the `requirements_*` documents parse (or not) as named.
#[test]
fn x402_seeds_are_meaningful() {
    use common::fuzz_checks::{X402_NOW, X402_REQUIREMENTS};
    use x402_verify_core::json;
    use x402_verify_core::x402::{parse_requirements, verify, PayloadInput, VerifyConfig};

    let cfg = VerifyConfig::sdk_defaults();
    let reqs: Vec<_> = X402_REQUIREMENTS.iter().map(|t| parse_requirements(&json::parse(t.as_bytes()).unwrap())).collect();
    let dir = corpus_dir("x402");
    let mut named = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let data = std::fs::read(&path).unwrap();
        if let Some(rest) = name.strip_prefix("requirements_") {
            let parsed = json::parse(&data).map(|v| parse_requirements(&v));
            let fixed =
                ["eip3009.json", "permit2.json", "upto.json", "eip3009_v1.json", "int_amount.json", "permit2_amount_zero.json", "upto_zero_pay_to.json"]
                    .contains(&rest);
            assert_eq!(matches!(parsed, Ok(Ok(_))), fixed, "{name}");
            named += 1;
            continue;
        }
        let valid: Vec<usize> = (0..reqs.len()).filter(|&i| verify(&PayloadInput::Text(&data), &reqs[i], X402_NOW, &cfg).is_valid()).collect();
        if name.starts_with("valid_") {
            assert_eq!(valid.len(), 1, "{name} is valid under requirements {valid:?}");
            named += 1;
        } else if name.starts_with("bad_") {
            assert!(valid.is_empty(), "{name} is valid under requirements {valid:?}");
            named += 1;
        }
    }
    assert!(named >= 40, "only {named} named x402 seeds");
}
