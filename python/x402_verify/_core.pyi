"""Type stubs of the compiled core. Hand-written; `mypy.stubtest` keeps them honest."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, final

from x402_verify.errors import X402VerifyError

__all__ = [
    "SignaturePolicy",
    "PaymentAuthorization",
    "VerifyResponse",
    "MemoryNonceStore",
    "Requirements",
    "VerifierCore",
    "ReservationPlan",
    "store_refusals",
    "store_now_arg",
    "store_key_arg",
    "store_owner_arg",
    "store_amount_arg",
    "store_margin_arg",
    "store_batch_args",
    "hash_typed_data",
    "recover_typed_data",
    "recover_hash",
    "recover_typed_data_batch",
    "recover_hash_batch",
    "error_codes",
    "decode_payment_header",
    "read_envelope",
    "caip2_chain_id",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_PAYER_KEY_CACHE",
    "DEFAULT_VERDICT_CACHE",
    "DEFAULT_MAX_TYPED_DATA_BYTES",
    "DEFAULT_TIME_BUFFER",
    "DEFAULT_CLOCK_SKEW_SECONDS",
    "EXACT_PERMIT2_PROXY",
    "UPTO_PERMIT2_PROXY",
    "V1_NETWORK_NAMES",
    "REPLAY_REASONS",
    "EXPOSURE_OUTCOME",
    "MAX_IDEMPOTENCY_ID_BYTES",
    "VECTOR_SQUARE_ROOTS",
]

# Stub-only aliases: private, so stubtest does not look for them in the compiled module.
_TypedData = dict[str, Any] | str | bytes | bytearray
"""A full EIP-712 document (`types`, `primaryType`, `domain`, `message`): a dict or JSON text."""

_BytesLike = bytes | bytearray | str
"""Raw bytes, or `0x`-prefixed hex text."""

_Json = dict[str, Any] | str | bytes
"""A payment payload or requirements object: a dict, or JSON / header text."""

DEFAULT_MAX_TYPED_DATA_BYTES: Final[int]
DEFAULT_MAX_PAYLOAD_BYTES: Final[int]
DEFAULT_PAYER_KEY_CACHE: Final[int]
DEFAULT_VERDICT_CACHE: Final[int]

# The protocol facts, each defined once in the core (rust/core/src/x402) and re-exported by
# the package; nothing in Python writes them out again.
DEFAULT_TIME_BUFFER: Final[int]
"""Seconds a validBefore / deadline must lie ahead of now (the x402 SDK's buffer: 6, about three blocks)."""
DEFAULT_CLOCK_SKEW_SECONDS: Final[int]
"""Default allowance, in seconds, for a client clock running ahead of the verifier's: a
validBefore / deadline later than now + the requirements' ``maxTimeoutSeconds`` + this is
refused (``authorization_window_too_long``). The x402 SDK clients sign validAfter = their
now - 600, so 600 s is the skew their payments tolerate anyway."""
EXACT_PERMIT2_PROXY: Final[str]
"""x402's ``x402ExactPermit2Proxy`` (EIP-55)."""
UPTO_PERMIT2_PROXY: Final[str]
"""x402's ``x402UptoPermit2Proxy`` (EIP-55)."""
V1_NETWORK_NAMES: Final[Mapping[str, int]]
"""x402 v1 network names and their chain ids (the TypeScript SDK's table), read-only. Extend
per verifier with ``network_names``."""
REPLAY_REASONS: Final[Mapping[str, str]]
"""The invalid reason of a payment whose nonce is already reserved or settled, by nonce space
(``eip3009``, ``permit2``)."""
EXPOSURE_OUTCOME: Final[str]
"""What a store with an exposure ledger answers for a payment the payer's capacity does not cover."""
MAX_IDEMPOTENCY_ID_BYTES: Final[int]
"""The longest idempotency id (UTF-8 bytes)."""
VECTOR_SQUARE_ROOTS: Final[bool]
"""True when this CPU lifts batch-verified signatures' R with the AVX-512 IFMA square roots (each
checked by libsecp256k1; a matter of speed only)."""

def caip2_chain_id(network: str) -> int | None:
    """The chain id of a CAIP-2 ``eip155:<chainId>`` network (at most 19 decimal digits, no sign,
    no leading zero, not 0), else None.

    Raises:
        TypeError: ``network`` is not a str.
        ValueError: it is not valid UTF-8 text (lone surrogates).
    """

@final
class SignaturePolicy:
    """Which signature encodings are accepted.

    The default is the strictest settling contract's rule set (USDC / EIP-3009): 65-byte
    ``r || s || v`` with v 27 or 28 and s <= n/2. r and s must lie in [1, n-1] under every policy.
    """

    def __new__(cls, *, allow_compact: bool = False, require_low_s: bool = True, allow_v01: bool = False) -> SignaturePolicy: ...
    @staticmethod
    def eip3009() -> SignaturePolicy:
        """USDC FiatToken: 65 bytes, v 27/28, low s."""
    @staticmethod
    def permit2() -> SignaturePolicy:
        """Permit2: 65 bytes with v 27/28, or 64-byte EIP-2098; any s."""
    @property
    def allow_compact(self) -> bool: ...
    @property
    def require_low_s(self) -> bool: ...
    @property
    def allow_v01(self) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def hash_typed_data(typed_data: _TypedData, *, max_bytes: int = ...) -> bytes:
    """The 32-byte EIP-712 signing digest of a typed-data document.

    Integers may be ints, JSON literals of any size, decimal strings or ``0x`` hex strings
    (docs/reason-codes.md). ``max_bytes`` bounds JSON text, and a dict as the compact JSON it
    stands for.

    Raises:
        TypedDataError: the document is malformed, non-canonical or over ``max_bytes``.
        TypeError: ``typed_data`` is not a dict, str or bytes; ``max_bytes`` is not an int.
        ValueError: ``max_bytes`` is negative or not below 2**64.
    """

def recover_typed_data(
    typed_data: _TypedData, signature: _BytesLike, *, policy: SignaturePolicy | None = None, max_bytes: int = ...
) -> str:
    """The EIP-55 checksummed address that signed ``typed_data``.

    Raises:
        TypedDataError: as :func:`hash_typed_data`.
        SignatureError: the signature breaks ``policy`` or recovers no key.
    """

def recover_hash(digest: _BytesLike, signature: _BytesLike, *, policy: SignaturePolicy | None = None) -> str:
    """The EIP-55 checksummed address that signed a 32-byte digest.

    Only for digests you computed yourself: for a chosen digest anyone can craft a signature
    that recovers to an arbitrary address.
    """

def recover_typed_data_batch(
    items: Iterable[tuple[_TypedData, _BytesLike]],
    *,
    policy: SignaturePolicy | None = None,
    threads: int | None = None,
    max_bytes: int = ...,
) -> list[str | X402VerifyError]:
    """:func:`recover_typed_data` over many pairs, in order, on ``threads`` threads (default:
    every core; 1: the calling thread) with the GIL released. A failed item yields its error
    object in place; it never fails the batch."""

def recover_hash_batch(
    items: Iterable[tuple[_BytesLike, _BytesLike]],
    *,
    policy: SignaturePolicy | None = None,
    threads: int | None = None,
) -> list[str | X402VerifyError]:
    """:func:`recover_hash` over many pairs; as :func:`recover_typed_data_batch`."""

def error_codes() -> list[tuple[str, str, str]]:
    """Every stable error code as ``(code, kind, description)``."""

def read_envelope(body: bytes, max_depth: int) -> tuple[int, bytes, bytes] | tuple[str, str]:
    """A facilitator request body split into its members without building them:
    ``(x402Version, paymentPayload, paymentRequirements)`` with the members as JSON text, or
    ``(code, message)`` when the body is no envelope (not UTF-8 JSON, a key twice, deeper than
    ``max_depth``, ``x402Version`` not the literal 1 or 2, a member missing or not an object)."""

def decode_payment_header(value: str | bytes, *, max_bytes: int = ...) -> Any:
    """The JSON value of an X-PAYMENT header (base64 JSON, or bare JSON text).

    Raises:
        PaymentError / TypedDataError: the header is not base64 of strict JSON, is over
            ``max_bytes``, or is not valid UTF-8 text (``invalid_payload``).
        TypeError: ``value`` is neither str nor bytes.
    """

@final
class Requirements:
    """Compiled x402 PaymentRequirements: read and checked once (the x402 SDK's v2 schema when
    they carry ``amount``, v1 when ``maxAmountRequired``), immutable, reusable by any number
    of ``verify`` / ``verify_batch`` calls.

    Raises:
        PaymentError: ``invalid_payment_requirements``, naming the member at fault.
        TypeError: ``requirements`` is not a dict, str, bytes or ``Requirements``.
    """

    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __new__(cls, requirements: _Req, *, max_bytes: int = ...) -> Requirements: ...
    @property
    def x402_version(self) -> int:
        """1 (``maxAmountRequired``) or 2 (``amount``): the schema they were read by."""
    @property
    def scheme(self) -> str: ...
    @property
    def network(self) -> str: ...
    @property
    def amount(self) -> int:
        """``amount`` (v2) or ``maxAmountRequired`` (v1)."""
    @property
    def asset(self) -> str: ...
    @property
    def pay_to(self) -> str: ...
    @property
    def max_timeout_seconds(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...

_Req = Requirements | dict[str, Any] | str | bytes
"""Payment requirements: compiled, a dict, or JSON text."""

@final
class PaymentAuthorization:
    """The signed terms, for the caller's accounting."""

    @property
    def kind(self) -> str:
        """``eip3009`` or ``permit2``."""
    @property
    def payer(self) -> str: ...
    @property
    def pay_to(self) -> str:
        """The recipient (``to``, or ``witness.to``)."""
    @property
    def amount(self) -> int:
        """The signed amount: ``value``, or Permit2's ``permitted.amount`` (upto: the maximum)."""
    @property
    def nonce(self) -> int:
        """The nonce as an int (EIP-3009's bytes32 read big-endian)."""
    @property
    def valid_after(self) -> int: ...
    @property
    def valid_before(self) -> int:
        """``validBefore`` (EIP-3009) or ``deadline`` (Permit2)."""
    @property
    def token(self) -> str | None:
        """Permit2's ``permitted.token``; None for EIP-3009."""
    @property
    def spender(self) -> str | None: ...
    @property
    def facilitator(self) -> str | None:
        """The upto witness's facilitator."""

@final
class VerifyResponse:
    """The verdict on one payment."""

    __hash__: ClassVar[None]  # type: ignore[assignment]
    @property
    def is_valid(self) -> bool: ...
    @property
    def invalid_reason(self) -> str | None:
        """A stable code from ``error_codes()``, or None when valid."""
    @property
    def invalid_message(self) -> str | None: ...
    @property
    def payer(self) -> str | None:
        """The claimed payer, or the recovered signer when valid (EIP-55)."""
    @property
    def scheme(self) -> str | None:
        """``exact_eip3009``, ``exact_permit2`` or ``upto_permit2``, once known."""
    @property
    def x402_version(self) -> int | None: ...
    @property
    def chain_id(self) -> int | None: ...
    @property
    def authorization(self) -> PaymentAuthorization | None: ...
    @property
    def replay_key(self) -> bytes | None:
        """The canonical 32-byte replay key (chain, contract, signer, nonce), once known."""
    @property
    def nonce_space(self) -> str | None:
        """``eip3009`` or ``permit2``: whose nonce space the replay key lives in."""
    @property
    def valid_until(self) -> int | None:
        """validBefore / deadline: after it the authorization is dead on-chain."""
    @property
    def is_replay(self) -> bool:
        """Whether the payment was refused because its nonce is already reserved or settled."""
    @property
    def reservation(self) -> str | None:
        """The owner token of this payment's nonce reservation (None: not reserved)."""
    @property
    def asset(self) -> str | None:
        """The requirements' asset, once every offline check but the signature passed."""
    @property
    def digest(self) -> bytes | None:
        """The EIP-712 digest the payer signed, once every offline check but the signature passed."""
    @property
    def signature(self) -> bytes | None:
        """The signature bytes as sent, once every offline check but the signature passed."""
    def with_valid(self) -> VerifyResponse:
        """A copy marked valid, for a chain check that decided what the offline checks left open."""
    def to_dict(self) -> dict[str, Any]:
        """x402's JSON shape: ``isValid``, ``invalidReason``, ``invalidMessage``, ``payer``."""
    def to_json(self) -> bytes:
        """``to_dict()`` as compact UTF-8 JSON text (a facilitator's ``/verify`` answer)."""
    def with_invalid(self, reason: str, message: str) -> VerifyResponse:
        """A copy marked invalid with ``reason``."""
    def with_reservation(self, owner: str) -> VerifyResponse:
        """A copy that carries the owner token of its nonce reservation."""
    def __eq__(self, other: object, /) -> bool: ...

@final
class MemoryNonceStore:
    """The embedded default store: thread-safe, one process, bounded, not durable.

    Keeps each unsettled reservation until validBefore / deadline + ``margin_seconds`` (then the
    time check refuses its authorization), and each settled key for as long as the store lives
    (a payer may re-sign the same nonce with a later deadline at any time). At ``max_entries``
    it drops expired reservations and, if still full, refuses new ones: size it for the
    settled payments of the process's lifetime plus the reservations live at peak (about 300
    bytes an entry).
    """

    def __new__(cls, max_entries: int = 1000000, *, margin_seconds: int = 60) -> MemoryNonceStore: ...
    @property
    def max_entries(self) -> int:
        """Most entries kept (live reservations and settled keys); past it, after dropping
        expired reservations, the store refuses new ones."""
    @property
    def margin_seconds(self) -> int:
        """Seconds an unsettled reservation outlives the authorization's validBefore / deadline."""
    def reserve_many(
        self,
        keys: Iterable[bytes],
        valid_until: Iterable[int],
        owners: Iterable[str],
        caps: Iterable[int | None] | None = None,
        *,
        now: int | None = None,
    ) -> list[bool | None]:
        """Reserves keys in order. Per item: True (reserved, or already this owner's), False (a
        replay), None (refused: the store is full, or the item expires before ``now``)."""
    def settle(self, key: bytes, owner: str, *, now: int | None = None) -> int:
        """Marks the caller's reservation settled, kept for as long as the store lives; returns
        the upto total charged (0 for exact)."""
    def release(self, key: bytes, owner: str, *, now: int | None = None) -> None:
        """Drops the caller's reservation: nothing was served and nothing broadcast."""
    def charge(self, key: bytes, owner: str, amount: int, *, now: int | None = None) -> int:
        """Debits an upto session by ``amount``; returns the new total; never passes the cap."""
    def state(self, key: bytes, *, now: int | None = None) -> tuple[str, str, int, int | None] | None:
        """``("reserved" | "settled", owner, charged_total, expires_at)`` for a live key, else None;
        ``expires_at`` is None for a settled key (kept for as long as the store lives)."""
    def sweep(self, *, now: int | None = None) -> int:
        """Drops expired (unsettled) entries; returns how many remain."""
    def close(self) -> None:
        """Forgets every entry and refuses every later call (``NonceStoreError``)."""
    def __enter__(self) -> MemoryNonceStore: ...
    def __exit__(self, *_exc: object) -> bool: ...
    def __len__(self) -> int: ...

# The argument rules every store shares (the SQLite and Redis stores call them too).
def store_refusals() -> dict[str, tuple[str, str]]:
    """``{name: (code, message)}`` for every store refusal: the texts every store raises."""

def store_now_arg(now: object) -> int:
    """``now`` checked (an int in [0, 2**63), not a bool), or the system clock when None."""

def store_key_arg(key: object) -> bytes:
    """A replay key checked: exactly 32 bytes."""

def store_owner_arg(owner: object) -> str:
    """An owner token checked: a str of 1 to 256 UTF-8 bytes (no lone surrogates)."""

def store_amount_arg(amount: object) -> int:
    """An amount checked: an int in [0, 2**256), not a bool; returned as a plain int."""

def store_margin_arg(margin_seconds: object) -> int:
    """``margin_seconds`` checked: an int in [0, 2**32)."""

def store_batch_args(
    keys: object, valid_until: object, owners: object, caps: object, margin_seconds: int, now: object
) -> tuple[int, list[bytes], list[int], list[str], list[int | None]]:
    """A ``reserve_many`` call checked: ``(now, keys, expires_at, owners, caps)``, with each
    ``expires_at`` = valid_until + margin, clamped to the latest expiry a store keeps."""

@final
class VerifierCore:
    """Compiled verifier: holds the parsed configuration and runs the cascade."""

    def __new__(
        cls,
        *,
        network_names: dict[str, int],
        allowed_chain_ids: Sequence[int] | None,
        exact_permit2_proxies: Sequence[str],
        upto_permit2_proxies: Sequence[str],
        facilitator_addresses: Sequence[str],
        time_buffer: int,
        clock_skew_seconds: int,
        max_validity_seconds: int | None,
        max_payload_bytes: int,
        eip3009_policy: SignaturePolicy,
        permit2_policy: SignaturePolicy,
        threads: int | None,
        payer_key_cache: int = ...,
        verdict_cache: int = ...,
    ) -> VerifierCore: ...
    def stats(self) -> dict[str, int]:
        """Work counters since construction: key-cache hits, misses and size, batch-verified and
        recovered signatures, batch checks (and failed ones), bisections, located bad items,
        points multiplied, fallbacks to recovery, session-cache hits and size."""
    @property
    def stages(self) -> list[str]:
        """The stages after the terms, in order."""
    def verify_batch(
        self,
        items: Iterable[tuple[_Json, _Req]],
        *,
        now: int | None = None,
        threads: int | None = None,
        store: MemoryNonceStore | None = None,
        idempotency_ids: Iterable[str | None] | None = None,
    ) -> list[VerifyResponse]:
        """Verifies ``(payload, requirements)`` pairs in order, in parallel, with the GIL released;
        with ``store`` the valid ones are reserved in the same call."""
    def reserve_in_memory(
        self,
        responses: Sequence[VerifyResponse],
        store: MemoryNonceStore,
        *,
        now: int | None = None,
        idempotency_ids: Iterable[str | None] | None = None,
    ) -> list[VerifyResponse]:
        """Reserves responses verified with ``reserve=False`` in the in-process store."""

@final
class ReservationPlan:
    """The reservations of one batch, for a store outside the core (SQLite, Redis)."""

    def __new__(cls, responses: Sequence[VerifyResponse], *, idempotency_ids: Iterable[str | None] | None = None) -> ReservationPlan: ...
    def __len__(self) -> int: ...
    @property
    def indices(self) -> list[int]:
        """Indices (into the responses) of the items to reserve, in the order of the columns."""
    def columns(self) -> tuple[list[bytes], list[int], list[str], list[int | None]]:
        """``(keys, valid_until, owners, caps)``: what a store's ``reserve_many`` takes."""
    def conclude(self, outcomes: Iterable[object]) -> list[VerifyResponse]:
        """The verdicts, given the store's answer per reservation."""
    def refuse_all(self) -> list[VerifyResponse]:
        """The verdicts when the store could not answer at all."""
