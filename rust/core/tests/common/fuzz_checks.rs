//! Invariant checks shared by the fuzz targets (`rust/core/fuzz/fuzz_targets/*.rs`, which
//! `#[path]`-include this file) and by the corpus replay test (`tests/fuzz_corpus.rs`).
//!
//! Each `check_*` takes raw fuzzer bytes and panics if, and only if, an invariant is broken
//! (a panic inside the library counts too). Only `x402_verify_core` and `serde_json` (a
//! dependency of the core crate, so available to its tests) are used.

#![allow(dead_code)]

use x402_verify_core::eip712::{self, DEFAULT_MAX_BYTES};
use x402_verify_core::json::{self, Value};
use x402_verify_core::primitives::{checksum, parse_address, parse_hex_prefixed, parse_uint_decimal};
use x402_verify_core::{Code, Digest, Signature, SignaturePolicy, U256};

/// The fuzz targets, by the name of their corpus directory.
pub const TARGETS: [&str; 5] = ["json", "typed_data", "typed_data_gen", "signature", "primitives"];

/// Runs the check of the target `name` on one input.
pub fn check(name: &str, data: &[u8]) {
    match name {
        "json" => check_json(data),
        "typed_data" => check_typed_data(data),
        "typed_data_gen" => check_typed_data_gen(data),
        "signature" => check_signature(data),
        "primitives" => check_primitives(data),
        _ => panic!("no fuzz target named {name:?}"),
    }
}

// --- json ----------------------------------------------------------------------------------

/// `json::parse` never panics; what it accepts serde_json accepts too (it is only stricter),
/// what it refuses that serde_json accepts is refused for a strictness reason, and an accepted
/// value survives a print/parse round trip unchanged.
pub fn check_json(data: &[u8]) {
    let ours = json::parse(data);
    let theirs = serde_json::from_slice::<serde_json::Value>(data);
    match &ours {
        Ok(v) => {
            assert!(theirs.is_ok(), "json::parse accepted what serde_json refuses: {:?}", theirs.err());
            let text = to_json_text(v);
            let again = json::parse(text.as_bytes()).unwrap_or_else(|e| panic!("printed value does not re-parse: {e}; text {text:?}"));
            assert_eq!(&again, v, "print/parse round trip changed the value");
        }
        Err(e) => {
            if theirs.is_ok() {
                assert!(
                    matches!(e.code, Code::DuplicateKey | Code::InvalidJsonNumber),
                    "serde_json accepts this but json::parse says {} ({})",
                    e.code,
                    e.message
                );
            } else {
                assert!(matches!(e.code, Code::InvalidJson | Code::InvalidJsonNumber | Code::DuplicateKey), "unexpected code {}", e.code);
            }
        }
    }
}

/// Prints a `Value` as JSON text (integers exact, strings escaped by serde_json).
pub fn to_json_text(v: &Value) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let mag = i.mag.expect("JSON text cannot hold an integer of 2^256 or more");
            if i.negative {
                out.push('-');
            }
            out.push_str(&mag.to_string());
        }
        Value::Str(s) => out.push_str(&serde_json::to_string(s).expect("a string serializes")),
        Value::Bytes(_) => panic!("JSON text produced a bytes value"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(obj) => {
            out.push('{');
            for (i, (k, item)) in obj.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("a string serializes"));
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
    }
}

// --- typed data ----------------------------------------------------------------------------

/// `hash_typed_data_json` never panics and is deterministic; the size limit is exact; the JSON
/// entry point agrees with parsing then hashing the value.
pub fn check_typed_data(data: &[u8]) {
    let first = eip712::hash_typed_data_json(data, DEFAULT_MAX_BYTES);
    let second = eip712::hash_typed_data_json(data, DEFAULT_MAX_BYTES);
    assert_eq!(first, second, "hashing the same bytes twice gave different results");
    if data.len() > DEFAULT_MAX_BYTES {
        assert_eq!(first.unwrap_err().code, Code::PayloadTooLarge);
        return;
    }
    // One byte under the length refuses the input before reading it.
    if let Some(less) = data.len().checked_sub(1) {
        assert_eq!(eip712::hash_typed_data_json(data, less).unwrap_err().code, Code::PayloadTooLarge);
    }
    // The JSON entry point is parse + from_value + signing_digest, step by step.
    match json::parse(data) {
        Err(e) => assert_eq!(first.unwrap_err(), e, "a JSON error must be reported as is"),
        Ok(doc) => match eip712::TypedData::from_value(&doc) {
            Err(e) => assert_eq!(first.unwrap_err(), e, "from_value's error must be reported as is"),
            Ok(td) => {
                let _ = td.encode_primary_type();
                let steps = td
                    .domain_separator()
                    .and_then(|sep| Ok(x402_verify_core::primitives::eip712_signing_digest(&sep, &td.struct_hash()?)));
                assert_eq!(steps, first, "step-by-step hashing disagrees with hash_typed_data_json");
            }
        },
    }
}

