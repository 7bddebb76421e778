//! `VerifyResponse` and `PaymentAuthorization`: thin views over a core `Verdict`; Python
//! values are built only when an attribute is read, so a batch costs one object per item.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use x402_verify_core::primitives::checksum;
use x402_verify_core::x402::stages::reserve::replay_code;
use x402_verify_core::x402::{Authorization, NonceSpace, Verdict};
use x402_verify_core::Code;

use crate::args::Text;
use crate::convert::u256_to_py;
use crate::errors::value_error;

/// The verdict on one payment.
#[pyclass(frozen, module = "x402_verify._core", name = "VerifyResponse")]
#[derive(Clone)]
pub struct VerifyResponse(pub Verdict, pub Option<String>);

/// x402's JSON shape of a verdict: what `to_dict` and `to_json` both write.
#[derive(serde::Serialize)]
struct Wire<'a> {
    #[serde(rename = "isValid")]
    is_valid: bool,
    #[serde(rename = "invalidReason", skip_serializing_if = "Option::is_none")]
    invalid_reason: Option<&'static str>,
    #[serde(rename = "invalidMessage", skip_serializing_if = "Option::is_none")]
    invalid_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payer: Option<String>,
}

impl VerifyResponse {
    fn wire(&self) -> Wire<'_> {
        Wire { is_valid: self.is_valid(), invalid_reason: self.invalid_reason(), invalid_message: self.invalid_message(), payer: self.payer() }
    }
}

#[pymethods]
impl VerifyResponse {
    #[getter]
    fn is_valid(&self) -> bool {
        self.0.is_valid()
    }

    /// A stable code from `error_codes()`, or None when valid.
    #[getter]
    fn invalid_reason(&self) -> Option<&'static str> {
        self.0.reason.map(Code::as_str)
    }

    /// Why, for humans; None when valid.
    #[getter]
    fn invalid_message(&self) -> Option<&str> {
        self.0.reason.map(|_| self.0.message.as_str())
    }

    /// The claimed payer, or the recovered signer when valid (EIP-55).
    #[getter]
    fn payer(&self) -> Option<String> {
        self.0.payer.as_ref().map(checksum)
    }

    /// `exact_eip3009`, `exact_permit2` or `upto_permit2`, once known.
    #[getter]
    fn scheme(&self) -> Option<&'static str> {
        self.0.scheme.map(|s| s.as_str())
    }

    #[getter]
    fn x402_version(&self) -> Option<u8> {
        self.0.x402_version
    }

    #[getter]
    fn chain_id(&self) -> Option<u64> {
        self.0.chain_id
    }

    #[getter]
    fn authorization(&self) -> Option<PaymentAuthorization> {
        self.0.authorization.clone().map(PaymentAuthorization)
    }

    /// The canonical 32-byte replay key (chain, contract, signer, nonce), once known.
    #[getter]
    fn replay_key<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.0.replay.map(|r| PyBytes::new(py, r.key.as_slice()))
    }

    /// `eip3009` or `permit2`: whose nonce space the replay key lives in.
    #[getter]
    fn nonce_space(&self) -> Option<&'static str> {
        self.0.replay.map(|r| match r.space {
            NonceSpace::Eip3009 => "eip3009",
            NonceSpace::Permit2 => "permit2",
        })
    }

    /// validBefore / deadline: after it the authorization is dead on-chain.
    #[getter]
    fn valid_until(&self) -> Option<u64> {
        self.0.replay.map(|r| r.valid_until)
    }

    /// The requirements' asset (the token), once every offline check but the signature passed.
    #[getter]
    fn asset(&self) -> Option<String> {
        self.0.signed.as_ref().map(|s| checksum(&s.asset))
    }

    /// The EIP-712 digest the payer signed, once every offline check but the signature passed.
    #[getter]
    fn digest<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.0.signed.as_ref().map(|s| PyBytes::new(py, s.digest.0.as_slice()))
    }

    /// The signature bytes as sent, once every offline check but the signature passed.
    #[getter]
    fn signature<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.0.signed.as_ref().map(|s| PyBytes::new(py, &s.signature))
    }

    /// x402's JSON shape: `isValid`, `invalidReason`, `invalidMessage`, `payer`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let w = self.wire();
        let d = PyDict::new(py);
        d.set_item("isValid", w.is_valid)?;
        if let (Some(reason), Some(message)) = (w.invalid_reason, w.invalid_message) {
            d.set_item("invalidReason", reason)?;
            d.set_item("invalidMessage", message)?;
        }
        if let Some(p) = w.payer {
            d.set_item("payer", p)?;
        }
        Ok(d)
    }

    /// `to_dict()` as compact UTF-8 JSON text: the body of a facilitator's `/verify` answer.
    fn to_json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let text = serde_json::to_vec(&self.wire()).map_err(|e| value_error(format!("the verdict could not be written as JSON: {e}")))?;
        Ok(PyBytes::new(py, &text))
    }

    /// A copy marked invalid with `reason` (used by replay protection after the core verdict).
    fn with_invalid(&self, reason: Text, message: Text) -> PyResult<Self> {
        let (reason, message) = (reason.0, message.0);
        let code = Code::from_slug(&reason).ok_or_else(|| value_error(format!("unknown reason code {reason:?}")))?;
        let mut v = self.0.clone();
        v.reason = Some(code);
        v.message = message;
        Ok(VerifyResponse(v, None))
    }

    /// A copy marked valid, for a chain check that decided what the offline checks left to the
    /// chain (`needs_chain_check`, or a contract payer's signature). Only a response that
    /// passed every offline check but the signature (`digest` is set) can be.
    fn with_valid(&self) -> PyResult<Self> {
        if self.0.signed.is_none() {
            return Err(value_error("only a response whose offline checks passed up to the signature can be marked valid"));
        }
        let mut v = self.0.clone();
        v.reason = None;
        v.message = String::new();
        Ok(VerifyResponse(v, None))
    }

    /// Whether the payment was refused because its nonce is already reserved or settled.
    #[getter]
    fn is_replay(&self) -> bool {
        self.0.reason.is_some_and(|c| self.0.replay.is_some_and(|r| c == replay_code(r.space)))
    }

    /// The owner token of this payment's nonce reservation (None: not reserved).
    #[getter]
    fn reservation(&self) -> Option<&str> {
        self.1.as_deref()
    }

    /// A copy that carries the owner token of its nonce reservation.
    fn with_reservation(&self, owner: Text) -> Self {
        VerifyResponse(self.0.clone(), Some(owner.0))
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.0 == other.0 && self.1 == other.1
    }

    fn __repr__(&self) -> String {
        match self.0.reason {
            None => format!("VerifyResponse(is_valid=True, payer={:?})", self.payer().unwrap_or_default()),
            Some(c) => format!("VerifyResponse(is_valid=False, invalid_reason={:?}, invalid_message={:?})", c.as_str(), self.0.message),
        }
    }
}

