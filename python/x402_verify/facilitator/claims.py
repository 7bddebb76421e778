"""Who settles a payment: a claim per replay key, shared by every worker that shares the store.

``/settle`` takes the payment's claim before it calls the upstream, and records the upstream's
answer under it; a second ``/settle`` (another worker, a retry, a replay) finds the claim taken
and answers from the record instead of settling again. The nonce store stays the authority on
replay (a settled key is kept for as long as the store lives); the claim only serialises the
upstream call and keeps its answer.

- ``MemoryLedger`` (x402_verify.ledger) with the in-process store;
- ``RedisLedger`` with Redis or a Redis Cluster (each record's keys share one hash slot);
- ``SqliteClaims`` (here) with SQLite: a table in a file beside the store's, one ``BEGIN
  IMMEDIATE`` transaction a claim, so the worker processes of one host see one claim.

Each exposes the ledger's ``acquire`` / ``finish`` / ``get`` (x402_verify.ledger.Ledger).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping
from typing import Any

from x402_verify.errors import NonceStoreError
from x402_verify.ledger import SETTLING, keep_arg

__all__ = ["SqliteClaims", "open_claims"]


class SqliteClaims:
    """Settlement claims in SQLite (WAL, ``synchronous=FULL``): acquire, finish, get."""

    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._local = threading.local()
        self._conn()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, state TEXT NOT NULL, holder TEXT NOT NULL,"
                    " lease_until REAL NOT NULL, keep_until REAL NOT NULL, record TEXT NOT NULL, outcome TEXT) WITHOUT ROWID"
                )
            except sqlite3.Error as exc:
                raise NonceStoreError(f"sqlite claims at {self.path!r}: {exc}") from exc
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
            raise NonceStoreError(f"sqlite claims at {self.path!r}: {exc}") from exc

    def acquire(
        self, key: str, holder: str, *, lease_seconds: float, now: float | None = None, record: Mapping[str, str] | None = None, keep_until: float = 0.0
    ) -> dict[str, str] | None:
        import json

        at = time.time() if now is None else now
        if record is not None:
            keep_until = keep_arg(keep_until, at)

        def run(conn: sqlite3.Connection) -> dict[str, str] | None:
            # Finished claims go once their authorization is dead (the store keeps the key).
            conn.execute("DELETE FROM claims WHERE key IN (SELECT key FROM claims WHERE keep_until <= ? LIMIT 256)", (at,))
            row = conn.execute("SELECT state, lease_until, record FROM claims WHERE key = ?", (key,)).fetchone()
            if row is None:
                if record is None:
                    return None
                rec = dict(record)
                conn.execute("INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, NULL)", (key, SETTLING, holder, at + lease_seconds, keep_until, json.dumps(rec)))
            elif row[0] == SETTLING and row[1] <= at:  # its holder died mid-settlement: take it over
                rec = json.loads(row[2])
                conn.execute("UPDATE claims SET holder = ?, lease_until = ? WHERE key = ?", (holder, at + lease_seconds, key))
            else:
                return None
            return {**rec, "state": SETTLING, "holder": holder}

        result: dict[str, str] | None = self._tx(run)
        return result

    def finish(self, key: str, holder: str, *, state: str, outcome: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("UPDATE claims SET state = ?, outcome = ? WHERE key = ? AND holder = ? AND state = ?", (state, outcome, key, holder, SETTLING))
            return cur.rowcount == 1

        done: bool = self._tx(run)
        return done

    def get(self, key: str) -> dict[str, str] | None:
        import json

        try:
            row = self._conn().execute("SELECT state, holder, record, outcome, keep_until FROM claims WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise NonceStoreError(f"sqlite claims at {self.path!r}: {exc}") from exc
        if row is None or row[4] <= time.time():
            return None
        out: dict[str, str] = {**json.loads(row[2]), "state": row[0], "holder": row[1]}
        if row[3] is not None:
            out["outcome"] = row[3]
        return out


def open_claims(store_url: str) -> Any:
    """The claim ledger that goes with a store URL (see the module docs)."""
    from x402_verify.facilitator.config import redis_target, sqlite_path, store_scheme
    from x402_verify.ledger import MemoryLedger, RedisLedger

    scheme = store_scheme(store_url)
    if scheme == "sqlite":
        return SqliteClaims(sqlite_path(store_url) + ".claims")
    if scheme in ("redis", "rediss", "redis+cluster"):
        target, cluster = redis_target(store_url)
        return RedisLedger(target, cluster=cluster, prefix="x402f:", timeout=5.0)
    return MemoryLedger(keep_finished_seconds=3600.0)
