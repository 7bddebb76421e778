//! Checked scalar arguments (`now`, `threads`, `max_bytes`, text): an int of the wrong range is
//! a `ValueError` that says the range, anything else (a bool included, which Python would read
//! as 0 or 1) a `TypeError`; never a bare `OverflowError` from the conversion to a Rust integer.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyString};

use crate::errors::{type_error, type_name, value_error};

/// Latest `now` accepted: the largest signed 64-bit value, what SQLite and Redis can store.
pub(crate) const MAX_UNIX_TIME: u64 = i64::MAX as u64;

/// The one int reader: an int (not a bool) in `[lo, hi]`.
fn int_in(obj: Borrowed<'_, '_, PyAny>, what: &str, lo: u64, hi: u64) -> PyResult<u64> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(type_error(format!("{what} must be an int, not {}", type_name(&obj))));
    }
    match obj.extract::<u64>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(value_error(format!("{what} must be an int in [{lo}, {hi}]"))),
    }
}

/// `now`: unix seconds, in `[0, MAX_UNIX_TIME]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UnixTime(pub(crate) u64);

impl<'a, 'py> FromPyObject<'a, 'py> for UnixTime {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        int_in(obj, "now (unix seconds)", 0, MAX_UNIX_TIME).map(UnixTime)
    }
}

/// `now` as given, or the system clock.
pub(crate) fn now_or_clock(now: Option<UnixTime>) -> u64 {
    crate::convert::clock(now.map(|t| t.0))
}

/// `threads`: `1..=MAX_THREADS` (`None`, every core, is the caller's `Option`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Threads(pub(crate) usize);

impl<'a, 'py> FromPyObject<'a, 'py> for Threads {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let max = x402_verify_core::batch::MAX_THREADS;
        int_in(obj, "threads (or None for every core)", 1, max as u64).map(|n| Threads(n as usize))
    }
}

/// The optional thread count as the batch runner takes it.
pub(crate) fn threads(t: Option<Threads>) -> Option<usize> {
    t.map(|t| t.0)
}

/// A byte limit of a payment payload or requirements (`max_bytes`): `1..=2**63 - 1`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ByteLimit(pub(crate) usize);

impl<'a, 'py> FromPyObject<'a, 'py> for ByteLimit {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let max = (usize::MAX as u64).min(i64::MAX as u64);
        int_in(obj, "max_bytes", 1, max).map(|n| ByteLimit(n as usize))
    }
}

/// A byte limit of a typed-data document (`max_bytes`): any int in `[0, 2**64)`; 0 refuses
/// every document, and a bound past the address space is no bound at all.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MaxBytes(pub(crate) usize);

impl<'a, 'py> FromPyObject<'a, 'py> for MaxBytes {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        int_in(obj, "max_bytes", 0, u64::MAX).map(|n| MaxBytes(usize::try_from(n).unwrap_or(usize::MAX)))
    }
}

/// A `str` argument that must be UTF-8 text: a lone surrogate is a `ValueError`, not the
/// `UnicodeEncodeError` of the conversion to a Rust string.
#[derive(Clone, Debug)]
pub(crate) struct Text(pub(crate) String);

impl<'a, 'py> FromPyObject<'a, 'py> for Text {
    type Error = PyErr;
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let s = obj.cast::<PyString>().map_err(|_| type_error(format!("expected str, not {}", type_name(&obj))))?;
        s.to_str().map(|t| Text(t.to_owned())).map_err(|_| value_error("the text is not valid UTF-8 (lone surrogates)"))
    }
}
