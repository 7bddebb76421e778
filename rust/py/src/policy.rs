//! `SignaturePolicy`: the Python face of the core's policy struct.

use pyo3::prelude::*;
use x402_verify_core::SignaturePolicy as CorePolicy;

/// Which signature encodings are accepted. Defaults are USDC's (EIP-3009) rules.
#[pyclass(frozen, eq, hash, module = "x402_verify._core", name = "SignaturePolicy")]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignaturePolicy(pub CorePolicy);

#[pymethods]
impl SignaturePolicy {
    #[new]
    #[pyo3(signature = (*, allow_compact = false, require_low_s = true, allow_v01 = false))]
    fn new(allow_compact: bool, require_low_s: bool, allow_v01: bool) -> Self {
        SignaturePolicy(CorePolicy { allow_compact, require_low_s, allow_v01 })
    }

    /// USDC FiatToken rules: 65 bytes, v 27/28, low s.
    #[staticmethod]
    fn eip3009() -> Self {
        SignaturePolicy(CorePolicy::eip3009())
    }

    /// Permit2 rules: 65 bytes with v 27/28, or 64-byte EIP-2098; any s.
    #[staticmethod]
    fn permit2() -> Self {
        SignaturePolicy(CorePolicy::permit2())
    }

    #[getter]
    fn allow_compact(&self) -> bool {
        self.0.allow_compact
    }

    #[getter]
    fn require_low_s(&self) -> bool {
        self.0.require_low_s
    }

    #[getter]
    fn allow_v01(&self) -> bool {
        self.0.allow_v01
    }

    fn __repr__(&self) -> String {
        let b = |v: bool| if v { "True" } else { "False" };
        format!("SignaturePolicy(allow_compact={}, require_low_s={}, allow_v01={})", b(self.0.allow_compact), b(self.0.require_low_s), b(self.0.allow_v01))
    }
}

pub fn resolve(policy: Option<&SignaturePolicy>) -> CorePolicy {
    policy.map(|p| p.0).unwrap_or_default()
}
