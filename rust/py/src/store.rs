//! `MemoryNonceStore`: the Python face of the core's in-process store.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt};
use x402_verify_core::json::{Int, Value};
use x402_verify_core::store::memory::{MemoryStore, Reserve};
use x402_verify_core::store::{State, StoreRefusal};
use x402_verify_core::{B256, U256};

use crate::convert::u256_to_py;
use crate::errors::value_error;

pyo3::import_exception!(x402_verify.errors, ReservationError);

fn refusal(r: StoreRefusal) -> PyErr {
    ReservationError::new_err((r.code().as_str(), r.message(), None::<String>))
}

fn key_arg(obj: &Bound<'_, PyAny>) -> PyResult<B256> {
    let b = obj.cast::<PyBytes>().map_err(|_| value_error("a replay key is 32 bytes"))?.as_bytes();
    <[u8; 32]>::try_from(b).map(B256::from).map_err(|_| value_error(format!("a replay key is 32 bytes, got {}", b.len())))
}

fn amount_arg(obj: &Bound<'_, PyAny>) -> PyResult<U256> {
    let i = obj.cast::<PyInt>().map_err(|_| value_error("amounts are ints"))?;
    let mut budget = 1;
    match crate::convert::value(i.as_any(), 0, &mut budget) {
        Ok(Value::Int(Int { negative: false, mag: Some(m) })) => Ok(m),
        _ => Err(value_error("amounts are ints in [0, 2**256)")),
    }
}

/// The embedded default store: thread-safe, one process, bounded, not durable.
#[pyclass(frozen, module = "x402_verify._core", name = "MemoryNonceStore")]
pub struct MemoryNonceStore {
    inner: MemoryStore,
    margin: u64,
}

#[pymethods]
impl MemoryNonceStore {
    #[new]
    #[pyo3(signature = (max_entries = 1_000_000, *, margin_seconds = 60))]
    fn new(max_entries: usize, margin_seconds: u64) -> PyResult<Self> {
        if max_entries == 0 {
            return Err(value_error("max_entries must be positive"));
        }
        Ok(MemoryNonceStore { inner: MemoryStore::new(max_entries), margin: margin_seconds })
    }

    /// Most live reservations kept; past it (after dropping expired ones) the store refuses.
    #[getter]
    fn max_entries(&self) -> usize {
        self.inner.max_entries()
    }

    /// Seconds an entry outlives the authorization's validBefore / deadline.
    #[getter]
    fn margin_seconds(&self) -> u64 {
        self.margin
    }

    /// Reserves keys in order. Per item: True (reserved, or already this owner's), False (a
    /// replay), None (the store is full: refuse the payment).
    #[pyo3(signature = (keys, valid_until, owners, caps = None, *, now = None))]
    fn reserve_many(
        &self,
        keys: &Bound<'_, PyAny>,
        valid_until: Vec<u64>,
        owners: Vec<String>,
        caps: Option<Vec<Option<Bound<'_, PyAny>>>>,
        now: Option<u64>,
    ) -> PyResult<Vec<Option<bool>>> {
        let keys: Vec<B256> = keys.try_iter()?.map(|k| key_arg(&k?)).collect::<PyResult<_>>()?;
        if valid_until.len() != keys.len() || owners.len() != keys.len() || caps.as_ref().is_some_and(|c| c.len() != keys.len()) {
            return Err(value_error("keys, valid_until, owners (and caps) must have the same length"));
        }
        let caps: Vec<Option<U256>> = match caps {
            None => vec![None; keys.len()],
            Some(c) => c.iter().map(|c| c.as_ref().map(amount_arg).transpose()).collect::<PyResult<_>>()?,
        };
        let items: Vec<Reserve<'_>> = keys
            .iter()
            .zip(&valid_until)
            .zip(&owners)
            .zip(&caps)
            .map(|(((k, v), o), c)| Reserve { key: *k, owner: o, expires_at: v.saturating_add(self.margin), cap: *c })
            .collect();
        Ok(self.inner.reserve_many(&items, crate::convert::clock(now)).into_iter().map(Result::ok).collect())
    }

    /// Marks the caller's reservation settled; returns the upto total charged (0 for exact).
    #[pyo3(signature = (key, owner, *, now = None))]
    fn settle<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>, owner: &str, now: Option<u64>) -> PyResult<Bound<'py, PyAny>> {
        let total = self.inner.settle(&key_arg(key)?, owner, crate::convert::clock(now)).map_err(refusal)?;
        u256_to_py(py, &total)
    }

    /// Drops the caller's reservation: nothing was served and nothing broadcast.
    #[pyo3(signature = (key, owner, *, now = None))]
    fn release(&self, key: &Bound<'_, PyAny>, owner: &str, now: Option<u64>) -> PyResult<()> {
        self.inner.release(&key_arg(key)?, owner, crate::convert::clock(now)).map_err(refusal)
    }

    /// Debits an upto session by `amount`; returns the new total; never passes the cap.
    #[pyo3(signature = (key, owner, amount, *, now = None))]
    fn charge<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>, owner: &str, amount: &Bound<'py, PyAny>, now: Option<u64>) -> PyResult<Bound<'py, PyAny>> {
        let total = self.inner.charge(&key_arg(key)?, owner, amount_arg(amount)?, crate::convert::clock(now)).map_err(refusal)?;
        u256_to_py(py, &total)
    }

    /// `("reserved" | "settled", owner, charged_total, expires_at)` for a live key, else None.
    #[pyo3(signature = (key, *, now = None))]
    fn state<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>, now: Option<u64>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(e) = self.inner.get(&key_arg(key)?, crate::convert::clock(now)) else { return Ok(None) };
        let (name, owner, total) = match &e.state {
            State::Reserved { owner, charged, .. } => ("reserved", owner.clone(), *charged),
            State::Settled { owner, total } => ("settled", owner.clone(), *total),
        };
        let t = (name, owner, u256_to_py(py, &total)?, e.expires_at).into_pyobject(py)?;
        Ok(Some(t.into_any()))
    }

    /// Drops expired entries; returns how many remain.
    #[pyo3(signature = (*, now = None))]
    fn sweep(&self, now: Option<u64>) -> usize {
        self.inner.sweep(crate::convert::clock(now))
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
