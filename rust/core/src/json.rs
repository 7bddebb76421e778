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
    /// Below zero (never set for zero itself).
    pub negative: bool,
    /// The absolute value; `None` at 2^256 and above.
    pub mag: Option<U256>,
}

impl Int {
    /// A non-negative integer.
    pub fn from_u64(v: u64) -> Self {
        Int { negative: false, mag: Some(U256::from(v)) }
    }

    /// A signed integer.
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
    /// `null` (Python `None`).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer, exact at any size.
    Int(Int),
    /// A string (valid UTF-8).
    Str(String),
    /// Only produced from Python `bytes`; JSON text has no bytes.
    Bytes(Vec<u8>),
    /// An array (a Python list or tuple).
    Array(Vec<Value>),
    /// An object with unique keys.
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

    /// The object, if this is one.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The string, if this is one.
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

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The members, in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The keys, in document order.
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

/// Exact numbers for a second pass over text whose number literals were each replaced by `0`
/// (and padding): the visitor takes them in document order, one per number it is handed.
struct Numbers {
    items: Vec<Num>,
    next: std::cell::Cell<usize>,
}

/// One number literal of the text, read exactly.
enum Num {
    Int(Int),
    /// A fraction or an exponent: never an integer, whatever its value.
    Float,
    /// `-0`: grammatically an integer, but no integer is written that way.
    NegZero,
}

#[derive(Clone, Copy)]
struct ValueVisitor<'n> {
    numbers: Option<&'n Numbers>,
}

impl ValueVisitor<'_> {
    fn float<E: de::Error>() -> E {
        E::custom(format_args!("{TAG_NUM}a JSON float, exponent or integer beyond 64 bits; write big integers as decimal strings"))
    }

    /// In the second pass every number arrives as the `0` that stands for it.
    fn take<E: de::Error>(&self) -> Option<Result<Value, E>> {
        let numbers = self.numbers?;
        let i = numbers.next.get();
        numbers.next.set(i + 1);
        Some(match numbers.items.get(i) {
            Some(Num::Int(n)) => Ok(Value::Int(n.clone())),
            Some(Num::Float) => Err(E::custom(format_args!("{TAG_NUM}a JSON float or exponent is not an integer"))),
            Some(Num::NegZero) => Err(E::custom(format_args!("{TAG_NUM}-0 is not a canonical integer"))),
            None => Err(E::custom("internal: more numbers than literals")),
        })
    }
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
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
        self.take().unwrap_or(Ok(Value::Int(Int::from_u64(v))))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.take().unwrap_or(Ok(Value::Int(Int::from_i64(v))))
    }
    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Value, E> {
        self.take().unwrap_or_else(|| Err(Self::float()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(String, Value)> = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            entries.push((key, value));
        }
        if let Some(dup) = first_duplicate(&entries) {
            return Err(de::Error::custom(format_args!("{TAG_DUP}key {dup:?} appears more than once")));
        }
        Ok(Value::Object(Object { entries }))
    }
}

impl<'de> de::DeserializeSeed<'de> for ValueVisitor<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor { numbers: None })
    }
}

/// How integer literals beyond 64 bits are read from JSON text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integers {
    /// Refused (`invalid_json_number`): x402 payloads carry amounts as decimal strings, and a
    /// big literal is lossy in JavaScript and in most JSON parsers.
    Within64Bits,
    /// Read exactly at any size (2^256 or more is kept as out of range), as a Python dict of
    /// the same document holds them: EIP-712 JSON from Python and Go tools carries them.
    Exact,
}

/// Parses JSON text strictly, integers within 64 bits. The caller bounds the size first.
pub fn parse(bytes: &[u8]) -> Result<Value> {
    parse_with(bytes, Integers::Within64Bits)
}

/// Parses JSON text strictly, reading integer literals as `ints` says.
pub fn parse_with(bytes: &[u8], ints: Integers) -> Result<Value> {
    match parse_once(bytes, None) {
        // serde_json hands over a big integer only as a lossy f64 (or not at all past f64's
        // range), so such text is read again with every literal replaced by an exact value.
        // Only text holding a float, a big or out-of-range literal, NaN or Infinity pays for it.
        Err(e) if ints == Integers::Exact && e.code == Code::InvalidJsonNumber => {
            let (text, numbers) = exact_numbers(bytes);
            parse_once(&text, Some(&numbers))
        }
        r => r,
    }
}

/// Parses JSON text that is known to be UTF-8, integers within 64 bits.
pub fn parse_str(text: &str) -> Result<Value> {
    parse(text.as_bytes())
}

fn parse_once(bytes: &[u8], numbers: Option<&Numbers>) -> Result<Value> {
    let seed = ValueVisitor { numbers };
    // Text that is already UTF-8 skips serde_json's per-string validation.
    let parsed = if let Ok(text) = std::str::from_utf8(bytes) {
        let mut de = serde_json::Deserializer::from_str(text);
        de::DeserializeSeed::deserialize(seed, &mut de).and_then(|v| de.end().map(|()| v))
    } else {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        de::DeserializeSeed::deserialize(seed, &mut de).and_then(|v| de.end().map(|()| v))
    };
    parsed.map_err(|e| classify(bytes, &e))
}

