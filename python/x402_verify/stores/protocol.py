"""What every nonce store is (``NonceStore``), and what the stores share: the refusal texts
(the core's ``StoreRefusal`` catalogue), the log, the argument helpers."""

from __future__ import annotations

import abc
import logging
import math
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, TypeVar

from x402_verify._core import EXPOSURE_OUTCOME, store_refusals
from x402_verify.errors import NonceStoreError, ReservationError

__all__ = ["EXPOSED", "NonceStore"]

log = logging.getLogger("x402_verify.stores")

# The texts come from the core's catalogue (StoreRefusal, reason codes): fixed, safe to show a
# client; store internals (paths, hosts, exception details) go to the log only.
_REFUSALS: dict[str, tuple[str, str]] = store_refusals()
_LOGGED_CHARS = 300
_CLOSED = "the nonce store is closed"


def _refused(name: str) -> ReservationError:
    code, message = _REFUSALS[name]
    return ReservationError(code, message)


def _brief(exc: BaseException) -> str:
    """An exception for the log: its class and the start of its text (never unbounded)."""
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not hide the failure it reports
        text = "?"
    return f"{type(exc).__name__}: {text[:_LOGGED_CHARS]}"


_S = TypeVar("_S", bound="_Closing")


class _Closing(abc.ABC):
    """``with store:`` closes the store on the way out."""

    @abc.abstractmethod
    def close(self) -> None:
        """Refuses every later call and frees what the store holds."""

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class NonceStore(Protocol):
    """What the verifier needs from a store."""

    def reserve_many(
        self,
        keys: Sequence[bytes],
        valid_until: Sequence[int],
        owners: Sequence[str],
        caps: Sequence[int | None] | None = None,
        *,
        now: int | None = None,
    ) -> list[bool | None]: ...

    def settle(self, key: bytes, owner: str, *, now: int | None = None) -> int: ...

    def release(self, key: bytes, owner: str, *, now: int | None = None) -> None: ...

    def charge(self, key: bytes, owner: str, amount: int, *, now: int | None = None) -> int: ...


#: A ``reserve_exposed`` outcome: the payer's capacity is already promised (the core's name).
EXPOSED = EXPOSURE_OUTCOME


def _timeout(value: Any, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, not {type(value).__name__}")
    t = float(value)
    if not math.isfinite(t) or t < 0 or (positive and t == 0) or t > 3600:
        raise ValueError(f"timeout must be a number of seconds in {'(0' if positive else '[0'}, 3600]")
    return t


def _stored_int(text: Any, what: str) -> int:
    """An amount this store wrote (decimal digits); anything else is a store fault."""
    if isinstance(text, str) and 0 < len(text) <= 78 and text.isascii() and text.isdigit():
        return int(text)
    raise NonceStoreError(f"the store holds an unreadable {what}")
