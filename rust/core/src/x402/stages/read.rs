//! Stage 1, read: the header or JSON text (or an already-built tree) into a `PaymentPayload`,
//! its size bounded first.

use super::super::config::VerifyConfig;
use super::super::payload::{parse_payload, PaymentPayload};
use crate::error::Result;
use crate::json::Value;

/// A payment payload as handed in: header text / JSON bytes, or an already-built value.
pub enum PayloadInput<'a> {
    /// The header's base64, or JSON text.
    Text(&'a [u8]),
    /// A tree already read (from a Python dict, under the same byte budget).
    Value(&'a Value),
}

/// Decodes and reads a payload, bounding its size first.
pub fn read_payload(input: &PayloadInput<'_>, cfg: &VerifyConfig) -> Result<PaymentPayload> {
    match input {
        PayloadInput::Text(bytes) => {
            let text = super::super::header::json_text(bytes, cfg.max_payload_bytes)?;
            // Well-formed payloads are read straight from the text; anything else takes the
            // strict model, whose errors say precisely what is wrong.
            if let Some(p) = std::str::from_utf8(&text).ok().and_then(super::super::payload_text::read) {
                return Ok(p);
            }
            parse_payload(&crate::json::parse(&text)?)
        }
        PayloadInput::Value(v) => parse_payload(v),
    }
}
