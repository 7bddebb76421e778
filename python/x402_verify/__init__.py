"""x402-verify: check x402 payment authorizations before spending compute.

The hot path (EIP-712 hashing, secp256k1 recovery, batches) runs in the compiled core,
``x402_verify._core``; this package re-exports it with the Python-defined exceptions.
"""

from __future__ import annotations

# The protocol facts are the core's own objects (tests/test_single_source.py checks it).
from x402_verify._core import (
    DEFAULT_CLOCK_SKEW_SECONDS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MAX_TYPED_DATA_BYTES,
    DEFAULT_TIME_BUFFER,
    EXACT_PERMIT2_PROXY,
    UPTO_PERMIT2_PROXY,
    V1_NETWORK_NAMES,
    PaymentAuthorization,
    SignaturePolicy,
    VerifyResponse,
    error_codes,
    hash_typed_data,
    recover_hash,
    recover_hash_batch,
    recover_typed_data,
    recover_typed_data_batch,
)
from x402_verify.chain import AsyncChainReader, ChainReader, ChainReadError
from x402_verify.errors import NonceStoreError, PaymentError, ReservationError, SignatureError, TypedDataError, X402VerifyError
from x402_verify.header import decode_payment_header, encode_payment_header
from x402_verify.stores import MemoryNonceStore, RedisNonceStore, SqliteNonceStore
from x402_verify.verifier import Requirements, Verifier

__all__ = [
    "AsyncChainReader",
    "ChainReadError",
    "ChainReader",
    "DEFAULT_CLOCK_SKEW_SECONDS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_MAX_TYPED_DATA_BYTES",
    "DEFAULT_TIME_BUFFER",
    "EXACT_PERMIT2_PROXY",
    "MemoryNonceStore",
    "NonceStoreError",
    "PaymentAuthorization",
    "PaymentError",
    "RedisNonceStore",
    "Requirements",
    "ReservationError",
    "UPTO_PERMIT2_PROXY",
    "V1_NETWORK_NAMES",
    "Verifier",
    "VerifyResponse",
    "decode_payment_header",
    "encode_payment_header",
    "SignatureError",
    "SignaturePolicy",
    "SqliteNonceStore",
    "TypedDataError",
    "X402VerifyError",
    "error_codes",
    "hash_typed_data",
    "recover_hash",
    "recover_hash_batch",
    "recover_typed_data",
    "recover_typed_data_batch",
]
