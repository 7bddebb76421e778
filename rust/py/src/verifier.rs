//! `VerifierCore`: the compiled half of `x402_verify.Verifier` (which adds options handling in
//! Python). It holds the core's `Pipeline` (read -> terms -> authenticate) and runs it with the
//! GIL released; with the in-process store the reserve stage runs in the same call. For the
//! Python stores (SQLite, Redis) it plans the batch's reservations (`ReservationPlan`) and
//! decides the verdicts from the store's answers, so no reason is decided in Python.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyList, PyString};
use x402_verify_core::authenticate::Authenticator;
use x402_verify_core::primitives::parse_address;
use x402_verify_core::x402::stages::reserve::{self, Outcome, ReserveInMemory, MAX_IDEMPOTENCY_ID_BYTES};
use x402_verify_core::x402::stages::{Authenticate, Recall, Remember, Stage};
use x402_verify_core::x402::{Context, Item, PayloadInput, Pipeline, VerifyConfig};
use x402_verify_core::{Address, Code, Error, Result as CoreResult};

use crate::args::{now_or_clock, threads as thread_count, Threads, UnixTime};
use crate::convert::{Input, PAYLOAD};
use crate::errors::{type_error, type_name, value_error};
use crate::policy::SignaturePolicy;
use crate::requirements::{self, Cache};
use crate::response::VerifyResponse;
use crate::store::MemoryNonceStore;

fn payload_input(p: &Input) -> PayloadInput<'_> {
    match p {
        Input::Text(b) => PayloadInput::Text(b),
        Input::Tree(v) => PayloadInput::Value(v),
    }
}

fn addresses(list: Vec<String>, what: &str) -> PyResult<Vec<Address>> {
    list.iter().map(|s| parse_address(s).map_err(|e| value_error(format!("{what}: {e}")))).collect()
}

/// One idempotency id checked: a str of 1 to `MAX_IDEMPOTENCY_ID_BYTES` UTF-8 bytes.
fn idempotency_id(obj: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    if obj.is_none() {
        return Ok(None);
    }
    let s = obj.cast::<PyString>().map_err(|_| type_error(format!("an idempotency id must be a str or None, not {}", type_name(obj))))?;
    let text = s.to_str().map_err(|_| value_error("an idempotency id must be valid Unicode (no lone surrogates)"))?;
    if text.is_empty() || text.len() > MAX_IDEMPOTENCY_ID_BYTES {
        return Err(value_error(format!("an idempotency id is 1 to {MAX_IDEMPOTENCY_ID_BYTES} UTF-8 bytes")));
    }
    Ok(Some(text.to_owned()))
}

/// `idempotency_ids` for `n` items: None, or a sequence of one str-or-None per item.
fn read_ids(obj: Option<&Bound<'_, PyAny>>, n: usize) -> PyResult<Vec<Option<String>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else { return Ok(vec![None; n]) };
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(type_error("idempotency_ids must be a sequence (one id or None per item), not a single str or bytes"));
    }
    let ids: Vec<Option<String>> = obj.try_iter()?.map(|o| idempotency_id(&o?)).collect::<PyResult<_>>()?;
    if ids.len() != n {
        return Err(value_error(format!("idempotency_ids has {} entries for {n} items", ids.len())));
    }
    Ok(ids)
}

fn response(item: Item) -> VerifyResponse {
    let owner = item.reservation.filter(|r| r.outcome == Some(Outcome::Reserved)).map(|r| r.owner);
    VerifyResponse(item.verdict, owner)
}

/// Compiled verifier: holds the parsed configuration and the pipeline of stages.
#[pyclass(frozen, module = "x402_verify._core", name = "VerifierCore")]
pub struct VerifierCore {
    pipeline: Pipeline,
    threads: Option<usize>,
    /// Payer keys and batch counters (shared with the authenticate stage); `None` when
    /// `payer_key_cache=0`.
    auth: Option<Arc<Authenticator>>,
}

