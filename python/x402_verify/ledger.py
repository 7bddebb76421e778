"""The settlement ledger: what became of each verified payment after its nonce was reserved.

A record moves ``open`` (an upto session taking charges) -> ``settling`` (held by one worker
under a lease, so one replica's reaper settles a session, not two) -> ``settled`` (with its
transaction) or ``failed``; the facilitator's answer is stored, so asking again gives the same
answer, and a lease that runs out (its holder crashed mid-settlement) lets another worker take
the record over and finish it. Every open or settling record carries ``due_at``: when the
reaper must look at it (a session's idle timeout or deadline; a lease's end).

The nonce store (``x402_verify.stores``) stays the authority on replay and on upto totals
(its ``charge`` is atomic); the ledger holds what settlement needs besides: the payload and
requirements to send upstream, the session's route binding, refunded holds, the outcome.

- ``MemoryLedger``: one process (the default).
- ``RedisLedger``: shared by replicas (and durable as the Redis server is), one hash per record;
  a single server or a Redis Cluster.

Records are flat ``dict[str, str]``; numbers travel as decimal text.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Mapping
from typing import Any, Protocol

from x402_verify.errors import NonceStoreError

__all__ = ["Ledger", "MemoryLedger", "RedisLedger"]

OPEN, SETTLING, SETTLED, FAILED = "open", "settling", "settled", "failed"


class Ledger(Protocol):
    def open(self, key: str, record: Mapping[str, str], *, keep_until: float) -> bool:
        """Creates an ``open`` record unless one exists; False if it did."""

    def get(self, key: str) -> dict[str, str] | None: ...

    def find_session(self, session_id: str) -> dict[str, str] | None: ...

    def touch(self, key: str, *, due_at: float, credit: int = 0, exhausted: bool = False, now: float | None = None) -> None:
        """An open record's new ``due_at`` and ``last_seen``; ``credit`` adds to its refunds;
        ``exhausted`` marks a session no request can charge any more."""

    def acquire(
        self, key: str, holder: str, *, lease_seconds: float, now: float | None = None,
        record: Mapping[str, str] | None = None, keep_until: float = 0.0,
    ) -> dict[str, str] | None:
        """Takes the record into ``settling`` for ``holder``: from ``open``, from ``settling``
        whose lease ran out, or (with ``record``) creating it. None: someone else holds it, or
        it is finished (read its outcome with ``get``)."""

    def finish(self, key: str, holder: str, *, state: str, outcome: str) -> bool:
        """``settled``/``failed`` with the outcome (JSON text), if ``holder`` still holds it."""

    def due(self, *, now: float | None = None, limit: int = 100) -> list[str]:
        """Keys whose ``due_at`` has come (open sessions to settle, leases run out)."""


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def keep_arg(keep_until: float, now: float) -> float:
    """``keep_until`` of a record about to be created, checked: a record kept for no time is
    not kept (Redis would drop it at once and then recreate it, field by field, with no expiry
    at all), so every ledger refuses it alike."""
    if type(keep_until) not in (int, float) or not keep_until == keep_until:  # bool, str, NaN
        raise TypeError(f"keep_until must be a number of Unix seconds, not {keep_until!r}")
    if keep_until <= now:
        raise ValueError(f"keep_until {keep_until!r} is not after now ({now!r}): the record would be kept for no time")
    return float(keep_until)


class MemoryLedger:
    """The in-process ledger: a dict under a lock; finished records are kept until their
    ``keep_until`` (the authorization's deadline) and swept as the ledger is used."""

    def __init__(self, *, max_records: int = 1_000_000, keep_finished_seconds: float = 60.0) -> None:
        self.max_records = max_records
        # Nothing here survives the process, and the nonce store already refuses the payment
        # again, so a finished record is kept only briefly (for a late duplicate's answer).
        self.keep_finished_seconds = keep_finished_seconds
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, str]] = {}
        self._due: dict[str, float] = {}
        self._sessions: dict[str, str] = {}
        self._last_sweep = 0.0

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < 1.0 and len(self._records) < self.max_records:
            return
        self._last_sweep = now
        dead = [k for k, r in self._records.items() if float(r["keep_until"]) <= now]
        for key in dead:
            record = self._records.pop(key)
            self._due.pop(key, None)
            self._sessions.pop(record.get("session", ""), None)

    def open(self, key: str, record: Mapping[str, str], *, keep_until: float) -> bool:
        keep_until = keep_arg(keep_until, time.time())
        with self._lock:
            now = time.time()
            self._sweep(now)
            if key in self._records:
                return False
            if len(self._records) >= self.max_records:
                raise NonceStoreError("the ledger is full")
            rec = {**record, "state": OPEN, "keep_until": repr(keep_until), "credit": record.get("credit", "0")}
            self._records[key] = rec
            self._due[key] = float(rec.get("due_at", "0"))
            if rec.get("session"):
                self._sessions[rec["session"]] = key
            return True

    def get(self, key: str) -> dict[str, str] | None:
        with self._lock:
            rec = self._records.get(key)
            return dict(rec) if rec is not None and float(rec["keep_until"]) > time.time() else None

    def find_session(self, session_id: str) -> dict[str, str] | None:
        with self._lock:
            key = self._sessions.get(session_id)
        return None if key is None else self.get(key)

    def touch(self, key: str, *, due_at: float, credit: int = 0, exhausted: bool = False, now: float | None = None) -> None:
        with self._lock:
            rec = self._records.get(key)
            if rec is None or rec["state"] != OPEN:
                return
            if exhausted:
                rec["exhausted"] = "1"
            rec["last_seen"] = repr(_now(now))
            rec["due_at"] = repr(due_at)
            if credit:
                rec["credit"] = str(int(rec["credit"]) + credit)
            self._due[key] = float(rec["due_at"])

    def acquire(
        self, key: str, holder: str, *, lease_seconds: float, now: float | None = None,
        record: Mapping[str, str] | None = None, keep_until: float = 0.0,
    ) -> dict[str, str] | None:
        now = _now(now)
        if record is not None:
            keep_until = keep_arg(keep_until, now)
        with self._lock:
            rec = self._records.get(key)
            if rec is None:
                if record is None:
                    return None
                self._sweep(now)
                if len(self._records) >= self.max_records:
                    raise NonceStoreError("the ledger is full")
                rec = {**record, "credit": record.get("credit", "0"), "keep_until": repr(keep_until)}
                self._records[key] = rec
            elif rec["state"] == SETTLING and float(rec["lease_until"]) > now:
                return None
            elif rec["state"] not in (OPEN, SETTLING):
                return None
            rec["state"] = SETTLING
            rec["holder"] = holder
            rec["lease_until"] = repr(now + lease_seconds)
            rec["attempts"] = str(int(rec.get("attempts", "0")) + 1)
            self._due[key] = now + lease_seconds
            return dict(rec)

    def finish(self, key: str, holder: str, *, state: str, outcome: str) -> bool:
        with self._lock:
            rec = self._records.get(key)
            if rec is None or rec["state"] != SETTLING or rec.get("holder") != holder:
                return False
            rec["state"] = state
            rec["outcome"] = outcome
            # What settlement needed is no longer needed; the outcome and binding stay.
            rec.pop("payload", None)
            rec.pop("requirements", None)
            rec["keep_until"] = repr(min(float(rec["keep_until"]), time.time() + self.keep_finished_seconds))
            self._due.pop(key, None)
            return True

    def due(self, *, now: float | None = None, limit: int = 100) -> list[str]:
        now = _now(now)
        with self._lock:
            self._sweep(now)
            return [k for k, at in self._due.items() if at <= now][:limit]

    def __len__(self) -> int:
        return len(self._records)


