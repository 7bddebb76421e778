//! EIP-712 typed-data hashing for whole documents (`types`, `primaryType`, `domain`, `message`).
//!
//! alloy's `dyn-abi` also hashes typed data, but it coerces what this library must refuse
//! (hex and spaced number strings, bad checksums, unknown members), so the encoder is written
//! here against the spec and checked against eth-account and the published vectors.

mod encode;
pub mod types;

use alloy_primitives::{keccak256, B256};

pub use encode::{encode_atomic, encode_value, hash_struct};
pub use types::{FieldType, TypeSet};

use crate::error::{fail, Code, Error, Result};
use crate::json::{Object, Value};
use crate::primitives::{eip712_signing_digest, trunc, Digest};

/// Largest typed-data document read as text by default.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024;

/// The domain fields in the one order every implementation agrees on.
const DOMAIN_FIELDS: [(&str, &str, FieldType); 5] = [
    ("name", "string", FieldType::String),
    ("version", "string", FieldType::String),
    ("chainId", "uint256", FieldType::Uint(256)),
    ("verifyingContract", "address", FieldType::Address),
    ("salt", "bytes32", FieldType::FixedBytes(32)),
];

/// A checked document, ready to hash.
pub struct TypedData<'a> {
    types: TypeSet,
    primary: usize,
    domain: &'a Object,
    domain_fields: Vec<usize>,
    message: &'a Value,
}

impl<'a> TypedData<'a> {
    /// Reads and checks a document; nothing is hashed yet beyond the typehashes.
    pub fn from_value(doc: &'a Value) -> Result<Self> {
        let obj = doc.as_object().ok_or_else(|| Error::new(Code::InvalidTypedData, format!("typed data is an object, got {}", doc.kind())))?;
        for key in obj.keys() {
            if !matches!(key, "types" | "primaryType" | "domain" | "message") {
                return Err(Error::new(Code::UnknownField, format!("unexpected top-level key {:?}", trunc(key))).at_key(key));
            }
        }
        let member = |k: &str| obj.get(k).ok_or_else(|| Error::new(Code::MissingField, format!("typed data has no {k}")).at_key(k));
        let types_obj = member("types")?.as_object().ok_or_else(|| Error::new(Code::InvalidTypedData, "types must be an object").at_key("types"))?;
        let types = TypeSet::from_json(types_obj).map_err(|e| e.at_key("types"))?;
        let primary_name =
            member("primaryType")?.as_str().ok_or_else(|| Error::new(Code::InvalidTypedData, "primaryType must be a string").at_key("primaryType"))?;
        if primary_name == "EIP712Domain" {
            return Err(Error::new(Code::InvalidTypedData, "primaryType EIP712Domain names no message").at_key("primaryType"));
        }
        let primary = types
            .index_of(primary_name)
            .ok_or_else(|| Error::new(Code::UndeclaredType, format!("primaryType {:?} is not declared", trunc(primary_name))).at_key("primaryType"))?;
        types.check_encodable(primary).map_err(|e| e.at_key("types"))?;
        let domain = member("domain")?.as_object().ok_or_else(|| Error::new(Code::InvalidTypedData, "domain must be an object").at_key("domain"))?;
        let domain_fields = domain_layout(&types, domain)?;
        let message = member("message")?;
        Ok(TypedData { types, primary, domain, domain_fields, message })
    }

    /// `hashStruct(EIP712Domain, domain)`.
    pub fn domain_separator(&self) -> Result<B256> {
        let mut type_str = String::from("EIP712Domain(");
        let mut buf = Vec::with_capacity(32 * (1 + self.domain_fields.len()));
        buf.extend_from_slice(&[0u8; 32]);
        for (k, &i) in self.domain_fields.iter().enumerate() {
            let (name, ty_name, ty) = &DOMAIN_FIELDS[i];
            if k > 0 {
                type_str.push(',');
            }
            type_str.push_str(ty_name);
            type_str.push(' ');
            type_str.push_str(name);
            let v = self.domain.get(name).expect("domain_layout checked presence");
            let word = encode_atomic(ty, v).map_err(|e| e.at_key(name).at_key("domain"))?;
            buf.extend_from_slice(word.as_slice());
        }
        type_str.push(')');
        buf[..32].copy_from_slice(types::type_hash_of(&type_str).as_slice());
        Ok(keccak256(&buf))
    }

