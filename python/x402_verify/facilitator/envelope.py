"""The request envelope of ``/verify``, ``/settle`` and ``/release``: read bounded, parsed
bounded, checked for the x402 shape ``{"x402Version", "paymentPayload", "paymentRequirements"}``.

A fault of the envelope is the caller's mistake (HTTP 400 with a JSON body naming it); what is
*inside* the payload and the requirements is the verifier's to judge (a verdict, HTTP 200).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

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


def _depth_within(value: Any, limit: int) -> bool:
    """True when no container nests deeper than ``limit`` (iterative: a hostile document
    cannot exhaust the stack here)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))
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
        doc = json.loads(body)
    except RecursionError:
        raise EnvelopeError(400, "json_too_deep", f"the JSON nests deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(400, "invalid_json", f"the body is not JSON: {exc}"[:300]) from None
    if not isinstance(doc, dict):
        raise EnvelopeError(400, "invalid_request", f"the body is a JSON {type(doc).__name__}, not an object")
    if not _depth_within(doc, max_depth):
        raise EnvelopeError(400, "json_too_deep", f"the JSON nests deeper than {max_depth} levels")
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
