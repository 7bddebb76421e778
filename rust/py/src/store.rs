//! `MemoryNonceStore`, the Python face of the core's in-process store, and the argument rules
//! every store shares: the SQLite and Redis stores (Python) call the same checks, so one bad
//! value gets one answer whichever store it reaches.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyString};
use x402_verify_core::json::{Int, Value};
use x402_verify_core::store::memory::{MemoryStore, Reserve};
use x402_verify_core::store::{self as core_store, State, StoreRefusal};
use x402_verify_core::{B256, U256};

use crate::convert::u256_to_py;
use crate::errors::{refusal, store_unavailable, type_error as raw_type_error, type_name, value_error};

/// The message of every call on a closed store.
pub(crate) const CLOSED: &str = "the nonce store is closed";

fn closed() -> PyErr {
    store_unavailable(CLOSED)
}

fn type_error(what: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    raw_type_error(format!("{what} must be {}, not {}", if what == "key" { "bytes" } else { "an int" }, type_name(obj)))
}

// --- argument rules -------------------------------------------------------------------------

/// An int (never a bool, which Python counts as one) read as a `Value::Int`, any size.
fn int_value(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Int> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(type_error(what, obj));
    }
    if let Ok(v) = obj.extract::<u64>() {
        return Ok(Int::from_u64(v));
    }
    let mut budget = 1;
    match crate::convert::value(obj, 0, &mut budget) {
        Ok(Value::Int(i)) => Ok(i),
        _ => Err(value_error(format!("{what} could not be read as an int"))),
    }
}

/// A non-negative int no larger than `max`.
fn bounded(obj: &Bound<'_, PyAny>, what: &str, min: u64, max: u64) -> PyResult<u64> {
    let i = int_value(obj, what)?;
    match (i.negative, i.mag.map(u64::try_from)) {
        (false, Some(Ok(v))) if (min..=max).contains(&v) => Ok(v),
        _ => Err(value_error(format!("{what} must be an int in [{min}, {max}]"))),
    }
}

fn now_arg(now: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    match now {
        None => Ok(crate::convert::clock(None)),
        Some(n) if n.is_none() => Ok(crate::convert::clock(None)),
        Some(n) => bounded(n, "now", 0, core_store::MAX_NOW),
    }
}

fn margin_arg(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    bounded(obj, "margin_seconds", 0, core_store::MAX_MARGIN_SECONDS)
}

/// validBefore / deadline: any non-negative int; past 64 bits it is as good as for ever.
fn valid_until_arg(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(v) = obj.extract::<u64>() {
        if !obj.is_instance_of::<PyBool>() {
            return Ok(v);
        }
    }
    let i = int_value(obj, "valid_until")?;
    if i.negative {
        return Err(value_error("valid_until must be a non-negative int"));
    }
    Ok(i.mag.map_or(u64::MAX, |m| u64::try_from(m).unwrap_or(u64::MAX)))
}

fn key_arg(obj: &Bound<'_, PyAny>) -> PyResult<B256> {
    let b = obj.cast::<PyBytes>().map_err(|_| type_error("key", obj))?.as_bytes();
    <[u8; 32]>::try_from(b).map(B256::from).map_err(|_| value_error(format!("a replay key is 32 bytes, got {}", b.len())))
}

fn owner_arg<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    let s = obj.cast::<PyString>().map_err(|_| raw_type_error(format!("an owner token must be a str, not {}", type_name(obj))))?;
    let text = s.to_str().map_err(|_| value_error("an owner token must be valid Unicode (no lone surrogates)"))?;
    if text.is_empty() || text.len() > core_store::MAX_OWNER_BYTES {
        return Err(value_error(format!("an owner token is 1 to {} UTF-8 bytes", core_store::MAX_OWNER_BYTES)));
    }
    Ok(text)
}

/// An amount (a charge, an upto cap): an int in [0, 2**256), never a bool.
fn amount_arg(obj: &Bound<'_, PyAny>) -> PyResult<U256> {
    match int_value(obj, "an amount")? {
        Int { negative: false, mag: Some(m) } => Ok(m),
        _ => Err(value_error("amounts are ints in [0, 2**256)")),
    }
}

/// `store_batch_args`' answer: `(now, keys, expires_at, owners, caps)`.
type BatchArgs<'py> = (u64, Vec<Bound<'py, PyBytes>>, Vec<u64>, Vec<String>, Vec<Option<Bound<'py, PyAny>>>);

/// One `reserve_many` call, read and checked.
struct Batch {
    keys: Vec<B256>,
    expires: Vec<u64>,
    owners: Vec<String>,
    caps: Vec<Option<U256>>,
}

