//! The facilitator's request body, `{"x402Version", "paymentPayload", "paymentRequirements"}`
//! (the x402 SDK's `HTTPFacilitatorClient` sends it to `/verify` and `/settle`), split into its
//! members without building them: the payload and the requirements come back as their own JSON
//! text, which the verifier then reads by its usual rules. So the service reads a body once, in
//! Rust, and never holds it as Python objects on the way to the checks.
//!
//! What is a fault of the envelope here (the service answers 400 and names it) and what is
//! left to the verifier (an invalid verdict) is the service's rule: the body must be UTF-8 JSON,
//! an object with no key twice, no deeper than the service's bound; `x402Version` exactly the
//! literal `1` or `2`; both members present and objects. Anything inside them is the
//! verifier's to judge.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A body read: the protocol version and the two members' JSON text (each an object).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// `x402Version`: 1 or 2.
    pub version: u8,
    /// `paymentPayload`, as JSON text.
    pub payload: &'a str,
    /// `paymentRequirements`, as JSON text.
    pub requirements: &'a str,
}

/// Why a body is not an envelope: a stable code and a message for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeFault {
    /// `invalid_json`, `too_deep`, `invalid_envelope` or `unsupported_x402_version`.
    pub code: &'static str,
    /// What is wrong, for humans (at most a few hundred characters).
    pub message: String,
}

impl EnvelopeFault {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Reads `body` as an envelope whose values nest at most `max_depth` deep (the body object
/// itself is depth 1). The caller bounds the body's size first.
pub fn read_envelope(body: &[u8], max_depth: usize) -> Result<Envelope<'_>, EnvelopeFault> {
    let text =
        std::str::from_utf8(body).map_err(|e| EnvelopeFault::new("invalid_json", format!("the body is not JSON: not UTF-8 at byte {}", e.valid_up_to())))?;
    // Bounded before serde_json recurses into it (its own bound is 128 levels).
    if nesting(body) > max_depth {
        return Err(EnvelopeFault::new("too_deep", format!("the body nests deeper than {max_depth} levels")));
    }
    let members = match text.trim_start().as_bytes().first() {
        Some(b'{') => members(text)?,
        _ => {
            let value: &RawValue = serde_json::from_str(text).map_err(not_json)?;
            return Err(EnvelopeFault::new("invalid_envelope", format!("the body must be a JSON object, not {}", kind(value.get()))));
        }
    };
    let get = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| v.get());
    let Some(version) = get("x402Version") else {
        return Err(EnvelopeFault::new("invalid_envelope", "x402Version is missing"));
    };
    // The literal only: 2.0, true and "2" are not versions.
    let version = match version {
        "1" => 1,
        "2" => 2,
        _ => return Err(EnvelopeFault::new("unsupported_x402_version", format!("x402Version must be 1 or 2, got {}", clip(version, 40)))),
    };
    let object = |name: &str| match get(name) {
        None => Err(EnvelopeFault::new("invalid_envelope", format!("{name} is missing"))),
        Some(v) if v.starts_with('{') => Ok(v),
        Some(v) => Err(EnvelopeFault::new("invalid_envelope", format!("{name} must be an object, not {}", kind(v)))),
    };
    let payload = object("paymentPayload")?;
    let requirements = object("paymentRequirements")?;
    Ok(Envelope { version, payload, requirements })
}

/// The deepest nesting of arrays and objects in `text`, counting brackets outside strings; on
/// text that is not JSON it is some count, which the parse refuses anyway.
fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The top-level object's members as raw JSON text, in order, each key once.
fn members(text: &str) -> Result<Vec<(String, &RawValue)>, EnvelopeFault> {
    let mut de = serde_json::Deserializer::from_str(text);
    let out = de.deserialize_map(Members).and_then(|m| de.end().map(|()| m)).map_err(not_json)?;
    Ok(out)
}

struct Members;

impl<'de> Visitor<'de> for Members {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: Vec<(String, &'de RawValue)> = Vec::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                // The key last: it may be long, or escape to longer, and the message is clipped.
                return Err(de::Error::custom(format_args!("a key appears more than once: {:?}", clip(&key, 40))));
            }
            out.push((key, map.next_value()?));
        }
        Ok(out)
    }
}

fn not_json(e: serde_json::Error) -> EnvelopeFault {
    EnvelopeFault::new("invalid_json", format!("the body is not JSON: {}", clip(&e.to_string(), 200)))
}

