//! Invariant checks shared by the fuzz targets (`rust/core/fuzz/fuzz_targets/*.rs`, which
//! `#[path]`-include this file) and by the corpus replay test (`tests/fuzz_corpus.rs`).
//!
//! Each `check_*` takes raw fuzzer bytes and panics if, and only if, an invariant is broken
//! (a panic inside the library counts too). Only `x402_verify_core`, `serde` and `serde_json`
//! (dependencies of the core crate, so available to its tests) are used.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use x402_verify_core::eip712::{self, DEFAULT_MAX_BYTES};
use x402_verify_core::json::{self, Value};
use x402_verify_core::primitives::{checksum, parse_address, parse_hex_prefixed, parse_uint_decimal};
use x402_verify_core::store::memory::{MemoryStore, Reserve};
use x402_verify_core::store::{Entry, State, StoreRefusal};
use x402_verify_core::x402::digest::{eip3009_digest, eip3009_domain_separator, permit2_domain_separator, permit2_witness_digest};
use x402_verify_core::x402::payload::{parse_payload, parse_requirements, Authorization, PaymentPayload, PaymentRequirements};
use x402_verify_core::x402::replay::replay_key;
use x402_verify_core::x402::stages::{Authenticate, Recall, Remember};
use x402_verify_core::x402::{header, payload_text};
use x402_verify_core::x402::{verify, Context, PayloadInput, Pipeline, Scheme, Verdict, VerifyConfig, DEFAULT_MAX_PAYLOAD_BYTES};
use x402_verify_core::{Code, Digest, Signature, SignaturePolicy, B256, U256};

/// The fuzz targets, by the name of their corpus directory.
pub const TARGETS: [&str; 9] = ["json", "typed_data", "typed_data_gen", "signature", "primitives", "x402", "store", "authenticate", "envelope"];

/// Runs the check of the target `name` on one input.
pub fn check(name: &str, data: &[u8]) {
    match name {
        "json" => check_json(data),
        "typed_data" => check_typed_data(data),
        "typed_data_gen" => check_typed_data_gen(data),
        "signature" => check_signature(data),
        "primitives" => check_primitives(data),
        "x402" => check_x402(data),
        "store" => check_store(data),
        "authenticate" => check_authenticate(data),
        "envelope" => check_envelope(data),
        _ => panic!("no fuzz target named {name:?}"),
    }
}

// --- envelope ------------------------------------------------------------------------------

/// The nesting of a JSON text as serde_json reads it, every member counted (a `Value` would keep
/// only the last of two equal keys, and with it maybe the shallower value).
struct Depth;

impl<'de> serde::de::DeserializeSeed<'de> for Depth {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Depth {
    type Value = usize;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_str<E>(self, _: &str) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut deepest = 0;
        while let Some(d) = seq.next_element_seed(Depth)? {
            deepest = deepest.max(d);
        }
        Ok(deepest + 1)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut deepest = 0;
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            deepest = deepest.max(map.next_value_seed(Depth)?);
        }
        Ok(deepest + 1)
    }
}

fn depth_of(text: &[u8]) -> Option<usize> {
    let mut de = serde_json::Deserializer::from_slice(text);
    serde::de::DeserializeSeed::deserialize(Depth, &mut de).ok()
}

/// `envelope::read_envelope` (the first byte is the depth bound, the rest the body) never
/// panics; an accepted body is a JSON object within the bound whose `x402Version` is 1 or 2 and
/// whose members come back as text that parses to exactly the objects serde_json reads there;
/// a refusal has one of the four codes, and says `too_deep` only of a body past the bound or
/// `invalid_json` of a body serde_json reads only for a key given twice. What serde_json
/// refuses only as a value (see `built_only`) may pass: members are checked as text later.
pub fn check_envelope(data: &[u8]) {
    use x402_verify_core::x402::envelope::read_envelope;
    let Some((&bound, body)) = data.split_first() else { return };
    let max_depth = usize::from(bound % 40);
    // serde_json's own recursion limit would refuse what the bound does not.
    let parsed = serde_json::from_slice::<serde_json::Value>(body);
    // What serde_json refuses only when it builds a value (a literal past f64, 1e400; an escape
    // of a lone surrogate), the envelope takes as text: the verifier refuses it inside a member.
    let built_only = ["number out of range", "lone leading surrogate", "unexpected end of hex escape", "invalid unicode code point"];
    let lenient = parsed.as_ref().is_err_and(|e| built_only.iter().any(|p| e.to_string().starts_with(p)));
    let theirs = parsed.ok();
    match read_envelope(body, max_depth) {
        Ok(_) if lenient => {}
        Ok(e) => {
            let doc = theirs.expect("read_envelope accepted what serde_json refuses");
            assert!(depth_of(body).is_some_and(|d| d <= max_depth), "accepted past the depth bound");
            let obj = doc.as_object().expect("accepted a body that is not an object");
            assert_eq!(obj.get("x402Version").and_then(serde_json::Value::as_u64), Some(u64::from(e.version)));
            for (name, text) in [("paymentPayload", e.payload), ("paymentRequirements", e.requirements)] {
                let member: serde_json::Value = serde_json::from_str(text).expect("a member's text does not parse");
                assert!(member.is_object(), "{name} is not an object");
                assert_eq!(Some(&member), obj.get(name), "{name}'s text is not the member");
            }
        }
        Err(f) => {
            assert!(["invalid_json", "too_deep", "invalid_envelope", "unsupported_x402_version"].contains(&f.code), "code {}", f.code);
            match (&theirs, f.code) {
                (Some(_), "too_deep") => assert!(depth_of(body).is_some_and(|d| d > max_depth), "too_deep within the bound"),
                (Some(_), "invalid_json") => assert!(f.message.contains("appears more than once"), "{}", f.message),
                _ => {}
            }
        }
    }
}

// --- json ----------------------------------------------------------------------------------

