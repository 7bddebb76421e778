//! Copying Python inputs into owned Rust values while the GIL is held, so the work that
//! follows can run with the GIL released.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use x402_verify_core::json::{Int, Object, Value, MAX_DEPTH};
use x402_verify_core::{Code, Error, Result};

/// Most nodes a Python object graph may have; bounds work the same way `max_bytes` bounds text.
const MAX_NODES: usize = 1 << 20;

/// Typed data as handed in: JSON text (parsed later, without the GIL) or an already-built tree.
pub enum Doc {
    Json(Vec<u8>),
    Tree(Value),
}

/// Reads a typed-data argument: a dict, JSON `str` or JSON `bytes`.
pub fn doc(obj: &Bound<'_, PyAny>) -> Result<Doc> {
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str().map_err(|_| Error::new(Code::InvalidJson, "the string is not valid UTF-8 (lone surrogates)"))?;
        return Ok(Doc::Json(text.as_bytes().to_vec()));
    }
    if let Some(b) = bytes_like(obj) {
        return Ok(Doc::Json(b));
    }
    if obj.cast::<PyDict>().is_ok() {
        let mut budget = MAX_NODES;
        return Ok(Doc::Tree(value(obj, 0, &mut budget)?));
    }
    Err(Error::new(Code::InvalidInputType, format!("typed data must be a dict, str or bytes, not {}", type_name(obj))))
}

/// Reads signature or digest bytes: `bytes`/`bytearray`, or `0x` hex text.
pub fn byte_arg(obj: &Bound<'_, PyAny>, code: Code, what: &str) -> Result<Vec<u8>> {
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

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// Converts a Python object tree into the core's strict value model.
pub fn value(obj: &Bound<'_, PyAny>, depth: usize, budget: &mut usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(Error::new(Code::LimitExceeded, format!("nesting deeper than {MAX_DEPTH}")));
    }
    if *budget == 0 {
        return Err(Error::new(Code::LimitExceeded, format!("more than {MAX_NODES} values")));
    }
    *budget -= 1;
    // Most common kinds first: typed data is mostly strings and objects.
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str().map_err(|_| Error::new(Code::InvalidValueType, "string is not valid UTF-8 (lone surrogates)"))?;
        return Ok(Value::Str(text.to_owned()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut entries = Vec::with_capacity(d.len());
        // No Python code runs while the dict is read (keys are exact reads of str data, ints are
        // read through int's own methods), so it cannot change size under the iterator.
        for (k, v) in d.iter() {
            let key = k
                .cast::<PyString>()
                .ok()
                .and_then(|s| s.to_str().ok().map(str::to_owned))
                .ok_or_else(|| Error::new(Code::InvalidInputType, format!("dict keys must be str, not {}", type_name(&k))))?;
            let val = value(&v, depth + 1, budget).map_err(|e| e.at_key(&key))?;
            entries.push((key, val));
        }
        // Python dict keys are unique already; from_entries only re-checks.
        return Ok(Value::Object(Object::from_entries(entries)?));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: Python's bool is an int subclass.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return int(i);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l.iter().enumerate().map(|(i, v)| value(&v, depth + 1, budget).map_err(|e| e.at_index(i))).collect::<Result<_>>().map(Value::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t.iter().enumerate().map(|(i, v)| value(&v, depth + 1, budget).map_err(|e| e.at_index(i))).collect::<Result<_>>().map(Value::Array);
    }
    if let Some(b) = bytes_like(obj) {
        return Ok(Value::Bytes(b));
    }
    if obj.cast::<PyFloat>().is_ok() {
        return Err(Error::new(Code::InvalidJsonNumber, "a float is not an integer; pass integers as int or decimal str"));
    }
    Err(Error::new(Code::InvalidInputType, format!("values of type {} cannot appear in typed data", type_name(obj))))
}

fn int(i: &Bound<'_, PyInt>) -> Result<Value> {
    if let Ok(v) = i.extract::<i64>() {
        return Ok(Value::Int(Int::from_i64(v)));
    }
    if let Ok(v) = i.extract::<u64>() {
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
    if bits > 300 {
        return Ok(Value::Int(Int { negative, mag: None }));
    }
    let text = call("__repr__").map_err(|_| Error::new(Code::InvalidInputType, "int could not be printed"))?;
    let text = text.cast_into::<PyString>().map_err(|_| Error::new(Code::InvalidInputType, "int could not be printed"))?;
    let text = text.to_str().map_err(|_| Error::new(Code::InvalidInputType, "int could not be printed"))?;
    Int::from_decimal_repr(text).map(Value::Int).ok_or_else(|| Error::new(Code::InvalidInputType, "int could not be read"))
}

/// Builds Python objects from a strict value (for `decode_payment_header`).
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
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
        return Err(pyo3::exceptions::PyValueError::new_err("integer beyond 256 bits"));
    };
    let n = u256_to_py(py, &mag)?;
    if i.negative {
        n.call_method0("__neg__")
    } else {
        Ok(n)
    }
}

/// A U256 as a Python int.
pub fn u256_to_py<'py>(py: Python<'py>, v: &x402_verify_core::U256) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    match u128::try_from(*v) {
        Ok(small) => small.into_bound_py_any(py),
        Err(_) => py.get_type::<PyInt>().call1((format!("{v:x}"), 16)),
    }
}

/// `now` as given, or the system clock in unix seconds.
pub fn clock(now: Option<u64>) -> u64 {
    now.unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
}