#[pymethods]
impl VerifierCore {
    #[new]
    #[pyo3(signature = (*, network_names, allowed_chain_ids, exact_permit2_proxies, upto_permit2_proxies, facilitator_addresses,
                        time_buffer, clock_skew_seconds, max_validity_seconds, max_payload_bytes, eip3009_policy, permit2_policy, threads,
                        payer_key_cache = x402_verify_core::authenticate::DEFAULT_KEY_CACHE, verdict_cache = 0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        network_names: HashMap<String, u64>,
        allowed_chain_ids: Option<Vec<u64>>,
        exact_permit2_proxies: Vec<String>,
        upto_permit2_proxies: Vec<String>,
        facilitator_addresses: Vec<String>,
        time_buffer: u64,
        clock_skew_seconds: u64,
        max_validity_seconds: Option<u64>,
        max_payload_bytes: usize,
        eip3009_policy: PyRef<'_, SignaturePolicy>,
        permit2_policy: PyRef<'_, SignaturePolicy>,
        threads: Option<Threads>,
        payer_key_cache: usize,
        verdict_cache: usize,
    ) -> PyResult<Self> {
        let threads = thread_count(threads);
        if max_payload_bytes == 0 {
            return Err(value_error("max_payload_bytes must be positive"));
        }
        let cfg = VerifyConfig {
            network_names,
            allowed_chain_ids,
            exact_permit2_proxies: addresses(exact_permit2_proxies, "permit2_proxies")?,
            upto_permit2_proxies: addresses(upto_permit2_proxies, "permit2_proxies")?,
            facilitator_addresses: addresses(facilitator_addresses, "facilitator_addresses")?,
            time_buffer,
            clock_skew_seconds,
            max_validity_seconds,
            max_payload_bytes,
            eip3009_policy: eip3009_policy.0,
            permit2_policy: permit2_policy.0,
        };
        let auth = (payer_key_cache > 0).then(|| Arc::new(Authenticator::new(payer_key_cache)));
        let authenticate = match &auth {
            Some(a) => Authenticate::with(a.clone()),
            None => Authenticate::recovery(),
        };
        let mut pipeline = Pipeline::new(cfg).with_stage(authenticate);
        if verdict_cache > 0 {
            // Remember runs right after authentication: it keeps verdicts as they stand there,
            // before any reservation.
            let recall = Arc::new(Recall::new(verdict_cache));
            pipeline = pipeline.with_recall(recall.clone()).with_stage(Remember(recall));
        }
        Ok(VerifierCore { pipeline, threads, auth })
    }

    /// Work counters since construction: key-cache hits, misses and size, batch-verified and
    /// recovered signatures, batch checks (and failed ones), bisections, located bad items,
    /// points multiplied, fallbacks to recovery, session-cache hits and size, verdict-cache hits
    /// and size.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.auth.as_deref().map(Authenticator::stats).unwrap_or_default();
        let r = self.pipeline.recall().map(Recall::stats).unwrap_or_default();
        let d = PyDict::new(py);
        for (k, v) in [
            ("key_cache_hits", s.key_cache_hits),
            ("key_cache_misses", s.key_cache_misses),
            ("key_cache_size", s.key_cache_size),
            ("batch_verified", s.batch_verified),
            ("recovered", s.recovered),
            ("batch_checks", s.batch_checks),
            ("failed_checks", s.failed_checks),
            ("bisections", s.bisections),
            ("located", s.located),
            ("points_multiplied", s.points_multiplied),
            ("fallbacks", s.fallbacks),
            ("session_hits", s.session_hits),
            ("session_size", s.session_size),
            ("verdict_hits", r.hits),
            ("verdict_size", r.size),
        ] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// The stages after the terms, in order (`authenticate`, `remember` with a verdict cache,
    /// then `reserve` when a call reserves in the in-process store).
    #[getter]
    fn stages(&self) -> Vec<&'static str> {
        self.pipeline.stage_names()
    }

    /// Verifies `(payload, requirements)` pairs in order, in parallel, with the GIL released.
    /// With `store` (a `MemoryNonceStore`) the valid ones are reserved in the same call;
    /// `idempotency_ids` (one str or None per item) name the reservations' owners.
    #[pyo3(signature = (items, *, now = None, threads = None, store = None, idempotency_ids = None))]
    fn verify_batch<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
        now: Option<UnixTime>,
        threads: Option<Threads>,
        store: Option<PyRef<'py, MemoryNonceStore>>,
        idempotency_ids: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let threads = thread_count(threads).or(self.threads);
        let now = now_or_clock(now);
        let max_bytes = self.pipeline.config().max_payload_bytes;
        // Routes share requirements: each distinct content is read once per batch.
        let mut reqs = Cache::new(max_bytes);
        let mut inputs: Vec<CoreResult<(Input, requirements::Shared)>> = Vec::new();
        for item in items.try_iter()? {
            let item = item?;
            let Ok((p, r)) = item.extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>)>() else {
                inputs.push(Err(Error::new(Code::InvalidInputType, "each batch item is a (payload, requirements) pair")));
                continue;
            };
            let req = reqs.get(&r);
            inputs.push(PAYLOAD.read(&p, max_bytes).map(|p| (p, req)));
        }
        let ids = read_ids(idempotency_ids, inputs.len())?;
        let reserve = store.map(|s| ReserveInMemory::new(s.shared(), s.margin()));
        let cx = Context { now, threads };
        let out = py.detach(|| {
            let mut items = self.pipeline.run(&inputs, &cx, |pipeline, input| match input {
                Ok((p, req)) => pipeline.prepare(&payload_input(p), req, now),
                Err(e) => Item::from_error(e),
            });
            for (item, id) in items.iter_mut().zip(ids) {
                item.idempotency_id = id;
            }
            if let Some(r) = &reserve {
                r.run(&mut items, &cx);
            }
            items
        });
        let list = PyList::empty(py);
        for item in out {
            list.append(Bound::new(py, response(item))?)?;
        }
        Ok(list)
    }

    /// Reserves responses verified with `reserve=False` in the in-process `store`, in one call;
    /// answers the responses as a reserving `verify_batch` would have.
    #[pyo3(signature = (responses, store, *, now = None, idempotency_ids = None))]
    fn reserve_in_memory<'py>(
        &self,
        py: Python<'py>,
        responses: Vec<PyRef<'py, VerifyResponse>>,
        store: PyRef<'py, MemoryNonceStore>,
        now: Option<UnixTime>,
        idempotency_ids: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<VerifyResponse>> {
        let now = now_or_clock(now);
        let mut items = items_of(&responses, idempotency_ids)?;
        let stage = ReserveInMemory::new(store.shared(), store.margin());
        py.detach(|| stage.reserve(&mut items, now));
        Ok(items.into_iter().map(response).collect())
    }
}