/// The signed terms, for the caller's accounting.
#[pyclass(frozen, module = "x402_verify._core", name = "PaymentAuthorization")]
#[derive(Clone)]
pub struct PaymentAuthorization(pub Authorization);

#[pymethods]
impl PaymentAuthorization {
    /// `eip3009` or `permit2`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.0 {
            Authorization::Eip3009(_) => "eip3009",
            Authorization::Permit2(_) => "permit2",
        }
    }

    #[getter]
    fn payer(&self) -> String {
        checksum(&self.0.payer())
    }

    /// The recipient (`to`, or `witness.to`).
    #[getter]
    fn pay_to(&self) -> String {
        match &self.0 {
            Authorization::Eip3009(a) => checksum(&a.to),
            Authorization::Permit2(a) => checksum(&a.to),
        }
    }

    /// The signed amount: `value`, or Permit2's `permitted.amount` (upto: the maximum).
    #[getter]
    fn amount<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.0 {
            Authorization::Eip3009(a) => u256_to_py(py, &a.value),
            Authorization::Permit2(a) => u256_to_py(py, &a.amount),
        }
    }

    /// The nonce as an int (EIP-3009's bytes32 read big-endian).
    #[getter]
    fn nonce<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.0 {
            Authorization::Eip3009(a) => u256_to_py(py, &x402_verify_core::U256::from_be_bytes(a.nonce.0)),
            Authorization::Permit2(a) => u256_to_py(py, &a.nonce),
        }
    }

    #[getter]
    fn valid_after<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.0 {
            Authorization::Eip3009(a) => u256_to_py(py, &a.valid_after),
            Authorization::Permit2(a) => u256_to_py(py, &a.valid_after),
        }
    }

    /// `validBefore` (EIP-3009) or `deadline` (Permit2).
    #[getter]
    fn valid_before<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.0 {
            Authorization::Eip3009(a) => u256_to_py(py, &a.valid_before),
            Authorization::Permit2(a) => u256_to_py(py, &a.deadline),
        }
    }

    /// Permit2's `permitted.token`; None for EIP-3009 (the token is the verifying contract).
    #[getter]
    fn token(&self) -> Option<String> {
        match &self.0 {
            Authorization::Eip3009(_) => None,
            Authorization::Permit2(a) => Some(checksum(&a.token)),
        }
    }

    #[getter]
    fn spender(&self) -> Option<String> {
        match &self.0 {
            Authorization::Eip3009(_) => None,
            Authorization::Permit2(a) => Some(checksum(&a.spender)),
        }
    }

    /// The upto witness's facilitator.
    #[getter]
    fn facilitator(&self) -> Option<String> {
        match &self.0 {
            Authorization::Eip3009(_) => None,
            Authorization::Permit2(a) => a.facilitator.as_ref().map(checksum),
        }
    }

    fn __repr__(&self) -> String {
        format!("PaymentAuthorization(kind={:?}, payer={:?}, pay_to={:?})", self.kind(), self.payer(), self.pay_to())
    }
}