fn batch_args(
    keys: &Bound<'_, PyAny>,
    valid_until: &Bound<'_, PyAny>,
    owners: &Bound<'_, PyAny>,
    caps: Option<&Bound<'_, PyAny>>,
    margin: u64,
) -> PyResult<Batch> {
    for (name, seq) in [("keys", keys), ("valid_until", valid_until), ("owners", owners)] {
        // A str is iterable, but never a sequence of keys, deadlines or tokens.
        if seq.is_instance_of::<PyString>() || seq.is_instance_of::<PyBytes>() {
            return Err(raw_type_error(format!("{name} must be a sequence, not a single str or bytes")));
        }
    }
    let keys: Vec<B256> = keys.try_iter()?.map(|k| key_arg(&k?)).collect::<PyResult<_>>()?;
    let expires: Vec<u64> = valid_until.try_iter()?.map(|v| Ok(core_store::expires_at(valid_until_arg(&v?)?, margin))).collect::<PyResult<_>>()?;
    let owners: Vec<String> = owners.try_iter()?.map(|o| owner_arg(&o?).map(str::to_owned)).collect::<PyResult<_>>()?;
    let caps: Vec<Option<U256>> = match caps {
        None => vec![None; keys.len()],
        Some(c) if c.is_none() => vec![None; keys.len()],
        Some(c) => c
            .try_iter()?
            .map(|c| {
                let c = c?;
                if c.is_none() {
                    Ok(None)
                } else {
                    amount_arg(&c).map(Some)
                }
            })
            .collect::<PyResult<_>>()?,
    };
    if expires.len() != keys.len() || owners.len() != keys.len() || caps.len() != keys.len() {
        return Err(value_error("keys, valid_until, owners (and caps) must have the same length"));
    }
    Ok(Batch { keys, expires, owners, caps })
}

// --- the checks, for the Python stores --------------------------------------------------------

/// `{name: (code, message)}` for every store refusal: the texts every store raises.
#[pyfunction]
pub fn store_refusals(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for r in StoreRefusal::ALL {
        d.set_item(r.name(), (r.code().as_str(), r.message()))?;
    }
    Ok(d)
}

/// `now` checked (an int in [0, 2**63), not a bool), or the system clock when None.
#[pyfunction]
#[pyo3(signature = (now))]
pub fn store_now_arg(now: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    now_arg(now)
}

/// A replay key checked: exactly 32 bytes.
#[pyfunction]
pub fn store_key_arg<'py>(py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, key_arg(key)?.as_slice()))
}

/// An owner token checked: a str of 1 to 256 UTF-8 bytes (no lone surrogates).
#[pyfunction]
pub fn store_owner_arg(owner: &Bound<'_, PyAny>) -> PyResult<String> {
    owner_arg(owner).map(str::to_owned)
}

/// An amount checked: an int in [0, 2**256), not a bool; returned as a plain int.
#[pyfunction]
pub fn store_amount_arg<'py>(py: Python<'py>, amount: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    u256_to_py(py, &amount_arg(amount)?)
}

/// `margin_seconds` checked: an int in [0, 2**32).
#[pyfunction]
pub fn store_margin_arg(margin_seconds: &Bound<'_, PyAny>) -> PyResult<u64> {
    margin_arg(margin_seconds)
}

/// A `reserve_many` call checked: `(now, keys, expires_at, owners, caps)`, with each
/// `expires_at` = valid_until + margin, clamped to the latest expiry a store keeps.
#[pyfunction]
#[pyo3(signature = (keys, valid_until, owners, caps, margin_seconds, now))]
pub fn store_batch_args<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    valid_until: &Bound<'py, PyAny>,
    owners: &Bound<'py, PyAny>,
    caps: Option<&Bound<'py, PyAny>>,
    margin_seconds: u64,
    now: Option<&Bound<'py, PyAny>>,
) -> PyResult<BatchArgs<'py>> {
    let now = now_arg(now)?;
    let b = batch_args(keys, valid_until, owners, caps, margin_seconds)?;
    let keys = b.keys.iter().map(|k| PyBytes::new(py, k.as_slice())).collect();
    let caps = b.caps.iter().map(|c| c.as_ref().map(|c| u256_to_py(py, c)).transpose()).collect::<PyResult<_>>()?;
    Ok((now, keys, b.expires, b.owners, caps))
}

// --- the memory store ---------------------------------------------------------------------------

/// The embedded default store: thread-safe, one process, bounded, not durable.
///
/// Keeps each unsettled reservation until validBefore / deadline + `margin_seconds` (then the
/// time check refuses its authorization), and each settled key for as long as the store lives
/// (a payer may re-sign the same nonce with a later deadline at any time). At `max_entries`
/// it drops expired reservations and, if still full, refuses new ones: size it for the
/// settled payments of the process's lifetime plus the reservations live at peak (about 300
/// bytes an entry).
// weakref: the chain stage keeps a store's exposure ledger beside it (x402_verify.chain.exposure),
// shared by every verifier on the store, and lets it go with the store.
#[pyclass(frozen, weakref, module = "x402_verify._core", name = "MemoryNonceStore")]
pub struct MemoryNonceStore {
    /// Shared with the reserve stage of the verifiers that reserve into it.
    inner: Arc<MemoryStore>,
    margin: u64,
}

impl MemoryNonceStore {
    fn open(&self) -> PyResult<&MemoryStore> {
        if self.inner.is_closed() {
            return Err(closed());
        }
        Ok(&self.inner)
    }

