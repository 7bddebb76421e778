"""Reservations that count what is promised: the exposure ledger.

Per (chain, token, payer) a store keeps one entry per live reservation the chain stage
admitted: its amount (upto: the signed maximum), the reservation's owner and expiry, and, once
it is settled and the settlement's block is told, that block. A payment is reserved only if
``outstanding + amount <= capacity``, where capacity is what the chain stage read (the
balance; for Permit2 the lesser of balance and allowance), decided in the store's own
reservation step (``reserve_exposed``: the same rules as ``reserve_many``, implemented once per
store, with this condition asked about each item those rules would newly reserve): under one
lock in memory, in the same SQLite transaction, in the same Redis script.

What an entry counts, on a read at block ``b`` and time ``now`` (the verifier's clock):

- nothing once its reservation is released, or held by another owner, or once ``now`` passes
  the reservation's expiry (validBefore / deadline + the store's margin). A settled key is kept
  by the store for ever (its nonce is spent), but its amount stops counting at that expiry: the
  token and Permit2 refuse the authorization after validBefore / deadline, so any settlement of
  it is in a block mined before then, which a node lagging by less than the margin has seen;
- nothing if it settled in a block ``<= b`` (the read already saw the balance it left);
- otherwise its amount; for a settled upto session, what it charged (the store's own total).

So node lag cannot admit more than the balance covers: a read from an older block still counts
a settled amount. A settlement reported without its block (``Verifier.settle(..., block=None)``)
stays counted until the expiry: safe, but it holds capacity.

The read's block is the ``eth_blockNumber`` answer of the same JSON-RPC batch minus one: a node
may run the batch's calls on the block before the one it names.

Bounds: at most ``MAX_LEDGER_ENTRIES`` live entries per payer (then ``"exposure"``); each
store drops dead entries as it reads a ledger, SQLite also 512 expired rows per batch, the
memory ledger sweeps everything once it holds twice what its last sweep left, and a Redis
ledger hash expires with its longest-lived entry. Redis Cluster: not supported (a payer's
ledger and its reservations' keys would sit in different hash slots, and no script could
decide them together); ``Verifier`` refuses a cluster store when chain checks are on.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from x402_verify._core import MemoryNonceStore, VerifyResponse, store_amount_arg, store_batch_args, store_key_arg, store_now_arg, store_owner_arg
from x402_verify.stores import EXPOSED

__all__ = ["EXPOSED", "Exposure", "MAX_LEDGER_ENTRIES", "MemoryExposureStore", "ledger_id", "settle_exposure"]

log = logging.getLogger("x402_verify.chain")

#: Most live entries one payer's ledger holds; past it further payments are refused.
MAX_LEDGER_ENTRIES = 10_000
_MAX_LEDGER_CHARS = 256
_MAX_BLOCK = 2**63 - 1


class Exposure(NamedTuple):
    """What the chain stage read for one accepted payment."""

    ledger: str
    amount: int
    capacity: int
    read_block: int  # -1: unknown (then every settled amount counts)


def _address(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    body = value[2:]
    if len(value) != 42 or value[:2] not in ("0x", "0X") or not body.isascii() or not all(c in "0123456789abcdefABCDEF" for c in body):
        raise ValueError(f"{what} must be a 0x-prefixed 20-byte hex address")
    return "0x" + body.lower()


def _block(what: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= _MAX_BLOCK:
        raise ValueError(f"{what} must be an int in [{low}, 2**63)")
    return value


def ledger_id(chain_id: int, token: str, payer: str) -> str:
    """The ledger of (chain, token, payer); addresses in any case name the same ledger."""
    return f"{_block('chain_id', chain_id, 0)}:{_address('token', token)}:{_address('payer', payer)}"


def _readings(exposure: Iterable[Any]) -> list[Exposure]:
    """The readings of one ``reserve_exposed`` call, checked (one bad value, one exception)."""
    if isinstance(exposure, (str, bytes)):
        raise TypeError("exposure must be a sequence of Exposure readings")
    out: list[Exposure] = []
    for e in exposure:
        if not isinstance(e, Exposure):
            raise TypeError(f"an exposure reading is an Exposure, not {type(e).__name__}")
        if not isinstance(e.ledger, str) or not 0 < len(e.ledger) <= _MAX_LEDGER_CHARS or not e.ledger.isascii():
            raise ValueError(f"a ledger id is 1 to {_MAX_LEDGER_CHARS} ASCII characters (see ledger_id)")
        out.append(Exposure(e.ledger, store_amount_arg(e.amount), store_amount_arg(e.capacity), _block("read_block", e.read_block, -1)))
    return out


def _as_of(as_of_block: Any) -> int:
    return -1 if as_of_block is None else _block("as_of_block", as_of_block, 0)


def settle_exposure(store: Any, response: VerifyResponse, owner: str, block: int | None, now: int | None) -> None:
    """After ``store.settle``: tells the ledger the settlement's block. A failure here leaves the
    amount counted until its reservation expires (safe) and is logged."""
    auth, asset = response.authorization, response.asset
    if block is None or response.replay_key is None or auth is None or asset is None or response.chain_id is None:
        return
    try:
        store.settle_exposure(response.replay_key, owner, ledger_id(response.chain_id, asset, auth.payer), block, now=now)
    except Exception as exc:  # the amount stays counted until the reservation expires
        log.warning("exposure ledger not updated on settle: %s: %s", type(exc).__name__, str(exc)[:300])


class _Ledger:
    """One ledger as one reservation call sees it: its live entries as (counted amount, settled
    block), read once, and the sums already asked for, kept up to date as entries are added."""

    __slots__ = ("entries", "sums")

    def __init__(self, entries: list[tuple[int, int | None]]) -> None:
        self.entries = entries
        self.sums: dict[int, int] = {}

    def counted(self, read_block: int) -> int:
        total = self.sums.get(read_block)
        if total is None:
            total = self.sums[read_block] = sum(a for a, settled in self.entries if settled is None or settled > read_block)
        return total

    def admits(self, e: Exposure) -> bool:
        return len(self.entries) < MAX_LEDGER_ENTRIES and self.counted(e.read_block) + e.amount <= e.capacity

    def add(self, amount: int) -> None:
        self.entries.append((amount, None))
        for block in self.sums:
            self.sums[block] += amount


class _Tally:
    """The ledgers one reservation call touches, each loaded once by ``load(ledger)``."""

    def __init__(self, load: Callable[[str], list[tuple[int, int | None]]]) -> None:
        self._load = load
        self._ledgers: dict[str, _Ledger] = {}

    def ledger(self, name: str) -> _Ledger:
        found = self._ledgers.get(name)
        if found is None:
            found = self._ledgers[name] = _Ledger(self._load(name))
        return found


# --- memory: the ledger beside a MemoryNonceStore, changed under one lock -------------------------


class _Entry:
    __slots__ = ("owner", "amount", "upto", "expires", "settled_block")

    def __init__(self, owner: str, amount: int, upto: bool, expires: int) -> None:
        self.owner = owner
        self.amount = amount
        self.upto = upto
        self.expires = expires
        self.settled_block: int | None = None


class _MemoryLedgers:
    """The ledgers of one MemoryNonceStore, shared by every MemoryExposureStore over it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ledgers: dict[str, dict[bytes, _Entry]] = {}
        self.size = 0
        self.sweep_at = 4096