class RedisLedger:
    """The ledger in Redis (one server or a Redis Cluster), shared by gateway replicas: a hash
    per record (expiring with the authorization), sorted sets of due times, a key per session
    id. Every change of a record is one Lua script over the record and its due set (atomic on
    the server). Errors raise ``NonceStoreError``.

    A script may touch only one hash slot of a cluster, and no one set can share a slot with
    every record, so the records are spread over ``due_sets`` groups: a record's key and its
    group's due set carry the same hash tag (``<prefix>{<group>}r:<key>``,
    ``<prefix>{<group>}due``), the group chosen by a CRC-32 of the key; ``due`` reads every
    group's set. A session id's key stands alone (a plain ``GET``) and is written after its
    record.

    Args:
        url / client / timeout: as ``RedisNonceStore``; ``cluster`` for a Redis Cluster (a
            ``RedisCluster`` client is recognised as one).
        prefix: starts every key name; no braces (they would change the hash tag).
        due_sets: how many groups (default 1 on a single server, where one set serves all;
            64 on a cluster, which spread over its masters).
    """

    _OPEN = """
local rec, due = KEYS[1], KEYS[2]
if redis.call('EXISTS', rec) == 1 then return 0 end
for i = 4, #ARGV, 2 do redis.call('HSET', rec, ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIREAT', rec, ARGV[1])
redis.call('ZADD', due, ARGV[2], ARGV[3])
return 1
"""
    _ACQUIRE = """
local rec, due = KEYS[1], KEYS[2]
local holder, now, lease, member = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local state = redis.call('HGET', rec, 'state')
if not state then
  if #ARGV <= 5 then redis.call('ZREM', due, member) return nil end
  for i = 6, #ARGV, 2 do redis.call('HSET', rec, ARGV[i], ARGV[i + 1]) end
  redis.call('HSET', rec, 'credit', redis.call('HGET', rec, 'credit') or '0')
  redis.call('PEXPIREAT', rec, math.floor(tonumber(ARGV[5]) * 1000))
elseif state == 'settling' then
  if tonumber(redis.call('HGET', rec, 'lease_until')) > now then return nil end
elseif state ~= 'open' then
  return nil
end
local attempts = tonumber(redis.call('HGET', rec, 'attempts') or '0') + 1
redis.call('HSET', rec, 'state', 'settling', 'holder', holder, 'lease_until', tostring(now + lease), 'attempts', tostring(attempts))
redis.call('ZADD', due, now + lease, member)
return redis.call('HGETALL', rec)
"""
    _FINISH = """
local rec, due = KEYS[1], KEYS[2]
if redis.call('HGET', rec, 'state') ~= 'settling' or redis.call('HGET', rec, 'holder') ~= ARGV[1] then return 0 end
redis.call('HSET', rec, 'state', ARGV[2], 'outcome', ARGV[3])
redis.call('HDEL', rec, 'payload', 'requirements')
redis.call('ZREM', due, ARGV[4])
return 1
"""
    _TOUCH = """
local rec, due = KEYS[1], KEYS[2]
if redis.call('HGET', rec, 'state') ~= 'open' then return 0 end
redis.call('HSET', rec, 'last_seen', ARGV[1], 'due_at', ARGV[2])
if ARGV[3] ~= '0' then redis.call('HINCRBY', rec, 'credit', ARGV[3]) end
if ARGV[5] == '1' then redis.call('HSET', rec, 'exhausted', '1') end
redis.call('ZADD', due, tonumber(ARGV[2]), ARGV[4])
return 1
"""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        cluster: bool = False,
        prefix: str = "x402l:",
        timeout: float = 0.5,
        due_sets: int | None = None,
        client: Any = None,
    ) -> None:
        try:
            import redis
            import redis.cluster
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("RedisLedger needs redis-py: pip install 'x402-verify[redis]'") from exc
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ValueError("prefix must be a str without braces (they would change the keys' hash tag)")
        self.cluster = bool(cluster) or isinstance(client, redis.cluster.RedisCluster)
        if due_sets is None:
            due_sets = 64 if self.cluster else 1
        if type(due_sets) is not int or not 1 <= due_sets <= 16384:
            raise ValueError("due_sets is an int from 1 to 16384 (a cluster's hash slots)")
        # redis-py raises RedisClusterException (not a RedisError) when no node of a cluster
        # answers, or a command's keys span slots: both must fail closed too.
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, redis.exceptions.RedisClusterException)
        self.prefix = prefix
        self.due_sets = due_sets
        kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "decode_responses": True}
        if client is not None:
            self.client = client
        else:
            try:
                self.client = redis.RedisCluster.from_url(url, **kwargs) if self.cluster else redis.Redis.from_url(url, **kwargs)
            except self._errors as exc:  # a cluster client reads the slot map as it is made
                raise NonceStoreError(f"redis ledger: {type(exc).__name__}: {exc}") from exc
        self._open = self.client.register_script(self._OPEN)
        self._acquire = self.client.register_script(self._ACQUIRE)
        self._finish = self.client.register_script(self._FINISH)
        self._touch = self.client.register_script(self._TOUCH)

    def _keys(self, key: str) -> list[str]:
        """The record's key and its group's due set: one hash tag, so one slot."""
        tag = f"{self.prefix}{{{zlib.crc32(key.encode()) % self.due_sets}}}"
        return [f"{tag}r:{key}", f"{tag}due"]

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._errors as exc:
            raise NonceStoreError(f"redis ledger: {type(exc).__name__}: {exc}") from exc

    def open(self, key: str, record: Mapping[str, str], *, keep_until: float) -> bool:
        keep_until = keep_arg(keep_until, time.time())
        fields = {**record, "state": OPEN, "credit": record.get("credit", "0"), "keep_until": repr(keep_until)}
        args = [str(int(keep_until * 1000)), repr(float(fields.get("due_at", "0"))), key]
        for k, v in fields.items():
            args += [k, v]
        if not self._call(self._open, keys=self._keys(key), args=args):
            return False
        if fields.get("session"):
            # In its own slot: written once the record exists, so it never names a record
            # that was not made (a failure here leaves a record due to be settled, unnamed).
            self._call(self.client.set, f"{self.prefix}s:{fields['session']}", key, pxat=int(keep_until * 1000))
        return True

    def get(self, key: str) -> dict[str, str] | None:
        rec: dict[str, str] = self._call(self.client.hgetall, self._keys(key)[0])
        return rec or None

    def find_session(self, session_id: str) -> dict[str, str] | None:
        key = self._call(self.client.get, f"{self.prefix}s:{session_id}")
        return None if key is None else self.get(key)

    def touch(self, key: str, *, due_at: float, credit: int = 0, exhausted: bool = False, now: float | None = None) -> None:
        args = [repr(_now(now)), repr(due_at), str(credit), key, "1" if exhausted else "0"]
        self._call(self._touch, keys=self._keys(key), args=args)

    def acquire(
        self, key: str, holder: str, *, lease_seconds: float, now: float | None = None,
        record: Mapping[str, str] | None = None, keep_until: float = 0.0,
    ) -> dict[str, str] | None:
        at = _now(now)
        args: list[str] = [holder, repr(at), repr(lease_seconds), key]
        if record is not None:
            keep_until = keep_arg(keep_until, at)
            args.append(repr(keep_until))
            for k, v in {**record, "keep_until": repr(keep_until)}.items():
                args += [k, v]
        flat = self._call(self._acquire, keys=self._keys(key), args=args)
        if not flat:
            return None
        return dict(zip(flat[0::2], flat[1::2], strict=False))

    def finish(self, key: str, holder: str, *, state: str, outcome: str) -> bool:
        return bool(self._call(self._finish, keys=self._keys(key), args=[holder, state, outcome, key]))

    def due(self, *, now: float | None = None, limit: int = 100) -> list[str]:
        at = _now(now)
        # Every group's earliest ``limit``, then the earliest ``limit`` of those: what one set
        # would have answered. One pipeline: on a cluster, one round trip per node.
        pipe = self.client.pipeline(transaction=False)
        for group in range(self.due_sets):
            pipe.zrangebyscore(f"{self.prefix}{{{group}}}due", "-inf", at, start=0, num=limit, withscores=True)
        found: list[list[tuple[str, float]]] = self._call(pipe.execute)
        merged = sorted((score, member) for entries in found for member, score in entries)
        return [member for _, member in merged[:limit]]
