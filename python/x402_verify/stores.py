"""Replay protection: nonce stores and the step that reserves verified payments.

Every store implements the same lifecycle (see ``rust/core/src/store/mod.rs``): ``reserve_many``
(atomic per key, in order, so a key twice in one batch is accepted once), ``settle``, ``release``,
``charge`` (upto sessions), and expiry at the authorization's validBefore / deadline plus
``margin_seconds``. A store that cannot answer raises ``NonceStoreError``; the verifier turns
that into the ``nonce_store_unavailable`` verdict, so a payment is never accepted unreserved.

- ``MemoryNonceStore``: the embedded default (compiled; thread-safe; one process; bounded).
- ``SqliteNonceStore``: durable on one host, shared by its worker processes (SQLite WAL,
  ``synchronous=FULL``: an acknowledged reservation survives ``kill -9`` and power loss).
- ``RedisNonceStore``: shared by gateway replicas; one round trip per batch (per node on a
  cluster). What Redis does and does not guarantee: docs/redis.md.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from x402_verify._core import MemoryNonceStore, VerifyResponse
from x402_verify.errors import NonceStoreError, ReservationError

__all__ = [
    "MemoryNonceStore",
    "NonceStore",
    "RedisNonceStore",
    "SqliteNonceStore",
    "reserve_verified",
]

log = logging.getLogger("x402_verify.stores")

_REPLAY_REASON = {
    "eip3009": "invalid_exact_evm_nonce_already_used",
    "permit2": "permit2_nonce_already_used",
}


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


def reserve_verified(store: NonceStore, results: list[VerifyResponse], now: int | None) -> list[VerifyResponse]:
    """Reserves the nonces of the valid results, in one store call; replays and store
    failures turn into invalid verdicts. Only signature-checked payments reach the store, so
    junk cannot fill it."""
    picked = [i for i, r in enumerate(results) if r.is_valid and r.replay_key is not None]
    if not picked:
        return results
    batch = secrets.token_hex(8)
    owners = [f"{batch}:{i}" for i in picked]
    keys: list[bytes] = []
    until: list[int] = []
    caps: list[int | None] = []
    for i in picked:
        r = results[i]
        keys.append(r.replay_key)  # type: ignore[arg-type]
        until.append(r.valid_until or 0)
        auth = r.authorization
        caps.append(auth.amount if r.scheme == "upto_permit2" and auth is not None else None)
    try:
        outcomes = store.reserve_many(keys, until, owners, caps, now=now)
        if len(outcomes) != len(keys):
            raise NonceStoreError(f"store answered {len(outcomes)} outcomes for {len(keys)} keys")
    except Exception as exc:  # fail closed on anything the store raises
        log.warning("nonce store unavailable: %s", exc)
        outcomes = [None] * len(keys)
        failure = f"{type(exc).__name__}: {exc}"
    else:
        failure = "the nonce store is full"
    out = list(results)
    for i, owner, ok in zip(picked, owners, outcomes):
        r = results[i]
        if ok is True:
            out[i] = r.with_reservation(owner)
        elif ok is False:
            reason = _REPLAY_REASON[r.nonce_space or "permit2"]
            out[i] = r.with_invalid(reason, "this authorization's nonce is already reserved or settled")
        else:
            out[i] = r.with_invalid("nonce_store_unavailable", f"replay protection could not answer ({failure}); refused")
    return out


def _clock(now: int | None) -> int:
    return int(time.time()) if now is None else now


def _aligned(
    keys: Sequence[bytes], valid_until: Sequence[int], owners: Sequence[str], caps: Sequence[int | None] | None
) -> Sequence[int | None]:
    """The caps, once the parallel sequences of a reserve_many call are checked to line up."""
    if not (len(keys) == len(valid_until) == len(owners)) or (caps is not None and len(caps) != len(keys)):
        raise ValueError("keys, valid_until, owners (and caps) must have the same length")
    return caps if caps is not None else [None] * len(keys)


class SqliteNonceStore:
    """Durable reservations on one host, shared by the processes that open the same file.

    One ``BEGIN IMMEDIATE`` transaction (one fsync) per batch; WAL with ``synchronous=FULL``,
    so a reservation acknowledged to the caller survives ``kill -9``, a restart and power loss.
    Do not put the file on a network filesystem.
    """

    def __init__(self, path: str | os.PathLike[str], *, margin_seconds: int = 60, timeout: float = 5.0) -> None:
        self.path = os.fspath(path)
        self.margin_seconds = margin_seconds
        self.timeout = timeout
        self._local = threading.local()
        with self._conn() as _:
            pass

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=True)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS reservations ("
                    " key BLOB PRIMARY KEY, settled INTEGER NOT NULL, owner TEXT NOT NULL,"
                    " cap TEXT, charged TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID"
                )
                conn.execute("CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations(expires_at)")
            except sqlite3.Error as exc:
                raise NonceStoreError(f"sqlite store at {self.path}: {exc}") from exc
            self._local.conn = conn
        return conn

    def _tx(self, fn: Any) -> Any:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return out
        except sqlite3.Error as exc:
            raise NonceStoreError(f"sqlite store at {self.path}: {exc}") from exc

    def reserve_many(
        self,
        keys: Sequence[bytes],
        valid_until: Sequence[int],
        owners: Sequence[str],
        caps: Sequence[int | None] | None = None,
        *,
        now: int | None = None,
    ) -> list[bool | None]:
        now = _clock(now)
        caps = _aligned(keys, valid_until, owners, caps)

        def run(conn: sqlite3.Connection) -> list[bool | None]:
            # Expired rows go in small steps so one batch never pays for a large backlog.
            conn.execute(
                "DELETE FROM reservations WHERE key IN (SELECT key FROM reservations WHERE expires_at <= ? LIMIT 512)",
                (now,),
            )
            out: list[bool | None] = []
            for key, until, owner, cap in zip(keys, valid_until, owners, caps):
                row = conn.execute("SELECT settled, owner, expires_at FROM reservations WHERE key = ?", (key,)).fetchone()
                if row is not None and row[2] > now:
                    out.append(row[0] == 0 and row[1] == owner)
                    continue
                conn.execute(
                    "INSERT OR REPLACE INTO reservations VALUES (?, 0, ?, ?, '0', ?)",
                    (key, owner, None if cap is None else str(cap), until + self.margin_seconds),
                )
                out.append(True)
            return out

        result: list[bool | None] = self._tx(run)
        return result

    def _live(self, conn: sqlite3.Connection, key: bytes, now: int) -> tuple[int, str, int | None, int]:
        row = conn.execute("SELECT settled, owner, cap, charged, expires_at FROM reservations WHERE key = ?", (key,)).fetchone()
        if row is None or row[4] <= now:
            raise ReservationError("reservation_not_found", "no live reservation under this key")
        return row[0], row[1], None if row[2] is None else int(row[2]), int(row[3])

    def settle(self, key: bytes, owner: str, *, now: int | None = None) -> int:
        now = _clock(now)

        def run(conn: sqlite3.Connection) -> int:
            settled, holder, _cap, charged = self._live(conn, key, now)
            if holder != owner:
                raise ReservationError("reservation_not_owner", "the reservation belongs to another owner token")
            if not settled:
                conn.execute("UPDATE reservations SET settled = 1 WHERE key = ?", (key,))
            return charged

        result: int = self._tx(run)
        return result

    def release(self, key: bytes, owner: str, *, now: int | None = None) -> None:
        now = _clock(now)

        def run(conn: sqlite3.Connection) -> None:
            settled, holder, _cap, _charged = self._live(conn, key, now)
            if holder != owner:
                raise ReservationError("reservation_not_owner", "the reservation belongs to another owner token")
            if settled:
                raise ReservationError("reservation_closed", "the reservation is settled and closed")
            conn.execute("DELETE FROM reservations WHERE key = ?", (key,))

        self._tx(run)

    def charge(self, key: bytes, owner: str, amount: int, *, now: int | None = None) -> int:
        now = _clock(now)
        if amount < 0:
            raise ValueError("amounts are ints in [0, 2**256)")

        def run(conn: sqlite3.Connection) -> int:
            settled, holder, cap, charged = self._live(conn, key, now)
            if holder != owner:
                raise ReservationError("reservation_not_owner", "the reservation belongs to another owner token")
            if settled:
                raise ReservationError("reservation_closed", "the reservation is settled and closed")
            if cap is None:
                raise ReservationError("reservation_not_upto", "only upto reservations carry a session to charge")
            total = charged + amount
            if total > cap:
                raise ReservationError("invalid_upto_evm_payload_settlement_exceeds_amount", "the charge would exceed the permitted maximum")
            conn.execute("UPDATE reservations SET charged = ? WHERE key = ?", (str(total), key))
            return total

        result: int = self._tx(run)
        return result

    def state(self, key: bytes, *, now: int | None = None) -> tuple[str, str, int, int] | None:
        now = _clock(now)
        row = self._conn().execute("SELECT settled, owner, charged, expires_at FROM reservations WHERE key = ?", (key,)).fetchone()
        if row is None or row[3] <= now:
            return None
        return ("settled" if row[0] else "reserved", row[1], int(row[2]), row[3])

    def sweep(self, *, now: int | None = None) -> int:
        now = _clock(now)

        def run(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM reservations WHERE expires_at <= ?", (now,))
            count: int = conn.execute("SELECT count(*) FROM reservations").fetchone()[0]
            return count

        result: int = self._tx(run)
        return result

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- exposure ledger (issue 14; the logic lives in x402_verify.chain.exposure) ---------------

    def reserve_exposed(
        self,
        keys: Sequence[bytes],
        valid_until: Sequence[int],
        owners: Sequence[str],
        caps: Sequence[int | None],
        exposure: Sequence[Any],
        *,
        now: int | None = None,
    ) -> list[bool | str | None]:
        """``reserve_many`` that also refuses (``"exposure"``) a payment the payer's capacity
        does not cover on top of its live reservations, in the same transaction."""
        from x402_verify.chain import exposure as ledger

        return ledger.sqlite_reserve_exposed(self, keys, valid_until, owners, caps, exposure, _clock(now))

    def settle_exposure(self, key: bytes, owner: str, ledger_id: str, block: int | None, amount: int | None = None, *, now: int | None = None) -> None:
        from x402_verify.chain import exposure as ledger

        ledger.sqlite_settle_exposure(self, key, owner, block, amount)

    def outstanding(self, chain_id: int, token: str, payer: str, *, now: int | None = None, as_of_block: int | None = None) -> int:
        """The amount the payer's live reservations on (chain, token) promise."""
        from x402_verify.chain import exposure as ledger

        return ledger.sqlite_outstanding(self, ledger.ledger_id(chain_id, token, payer), as_of_block, _clock(now))


