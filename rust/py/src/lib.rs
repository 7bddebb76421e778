//! PyO3 bindings: the private module `x402_verify._core`. Argument handling and GIL release
//! only; every rule lives in `x402-verify-core`.

mod args;
mod convert;
mod errors;
mod policy;
mod requirements;
mod response;
mod store;
mod verifier;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyList, PyString};
use x402_verify_core::eip712::{self, DEFAULT_MAX_BYTES};
use x402_verify_core::primitives::checksum;
use x402_verify_core::{Address, Code, Digest, Error, Result as CoreResult, SignaturePolicy as CorePolicy};

use convert::Doc;
use errors::{to_item, to_pyerr, value_error};
use policy::SignaturePolicy;

fn digest_of(doc: &Doc, max_bytes: usize) -> CoreResult<Digest> {
    match doc {
        Doc::Json(bytes) => eip712::hash_typed_data_json(bytes, max_bytes),
        Doc::Tree(v) => eip712::hash_typed_data(v),
    }
}

fn recover_doc(doc: &Doc, sig: &[u8], policy: &CorePolicy, max_bytes: usize) -> CoreResult<Address> {
    match doc {
        Doc::Json(bytes) => x402_verify_core::recover_typed_data_json(bytes, sig, policy, max_bytes),
        Doc::Tree(v) => x402_verify_core::recover_typed_data(v, sig, policy),
    }
}

fn recover_digest(digest: &[u8], sig: &[u8], policy: &CorePolicy) -> CoreResult<Address> {
    x402_verify_core::recover_hash(&Digest::from_slice(digest)?, sig, policy)
}

/// Single-call argument errors of the wrong Python type are TypeErrors; the rest are data (an
/// input that changed while it was read is not of a wrong type: `TypedDataError`).
fn single_doc(obj: &Bound<'_, PyAny>, max_bytes: usize) -> PyResult<Doc> {
    convert::doc(obj, max_bytes).map_err(|e| {
        if e.code == Code::InvalidInputType && e.message != convert::CHANGED_DURING_READ {
            PyTypeError::new_err(e.message)
        } else {
            to_pyerr(e)
        }
    })
}

/// Count options (`max_bytes`, `threads`): an int in [0, 2**64), never a bool. pyo3's own
/// `usize` extraction raises OverflowError for a negative or huge int; these say what is wrong.
macro_rules! count_arg {
    ($ty:ident, $name:literal) => {
        pub(crate) struct $ty(pub usize);

        impl<'a, 'py> FromPyObject<'a, 'py> for $ty {
            type Error = PyErr;

            fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
                count(&obj, $name).map($ty)
            }
        }
    };
}

count_arg!(MaxBytes, "max_bytes");

fn count(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<usize> {
    if obj.cast::<PyBool>().is_ok() || obj.cast::<PyInt>().is_err() {
        return Err(PyTypeError::new_err(format!("{name} must be an int, not {}", convert::type_name(obj))));
    }
    match obj.extract::<u64>() {
        // A bound past the address space is no bound at all.
        Ok(v) => Ok(usize::try_from(v).unwrap_or(usize::MAX)),
        Err(_) if obj.lt(0i32).unwrap_or(false) => Err(value_error(format!("{name} must not be negative"))),
        Err(_) => Err(value_error(format!("{name} must be below 2**64"))),
    }
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
    use crate::verifier::VerifierCore;

    use super::*;

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
        let mut inputs: Vec<CoreResult<(Doc, Vec<u8>)>> = Vec::new();
        for item in items.try_iter()? {
            let item = item?;
            inputs.push(pair(&item).and_then(|(d, s)| {
                let sig = convert::byte_arg(&s, Code::InvalidSignatureEncoding, "signature")?;
                Ok((convert::doc(&d, max_bytes)?, sig))
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
    #[pyo3(signature = (value, *, max_bytes = args::ByteLimit(x402_verify_core::x402::verify::DEFAULT_MAX_PAYLOAD_BYTES)))]
    fn decode_payment_header<'py>(py: Python<'py>, value: &Bound<'py, PyAny>, max_bytes: args::ByteLimit) -> PyResult<Bound<'py, PyAny>> {
        let max_bytes = max_bytes.0;
        let bytes = if let Ok(s) = value.cast::<PyString>() {
            let text = s.to_str().map_err(|_| to_pyerr(Error::new(Code::InvalidPayload, "the header is not valid UTF-8 text (lone surrogates)")))?;
            text.as_bytes().to_vec()
        } else if let Ok(b) = value.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else {
            return Err(PyTypeError::new_err("a payment header is str or bytes"));
        };
        let v = py.detach(|| x402_verify_core::x402::header::decode(&bytes, max_bytes)).map_err(to_pyerr)?;
        convert::to_py(py, &v)
    }

    #[pymodule_export]
    const DEFAULT_MAX_PAYLOAD_BYTES: usize = x402_verify_core::x402::verify::DEFAULT_MAX_PAYLOAD_BYTES;

    #[pymodule_export]
    const DEFAULT_MAX_TYPED_DATA_BYTES: usize = DEFAULT_MAX_BYTES;

    #[pymodule_export]
    const DEFAULT_PAYER_KEY_CACHE: usize = x402_verify_core::authenticate::DEFAULT_KEY_CACHE;
}
