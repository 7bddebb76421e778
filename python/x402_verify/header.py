"""x402 payment headers: base64 of compact UTF-8 JSON (`X-PAYMENT` v1, `PAYMENT-SIGNATURE` v2)."""

from __future__ import annotations

import base64
import json
from typing import Any

from x402_verify._core import decode_payment_header as _decode

__all__ = ["decode_payment_header", "encode_payment_header"]


def decode_payment_header(value: str | bytes) -> dict[str, Any]:
    """Decodes a payment header strictly (standard base64, JSON without duplicate keys, floats
    or NaN, at most ``DEFAULT_MAX_PAYLOAD_BYTES``).

    Raises:
        PaymentError / TypedDataError: with a stable ``code`` (``invalid_base64``,
            ``invalid_json``, ``duplicate_key``, ``payload_too_large``, ``invalid_payload``
            for text that is not UTF-8 or JSON that is not an object ...).
        TypeError: ``value`` is neither str nor bytes.
    """
    decoded = _decode(value)
    if not isinstance(decoded, dict):
        from x402_verify.errors import PaymentError

        raise PaymentError("invalid_payload", "a payment header holds a JSON object")
    return decoded


def encode_payment_header(payload: dict[str, Any]) -> str:
    """Encodes a payment payload dict as a header value (compact JSON, standard base64).

    Raises:
        TypeError: ``payload`` is not a dict, or holds a value JSON cannot represent.
        ValueError: it holds NaN / infinity, a circular reference, text that is not valid
            UTF-8 (lone surrogates), or is nested too deeply to print.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"a payment payload is a dict, not {type(payload).__name__}")
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the payload holds text that is not valid UTF-8 (lone surrogates)") from None
    except RecursionError:
        raise ValueError("the payload is nested too deeply to encode") from None
    return base64.b64encode(data).decode("ascii")