    /// `hashStruct(primaryType, message)`.
    pub fn struct_hash(&self) -> Result<B256> {
        hash_struct(&self.types, self.primary, self.message).map_err(|e| e.at_key("message"))
    }

    /// The signing digest `keccak256(0x1901 || domainSeparator || hashStruct(message))`.
    pub fn signing_digest(&self) -> Result<Digest> {
        Ok(eip712_signing_digest(&self.domain_separator()?, &self.struct_hash()?))
    }

    /// `encodeType` of the primary type.
    pub fn encode_primary_type(&self) -> String {
        self.types.encode_type(self.primary)
    }
}

/// Which of the five standard domain fields the document uses, in canonical order.
///
/// A declared `EIP712Domain` must list a subset of them in canonical order with their standard
/// types: libraries disagree on any other order (security.md §2.2), so such a document has no
/// single digest and is refused. The domain object must hold exactly the declared fields.
fn domain_layout(types: &TypeSet, domain: &Object) -> Result<Vec<usize>> {
    let at_domain = |e: Error| e.at_key("domain");
    for key in domain.keys() {
        if !DOMAIN_FIELDS.iter().any(|(n, ..)| *n == key) {
            return Err(at_domain(Error::new(Code::UnknownField, format!("{:?} is not an EIP-712 domain field", trunc(key))).at_key(key)));
        }
    }
    let Some(decl) = types.index_of("EIP712Domain") else {
        return Ok((0..DOMAIN_FIELDS.len()).filter(|&i| domain.get(DOMAIN_FIELDS[i].0).is_some()).collect());
    };
    let mut layout = Vec::new();
    let mut next = 0;
    for (k, f) in types.get(decl).fields.iter().enumerate() {
        let pos = DOMAIN_FIELDS[next..].iter().position(|(n, ..)| *n == f.name).map(|p| p + next);
        let Some(pos) = pos.filter(|&p| DOMAIN_FIELDS[p].1 == f.type_str) else {
            return Err(Error::new(
                Code::InvalidTypeDefinition,
                "EIP712Domain must list name, version, chainId, verifyingContract, salt (a subset, in this order, with their standard types)",
            )
            .at_index(k)
            .at_key("EIP712Domain")
            .at_key("types"));
        };
        if domain.get(&f.name).is_none() {
            return Err(at_domain(Error::new(Code::MissingField, format!("domain has no {}", f.name)).at_key(&f.name)));
        }
        layout.push(pos);
        next = pos + 1;
    }
    if layout.len() != domain.len() {
        let extra = domain.keys().find(|k| !types.get(decl).fields.iter().any(|f| f.name == *k)).unwrap_or_default();
        return Err(at_domain(Error::new(Code::UnknownField, format!("domain field {extra:?} is not declared in EIP712Domain")).at_key(extra)));
    }
    Ok(layout)
}

/// The signing digest of a parsed document.
pub fn hash_typed_data(doc: &Value) -> Result<Digest> {
    TypedData::from_value(doc)?.signing_digest()
}

/// The signing digest of a JSON document, refusing anything over `max_bytes` before parsing.
pub fn hash_typed_data_json(bytes: &[u8], max_bytes: usize) -> Result<Digest> {
    hash_typed_data(&parse_json(bytes, max_bytes)?)
}

