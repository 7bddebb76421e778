//! Reading a payment payload straight from its JSON text, for the well-formed case.
//!
//! `payload::parse_payload` reads the generic strict model (`json::Value`), which allocates a
//! string per key and value and a vector per object: about half the cost of a verify before
//! the signature. Here serde_json's tokenizer feeds the payload's own fields, borrowing every
//! string without escapes from the text. This reader only *accepts*: on anything unexpected
//! (a duplicate key, a float, an unknown member, a wrong type, a malformed field) it gives
//! `None`, and the caller reads the text again on the precise path, whose error codes and paths
//! are the contract. So it must accept only what that path accepts, and read it identically;
//! the fuzz target and the tests check both on every input.
//!
//! Hand-written visitors rather than `#[derive(Deserialize)]`: the strict model's rules hold
//! for the members x402 ignores too (a float or a repeated key anywhere refuses the payload),
//! which derive's `IgnoredAny` would let through.

use std::borrow::Cow;
use std::fmt;

use alloy_primitives::B256;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::payload::{Authorization, Eip3009Authorization, PaymentPayload, Permit2Authorization};
use crate::primitives::{decode_hex_into, parse_address, parse_uint_decimal};

/// Reads JSON text as a payment payload; `None` unless the strict path would read the same.
pub fn read(text: &str) -> Option<PaymentPayload> {
    let mut de = serde_json::Deserializer::from_str(text);
    let top = de::Deserialize::deserialize(&mut de).ok()?;
    de.end().ok()?;
    into_payload(top)
}

fn into_payload(t: Top<'_>) -> Option<PaymentPayload> {
    let (scheme, network) = match (t.version?, t.accepted) {
        // v1: scheme and network at the top; no `accepted`, `resource` or `extensions`.
        (1, None) if !t.v2_only_members => (t.scheme?, t.network?),
        // v2: the client's copy of the requirements carries them.
        (2, Some(a)) if t.scheme.is_none() && t.network.is_none() => (a.scheme?, a.network?),
        _ => return None,
    };
    let inner = t.payload?;
    let authorization = match (inner.eip3009, inner.permit2) {
        (Some(a), None) => Authorization::Eip3009(a),
        (None, Some(a)) => Authorization::Permit2(a),
        _ => return None,
    };
    Some(PaymentPayload {
        x402_version: t.version? as u8,
        scheme: scheme.into_owned(),
        network: network.into_owned(),
        authorization,
        signature: inner.signature.unwrap_or_default(),
    })
}

type Text<'de> = Cow<'de, str>;

/// A JSON string, borrowed from the text when it has no escapes.
struct TextSeed;

impl<'de> DeserializeSeed<'de> for TextSeed {
    type Value = Text<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Text<'de>, D::Error> {
        d.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Cow::Owned(v))
    }
}

/// The error every refusal becomes; its text is never shown (the precise path explains).
fn no<E: de::Error>() -> E {
    E::custom("not a well-formed x402 payload")
}

/// Sets a member once: a repeated key refuses the payload, as the strict model does.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
    match slot {
        Some(_) => Err(no()),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// Any JSON value, checked against the strict model's rules (no floats, no repeated keys) and
/// dropped: what x402 ignores must still be valid for the payload to be read here.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a strict JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(no())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Strict)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = Keys::default();
        while let Some(k) = map.next_key_seed(TextSeed)? {
            keys.insert_new(k)?;
            map.next_value_seed(Strict)?;
        }
        Ok(())
    }
}

/// The keys of one object so far, for the repeated-key rule: a scan while few (payment
/// objects have a handful), a hash set once many, so a 16 KiB object of short keys stays
/// linear (as `json::first_duplicate` does).
#[derive(Default)]
struct Keys<'de> {
    few: Vec<Text<'de>>,
    many: std::collections::HashSet<Text<'de>>,
}

impl<'de> Keys<'de> {
    const FEW: usize = 16;

