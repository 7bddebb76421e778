"""A small program written against the public API with full annotations.

``tests/test_typing.py`` runs ``mypy --strict`` on it (the stubs must let correct code through
without casts, and, through the ``type: ignore`` lines in ``_misuse``, must refuse wrong code:
under ``--strict`` an ignore that is not needed is itself an error) and runs it as a program.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import x402_verify as xv
from payments import ANVIL0, SPEC_PERMIT2_DIGEST, SPEC_PERMIT2_SIG, spec_permit2_doc
from x402_verify import (
    SignatureError,
    SignaturePolicy,
    TypedDataError,
    X402VerifyError,
    error_codes,
    hash_typed_data,
    recover_hash,
    recover_hash_batch,
    recover_typed_data,
    recover_typed_data_batch,
)

# x402 exact Permit2 vector (x402-permit2.md §7.5), signed by anvil key #0 (from the tests'
# payment builder, tests/payments.py).
PERMIT2: Final[dict[str, Any]] = spec_permit2_doc()
SIGNATURE: Final[str] = "0x" + SPEC_PERMIT2_SIG.hex()
SIGNER: Final[str] = ANVIL0
DIGEST: Final[bytes] = SPEC_PERMIT2_DIGEST

Document = dict[str, Any] | str | bytes


def digest_of(document: Document, *, limit: int = xv.DEFAULT_MAX_TYPED_DATA_BYTES) -> bytes:
    return hash_typed_data(document, max_bytes=limit)


def signer_or_reason(document: Document, signature: str | bytes, policy: SignaturePolicy | None = None) -> str:
    """The signer, or why there is none."""
    try:
        return recover_typed_data(document, signature, policy=policy)
    except TypedDataError as e:
        where: str = e.path or "<document>"
        return f"typed data refused: {e.code} at {where}"
    except SignatureError as e:
        return f"signature refused: {e.code}: {e.message}"


def digest_pairs(count: int) -> Iterator[tuple[bytes, bytes]]:
    signature = bytes.fromhex(SIGNATURE[2:])
    for i in range(count):
        yield (DIGEST if i % 2 == 0 else DIGEST[:31]), signature


def summarize(results: list[str | X402VerifyError]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        key = result if isinstance(result, str) else f"{type(result).__name__}:{result.code}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def catalogue() -> dict[str, tuple[str, str]]:
    return {code: (kind, description) for code, kind, description in error_codes()}


def strict_policy() -> SignaturePolicy:
    policy = SignaturePolicy(allow_compact=False, require_low_s=True, allow_v01=False)
    assert policy == SignaturePolicy.eip3009()
    lenient: SignaturePolicy = SignaturePolicy.permit2()
    flags: tuple[bool, bool, bool] = (lenient.allow_compact, lenient.require_low_s, lenient.allow_v01)
    assert flags == (True, False, False)
    assert len({policy, lenient, SignaturePolicy()}) == 2
    return policy


def _misuse() -> None:
    """Never called: each line is wrong, and the stubs must say so."""
    hash_typed_data(42)  # type: ignore[arg-type]
    recover_hash(DIGEST, SIGNATURE, policy="permit2")  # type: ignore[arg-type]
    SignaturePolicy(True)  # type: ignore[call-arg]
    recover_hash_batch([(DIGEST, SIGNATURE)], threads="2")  # type: ignore[arg-type]
    address: bytes = recover_hash(DIGEST, SIGNATURE)  # type: ignore[assignment]
    first: str = recover_typed_data_batch([(PERMIT2, SIGNATURE)])[0]  # type: ignore[assignment]
    del address, first


def main() -> int:
    assert digest_of(PERMIT2) == DIGEST
    assert digest_of(json.dumps(PERMIT2)) == digest_of(json.dumps(PERMIT2).encode())
    assert signer_or_reason(PERMIT2, SIGNATURE) == SIGNER
    assert recover_hash(DIGEST, bytes.fromhex(SIGNATURE[2:]), policy=strict_policy()) == SIGNER

    bad = {**PERMIT2, "message": {**PERMIT2["message"], "nonce": "0x1"}}
    print(signer_or_reason(bad, SIGNATURE))
    print(signer_or_reason(PERMIT2, SIGNATURE[:-2]))

    batch: list[str | X402VerifyError] = recover_typed_data_batch(
        [(PERMIT2, SIGNATURE), (bad, SIGNATURE), (json.dumps(PERMIT2), bytearray.fromhex(SIGNATURE[2:]))],
        policy=SignaturePolicy.permit2(),
        threads=2,
        max_bytes=4096,
    )
    print(summarize(batch))
    hashed = recover_hash_batch(digest_pairs(4), threads=None)
    assert summarize(hashed) == {SIGNER: 2, "SignatureError:invalid_digest": 2}

    codes = catalogue()
    assert codes["non_canonical_number"][0] == "typed_data"
    print(f"{len(codes)} error codes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