class RedisNonceStore:
    """Reservations shared by gateway replicas through Redis (or a Redis Cluster).

    A batch is ``SET key value NX GET PXAT expiry`` per key (Redis >= 7.0), atomic per key: on
    one server a single Lua script call runs them all (one round trip); on a cluster, one
    pipeline sends each node its keys in one round trip (keys need no hash tags: each stands
    alone). State changes are owner-checked ``WATCH``/``MULTI`` transactions on one key.
    Connection errors, timeouts and ``OOM`` answers raise ``NonceStoreError`` (fail closed).
    A timeout is ambiguous: the server may still apply the ``SET`` after the client gave up, so
    that payment then reads as a replay until it expires and its payer must sign a new one. It
    fails closed; it is never accepted twice.
    Recommended server settings: ``maxmemory-policy noeviction``, ``appendonly yes``; see
    docs/redis.md for what replication and AOF do and do not guarantee.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        cluster: bool = False,
        timeout: float = 0.5,
        margin_seconds: int = 60,
        prefix: str = "x402v:",
        client: Any = None,
    ) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("RedisNonceStore needs redis-py: pip install 'x402-verify[redis]'") from exc
        self._redis = redis
        self.margin_seconds = margin_seconds
        self.prefix = prefix
        self.cluster = cluster
        self._script: Any = None
        if client is not None:
            self.client = client
        elif cluster:
            self.client = redis.RedisCluster.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), decode_responses=True
            )
        else:
            self.client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), decode_responses=True
            )

    def _name(self, key: bytes) -> str:
        return self.prefix + key.hex()

    def _fail(self, exc: Exception) -> NonceStoreError:
        return NonceStoreError(f"redis: {type(exc).__name__}: {exc}")

    def reserve_many(
        self,
        keys: Sequence[bytes],
        valid_until: Sequence[int],
        owners: Sequence[str],
        caps: Sequence[int | None] | None = None,
        *,
        now: int | None = None,
    ) -> list[bool | None]:
        caps = _aligned(keys, valid_until, owners, caps)
        now = _clock(now)
        if not keys:
            return []
        if not self.cluster:
            return self._reserve_scripted(keys, valid_until, owners, caps, now)
        # On a cluster a script may only touch one hash slot, so the batch is a pipeline:
        # redis-py sends each node its commands in one round trip.
        pipe = self.client.pipeline(transaction=False)
        for key, until, owner, cap in zip(keys, valid_until, owners, caps):
            expires = until + self.margin_seconds
            if expires <= now:
                # Dead on arrival: nothing to keep, but a live holder still makes it a replay.
                pipe.get(self._name(key))
                continue
            value = f"R|{owner}|{'' if cap is None else cap}|0"
            # Absolute expiry (PXAT) so a slow client cannot stretch it; GET tells who holds it.
            pipe.set(self._name(key), value, nx=True, get=True, pxat=expires * 1000)
        try:
            answers = pipe.execute(raise_on_error=True)
        except self._redis.RedisError as exc:
            raise self._fail(exc) from exc
        return self._outcomes(owners, answers)

    # One script call reserves a whole batch on a single server: one round trip, and the
    # per-command encoding and reply parsing that dominate a 256-command pipeline in redis-py
    # happen once. ARGV holds value and absolute expiry (ms) per key; expiry 0 means the item
    # is dead on arrival, so only its holder is read.
    _RESERVE_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  local value, pxat = ARGV[2 * i - 1], ARGV[2 * i]
  if pxat == '0' then
    out[i] = redis.call('GET', key)
  else
    out[i] = redis.call('SET', key, value, 'NX', 'GET', 'PXAT', pxat)
  end
end
return out
"""

    def _reserve_scripted(
        self, keys: Sequence[bytes], valid_until: Sequence[int], owners: Sequence[str], caps: Sequence[int | None], now: int
    ) -> list[bool | None]:
        args: list[str | int] = []
        for until, owner, cap in zip(valid_until, owners, caps):
            expires = until + self.margin_seconds
            args.append(f"R|{owner}|{'' if cap is None else cap}|0")
            args.append(0 if expires <= now else expires * 1000)
        try:
            if self._script is None:
                self._script = self.client.register_script(self._RESERVE_SCRIPT)
            answers = self._script(keys=[self._name(k) for k in keys], args=args)
        except self._redis.RedisError as exc:
            raise self._fail(exc) from exc
        return self._outcomes(owners, answers)

    @staticmethod
    def _outcomes(owners: Sequence[str], answers: Sequence[Any]) -> list[bool | None]:
        if len(answers) != len(owners):
            raise NonceStoreError(f"redis answered {len(answers)} outcomes for {len(owners)} keys")
        out: list[bool | None] = []
        for owner, answer in zip(owners, answers):
            if answer is None:
                out.append(True)
            else:
                state, holder = str(answer).split("|", 2)[:2]
                out.append(state == "R" and holder == owner)
        return out

    def _update(self, key: bytes, owner: str, change: Any) -> Any:
        """Runs ``change(state, cap, charged) -> (new_value | None, result)`` under WATCH."""
        name = self._name(key)
        try:
            with self.client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(name)
                        value = pipe.get(name)
                        if value is None:
                            raise ReservationError("reservation_not_found", "no live reservation under this key")
                        state, holder, cap, charged = str(value).split("|")
                        if holder != owner:
                            raise ReservationError("reservation_not_owner", "the reservation belongs to another owner token")
                        new_value, result = change(state, None if cap == "" else int(cap), int(charged))
                        pipe.multi()
                        if new_value is None:
                            pipe.delete(name)
                        else:
                            pipe.set(name, new_value, keepttl=True)
                        pipe.execute()
                        return result
                    except self._redis.WatchError:
                        continue
        except self._redis.RedisError as exc:
            raise self._fail(exc) from exc

    def settle(self, key: bytes, owner: str, *, now: int | None = None) -> int:
        def change(state: str, cap: int | None, charged: int) -> tuple[str, int]:
            return f"S|{owner}|{'' if cap is None else cap}|{charged}", charged

        result: int = self._update(key, owner, change)
        return result

    def release(self, key: bytes, owner: str, *, now: int | None = None) -> None:
        def change(state: str, cap: int | None, charged: int) -> tuple[None, None]:
            if state == "S":
                raise ReservationError("reservation_closed", "the reservation is settled and closed")
            return None, None

        self._update(key, owner, change)

    def charge(self, key: bytes, owner: str, amount: int, *, now: int | None = None) -> int:
        if amount < 0:
            raise ValueError("amounts are ints in [0, 2**256)")

        def change(state: str, cap: int | None, charged: int) -> tuple[str, int]:
            if state == "S":
                raise ReservationError("reservation_closed", "the reservation is settled and closed")
            if cap is None:
                raise ReservationError("reservation_not_upto", "only upto reservations carry a session to charge")
            total = charged + amount
            if total > cap:
                raise ReservationError("invalid_upto_evm_payload_settlement_exceeds_amount", "the charge would exceed the permitted maximum")
            return f"R|{owner}|{cap}|{total}", total

        result: int = self._update(key, owner, change)
        return result

    def state(self, key: bytes, *, now: int | None = None) -> tuple[str, str, int, int] | None:
        name = self._name(key)
        try:
            value = self.client.get(name)
            expires_ms = self.client.pexpiretime(name) if value is not None else -2
        except self._redis.RedisError as exc:
            raise self._fail(exc) from exc
        if value is None:
            return None
        state, holder, _cap, charged = str(value).split("|")
        return ("settled" if state == "S" else "reserved", holder, int(charged), int(expires_ms) // 1000)

    # --- exposure ledger (issue 14; the logic lives in x402_verify.chain.exposure) ---------------

    def reserve_exposed(
        self,
        keys: Sequence[bytes],
        valid_until: Sequence[int],
        owners: Sequence[str],
        caps: Sequence[int | None],
        exposure: Sequence[Any],
        *,
        now: int | None = None,
    ) -> list[bool | str | None]:
        """``reserve_many`` that also refuses (``"exposure"``) a payment the payer's capacity
        does not cover on top of its live reservations, in the same script (single server)."""
        from x402_verify.chain import exposure as ledger

        return ledger.redis_reserve_exposed(self, keys, valid_until, owners, caps, exposure, _clock(now))

    def settle_exposure(self, key: bytes, owner: str, ledger_id: str, block: int | None, amount: int | None = None, *, now: int | None = None) -> None:
        from x402_verify.chain import exposure as ledger

        ledger.redis_settle_exposure(self, key, owner, ledger_id, block, amount)

    def outstanding(self, chain_id: int, token: str, payer: str, *, now: int | None = None, as_of_block: int | None = None) -> int:
        """The amount the payer's live reservations on (chain, token) promise."""
        from x402_verify.chain import exposure as ledger

        return ledger.redis_outstanding(self, ledger.ledger_id(chain_id, token, payer), as_of_block, _clock(now))
