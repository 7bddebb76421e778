"""Exception classes. Defined here, in Python, so users catch ordinary Python classes; the
compiled core imports and raises them (and places them, unraised, in batch results)."""

from __future__ import annotations

__all__ = ["X402VerifyError", "TypedDataError", "SignatureError", "PaymentError", "NonceStoreError", "ReservationError"]


class X402VerifyError(ValueError):
    """Base of every error the library reports about its input.

    Attributes:
        code: a stable snake_case code from :func:`x402_verify.error_codes`.
        message: a human-readable explanation (never secret material).
        path: where in a typed-data document the problem is (``message.permitted.amount``),
            or ``None``.
    """

    code: str
    message: str
    path: str | None

    def __init__(self, code: str, message: str, path: str | None = None) -> None:
        super().__init__(code, message, path)
        self.code = code
        self.message = message
        self.path = path

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.code}{where}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, {self.path!r})"

    # Batch results hold these as values, so they compare like values.
    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, X402VerifyError)
        return (self.code, self.message, self.path) == (other.code, other.message, other.path)

    def __hash__(self) -> int:
        return hash((type(self), self.code, self.message, self.path))


class TypedDataError(X402VerifyError):
    """The input is not acceptable typed data (or JSON, or a value of its declared type)."""


class SignatureError(X402VerifyError):
    """The signature or digest bytes are unusable under the signature policy."""


class PaymentError(X402VerifyError):
    """A payment header or payload could not be decoded (raised only by helpers such as
    :func:`x402_verify.decode_payment_header`; ``verify`` reports bad payments as data)."""


class NonceStoreError(Exception):
    """A nonce store could not answer (unreachable, timing out, full). Verification turns it
    into the ``nonce_store_unavailable`` verdict; it surfaces from ``settle``/``release``."""


class ReservationError(X402VerifyError):
    """A settle / release / charge that the reservation's state refuses: ``code`` is
    ``reservation_not_found``, ``reservation_not_owner``, ``reservation_closed``,
    ``reservation_not_upto`` or ``invalid_upto_evm_payload_settlement_exceeds_amount``. Any
    other replay code the core raises is this class too."""
