//! `VerifierCore`: the compiled half of `x402_verify.Verifier` (which adds options handling
//! and replay protection in Python).

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use x402_verify_core::authenticate::Authenticator;
use x402_verify_core::json::Value;
use x402_verify_core::primitives::parse_address;
use x402_verify_core::x402::batch_verify::finish_all;
use x402_verify_core::x402::{verify, verify_deferred, PayloadInput, Verdict, VerifyConfig};
use x402_verify_core::{Address, Code, Error, Result as CoreResult};

use crate::args::{now_or_clock, threads as thread_count, Threads, UnixTime};
use crate::convert;
use crate::errors::value_error;
use crate::policy::SignaturePolicy;
use crate::requirements::{self, Cache};
use crate::response::VerifyResponse;

/// A payload copied out of Python: header/JSON text, or a tree built from a dict.
enum OwnedPayload {
    Text(Vec<u8>),
    Tree(Value),
}

impl OwnedPayload {
    fn input(&self) -> PayloadInput<'_> {
        match self {
            OwnedPayload::Text(b) => PayloadInput::Text(b),
            OwnedPayload::Tree(v) => PayloadInput::Value(v),
        }
    }
}

fn payload_arg(obj: &Bound<'_, PyAny>) -> CoreResult<OwnedPayload> {
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str().map_err(|_| Error::new(Code::InvalidPayload, "the header is not valid UTF-8 text"))?;
        return Ok(OwnedPayload::Text(text.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(OwnedPayload::Text(b.as_bytes().to_vec()));
    }
    if obj.cast::<PyDict>().is_ok() {
        let mut budget = 1 << 16;
        return convert::value(obj, 0, &mut budget).map(OwnedPayload::Tree);
    }
    Err(Error::new(Code::InvalidInputType, "a payment payload is a header str, JSON bytes or a dict"))
}

fn addresses(list: Vec<String>, what: &str) -> PyResult<Vec<Address>> {
    list.iter().map(|s| parse_address(s).map_err(|e| value_error(format!("{what}: {e}")))).collect()
}

/// Compiled verifier: holds the parsed configuration and runs the cascade.
#[pyclass(frozen, module = "x402_verify._core", name = "VerifierCore")]
pub struct VerifierCore {
    cfg: VerifyConfig,
    threads: Option<usize>,
    /// Payer keys and batch counters; `None` when `payer_key_cache=0`.
    auth: Option<Authenticator>,
}

#[pymethods]
impl VerifierCore {
    #[new]
    #[pyo3(signature = (*, network_names, allowed_chain_ids, exact_permit2_proxies, upto_permit2_proxies, facilitator_addresses,
                        time_buffer, clock_skew_seconds, max_validity_seconds, max_payload_bytes, eip3009_policy, permit2_policy, threads,
                        payer_key_cache = x402_verify_core::authenticate::DEFAULT_KEY_CACHE))]
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
    ) -> PyResult<Self> {
        let threads = thread_count(threads);
        if max_payload_bytes == 0 {
            return Err(value_error("max_payload_bytes must be positive"));
        }
        Ok(VerifierCore {
            cfg: VerifyConfig {
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
            },
            threads,
            auth: (payer_key_cache > 0).then(|| Authenticator::new(payer_key_cache)),
        })
    }

    /// Work counters since construction: key-cache hits, misses and size, batch-verified and
    /// recovered signatures, batch checks (and failed ones), bisections, located bad items,
    /// points multiplied, fallbacks to recovery, session-cache hits and size.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.auth.as_ref().map(Authenticator::stats).unwrap_or_default();
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
        ] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Verifies one payment. Never raises for a bad payment: the verdict says why.
    #[pyo3(signature = (payload, requirements, *, now = None))]
    fn verify(&self, py: Python<'_>, payload: &Bound<'_, PyAny>, requirements: &Bound<'_, PyAny>, now: Option<UnixTime>) -> VerifyResponse {
        let now = now_or_clock(now);
        let req = requirements::one(requirements, self.cfg.max_payload_bytes);
        let verdict = match payload_arg(payload) {
            Ok(p) => py.detach(|| verify(&p.input(), &req, now, &self.cfg)),
            Err(e) => verdict_of(&e),
        };
        VerifyResponse(verdict, None)
    }

    /// Verifies `(payload, requirements)` pairs in order, in parallel, with the GIL released.
    #[pyo3(signature = (items, *, now = None, threads = None))]
    fn verify_batch<'py>(&self, py: Python<'py>, items: &Bound<'py, PyAny>, now: Option<UnixTime>, threads: Option<Threads>) -> PyResult<Bound<'py, PyList>> {
        let threads = thread_count(threads).or(self.threads);
        let now = now_or_clock(now);
        // Routes share requirements: each distinct content is read once per batch.
        let mut reqs = Cache::new(self.cfg.max_payload_bytes);
        let mut inputs: Vec<CoreResult<(OwnedPayload, requirements::Shared)>> = Vec::new();
        for item in items.try_iter()? {
            let item = item?;
            let Ok((p, r)) = item.extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>)>() else {
                inputs.push(Err(Error::new(Code::InvalidInputType, "each batch item is a (payload, requirements) pair")));
                continue;
            };
            let req = reqs.get(&r);
            inputs.push(payload_arg(&p).map(|p| (p, req)));
        }
        let cfg = &self.cfg;
        let verdicts = py.detach(|| match &self.auth {
            // Every check but the signature's per item, then the signatures together.
            Some(auth) => {
                let staged = x402_verify_core::batch::map(&inputs, threads, |input| match input {
                    Ok((p, req)) => verify_deferred(&p.input(), req, now, cfg),
                    Err(e) => (verdict_of(e), None),
                });
                finish_all(staged, auth, threads)
            }
            None => x402_verify_core::batch::map(&inputs, threads, |input| match input {
                Ok((p, req)) => verify(&p.input(), req, now, cfg),
                Err(e) => verdict_of(e),
            }),
        });
        let out = PyList::empty(py);
        for v in verdicts {
            out.append(Bound::new(py, VerifyResponse(v, None))?)?;
        }
        Ok(out)
    }
}

fn verdict_of(e: &Error) -> Verdict {
    Verdict::from_error(e)
}
