"""`ChainReader` / `AsyncChainReader`: JSON-RPC reads over HTTP, gathered into batches.

Every read a batch of payments needs goes out as JSON-RPC batches (an array in one POST), at
most ``max_batch`` calls each; the async reader sends the chunks concurrently. Why batches and
not Multicall3 ``aggregate3``: a batch answers each call on its own (one revert or one odd
answer is one error object, never the whole set), it carries ``eth_getCode`` and the ERC-6492
creation-code ``eth_call`` that ``aggregate3`` cannot, it needs no contract on the chain; on
the test node the two measured the same (docs/chain.md). Providers that bill or limit per call see
the same call count either way.

Failures: a connection error, a timeout, an HTTP error status or an answer that is not a
JSON-RPC batch answer is retried ``retries`` times (reads are idempotent), then every call of
that chunk fails with a ``ChainReadError`` in its place; the other chunks are unaffected. An
answer that lacks one call's id fails that call only. Nothing raises out of ``call_many``.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["AsyncChainReader", "ChainReadError", "ChainReader", "Call"]

#: One JSON-RPC call: ``(method, params)``.
Call = tuple[str, list[Any]]

DEFAULT_TIMEOUT = 2.0
DEFAULT_MAX_BATCH = 500
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class ChainReadError(Exception):
    """A read that got no usable answer: the payment it served is refused
    (``chain_read_failed``), never accepted."""

    def __init__(self, message: str, *, rpc_code: int | None = None, data: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rpc_code = rpc_code
        self.data = data

    @property
    def reverted(self) -> bool:
        """The node ran the call and it reverted (an answer, not a failure to read)."""
        return self.rpc_code == 3 or (self.rpc_code is not None and "revert" in self.message.lower())


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("ChainReader needs httpx: pip install 'x402-verify[chain]'") from exc
    return httpx


class _Base:
    def __init__(
        self,
        rpc_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 1,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_connections: int = 4,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        code_ttl: float = 300.0,
        negative_ttl: float = 2.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(rpc_url, str) or not rpc_url.startswith(("http://", "https://")):
            raise ValueError("rpc_url must be an http:// or https:// URL")
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        if not 0 <= retries <= 5:
            raise ValueError("retries must be in [0, 5]")
        if not 1 <= max_batch <= 10_000:
            raise ValueError("max_batch must be in [1, 10000]")
        if not 1 <= max_connections <= 256:
            raise ValueError("max_connections must be in [1, 256]")
        if code_ttl < 0 or negative_ttl < 0:
            raise ValueError("code_ttl and negative_ttl must be >= 0")
        self.rpc_url = rpc_url
        self.timeout = float(timeout)
        self.retries = retries
        self.max_batch = max_batch
        self.max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        #: Seconds a deployed contract's code is remembered (it cannot change since EIP-6780;
        #: EIP-7702 delegations can, and are never remembered).
        self.code_ttl = float(code_ttl)
        #: Seconds a refusal-only fact (a balance too low, an address without code) is
        #: remembered to refuse repeated payments without reads; never used to accept.
        self.negative_ttl = float(negative_ttl)
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        #: HTTP POSTs sent (attempts included): what a provider counts as requests.
        self.round_trips = 0
        #: JSON-RPC calls sent.
        self.calls = 0
        # The chain-level memory that checks.py keeps per reader (see there).
        self.memory: Any = None

    # The sync and async readers differ only in how they wait; what an answer must be, and what
    # a failed attempt is called, is decided here once for both.
    @staticmethod
    def _check_status(status: int) -> None:
        if status != 200:
            raise ChainReadError(f"the RPC answered HTTP {status}")

    def _grow(self, raw: bytearray, piece: bytes) -> None:
        raw += piece
        if len(raw) > self.max_response_bytes:
            raise ChainReadError("the RPC answer is larger than max_response_bytes")

    def _fault(self, exc: Exception) -> ChainReadError:
        if isinstance(exc, ChainReadError):
            return exc
        if isinstance(exc, _httpx().TimeoutException):
            return ChainReadError(f"the RPC did not answer within {self.timeout} s")
        return ChainReadError(f"the RPC is unreachable: {type(exc).__name__}")

    def _chunks(self, calls: Sequence[Call]) -> list[list[tuple[int, Call]]]:
        indexed = list(enumerate(calls))
        return [indexed[i : i + self.max_batch] for i in range(0, len(indexed), self.max_batch)]

    def _body(self, chunk: list[tuple[int, Call]]) -> tuple[bytes, dict[int, int]]:
        ids: dict[int, int] = {}
        out = []
        for index, (method, params) in chunk:
            rid = next(self._ids)
            ids[rid] = index
            out.append({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        with self._lock:
            self.round_trips += 1
            self.calls += len(out)
        return json.dumps(out, separators=(",", ":")).encode(), ids

    @staticmethod
    def _parse(raw: bytes, ids: dict[int, int], results: list[Any]) -> None:
        """Fills ``results`` from one batch answer; raises ChainReadError when the answer as a
        whole is unusable (then the chunk is retried or failed)."""
        try:
            answer = json.loads(raw)
        except ValueError:
            raise ChainReadError("the RPC answered malformed JSON") from None
        if isinstance(answer, dict):
            error = answer.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            raise ChainReadError(f"the RPC refused the batch: {message or 'no batch answer'}")
        if not isinstance(answer, list):
            raise ChainReadError("the RPC answer is not a JSON-RPC batch answer")
        seen: set[int] = set()
        for item in answer:
            if not isinstance(item, dict):
                continue
            rid = item.get("id")
            if type(rid) is not int or rid not in ids or rid in seen:
                continue
            seen.add(rid)
            index = ids[rid]
            if "error" in item:
                error = item["error"] if isinstance(item["error"], dict) else {}
                code = error.get("code")
                data = error.get("data")
                results[index] = ChainReadError(
                    f"RPC error: {str(error.get('message'))[:200]}",
                    rpc_code=code if type(code) is int else None,
                    data=data if isinstance(data, str) else None,
                )
            elif "result" in item:
                results[index] = item["result"]
        for rid, index in ids.items():
            if rid not in seen:
                results[index] = ChainReadError("the RPC answer lacks this call")


class ChainReader(_Base):
    """Reads one chain over HTTP JSON-RPC (httpx): batches, timeouts, bounded retries, a bounded
    connection pool. One per network, passed to ``Verifier(chain_readers={network: reader})``.

    Args:
        rpc_url: the node's HTTP(S) JSON-RPC endpoint.
        timeout: seconds for each POST (connect, write, read); a POST is tried at most
            ``retries + 1`` times, so a dead node costs at most ``(retries + 1) * timeout``.
        retries: retries of a failed POST (0-5).
        max_batch: most calls in one POST (providers cap batch sizes; 500 suits most).
        max_connections: the connection pool's bound.
        max_response_bytes: answers larger than this are refused unread.
        code_ttl: seconds a deployed contract's code is cached.
        negative_ttl: seconds a too-low balance / a code-less payer is remembered to refuse
            (never to accept) repeated payments without reads. 0 turns it off.
        headers: extra HTTP headers (an API key, say).
    """

    def __init__(self, rpc_url: str, **options: Any) -> None:
        super().__init__(rpc_url, **options)
        httpx = _httpx()
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections),
            headers=self.headers,
        )

    def call_many(self, calls: Sequence[Call]) -> list[Any]:
        """Results in order: each the JSON ``result``, or a ``ChainReadError``."""
        results: list[Any] = [None] * len(calls)
        for chunk in self._chunks(calls):
            self._post_chunk(chunk, results)
        return results

    def _post_chunk(self, chunk: list[tuple[int, Call]], results: list[Any]) -> None:
        httpx = _httpx()
        failure = ChainReadError("no attempt")
        for _attempt in range(self.retries + 1):
            body, ids = self._body(chunk)
            try:
                with self._client.stream("POST", self.rpc_url, content=body) as response:
                    self._check_status(response.status_code)
                    raw = bytearray()
                    for piece in response.iter_bytes():
                        self._grow(raw, piece)
                self._parse(bytes(raw), ids, results)
                return
            except (ChainReadError, httpx.HTTPError) as exc:
                failure = self._fault(exc)
        for index, _call in chunk:
            results[index] = failure

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ChainReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncChainReader(_Base):
    """The async twin of ``ChainReader`` (same options): for event-loop servers; the chunks of
    one call go out concurrently over the pool."""

    def __init__(self, rpc_url: str, **options: Any) -> None:
        super().__init__(rpc_url, **options)
        httpx = _httpx()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections),
            headers=self.headers,
        )

    async def call_many(self, calls: Sequence[Call]) -> list[Any]:
        import asyncio

        results: list[Any] = [None] * len(calls)
        await asyncio.gather(*(self._post_chunk(chunk, results) for chunk in self._chunks(calls)))
        return results

    async def _post_chunk(self, chunk: list[tuple[int, Call]], results: list[Any]) -> None:
        httpx = _httpx()
        failure = ChainReadError("no attempt")
        for _attempt in range(self.retries + 1):
            body, ids = self._body(chunk)
            try:
                async with self._client.stream("POST", self.rpc_url, content=body) as response:
                    self._check_status(response.status_code)
                    raw = bytearray()
                    async for piece in response.aiter_bytes():
                        self._grow(raw, piece)
                self._parse(bytes(raw), ids, results)
                return
            except (ChainReadError, httpx.HTTPError) as exc:
                failure = self._fault(exc)
        for index, _call in chunk:
            results[index] = failure

    async def aclose(self) -> None:
        await self._client.aclose()
