//! PyO3 bindings: the private module `x402_verify._core`. Argument handling and GIL release
//! only; every rule lives in `x402-verify-core`, and every protocol fact the Python package
//! needs (the v1 network table, CAIP-2 parsing, the Permit2 proxies, the default time buffer
//! and clock skew, the replay reasons) is exported from there, never written out twice.

mod args;
mod convert;
mod errors;
mod policy;
mod requirements;
mod response;
mod store;
mod verifier;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyMappingProxy, PyString, PyTuple};
use x402_verify_core::eip712::{self, DEFAULT_MAX_BYTES};
use x402_verify_core::primitives::checksum;
use x402_verify_core::x402::stages::reserve::replay_code;
use x402_verify_core::x402::NonceSpace;
use x402_verify_core::{Address, Code, Digest, Error, Result as CoreResult, SignaturePolicy as CorePolicy};

use args::MaxBytes;
use convert::{Input, HEADER, TYPED_DATA};
use errors::{to_arg_pyerr, to_item, to_pyerr};
use policy::SignaturePolicy;

fn digest_of(doc: &Input, max_bytes: usize) -> CoreResult<Digest> {
    match doc {
        Input::Text(bytes) => eip712::hash_typed_data_json(bytes, max_bytes),
        Input::Tree(v) => eip712::hash_typed_data(v),
    }
}

fn recover_doc(doc: &Input, sig: &[u8], policy: &CorePolicy, max_bytes: usize) -> CoreResult<Address> {
    match doc {
        Input::Text(bytes) => x402_verify_core::recover_typed_data_json(bytes, sig, policy, max_bytes),
        Input::Tree(v) => x402_verify_core::recover_typed_data(v, sig, policy),
    }
}

fn recover_digest(digest: &[u8], sig: &[u8], policy: &CorePolicy) -> CoreResult<Address> {
    x402_verify_core::recover_hash(&Digest::from_slice(digest)?, sig, policy)
}

/// A single call's typed-data argument.
fn single_doc(obj: &Bound<'_, PyAny>, max_bytes: usize) -> PyResult<Input> {
    TYPED_DATA.read(obj, max_bytes).map_err(to_arg_pyerr)
}

/// A read-only Python mapping of `entries`.
fn frozen_map<'py, K, V>(py: Python<'py>, entries: impl IntoIterator<Item = (K, V)>) -> PyResult<Bound<'py, PyMappingProxy>>
where
    K: IntoPyObject<'py>,
    V: IntoPyObject<'py>,
{
    let d = PyDict::new(py);
    for (k, v) in entries {
        d.set_item(k, v)?;
    }
    Ok(PyMappingProxy::new(py, d.as_mapping()))
}

/// Splits a batch item into its two members, or says why it cannot.
fn pair<'py>(item: &Bound<'py, PyAny>) -> CoreResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    item.extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>)>().map_err(|_| Error::new(Code::InvalidInputType, "each batch item is a (data, signature) pair"))
}

fn results_to_list<'py>(py: Python<'py>, results: Vec<CoreResult<Address>>) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for r in results {
        match r {
            Ok(addr) => out.append(PyString::new(py, &checksum(&addr)))?,
            Err(e) => out.append(to_item(py, e)?)?,
        }
    }
    Ok(out)
}

#[pymodule(gil_used = false)]
mod _core {
    #[pymodule_export]
    use super::SignaturePolicy;
    #[pymodule_export]
    use crate::requirements::Requirements;
    #[pymodule_export]
    use crate::response::{PaymentAuthorization, VerifyResponse};
    #[pymodule_export]
    use crate::store::{store_amount_arg, store_batch_args, store_key_arg, store_margin_arg, store_now_arg, store_owner_arg, store_refusals, MemoryNonceStore};
    #[pymodule_export]
    use crate::verifier::{ReservationPlan, VerifierCore};

    use super::*;

