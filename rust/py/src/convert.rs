//! Copying Python inputs into owned Rust values while the GIL is held, so the work that
//! follows can run with the GIL released.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use x402_verify_core::json::{Int, Object, Value, MAX_DEPTH};
use x402_verify_core::{Code, Error, Result};

use crate::errors::{to_pyerr, type_name};

/// Most values any one argument may hold, whatever its byte bound: the byte bound alone lets
/// a caller with `max_bytes` in the gigabytes build a tree of as many values.
const MAX_NODES: usize = 1 << 20;

/// The message of the error for an input that changed while it was read.
pub(crate) const CHANGED_DURING_READ: &str = "the input changed while it was read (a finalizer or another thread mutated it)";

/// An argument as handed in: text (checked against its bound and parsed later, without the
/// GIL) or a tree read from a dict under the same bound.
#[derive(PartialEq)]
pub(crate) enum Input {
    Text(Vec<u8>),
    Tree(Value),
}

/// One kind of input argument: the Python types it takes and the codes it is refused with.
/// Every kind is read by `Reader::read`, under one budget (`max_bytes`, `MAX_NODES`).
pub(crate) struct Reader {
    /// What the argument is, for messages.
    what: &'static str,
    /// The types taken, for messages.
    forms: &'static str,
    /// A `bytearray` is taken as bytes.
    bytearray: bool,
    /// A dict is taken (and read as the JSON it stands for).
    dict: bool,
    /// The code of a `str` that is not UTF-8 (lone surrogates).
    not_text: Code,
    /// The code of an argument of another type.
    wrong_type: Code,
}

/// An EIP-712 document.
pub(crate) const TYPED_DATA: Reader =
    Reader { what: "typed data", forms: "a dict, str or bytes", bytearray: true, dict: true, not_text: Code::InvalidJson, wrong_type: Code::InvalidInputType };

/// An x402 payment payload: the header's base64, its JSON, or the decoded dict.
pub(crate) const PAYLOAD: Reader = Reader {
    what: "a payment payload",
    forms: "a header str, JSON bytes or a dict",
    bytearray: false,
    dict: true,
    not_text: Code::InvalidPayload,
    wrong_type: Code::InvalidInputType,
};

/// x402 PaymentRequirements (a compiled `Requirements` is taken before this reader is asked).
pub(crate) const REQUIREMENTS: Reader = Reader {
    what: "payment requirements",
    forms: "a dict or JSON text (or x402_verify.Requirements)",
    bytearray: false,
    dict: true,
    not_text: Code::InvalidPaymentRequirements,
    wrong_type: Code::InvalidPaymentRequirements,
};

/// A payment header value, to decode (`decode_payment_header`).
pub(crate) const HEADER: Reader = Reader {
    what: "a payment header",
    forms: "str or bytes",
    bytearray: false,
    dict: false,
    not_text: Code::InvalidPayload,
    wrong_type: Code::InvalidInputType,
};

impl Reader {
    /// Whether `obj` is of a type this reader takes.
    pub(crate) fn takes(&self, obj: &Bound<'_, PyAny>) -> bool {
        obj.is_instance_of::<PyString>()
            || obj.is_instance_of::<PyBytes>()
            || (self.bytearray && obj.is_instance_of::<PyByteArray>())
            || (self.dict && obj.is_instance_of::<PyDict>())
    }

    /// Reads an argument of this kind. Text is copied as it is: the core bounds it before it
    /// parses anything (a header's base64 by what it decodes to). A dict may hold no more than
    /// `max_bytes` of JSON, counted as compact JSON text without escapes while it is read, so
    /// a dict gets the bound its text would get, and at most `MAX_NODES` values.
    pub(crate) fn read(&self, obj: &Bound<'_, PyAny>, max_bytes: usize) -> Result<Input> {
        if let Ok(s) = obj.cast::<PyString>() {
            let text = s.to_str().map_err(|_| Error::new(self.not_text, format!("{} is not valid UTF-8 text (lone surrogates)", self.what)))?;
            return Ok(Input::Text(text.as_bytes().to_vec()));
        }
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Input::Text(b.as_bytes().to_vec()));
        }
        if self.bytearray {
            if let Ok(b) = obj.cast::<PyByteArray>() {
                return Ok(Input::Text(b.to_vec()));
            }
        }
        if self.dict && obj.cast::<PyDict>().is_ok() {
            let mut budget = Budget { nodes: MAX_NODES, bytes: max_bytes };
            return read(obj, 0, &mut budget).map(Input::Tree).map_err(|e| {
                if e.code == Code::PayloadTooLarge {
                    // One answer for the whole argument, as for text: no path.
                    Error::new(Code::PayloadTooLarge, format!("{} (a dict) holds more than {max_bytes} bytes of JSON; the limit is {max_bytes}", self.what))
                } else {
                    e
                }
            });
        }
        Err(Error::new(self.wrong_type, format!("{} must be {}, not {}", self.what, self.forms, type_name(obj))))
    }
}