/// `json::parse` never panics; what it accepts serde_json accepts too (it is only stricter),
/// what it refuses that serde_json accepts is refused for a strictness reason, and an accepted
/// value survives a print/parse round trip unchanged.
pub fn check_json(data: &[u8]) {
    check_json_exact(data);
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

/// `json::parse_with(_, Integers::Exact)` (typed data) differs from `json::parse` only where
/// the latter says `invalid_json_number`: the same value or error otherwise; what it accepts
/// serde_json accepts too, or refuses only as a number beyond any float; an accepted value
/// whose integers are below 2^256 prints back and re-parses to itself.
fn check_json_exact(data: &[u8]) {
    let exact = json::parse_with(data, json::Integers::Exact);
    match json::parse(data) {
        Ok(v) => assert_eq!(exact.as_ref(), Ok(&v), "exact integers changed a value the plain reader accepts"),
        Err(e) if e.code != Code::InvalidJsonNumber => assert_eq!(exact.as_ref().err(), Some(&e), "exact integers changed a non-number error"),
        Err(_) => {}
    }
    if let Ok(v) = &exact {
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(data) {
            assert!(e.to_string().starts_with("number out of range"), "exact reader accepted what serde_json refuses: {e}");
        }
        if all_ints_fit(v) {
            let text = to_json_text(v);
            let again = json::parse_with(text.as_bytes(), json::Integers::Exact).unwrap_or_else(|e| panic!("printed value does not re-parse: {e}; {text:?}"));
            assert_eq!(&again, v, "print/parse round trip changed the value (exact integers)");
        }
    }
}

fn all_ints_fit(v: &Value) -> bool {
    match v {
        Value::Int(i) => i.mag.is_some(),
        Value::Array(items) => items.iter().all(all_ints_fit),
        Value::Object(o) => o.iter().all(|(_, x)| all_ints_fit(x)),
        _ => true,
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
    // The JSON entry point is parse (integers exact) + from_value + signing_digest, step by step.
    match json::parse_with(data, json::Integers::Exact) {
        Err(e) => assert_eq!(first.unwrap_err(), e, "a JSON error must be reported as is"),
        Ok(doc) => match eip712::TypedData::from_value(&doc) {
            Err(e) => assert_eq!(first.unwrap_err(), e, "from_value's error must be reported as is"),
            Ok(td) => {
                let _ = td.encode_primary_type();
                let steps = td.domain_separator().and_then(|sep| Ok(x402_verify_core::primitives::eip712_signing_digest(&sep, &td.struct_hash()?)));
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
        _ => {
            panic!("reordering object keys changed acceptance: {a:?} vs {b:?}\n{plain}\n{shuffled}")
        }
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
        let members = fields.iter().map(|(n, t)| Gj::Obj(vec![("name".into(), jstr(n)), ("type".into(), jstr(&t.text(&names)))])).collect();
        types.push((names[i].to_owned(), Gj::Arr(members)));
    }

    let mut domain = Vec::new();
    for (n, t) in &domain_decl {
        let ty = atomic_type_of(t).expect("domain types are atomic");
        domain.push(((*n).to_owned(), gen_value(&mut c, &ty, &defs, 0)));
    }
    let primary = if c.rarely(32) { "Nope".to_owned() } else { names[0].to_owned() };
    let message = gen_value(&mut c, &GenType::Struct(0), &defs, 0);
    Gj::Obj(vec![("types".into(), Gj::Obj(types)), ("primaryType".into(), jstr(&primary)), ("domain".into(), Gj::Obj(domain)), ("message".into(), message)])
}

fn gen_value(c: &mut Choices<'_>, ty: &GenType, defs: &[Vec<(&str, GenType)>], depth: usize) -> Gj {
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
                let v = gen_value(c, t, defs, depth + 1);
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
            Gj::Arr((0..n).map(|_| gen_value(c, inner, defs, depth + 1)).collect())
        }
        GenType::Atomic(a) => gen_atomic(c, a),
    }
}

fn gen_atomic(c: &mut Choices<'_>, a: &str) -> Gj {
    let bad = c.rarely(16);
    let bits = |p: &str| a.strip_prefix(p).and_then(|r| r.parse::<usize>().ok());
    if a == "address" {
        return jstr(if bad {
            c.pick(&["0xcD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826", "0x1234", "CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"])
        } else {
            c.pick(&GEN_ADDRESSES)
        });
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
        let max_plus_one = if signed {
            U256::from(1u8) << (width - 1)
        } else if width == 256 {
            U256::ZERO
        } else {
            U256::from(1u8) << width
        };
        let s = c.pick(&["-1", "01", "0X10", " 1", "1e3", "-0", "+1", "1.0", "", "0x", "-0x1", "0x1_0", "0xg"]);
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
    let negative = negative && !mag.is_zero();
    let text = format!("{}{}", if negative { "-" } else { "" }, mag);
    // As a JSON integer literal (any size), a decimal string, or (non-negative) 0x hex.
    match c.below(4) {
        0 => Gj::Raw(text),
        1 if !negative => jstr(&format!("0x{}{mag:x}", "0".repeat(c.below(3)))),
        2 if !negative => jstr(&format!("0x{mag:X}")),
        _ => jstr(&text),
    }
}

// --- signatures ----------------------------------------------------------------------------

/// The digest every fuzzed signature is recovered against: the EIP-712 Mail example's.
pub const FIXED_DIGEST: [u8; 32] = [
    0xbe, 0x60, 0x9a, 0xee, 0x34, 0x3f, 0xb3, 0xc4, 0xb2, 0x8e, 0x1d, 0xf9, 0xe6, 0x32, 0xfc, 0xa6, 0x4f, 0xcf, 0xae, 0xde, 0x20, 0xf0, 0x2e, 0x86, 0x24, 0x4e,
    0xfd, 0xdf, 0x30, 0x95, 0x7b, 0xd2,
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
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

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

// --- x402 ----------------------------------------------------------------------------------

/// The clock the named `valid_*` seeds of corpus/x402 are valid at (they were signed for
/// validAfter = now - 600, validBefore / deadline = now + 300 by
/// `rust/core/fuzz/seeds/make_x402_seeds.py`).
pub const X402_NOW: u64 = 1_750_000_000;

/// The fixed requirements every fuzzed payload is verified against: EIP-3009 USDC on Base
/// Sepolia (v2), exact Permit2 and upto Permit2 (with `extra.facilitatorAddress`) for a token
/// on Base, and the EIP-3009 one in v1 framing. Same documents as the seed generator's.
pub const X402_REQUIREMENTS: [&str; 4] = [
    r#"{"scheme":"exact","network":"eip155:84532","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","amount":"10000","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":300,"extra":{"name":"USDC","version":"2"}}"#,
    r#"{"scheme":"exact","network":"eip155:8453","asset":"0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB","amount":"10000","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":300,"extra":{"name":"OpenGradient","version":"1","assetTransferMethod":"permit2"}}"#,
    r#"{"scheme":"upto","network":"eip155:8453","asset":"0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB","amount":"10000","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":300,"extra":{"name":"OpenGradient","version":"1","assetTransferMethod":"permit2","facilitatorAddress":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}}"#,
    r#"{"scheme":"exact","network":"base-sepolia","maxAmountRequired":"10000","resource":"https://api.example/x","description":"","mimeType":"application/json","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":300,"asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","extra":{"name":"USDC","version":"2"}}"#,
];

/// Signed payloads (named seeds) verified against fuzzed requirements: the first four are
/// valid under `X402_REQUIREMENTS[i]` at `X402_NOW`; the last two (exact Permit2 for 0, upto
/// to the zero address for 0) reach the proxies' settle-time refusals when the requirements
/// ask for an amount of 0 (and payTo 0).
pub const X402_FIXED_PAYLOADS: [&[u8]; 6] = [
    include_bytes!("../../fuzz/corpus/x402/valid_eip3009.json"),
    include_bytes!("../../fuzz/corpus/x402/valid_permit2.json"),
    include_bytes!("../../fuzz/corpus/x402/valid_upto.json"),
    include_bytes!("../../fuzz/corpus/x402/valid_eip3009_v1.json"),
    include_bytes!("../../fuzz/corpus/x402/bad_permit2_amount_zero.json"),
    include_bytes!("../../fuzz/corpus/x402/bad_upto_zero_destination.json"),
];

struct X402Fixtures {
    requirements: Vec<PaymentRequirements>,
    payloads: Vec<(Value, PaymentPayload)>,
    /// The default configuration; a strict one (no time buffer: USDC's own rule; at most 600 s
    /// of validity; Base and Base Sepolia only; its own facilitator list, which replaces the
    /// requirements' `facilitatorAddress`); and one that takes only chain 1 and knows no v1
    /// network names.
    configs: [VerifyConfig; 3],
}

fn x402_fixtures() -> &'static X402Fixtures {
    static F: OnceLock<X402Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let requirements = X402_REQUIREMENTS
            .iter()
            .map(|t| parse_requirements(&json::parse(t.as_bytes()).expect("fixed requirements are JSON")).expect("fixed requirements parse"))
            .collect();
        let payloads = X402_FIXED_PAYLOADS
            .iter()
            .map(|t| {
                let v = json::parse(t).expect("seed payload is JSON");
                let p = parse_payload(&v).expect("seed payload parses");
                (v, p)
            })
            .collect();
        let fac = |s: &str| parse_address(s).unwrap();
        let strict = VerifyConfig {
            time_buffer: 0,
            max_validity_seconds: Some(600),
            allowed_chain_ids: Some(vec![8453, 84_532]),
            facilitator_addresses: vec![fac("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"), fac("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")],
            ..VerifyConfig::sdk_defaults()
        };
        let mainnet = VerifyConfig { allowed_chain_ids: Some(vec![1]), network_names: HashMap::new(), ..VerifyConfig::sdk_defaults() };
        X402Fixtures { requirements, payloads, configs: [VerifyConfig::sdk_defaults(), strict, mainnet] }
    })
}

/// A pipeline with a verdict cache answers the same bytes at each clock exactly as the uncached
/// verifier does, whichever clock first put its verdict in the cache (two at which it is valid,
/// or one at which it is not, then every clock from there).
fn check_recall(data: &[u8], req: &Result<PaymentRequirements, x402_verify_core::Error>, times: &[u64], cfg: &VerifyConfig) {
    let valid: Vec<u64> = times.iter().copied().filter(|&t| verify(&PayloadInput::Text(data), req, t, cfg).is_valid()).take(2).collect();
    let firsts = if valid.is_empty() { vec![X402_NOW] } else { valid };
    for first in firsts {
        let recall = Arc::new(Recall::new(4));
        let pipeline = Pipeline::new(cfg.clone()).with_recall(recall.clone()).with_stage(Authenticate::recovery()).with_stage(Remember(recall.clone()));
        for t in std::iter::once(first).chain(times.iter().copied()) {
            let mut items = pipeline.run(&[data], &Context { now: t, threads: Some(1) }, |pl, d| pl.prepare(&PayloadInput::Text(d), req, t));
            let got = items.pop().expect("one item").verdict;
            assert_eq!(got, verify(&PayloadInput::Text(data), req, t, cfg), "the verdict cache changed a verdict (first at {first}, now {t})");
        }
        assert!(recall.stats().size <= 1);
    }
}

/// Reasons that depend on `now`.
const TIME_CODES: [Code; 5] =
    [Code::ValidBeforeExpired, Code::ValidAfterFuture, Code::Permit2DeadlineExpired, Code::Permit2NotYetValid, Code::AuthorizationWindowTooLong];

/// The input through the whole x402 path. Never panics, and:
/// - `header::decode` agrees with an independent strict base64 (RFC 4648, padded, canonical),
///   the size limit and `json::parse`; `decode(encode(text))` gives back any JSON the parser
///   accepts, and one byte less of limit is `payload_too_large`;
/// - an accepted payload prints to a canonical document that parses to the same payload, and
///   its authorization's fixed-type digest equals the generic EIP-712 encoder's;
/// - against each fixed requirement, at the seeds' clock, an input-derived clock and the
///   edges of the authorization's own time window, under each of three configs:
///   an unreadable payload gives the read error's verdict; `Text` and `Value` input agree;
///   a valid verdict has payer == from, a replay key (the one `replay_key` derives), a
///   64/65-byte signature (65, low-s, v 27/28 for EIP-3009), matching terms, a `now` inside
///   the window, and re-verifying gives the identical verdict; inside the window the verdict
///   does not depend on `now`, outside it is never valid and fails on a time check or on the
///   same reason as inside;
/// - read as requirements: the error is always `invalid_payment_requirements`, accepted ones
///   print to a canonical document that parses back equal, and the fixed signed payloads
///   verified against them obey the same verdict invariants.
pub fn check_x402(data: &[u8]) {
    let fx = x402_fixtures();
    let decoded = check_x402_header(data, DEFAULT_MAX_PAYLOAD_BYTES);
    // A small limit too, so the size checks see inputs the fuzzer can make.
    let _ = check_x402_header(data, 300);
    // Round trips: any JSON the parser accepts survives encode -> decode, at exactly its size.
    if let Ok(v) = json::parse(data) {
        check_header_round_trip(data, &v);
    }
    if let Ok(v) = &decoded {
        let text = to_json_text(v);
        check_header_round_trip(text.as_bytes(), v);
    }

    // The payload, against the fixed requirements.
    let payload = decoded.as_ref().map_err(Clone::clone).and_then(|v| parse_payload(v).map(|p| (v, p)));
    // The reader for well-formed text accepts only what the strict path reads, and reads it the same.
    if let Ok(text) = header::json_text(data, DEFAULT_MAX_PAYLOAD_BYTES) {
        if let Some(fast) = std::str::from_utf8(&text).ok().and_then(payload_text::read) {
            match &payload {
                Ok((_, p)) => assert_eq!(&fast, p, "payload_text::read and parse_payload read different payloads"),
                Err(e) => panic!("payload_text::read accepted a payload the strict path refuses: {} ({})", e.code, e.message),
            }
        }
    }
    match &payload {
        Err(e) => {
            let want = Verdict::from_error(e);
            for req in &fx.requirements {
                for cfg in &fx.configs {
                    let got = verify(&PayloadInput::Text(data), &Ok(req.clone()), X402_NOW, cfg);
                    assert_eq!(got, want, "an unreadable payload must give the read error's verdict");
                }
            }
        }
        Ok((v, p)) => {
            check_payload_round_trip(p);
            check_digests_agree(&p.authorization);
            let times = x402_times(data, &p.authorization);
            for req in &fx.requirements {
                let ok_req = Ok(req.clone());
                for (ci, cfg) in fx.configs.iter().enumerate() {
                    let mut inside: Option<Verdict> = None;
                    let mut outside: Vec<Verdict> = Vec::new();
                    for &t in &times {
                        let got = verify(&PayloadInput::Value(v), &ok_req, t, cfg);
                        if ci == 0 && t == X402_NOW {
                            let text = verify(&PayloadInput::Text(data), &ok_req, t, cfg);
                            assert_eq!(text, got, "Text and Value input disagree");
                        }
                        check_verdict(&got, &PayloadInput::Value(v), p, Some(req), t, cfg);
                        if in_window(&p.authorization, t, req, cfg) {
                            match &inside {
                                None => inside = Some(got),
                                Some(first) => assert_eq!(&got, first, "inside the validity window the verdict changed with now (t={t})"),
                            }
                        } else {
                            assert!(!got.is_valid(), "valid at t={t}, outside the authorization's window");
                            outside.push(got);
                        }
                    }
                    if ci == 0 {
                        check_recall(data, &ok_req, &times, cfg);
                    }
                    if let Some(first) = &inside {
                        for o in &outside {
                            assert!(
                                o.reason == first.reason || TIME_CODES.contains(&o.reason.expect("checked invalid")),
                                "outside the window the verdict is {:?}, inside {:?}: neither a time check nor the same reason",
                                o.reason,
                                first.reason
                            );
                        }
                    }
                }
            }
        }
    }

    // The same bytes as requirements.
    if let Ok(v) = json::parse(data) {
        let reqs = parse_requirements(&v);
        match &reqs {
            Err(e) => assert_eq!(e.code, Code::InvalidPaymentRequirements, "requirements errors are all invalid_payment_requirements"),
            Ok(r) => {
                let text = render_requirements(r);
                let again = parse_requirements(&json::parse(text.as_bytes()).expect("canonical requirements are JSON"));
                assert_eq!(again.as_ref(), Ok(r), "canonical requirements do not parse back equal: {text}");
            }
        }
        for (pv, p) in &fx.payloads {
            for cfg in &fx.configs {
                let got = verify(&PayloadInput::Value(pv), &reqs, X402_NOW, cfg);
                match &reqs {
                    Err(_) => assert_eq!(got.reason, Some(Code::InvalidPaymentRequirements), "bad requirements must say so"),
                    Ok(r) => check_verdict(&got, &PayloadInput::Value(pv), p, Some(r), X402_NOW, cfg),
                }
            }
        }
    }
}

/// `header::decode` at limit `max` against the oracle; returns its result.
fn check_x402_header(data: &[u8], max: usize) -> Result<Value, x402_verify_core::Error> {
    let got = header::decode(data, max);
    // The oracle: size bound on the header, then raw JSON text or strict base64.
    let trimmed = data.trim_ascii();
    let expected: Result<Value, Code> = if data.len() > max * 4 / 3 + 4 {
        Err(Code::PayloadTooLarge)
    } else {
        let text = if trimmed.first() == Some(&b'{') { Some(trimmed.to_vec()) } else { b64_decode_strict(trimmed) };
        match text {
            None => Err(Code::InvalidBase64),
            Some(t) if t.len() > max => Err(Code::PayloadTooLarge),
            Some(t) => json::parse(&t).map_err(|e| {
                if let Err(g) = &got {
                    assert_eq!(g, &e, "a JSON error must be reported as is");
                }
                e.code
            }),
        }
    };
    match (&got, &expected) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "header::decode disagrees with base64 + json::parse"),
        (Err(a), Err(b)) => assert_eq!(a.code, *b, "header::decode refused with {} ({}), expected {b}", a.code, a.message),
        _ => panic!("header::decode gave {got:?}, the oracle {expected:?}"),
    }
    got
}

