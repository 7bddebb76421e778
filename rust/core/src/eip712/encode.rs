//! `encodeData` / `hashStruct`: turning values into 32-byte words under their EIP-712 types.

use std::collections::HashMap;

use alloy_primitives::{keccak256, Keccak256, B256, U256};

use super::types::{FieldType, TypeSet};
use crate::error::{fail, Code, Error, Result};
use crate::json::{Int, Value};
use crate::primitives::{parse_address, parse_decimal_magnitude, parse_hex_magnitude, parse_hex_prefixed, trunc};

/// Objects up to this many keys are searched in place; bigger ones are indexed once, so a
/// struct's fields are found in O(fields + keys), never O(fields x keys).
const SCAN_KEYS: usize = 16;

/// `keccak256(typeHash || encodeData(value))` for the struct `idx`.
pub fn hash_struct(types: &TypeSet, idx: usize, value: &Value) -> Result<B256> {
    let st = types.get(idx);
    let Value::Object(obj) = value else {
        return fail(Code::InvalidValueType, format!("struct {} needs an object, got {}", st.name, value.kind()));
    };
    let index: Option<HashMap<&str, &Value>> = (obj.len() > SCAN_KEYS).then(|| obj.iter().collect());
    let lookup = |name: &str| match &index {
        Some(map) => map.get(name).copied(),
        None => obj.get(name),
    };
    // Streamed into the hasher: no buffer per struct.
    let mut hasher = Keccak256::new();
    hasher.update(types.type_hash(idx));
    for f in &st.fields {
        let v = lookup(&f.name).ok_or_else(|| Error::new(Code::MissingField, format!("{} has no field {:?}", st.name, f.name)).at_key(&f.name))?;
        let word = encode_value(types, &f.ty, v).map_err(|e| e.at_key(&f.name))?;
        hasher.update(word);
    }
    // Every declared field was found and keys are unique, so a longer object has extras; one
    // is among its first `fields + 1` keys, so finding the first costs O(fields^2) at most.
    if obj.len() != st.fields.len() {
        let extra = obj.keys().find(|k| !st.fields.iter().any(|f| f.name == *k)).unwrap_or_default();
        return Err(Error::new(Code::UnknownField, format!("{} declares no field {:?}", st.name, trunc(extra))).at_key(extra));
    }
    Ok(hasher.finalize())
}

/// The 32-byte word of one member.
pub fn encode_value(types: &TypeSet, ty: &FieldType, v: &Value) -> Result<B256> {
    match ty {
        FieldType::Struct(idx) => hash_struct(types, *idx, v),
        FieldType::Array(elem, len) => {
            let Value::Array(items) = v else {
                return fail(Code::InvalidValueType, format!("expected an array, got {}", v.kind()));
            };
            if let Some(n) = len {
                if items.len() != *n {
                    return fail(Code::InvalidArrayLength, format!("fixed array needs {n} elements, got {}", items.len()));
                }
            }
            let mut hasher = Keccak256::new();
            for (i, item) in items.iter().enumerate() {
                hasher.update(encode_value(types, elem, item).map_err(|e| e.at_index(i))?);
            }
            Ok(hasher.finalize())
        }
        _ => encode_atomic(ty, v),
    }
}

/// The word of an atomic value (every type but structs and arrays).
pub fn encode_atomic(ty: &FieldType, v: &Value) -> Result<B256> {
    let wrong = |want: &str| Error::new(Code::InvalidValueType, format!("{want} expected, got {}", v.kind()));
    match ty {
        FieldType::Address => {
            let Value::Str(s) = v else { return Err(wrong("an address string")) };
            Ok(parse_address(s)?.into_word())
        }
        FieldType::Bool => match v {
            Value::Bool(b) => Ok(B256::from(U256::from(u8::from(*b)))),
            _ => Err(wrong("a JSON boolean")),
        },
        FieldType::String => match v {
            Value::Str(s) => Ok(keccak256(s.as_bytes())),
            _ => Err(wrong("a string")),
        },
        FieldType::Bytes => match v {
            Value::Str(s) => Ok(keccak256(parse_hex_prefixed(s, Code::InvalidBytes)?)),
            Value::Bytes(b) => Ok(keccak256(b)),
            _ => Err(wrong("0x-hex bytes")),
        },
        FieldType::FixedBytes(n) => {
            let owned;
            let bytes: &[u8] = match v {
                Value::Str(s) => {
                    owned = parse_hex_prefixed(s, Code::InvalidBytes)?;
                    &owned
                }
                Value::Bytes(b) => b,
                _ => return Err(wrong("0x-hex bytes")),
            };
            if bytes.len() != usize::from(*n) {
                return fail(Code::InvalidBytesLength, format!("bytes{n} needs exactly {n} bytes, got {}", bytes.len()));
            }
            let mut word = B256::ZERO;
            word[..bytes.len()].copy_from_slice(bytes);
            Ok(word)
        }
        FieldType::Uint(bits) => {
            let (negative, mag) = read_int(v)?;
            let mag = mag.ok_or_else(|| Error::new(Code::NumberOutOfRange, format!("does not fit uint{bits}")))?;
            if negative {
                return fail(Code::NegativeUnsigned, format!("uint{bits} cannot be negative"));
            }
            if *bits < 256 && mag >> usize::from(*bits) != U256::ZERO {
                return fail(Code::NumberOutOfRange, format!("{mag} does not fit uint{bits}"));
            }
            Ok(B256::from(mag))
        }
        FieldType::Int(bits) => {
            let (negative, mag) = read_int(v)?;
            let limit = U256::from(1u8) << usize::from(bits - 1);
            let in_range = mag.is_some_and(|m| if negative { m <= limit } else { m < limit });
            let Some(mag) = mag.filter(|_| in_range) else {
                return fail(Code::NumberOutOfRange, format!("does not fit int{bits}"));
            };
            // Two's complement, sign-extended to 256 bits.
            Ok(B256::from(if negative { mag.wrapping_neg() } else { mag }))
        }
        FieldType::Struct(_) | FieldType::Array(..) => unreachable_atomic(),
    }
}

#[cold]
fn unreachable_atomic() -> Result<B256> {
    // encode_value routes structs and arrays away; kept as an error, never a panic.
    fail(Code::InvalidTypedData, "internal: composite type passed to encode_atomic")
}

/// Reads an integer from a JSON integer, a canonical decimal string (`-` allowed) or a `0x`
/// hex string. Hex is a magnitude, never two's complement: `"0xff"` is 255 whatever the type
/// (so out of range for `int8`, not -1), and it takes no sign; eth-account reads it the same
/// way. Negative values are written in decimal.
fn read_int(v: &Value) -> Result<(bool, Option<U256>)> {
    match v {
        Value::Int(Int { negative, mag }) => Ok((*negative, *mag)),
        Value::Str(s) => {
            if let Some(hex) = s.strip_prefix("0x") {
                return Ok((false, parse_hex_magnitude(hex)?));
            }
            let (negative, digits) = match s.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, s.as_str()),
            };
            let mag = parse_decimal_magnitude(digits)
                .map_err(|e| Error::new(e.code, format!("{:?} is not a canonical integer (decimal, or 0x hex without a sign)", trunc(s))))?;
            if negative && mag == Some(U256::ZERO) {
                return fail(Code::NonCanonicalNumber, "\"-0\" is not canonical");
            }
            Ok((negative, mag))
        }
        _ => fail(Code::InvalidValueType, format!("an integer, a decimal string or a 0x hex string expected, got {}", v.kind())),
    }
}
