//! Payment headers: base64 of UTF-8 JSON (`X-PAYMENT` in v1, `PAYMENT-SIGNATURE` in v2).

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::{fail, Code, Error, Result};
use crate::json::{self, Value};

/// Decodes a header value (or raw JSON text) into a strict JSON value, bounding the size of
/// the input before any decoding happens.
pub fn decode(input: &[u8], max_bytes: usize) -> Result<Value> {
    json::parse(&json_text(input, max_bytes)?)
}

/// The JSON text of a header value (or the raw JSON text itself, borrowed), its size bounded
/// before any decoding happens.
pub fn json_text(input: &[u8], max_bytes: usize) -> Result<Cow<'_, [u8]>> {
    // base64 inflates by 4/3, so the limit on the decoded JSON bounds the header too.
    if input.len() > max_bytes.saturating_mul(4) / 3 + 4 {
        return fail(Code::PayloadTooLarge, format!("payment header is {} bytes; the limit is {max_bytes} bytes of JSON", input.len()));
    }
    let trimmed = input.trim_ascii();
    let text = if trimmed.first() == Some(&b'{') {
        Cow::Borrowed(trimmed)
    } else {
        let decoded = STANDARD.decode(trimmed).map_err(|e| Error::new(Code::InvalidBase64, format!("payment header is not standard base64: {e}")))?;
        Cow::Owned(decoded)
    };
    if text.len() > max_bytes {
        return fail(Code::PayloadTooLarge, format!("payment JSON is {} bytes; the limit is {max_bytes}", text.len()));
    }
    Ok(text)
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