/// The Python name of a JSON value's type, from its text (what a Python client would call it).
fn kind(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'{') => "dict",
        Some(b'[') => "list",
        Some(b'"') => "str",
        Some(b't' | b'f') => "bool",
        Some(b'n') => "NoneType",
        _ if raw.contains(['.', 'e', 'E']) => "float",
        _ => "int",
    }
}

fn clip(text: &str, chars: usize) -> &str {
    text.char_indices().nth(chars).map_or(text, |(i, _)| &text[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(body: &str, depth: usize) -> &'static str {
        read_envelope(body.as_bytes(), depth).expect_err(body).code
    }

    #[test]
    fn members_come_back_as_their_text() {
        let e = read_envelope(br#" {"paymentRequirements": {"a": [1, 2.5]}, "x402Version": 2, "paymentPayload": {"b": "}\"{"}} "#, 8).unwrap();
        assert_eq!(e, Envelope { version: 2, payload: r#"{"b": "}\"{"}"#, requirements: r#"{"a": [1, 2.5]}"# });
        assert_eq!(read_envelope(br#"{"x402Version":1,"paymentPayload":{},"paymentRequirements":{},"extra":[]}"#, 2).unwrap().version, 1);
    }

    #[test]
    fn faults_are_named() {
        let ok = r#""paymentPayload": {}, "paymentRequirements": {}"#;
        for (body, code) in [
            ("", "invalid_json"),
            ("{", "invalid_json"),
            (r#"{"x402Version": 2} x"#, "invalid_json"),
            (r#"{"x402Version": 2, "x402Version": 2}"#, "invalid_json"),
            ("[]", "invalid_envelope"),
            ("2", "invalid_envelope"),
            ("{}", "invalid_envelope"),
            (&format!(r#"{{"x402Version": 2.0, {ok}}}"#), "unsupported_x402_version"),
            (&format!(r#"{{"x402Version": "2", {ok}}}"#), "unsupported_x402_version"),
            (&format!(r#"{{"x402Version": true, {ok}}}"#), "unsupported_x402_version"),
            (&format!(r#"{{"x402Version": 3, {ok}}}"#), "unsupported_x402_version"),
            (r#"{"x402Version": 2, "paymentRequirements": {}}"#, "invalid_envelope"),
            (r#"{"x402Version": 2, "paymentPayload": [], "paymentRequirements": {}}"#, "invalid_envelope"),
            (r#"{"x402Version": 2, "paymentPayload": {}, "paymentRequirements": null}"#, "invalid_envelope"),
        ] {
            assert_eq!(fault(body, 8), code, "{body}");
        }
        assert_eq!(read_envelope(b"{\"a\": \"\xff\"}", 8).unwrap_err().code, "invalid_json");
    }

    #[test]
    fn depth_counts_containers_outside_strings() {
        let body = |inner: &str| format!(r#"{{"x402Version": 2, "paymentPayload": {inner}, "paymentRequirements": {{}}}}"#);
        assert!(read_envelope(body(r#"{"a": [{}]}"#).as_bytes(), 4).is_ok());
        assert_eq!(fault(&body(r#"{"a": [{"b": []}]}"#), 4), "too_deep");
        assert!(read_envelope(body(r#"{"a": "[[[[[[{{{{\"[["}"#).as_bytes(), 2).is_ok());
        assert_eq!(fault(&"[".repeat(50_000), 32), "too_deep");
        assert_eq!(nesting(br#"{"a": "\\", "b": [[]]}"#), 3);
    }

    #[test]
    fn messages_say_what_was_found() {
        let m = |body: &str| read_envelope(body.as_bytes(), 8).unwrap_err().message;
        assert_eq!(m(r#"{"x402Version": [2], "paymentPayload": {}, "paymentRequirements": {}}"#), "x402Version must be 1 or 2, got [2]");
        assert_eq!(m(r#"{"x402Version": 2, "paymentPayload": 1.5, "paymentRequirements": {}}"#), "paymentPayload must be an object, not float");
        assert_eq!(m(r#""text""#), "the body must be a JSON object, not str");
        assert!(m(&format!(r#"{{"x402Version": "{}"}}"#, "é".repeat(100))).ends_with(&"é".repeat(39)));
    }
}