    /// Adds `k`; a key seen before refuses the payload.
    fn insert_new<E: de::Error>(&mut self, k: Text<'de>) -> Result<(), E> {
        if self.few.len() < Self::FEW {
            if self.few.contains(&k) {
                return Err(no());
            }
            self.few.push(k);
            return Ok(());
        }
        if self.many.is_empty() {
            self.many.extend(self.few.iter().cloned());
        }
        if self.many.insert(k) {
            Ok(())
        } else {
            Err(no())
        }
    }
}

/// `x402Version`: a JSON integer (the strict model has no floats).
struct IntSeed;

impl<'de> DeserializeSeed<'de> for IntSeed {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IntSeed {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
}

/// `signature`: a string, or null (read as empty, as the strict path does).
struct SignatureSeed;

impl<'de> DeserializeSeed<'de> for SignatureSeed {
    type Value = Option<Text<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SignatureSeed {
    type Value = Option<Text<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
}

/// A JSON object read member by member: `field` is called once per key, in document order.
fn object<'de, A: MapAccess<'de>>(mut map: A, mut field: impl FnMut(&str, &mut A) -> Result<(), A::Error>) -> Result<(), A::Error> {
    while let Some(k) = map.next_key_seed(TextSeed)? {
        field(&k, &mut map)?;
    }
    Ok(())
}

/// Implements a seed that reads a JSON object with `$visit`.
macro_rules! object_seed {
    ($seed:ident -> $out:ty, |$map:ident| $body:expr) => {
        struct $seed;
        impl<'de> DeserializeSeed<'de> for $seed {
            type Value = $out;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<$out, D::Error> {
                d.deserialize_map(self)
            }
        }
        impl<'de> Visitor<'de> for $seed {
            type Value = $out;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, $map: A) -> Result<$out, A::Error> {
                $body
            }
        }
    };
}

struct Top<'de> {
    version: Option<u64>,
    scheme: Option<Text<'de>>,
    network: Option<Text<'de>>,
    accepted: Option<Accepted<'de>>,
    payload: Option<Inner>,
    /// `resource` or `extensions` seen: members of v2 only.
    v2_only_members: bool,
}

impl<'de> de::Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a payment payload")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top<'de>, A::Error> {
        let mut t = Top { version: None, scheme: None, network: None, accepted: None, payload: None, v2_only_members: false };
        let (mut resource, mut extensions) = (None, None);
        object(map, |k, m| match k {
            "x402Version" => once(&mut t.version, m.next_value_seed(IntSeed)?),
            "scheme" => once(&mut t.scheme, m.next_value_seed(TextSeed)?),
            "network" => once(&mut t.network, m.next_value_seed(TextSeed)?),
            "accepted" => once(&mut t.accepted, m.next_value_seed(AcceptedSeed)?),
            "payload" => once(&mut t.payload, m.next_value_seed(InnerSeed)?),
            "resource" => once(&mut resource, m.next_value_seed(Strict)?),
            "extensions" => once(&mut extensions, m.next_value_seed(Strict)?),
            _ => Err(no()),
        })?;
        t.v2_only_members = resource.is_some() || extensions.is_some();
        Ok(t)
    }
}

/// v2's `accepted`: scheme and network are read; every other member is checked and dropped.
struct Accepted<'de> {
    scheme: Option<Text<'de>>,
    network: Option<Text<'de>>,
}

struct AcceptedSeed;

impl<'de> DeserializeSeed<'de> for AcceptedSeed {
    type Value = Accepted<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Accepted<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AcceptedSeed {
    type Value = Accepted<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Accepted<'de>, A::Error> {
        let mut a = Accepted { scheme: None, network: None };
        let mut others = Keys::default();
        while let Some(k) = map.next_key_seed(TextSeed)? {
            match &*k {
                "scheme" => once(&mut a.scheme, map.next_value_seed(TextSeed)?)?,
                "network" => once(&mut a.network, map.next_value_seed(TextSeed)?)?,
                _ => {
                    others.insert_new(k)?;
                    map.next_value_seed(Strict)?;
                }
            }
        }
        Ok(a)
    }
}