/// Reads a typed-data document from JSON text as `hash_typed_data_json` does: bounded first,
/// then parsed with integer literals exact at any size (the dict form of a document holds
/// them, so its JSON text must too).
pub fn parse_json(bytes: &[u8], max_bytes: usize) -> Result<Value> {
    if bytes.len() > max_bytes {
        return fail(Code::PayloadTooLarge, format!("typed data is {} bytes; the limit is {max_bytes}", bytes.len()));
    }
    crate::json::parse_with(bytes, crate::json::Integers::Exact)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &str = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],
      "Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}],
      "Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}]},
      "primaryType":"Mail",
      "domain":{"name":"Ether Mail","version":"1","chainId":1,"verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
      "message":{"from":{"name":"Cow","wallet":"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},"to":{"name":"Bob","wallet":"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},"contents":"Hello, Bob!"}}"#;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn eip712_mail_vector() {
        let doc = crate::json::parse(MAIL.as_bytes()).unwrap();
        let td = TypedData::from_value(&doc).unwrap();
        assert_eq!(hex(td.domain_separator().unwrap().as_slice()), "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f");
        assert_eq!(hex(td.struct_hash().unwrap().as_slice()), "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e");
        assert_eq!(hex(td.signing_digest().unwrap().as_bytes()), "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2");
        // Without EIP712Domain in types the domain layout is inferred from its keys.
        let inferred = MAIL.replacen(r#""EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"#, "", 1);
        assert_eq!(hash_typed_data_json(inferred.as_bytes(), DEFAULT_MAX_BYTES).unwrap(), td.signing_digest().unwrap());
    }

    #[test]
    fn error_paths() {
        let bad = MAIL.replace("\"Cow\"", "7");
        let e = hash_typed_data_json(bad.as_bytes(), DEFAULT_MAX_BYTES).unwrap_err();
        assert_eq!((e.code, e.path()), (Code::InvalidValueType, "message.from.name".to_owned()));
        let bad = MAIL.replace("\"chainId\":1", "\"chainId\":\"01\"");
        let e = hash_typed_data_json(bad.as_bytes(), DEFAULT_MAX_BYTES).unwrap_err();
        assert_eq!((e.code, e.path()), (Code::NonCanonicalNumber, "domain.chainId".to_owned()));
        let bad = MAIL.replace("\"contents\":\"Hello, Bob!\"", "\"contents\":\"x\",\"cc\":\"y\"");
        let e = hash_typed_data_json(bad.as_bytes(), DEFAULT_MAX_BYTES).unwrap_err();
        assert_eq!((e.code, e.path()), (Code::UnknownField, "message.cc".to_owned()));
        assert_eq!(hash_typed_data_json(MAIL.as_bytes(), 10).unwrap_err().code, Code::PayloadTooLarge);
    }

    #[test]
    fn hex_and_big_literal_integers() {
        let want = hash_typed_data_json(MAIL.as_bytes(), DEFAULT_MAX_BYTES).unwrap();
        for chain in ["\"0x1\"", "\"0x01\"", "\"0x0000000000000000000000000000000000000000000000000000000000000001\""] {
            let doc = MAIL.replace("\"chainId\":1", &format!("\"chainId\":{chain}"));
            assert_eq!(hash_typed_data_json(doc.as_bytes(), DEFAULT_MAX_BYTES).unwrap(), want, "{chain}");
        }
        for (chain, code) in [
            ("\"0x\"", Code::NonCanonicalNumber),
            ("\"0X1\"", Code::NonCanonicalNumber),
            ("\"-0x1\"", Code::NonCanonicalNumber),
            ("\"0x1_0\"", Code::NonCanonicalNumber),
            ("\"0xg\"", Code::NonCanonicalNumber),
            ("\"0x 1\"", Code::NonCanonicalNumber),
        ] {
            let doc = MAIL.replace("\"chainId\":1", &format!("\"chainId\":{chain}"));
            let e = hash_typed_data_json(doc.as_bytes(), DEFAULT_MAX_BYTES).unwrap_err();
            assert_eq!((e.code, e.path()), (code, "domain.chainId".to_owned()), "{chain}");
        }
        let over = format!("1{}", "0".repeat(80));
        let doc = MAIL.replace("\"chainId\":1", &format!("\"chainId\":{over}"));
        let e = hash_typed_data_json(doc.as_bytes(), DEFAULT_MAX_BYTES).unwrap_err();
        assert_eq!((e.code, e.path()), (Code::NumberOutOfRange, "domain.chainId".to_owned()));
        let doc = MAIL.replace("\"chainId\":1", "\"chainId\":18446744073709551617");
        let a = hash_typed_data_json(doc.as_bytes(), DEFAULT_MAX_BYTES).unwrap();
        let b = hash_typed_data_json(doc.replace("18446744073709551617", "\"0x10000000000000001\"").as_bytes(), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(a, b);
    }
}
