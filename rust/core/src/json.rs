//! A strict JSON document model.
//!
//! serde_json's own `Value` keeps the last of two duplicate keys and turns big integers into
//! lossy floats; both let the checked value differ from the signed one. This model is built
//! through serde_json's tokenizer (so the grammar, UTF-8 handling and the 128-level recursion
//! limit are serde_json's) but rejects duplicate keys and every non-integer number, and keeps
//! integers exact. Python objects are converted into the same model by the bindings, so one
//! set of rules applies to dicts and to JSON text.

use std::fmt;

use alloy_primitives::U256;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{Code, Error, Result};

/// Deepest nesting accepted from any source (serde_json enforces the same bound on text).
pub const MAX_DEPTH: usize = 128;

/// An exact integer: sign and magnitude. `mag == None` means the magnitude is at least 2^256,
/// which no EIP-712 type can hold; it is kept so the error can say "out of range".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Int {
    pub negative: bool,
    pub mag: Option<U256>,
}

impl Int {
    pub fn from_u64(v: u64) -> Self {
        Int { negative: false, mag: Some(U256::from(v)) }
    }

    pub fn from_i64(v: i64) -> Self {
        Int { negative: v < 0, mag: Some(U256::from(v.unsigned_abs())) }
    }

    /// Parses the decimal text of an integer already known to be an integer (a Python int's
    /// `str()`); canonical form is not checked here because the source is not user text.
    pub fn from_decimal_repr(s: &str) -> Option<Self> {
        let (negative, digits) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Int { negative: negative && digits != "0", mag: crate::primitives::decimal_to_u256(digits) })
    }
}

/// One JSON (or Python) value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(Int),
    Str(String),
    /// Only produced from Python `bytes`; JSON text has no bytes.
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Object(Object),
}

impl Value {
    /// The JSON kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A JSON object with unique keys, in document order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Object {
    entries: Vec<(String, Value)>,
}

impl Object {
    /// Builds an object, rejecting a repeated key.
    pub fn from_entries(entries: Vec<(String, Value)>) -> Result<Self> {
        if let Some(dup) = first_duplicate(&entries) {
            return Err(Error::new(Code::DuplicateKey, format!("key {dup:?} appears more than once")));
        }
        Ok(Object { entries })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }
}

fn first_duplicate(entries: &[(String, Value)]) -> Option<&str> {
    // Objects in payment documents are small; a quadratic scan beats hashing below ~16 keys.
    if entries.len() <= 16 {
        for (i, (k, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(k2, _)| k2 == k) {
                return Some(k);
            }
        }
        None
    } else {
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        entries.iter().map(|(k, _)| k.as_str()).find(|k| !seen.insert(*k))
    }
}

// serde's error type only carries text, so the code travels as a tag at the start of it.
const TAG_DUP: &str = "\u{1}duplicate_key\u{1}";
const TAG_NUM: &str = "\u{1}invalid_json_number\u{1}";

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(Int::from_u64(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(Int::from_i64(v)))
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Value, E> {
        Err(E::custom(format_args!("{TAG_NUM}a JSON float, exponent or integer beyond 64 bits; write big integers as decimal strings")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(ValueSeed)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(ValueSeed)?;
            entries.push((key, value));
        }
        if let Some(dup) = first_duplicate(&entries) {
            return Err(de::Error::custom(format_args!("{TAG_DUP}key {dup:?} appears more than once")));
        }
        Ok(Value::Object(Object { entries }))
    }
}

struct ValueSeed;

impl<'de> de::DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// Parses JSON text strictly. The caller bounds the size first.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    // Text that is already UTF-8 skips serde_json's per-string validation.
    if let Ok(text) = std::str::from_utf8(bytes) {
        return parse_str(text);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Value::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| classify(bytes, &e))
}

/// Parses JSON text that is known to be UTF-8.
pub fn parse_str(text: &str) -> Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Value::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| classify(text.as_bytes(), &e))
}

fn classify(bytes: &[u8], e: &serde_json::Error) -> Error {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix(TAG_DUP) {
        return Error::new(Code::DuplicateKey, rest);
    }
    if let Some(rest) = text.strip_prefix(TAG_NUM) {
        return Error::new(Code::InvalidJsonNumber, rest);
    }
    // A literal beyond f64 (1e400) is a number problem, not a syntax one.
    if text.starts_with("number out of range") {
        return Error::new(Code::InvalidJsonNumber, "a number literal beyond any float; write big integers as decimal strings");
    }
    // NaN and Infinity are not JSON; say so precisely rather than "expected value".
    if e.is_syntax() {
        if let Some(off) = offset_of(bytes, e.line(), e.column()) {
            let tail = &bytes[off.saturating_sub(1)..];
            let tail = tail.strip_prefix(b"-").unwrap_or(tail);
            if tail.starts_with(b"NaN") || tail.starts_with(b"Infinity") || tail.starts_with(b"Inf") {
                return Error::new(Code::InvalidJsonNumber, "NaN and Infinity are not numbers in JSON");
            }
        }
    }
    Error::new(Code::InvalidJson, text)
}

fn offset_of(bytes: &[u8], line: usize, column: usize) -> Option<usize> {
    let mut start = 0usize;
    for _ in 1..line {
        start += bytes[start..].iter().position(|&b| b == b'\n')? + 1;
    }
    let off = start + column;
    (off <= bytes.len()).then_some(off)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> Code {
        parse(s.as_bytes()).unwrap_err().code
    }

    #[test]
    fn strictness() {
        assert_eq!(code(r#"{"a":1,"a":2}"#), Code::DuplicateKey);
        assert_eq!(code(r#"{"a":{"b":1,"b":1}}"#), Code::DuplicateKey);
        assert_eq!(code(r#"{"a":1.0}"#), Code::InvalidJsonNumber);
        assert_eq!(code(r#"{"a":1e6}"#), Code::InvalidJsonNumber);
        assert_eq!(code(r#"{"a":100000000000000000000000}"#), Code::InvalidJsonNumber);
        assert_eq!(code(r#"{"a":NaN}"#), Code::InvalidJsonNumber);
        assert_eq!(code(r#"{"a":1e400}"#), Code::InvalidJsonNumber);
        assert_eq!(code(r#"{"a":-1e400}"#), Code::InvalidJsonNumber);
        assert_eq!(code(r#"{"a":-Infinity}"#), Code::InvalidJsonNumber);
        assert_eq!(code(r#"{"a":1} x"#), Code::InvalidJson);
        assert_eq!(code("\u{0}"), Code::InvalidJson);
        assert_eq!(code(&"[".repeat(200)), Code::InvalidJson);
    }

    #[test]
    fn integers_are_exact() {
        let v = parse(br#"[18446744073709551615,-9223372036854775808,0]"#).unwrap();
        let Value::Array(a) = v else { panic!() };
        assert_eq!(a[0], Value::Int(Int::from_u64(u64::MAX)));
        assert_eq!(a[1], Value::Int(Int::from_i64(i64::MIN)));
    }
}