# Every wrapper of one store shares its ledgers (two verifiers on one store must see each
# other's promises); they go with the store.
_MEMORY_LEDGERS: weakref.WeakKeyDictionary[MemoryNonceStore, _MemoryLedgers] = weakref.WeakKeyDictionary()
_MEMORY_LEDGERS_LOCK = threading.Lock()


class MemoryExposureStore:
    """A ``MemoryNonceStore`` with an exposure ledger. ``reserve_exposed`` is the store's own
    ``reserve_many``, one item at a time under the ledger's lock: an item it newly reserves is
    then checked against the ledger, and one the capacity does not cover is released again
    before anyone is told of it. Every other method is the store's. The verifier wraps its
    memory store in this when chain checks are on; wrappers of one store share one ledger."""

    def __init__(self, inner: MemoryNonceStore | None = None) -> None:
        if inner is None:
            inner = MemoryNonceStore()
        if not isinstance(inner, MemoryNonceStore):
            raise TypeError(f"MemoryExposureStore wraps a MemoryNonceStore, not {type(inner).__name__}")
        self.inner = inner
        with _MEMORY_LEDGERS_LOCK:
            self._state = _MEMORY_LEDGERS.setdefault(inner, _MemoryLedgers())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)

    def _counted(self, key: bytes, entry: _Entry, at: int) -> int | None:
        state = self.inner.state(key, now=at)
        if state is None or state[1] != entry.owner or at >= entry.expires:
            return None
        return state[2] if state[0] == "settled" and entry.upto else entry.amount

    def _entries(self, ledger: str, at: int) -> list[tuple[int, int | None]]:
        entries = self._state.ledgers.get(ledger, {})
        out: list[tuple[int, int | None]] = []
        for key, entry in list(entries.items()):
            amount = self._counted(key, entry, at)
            if amount is None:
                del entries[key]
                self._state.size -= 1
            else:
                out.append((amount, entry.settled_block))
        if not entries:
            self._state.ledgers.pop(ledger, None)
        return out

    def _sweep(self, at: int) -> None:
        state = self._state
        if state.size < state.sweep_at:
            return
        for ledger in list(state.ledgers):
            self._entries(ledger, at)
        state.sweep_at = max(4096, 2 * state.size)

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
        """``reserve_many``, except that an item the payer's capacity does not cover on top of
        its live reservations is refused (``"exposure"``)."""
        margin = self.inner.margin_seconds
        at, names, expiries, tokens, limits = store_batch_args(keys, valid_until, owners, caps, margin, now)
        readings = _readings(exposure)
        if len(readings) != len(names):
            raise ValueError("one exposure reading per key")
        out: list[bool | str | None] = []
        with self._state.lock:
            self._sweep(at)
            tally = _Tally(lambda ledger: self._entries(ledger, at))
            for key, expires, owner, cap, e in zip(names, expiries, tokens, limits, readings, strict=True):
                fresh = self.inner.state(key, now=at) is None
                # The store's margin added to ``expires - margin`` gives ``expires`` again.
                ok: bool | str | None = self.inner.reserve_many([key], [expires - margin], [owner], [cap], now=at)[0]
                if ok is True and fresh:
                    ledger = tally.ledger(e.ledger)
                    if ledger.admits(e):
                        entries = self._state.ledgers.setdefault(e.ledger, {})
                        self._state.size += key not in entries
                        entries[key] = _Entry(owner, e.amount, cap is not None, expires)
                        ledger.add(e.amount)
                    else:
                        self.inner.release(key, owner, now=at)
                        ok = EXPOSED
                out.append(ok)
        return out

    def settle_exposure(self, key: bytes, owner: str, ledger_id: str, block: int | None, *, now: int | None = None) -> None:
        """Records the block a settled reservation settled in (see ``outstanding``)."""
        key, owner, at = store_key_arg(key), store_owner_arg(owner), store_now_arg(now)
        if block is None:
            return
        block = _block("block", block, 0)
        with self._state.lock:
            entry = self._state.ledgers.get(ledger_id, {}).get(key)
            state = self.inner.state(key, now=at)
            if entry is not None and entry.owner == owner and state is not None and state[0] == "settled" and state[1] == owner:
                entry.settled_block = block

    def outstanding(self, chain_id: int, token: str, payer: str, *, now: int | None = None, as_of_block: int | None = None) -> int:
        """What the payer's live reservations on (chain, token) promise, as a balance read at
        ``as_of_block`` would have to cover it (None: every settled amount still counts)."""
        ledger, at, block = ledger_id(chain_id, token, payer), store_now_arg(now), _as_of(as_of_block)
        with self._state.lock:
            return _Ledger(self._entries(ledger, at)).counted(block)


