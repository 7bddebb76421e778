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

The package: ``protocol`` (``NonceStore``, the shared refusal texts and helpers), ``pipeline``
(``reserve_verified``: the reserve stage for stores outside the core), ``sqlite`` and ``redis``.
Every public name is importable from ``x402_verify.stores`` as before.
"""

from __future__ import annotations

from x402_verify._core import MemoryNonceStore
from x402_verify.stores.pipeline import reserve_verified
from x402_verify.stores.protocol import EXPOSED, NonceStore
from x402_verify.stores.redis import RedisNonceStore
from x402_verify.stores.sqlite import SqliteNonceStore

__all__ = [
    "EXPOSED",
    "MemoryNonceStore",
    "NonceStore",
    "RedisNonceStore",
    "SqliteNonceStore",
    "reserve_verified",
]
