"""The little ABI encoding the chain checks need (static words, `bytes`), bounded on decode.

Kept here rather than pulled from eth-abi: the package depends on nothing, and every call it
makes has a fixed, known shape.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["selector_call", "word", "address_word", "encode", "decode_uint", "decode_bytes_tuple", "AbiError"]

MAX_DECODE = 64 * 1024


class AbiError(ValueError):
    """Returned data or a wrapped signature that is not the ABI encoding expected."""


def word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def address_word(address: str | bytes) -> bytes:
    raw = address if isinstance(address, bytes) else bytes.fromhex(address[2:])
    if len(raw) != 20:
        raise ValueError(f"not an address: {address!r}")
    return b"\x00" * 12 + raw


def encode(args: Sequence[bytes | int | str]) -> bytes:
    """Head/tail encoding of a flat argument list: ``int`` is a uint256, ``str`` an address,
    ``bytes`` of length 32 marked by the caller as static must be passed as ``int``; plain
    ``bytes`` are the dynamic ``bytes`` type."""
    head: list[bytes] = []
    tail = b""
    size = 32 * len(args)
    for a in args:
        if isinstance(a, int):
            head.append(word(a))
        elif isinstance(a, str):
            head.append(address_word(a))
        else:
            head.append(word(size + len(tail)))
            tail += word(len(a)) + a + b"\x00" * (-len(a) % 32)
    return b"".join(head) + tail


def selector_call(selector: bytes, args: Sequence[bytes | int | str]) -> bytes:
    return selector + encode(args)


def decode_uint(data: bytes) -> int:
    """A single static word (uint256 / bool / bytes32)."""
    if len(data) != 32:
        raise AbiError(f"expected one 32-byte word, got {len(data)} bytes")
    return int.from_bytes(data, "big")


def _dynamic(data: bytes, at: int) -> bytes:
    if at + 32 > len(data):
        raise AbiError("offset past the end")
    offset = int.from_bytes(data[at : at + 32], "big")
    if offset % 32 or offset + 32 > len(data):
        raise AbiError("bad offset")
    length = int.from_bytes(data[offset : offset + 32], "big")
    if offset + 32 + length > len(data):
        raise AbiError("length past the end")
    return data[offset + 32 : offset + 32 + length]


def decode_bytes_tuple(data: bytes) -> tuple[bytes, bytes, bytes]:
    """``abi.decode(data, (address, bytes, bytes))``: the ERC-6492 wrapper's body."""
    if len(data) > MAX_DECODE:
        raise AbiError("too long")
    if len(data) < 96:
        raise AbiError("too short")
    head = data[:32]
    if any(head[:12]):
        raise AbiError("address word has high bytes set")
    return head[12:], _dynamic(data, 32), _dynamic(data, 64)