// --- generated typed data ------------------------------------------------------------------

/// Builds a well-formed typed-data document from fuzzer bytes (so most inputs get past the
/// JSON and structure checks and reach the encoder), then checks it with `check_typed_data`
/// and checks that a second rendering (every object's keys reversed, whitespace added) is
/// accepted or refused alike, with the same digest: key order and layout carry no meaning.
pub fn check_typed_data_gen(data: &[u8]) {
    let doc = generate_typed_data(data);
    let plain = render(&doc, false);
    let shuffled = render(&doc, true);
    check_typed_data(plain.as_bytes());
    let a = eip712::hash_typed_data_json(plain.as_bytes(), usize::MAX);
    let b = eip712::hash_typed_data_json(shuffled.as_bytes(), usize::MAX);
    match (&a, &b) {
        (Ok(x), Ok(y)) => assert_eq!(x, y, "reordering object keys changed the digest\n{plain}\n{shuffled}"),
        (Err(_), Err(_)) => {}
        _ => panic!("reordering object keys changed acceptance: {a:?} vs {b:?}\n{plain}\n{shuffled}"),
    }
}

/// A JSON tree for the generator: `Raw` is already JSON text.
#[derive(Clone, Debug)]
pub enum Gj {
    Raw(String),
    Arr(Vec<Gj>),
    Obj(Vec<(String, Gj)>),
}

fn jstr(s: &str) -> Gj {
    Gj::Raw(serde_json::to_string(s).expect("a string serializes"))
}

/// Renders a generated tree; `reorder` reverses every object's keys and adds whitespace.
pub fn render(j: &Gj, reorder: bool) -> String {
    let mut out = String::new();
    render_into(j, reorder, &mut out);
    out
}

fn render_into(j: &Gj, reorder: bool, out: &mut String) {
    let sep = if reorder { " ,\n\t" } else { "," };
    match j {
        Gj::Raw(s) => out.push_str(s),
        Gj::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                render_into(item, reorder, out);
            }
            out.push(']');
        }
        Gj::Obj(entries) => {
            out.push('{');
            let mut order: Vec<&(String, Gj)> = entries.iter().collect();
            if reorder {
                order.reverse();
            }
            for (i, (k, v)) in order.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                out.push_str(&serde_json::to_string(k).expect("a string serializes"));
                out.push_str(if reorder { " : " } else { ":" });
                render_into(v, reorder, out);
            }
            out.push('}');
        }
    }
}

