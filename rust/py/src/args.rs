//! Checked scalar arguments (`now`, `threads`): an int of the wrong range is a `ValueError`
//! that says the range, anything else (a bool included, which Python would read as 0 or 1) a
//! `TypeError`; never a bare `OverflowError` from the conversion to a Rust integer.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};

/// Latest `now` accepted: the largest signed 64-bit value, what SQLite and Redis can store.
pub const MAX_UNIX_TIME: u64 = i64::MAX as u64;

fn int_in(obj: Borrowed<'_, '_, PyAny>, what: &str, lo: u64, hi: u64) -> PyResult<u64> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        let kind = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        return Err(PyTypeError::new_err(format!("{what} must be an int, not {kind}")));
    }
    match obj.extract::<u64>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(PyValueError::new_err(format!("{what} must be an int in [{lo}, {hi}]"))),
    }
}

/// `now`: unix seconds, in `[0, MAX_UNIX_TIME]`.
#[derive(Clone, Copy, Debug)]
pub struct UnixTime(pub u64);

impl<'a, 'py> FromPyObject<'a, 'py> for UnixTime {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        int_in(obj, "now (unix seconds)", 0, MAX_UNIX_TIME).map(UnixTime)
    }
}

/// `now` as given, or the system clock.
pub fn now_or_clock(now: Option<UnixTime>) -> u64 {
    crate::convert::clock(now.map(|t| t.0))
}

/// `threads`: `1..=MAX_THREADS` (`None`, every core, is the caller's `Option`).
#[derive(Clone, Copy, Debug)]
pub struct Threads(pub usize);

impl<'a, 'py> FromPyObject<'a, 'py> for Threads {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let max = x402_verify_core::batch::MAX_THREADS;
        int_in(obj, "threads (or None for every core)", 1, max as u64).map(|n| Threads(n as usize))
    }
}

/// The optional thread count as the batch runner takes it.
pub fn threads(t: Option<Threads>) -> Option<usize> {
    t.map(|t| t.0)
}

/// A byte limit (`max_bytes`): `1..=2**63 - 1`.
#[derive(Clone, Copy, Debug)]
pub struct ByteLimit(pub usize);

impl<'a, 'py> FromPyObject<'a, 'py> for ByteLimit {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let max = (usize::MAX as u64).min(i64::MAX as u64);
        int_in(obj, "max_bytes", 1, max).map(|n| ByteLimit(n as usize))
    }
}

/// A `str` argument that must be UTF-8 text: a lone surrogate is a `ValueError`, not the
/// `UnicodeEncodeError` of the conversion to a Rust string.
#[derive(Clone, Debug)]
pub struct Text(pub String);

impl<'a, 'py> FromPyObject<'a, 'py> for Text {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let s = obj.cast::<pyo3::types::PyString>().map_err(|_| {
            let kind = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
            PyTypeError::new_err(format!("expected str, not {kind}"))
        })?;
        s.to_str().map(|t| Text(t.to_owned())).map_err(|_| PyValueError::new_err("the text is not valid UTF-8 (lone surrogates)"))
    }
}