    /// The protocol facts that are values Rust cannot make `const` (EIP-55 text, mappings).
    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        use x402_verify_core::x402::network::V1_NETWORKS;
        use x402_verify_core::x402::stages::reserve;
        use x402_verify_core::x402::{EXACT_PERMIT2_PROXY, UPTO_PERMIT2_PROXY};
        let py = m.py();
        m.add("EXACT_PERMIT2_PROXY", checksum(&EXACT_PERMIT2_PROXY))?;
        m.add("UPTO_PERMIT2_PROXY", checksum(&UPTO_PERMIT2_PROXY))?;
        m.add("V1_NETWORK_NAMES", frozen_map(py, V1_NETWORKS.iter().copied())?)?;
        let spaces = [("eip3009", NonceSpace::Eip3009), ("permit2", NonceSpace::Permit2)];
        m.add("EXPOSURE_OUTCOME", reserve::EXPOSURE_OUTCOME)?;
        m.add("MAX_IDEMPOTENCY_ID_BYTES", reserve::MAX_IDEMPOTENCY_ID_BYTES)?;
        m.add("VECTOR_SQUARE_ROOTS", x402_verify_core::authenticate::vector_square_roots())?;
        m.add("REPLAY_REASONS", frozen_map(py, spaces.map(|(name, space)| (name, replay_code(space).as_str())))?)?;
        Ok(())
    }

    /// The chain id of a CAIP-2 `eip155:<chainId>` network (strict: at most 19 decimal digits,
    /// no sign, no leading zero, not 0), else None.
    #[pyfunction]
    fn caip2_chain_id(network: args::Text) -> Option<u64> {
        x402_verify_core::x402::network::parse_caip2(&network.0)
    }

    /// The 32-byte EIP-712 signing digest of a typed-data document.
    #[pyfunction]
    #[pyo3(signature = (typed_data, *, max_bytes = MaxBytes(DEFAULT_MAX_BYTES)))]
    fn hash_typed_data<'py>(py: Python<'py>, typed_data: &Bound<'py, PyAny>, max_bytes: MaxBytes) -> PyResult<Bound<'py, PyBytes>> {
        let max_bytes = max_bytes.0;
        let doc = single_doc(typed_data, max_bytes)?;
        let digest = py.detach(|| digest_of(&doc, max_bytes)).map_err(to_pyerr)?;
        Ok(PyBytes::new(py, digest.as_bytes()))
    }

    /// The EIP-55 address that signed a typed-data document.
    #[pyfunction]
    #[pyo3(signature = (typed_data, signature, *, policy = None, max_bytes = MaxBytes(DEFAULT_MAX_BYTES)))]
    fn recover_typed_data(
        py: Python<'_>,
        typed_data: &Bound<'_, PyAny>,
        signature: &Bound<'_, PyAny>,
        policy: Option<&SignaturePolicy>,
        max_bytes: MaxBytes,
    ) -> PyResult<String> {
        let max_bytes = max_bytes.0;
        let sig = convert::byte_arg(signature, Code::InvalidSignatureEncoding, "signature").map_err(to_pyerr)?;
        let doc = single_doc(typed_data, max_bytes)?;
        let policy = policy::resolve(policy);
        let addr = py.detach(|| recover_doc(&doc, &sig, &policy, max_bytes)).map_err(to_pyerr)?;
        Ok(checksum(&addr))
    }

    /// The EIP-55 address that signed a 32-byte digest.
    #[pyfunction]
    #[pyo3(signature = (digest, signature, *, policy = None))]
    fn recover_hash(py: Python<'_>, digest: &Bound<'_, PyAny>, signature: &Bound<'_, PyAny>, policy: Option<&SignaturePolicy>) -> PyResult<String> {
        let digest = convert::byte_arg(digest, Code::InvalidDigest, "digest").map_err(to_pyerr)?;
        let sig = convert::byte_arg(signature, Code::InvalidSignatureEncoding, "signature").map_err(to_pyerr)?;
        let policy = policy::resolve(policy);
        let addr = py.detach(|| recover_digest(&digest, &sig, &policy)).map_err(to_pyerr)?;
        Ok(checksum(&addr))
    }

    /// `recover_typed_data` over `(typed_data, signature)` pairs, in parallel, GIL released.
    #[pyfunction]
    #[pyo3(signature = (items, *, policy = None, threads = None, max_bytes = MaxBytes(DEFAULT_MAX_BYTES)))]
    fn recover_typed_data_batch<'py>(
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
        policy: Option<&SignaturePolicy>,
        threads: Option<args::Threads>,
        max_bytes: MaxBytes,
    ) -> PyResult<Bound<'py, PyList>> {
        let max_bytes = max_bytes.0;
        let threads = args::threads(threads);
        let policy = policy::resolve(policy);
        let mut inputs: Vec<CoreResult<(Input, Vec<u8>)>> = Vec::new();
        for item in items.try_iter()? {
            let item = item?;
            inputs.push(pair(&item).and_then(|(d, s)| {
                let sig = convert::byte_arg(&s, Code::InvalidSignatureEncoding, "signature")?;
                Ok((TYPED_DATA.read(&d, max_bytes)?, sig))
            }));
        }
        let results = py.detach(|| {
            x402_verify_core::batch::map(&inputs, threads, |input| match input {
                Ok((doc, sig)) => recover_doc(doc, sig, &policy, max_bytes),
                Err(e) => Err(e.clone()),
            })
        });
        results_to_list(py, results)
    }

    /// `recover_hash` over `(digest, signature)` pairs, in parallel, GIL released.
    #[pyfunction]
    #[pyo3(signature = (items, *, policy = None, threads = None))]
    fn recover_hash_batch<'py>(
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
        policy: Option<&SignaturePolicy>,
        threads: Option<args::Threads>,
    ) -> PyResult<Bound<'py, PyList>> {
        let threads = args::threads(threads);
        let policy = policy::resolve(policy);
        let mut inputs: Vec<CoreResult<(Vec<u8>, Vec<u8>)>> = Vec::new();
        for item in items.try_iter()? {
            let item = item?;
            inputs.push(pair(&item).and_then(|(d, s)| {
                Ok((convert::byte_arg(&d, Code::InvalidDigest, "digest")?, convert::byte_arg(&s, Code::InvalidSignatureEncoding, "signature")?))
            }));
        }
        let results = py.detach(|| {
            x402_verify_core::batch::map(&inputs, threads, |input| match input {
                Ok((digest, sig)) => recover_digest(digest, sig, &policy),
                Err(e) => Err(e.clone()),
            })
        });
        results_to_list(py, results)
    }

    /// Every stable error code as `(code, kind, description)`, in catalogue order.
    #[pyfunction]
    fn error_codes() -> Vec<(&'static str, &'static str, &'static str)> {
        Code::ALL
            .iter()
            .map(|c| {
                let kind = match c.kind() {
                    x402_verify_core::Kind::TypedData => "typed_data",
                    x402_verify_core::Kind::Signature => "signature",
                    x402_verify_core::Kind::Payment => "payment",
                    x402_verify_core::Kind::Replay => "replay",
                };
                (c.as_str(), kind, c.description())
            })
            .collect()
    }

    /// Decodes an x402 payment header (base64 JSON, or JSON text) into a dict, strictly.
    #[pyfunction]
    #[pyo3(signature = (value, *, max_bytes = args::ByteLimit(x402_verify_core::x402::DEFAULT_MAX_PAYLOAD_BYTES)))]
    fn decode_payment_header<'py>(py: Python<'py>, value: &Bound<'py, PyAny>, max_bytes: args::ByteLimit) -> PyResult<Bound<'py, PyAny>> {
        let max_bytes = max_bytes.0;
        let Input::Text(bytes) = HEADER.read(value, max_bytes).map_err(to_arg_pyerr)? else { unreachable!("the header reader takes text only") };
        let v = py.detach(|| x402_verify_core::x402::header::decode(&bytes, max_bytes)).map_err(to_pyerr)?;
        convert::to_py(py, &v)
    }

    /// A facilitator request body split into its members without building them
    /// (`x402_verify_core::x402::envelope`): `(x402Version, paymentPayload, paymentRequirements)`
    /// with the two members as JSON text, or `(code, message)` when the body is no envelope.
    #[pyfunction]
    fn read_envelope<'py>(py: Python<'py>, body: &[u8], max_depth: usize) -> PyResult<Bound<'py, PyTuple>> {
        match x402_verify_core::x402::envelope::read_envelope(body, max_depth) {
            Ok(e) => (e.version, PyBytes::new(py, e.payload.as_bytes()), PyBytes::new(py, e.requirements.as_bytes())).into_pyobject(py),
            Err(f) => (f.code, f.message).into_pyobject(py),
        }
    }

    #[pymodule_export]
    const DEFAULT_MAX_PAYLOAD_BYTES: usize = x402_verify_core::x402::DEFAULT_MAX_PAYLOAD_BYTES;

    #[pymodule_export]
    const DEFAULT_MAX_TYPED_DATA_BYTES: usize = DEFAULT_MAX_BYTES;

    #[pymodule_export]
    const DEFAULT_PAYER_KEY_CACHE: usize = x402_verify_core::authenticate::DEFAULT_KEY_CACHE;

    #[pymodule_export]
    const DEFAULT_VERDICT_CACHE: usize = x402_verify_core::x402::stages::recall::DEFAULT_VERDICT_CACHE;

    #[pymodule_export]
    const DEFAULT_TIME_BUFFER: u64 = x402_verify_core::x402::DEFAULT_TIME_BUFFER;

    #[pymodule_export]
    const DEFAULT_CLOCK_SKEW_SECONDS: u64 = x402_verify_core::x402::DEFAULT_CLOCK_SKEW_SECONDS;
}