    /// The core store, for the reserve stage (which refuses everything once it is closed).
    pub(crate) fn shared(&self) -> Arc<MemoryStore> {
        self.inner.clone()
    }

    /// Seconds an unsettled reservation outlives its authorization's deadline.
    pub(crate) fn margin(&self) -> u64 {
        self.margin
    }
}

#[pymethods]
impl MemoryNonceStore {
    #[new]
    #[pyo3(signature = (max_entries = None, *, margin_seconds = None), text_signature = "(max_entries=1000000, *, margin_seconds=60)")]
    fn new(max_entries: Option<&Bound<'_, PyAny>>, margin_seconds: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let max_entries = match max_entries {
            None => 1_000_000,
            Some(m) => bounded(m, "max_entries", 1, u64::from(u32::MAX))?,
        };
        let margin = match margin_seconds {
            None => 60,
            Some(m) => margin_arg(m)?,
        };
        let max_entries = usize::try_from(max_entries).map_err(|_| value_error("max_entries is too large for this machine"))?;
        Ok(MemoryNonceStore { inner: Arc::new(MemoryStore::new(max_entries)), margin })
    }

    /// Most entries kept (live reservations and settled keys); past it, after dropping
    /// expired reservations, the store refuses new ones.
    #[getter]
    fn max_entries(&self) -> usize {
        self.inner.max_entries()
    }

    /// Seconds an unsettled reservation outlives the authorization's validBefore / deadline.
    #[getter]
    fn margin_seconds(&self) -> u64 {
        self.margin
    }

    /// Reserves keys in order. Per item: True (reserved, or already this owner's), False (a
    /// replay), None (refused: the store is full, or the item expires before `now`).
    #[pyo3(signature = (keys, valid_until, owners, caps = None, *, now = None))]
    fn reserve_many(
        &self,
        keys: &Bound<'_, PyAny>,
        valid_until: &Bound<'_, PyAny>,
        owners: &Bound<'_, PyAny>,
        caps: Option<&Bound<'_, PyAny>>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Option<bool>>> {
        let now = now_arg(now)?;
        let b = batch_args(keys, valid_until, owners, caps, self.margin)?;
        let items: Vec<Reserve<'_>> =
            (0..b.keys.len()).map(|i| Reserve { key: b.keys[i], owner: &b.owners[i], expires_at: b.expires[i], cap: b.caps[i] }).collect();
        Ok(self.open()?.reserve_many(&items, now).into_iter().map(Result::ok).collect())
    }

    /// Marks the caller's reservation settled, kept for as long as the store lives; returns
    /// the upto total charged (0 for exact).
    #[pyo3(signature = (key, owner, *, now = None))]
    fn settle<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>, owner: &Bound<'py, PyAny>, now: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let (key, owner, now) = (key_arg(key)?, owner_arg(owner)?, now_arg(now)?);
        let total = self.open()?.settle(&key, owner, now).map_err(refusal)?;
        u256_to_py(py, &total)
    }

    /// Drops the caller's reservation: nothing was served and nothing broadcast.
    #[pyo3(signature = (key, owner, *, now = None))]
    fn release(&self, key: &Bound<'_, PyAny>, owner: &Bound<'_, PyAny>, now: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let (key, owner, now) = (key_arg(key)?, owner_arg(owner)?, now_arg(now)?);
        self.open()?.release(&key, owner, now).map_err(refusal)
    }

    /// Debits an upto session by `amount`; returns the new total; never passes the cap.
    #[pyo3(signature = (key, owner, amount, *, now = None))]
    fn charge<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        owner: &Bound<'py, PyAny>,
        amount: &Bound<'py, PyAny>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (key, owner, amount, now) = (key_arg(key)?, owner_arg(owner)?, amount_arg(amount)?, now_arg(now)?);
        let total = self.open()?.charge(&key, owner, amount, now).map_err(refusal)?;
        u256_to_py(py, &total)
    }

    /// `("reserved" | "settled", owner, charged_total, expires_at)` for a live key, else None;
    /// `expires_at` is None for a settled key (kept for as long as the store lives).
    #[pyo3(signature = (key, *, now = None))]
    fn state<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>, now: Option<&Bound<'py, PyAny>>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let (key, now) = (key_arg(key)?, now_arg(now)?);
        let Some(e) = self.open()?.get(&key, now) else { return Ok(None) };
        let (name, owner, total) = match &e.state {
            State::Reserved { owner, charged, .. } => ("reserved", owner.clone(), *charged),
            State::Settled { owner, total } => ("settled", owner.clone(), *total),
        };
        let t = (name, owner, u256_to_py(py, &total)?, e.expires()).into_pyobject(py)?;
        Ok(Some(t.into_any()))
    }

    /// Drops expired (unsettled) entries; returns how many remain.
    #[pyo3(signature = (*, now = None))]
    fn sweep(&self, now: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
        let now = now_arg(now)?;
        Ok(self.open()?.sweep(now))
    }

    /// Forgets every entry and refuses every later call (`NonceStoreError`).
    fn close(&self) {
        self.inner.close();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