/// Copies `bytes` with every well-formed number literal outside strings replaced by `0` and
/// spaces (so serde_json's error positions stay true), and reads each literal exactly.
///
/// In valid JSON a run of `-+.0-9eE` that starts with `-` or a digit outside a string is
/// exactly one number literal. A run that is not a well-formed literal is left as it is:
/// serde_json refuses the text at it or before it, so the queue is never read past it.
fn exact_numbers(bytes: &[u8]) -> (Vec<u8>, Numbers) {
    let mut text = bytes.to_vec();
    let mut items = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while i < text.len() {
        let b = text[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
        } else if b == b'"' {
            in_string = true;
            i += 1;
        } else if b == b'-' || b.is_ascii_digit() {
            let end = i + text[i..].iter().position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')).unwrap_or(text.len() - i);
            if let Some(num) = lex_number(&text[i..end]) {
                items.push(num);
                text[i] = b'0';
                text[i + 1..end].fill(b' ');
            }
            i = end;
        } else {
            i += 1;
        }
    }
    (text, Numbers { items, next: std::cell::Cell::new(0) })
}

/// Reads one literal by RFC 8259's number grammar; `None` if it is not one.
fn lex_number(tok: &[u8]) -> Option<Num> {
    let (negative, rest) = match tok.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, tok),
    };
    let int_len = match rest.first()? {
        b'0' => 1,
        b'1'..=b'9' => rest.iter().position(|c| !c.is_ascii_digit()).unwrap_or(rest.len()),
        _ => return None,
    };
    let (digits, mut tail) = rest.split_at(int_len);
    let mut float = false;
    if let Some(frac) = tail.strip_prefix(b".") {
        let n = frac.iter().position(|c| !c.is_ascii_digit()).unwrap_or(frac.len());
        if n == 0 {
            return None;
        }
        tail = &frac[n..];
        float = true;
    }
    if let Some(exp) = tail.strip_prefix(b"e").or_else(|| tail.strip_prefix(b"E")) {
        let exp = exp.strip_prefix(b"+").or_else(|| exp.strip_prefix(b"-")).unwrap_or(exp);
        let n = exp.iter().position(|c| !c.is_ascii_digit()).unwrap_or(exp.len());
        if n == 0 {
            return None;
        }
        tail = &exp[n..];
        float = true;
    }
    if !tail.is_empty() {
        return None;
    }
    if float {
        return Some(Num::Float);
    }
    if negative && digits == b"0" {
        return Some(Num::NegZero);
    }
    // ASCII digits, so the conversion cannot fail.
    let digits = std::str::from_utf8(digits).ok()?;
    Some(Num::Int(Int { negative, mag: crate::primitives::decimal_to_u256(digits) }))
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

    fn exact(s: &str) -> Result<Value> {
        parse_with(s.as_bytes(), Integers::Exact)
    }

    fn int(negative: bool, dec: &str) -> Value {
        Value::Int(Int { negative, mag: crate::primitives::decimal_to_u256(dec) })
    }

    #[test]
    fn exact_integers() {
        let max = U256::MAX.to_string();
        let text = format!(r#"{{"a":[18446744073709551616,-9223372036854775809,{max},1,"1.5 \" 1e5",-1],"b":{{"c":100000000000000000000000}}}}"#);
        let v = exact(&text).unwrap();
        let o = v.as_object().unwrap();
        let Some(Value::Array(a)) = o.get("a") else { panic!() };
        assert_eq!(a[0], int(false, "18446744073709551616"));
        assert_eq!(a[1], int(true, "9223372036854775809"));
        assert_eq!(a[2], int(false, &max));
        assert_eq!(a[3], Value::Int(Int::from_u64(1)));
        assert_eq!(a[4], Value::Str("1.5 \" 1e5".into()));
        assert_eq!(a[5], Value::Int(Int::from_i64(-1)));
        assert_eq!(o.get("b").unwrap().as_object().unwrap().get("c"), Some(&int(false, "100000000000000000000000")));
        // Beyond 2^256, and beyond any f64: kept as out of range, not refused as JSON.
        let huge = format!("[{}]", "9".repeat(500));
        assert_eq!(exact(&huge).unwrap(), Value::Array(vec![Value::Int(Int { negative: false, mag: None })]));
        // The plain reader still refuses them all.
        assert_eq!(parse(text.as_bytes()).unwrap_err().code, Code::InvalidJsonNumber);
        assert_eq!(parse(huge.as_bytes()).unwrap_err().code, Code::InvalidJsonNumber);
    }

    #[test]
    fn exact_still_refuses_floats_and_friends() {
        for s in [
            r#"{"a":1.0}"#,
            r#"{"a":1e6}"#,
            r#"[18446744073709551616,1E+2]"#,
            r#"{"a":-0}"#,
            r#"[1e400]"#,
            r#"[-1e400]"#,
            r#"{"a":NaN}"#,
            r#"[1,-Infinity]"#,
            r#"[99999999999999999999,0.5]"#,
        ] {
            assert_eq!(exact(s).unwrap_err().code, Code::InvalidJsonNumber, "{s}");
        }
        for s in [
            r#"[18446744073709551616,01]"#,
            r#"[18446744073709551616,1-2]"#,
            r#"[18446744073709551616,- 1]"#,
            r#"[18446744073709551616,1.]"#,
            r#"[18446744073709551616,.5]"#,
            r#"[18446744073709551616] x"#,
            r#"{"a":18446744073709551616,"a":1}"#,
        ] {
            assert!(matches!(exact(s).unwrap_err().code, Code::InvalidJson | Code::DuplicateKey), "{s}");
        }
        // serde_json's error positions survive the rewrite.
        let e = exact("[18446744073709551616,\n tru]").unwrap_err();
        assert!(e.message.contains("line 2"), "{}", e.message);
    }
}