/// Reads choices from fuzzer bytes; past the end every choice is 0 (the simplest, valid one).
struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            0
        } else {
            usize::from(self.byte()) % n
        }
    }
    /// True about once in `n` (never on exhausted input).
    fn rarely(&mut self, n: u8) -> bool {
        self.byte() % n == n - 1
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

#[derive(Clone, Debug)]
enum GenType {
    Atomic(&'static str),
    Struct(usize),
    Array(Box<GenType>, Option<usize>),
}

impl GenType {
    fn text(&self, names: &[&str]) -> String {
        match self {
            GenType::Atomic(a) => (*a).to_owned(),
            GenType::Struct(i) => names[*i].to_owned(),
            GenType::Array(inner, None) => format!("{}[]", inner.text(names)),
            GenType::Array(inner, Some(n)) => format!("{}[{n}]", inner.text(names)),
        }
    }
}

const GEN_ATOMIC: [&str; 14] =
    ["uint256", "address", "bool", "string", "bytes", "bytes32", "uint8", "int8", "int256", "bytes1", "uint128", "int64", "bytes4", "uint160"];
/// Names a strict parser must refuse (or, for the last ones, struct-like names).
const GEN_BAD_ATOMIC: [&str; 10] = ["uint7", "bytes33", "uint+8", "int08", "Uint256", "uint", "bytes0", "int264", "byte", "uint256 "];
const GEN_STRUCT_NAMES: [&str; 8] = ["Mail", "Person", "TokenPermissions", "A", "B_1", "$x", "Permit", "Witness"];
const GEN_FIELD_NAMES: [&str; 10] = ["from", "to", "amount", "a", "b", "wallet", "name", "nonce", "x_1", "$"];
const GEN_ADDRESSES: [&str; 5] = [
    "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826",
    "0xcd2a3d9f938e13cd947ec05abc7fe734df8dd826",
    "0x0000000000000000000000000000000000000000",
    "0xCD2A3D9F938E13CD947EC05ABC7FE734DF8DD826",
    "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
];
const GEN_DOMAIN: [(&str, &str); 5] =
    [("name", "string"), ("version", "string"), ("chainId", "uint256"), ("verifyingContract", "address"), ("salt", "bytes32")];
const GEN_MAX_DEPTH: usize = 5;

fn atomic_type_of(name: &str) -> Option<GenType> {
    GEN_ATOMIC.iter().chain(GEN_BAD_ATOMIC.iter()).find(|a| **a == name).map(|a| GenType::Atomic(a))
}

/// Generates a whole document: `types`, `primaryType`, `domain`, `message`.
pub fn generate_typed_data(data: &[u8]) -> Gj {
    let mut c = Choices { data, pos: 0 };
    let n_structs = 1 + c.below(4);
    let names: Vec<&str> = (0..n_structs).map(|i| GEN_STRUCT_NAMES[(i + c.below(2)) % GEN_STRUCT_NAMES.len()]).collect();
    let mut defs: Vec<Vec<(&str, GenType)>> = Vec::new();
    for i in 0..n_structs {
        let n_fields = c.below(5);
        let first = c.below(GEN_FIELD_NAMES.len());
        let mut fields = Vec::new();
        for k in 0..n_fields {
            // Distinct names, but now and then a repeated one (which must be refused).
            let name = if c.rarely(32) { c.pick(&GEN_FIELD_NAMES) } else { GEN_FIELD_NAMES[(first + k) % GEN_FIELD_NAMES.len()] };
            let mut ty = if c.rarely(32) {
                GenType::Atomic(c.pick(&GEN_BAD_ATOMIC))
            } else if c.rarely(3) && n_structs > 1 {
                // Mostly forward references (no cycle); sometimes any struct, itself included.
                let j = if c.rarely(4) { c.below(n_structs) } else { i + 1 + c.below(n_structs - i) };
                if j < n_structs {
                    GenType::Struct(j)
                } else {
                    GenType::Atomic(c.pick(&GEN_ATOMIC))
                }
            } else {
                GenType::Atomic(c.pick(&GEN_ATOMIC))
            };
            for _ in 0..c.below(6).saturating_sub(3) {
                let dim = if c.rarely(2) { Some(c.below(4)) } else { None };
                ty = GenType::Array(Box::new(ty), dim);
            }
            fields.push((name, ty));
        }
        defs.push(fields);
    }

    let mut types: Vec<(String, Gj)> = Vec::new();
    let domain_mask = c.byte();
    let declare_domain = domain_mask & 0x20 != 0;
    let mut domain_decl: Vec<(&str, &str)> = GEN_DOMAIN.iter().enumerate().filter(|(i, _)| domain_mask & (1 << i) != 0).map(|(_, d)| *d).collect();
    if c.rarely(16) && domain_decl.len() > 1 {
        domain_decl.swap(0, 1); // a non-canonical order, which must be refused
    }
    if declare_domain {
        let members = domain_decl.iter().map(|(n, t)| Gj::Obj(vec![("name".into(), jstr(n)), ("type".into(), jstr(t))])).collect();
        types.push(("EIP712Domain".into(), Gj::Arr(members)));
    }
    for (i, fields) in defs.iter().enumerate() {
        if types.iter().any(|(k, _)| k == names[i]) {
            continue; // the same name twice would be a duplicate JSON key
        }
        let members =
            fields.iter().map(|(n, t)| Gj::Obj(vec![("name".into(), jstr(n)), ("type".into(), jstr(&t.text(&names)))])).collect();
        types.push((names[i].to_owned(), Gj::Arr(members)));
    }

    let mut domain = Vec::new();
    for (n, t) in &domain_decl {
        let ty = atomic_type_of(t).expect("domain types are atomic");
        domain.push(((*n).to_owned(), gen_value(&mut c, &ty, &names, &defs, 0)));
    }
    let primary = if c.rarely(32) { "Nope".to_owned() } else { names[0].to_owned() };
    let message = gen_value(&mut c, &GenType::Struct(0), &names, &defs, 0);
    Gj::Obj(vec![
        ("types".into(), Gj::Obj(types)),
        ("primaryType".into(), jstr(&primary)),
        ("domain".into(), Gj::Obj(domain)),
        ("message".into(), message),
    ])
}

fn gen_value(c: &mut Choices<'_>, ty: &GenType, names: &[&str], defs: &[Vec<(&str, GenType)>], depth: usize) -> Gj {
    if c.rarely(64) {
        // The wrong JSON kind altogether.
        return Gj::Raw(c.pick(&["null", "true", "0", "\"\"", "[]", "{}", "-1", "1.5"]).to_owned());
    }
    match ty {
        GenType::Struct(i) => {
            if depth > GEN_MAX_DEPTH {
                return Gj::Obj(Vec::new());
            }
            let mut entries: Vec<(String, Gj)> = Vec::new();
            for (n, t) in &defs[*i] {
                if entries.iter().any(|(k, _)| k == n) {
                    continue; // a field declared twice: the document is refused anyway
                }
                let v = gen_value(c, t, names, defs, depth + 1);
                entries.push(((*n).to_owned(), v));
            }
            if c.rarely(32) && !entries.is_empty() {
                let k = c.below(entries.len());
                entries.remove(k);
            }
            if c.rarely(32) {
                entries.push(("zz_extra".into(), Gj::Raw("1".into())));
            }
            Gj::Obj(entries)
        }
        GenType::Array(inner, len) => {
            let mut n = match len {
                Some(n) => *n,
                None if depth > GEN_MAX_DEPTH => 0,
                None => c.below(4),
            };
            if c.rarely(32) {
                n += 1;
            }
            Gj::Arr((0..n).map(|_| gen_value(c, inner, names, defs, depth + 1)).collect())
        }
        GenType::Atomic(a) => gen_atomic(c, a),
    }
}

fn gen_atomic(c: &mut Choices<'_>, a: &str) -> Gj {
    let bad = c.rarely(16);
    let bits = |p: &str| a.strip_prefix(p).and_then(|r| r.parse::<usize>().ok());
    if a == "address" {
        return jstr(if bad { c.pick(&["0xcD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826", "0x1234", "CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"]) } else { c.pick(&GEN_ADDRESSES) });
    }
    if a == "bool" {
        return Gj::Raw(if bad { c.pick(&["0", "\"true\"", "null"]) } else { c.pick(&["false", "true"]) }.to_owned());
    }
    if a == "string" {
        let n = c.below(8);
        let raw = c.bytes(n);
        return jstr(&String::from_utf8_lossy(&raw));
    }
    if a == "bytes" || a.starts_with("bytes") {
        let n = if a == "bytes" { c.below(6) } else { bits("bytes").unwrap_or(1) };
        let n = if bad { n + 1 } else { n };
        let raw = c.bytes(n);
        let mut s = hex_of(&raw);
        if c.rarely(2) {
            s = s.to_uppercase().replacen("0X", "0x", 1);
        }
        if bad && c.rarely(2) {
            s.push('0');
        }
        return jstr(&s);
    }
    let (signed, width) = match (bits("uint"), bits("int")) {
        (Some(b), _) => (false, b),
        (None, Some(b)) => (true, b),
        _ => (false, 256), // a refused type name: any value will do
    };
    let width = width.clamp(8, 256);
    if bad {
        let max_plus_one = if signed { U256::from(1u8) << (width - 1) } else if width == 256 { U256::ZERO } else { U256::from(1u8) << width };
        let s = c.pick(&["-1", "01", "0x10", " 1", "1e3", "-0", "+1", "1.0", ""]);
        let over = if !signed && width == 256 {
            "115792089237316195423570985008687907853269984665640564039457584007913129639936".to_owned()
        } else {
            max_plus_one.to_string()
        };
        return match c.below(3) {
            0 => jstr(&over),
            1 => jstr(s),
            _ => Gj::Raw(c.pick(&["1.0", "1e3", "-0", "18446744073709551616", "-9223372036854775809"]).to_owned()),
        };
    }
    // An in-range value, from the edges or from the input's bytes.
    let mag_bits = if signed { width - 1 } else { width };
    let max = if mag_bits == 256 { U256::MAX } else { (U256::from(1u8) << mag_bits) - U256::from(1u8) };
    let (negative, mag) = match c.below(5) {
        0 => (false, U256::from(c.byte())),
        1 => (false, max),
        2 => (signed, if signed { max + U256::from(1u8) } else { U256::ZERO }),
        _ => {
            let raw = c.bytes(32);
            (signed && c.rarely(2), U256::from_be_slice(&raw) & max)
        }
    };
    let text = format!("{}{}", if negative && !mag.is_zero() { "-" } else { "" }, mag);
    // Small values also go as JSON integers.
    let fits_json = if negative { mag <= U256::from(1u64 << 63) } else { mag <= U256::from(u64::MAX) };
    if fits_json && c.rarely(2) {
        Gj::Raw(text)
    } else {
        jstr(&text)
    }
}

// --- signatures ----------------------------------------------------------------------------

/// The digest every fuzzed signature is recovered against: the EIP-712 Mail example's.
pub const FIXED_DIGEST: [u8; 32] = [
    0xbe, 0x60, 0x9a, 0xee, 0x34, 0x3f, 0xb3, 0xc4, 0xb2, 0x8e, 0x1d, 0xf9, 0xe6, 0x32, 0xfc, 0xa6, 0x4f, 0xcf, 0xae, 0xde, 0x20,
    0xf0, 0x2e, 0x86, 0x24, 0x4e, 0xfd, 0xdf, 0x30, 0x95, 0x7b, 0xd2,
];

/// secp256k1's group order n.
pub fn curve_order() -> U256 {
    U256::from_str_radix("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16).unwrap()
}

/// Every policy: all eight combinations (eip3009 and permit2 among them).
pub fn all_policies() -> Vec<SignaturePolicy> {
    let mut out = Vec::with_capacity(8);
    for bits in 0u8..8 {
        out.push(SignaturePolicy { allow_compact: bits & 1 != 0, require_low_s: bits & 2 != 0, allow_v01: bits & 4 != 0 });
    }
    out
}

fn hex_of(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + 2 * bytes.len());
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `Signature::parse`/`parse_hex` and recovery never panic; an accepted signature obeys the
/// policy that accepted it; a looser policy accepts whatever a stricter one does, with the
/// same result; the canonical re-encoding parses back to the same signature.
pub fn check_signature(data: &[u8]) {
    let digest = Digest::from_slice(&FIXED_DIGEST).unwrap();
    let n = curve_order();
    let half_n = n >> 1;
    let policies = all_policies();
    let parsed: Vec<_> = policies.iter().map(|p| Signature::parse(data, p)).collect();
    let hex_text = hex_of(data);
    let mut recovered: Vec<(Signature, Result<x402_verify_core::Address, x402_verify_core::Error>)> = Vec::new();

    for (p, res) in policies.iter().zip(&parsed) {
        // The hex entry point is the byte one behind a decoder.
        assert_eq!(&Signature::parse_hex(&hex_text, p), res, "parse_hex(hex(x)) != parse(x) under {p:?}");
        let Ok(sig) = res else { continue };
        // What the policy promises.
        assert!(data.len() == 65 || (data.len() == 64 && p.allow_compact), "accepted length {} under {p:?}", data.len());
        if data.len() == 65 {
            let v = data[64];
            assert!(v == 27 || v == 28 || (p.allow_v01 && (v == 0 || v == 1)), "accepted v={v} under {p:?}");
        }
        assert!(!sig.r().is_zero() && sig.r() < n, "r out of range");
        assert!(!sig.s().is_zero() && sig.s() < n, "s out of range");
        if p.require_low_s {
            assert!(sig.s() <= half_n, "high s accepted under {p:?}");
        }
        // Canonical form round trip.
        let rsv = sig.to_rsv_bytes();
        assert_eq!(Signature::parse(&rsv, p).as_ref(), Ok(sig), "to_rsv_bytes does not parse back under {p:?}");
        // Monotonicity: every looser policy accepts it too, as the same signature.
        for (q, other) in policies.iter().zip(&parsed) {
            let looser = (q.allow_compact || !p.allow_compact) && (!q.require_low_s || p.require_low_s) && (q.allow_v01 || !p.allow_v01);
            if looser {
                assert_eq!(other.as_ref(), Ok(sig), "{q:?} is looser than {p:?} but disagrees");
            }
        }
        // Recover once per distinct signature; recovery must be deterministic.
        if !recovered.iter().any(|(s, _)| s == sig) {
            let a = sig.recover_address_from_prehash(&digest);
            assert_eq!(a, sig.recover_address_from_prehash(&digest), "recovery is not deterministic");
            if let Ok(addr) = &a {
                let key = sig.recover_public_key_from_prehash(&digest).expect("address recovered, so the key does");
                assert_eq!(x402_verify_core::Address::from_raw_public_key(&key), *addr, "address is not keccak(key)[12..]");
            }
            recovered.push((*sig, a));
        }
    }

    let strict = &parsed[index_of(&policies, SignaturePolicy::eip3009())];
    if let Ok(sig) = strict {
        assert_eq!(data.len(), 65, "eip3009 accepted a {}-byte signature", data.len());
        assert!(data[64] == 27 || data[64] == 28, "eip3009 accepted v={}", data[64]);
        assert!(sig.s() <= half_n, "eip3009 accepted high s");
    }
    if parsed[index_of(&policies, SignaturePolicy::permit2())].is_ok() {
        assert!(data.len() == 64 || data.len() == 65, "permit2 accepted a {}-byte signature", data.len());
    }

    // Text that is not the hex of bytes: parse_hex must refuse or agree with its decoding.
    if let Ok(text) = std::str::from_utf8(data) {
        for p in [SignaturePolicy::eip3009(), SignaturePolicy::permit2()] {
            let r = Signature::parse_hex(text, &p);
            match parse_hex_prefixed(text, Code::InvalidSignatureEncoding) {
                Ok(bytes) => assert_eq!(r, Signature::parse(&bytes, &p)),
                Err(e) => assert_eq!(r.unwrap_err().code, e.code),
            }
        }
    }
}

fn index_of(policies: &[SignaturePolicy], p: SignaturePolicy) -> usize {
    policies.iter().position(|q| *q == p).expect("policy listed")
}

// --- primitives ----------------------------------------------------------------------------

/// The atom parsers never panic; what they accept is exactly what they print back.
pub fn check_primitives(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };

    if let Ok(v) = parse_uint_decimal(s) {
        assert_eq!(v.to_string(), s, "parse_uint_decimal accepted a non-canonical decimal");
    }

    if let Ok(addr) = parse_address(s) {
        assert_eq!(s.len(), 42);
        let cs = checksum(&addr);
        assert!(cs.eq_ignore_ascii_case(s), "address does not print back: {cs} vs {s}");
        let hex = &s[2..];
        let mixed = hex.bytes().any(|b| b.is_ascii_uppercase()) && hex.bytes().any(|b| b.is_ascii_lowercase());
        if mixed {
            assert_eq!(cs, s, "a mixed-case address was accepted without its checksum");
        }
        // The checksummed form is always accepted, as the same address.
        assert_eq!(parse_address(&cs), Ok(addr));
    }

    match parse_hex_prefixed(s, Code::InvalidBytes) {
        Ok(bytes) => {
            assert!(hex_of(&bytes).eq_ignore_ascii_case(s) && s.starts_with("0x"), "hex does not print back");
        }
        Err(e) => assert_eq!(e.code, Code::InvalidBytes, "parse_hex_prefixed must fail with the code it was given"),
    }

    for p in [SignaturePolicy::eip3009(), SignaturePolicy::permit2()] {
        let _ = Signature::parse_hex(s, &p);
    }
}