fn check_header_round_trip(text: &[u8], v: &Value) {
    let h = header::encode(text);
    assert_eq!(h.as_bytes(), b64_encode(text).as_bytes(), "header::encode is not standard padded base64");
    assert_eq!(header::decode(h.as_bytes(), text.len()).as_ref(), Ok(v), "decode(encode(json)) does not round-trip");
    if let Some(less) = text.len().checked_sub(1) {
        assert_eq!(header::decode(h.as_bytes(), less).unwrap_err().code, Code::PayloadTooLarge, "the limit is not exact");
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RFC 4648 base64, standard alphabet, padding required, no bits left over, nothing else.
fn b64_decode_strict(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 4 != 0 {
        return None;
    }
    let val = |c: u8| B64.iter().position(|&x| x == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let chunks = s.len() / 4;
    for (i, chunk) in s.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - pad;
        if bytes[keep..].iter().any(|&b| b != 0) {
            return None; // bits left over in the last character
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Some(out)
}

/// The clocks a payload is verified at: the seeds' clock, one derived from the input (FNV-1a
/// of the bytes, within about 17 minutes of it), the extremes, and each side of every edge
/// of the authorization's window under both configurations.
fn x402_times(data: &[u8], auth: &Authorization) -> Vec<u64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut times = vec![X402_NOW, X402_NOW - 1024 + h % 2048, 0, u64::MAX];
    let (after, before) = window_of(auth);
    let edges = [(after, 0i64), (after, -1), (before, -6), (before, -5), (before, 0), (before, -1), (before, -600), (before, -601)];
    for (base, delta) in edges {
        let t = if delta < 0 { base.checked_sub(U256::from(delta.unsigned_abs())) } else { Some(base) };
        if let Some(t) = t.and_then(|t| u64::try_from(t).ok()) {
            times.push(t);
        }
    }
    times.sort_unstable();
    times.dedup();
    times
}

/// (validAfter, validBefore or deadline).
fn window_of(auth: &Authorization) -> (U256, U256) {
    match auth {
        Authorization::Eip3009(a) => (a.valid_after, a.valid_before),
        Authorization::Permit2(a) => (a.valid_after, a.deadline),
    }
}

/// Whether `t` passes the time checks: validAfter <= t, validBefore / deadline >= t + buffer
/// (and > t for EIP-3009: USDC's own rule), no later than t + maxTimeoutSeconds + the clock-skew
/// allowance, and within max_validity_seconds of t.
fn in_window(auth: &Authorization, t: u64, req: &PaymentRequirements, cfg: &VerifyConfig) -> bool {
    let (after, before) = window_of(auth);
    let now = U256::from(t);
    let strict_after = matches!(auth, Authorization::Eip3009(_));
    after <= now
        && before >= now + U256::from(cfg.time_buffer)
        && (!strict_after || before > now)
        && before <= now + U256::from(req.max_timeout_seconds) + U256::from(cfg.clock_skew_seconds)
        && cfg.max_validity_seconds.is_none_or(|m| before <= now + U256::from(m))
}

/// What every verdict on a readable payload `p` must satisfy.
fn check_verdict(v: &Verdict, input: &PayloadInput<'_>, p: &PaymentPayload, req: Option<&PaymentRequirements>, t: u64, cfg: &VerifyConfig) {
    let auth = &p.authorization;
    assert_eq!(v.authorization.as_ref(), Some(auth), "the verdict's authorization is not the payload's");
    assert_eq!(v.x402_version, Some(p.x402_version));
    // The payer is the claimed `from`, and stays so when the signature recovers to it.
    assert_eq!(v.payer, Some(auth.payer()), "payer is not authorization.from");
    if let Some(rk) = &v.replay {
        let chain = v.chain_id.expect("a replay key implies a known chain");
        let req = req.expect("a replay key implies requirements");
        assert_eq!(*rk, replay_key(chain, &req.asset, auth), "the replay key is not the authorization's");
    }
    let sig_bytes = parse_hex_prefixed(&p.signature, Code::InvalidSignatureEncoding).ok();
    if v.reason == Some(Code::NeedsChainCheck) {
        let b = sig_bytes.as_ref().expect("needs_chain_check on a signature that is not hex");
        let ecdsa = b.len() == 65 || (b.len() == 64 && matches!(auth, Authorization::Permit2(_)) && cfg.permit2_policy.allow_compact);
        assert!(!ecdsa || b.ends_with(&[0x64, 0x92].repeat(16)), "needs_chain_check on a plain {}-byte ECDSA signature", b.len());
    }
    if !v.is_valid() {
        assert!(!v.message.is_empty(), "an invalid verdict without a message");
        return;
    }
    // A valid verdict.
    let req = req.expect("valid without requirements");
    assert!(v.message.is_empty(), "a valid verdict carries a message: {}", v.message);
    assert!(v.replay.is_some(), "a valid verdict has no replay key");
    let chain = v.chain_id.expect("a valid verdict has a chain");
    assert!(cfg.allowed_chain_ids.as_ref().is_none_or(|ids| ids.contains(&chain)), "valid on a chain the config does not allow");
    assert!(in_window(auth, t, req, cfg), "valid at t={t} outside the window");
    assert_eq!(p.network, req.network, "valid with another network");
    assert_eq!(p.scheme, req.scheme, "valid with another scheme");
    let sig = sig_bytes.expect("valid with a signature that is not hex");
    assert!(sig.len() == 64 || sig.len() == 65, "valid with a {}-byte signature", sig.len());
    let digest = match auth {
        Authorization::Eip3009(a) => {
            assert_eq!(v.scheme, Some(Scheme::ExactEip3009));
            assert_eq!(req.scheme, "exact");
            assert_eq!(sig.len(), 65, "EIP-3009 valid with a {}-byte signature", sig.len());
            assert!(sig[64] == 27 || sig[64] == 28, "EIP-3009 valid with v={}", sig[64]);
            assert!(U256::from_be_slice(&sig[32..64]) <= curve_order() >> 1, "EIP-3009 valid with high s");
            assert_eq!((a.to, a.value), (req.pay_to, req.amount), "valid with other terms");
            let (name, version) =
                (req.extra_name.as_deref().expect("valid without extra.name"), req.extra_version.as_deref().expect("valid without extra.version"));
            eip3009_digest(&eip3009_domain_separator(name, version, chain, &req.asset), a)
        }
        Authorization::Permit2(a) => {
            let upto = req.scheme == "upto";
            assert_eq!(v.scheme, Some(if upto { Scheme::UptoPermit2 } else { Scheme::ExactPermit2 }));
            assert_eq!((a.to, a.amount, a.token), (req.pay_to, req.amount, req.asset), "valid with other terms");
            assert!(!a.to.is_zero(), "valid with witness.to = 0");
            if upto {
                assert!(cfg.upto_permit2_proxies.contains(&a.spender), "valid with another spender");
                let f = a.facilitator.expect("upto valid without a facilitator");
                assert!(if cfg.facilitator_addresses.is_empty() { req.facilitator_address == Some(f) } else { cfg.facilitator_addresses.contains(&f) });
            } else {
                assert!(cfg.exact_permit2_proxies.contains(&a.spender), "valid with another spender");
                assert!(a.facilitator.is_none() && !a.amount.is_zero());
            }
            permit2_witness_digest(&permit2_domain_separator(chain), a)
        }
    };
    // The signature recovers to the payer over the digest (recomputed through the public API).
    let policy = if matches!(auth, Authorization::Eip3009(_)) { &cfg.eip3009_policy } else { &cfg.permit2_policy };
    let signer = Signature::parse(&sig, policy).and_then(|s| s.recover_address_from_prehash(&digest));
    assert_eq!(signer, Ok(auth.payer()), "valid, but the signature does not recover to the payer");
    // Deterministic.
    assert_eq!(&verify(input, &Ok(req.clone()), t, cfg), v, "re-verifying changed the verdict");
}

/// A payload prints (addresses checksummed, numbers as canonical decimal strings) to a
/// document that parses to the same payload.
fn check_payload_round_trip(p: &PaymentPayload) {
    let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let auth = match &p.authorization {
        Authorization::Eip3009(a) => format!(
            r#""authorization":{{"from":"{}","to":"{}","value":"{}","validAfter":"{}","validBefore":"{}","nonce":"{}"}}"#,
            checksum(&a.from),
            checksum(&a.to),
            a.value,
            a.valid_after,
            a.valid_before,
            hex_of(a.nonce.as_slice())
        ),
        Authorization::Permit2(a) => format!(
            r#""permit2Authorization":{{"from":"{}","permitted":{{"token":"{}","amount":"{}"}},"spender":"{}","nonce":"{}","deadline":"{}","witness":{{"to":"{}",{}"validAfter":"{}"}}}}"#,
            checksum(&a.from),
            checksum(&a.token),
            a.amount,
            checksum(&a.spender),
            a.nonce,
            a.deadline,
            checksum(&a.to),
            a.facilitator.map(|f| format!(r#""facilitator":"{}","#, checksum(&f))).unwrap_or_default(),
            a.valid_after
        ),
    };
    let inner = format!(r#"{{"signature":{},{auth}}}"#, q(&p.signature));
    let text = if p.x402_version == 1 {
        format!(r#"{{"x402Version":1,"scheme":{},"network":{},"payload":{inner}}}"#, q(&p.scheme), q(&p.network))
    } else {
        format!(r#"{{"x402Version":2,"accepted":{{"scheme":{},"network":{}}},"payload":{inner}}}"#, q(&p.scheme), q(&p.network))
    };
    let again = json::parse(text.as_bytes()).and_then(|v| parse_payload(&v)).unwrap_or_else(|e| panic!("canonical payload refused: {e}\n{text}"));
    assert_eq!(
        (again.x402_version, &again.scheme, &again.network, &again.authorization, &again.signature),
        (p.x402_version, &p.scheme, &p.network, &p.authorization, &p.signature),
        "canonical payload parses to another payload\n{text}"
    );
}

fn render_requirements(r: &PaymentRequirements) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let mut extra = Vec::new();
    for (k, v) in [("name", &r.extra_name), ("version", &r.extra_version), ("assetTransferMethod", &r.asset_transfer_method)] {
        if let Some(v) = v {
            extra.push(format!("{}:{}", q(k), q(v)));
        }
    }
    if let Some(f) = &r.facilitator_address {
        extra.push(format!(r#""facilitatorAddress":"{}""#, checksum(f)));
    }
    let amount = if r.x402_version == 1 { r#""maxAmountRequired":""# } else { r#""amount":""# };
    let v1_only = if r.x402_version == 1 { r#","resource":"https://api.example/x""# } else { "" };
    format!(
        r#"{{"scheme":{},"network":{},{amount}{}","asset":"{}","payTo":"{}","maxTimeoutSeconds":{}{v1_only},"extra":{{{}}}}}"#,
        q(&r.scheme),
        q(&r.network),
        r.amount,
        checksum(&r.asset),
        checksum(&r.pay_to),
        r.max_timeout_seconds,
        extra.join(",")
    )
}

/// The fixed-type digests of `x402::digest` equal the generic EIP-712 encoder's on the same
/// authorization (EIP-3009 under the USDC Base Sepolia domain, Permit2 on Base).
fn check_digests_agree(auth: &Authorization) {
    let (doc, ours) = match auth {
        Authorization::Eip3009(a) => {
            let usdc = parse_address("0x036CbD53842c5426634e7929541eC2318f3dCF7e").unwrap();
            let doc = format!(
                r#"{{"types":{{"EIP712Domain":[{{"name":"name","type":"string"}},{{"name":"version","type":"string"}},{{"name":"chainId","type":"uint256"}},{{"name":"verifyingContract","type":"address"}}],"TransferWithAuthorization":[{{"name":"from","type":"address"}},{{"name":"to","type":"address"}},{{"name":"value","type":"uint256"}},{{"name":"validAfter","type":"uint256"}},{{"name":"validBefore","type":"uint256"}},{{"name":"nonce","type":"bytes32"}}]}},"primaryType":"TransferWithAuthorization","domain":{{"name":"USDC","version":"2","chainId":84532,"verifyingContract":"{}"}},"message":{{"from":"{}","to":"{}","value":"{}","validAfter":"{}","validBefore":"{}","nonce":"{}"}}}}"#,
                checksum(&usdc),
                checksum(&a.from),
                checksum(&a.to),
                a.value,
                a.valid_after,
                a.valid_before,
                hex_of(a.nonce.as_slice())
            );
            (doc, eip3009_digest(&eip3009_domain_separator("USDC", "2", 84_532, &usdc), a))
        }
        Authorization::Permit2(a) => {
            let (witness_fields, witness_value) = match &a.facilitator {
                Some(f) => (
                    r#"{"name":"to","type":"address"},{"name":"facilitator","type":"address"},{"name":"validAfter","type":"uint256"}"#.to_owned(),
                    format!(r#"{{"to":"{}","facilitator":"{}","validAfter":"{}"}}"#, checksum(&a.to), checksum(f), a.valid_after),
                ),
                None => (
                    r#"{"name":"to","type":"address"},{"name":"validAfter","type":"uint256"}"#.to_owned(),
                    format!(r#"{{"to":"{}","validAfter":"{}"}}"#, checksum(&a.to), a.valid_after),
                ),
            };
            let doc = format!(
                r#"{{"types":{{"EIP712Domain":[{{"name":"name","type":"string"}},{{"name":"chainId","type":"uint256"}},{{"name":"verifyingContract","type":"address"}}],"PermitWitnessTransferFrom":[{{"name":"permitted","type":"TokenPermissions"}},{{"name":"spender","type":"address"}},{{"name":"nonce","type":"uint256"}},{{"name":"deadline","type":"uint256"}},{{"name":"witness","type":"Witness"}}],"TokenPermissions":[{{"name":"token","type":"address"}},{{"name":"amount","type":"uint256"}}],"Witness":[{witness_fields}]}},"primaryType":"PermitWitnessTransferFrom","domain":{{"name":"Permit2","chainId":8453,"verifyingContract":"0x000000000022D473030F116dDEE9F6B43aC78BA3"}},"message":{{"permitted":{{"token":"{}","amount":"{}"}},"spender":"{}","nonce":"{}","deadline":"{}","witness":{witness_value}}}}}"#,
                checksum(&a.token),
                a.amount,
                checksum(&a.spender),
                a.nonce,
                a.deadline
            );
            (doc, permit2_witness_digest(&permit2_domain_separator(8453), a))
        }
    };
    let generic = eip712::hash_typed_data_json(doc.as_bytes(), usize::MAX).unwrap_or_else(|e| panic!("generic encoder refused {doc}: {e}"));
    assert_eq!(generic, ours, "x402 fixed-type digest differs from the generic encoder's\n{doc}");
}

// --- store ---------------------------------------------------------------------------------

const STORE_OWNERS: [&str; 3] = ["a", "b", ""];
const STORE_AMOUNTS: [u64; 6] = [0, 1, 2, 5, 7, 10];

fn store_key(i: usize) -> B256 {
    B256::repeat_byte(0x10 + i as u8)
}

/// The lifecycle of `store/mod.rs`, on a plain map that keeps every entry and judges liveness
/// (`expires_at > now`) when asked, so it forgets nothing and sweeps nothing.
struct StoreModel {
    max_entries: usize,
    map: HashMap<B256, Entry>,
}

impl StoreModel {
    fn live(&self, key: &B256, now: u64) -> Option<&Entry> {
        self.map.get(key).filter(|e| e.expires_at > now)
    }
    fn live_count(&self, now: u64) -> usize {
        self.map.values().filter(|e| e.expires_at > now).count()
    }
    fn reserve(&mut self, key: B256, owner: &str, expires_at: u64, cap: Option<U256>, now: u64) -> Result<bool, StoreRefusal> {
        if let Some(e) = self.live(&key, now) {
            // Reserved by the caller: an idempotent retry. Anything else: a replay.
            return Ok(matches!(&e.state, State::Reserved { owner: o, .. } if o == owner));
        }
        // Dead on arrival: nothing would be kept, so it is refused, never acknowledged.
        if expires_at <= now {
            self.map.remove(&key);
            return Err(StoreRefusal::Expired);
        }
        // Bounded: full means full of live entries.
        if self.live_count(now) >= self.max_entries {
            return Err(StoreRefusal::Full);
        }
        self.map.insert(key, Entry { state: State::Reserved { owner: owner.to_owned(), cap, charged: U256::ZERO }, expires_at });
        Ok(true)
    }
    fn settle(&mut self, key: &B256, owner: &str, now: u64) -> Result<U256, StoreRefusal> {
        self.live(key, now).ok_or(StoreRefusal::NotFound)?;
        let e = self.map.get_mut(key).unwrap();
        match e.state.clone() {
            State::Reserved { owner: o, charged, .. } if o == owner => {
                e.state = State::Settled { owner: o, total: charged };
                // The nonce is spent: a settled key is kept for as long as the store lives.
                e.expires_at = u64::MAX;
                Ok(charged)
            }
            State::Settled { owner: o, total } if o == owner => Ok(total),
            _ => Err(StoreRefusal::NotOwner),
        }
    }
    fn release(&mut self, key: &B256, owner: &str, now: u64) -> Result<(), StoreRefusal> {
        match &self.live(key, now).ok_or(StoreRefusal::NotFound)?.state {
            State::Reserved { owner: o, .. } if o == owner => {
                self.map.remove(key);
                Ok(())
            }
            State::Settled { owner: o, .. } if o == owner => Err(StoreRefusal::Closed),
            _ => Err(StoreRefusal::NotOwner),
        }
    }
    fn charge(&mut self, key: &B256, owner: &str, amount: U256, now: u64) -> Result<U256, StoreRefusal> {
        self.live(key, now).ok_or(StoreRefusal::NotFound)?;
        let e = self.map.get_mut(key).unwrap();
        match &mut e.state {
            State::Reserved { owner: o, cap, charged } if o == owner => {
                let cap = cap.ok_or(StoreRefusal::NotUpto)?;
                match charged.checked_add(amount) {
                    Some(total) if total <= cap => {
                        *charged = total;
                        Ok(total)
                    }
                    _ => Err(StoreRefusal::ExceedsCap),
                }
            }
            State::Settled { owner: o, .. } if o == owner => Err(StoreRefusal::Closed),
            _ => Err(StoreRefusal::NotOwner),
        }
    }
}

/// The bytes are a capacity (0-5) then a program: reserve batches (1-3 items over 4 keys, 3
/// owners including "", expiries from just past to 40 s ahead, caps none / small / U256::MAX),
/// settle, release, charge (small amounts, U256::MAX), sweep, and clock advances (never
/// backwards) against `MemoryStore` and `StoreModel`. Every outcome must agree; after every
/// step each key's live entry (`get`) equals the model's, `sweep` returns the model's live
/// count, and `len()` stays between the live count and the capacity.
pub fn check_store(data: &[u8]) {
    let mut c = Choices { data, pos: 0 };
    let max_entries = c.below(6);
    let store = MemoryStore::new(max_entries);
    let mut model = StoreModel { max_entries, map: HashMap::new() };
    let mut now: u64 = 1_000;
    let mut step = 0usize;
    while c.pos < data.len() {
        step += 1;
        let op = c.byte() % 8;
        let key = store_key(c.below(4));
        let owner = STORE_OWNERS[c.below(STORE_OWNERS.len())];
        match op {
            0 | 1 => {
                let n = 1 + c.below(3);
                let mut items = Vec::with_capacity(n);
                for i in 0..n {
                    let k = if i == 0 { key } else { store_key(c.below(4)) };
                    let o = if i == 0 { owner } else { STORE_OWNERS[c.below(STORE_OWNERS.len())] };
                    let expires_at = (now - 2) + c.below(43) as u64;
                    let cap = match c.below(4) {
                        0 | 1 => None,
                        2 => Some(U256::from(STORE_AMOUNTS[c.below(STORE_AMOUNTS.len())])),
                        _ => Some(U256::MAX),
                    };
                    items.push(Reserve { key: k, owner: o, expires_at, cap });
                }
                let got = store.reserve_many(&items, now);
                let want: Vec<_> = items.iter().map(|r| model.reserve(r.key, r.owner, r.expires_at, r.cap, now)).collect();
                assert_eq!(got, want, "step {step}: reserve_many at now={now} disagrees with the model");
            }
            2 => assert_eq!(store.settle(&key, owner, now), model.settle(&key, owner, now), "step {step}: settle at now={now}"),
            3 => assert_eq!(store.release(&key, owner, now), model.release(&key, owner, now), "step {step}: release at now={now}"),
            4 => {
                let amount = if c.rarely(8) { U256::MAX } else { U256::from(STORE_AMOUNTS[c.below(STORE_AMOUNTS.len())]) };
                assert_eq!(store.charge(&key, owner, amount, now), model.charge(&key, owner, amount, now), "step {step}: charge {amount} at now={now}");
            }
            5 => assert_eq!(store.sweep(now), model.live_count(now), "step {step}: sweep at now={now}"),
            6 => now += c.below(16) as u64,
            _ => now += 16 * c.below(8) as u64,
        }
        for i in 0..4 {
            let k = store_key(i);
            assert_eq!(store.get(&k, now), model.live(&k, now).cloned(), "step {step}: key {i} at now={now}");
        }
        let (len, live) = (store.len(), model.live_count(now));
        assert!(live <= len && len <= max_entries.max(live), "step {step}: len {len}, {live} live, capacity {max_entries}");
        assert_eq!(store.is_empty(), len == 0);
    }
}

// --- authenticate --------------------------------------------------------------------------

/// Keys and signatures the `authenticate` check builds its batches from (signing is slow; the
/// fuzzer mutates which of these it picks and how it breaks them).
pub struct AuthPool {
    pub keys: Vec<[u8; 64]>,
    pub addresses: Vec<x402_verify_core::Address>,
    /// (key index, digest, 65-byte r || s || v)
    pub sigs: Vec<(usize, [u8; 32], [u8; 65])>,
}

pub const AUTH_KEYS: usize = 6;
const AUTH_SIGS_PER_KEY: usize = 24;

pub fn auth_pool() -> &'static AuthPool {
    static POOL: OnceLock<AuthPool> = OnceLock::new();
    POOL.get_or_init(|| {
        use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
        let mut keys = Vec::new();
        let mut addresses = Vec::new();
        let mut sigs = Vec::new();
        for k in 0..AUTH_KEYS {
            let mut b = [0x11u8; 32];
            b[31] = k as u8;
            let sk = secp256k1::SecretKey::from_secret_bytes(b).unwrap();
            let full = secp256k1::PublicKey::from_secret_key(&sk).serialize_uncompressed();
            let xy: [u8; 64] = full[1..].try_into().unwrap();
            keys.push(xy);
            addresses.push(x402_verify_core::Address::from_raw_public_key(&xy));
            for j in 0..AUTH_SIGS_PER_KEY {
                let d: [u8; 32] = alloy_primitives::keccak256([k as u8, j as u8]).0;
                let (id, rs) = RecoverableSignature::sign_ecdsa_recoverable(secp256k1::Message::from_digest(d), &sk).serialize_compact();
                let mut sig = [0u8; 65];
                sig[..64].copy_from_slice(&rs);
                sig[64] = 27 + u8::from(id == RecoveryId::One);
                sigs.push((k, d, sig));
            }
        }
        AuthPool { keys, addresses, sigs }
    })
}

/// Builds item `i` of a batch from three bytes: which pooled signature, how it is broken, and a
/// parameter. Returns (digest, signature bytes, claimed signer).
pub fn auth_item(pick: u8, kind: u8, param: u8, prev: Option<&(Digest, Vec<u8>, x402_verify_core::Address)>) -> (Digest, Vec<u8>, x402_verify_core::Address) {
    let pool = auth_pool();
    let (k, d, sig) = pool.sigs[pick as usize % pool.sigs.len()];
    let mut digest = d;
    let mut bytes = sig.to_vec();
    let mut claimed = pool.addresses[k];
    let n = curve_order();
    let set = |bytes: &mut Vec<u8>, at: usize, v: U256| bytes[at..at + 32].copy_from_slice(&v.to_be_bytes::<32>());
    match kind % 16 {
        0..=3 => {}
        // v flipped on an otherwise valid signature: recovers another key.
        4 => bytes[64] ^= 27 ^ 28,
        // A good signature by another key, claimed for this one.
        5 => {
            let (_, d2, s2) = pool.sigs[(pick as usize + AUTH_SIGS_PER_KEY * (1 + param as usize % (AUTH_KEYS - 1))) % pool.sigs.len()];
            digest = d2;
            bytes = s2.to_vec();
        }
        // The digest the payer did not sign.
        6 => digest[param as usize % 32] ^= 1 | param,
        // The high-s twin (r, n - s, !v): recovers the same key where the policy takes it.
        7 => {
            let s = U256::from_be_slice(&bytes[32..64]);
            set(&mut bytes, 32, n - s);
            bytes[64] ^= 27 ^ 28;
        }
        8 => bytes[64] = if param == 27 || param == 28 { 29 } else { param },
        9 => set(&mut bytes, 0, [U256::ZERO, n, U256::MAX, n + U256::from(param)][param as usize % 4]),
        10 => set(&mut bytes, 32, [U256::ZERO, n, U256::MAX, n + U256::from(param)][param as usize % 4]),
        // r = 5 is the x of no point (5^3 + 7 is not a square mod p).
        11 => set(&mut bytes, 0, U256::from(5)),
        // EIP-2098 compact form.
        12 => {
            let y = bytes[64] == 28;
            bytes.truncate(64);
            if y {
                bytes[32] |= 0x80;
            }
        }
        // Unrelated r and s.
        13 => {
            let h = alloy_primitives::keccak256([param, pick, kind]).0;
            bytes[..32].copy_from_slice(&h[..]);
            bytes[32..64].copy_from_slice(&alloy_primitives::keccak256(h).0);
        }
        // A payer nobody holds a key for.
        14 => claimed = x402_verify_core::Address::repeat_byte(param),
        _ => {
            if let Some(p) = prev {
                return p.clone();
            }
        }
    }
    (Digest::from_slice(&digest).unwrap(), bytes, claimed)
}

/// What per-item recovery says: the parse error, or the recovered address (or its error).
fn auth_reference(digest: &Digest, bytes: &[u8], policy: &SignaturePolicy) -> Result<x402_verify_core::Address, x402_verify_core::Error> {
    Signature::parse(bytes, policy)?.recover_address_from_prehash(digest)
}

/// Batch authentication gives every item exactly what per-item recovery gives it, with the
/// cache cold, warmed by a first pass, or filled by hand, at any capacity, with and without the
/// session cache (bit 3 of the first byte; the third pass runs past every deadline), wary or
/// trusting at the start (bit 4: the probe first, or the whole batch first); each item
/// is batch-verified, recovered or a session hit, once; the cache holds only keys whose address
/// they hash to and never more than its capacity.
pub fn check_authenticate(data: &[u8]) {
    use x402_verify_core::authenticate::{Authenticator, Session, SigItem};
    if data.len() < 2 {
        return;
    }
    let policy = all_policies()[data[0] as usize % 8];
    let sessions = data[0] & 8 != 0;
    let capacity = [0usize, 1, 3, 64][data[1] as usize & 3];
    let warm = data[1] >> 2;
    let mut items: Vec<(Digest, Vec<u8>, x402_verify_core::Address)> = Vec::new();
    for c in data[2..].chunks_exact(3).take(1024) {
        let item = auth_item(c[0], c[1], c[2], items.last());
        items.push(item);
    }
    let pool = auth_pool();
    let auth = Authenticator::new(capacity);
    // Bit 4: start trusting (the whole batch checked first, the probe only after a failure).
    if data[0] & 16 != 0 {
        auth.trust_history();
    }
    for k in 0..AUTH_KEYS {
        if warm >> k & 1 == 1 {
            auth.keys().insert(pool.addresses[k], &pool.keys[k]).unwrap();
        }
    }
    let reference: Vec<_> = items.iter().map(|(d, b, _)| auth_reference(d, b, &policy)).collect();
    let mut submitted = 0u64;
    for pass in 0..3u64 {
        // Deadlines 1000 + (a digest byte): the third pass (now 2000) is past all of them.
        let session = |d: &Digest| sessions.then(|| Session { now: [500, 900, 2000][pass as usize], expires: 1000 + u64::from(d.0[0]) });
        // Parse errors are the policy's, before any curve work; the rest is authenticated.
        let parsed: Vec<_> = items.iter().map(|(_, b, _)| Signature::parse(b, &policy)).collect();
        let sig_items: Vec<SigItem> = items
            .iter()
            .zip(&parsed)
            .filter_map(|((d, _, c), p)| p.as_ref().ok().map(|s| SigItem { digest: *d, signature: *s, claimed: *c, session: session(d) }))
            .collect();
        let mut results = auth.authenticate(&sig_items).into_iter();
        submitted += sig_items.len() as u64;
        for (i, p) in parsed.iter().enumerate() {
            let got = match p {
                Err(e) => Err(e.clone()),
                Ok(_) => results.next().expect("one result per item"),
            };
            assert_eq!(got, reference[i], "pass {pass}, item {i} of {}: batch and per-item recovery disagree", items.len());
        }
    }
    let stats = auth.stats();
    assert_eq!(stats.batch_verified + stats.recovered + stats.session_hits, submitted, "each item batch-verified, recovered or a session hit, once: {stats:?}");
    assert!(stats.key_cache_size as usize <= capacity);
    assert!(sessions || stats.session_hits == 0);
    for k in 0..AUTH_KEYS {
        if let Some(key) = auth.keys().get(&pool.addresses[k]) {
            assert_eq!(key.as_xy(), &pool.keys[k], "the cache holds a wrong key for payer {k}");
        }
    }
}
