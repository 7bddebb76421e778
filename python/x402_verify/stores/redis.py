"""``RedisNonceStore``: reservations shared by gateway replicas (one round trip per batch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from x402_verify._core import store_amount_arg, store_batch_args, store_key_arg, store_margin_arg, store_now_arg, store_owner_arg
from x402_verify.errors import NonceStoreError
from x402_verify.stores.protocol import _CLOSED, _brief, _Closing, _refused, _stored_int, _timeout

__all__ = ["RedisNonceStore"]


class RedisNonceStore(_Closing):
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
        # redis-py raises RedisClusterException, not a RedisError, when no node of a cluster
        # answers: that fails closed too.
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, redis.exceptions.RedisClusterException)
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
            self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), decode_responses=True)

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

    def _reserve(
        self, keys: Sequence[bytes], valid_until: Sequence[int], owners: Sequence[str], caps: Sequence[int | None] | None, now: int | None, rule: Any
    ) -> list[Any]:
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
        values = [self._value("R", cap, 0, expires, owner) for cap, expires, owner in zip(limits, expiries, tokens, strict=True)]
        if not self.cluster:
            return self._reserve_scripted(names, values, lifetimes, tokens, rule, at, expiries)
        if rule is not None:
            raise NonceStoreError("the exposure ledger needs a single Redis server, not a cluster")
        # On a cluster a script may only touch one hash slot, so the batch is a pipeline:
        # redis-py sends each node its commands in one round trip.
        pipe = self.client.pipeline(transaction=False)
        for key, value, px in zip(names, values, lifetimes, strict=True):
            if px == 0:
                pipe.get(self._name(key))
            else:
                pipe.set(self._name(key), value, nx=True, get=True, px=px)
        try:
            answers = pipe.execute(raise_on_error=True)
        except self._errors as exc:
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
        for value, px in zip(values, lifetimes, strict=True):
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
        except self._errors as exc:
            raise self._fail(exc) from exc
        return self._outcomes(owners, answers, lifetimes, None if rule is None else rule.refused)

    @classmethod
    def _outcomes(cls, owners: Sequence[str], answers: Any, lifetimes: Sequence[int], refused: Any = None) -> list[Any]:
        if not isinstance(answers, list) or len(answers) != len(owners):
            raise NonceStoreError(f"redis answered {type(answers).__name__} for {len(owners)} keys")
        out: list[Any] = []
        for owner, answer, px in zip(owners, answers, lifetimes, strict=True):
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
        except self._errors as exc:
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
        except self._errors as exc:
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