/// The scheme-specific `payload`: a signature and exactly one kind of authorization.
struct Inner {
    signature: Option<String>,
    eip3009: Option<Eip3009Authorization>,
    permit2: Option<Permit2Authorization>,
}

object_seed!(InnerSeed -> Inner, |map| {
    let mut inner = Inner { signature: None, eip3009: None, permit2: None };
    let mut signature: Option<Option<Text<'de>>> = None;
    object(map, |k, m| match k {
        "signature" => once(&mut signature, m.next_value_seed(SignatureSeed)?),
        "authorization" => once(&mut inner.eip3009, m.next_value_seed(Eip3009Seed)?),
        "permit2Authorization" => once(&mut inner.permit2, m.next_value_seed(Permit2Seed)?),
        _ => Err(no()),
    })?;
    inner.signature = signature.flatten().map(Cow::into_owned);
    Ok(inner)
});

/// Reads the string members of an object into named slots; any other member refuses.
macro_rules! strings {
    ($map:ident, { $($key:literal => $slot:ident),* $(,)? }) => {{
        $(let mut $slot: Option<Text<'de>> = None;)*
        object($map, |k, m| match k {
            $($key => once(&mut $slot, m.next_value_seed(TextSeed)?),)*
            _ => Err(no()),
        })?;
        ($($slot),*)
    }};
}

fn address<E: de::Error>(s: Option<Text<'_>>) -> Result<alloy_primitives::Address, E> {
    parse_address(&s.ok_or_else(no)?).map_err(|_| no())
}

fn uint<E: de::Error>(s: Option<Text<'_>>) -> Result<alloy_primitives::U256, E> {
    parse_uint_decimal(&s.ok_or_else(no)?).map_err(|_| no())
}

object_seed!(Eip3009Seed -> Eip3009Authorization, |map| {
    let (from, to, value, valid_after, valid_before, nonce) = strings!(map, {
        "from" => from, "to" => to, "value" => value, "validAfter" => valid_after, "validBefore" => valid_before, "nonce" => nonce,
    });
    let nonce = nonce.ok_or_else(no)?;
    let mut n = [0u8; 32];
    decode_hex_into(nonce.strip_prefix("0x").ok_or_else(no)?.as_bytes(), &mut n).ok_or_else(no)?;
    Ok(Eip3009Authorization {
        from: address(from)?,
        to: address(to)?,
        value: uint(value)?,
        valid_after: uint(valid_after)?,
        valid_before: uint(valid_before)?,
        nonce: B256::from(n),
    })
});

struct Permitted<'de> {
    token: Option<Text<'de>>,
    amount: Option<Text<'de>>,
}

object_seed!(PermittedSeed -> Permitted<'de>, |map| {
    let (token, amount) = strings!(map, { "token" => token, "amount" => amount });
    Ok(Permitted { token, amount })
});

struct Witness<'de> {
    to: Option<Text<'de>>,
    valid_after: Option<Text<'de>>,
    facilitator: Option<Text<'de>>,
}

object_seed!(WitnessSeed -> Witness<'de>, |map| {
    let (to, valid_after, facilitator) = strings!(map, { "to" => to, "validAfter" => valid_after, "facilitator" => facilitator });
    Ok(Witness { to, valid_after, facilitator })
});