/// Reads signature or digest bytes: `bytes`/`bytearray`, or `0x` hex text.
pub(crate) fn byte_arg(obj: &Bound<'_, PyAny>, code: Code, what: &str) -> Result<Vec<u8>> {
    if let Some(b) = bytes_like(obj) {
        return Ok(b);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str().map_err(|_| Error::new(code, format!("{what} is not valid UTF-8 text")))?;
        return x402_verify_core::primitives::parse_hex_prefixed(text, code);
    }
    Err(Error::new(code, format!("{what} must be bytes or 0x-hex str, not {}", type_name(obj))))
}

fn bytes_like(obj: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Some(b.as_bytes().to_vec());
    }
    obj.cast::<PyByteArray>().ok().map(|b| b.to_vec())
}

/// What a conversion may still spend: values, and bytes of the JSON text they stand for.
struct Budget {
    nodes: usize,
    bytes: usize,
}

impl Budget {
    fn spend(&mut self, bytes: usize) -> Result<()> {
        if bytes > self.bytes {
            return Err(Error::new(Code::PayloadTooLarge, "the input is larger than the limit"));
        }
        self.bytes -= bytes;
        Ok(())
    }
}

/// Converts a Python object tree into the core's strict value model, with a node budget and
/// no byte bound (for values, such as a store's int arguments, that are not documents).
pub(crate) fn value(obj: &Bound<'_, PyAny>, depth: usize, budget: &mut usize) -> Result<Value> {
    let mut b = Budget { nodes: *budget, bytes: usize::MAX };
    let out = read(obj, depth, &mut b);
    *budget = b.nodes;
    out
}

/// Containers are copied into a Rust `Vec` of references first and then read from it. Python
/// code runs during a read (big ints are printed through `int`'s methods, and any allocation
/// of a Python object may start the garbage collector, whose finalizers can touch the input),
/// while pyo3's dict iterator panics on a dict that changes size under it; the copying loop
/// itself allocates no Python object, so nothing runs during it. (`dict.items()` and
/// `list.copy()`-style C calls allocate while they copy, and CPython 3.11's list-to-tuple copy
/// then reads freed items when a finalizer shrinks the list.) A container whose length
/// changed by the end of its read is refused.
fn read(obj: &Bound<'_, PyAny>, depth: usize, budget: &mut Budget) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(Error::new(Code::LimitExceeded, format!("nesting deeper than {MAX_DEPTH}")));
    }
    if budget.nodes == 0 {
        return Err(Error::new(Code::LimitExceeded, format!("more than {MAX_NODES} values")));
    }
    budget.nodes -= 1;
    // Most common kinds first: typed data is mostly strings and objects.
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Str(string(s, 2, budget, || Error::new(Code::InvalidValueType, "string is not valid UTF-8 (lone surrogates)"))?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let items: Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)> = d.iter().collect();
        budget.spend(2 + items.len().saturating_sub(1))?;
        let mut entries = Vec::with_capacity(items.len());
        for (k, v) in &items {
            let key = k
                .cast::<PyString>()
                .ok()
                .map(|s| string(s, 3, budget, || Error::new(Code::InvalidInputType, "dict keys must be valid UTF-8 str (lone surrogates)")))
                .transpose()?
                .ok_or_else(|| Error::new(Code::InvalidInputType, format!("dict keys must be str, not {}", type_name(k))))?;
            let val = read(v, depth + 1, budget).map_err(|e| e.at_key(&key))?;
            entries.push((key, val));
        }
        if d.len() != items.len() {
            return Err(Error::new(Code::InvalidInputType, CHANGED_DURING_READ));
        }
        // Python dict keys are unique already; from_entries only re-checks.
        return Ok(Value::Object(Object::from_entries(entries)?));
    }
    if obj.is_none() {
        budget.spend(4)?;
        return Ok(Value::Null);
    }
    // bool before int: Python's bool is an int subclass.
    if let Ok(b) = obj.cast::<PyBool>() {
        let v = b.is_true();
        budget.spend(if v { 4 } else { 5 })?;
        return Ok(Value::Bool(v));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return int(i, budget);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let items: Vec<Bound<'_, PyAny>> = l.iter().collect();
        let out = sequence(&items, depth, budget)?;
        if l.len() != items.len() {
            return Err(Error::new(Code::InvalidInputType, CHANGED_DURING_READ));
        }
        return Ok(out);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return sequence(&t.iter().collect::<Vec<_>>(), depth, budget);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        // Counted as the 0x hex string that JSON text would carry.
        budget.spend(b.as_bytes().len().saturating_mul(2).saturating_add(4))?;
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        budget.spend(b.len().saturating_mul(2).saturating_add(4))?;
        return Ok(Value::Bytes(b.to_vec()));
    }
    if obj.cast::<PyFloat>().is_ok() {
        return Err(Error::new(Code::InvalidJsonNumber, "a float is not an integer; pass integers as int or decimal str"));
    }
    Err(Error::new(Code::InvalidInputType, format!("values of type {} cannot appear in typed data", type_name(obj))))
}