# --- SQLite: a table beside the reservations, changed in the same transaction ---------------------

_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS exposures ("
    " key BLOB PRIMARY KEY, ledger TEXT NOT NULL, owner TEXT NOT NULL, amount TEXT NOT NULL,"
    " settled_block INTEGER, expires_at INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS exposures_ledger ON exposures(ledger)",
    "CREATE INDEX IF NOT EXISTS exposures_expiry ON exposures(expires_at)",
)


def _sqlite_schema(conn: Any) -> None:
    for statement in _SQLITE_SCHEMA:
        conn.execute(statement)


def _sqlite_entries(conn: Any, ledger: str, at: int, *, prune: bool) -> list[tuple[int, int | None]]:
    from x402_verify.stores.protocol import _stored_int

    rows = conn.execute(
        "SELECT e.key, e.owner, e.amount, e.settled_block, e.expires_at, r.owner, r.settled, r.cap, r.charged"
        " FROM exposures e LEFT JOIN reservations r ON r.key = e.key WHERE e.ledger = ?",
        (ledger,),
    ).fetchall()
    out: list[tuple[int, int | None]] = []
    dead: list[tuple[bytes]] = []
    for key, owner, amount, settled_block, expires, holder, settled, cap, charged in rows:
        if holder != owner or expires <= at:
            dead.append((key,))
            continue
        counted = charged if settled and cap is not None else amount
        out.append((_stored_int(counted, "exposure"), settled_block))
    if prune and dead:
        conn.executemany("DELETE FROM exposures WHERE key = ?", dead)
    return out


