"""The x402 SDK and eth-account, timed on the bench's own items (``x402-verify bench``'s SDK column).

Imported only when both are installed. The bundled samples are valid at ``_samples.VALID_AT``,
which lies in the past; the SDK reads the wall clock, so while it runs here its exact-scheme
modules see a clock frozen at that instant (the same ``now`` ours is given).
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from x402.mechanisms.evm.exact import facilitator as sdk_exact_facilitator
from x402.mechanisms.evm.exact import permit2_utils as sdk_permit2_utils
from x402.schemas import PaymentPayload, PaymentRequirements

from x402_verify._sdk_stub import StubChainSigner
from x402_verify.header import decode_payment_header
from x402_verify.verifier import EXACT_PERMIT2_PROXY

PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
CHUNK = 50  # items between progress updates

Progress = Callable[[int], None]


@contextmanager
def _frozen_clock(now: int) -> Iterator[None]:
    modules = (sdk_exact_facilitator, sdk_permit2_utils)
    saved = [m.time for m in modules]
    frozen = types.SimpleNamespace(time=lambda: float(now))
    try:
        for m in modules:
            m.time = frozen  # type: ignore[attr-defined]
        yield
    finally:
        for m, t in zip(modules, saved):
            m.time = t  # type: ignore[attr-defined]


def recover(items: Sequence[tuple[str, str]], expected: Sequence[str], progress: Progress) -> tuple[int, float]:
    """eth-account's typed-data recovery of (JSON text, signature) items: (correct, seconds)."""
    correct, start = 0, time.perf_counter()
    for lo in range(0, len(items), CHUNK):
        for (text, sig), want in zip(items[lo : lo + CHUNK], expected[lo : lo + CHUNK]):
            correct += Account.recover_message(encode_typed_data(full_message=json.loads(text)), signature=sig) == want
        progress(len(items[lo : lo + CHUNK]))
    return correct, time.perf_counter() - start


def verify(items: Sequence[tuple[str, dict[str, Any]]], now: int, progress: Progress) -> tuple[int, float]:
    """The SDK's exact-scheme facilitator verify of (header, requirements) items over a stub
    chain, each payload and requirements validated into the SDK's models per item as a
    facilitator must: (valid, seconds). The bundled headers abbreviate ``accepted`` (scheme and
    network), which the SDK's model refuses, so each payload gets the full requirements there,
    as the SDK's client sends them; decoding is done before the clock starts."""
    contracts = {r["asset"] for _, r in items} | {PERMIT2, EXACT_PERMIT2_PROXY}
    scheme = sdk_exact_facilitator.ExactEvmScheme(StubChainSigner(sorted(contracts)))
    payloads = [{**decode_payment_header(header), "accepted": req} for header, req in items]
    valid = 0
    with _frozen_clock(now):
        start = time.perf_counter()
        for lo in range(0, len(items), CHUNK):
            for payload, (_, req) in zip(payloads[lo : lo + CHUNK], items[lo : lo + CHUNK]):
                model = PaymentPayload.model_validate(payload)
                valid += scheme.verify(model, PaymentRequirements.model_validate(req)).is_valid
            progress(len(items[lo : lo + CHUNK]))
        seconds = time.perf_counter() - start
    return valid, seconds