fn sequence(items: &[Bound<'_, PyAny>], depth: usize, budget: &mut Budget) -> Result<Value> {
    budget.spend(2 + items.len().saturating_sub(1))?;
    items.iter().enumerate().map(|(i, v)| read(v, depth + 1, budget).map_err(|e| e.at_index(i))).collect::<Result<_>>().map(Value::Array)
}

/// A str's UTF-8 text, charged with `extra` bytes of JSON punctuation.
fn string(s: &Bound<'_, PyString>, extra: usize, budget: &mut Budget, bad: impl Fn() -> Error) -> Result<String> {
    let text = s.to_str().map_err(|_| bad())?;
    budget.spend(text.len().saturating_add(extra))?;
    Ok(text.to_owned())
}

fn int(i: &Bound<'_, PyInt>, budget: &mut Budget) -> Result<Value> {
    if let Ok(v) = i.extract::<i64>() {
        budget.spend(decimal_len(v.unsigned_abs()) + usize::from(v < 0))?;
        return Ok(Value::Int(Int::from_i64(v)));
    }
    if let Ok(v) = i.extract::<u64>() {
        budget.spend(decimal_len(v))?;
        return Ok(Value::Int(Int::from_u64(v)));
    }
    // Beyond 64 bits: go through the decimal text, but never print a huge int (Python caps
    // int->str at 4300 digits and raises past it). The methods are taken from `int` itself so
    // an int subclass cannot answer with its own `bit_length` or `__str__`.
    let py = i.py();
    let int_type = py.get_type::<PyInt>();
    let call = |name: &str| int_type.getattr(name).and_then(|m| m.call1((i,)));
    let bits: usize = call("bit_length").and_then(|b| b.extract()).unwrap_or(usize::MAX);
    let negative = int_type.getattr("__lt__").and_then(|m| m.call1((i, 0i32))).and_then(|b| b.extract::<bool>()).unwrap_or(false);
    // Digits of a b-bit number: at least floor((b - 1) * log10(2)) + 1.
    budget.spend((bits.saturating_sub(1) / 10).saturating_mul(3) + 1)?;
    if bits > 300 {
        return Ok(Value::Int(Int { negative, mag: None }));
    }
    let text = call("__repr__").map_err(|_| Error::new(Code::InvalidInputType, "int could not be printed"))?;
    let text = text.cast_into::<PyString>().map_err(|_| Error::new(Code::InvalidInputType, "int could not be printed"))?;
    let text = text.to_str().map_err(|_| Error::new(Code::InvalidInputType, "int could not be printed"))?;
    Int::from_decimal_repr(text).map(Value::Int).ok_or_else(|| Error::new(Code::InvalidInputType, "int could not be read"))
}

fn decimal_len(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Builds Python objects from a strict value (for `decode_payment_header`).
pub(crate) fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_bound_py_any(py)?,
        Value::Int(i) => int_to_py(py, i)?,
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, item) in o.iter() {
                d.set_item(k, to_py(py, item)?)?;
            }
            d.into_any()
        }
    })
}

fn int_to_py<'py>(py: Python<'py>, i: &Int) -> PyResult<Bound<'py, PyAny>> {
    let Some(mag) = i.mag else {
        // The JSON holds a number no Python int is given exactly from here (2**256 or more).
        return Err(to_pyerr(Error::new(Code::InvalidPayload, "the JSON holds an integer of 2**256 or more")));
    };
    let n = u256_to_py(py, &mag)?;
    if i.negative {
        n.call_method0("__neg__")
    } else {
        Ok(n)
    }
}

/// A U256 as a Python int.
pub(crate) fn u256_to_py<'py>(py: Python<'py>, v: &x402_verify_core::U256) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    match u128::try_from(*v) {
        Ok(small) => small.into_bound_py_any(py),
        Err(_) => py.get_type::<PyInt>().call1((format!("{v:x}"), 16)),
    }
}

/// `now` as given, or the system clock in unix seconds.
pub(crate) fn clock(now: Option<u64>) -> u64 {
    now.unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
}
