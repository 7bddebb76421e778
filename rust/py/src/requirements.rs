//! Payment requirements from Python: a dict, JSON text, or a compiled `Requirements` object,
//! and the per-batch cache that reads each distinct one once.
//!
//! The cache is keyed by content, never by object identity: a dict can change between two
//! items of one batch (a generator that edits a route's price as it yields), so an address
//! says nothing about what the object holds. A compiled `Requirements` is immutable and is
//! shared as is.

use std::sync::Arc;

use pyo3::prelude::*;
use x402_verify_core::primitives::checksum;
use x402_verify_core::x402::{parse_requirements, requirements_error, PaymentRequirements};
use x402_verify_core::{Code, Error, Result as CoreResult};

use crate::args::ByteLimit;
use crate::convert::{self, Input, REQUIREMENTS};
use crate::errors::{to_pyerr, type_error};

/// Read requirements, shared by the batch items that use them.
pub(crate) type Shared = Arc<CoreResult<PaymentRequirements>>;

/// Most distinct requirements a batch remembers; past it, further ones are read per item.
const CACHE_ENTRIES: usize = 64;

/// Compiled payment requirements: read and checked once, immutable, reusable by any number of
/// `verify` / `verify_batch` calls (and threads).
#[pyclass(frozen, module = "x402_verify._core", name = "Requirements")]
pub(crate) struct Requirements {
    /// Always `Ok`: kept in the form batch items share, so using it costs a reference count.
    parsed: Shared,
}

impl Requirements {
    fn get(&self) -> &PaymentRequirements {
        match self.parsed.as_ref() {
            Ok(r) => r,
            Err(_) => unreachable!("Requirements holds only requirements that were read"),
        }
    }
}

#[pymethods]
impl Requirements {
    /// Reads x402 PaymentRequirements (v2 when they carry `amount`, v1 `maxAmountRequired`).
    #[new]
    #[pyo3(signature = (requirements, *, max_bytes = ByteLimit(x402_verify_core::x402::DEFAULT_MAX_PAYLOAD_BYTES)))]
    fn new(requirements: &Bound<'_, PyAny>, max_bytes: ByteLimit) -> PyResult<Self> {
        let max_bytes = max_bytes.0;
        if let Ok(r) = requirements.cast::<Requirements>() {
            return Ok(Requirements { parsed: r.get().parsed.clone() });
        }
        if !REQUIREMENTS.takes(requirements) {
            return Err(type_error("payment requirements are a dict or JSON str / bytes"));
        }
        let parsed = read(requirements, max_bytes).map_err(to_pyerr)?;
        Ok(Requirements { parsed: Arc::new(Ok(parsed)) })
    }

    /// 1 (`maxAmountRequired`) or 2 (`amount`): the schema they were read by.
    #[getter]
    fn x402_version(&self) -> u8 {
        self.get().x402_version
    }

    /// `exact` or `upto`.
    #[getter]
    fn scheme(&self) -> &str {
        &self.get().scheme
    }

    #[getter]
    fn network(&self) -> &str {
        &self.get().network
    }

    /// `amount` (v2) or `maxAmountRequired` (v1).
    #[getter]
    fn amount<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::u256_to_py(py, &self.get().amount)
    }

    #[getter]
    fn asset(&self) -> String {
        checksum(&self.get().asset)
    }

    #[getter]
    fn pay_to(&self) -> String {
        checksum(&self.get().pay_to)
    }

    #[getter]
    fn max_timeout_seconds(&self) -> u64 {
        self.get().max_timeout_seconds
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<Requirements>().is_ok_and(|o| o.get().get() == self.get())
    }

    fn __repr__(&self) -> String {
        let r = self.get();
        format!(
            "Requirements(x402_version={}, scheme={:?}, network={:?}, amount={}, asset='{}', pay_to='{}', max_timeout_seconds={})",
            r.x402_version,
            r.scheme,
            r.network,
            r.amount,
            checksum(&r.asset),
            checksum(&r.pay_to),
            r.max_timeout_seconds
        )
    }
}

/// The requirements an argument holds, read by the one input reader under `max_bytes` (its
/// text, or the JSON its dict stands for): also the cache's key.
fn content(obj: &Bound<'_, PyAny>, max_bytes: usize) -> CoreResult<Input> {
    REQUIREMENTS.read(obj, max_bytes)
}

fn parse(c: &Input, max_bytes: usize) -> CoreResult<PaymentRequirements> {
    match c {
        Input::Tree(v) => parse_requirements(v),
        Input::Text(b) => {
            if b.len() > max_bytes {
                return Err(Error::new(Code::PayloadTooLarge, format!("requirements are {} bytes; the limit is {max_bytes}", b.len())));
            }
            parse_requirements(&x402_verify_core::json::parse(b)?)
        }
    }
}

fn read(obj: &Bound<'_, PyAny>, max_bytes: usize) -> CoreResult<PaymentRequirements> {
    content(obj, max_bytes).and_then(|c| parse(&c, max_bytes)).map_err(requirements_error)
}

/// The requirements of one batch: each distinct content read once.
pub(crate) struct Cache {
    max_bytes: usize,
    entries: Vec<(Input, Shared)>,
    last: usize,
}

impl Cache {
    /// An empty cache for requirements of at most `max_bytes`.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Cache { max_bytes, entries: Vec::new(), last: 0 }
    }

    /// The requirements `obj` holds, read once per distinct content.
    pub(crate) fn get(&mut self, obj: &Bound<'_, PyAny>) -> Shared {
        if let Ok(r) = obj.cast::<Requirements>() {
            return r.get().parsed.clone();
        }
        let c = match content(obj, self.max_bytes) {
            Ok(c) => c,
            Err(e) => return Arc::new(Err(requirements_error(e))),
        };
        // Consecutive items of one route usually hold the same content: look there first.
        if let Some((k, shared)) = self.entries.get(self.last) {
            if *k == c {
                return shared.clone();
            }
        }
        if let Some(i) = self.entries.iter().position(|(k, _)| *k == c) {
            self.last = i;
            return self.entries[i].1.clone();
        }
        let shared: Shared = Arc::new(parse(&c, self.max_bytes).map_err(requirements_error));
        if self.entries.len() < CACHE_ENTRIES {
            self.entries.push((c, shared.clone()));
            self.last = self.entries.len() - 1;
        }
        shared
    }
}
