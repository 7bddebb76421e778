"""Reservations that count what is promised: the exposure ledger.

Per (chain, token, payer) a store keeps the amounts of its live reservations (exact: the
amount; upto: the signed maximum until settled, then the charged total). A payment is reserved
only if ``outstanding + amount <= capacity``, where capacity is what the chain stage read (the
balance; for Permit2 the lesser of balance and allowance), decided in the same atomic step as
the nonce reservation (one lock for the memory store, one transaction for SQLite, one script for
Redis). Releasing or expiry drops an entry; a settled entry is not counted by a read at or
after the settlement's block (``Verifier.settle(..., block=receipt_block)``), which sees the
balance it left, and still counted by any older read, so node lag cannot admit more than the
balance covers; it leaves the ledger with its reservation. A settlement reported
without its block stays counted until its reservation expires (safe, but it holds capacity).

The read's block is the ``eth_blockNumber`` answer of the same JSON-RPC batch minus one: a node
may run the batch's calls on the block before the one it names.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from x402_verify._core import MemoryNonceStore, VerifyResponse, store_batch_args

__all__ = ["EXPOSED", "Exposure", "MAX_LEDGER_ENTRIES", "MemoryExposureStore", "ledger_id", "reserve_exposed", "settle_exposure"]

log = logging.getLogger("x402_verify.chain")

#: A reserve_exposed outcome: refused because the payer's capacity is already promised.
EXPOSED = "exposure"
#: Most live entries one payer's ledger holds; past it further payments are refused.
MAX_LEDGER_ENTRIES = 10_000

_REPLAY_REASON = {"eip3009": "invalid_exact_evm_nonce_already_used", "permit2": "permit2_nonce_already_used"}


class Exposure(NamedTuple):
    """What the chain stage read for one accepted payment."""

    ledger: str
    amount: int
    capacity: int
    read_block: int  # -1: unknown (then no settled entry is dropped)


def _seen_gone(settled_block: int | None, read_block: int | None) -> bool:
    # A settled entry is not deleted when one read has seen it: a later read from a lagging
    # node (an older block) must count it again. It leaves with its reservation.
    return settled_block is not None and read_block is not None and settled_block <= read_block


def ledger_id(chain_id: int, token: str, payer: str) -> str:
    return f"{chain_id}:{token.lower()}:{payer.lower()}"


def reserve_exposed(store: Any, results: list[VerifyResponse], exposure: Sequence[Exposure | None], now: int | None) -> list[VerifyResponse]:
    """``stores.reserve_verified`` with the exposure check, for payments the chain stage passed."""
    picked = [i for i, r in enumerate(results) if r.is_valid and r.replay_key is not None]
    if not picked:
        return results
    batch = secrets.token_hex(8)
    owners = [f"{batch}:{i}" for i in picked]
    keys, until, caps, entries = [], [], [], []
    for i in picked:
        r = results[i]
        keys.append(r.replay_key)
        until.append(r.valid_until or 0)
        auth = r.authorization
        caps.append(auth.amount if r.scheme == "upto_permit2" and auth is not None else None)
        entries.append(exposure[i])
    try:
        if any(e is None for e in entries):
            raise ValueError("a chain-checked payment has no exposure reading")
        outcomes = store.reserve_exposed(keys, until, owners, caps, entries, now=now)
        if len(outcomes) != len(keys):
            raise ValueError(f"store answered {len(outcomes)} outcomes for {len(keys)} keys")
    except Exception as exc:  # fail closed on anything the store raises
        log.warning("nonce store unavailable: %s", exc)
        outcomes = [None] * len(keys)
        failure = f"{type(exc).__name__}: {exc}"
    else:
        failure = "the nonce store is full"
    out = list(results)
    for i, owner, ok, e in zip(picked, owners, outcomes, entries):
        r = results[i]
        if ok is True:
            out[i] = r.with_reservation(owner)
        elif ok is False:
            out[i] = r.with_invalid(_REPLAY_REASON[r.nonce_space or "permit2"], "this authorization's nonce is already reserved or settled")
        elif ok == EXPOSED:
            assert e is not None
            out[i] = r.with_invalid(
                "payer_exposure_exceeded",
                f"the payer's capacity {e.capacity} does not cover {e.amount} on top of its reserved, unsettled payments",
            )
        else:
            out[i] = r.with_invalid("nonce_store_unavailable", f"replay protection could not answer ({failure}); refused")
    return out


def settle_exposure(store: Any, response: VerifyResponse, owner: str, block: int | None, total: int, now: int | None) -> None:
    """After ``store.settle``: tells the ledger the settlement's block (and an upto session's
    charged total). A failure here leaves the amount counted (safe) and is logged."""
    auth, asset = response.authorization, response.asset
    if response.replay_key is None or auth is None or asset is None or response.chain_id is None:
        return
    amount = total if response.scheme == "upto_permit2" else None
    try:
        store.settle_exposure(response.replay_key, owner, ledger_id(response.chain_id, asset, auth.payer), block, amount, now=now)
    except Exception as exc:  # the amount stays counted until the reservation expires
        log.warning("exposure ledger not updated on settle: %s", exc)


class _Entry:
    __slots__ = ("owner", "amount", "settled_block", "expires_at")

    def __init__(self, owner: str, amount: int, expires_at: int) -> None:
        self.owner = owner
        self.amount = amount
        self.settled_block: int | None = None
        self.expires_at = expires_at


class MemoryExposureStore:
    """The in-process store with an exposure ledger: a ``MemoryNonceStore`` (reservations) and,
    beside it, the ledger, both changed under one lock by ``reserve_exposed``. Every other
    store method is the inner store's. The verifier wraps its memory store in this when chain
    checks are on."""

    def __init__(self, inner: MemoryNonceStore | None = None) -> None:
        self.inner = inner if inner is not None else MemoryNonceStore()
        self._lock = threading.Lock()
        self._ledgers: dict[str, dict[bytes, _Entry]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)

    def _live(self, key: bytes, entry: _Entry, now: int | None) -> bool:
        state = self.inner.state(key, now=now)
        if state is None or state[1] != entry.owner:
            return False
        # A settled key is kept for good (its nonce is spent), but its amount counts only until
        # its window and margin pass, as in the SQLite and Redis ledgers.
        at = int(time.time()) if now is None else now
        return state[0] == "reserved" or at < entry.expires_at + self.inner.margin_seconds

    def _outstanding(self, ledger: str, read_block: int | None, now: int | None) -> tuple[int, int]:
        entries = self._ledgers.get(ledger)
        if not entries:
            return 0, 0
        total = 0
        for key, entry in list(entries.items()):
            if not self._live(key, entry, now):
                del entries[key]
            elif not _seen_gone(entry.settled_block, read_block):
                total += entry.amount
        if not entries:
            del self._ledgers[ledger]
        return total, len(entries)

    def reserve_exposed(
        self,
        keys: Sequence[bytes],
        valid_until: Sequence[int],
        owners: Sequence[str],
        caps: Sequence[int | None],
        exposure: Sequence[Exposure],
        *,
        now: int | None = None,
    ) -> list[bool | str | None]:
        out: list[bool | str | None] = []
        with self._lock:
            for key, until, owner, cap, e in zip(keys, valid_until, owners, caps, exposure, strict=True):
                if self.inner.state(key, now=now) is not None:
                    out.append(False)
                    continue
                total, count = self._outstanding(e.ledger, e.read_block, now)
                if total + e.amount > e.capacity or count >= MAX_LEDGER_ENTRIES:
                    out.append(EXPOSED)
                    continue
                ok = self.inner.reserve_many([key], [until], [owner], [cap], now=now)[0]
                if ok is True:
                    self._ledgers.setdefault(e.ledger, {})[key] = _Entry(owner, e.amount, until)
                out.append(ok)
        return out

    def settle_exposure(self, key: bytes, owner: str, ledger: str, block: int | None, amount: int | None = None, *, now: int | None = None) -> None:  # noqa: ARG002
        """Records the settlement of a reservation: the block it settled in (None: unknown) and,
        for upto, the amount actually charged."""
        with self._lock:
            entry = self._ledgers.get(ledger, {}).get(key)
            if entry is None or entry.owner != owner:
                return
            if amount is not None:
                entry.amount = amount
            entry.settled_block = block

    def outstanding(self, chain_id: int, token: str, payer: str, *, now: int | None = None, as_of_block: int | None = None) -> int:
        """The amount reserved and not yet released, expired, or settled and seen gone by a
        read at ``as_of_block`` (None: every settled amount still counts)."""
        with self._lock:
            return self._outstanding(ledger_id(chain_id, token, payer), as_of_block, now)[0]


# --- SQLite: the ledger is a table beside the reservations, changed in the same transaction --------

_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS exposures ("
    " key BLOB PRIMARY KEY, ledger TEXT NOT NULL, owner TEXT NOT NULL, amount TEXT NOT NULL,"
    " settled_block INTEGER, expires_at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS exposures_ledger ON exposures(ledger)",
)


def _sqlite_outstanding(conn: Any, ledger: str, read_block: int | None, now: int, *, prune: bool) -> tuple[int, int]:
    # An entry counts while its reservation row (same key, same owner) lives, unless it settled
    # in a block the read has seen.
    rows = conn.execute(
        "SELECT e.key, e.amount, e.settled_block, (r.key IS NOT NULL AND r.owner = e.owner AND r.expires_at > ?)"
        " FROM exposures e LEFT JOIN reservations r ON r.key = e.key WHERE e.ledger = ?",
        (now, ledger),
    ).fetchall()
    total, count, dead = 0, 0, []
    for key, amount, settled_block, live in rows:
        if not live:
            dead.append((key,))
            continue
        count += 1
        if not _seen_gone(settled_block, read_block):
            total += int(amount)
    if prune and dead:
        conn.executemany("DELETE FROM exposures WHERE key = ?", dead)
    return total, count


def sqlite_reserve_exposed(
    store: Any, keys: Sequence[bytes], valid_until: Sequence[int], owners: Sequence[str], caps: Sequence[int | None],
    exposure: Sequence[Exposure], now: int,
) -> list[bool | str | None]:
    # The store's own argument checks and expiry rule (clamped, margin added), so a reservation
    # made here is the one reserve_many would have made.
    at, names, expiries, tokens, limits = store_batch_args(keys, valid_until, owners, caps, store.margin_seconds, now)

    def run(conn: Any) -> list[bool | str | None]:
        for statement in _SQLITE_SCHEMA:
            conn.execute(statement)
        # Settled rows are never dropped: their nonce is spent for good.
        conn.execute("DELETE FROM reservations WHERE key IN (SELECT key FROM reservations WHERE expires_at <= ? AND settled = 0 LIMIT 512)", (at,))
        out: list[bool | str | None] = []
        for key, expires, owner, cap, e in zip(names, expiries, tokens, limits, exposure, strict=True):
            row = conn.execute("SELECT settled, owner, expires_at FROM reservations WHERE key = ?", (key,)).fetchone()
            if row is not None and (row[0] or row[2] > at):
                out.append(row[0] == 0 and row[1] == owner)
                continue
            if expires <= at:
                out.append(None)  # kept for no time is not kept: refused, never acknowledged
                continue
            total, count = _sqlite_outstanding(conn, e.ledger, e.read_block, at, prune=True)
            if total + e.amount > e.capacity or count >= MAX_LEDGER_ENTRIES:
                out.append(EXPOSED)
                continue
            conn.execute("INSERT OR REPLACE INTO reservations VALUES (?, 0, ?, ?, '0', ?)", (key, owner, None if cap is None else str(cap), expires))
            conn.execute("INSERT OR REPLACE INTO exposures VALUES (?, ?, ?, ?, NULL, ?)", (key, e.ledger, owner, str(e.amount), expires))
            out.append(True)
        return out

    result: list[bool | str | None] = store._tx(run)
    return result


def sqlite_settle_exposure(store: Any, key: bytes, owner: str, block: int | None, amount: int | None) -> None:
    def run(conn: Any) -> None:
        for statement in _SQLITE_SCHEMA:
            conn.execute(statement)
        conn.execute(
            "UPDATE exposures SET settled_block = ?, amount = COALESCE(?, amount) WHERE key = ? AND owner = ?",
            (block, None if amount is None else str(amount), key, owner),
        )

    store._tx(run)


def sqlite_outstanding(store: Any, ledger: str, as_of_block: int | None, now: int) -> int:
    def run(conn: Any) -> int:
        for statement in _SQLITE_SCHEMA:
            conn.execute(statement)
        return _sqlite_outstanding(conn, ledger, as_of_block, now, prune=False)[0]

    result: int = store._tx(run)
    return result


# --- Redis (one server): one script reserves a batch and updates the ledgers ------------------------
#
# A ledger is a hash ``<prefix>x:<chain>:<token>:<payer>``: field = reservation key name, value
# ``owner|amount|settled_block|expires_ms``. Amounts are decimal strings added as strings (Lua
# numbers are doubles: 2**53 is only 0.009 of an 18-decimal token). On a cluster a script may
# touch one hash slot only, and a ledger's reservations are spread over many: the exposure
# ledger needs a single server (a cluster is refused when chain checks are configured).

_LUA_DECIMALS = """
local function add(a, b)
  local r, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then d = d + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then d = d + string.byte(b, j) - 48; j = j - 1 end
    r[#r + 1] = string.char(48 + d % 10)
    carry = math.floor(d / 10)
  end
  local s = string.reverse(table.concat(r))
  if s == '' then return '0' end
  return s
end
local function le(a, b)
  if #a ~= #b then return #a < #b end
  return a <= b
end
local function outstanding(lk, now, read_block, prune)
  local entries = redis.call('HGETALL', lk)
  local sum, count = '0', 0
  for j = 1, #entries, 2 do
    local field, v = entries[j], entries[j + 1]
    local owner, amount, block, expires = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
    local cur = redis.call('GET', field)
    -- the store's value: state|cap|charged|expires|owner (owner last: it may hold '|')
    local holder = cur and string.match(cur, '^[RS]|[^|]*|[^|]*|[^|]*|(.*)$')
    if holder ~= owner or tonumber(expires) <= now then
      if prune then redis.call('HDEL', lk, field) end
    else
      count = count + 1
      -- seen gone by this read; a lagging read (older block) counts it again
      if block == '' or tonumber(block) > read_block then sum = add(sum, amount) end
    end
  end
  return sum, count
end
"""

_REDIS_RESERVE = _LUA_DECIMALS + """
local now, max_entries = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS / 2 do
  local rk, lk = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 2 + (i - 1) * 7
  local value, px, owner, amount, capacity = ARGV[b + 1], tonumber(ARGV[b + 2]), ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  local read_block, expires = tonumber(ARGV[b + 6]), ARGV[b + 7]
  local cur = redis.call('GET', rk)
  if cur then
    -- held: this owner's own retry is idempotent, anything else is a replay
    local state, holder = string.match(cur, '^([RS])|[^|]*|[^|]*|[^|]*|(.*)$')
    if state == 'R' and holder == owner then out[i] = 1 else out[i] = 0 end
  elseif px <= 0 then
    out[i] = 3
  else
    local sum, count = outstanding(lk, now, read_block, true)
    if count >= max_entries or not le(add(sum, amount), capacity) then
      out[i] = 2
    else
      -- lifetimes relative to the verifier's clock (PX), never an absolute instant the
      -- server's clock may already have passed
      local existed = redis.call('EXISTS', lk)
      redis.call('SET', rk, value, 'PX', px)
      redis.call('HSET', lk, rk, owner .. '|' .. amount .. '||' .. expires)
      local ttl = redis.call('PTTL', lk)
      if existed == 0 or (ttl >= 0 and ttl < px) then redis.call('PEXPIRE', lk, px) end
      out[i] = 1
    end
  end
end
return out
"""

_REDIS_SETTLE = """
local v = redis.call('HGET', KEYS[2], KEYS[1])
if not v then return 0 end
local owner, amount, block, expires = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
if owner ~= ARGV[1] then return 0 end
if ARGV[3] ~= '' then amount = ARGV[3] end
redis.call('HSET', KEYS[2], KEYS[1], owner .. '|' .. amount .. '|' .. ARGV[2] .. '|' .. expires)
return 1
"""

_REDIS_OUTSTANDING = _LUA_DECIMALS + """
local sum = outstanding(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), false)
return sum
"""


def _redis_ledger(store: Any, ledger: str) -> str:
    return f"{store.prefix}x:{ledger}"


def _redis_script(store: Any, name: str, source: str) -> Any:
    scripts = store.__dict__.setdefault("_exposure_scripts", {})
    if name not in scripts:
        scripts[name] = store.client.register_script(source)
    return scripts[name]


def _redis_single_server(store: Any) -> None:
    if store.cluster:
        raise ValueError("the exposure ledger needs a single Redis server: a cluster spreads a payer's reservations over hash slots")


def redis_reserve_exposed(
    store: Any, keys: Sequence[bytes], valid_until: Sequence[int], owners: Sequence[str], caps: Sequence[int | None],
    exposure: Sequence[Exposure], now: int,
) -> list[bool | str | None]:
    from x402_verify.errors import NonceStoreError

    _redis_single_server(store)
    at, names_, expiries, tokens, limits = store_batch_args(keys, valid_until, owners, caps, store.margin_seconds, now)
    if not names_:
        return []
    names: list[str] = []
    args: list[str | int] = [at * 1000, MAX_LEDGER_ENTRIES]
    for key, expires, owner, cap, e in zip(names_, expiries, tokens, limits, exposure, strict=True):
        names += [store._name(key), _redis_ledger(store, e.ledger)]
        value = store._value("R", cap, 0, expires, owner)
        args += [value, max(0, expires - at) * 1000, owner, str(e.amount), str(e.capacity), e.read_block, expires * 1000]
    try:
        answers = _redis_script(store, "reserve", _REDIS_RESERVE)(keys=names, args=args)
    except store._redis.RedisError as exc:
        raise store._fail(exc) from exc
    if not isinstance(answers, list) or len(answers) != len(keys):
        raise NonceStoreError(f"redis answered {len(answers) if isinstance(answers, list) else answers!r} outcomes for {len(keys)} keys")
    return [True if a == 1 else False if a == 0 else EXPOSED if a == 2 else None for a in answers]


def redis_settle_exposure(store: Any, key: bytes, owner: str, ledger: str, block: int | None, amount: int | None) -> None:
    _redis_single_server(store)
    try:
        _redis_script(store, "settle", _REDIS_SETTLE)(
            keys=[store._name(key), _redis_ledger(store, ledger)], args=[owner, "" if block is None else block, "" if amount is None else str(amount)]
        )
    except store._redis.RedisError as exc:
        raise store._fail(exc) from exc


def redis_outstanding(store: Any, ledger: str, as_of_block: int | None, now: int) -> int:
    _redis_single_server(store)
    try:
        answer = _redis_script(store, "outstanding", _REDIS_OUTSTANDING)(
            keys=[_redis_ledger(store, ledger)], args=[now * 1000, -1 if as_of_block is None else as_of_block]
        )
    except store._redis.RedisError as exc:
        raise store._fail(exc) from exc
    return int(answer)
