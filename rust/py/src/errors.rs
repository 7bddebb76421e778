//! The one place where the bindings make Python exceptions: core errors, store refusals and
//! argument misuse.
//!
//! The exception classes are defined in Python (`x402_verify.errors`) so users catch ordinary
//! Python classes; Rust only imports and instantiates them. The class follows the code's kind
//! (`Kind`), so one code is always the same class whichever call raised it.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use x402_verify_core::store::StoreRefusal;
use x402_verify_core::{Code, Error, Kind};

use crate::convert::CHANGED_DURING_READ;

pyo3::import_exception!(x402_verify.errors, TypedDataError);
pyo3::import_exception!(x402_verify.errors, SignatureError);
pyo3::import_exception!(x402_verify.errors, PaymentError);
pyo3::import_exception!(x402_verify.errors, ReservationError);
pyo3::import_exception!(x402_verify.errors, NonceStoreError);

fn args(e: &Error) -> (&'static str, String, Option<String>) {
    let path = e.path();
    (e.code.as_str(), e.message.clone(), (!path.is_empty()).then_some(path))
}

/// The exception to raise for a core error: its class is the code's kind's.
pub(crate) fn to_pyerr(e: Error) -> PyErr {
    match e.code.kind() {
        Kind::TypedData => TypedDataError::new_err(args(&e)),
        Kind::Signature => SignatureError::new_err(args(&e)),
        Kind::Payment => PaymentError::new_err(args(&e)),
        Kind::Replay => ReservationError::new_err(args(&e)),
    }
}

/// The exception for a core error about a single call's argument: one of a Python type the
/// call does not take is a `TypeError`; anything else, an input that changed while it was
/// read included (that is not a wrong type), is the code's class.
pub(crate) fn to_arg_pyerr(e: Error) -> PyErr {
    if e.code == Code::InvalidInputType && e.message != CHANGED_DURING_READ {
        type_error(e.message)
    } else {
        to_pyerr(e)
    }
}

/// The exception instance that stands in a batch result for a failed item (not raised).
pub(crate) fn to_item(py: Python<'_>, e: Error) -> PyResult<Py<PyAny>> {
    let err = to_pyerr(e);
    Ok(err.into_value(py).into_any())
}

/// A store's refusal of a settle / release / charge: always a `ReservationError` (the state
/// of the reservation refused it), whichever kind its code is (an upto cap's is a payment
/// reason). Its text is the core's fixed one, safe to show a client.
pub(crate) fn refusal(r: StoreRefusal) -> PyErr {
    ReservationError::new_err((r.code().as_str(), r.message(), None::<String>))
}

/// A store that cannot answer at all (closed, unreachable): `NonceStoreError`.
pub(crate) fn store_unavailable(msg: impl Into<String>) -> PyErr {
    NonceStoreError::new_err(msg.into())
}

/// A misuse that is not about the data (bad `threads`, say).
pub(crate) fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// An argument of a Python type the call does not take.
pub(crate) fn type_error(msg: impl Into<String>) -> PyErr {
    PyTypeError::new_err(msg.into())
}

/// The name of an object's type, for messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}