fn items_of(responses: &[PyRef<'_, VerifyResponse>], ids: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Item>> {
    let ids = read_ids(ids, responses.len())?;
    Ok(responses
        .iter()
        .zip(ids)
        .map(|(r, id)| {
            let mut item = Item::from_verdict(r.0.clone());
            item.idempotency_id = id;
            item
        })
        .collect())
}

/// The reservations of one batch, for a store that keeps them outside the core (SQLite,
/// Redis, or a store with an exposure ledger): the store takes them in one call
/// (`store_args`), answers one outcome each, and `conclude` decides the verdicts.
#[pyclass(module = "x402_verify._core", name = "ReservationPlan")]
pub struct ReservationPlan {
    items: Vec<Item>,
    picked: Vec<usize>,
}

#[pymethods]
impl ReservationPlan {
    /// Plans the reservations of `responses`' valid items (each gets a fresh random owner
    /// token, or `i:` + its idempotency id).
    #[new]
    #[pyo3(signature = (responses, *, idempotency_ids = None))]
    fn new(responses: Vec<PyRef<'_, VerifyResponse>>, idempotency_ids: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut items = items_of(&responses, idempotency_ids)?;
        let picked = reserve::plan(&mut items);
        Ok(ReservationPlan { items, picked })
    }

    /// How many reservations the store is asked for.
    fn __len__(&self) -> usize {
        self.picked.len()
    }

    /// Indices (into the responses) of the items to reserve, in the order of the columns.
    #[getter]
    fn indices(&self) -> Vec<usize> {
        self.picked.clone()
    }

    /// `(keys, valid_until, owners, caps)` of the reservations, in order: what a store's
    /// `reserve_many` (or `reserve_exposed`) takes.
    fn columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        let rs: Vec<_> = self.picked.iter().filter_map(|&i| self.items[i].reservation.as_ref()).collect();
        let keys: Vec<Bound<'py, PyBytes>> = rs.iter().map(|r| PyBytes::new(py, r.key.as_slice())).collect();
        let until: Vec<u64> = rs.iter().map(|r| r.valid_until).collect();
        let owners: Vec<&str> = rs.iter().map(|r| r.owner.as_str()).collect();
        let caps = rs.iter().map(|r| r.cap.as_ref().map(|c| crate::convert::u256_to_py(py, c)).transpose()).collect::<PyResult<Vec<_>>>()?;
        (keys, until, owners, caps).into_pyobject(py)
    }

    /// The verdicts, given the store's answer per reservation (True reserved, False replay,
    /// `"exposure"` the payer's capacity is promised, anything else refused). An answer of the
    /// wrong length refuses them all: a payment is never accepted unreserved.
    fn conclude(&mut self, outcomes: &Bound<'_, PyAny>) -> PyResult<Vec<VerifyResponse>> {
        let answers: Vec<Outcome> = match outcomes.try_iter() {
            Ok(it) => it.map(|o| o.map(|o| outcome(&o))).collect::<PyResult<_>>()?,
            Err(_) => Vec::new(),
        };
        let answers = if answers.len() == self.picked.len() { answers } else { vec![Outcome::Unavailable; self.picked.len()] };
        let mut items = std::mem::take(&mut self.items);
        reserve::conclude(&mut items, &self.picked, &answers);
        Ok(items.into_iter().map(response).collect())
    }

    /// The verdicts when the store could not answer at all: every planned one refused.
    fn refuse_all(&mut self) -> Vec<VerifyResponse> {
        let mut items = std::mem::take(&mut self.items);
        let answers = vec![Outcome::Unavailable; self.picked.len()];
        reserve::conclude(&mut items, &self.picked, &answers);
        items.into_iter().map(response).collect()
    }
}

fn outcome(o: &Bound<'_, PyAny>) -> Outcome {
    if let Ok(b) = o.cast::<PyBool>() {
        return if b.is_true() { Outcome::Reserved } else { Outcome::Replay };
    }
    match o.cast::<PyString>().ok().and_then(|s| s.to_str().ok().map(str::to_owned)).as_deref() {
        Some(reserve::EXPOSURE_OUTCOME) => Outcome::Exposure,
        _ => Outcome::Unavailable,
    }
}
