"""The request envelope of ``/verify``, ``/settle`` and ``/release``: read bounded, parsed
bounded, checked for the x402 shape ``{"x402Version", "paymentPayload", "paymentRequirements"}``.

A fault of the envelope is the caller's mistake (HTTP 400 with a JSON body naming it); what is
*inside* the payload and the requirements is the verifier's to judge (a verdict, HTTP 200).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar

try:  # 3-5x the stdlib's speed on a request body; same documents accepted (bar NaN and
    # integers past 64 bits, which no x402 envelope holds: amounts are strings)
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    dumps: Callable[[Any], bytes] = orjson.dumps
    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - orjson is in the [server] extra
    _loads = json.loads

    def dumps(doc: Any) -> bytes:
        return json.dumps(doc).encode()

    _JSON_ERRORS = (ValueError,)

T = TypeVar("T")


async def bounded(awaitable: Coroutine[Any, Any, T], seconds: float) -> T:
    """``await`` with a deadline, without the extra task ``asyncio.wait_for`` makes on 3.10
    (one per request adds up); raises ``asyncio.TimeoutError``."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class EnvelopeError(Exception):
    """A request the service refuses before verification: ``status`` (400, 401, 404, 405),
    a stable ``code`` and a message that names the problem."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code, message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


@dataclass(frozen=True)
class Envelope:
    version: int
    payload: dict[str, Any]
    requirements: dict[str, Any]


def _header(scope: MutableMapping[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(scope: MutableMapping[str, Any], receive: Receive, limit: int) -> bytes:
    """The whole body, or ``EnvelopeError`` once it passes ``limit`` bytes (a declared
    Content-Length over the bound is refused before anything is read)."""
    declared = _header(scope, b"content-length")
    if declared is not None:
        if not declared.isdigit():
            raise EnvelopeError(400, "invalid_content_length", "Content-Length is not a decimal number")
        if int(declared) > limit:
            raise EnvelopeError(400, "body_too_large", f"the body is {int(declared)} bytes; at most {limit} are read")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise EnvelopeError(400, "client_disconnected", "the client went away before the body was read")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise EnvelopeError(400, "body_too_large", f"the body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


# JSON strings (so brackets inside them do not count) and the brackets themselves.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _nesting_within(body: bytes, limit: int) -> bool:
    """True when no array or object nests deeper than ``limit``. Checked on the bytes before
    parsing: the stdlib parser recurses on the C stack as deep as the recursion limit allows,
    and libraries raise that limit (py_ecc, imported by eth-account, sets 100,000), which turns
    a deep document into a crash instead of an error. A body with few brackets is not scanned."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return True
    depth = 0
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token == b"[" or token == b"{":
            depth += 1
            if depth > limit:
                return False
        elif token == b"]" or token == b"}":
            depth -= 1
    return True


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def parse(scope: MutableMapping[str, Any], body: bytes, max_depth: int) -> Envelope:
    """Checks the content type, parses the JSON (bounded nesting), and the envelope's shape."""
    if not _is_json(_header(scope, b"content-type")):
        raise EnvelopeError(400, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(400, "invalid_json", f"the body is not UTF-8: {exc}"[:300]) from None
    if not _nesting_within(body, max_depth):
        raise EnvelopeError(400, "json_too_deep", f"the JSON nests deeper than {max_depth} levels")
    try:
        doc = _loads(body)
    except RecursionError:  # only if the scan above were wrong; never a crash or a 500
        raise EnvelopeError(400, "json_too_deep", f"the JSON nests deeper than {max_depth} levels") from None
    except _JSON_ERRORS as exc:
        raise EnvelopeError(400, "invalid_json", f"the body is not JSON: {exc}"[:300]) from None
    if not isinstance(doc, dict):
        raise EnvelopeError(400, "invalid_request", f"the body is a JSON {_kind(doc)}, not an object")
    version = doc.get("x402Version")
    if "x402Version" not in doc:
        raise EnvelopeError(400, "missing_field", "x402Version is missing")
    if type(version) is not int or version not in (1, 2):
        raise EnvelopeError(400, "invalid_x402_version", f"x402Version {json.dumps(version)[:40]} is not 1 or 2")
    parts = []
    for name in ("paymentPayload", "paymentRequirements"):
        if name not in doc:
            raise EnvelopeError(400, "missing_field", f"{name} is missing")
        part = doc[name]
        if not isinstance(part, dict):
            raise EnvelopeError(400, "invalid_value_type", f"{name} is a JSON {_kind(part)}, not an object")
        parts.append(part)
    return Envelope(version, parts[0], parts[1])


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else type(value).__name__