class SqliteAdmission:
    """``SqliteNonceStore._reserve``'s admission for ``reserve_exposed``: asked, in the store's
    transaction, about each item the store would newly reserve."""

    def __init__(self, exposure: Sequence[Exposure]) -> None:
        self.readings = _readings(exposure)
        self._tally: _Tally | None = None

    def __len__(self) -> int:
        return len(self.readings)

    def __call__(self, conn: Any, i: int, key: bytes, owner: str, expires: int, at: int) -> str | None:
        if self._tally is None:
            _sqlite_schema(conn)
            # Expired entries go in small steps, like the store's own rows.
            conn.execute("DELETE FROM exposures WHERE key IN (SELECT key FROM exposures WHERE expires_at <= ? LIMIT 512)", (at,))
            self._tally = _Tally(lambda ledger: _sqlite_entries(conn, ledger, at, prune=True))
        e = self.readings[i]
        ledger = self._tally.ledger(e.ledger)
        if not ledger.admits(e):
            return EXPOSED
        conn.execute("INSERT OR REPLACE INTO exposures VALUES (?, ?, ?, ?, NULL, ?)", (key, e.ledger, owner, str(e.amount), expires))
        ledger.add(e.amount)
        return None


def sqlite_settle_exposure(store: Any, key: bytes, owner: str, block: int | None, now: int | None) -> None:
    key, owner = store_key_arg(key), store_owner_arg(owner)
    store_now_arg(now)
    if block is None:
        return
    block = _block("block", block, 0)

    def run(conn: Any) -> None:
        _sqlite_schema(conn)
        # Only a settled reservation of this owner: a block on a live one would stop counting it.
        conn.execute(
            "UPDATE exposures SET settled_block = ? WHERE key = ? AND owner = ?"
            " AND EXISTS (SELECT 1 FROM reservations r WHERE r.key = exposures.key AND r.owner = exposures.owner AND r.settled = 1)",
            (block, key, owner),
        )

    store._tx(run)


def sqlite_outstanding(store: Any, ledger: str, as_of_block: int | None, now: int | None) -> int:
    at, block = store_now_arg(now), _as_of(as_of_block)

    def run(conn: Any) -> int:
        _sqlite_schema(conn)
        return _Ledger(_sqlite_entries(conn, ledger, at, prune=False)).counted(block)

    result: int = store._tx(run)
    return result


# --- Redis (one server): Lua spliced into the store's reserve script ------------------------------
#
# A ledger is a hash ``<prefix>x:<ledger id>``: field = the reservation's key name, value
# ``amount|settled_block|expires_ms|owner`` (owner last: it may hold '|'). Amounts are decimal
# strings added as strings: Lua numbers are doubles, and 2**53 is 0.009 of an 18-decimal token.

_LUA_LEDGER = """
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
-- A ledger's live entries {counted amount, settled block or nil}, read once per script call.
local ledgers = {}
local function ledger(lk, now_ms, prune)
  local l = ledgers[lk]
  if l then return l end
  l = {entries = {}, sums = {}}
  local raw = redis.call('HGETALL', lk)
  for j = 1, #raw, 2 do
    local field = raw[j]
    local amount, block, expires, owner = string.match(raw[j + 1], '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
    local cur = redis.call('GET', field)
    local state, cap, charged, holder
    -- the store's value: state|cap|charged|expires|owner
    if cur then state, cap, charged, holder = string.match(cur, '^([RS])|([^|]*)|([^|]*)|[^|]*|(.*)$') end
    if amount and holder == owner and tonumber(expires) > now_ms then
      if state == 'S' and cap ~= '' then amount = charged end
      l.entries[#l.entries + 1] = {amount, tonumber(block)}
    elseif prune then
      redis.call('HDEL', lk, field)
    end
  end
  ledgers[lk] = l
  return l
end
local function counted(l, read_block)
  local s = l.sums[read_block]
  if s == nil then
    s = '0'
    for _, e in ipairs(l.entries) do
      if e[2] == nil or e[2] > read_block then s = add(s, e[1]) end
    end
    l.sums[read_block] = s
  end
  return s
end
"""

