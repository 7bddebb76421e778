//! The one place where core errors become Python exceptions.
//!
//! The exception classes are defined in Python (`x402_verify.errors`) so users catch ordinary
//! Python classes; Rust only imports and instantiates them.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use x402_verify_core::{Error, Kind};

pyo3::import_exception!(x402_verify.errors, TypedDataError);
pyo3::import_exception!(x402_verify.errors, SignatureError);
pyo3::import_exception!(x402_verify.errors, PaymentError);

fn args(e: &Error) -> (&'static str, String, Option<String>) {
    let path = e.path();
    (e.code.as_str(), e.message.clone(), (!path.is_empty()).then_some(path))
}

/// The exception to raise for a core error.
pub fn to_pyerr(e: Error) -> PyErr {
    match e.code.kind() {
        Kind::TypedData => TypedDataError::new_err(args(&e)),
        Kind::Signature => SignatureError::new_err(args(&e)),
        Kind::Payment | Kind::Replay => PaymentError::new_err(args(&e)),
    }
}

/// The exception instance that stands in a batch result for a failed item (not raised).
pub fn to_item(py: Python<'_>, e: Error) -> PyResult<Py<PyAny>> {
    let err = to_pyerr(e);
    Ok(err.into_value(py).into_any())
}

/// A misuse that is not about the data (bad `threads`, say).
pub fn value_error(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}