object_seed!(Permit2Seed -> Permit2Authorization, |map| {
    let mut from = None;
    let mut spender = None;
    let mut nonce = None;
    let mut deadline = None;
    let mut permitted = None;
    let mut witness = None;
    object(map, |k, m| match k {
        "from" => once(&mut from, m.next_value_seed(TextSeed)?),
        "spender" => once(&mut spender, m.next_value_seed(TextSeed)?),
        "nonce" => once(&mut nonce, m.next_value_seed(TextSeed)?),
        "deadline" => once(&mut deadline, m.next_value_seed(TextSeed)?),
        "permitted" => once(&mut permitted, m.next_value_seed(PermittedSeed)?),
        "witness" => once(&mut witness, m.next_value_seed(WitnessSeed)?),
        _ => Err(no()),
    })?;
    let (permitted, witness): (Permitted<'_>, Witness<'_>) = (permitted.ok_or_else(no)?, witness.ok_or_else(no)?);
    Ok(Permit2Authorization {
        from: address(from)?,
        token: address(permitted.token)?,
        amount: uint(permitted.amount)?,
        spender: address(spender)?,
        nonce: uint(nonce)?,
        deadline: uint(deadline)?,
        to: address(witness.to)?,
        valid_after: uint(witness.valid_after)?,
        facilitator: match witness.facilitator {
            Some(f) => Some(address(Some(f))?),
            None => None,
        },
    })
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;
    use crate::x402::payload::parse_payload;

    const PERMIT2: &str = r#"{"x402Version":2,"accepted":{"scheme":"exact","network":"eip155:8453","amount":"1","extra":{"a":[1,null,true]}},"resource":{"url":"https://x"},"payload":{"signature":"0xab","permit2Authorization":{"from":"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266","permitted":{"token":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","amount":"10000"},"spender":"0x402085c248EeA27D92E8b30b2C58ed07f9E20001","nonce":"33247007178036348590600198031289925668252061821958005840077069883511451257277","deadline":"1740672154","witness":{"to":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","validAfter":"1740672089"}}}}"#;
    const EIP3009_V1: &str = r#"{"x402Version":1,"scheme":"exact","network":"base","payload":{"signature":null,"authorization":{"from":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","to":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","value":"10000","validAfter":"0","validBefore":"1740672154","nonce":"0x0000000000000000000000000000000000000000000000000000000000000001"}}}"#;

    /// Made by the x402 SDK 2.25's own client (tests/test_x402_differential.py, random keys).
    const SDK_UPTO: &str = r#"{"x402Version":2,"payload":{"permit2Authorization":{"from":"0xd0a6588C678D94cE87619Ab6068E46A4baD36c10","permitted":{"token":"0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB","amount":"10000"},"spender":"0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002","nonce":"113558948886603918562182540582195554261027426602082542555629762683994600754411","deadline":"1795406306","witness":{"to":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","facilitator":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","validAfter":"0"}},"signature":"0x47c6d395abb2308984a27ddaa4e3b6102014c7e0e5d3811ddf244e712155bb845bc9d00ffadd49db6a2882e8f7ee5c9ad79f89a6087a5d2484009e937273013b1b"},"accepted":{"scheme":"upto","network":"eip155:8453","asset":"0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB","amount":"10000","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":300,"extra":{"name":"OpenGradient","version":"1","assetTransferMethod":"permit2","facilitatorAddress":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}},"resource":{"url":"https://api.example/x"}}"#;
    const SDK_EIP3009: &str = r#"{"x402Version":2,"payload":{"authorization":{"from":"0xd0a6588C678D94cE87619Ab6068E46A4baD36c10","to":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","value":"10000","validAfter":"0","validBefore":"1795406306","nonce":"0x7856778c7c6d6ac525ac9aefdf96ea6e18336f68265087a59cac2022353deb5f"},"signature":"0x3d933532984d9bd468099564a6c17eec305cb6a0d6f2f2206f109cbc84bb91c032a3e840294149981f3d663f434ce01466c92a2c4f2942bb4a5e06c06402681f1b"},"accepted":{"scheme":"exact","network":"eip155:84532","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","amount":"10000","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":300,"extra":{"name":"USDC","version":"2"}},"resource":{"url":"https://api.example/x"}}"#;

    fn slow(text: &str) -> Option<PaymentPayload> {
        json::parse(text.as_bytes()).ok().and_then(|v| parse_payload(&v).ok())
    }

    #[test]
    fn reads_what_the_strict_path_reads() {
        let variants = [PERMIT2, EIP3009_V1, SDK_UPTO, SDK_EIP3009, &PERMIT2.replace("exact", "ex\\u0061ct"), &EIP3009_V1.replace("\"signature\":null,", "")];
        for text in variants {
            let fast = read(text).expect("well-formed");
            assert_eq!(Some(fast), slow(text), "{text}");
        }
    }

    #[test]
    fn many_keys_go_to_a_hash_set() {
        // Past a few keys the repeated-key check hashes: a scan over thousands of short keys
        // (16 KiB holds ~2,000) would make one header cost milliseconds.
        let mut keys = Keys::default();
        for i in 0..Keys::FEW {
            keys.insert_new::<serde_json::Error>(Cow::Owned(format!("k{i}"))).unwrap();
        }
        assert!(keys.many.is_empty());
        keys.insert_new::<serde_json::Error>(Cow::Borrowed("k16")).unwrap();
        assert_eq!(keys.many.len(), Keys::FEW + 1);
        for k in ["k0", "k15", "k16"] {
            assert!(keys.insert_new::<serde_json::Error>(Cow::Borrowed(k)).is_err(), "{k}");
        }
        // Through the reader: many distinct keys in ignored members, then one repeated.
        let members: Vec<String> = (0..2_000).map(|i| format!("\"k{i}\":0")).collect();
        let big = PERMIT2.replace(r#""url":"https://x""#, &members.join(","));
        assert!(read(&big).is_some());
        assert_eq!(read(&big), slow(&big));
        for text in [
            PERMIT2.replace(r#""url":"https://x""#, &format!("{},\"k1999\":1", members.join(","))),
            PERMIT2.replace(r#""amount":"1","#, &format!("{},\"k7\":1,", members.join(","))),
        ] {
            assert_eq!(read(&text), None);
            assert_eq!(slow(&text), None);
        }
    }

    #[test]
    fn refuses_what_the_strict_path_refuses() {
        let bad = [
            PERMIT2.replace(r#""a":[1,null,true]"#, r#""a":[1.5]"#),
            PERMIT2.replace(r#""extra":"#, r#""amount":"2","extra":"#),
            PERMIT2.replace(r#""url":"https://x""#, r#""url":1,"url":2"#),
            PERMIT2.replace(r#""x402Version":2,"#, r#""x402Version":2,"scheme":"exact","#),
            PERMIT2.replace(r#""x402Version":2"#, r#""x402Version":1"#),
            PERMIT2.replace(r#""x402Version":2"#, r#""x402Version":2.0"#),
            PERMIT2.replace(r#""deadline":"1740672154""#, r#""deadline":"01740672154""#),
            PERMIT2.replace("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
            PERMIT2.replace(r#""signature":"0xab""#, r#""signature":1"#),
            PERMIT2.replace(r#""signature":"0xab","#, r#""signature":"0xab","authorization":{},"#),
            PERMIT2.replace(r#""nonce":"#, r#""extra":1,"nonce":"#),
            SDK_UPTO.replace(r#""maxTimeoutSeconds":300"#, r#""maxTimeoutSeconds":300.0"#),
            SDK_UPTO.replace(r#""maxTimeoutSeconds":300"#, r#""maxTimeoutSeconds":1e2"#),
            SDK_UPTO.replace(r#""version":"1","#, r#""version":"1","name":"x","#),
            SDK_UPTO.replace(r#""url":"https://api.example/x""#, r#""url":{"a":1,"a":1}"#),
            SDK_UPTO.replace(r#","resource":{"url":"https://api.example/x"}"#, r#","resource":{},"resource":{}"#),
            SDK_EIP3009.replace(r#""accepted":{"#, r#""accepted":{"scheme":"exact","#),
            EIP3009_V1.replace(r#""x402Version":1,"#, r#""x402Version":1,"resource":null,"#),
            EIP3009_V1.replace("0x0000000000000000000000000000000000000000000000000000000000000001", "0x01"),
            format!("{PERMIT2} x"),
        ];
        for text in &bad {
            assert_eq!(read(text), None, "{text}");
            assert_eq!(slow(text), None, "the strict path should refuse this too: {text}");
        }
    }
}
