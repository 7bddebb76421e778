"""Replay protection: nonce stores and the step that reserves verified payments.

Every store implements the same lifecycle (see ``rust/core/src/store/mod.rs``): ``reserve_many``
(atomic per key, in order, so a key twice in one batch is accepted once), ``settle``, ``release``,
``charge`` (upto sessions). A store that cannot answer raises ``NonceStoreError``; the verifier
turns that into the ``nonce_store_unavailable`` verdict, so a payment is never accepted
unreserved.

What every store keeps, and for how long:

- an unsettled reservation, until the authorization's validBefore / deadline plus
  ``margin_seconds`` (measured on the ``now`` the verifier was given); after that the time check
  refuses the authorization, so the store may forget it;
- a settled key, for as long as the store lives. On-chain the nonce is spent for ever, but a
  payer can sign a new authorization with the same nonce and a later deadline at any time; its
  replay key is the same, and only the store knows it was spent. (A restarted
  ``MemoryNonceStore`` has forgotten: use SQLite or Redis where that matters.)

An item whose expiry is not after ``now`` is refused (``None``), never acknowledged: a store
asked to keep a key it would keep for no time keeps nothing. Deadlines past 2**48 (about 8.9
million years) are clamped to it, the same way in every store. Every store reads its arguments
through the same checks (``x402_verify._core.store_*_arg``): one bad value, one answer
(``TypeError`` or ``ValueError``) whichever store it reaches.

With chain checks (``Verifier(chain_readers=...)``) a store also keeps, per (chain, token,
payer), the amounts its live reservations promise, and ``reserve_exposed`` refuses a payment
(``"exposure"``) that the balance read from the chain does not cover on top of them. That is
the same reservation as ``reserve_many`` (the rules above, implemented once per store), with
one more condition asked in the same atomic step; the ledger itself is in
``x402_verify.chain.exposure``.

- ``MemoryNonceStore``: the embedded default (compiled; thread-safe; one process; bounded).
- ``SqliteNonceStore``: durable on one host, shared by its worker processes (SQLite WAL,
  ``synchronous=FULL``: an acknowledged reservation survives ``kill -9`` and power loss).
- ``RedisNonceStore``: shared by gateway replicas; one round trip per batch (per node on a
  cluster). What Redis does and does not guarantee: docs/redis.md.

Sizing: a store holds every key settled during its life plus the reservations live at peak, at
most ``request rate x (longest validity + margin)``. ``Verifier`` bounds validity by the
requirements' ``maxTimeoutSeconds``; at 100 requests/s, 300 s validity and a 60 s margin that
is 36,000 live reservations, plus 8.64 million settled keys a day at 100 paid requests/s.
A ``MemoryNonceStore`` entry takes about 300 bytes (the default ``max_entries=1_000_000``, about
300 MB, lasts 2.8 hours at 100 paid requests/s before it refuses everything); SQLite about 100
bytes on disk, Redis about 150 bytes of memory.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol

from x402_verify._core import (
    EXPOSURE_OUTCOME,
    MemoryNonceStore,
    ReservationPlan,
    VerifyResponse,
    store_amount_arg,
    store_batch_args,
    store_key_arg,
    store_margin_arg,
    store_now_arg,
    store_owner_arg,
    store_refusals,
)
from x402_verify.errors import NonceStoreError, ReservationError

__all__ = [
    "MemoryNonceStore",
    "NonceStore",
    "RedisNonceStore",
    "SqliteNonceStore",
    "reserve_verified",
]

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


def reserve_verified(
    store: Any,
    results: list[VerifyResponse],
    now: int | None,
    exposure: Sequence[Any] | None = None,
    idempotency_ids: Sequence[str | None] | None = None,
) -> list[VerifyResponse]:
    """The reserve stage for a store outside the core: the core plans one reservation per
    valid result (``ReservationPlan``: a random owner token each, or ``i:`` + the caller's
    idempotency id), the store takes the batch in one call, and the core decides each verdict
    from the store's answer (replay reasons per nonce space, refusals with fixed messages;
    details go to the log). Only signature-checked payments reach the store, so junk cannot
    fill it. With ``exposure`` (the chain stage's reading per result) the call is
    ``store.reserve_exposed``."""
    plan = ReservationPlan(results, idempotency_ids=idempotency_ids)
    if not len(plan):
        return plan.conclude([])
    keys, until, owners, caps = plan.columns()
    try:
        if exposure is None:
            outcomes: list[Any] = store.reserve_many(keys, until, owners, caps, now=now)
        else:
            readings = [exposure[i] for i in plan.indices]
            if any(e is None for e in readings):
                raise ValueError("a chain-checked payment has no exposure reading")
            outcomes = store.reserve_exposed(keys, until, owners, caps, readings, now=now)
        if len(outcomes) != len(keys):
            raise NonceStoreError(f"store answered {len(outcomes)} outcomes for {len(keys)} keys")
    except Exception as exc:  # fail closed on anything the store raises
        log.warning("nonce store unavailable: %s", _brief(exc))
        return plan.refuse_all()
    return plan.conclude(outcomes)


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


class SqliteNonceStore:
    """Durable reservations on one host, shared by the processes that open the same file.

    One ``BEGIN IMMEDIATE`` transaction (one fsync) per batch; WAL with ``synchronous=FULL``,
    so a reservation acknowledged to the caller survives ``kill -9``, a restart and power loss.
    Unsettled rows go once ``now`` passes their expiry (validBefore / deadline +
    ``margin_seconds``); settled rows stay for as long as the file does (about 100 bytes each).
    Do not put the file on a network filesystem. ``close()`` (or leaving a ``with`` block)
    closes the calling thread's connection; every later call raises ``NonceStoreError``.
    """

    def __init__(self, path: str | os.PathLike[str], *, margin_seconds: int = 60, timeout: float = 5.0) -> None:
        self.path = os.fspath(path)
        if "\0" in (self.path if isinstance(self.path, str) else self.path.decode("latin-1")):
            raise ValueError("the store's path contains a NUL character")
        self.margin_seconds: int = store_margin_arg(margin_seconds)
        self.timeout = _timeout(timeout, positive=False)
        self._local = threading.local()
        self._closed = False
        self._conn()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if self._closed:
            if conn is not None:
                conn.close()
                self._local.conn = None
            raise NonceStoreError(_CLOSED)
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
            except (sqlite3.Error, UnicodeError) as exc:
                raise NonceStoreError(f"sqlite store at {self.path!r}: {exc}") from exc
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
            raise NonceStoreError(f"sqlite store at {self.path!r}: {exc}") from exc

    def reserve_many(
        self,
        keys: Sequence[bytes],
        valid_until: Sequence[int],
        owners: Sequence[str],
        caps: Sequence[int | None] | None = None,
        *,
        now: int | None = None,
    ) -> list[bool | None]:
        result: list[bool | None] = self._reserve(keys, valid_until, owners, caps, now, None)
        return result

    def _reserve(self, keys: Sequence[bytes], valid_until: Sequence[int], owners: Sequence[str], caps: Sequence[int | None] | None, now: int | None, admit: Any) -> list[Any]:
        """The reservation rules, once for both entry points. ``admit`` (the exposure ledger's,
        x402_verify.chain.exposure), when given, is asked in the same transaction about each
        item these rules would newly reserve: ``admit(conn, i, key, owner, expires, at)``
        returns None to let it be reserved (having recorded what it needs), or the outcome to
        give instead."""
        at, names, expiries, tokens, limits = store_batch_args(keys, valid_until, owners, caps, self.margin_seconds, now)
        if admit is not None and len(admit) != len(names):
            raise ValueError("one exposure reading per key")

        def run(conn: sqlite3.Connection) -> list[Any]:
            # Expired rows go in small steps so one batch never pays for a large backlog.
            conn.execute(
                "DELETE FROM reservations WHERE key IN"
                " (SELECT key FROM reservations WHERE expires_at <= ? AND settled = 0 LIMIT 512)",
                (at,),
            )
            out: list[Any] = []
            for i, (key, expires, owner, cap) in enumerate(zip(names, expiries, tokens, limits)):
                row = conn.execute("SELECT settled, owner, expires_at FROM reservations WHERE key = ?", (key,)).fetchone()
                if row is not None and (row[0] or row[2] > at):
                    out.append(row[0] == 0 and row[1] == owner)
                    continue
                if expires <= at:
                    # Kept for no time is not kept: refused, never acknowledged.
                    conn.execute("DELETE FROM reservations WHERE key = ?", (key,))
                    out.append(None)
                    continue
                if admit is not None:
                    refused = admit(conn, i, key, owner, expires, at)
                    if refused is not None:
                        out.append(refused)
                        continue
                conn.execute(
                    "INSERT OR REPLACE INTO reservations VALUES (?, 0, ?, ?, '0', ?)",
                    (key, owner, None if cap is None else str(cap), expires),
                )
                out.append(True)
            return out

        result: list[Any] = self._tx(run)
        return result

    @staticmethod
    def _live(conn: sqlite3.Connection, key: bytes, owner: str, now: int) -> tuple[bool, int | None, int]:
        """(settled, cap, charged) of the owner's live entry under ``key``."""
        row = conn.execute("SELECT settled, owner, cap, charged, expires_at FROM reservations WHERE key = ?", (key,)).fetchone()
        if row is None or (not row[0] and row[4] <= now):
            raise _refused("not_found")
        if row[1] != owner:
            raise _refused("not_owner")
        return bool(row[0]), None if row[2] is None else _stored_int(row[2], "cap"), _stored_int(row[3], "charge")

    def settle(self, key: bytes, owner: str, *, now: int | None = None) -> int:
        """Marks the caller's reservation settled, kept for as long as the file lives; returns
        the upto total charged (0 for exact)."""
        key, owner, at = store_key_arg(key), store_owner_arg(owner), store_now_arg(now)

        def run(conn: sqlite3.Connection) -> int:
            settled, _cap, charged = self._live(conn, key, owner, at)
            if not settled:
                conn.execute("UPDATE reservations SET settled = 1 WHERE key = ?", (key,))
            return charged

        result: int = self._tx(run)
        return result

    def release(self, key: bytes, owner: str, *, now: int | None = None) -> None:
        """Drops the caller's reservation: nothing was served and nothing broadcast."""
        key, owner, at = store_key_arg(key), store_owner_arg(owner), store_now_arg(now)

        def run(conn: sqlite3.Connection) -> None:
            settled, _cap, _charged = self._live(conn, key, owner, at)
            if settled:
                raise _refused("closed")
            conn.execute("DELETE FROM reservations WHERE key = ?", (key,))

        self._tx(run)

    def charge(self, key: bytes, owner: str, amount: int, *, now: int | None = None) -> int:
        """Debits an upto session by ``amount`` (an int in [0, 2**256)); returns the new total;
        never passes the cap."""
        key, owner, value, at = store_key_arg(key), store_owner_arg(owner), store_amount_arg(amount), store_now_arg(now)

        def run(conn: sqlite3.Connection) -> int:
            settled, cap, charged = self._live(conn, key, owner, at)
            if settled:
                raise _refused("closed")
            if cap is None:
                raise _refused("not_upto")
            total = charged + value
            if total > cap:
                raise _refused("exceeds_cap")
            conn.execute("UPDATE reservations SET charged = ? WHERE key = ?", (str(total), key))
            return total

        result: int = self._tx(run)
        return result

    def state(self, key: bytes, *, now: int | None = None) -> tuple[str, str, int, int | None] | None:
        """``("reserved" | "settled", owner, charged_total, expires_at)`` for a live key, else
        None; ``expires_at`` is None for a settled key (kept for as long as the file lives)."""
        key, at = store_key_arg(key), store_now_arg(now)
        try:
            row = self._conn().execute("SELECT settled, owner, charged, expires_at FROM reservations WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise NonceStoreError(f"sqlite store at {self.path!r}: {exc}") from exc
        if row is None or (not row[0] and row[3] <= at):
            return None
        charged = _stored_int(row[2], "charge")
        return ("settled", row[1], charged, None) if row[0] else ("reserved", row[1], charged, row[3])

    def sweep(self, *, now: int | None = None) -> int:
        """Drops expired (unsettled) rows; returns how many remain."""
        at = store_now_arg(now)

        def run(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM reservations WHERE expires_at <= ? AND settled = 0", (at,))
            count: int = conn.execute("SELECT count(*) FROM reservations").fetchone()[0]
            return count

        result: int = self._tx(run)
        return result

    def close(self) -> None:
        """Closes this thread's connection; the store refuses every later call."""
        self._closed = True
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> SqliteNonceStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- the exposure ledger (chain checks; its tables and rules: x402_verify.chain.exposure) -----

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
        """``reserve_many``, except that an item the payer's capacity does not cover on top of
        its live reservations is refused (``"exposure"``), in the same transaction."""
        from x402_verify.chain import exposure as ledger

        result: list[bool | str | None] = self._reserve(keys, valid_until, owners, caps, now, ledger.SqliteAdmission(exposure))
        return result

    def settle_exposure(self, key: bytes, owner: str, ledger_id: str, block: int | None, *, now: int | None = None) -> None:
        """Records the block a settled reservation settled in (see ``outstanding``)."""
        from x402_verify.chain import exposure as ledger

        ledger.sqlite_settle_exposure(self, key, owner, block, now)

    def outstanding(self, chain_id: int, token: str, payer: str, *, now: int | None = None, as_of_block: int | None = None) -> int:
        """What the payer's live reservations on (chain, token) promise, as a balance read at
        ``as_of_block`` would have to cover it (None: every settled amount still counts)."""
        from x402_verify.chain import exposure as ledger

        return ledger.sqlite_outstanding(self, ledger.ledger_id(chain_id, token, payer), as_of_block, now)


class RedisNonceStore:
    """Reservations shared by gateway replicas through Redis (or a Redis Cluster).

    A batch is ``SET key value NX GET PX lifetime`` per key (Redis >= 7.0), atomic per key: on
    one server a single Lua script call runs them all (one round trip); on a cluster, one
    pipeline sends each node its keys in one round trip (keys need no hash tags: each stands
    alone). State changes are owner-checked ``WATCH``/``MULTI`` transactions on one key.

    What is kept, and for how long: an unsettled reservation lives ``expires_at - now``
    seconds (validBefore / deadline + ``margin_seconds``, less the ``now`` the verifier was
    given), a lifetime relative to the gateway's clock, so a Redis server whose clock
    disagrees with the gateway's neither drops it early nor keeps it late. A settled key has
    its TTL removed: it stays for as long as the data set does (about 150 bytes each).

    Connection errors, timeouts and ``OOM`` answers raise ``NonceStoreError`` (fail closed).
    A timeout is ambiguous: the server may still apply the ``SET`` after the client gave up, so
    that payment then reads as a replay until it expires and its payer must sign a new one. It
    fails closed; it is never accepted twice. A ``client=`` of your own may or may not decode
    responses; this store reads both. ``close()`` closes a client the store made itself.
    Recommended server settings: ``maxmemory-policy noeviction``, ``appendonly yes``; see
    docs/redis.md for what replication, AOF and clock skew do and do not do.
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
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        try:
            prefix.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("prefix must be valid Unicode (no lone surrogates)") from None
        if len(prefix) > 256:
            raise ValueError("prefix is at most 256 characters")
        timeout = _timeout(timeout, positive=True)
        self._redis = redis
        self.margin_seconds: int = store_margin_arg(margin_seconds)
        self.prefix = prefix
        self.cluster = bool(cluster)
        self._scripts: dict[str, Any] = {}
        self._closed = False
        self._owns_client = client is None
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

    def _open(self) -> None:
        if self._closed:
            raise NonceStoreError(_CLOSED)

    @staticmethod
    def _fail(exc: Exception) -> NonceStoreError:
        return NonceStoreError(f"redis: {_brief(exc)}")

    # A value is ``state|cap|charged|expires_at|owner``: state R (reserved) or S (settled),
    # cap empty for exact payments, expires_at (the verifier's clock) empty once settled. The
    # owner comes last, so any owner text (``|`` included) reads back as it was written.
    @staticmethod
    def _value(state: str, cap: int | None, charged: int, expires: int | None, owner: str) -> str:
        return f"{state}|{'' if cap is None else cap}|{charged}|{'' if expires is None else expires}|{owner}"

    @staticmethod
    def _parse(value: Any) -> tuple[str, int | None, int, int | None, str]:
        if isinstance(value, bytes):  # a client made without decode_responses=True
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise NonceStoreError("the store holds a value it did not write") from None
        parts = value.split("|", 4) if isinstance(value, str) else []
        if len(parts) != 5 or parts[0] not in ("R", "S"):
            raise NonceStoreError("the store holds a value it did not write")
        state, cap, charged, expires, owner = parts
        return (
            state,
            None if cap == "" else _stored_int(cap, "cap"),
            _stored_int(charged, "charge"),
            None if expires == "" else _stored_int(expires, "expiry"),
            owner,
        )

    def reserve_many(
        self,
        keys: Sequence[bytes],
        valid_until: Sequence[int],
        owners: Sequence[str],
        caps: Sequence[int | None] | None = None,
        *,
        now: int | None = None,
    ) -> list[bool | None]:
        result: list[bool | None] = self._reserve(keys, valid_until, owners, caps, now, None)
        return result

    def _reserve(self, keys: Sequence[bytes], valid_until: Sequence[int], owners: Sequence[str], caps: Sequence[int | None] | None, now: int | None, rule: Any) -> list[Any]:
        """The reservation rules, once for both entry points. ``rule`` (the exposure ledger's,
        x402_verify.chain.exposure) is Lua spliced into the reserve script: its ``admit(i)`` is
        asked, in the same script, about each key that is free and would be kept, and answers
        false to let it be reserved (then ``admitted(i)`` records it) or a number, the refusal
        (``rule.refused``) given instead."""
        at, names, expiries, tokens, limits = store_batch_args(keys, valid_until, owners, caps, self.margin_seconds, now)
        self._open()
        if rule is not None and len(rule) != len(names):
            raise ValueError("one exposure reading per key")
        if not names:
            return []
        # The lifetime, relative to the verifier's clock (0: nothing to keep, only read).
        lifetimes = [max(0, expires - at) * 1000 for expires in expiries]
        values = [self._value("R", cap, 0, expires, owner) for cap, expires, owner in zip(limits, expiries, tokens)]
        if not self.cluster:
            return self._reserve_scripted(names, values, lifetimes, tokens, rule, at, expiries)
        if rule is not None:
            raise NonceStoreError("the exposure ledger needs a single Redis server, not a cluster")
        # On a cluster a script may only touch one hash slot, so the batch is a pipeline:
        # redis-py sends each node its commands in one round trip.
        pipe = self.client.pipeline(transaction=False)
        for key, value, px in zip(names, values, lifetimes):
            if px == 0:
                pipe.get(self._name(key))
            else:
                pipe.set(self._name(key), value, nx=True, get=True, px=px)
        try:
            answers = pipe.execute(raise_on_error=True)
        except self._redis.RedisError as exc:
            raise self._fail(exc) from exc
        return self._outcomes(tokens, answers, lifetimes)

    # One script call reserves a whole batch on a single server: one round trip, and the
    # per-command encoding and reply parsing that dominate a 256-command pipeline in redis-py
    # happen once. ARGV[1] is the number n of the batch's keys (KEYS[1..n]); then value and
    # lifetime (ms) per key; lifetime 0 means the item would be kept for no time, so only its
    # holder is read. An admission rule's keys and arguments follow the batch's.
    _RESERVE_SCRIPT = """
local n = tonumber(ARGV[1])
local admit, admitted
-- admission rule --
local out = {}
for i = 1, n do
  local key, value, px = KEYS[i], ARGV[2 * i], ARGV[2 * i + 1]
  if px == '0' then
    out[i] = redis.call('GET', key)
  else
    local refused = admit and redis.call('EXISTS', key) == 0 and admit(i)
    if refused then
      out[i] = refused
    else
      out[i] = redis.call('SET', key, value, 'NX', 'GET', 'PX', px)
      if admit and not out[i] then admitted(i) end
    end
  end
end
return out
"""

    def _reserve_scripted(
        self, names: list[bytes], values: list[str], lifetimes: list[int], owners: list[str], rule: Any, at: int, expiries: list[int]
    ) -> list[Any]:
        keys = [self._name(k) for k in names]
        args: list[str | int] = [len(names)]
        for value, px in zip(values, lifetimes):
            args.append(value)
            args.append(px)
        source = self._RESERVE_SCRIPT
        if rule is not None:
            source = source.replace("-- admission rule --", rule.source)
            keys += rule.keys
            args += rule.args(at, expiries)
        try:
            script = self._scripts.get(source)
            if script is None:
                script = self._scripts[source] = self.client.register_script(source)
            answers = script(keys=keys, args=args)
        except self._redis.RedisError as exc:
            raise self._fail(exc) from exc
        return self._outcomes(owners, answers, lifetimes, None if rule is None else rule.refused)

    @classmethod
    def _outcomes(cls, owners: Sequence[str], answers: Any, lifetimes: Sequence[int], refused: Any = None) -> list[Any]:
        if not isinstance(answers, list) or len(answers) != len(owners):
            raise NonceStoreError(f"redis answered {type(answers).__name__} for {len(owners)} keys")
        out: list[Any] = []
        for owner, answer, px in zip(owners, answers, lifetimes):
            if isinstance(answer, int) and refused is not None:
                out.append(refused)  # the admission rule's refusal (only a rule answers a number)
                continue
            if answer is None:
                # Free: reserved now, unless it was to be kept for no time (then nothing is).
                out.append(True if px else None)
                continue
            try:
                state, _cap, _charged, _expires, holder = cls._parse(answer)
            except NonceStoreError:
                out.append(False)  # held by something this store cannot read: not free
                continue
            out.append(state == "R" and holder == owner)
        return out

    def _update(self, key: bytes, owner: str, change: Any) -> Any:
        """Runs ``change(state, cap, charged, expires) -> (new_value | None, keep_ttl, result)``
        on the owner's entry, under WATCH."""
        self._open()
        name = self._name(key)
        try:
            with self.client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(name)
                        value = pipe.get(name)
                        if value is None:
                            raise _refused("not_found")
                        state, cap, charged, expires, holder = self._parse(value)
                        if holder != owner:
                            raise _refused("not_owner")
                        new_value, keep_ttl, result = change(state, cap, charged, expires)
                        pipe.multi()
                        if new_value is None:
                            pipe.delete(name)
                        else:
                            # Without KEEPTTL, SET drops the TTL: that is how a settled key
                            # comes to be kept for good.
                            pipe.set(name, new_value, keepttl=keep_ttl)
                        pipe.execute()
                        return result
                    except self._redis.WatchError:
                        continue
        except self._redis.RedisError as exc:
            raise self._fail(exc) from exc

    def settle(self, key: bytes, owner: str, *, now: int | None = None) -> int:
        """Marks the caller's reservation settled and removes its TTL (kept for good);
        returns the upto total charged (0 for exact)."""
        key, owner = store_key_arg(key), store_owner_arg(owner)
        store_now_arg(now)  # checked like every store's; Redis times the lifetime itself

        def change(state: str, cap: int | None, charged: int, expires: int | None) -> tuple[str, bool, int]:
            return self._value("S", cap, charged, None, owner), False, charged

        result: int = self._update(key, owner, change)
        return result

    def release(self, key: bytes, owner: str, *, now: int | None = None) -> None:
        """Drops the caller's reservation: nothing was served and nothing broadcast."""
        key, owner = store_key_arg(key), store_owner_arg(owner)
        store_now_arg(now)

        def change(state: str, cap: int | None, charged: int, expires: int | None) -> tuple[None, bool, None]:
            if state == "S":
                raise _refused("closed")
            return None, False, None

        self._update(key, owner, change)

    def charge(self, key: bytes, owner: str, amount: int, *, now: int | None = None) -> int:
        """Debits an upto session by ``amount`` (an int in [0, 2**256)); returns the new total;
        never passes the cap."""
        key, owner, value = store_key_arg(key), store_owner_arg(owner), store_amount_arg(amount)
        store_now_arg(now)

        def change(state: str, cap: int | None, charged: int, expires: int | None) -> tuple[str, bool, int]:
            if state == "S":
                raise _refused("closed")
            if cap is None:
                raise _refused("not_upto")
            total = charged + value
            if total > cap:
                raise _refused("exceeds_cap")
            return self._value("R", cap, total, expires, owner), True, total

        result: int = self._update(key, owner, change)
        return result

    def state(self, key: bytes, *, now: int | None = None) -> tuple[str, str, int, int | None] | None:
        """``("reserved" | "settled", owner, charged_total, expires_at)`` for a key Redis
        holds, else None; ``expires_at`` (on the verifier's clock) is None once settled."""
        key = store_key_arg(key)
        store_now_arg(now)
        self._open()
        try:
            value = self.client.get(self._name(key))
        except self._redis.RedisError as exc:
            raise self._fail(exc) from exc
        if value is None:
            return None
        state, _cap, charged, expires, holder = self._parse(value)
        return ("settled" if state == "S" else "reserved", holder, charged, expires)

    def close(self) -> None:
        """Refuses every later call, and closes the client if the store made it."""
        self._closed = True
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> RedisNonceStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- the exposure ledger (chain checks; its hashes and rules: x402_verify.chain.exposure) -----

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
        """``reserve_many``, except that an item the payer's capacity does not cover on top of
        its live reservations is refused (``"exposure"``), in the same script. One server only:
        on a cluster a payer's ledger and its reservations would sit in different hash slots."""
        from x402_verify.chain import exposure as ledger

        result: list[bool | str | None] = self._reserve(keys, valid_until, owners, caps, now, ledger.RedisAdmission(self, exposure))
        return result

    def settle_exposure(self, key: bytes, owner: str, ledger_id: str, block: int | None, *, now: int | None = None) -> None:
        """Records the block a settled reservation settled in (see ``outstanding``)."""
        from x402_verify.chain import exposure as ledger

        ledger.redis_settle_exposure(self, key, owner, ledger_id, block, now)

    def outstanding(self, chain_id: int, token: str, payer: str, *, now: int | None = None, as_of_block: int | None = None) -> int:
        """What the payer's live reservations on (chain, token) promise, as a balance read at
        ``as_of_block`` would have to cover it (None: every settled amount still counts)."""
        from x402_verify.chain import exposure as ledger

        return ledger.redis_outstanding(self, ledger.ledger_id(chain_id, token, payer), as_of_block, now)