# ARGV after the batch's: now (ms), most entries a ledger holds, then per key amount, capacity,
# read block, expiry (ms, the verifier's clock); KEYS[n + i] is key i's ledger.
_LUA_ADMISSION = _LUA_LEDGER + """
local base = 2 * n + 1
local now_ms, max_entries = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
local function reading(i)
  local b = base + 2 + 4 * (i - 1)
  return ARGV[b + 1], ARGV[b + 2], tonumber(ARGV[b + 3]), ARGV[b + 4]
end
admit = function(i)
  local amount, capacity, read_block = reading(i)
  local l = ledger(KEYS[n + i], now_ms, true)
  if #l.entries >= max_entries or not le(add(counted(l, read_block), amount), capacity) then return 2 end
  return false
end
admitted = function(i)
  local lk, px = KEYS[n + i], tonumber(ARGV[2 * i + 1])
  local amount, _, _, expires = reading(i)
  local owner = string.match(ARGV[2 * i], '^R|[^|]*|[^|]*|[^|]*|(.*)$')
  local ttl = redis.call('PTTL', lk)
  redis.call('HSET', lk, KEYS[i], amount .. '||' .. expires .. '|' .. owner)
  -- the hash lives as long as its longest-lived entry, on the same relative clock
  if ttl < px then redis.call('PEXPIRE', lk, px) end
  local l = ledgers[lk]
  l.entries[#l.entries + 1] = {amount, nil}
  for block, s in pairs(l.sums) do l.sums[block] = add(s, amount) end
end
"""

_LUA_OUTSTANDING = _LUA_LEDGER + """
return counted(ledger(KEYS[1], tonumber(ARGV[1]), false), tonumber(ARGV[2]))
"""

# KEYS: the reservation, its ledger; ARGV: owner, block. Only a settled reservation of this owner.
_LUA_SETTLE = """
local v = redis.call('HGET', KEYS[2], KEYS[1])
if not v then return 0 end
local amount, _, expires, owner = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
if owner ~= ARGV[1] then return 0 end
local cur = redis.call('GET', KEYS[1])
if not cur or string.match(cur, '^S|[^|]*|[^|]*|[^|]*|(.*)$') ~= owner then return 0 end
redis.call('HSET', KEYS[2], KEYS[1], amount .. '|' .. ARGV[2] .. '|' .. expires .. '|' .. owner)
return 1
"""


def _redis_ledger(store: Any, ledger: str) -> str:
    return f"{store.prefix}x:{ledger}"


def _redis_single_server(store: Any) -> None:
    if store.cluster:
        raise ValueError("the exposure ledger needs a single Redis server: a cluster spreads a payer's reservations over hash slots")


def _redis_run(store: Any, source: str, keys: list[str], args: list[Any]) -> Any:
    store._open()
    try:
        script = store._scripts.get(source)
        if script is None:
            script = store._scripts[source] = store.client.register_script(source)
        return script(keys=keys, args=args)
    except store._redis.RedisError as exc:
        raise store._fail(exc) from exc


class RedisAdmission:
    """``RedisNonceStore._reserve``'s admission rule for ``reserve_exposed``: Lua run inside the
    store's reserve script, about each key the script would newly reserve."""

    source = _LUA_ADMISSION
    refused = EXPOSED

    def __init__(self, store: Any, exposure: Sequence[Exposure]) -> None:
        _redis_single_server(store)
        self.readings = _readings(exposure)
        self.keys = [_redis_ledger(store, e.ledger) for e in self.readings]

    def __len__(self) -> int:
        return len(self.readings)

    def args(self, at: int, expiries: Sequence[int]) -> list[str | int]:
        out: list[str | int] = [at * 1000, MAX_LEDGER_ENTRIES]
        for e, expires in zip(self.readings, expiries, strict=True):
            out += [str(e.amount), str(e.capacity), e.read_block, expires * 1000]
        return out


def redis_settle_exposure(store: Any, key: bytes, owner: str, ledger: str, block: int | None, now: int | None) -> None:
    key, owner = store_key_arg(key), store_owner_arg(owner)
    store_now_arg(now)
    _redis_single_server(store)
    if block is None:
        return
    block = _block("block", block, 0)
    _redis_run(store, _LUA_SETTLE, [store._name(key), _redis_ledger(store, ledger)], [owner, block])


def redis_outstanding(store: Any, ledger: str, as_of_block: int | None, now: int | None) -> int:
    from x402_verify.errors import NonceStoreError

    at, block = store_now_arg(now), _as_of(as_of_block)
    _redis_single_server(store)
    answer = _redis_run(store, _LUA_OUTSTANDING, [_redis_ledger(store, ledger)], [at * 1000, block])
    if isinstance(answer, bytes):
        answer = answer.decode("ascii", "replace")
    if not isinstance(answer, str) or not answer.isdigit():
        raise NonceStoreError("redis answered an outstanding sum that is not a decimal")
    return int(answer)
