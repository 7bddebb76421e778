"""The x402 SDK's chain access, stubbed (see x402_verify/_sdk_stub.py, where it lives so that
``x402-verify bench`` can time the SDK too). Shared by the SDK differential
(tests/test_x402_differential.py) and the benchmarks."""

from x402_verify._sdk_stub import FAC, U256_MAX, StubChainSigner

__all__ = ["FAC", "U256_MAX", "StubChainSigner"]
