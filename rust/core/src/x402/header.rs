//! Payment headers: base64 of UTF-8 JSON (`X-PAYMENT` in v1, `PAYMENT-SIGNATURE` in v2).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::{fail, Code, Error, Result};
use crate::json::{self, Value};

/// Decodes a header value (or raw JSON text) into a strict JSON value, bounding the size of
/// the input before any decoding happens.
pub fn decode(input: &[u8], max_bytes: usize) -> Result<Value> {
    // base64 inflates by 4/3, so the limit on the decoded JSON bounds the header too.
    if input.len() > max_bytes.saturating_mul(4) / 3 + 4 {
        return fail(Code::PayloadTooLarge, format!("payment header is {} bytes; the limit is {max_bytes} bytes of JSON", input.len()));
    }
    let trimmed = input.trim_ascii();
    if trimmed.first() == Some(&b'{') {
        return json_text(trimmed, max_bytes);
    }
    let decoded = STANDARD.decode(trimmed).map_err(|e| Error::new(Code::InvalidBase64, format!("payment header is not standard base64: {e}")))?;
    json_text(&decoded, max_bytes)
}

fn json_text(bytes: &[u8], max_bytes: usize) -> Result<Value> {
    if bytes.len() > max_bytes {
        return fail(Code::PayloadTooLarge, format!("payment JSON is {} bytes; the limit is {max_bytes}", bytes.len()));
    }
    json::parse(bytes)
}

/// Encodes JSON text as a header value.
pub fn encode(json_text: &[u8]) -> String {
    STANDARD.encode(json_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        let v = decode(encode(br#"{"a":1}"#).as_bytes(), 1024).unwrap();
        assert!(v.as_object().is_some());
        assert!(decode(br#" {"a":1} "#, 1024).is_ok());
        assert_eq!(decode(b"eyJhIjox", 1024).unwrap_err().code, Code::InvalidJson);
        assert_eq!(decode(b"eyJhIjoxfQ", 1024).unwrap_err().code, Code::InvalidBase64);
        assert_eq!(decode(b"!!!!", 1024).unwrap_err().code, Code::InvalidBase64);
        assert_eq!(decode(encode(b"not json").as_bytes(), 1024).unwrap_err().code, Code::InvalidJson);
        assert_eq!(decode(&vec![b'A'; 5000], 1024).unwrap_err().code, Code::PayloadTooLarge);
        assert_eq!(decode(encode(&[b' '; 2000]).as_bytes(), 1500).unwrap_err().code, Code::PayloadTooLarge);
    }
}
