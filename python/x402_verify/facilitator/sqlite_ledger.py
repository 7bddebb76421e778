"""The settlement ledger in SQLite: the embedded, durable backend the facilitator needs beside
the SQLite nonce store, shared by the worker processes that open the same file.

It implements the part of ``x402_verify.ledger.Ledger`` a facilitator's ``/settle`` uses
(``acquire``, ``finish``, ``get``), with the same semantics as ``MemoryLedger`` and
``RedisLedger``: a record moves into ``settling`` under a lease for one holder (created on
first use), then ``settled`` or ``failed`` with the facilitator's answer stored; a lease that
ran out (its holder crashed mid-settlement) can be taken over. One ``BEGIN IMMEDIATE``
transaction per call, WAL, ``synchronous=FULL``: what was acknowledged survives ``kill -9``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from typing import Any

from x402_verify.errors import NonceStoreError
from x402_verify.ledger import OPEN, SETTLING

__all__ = ["SqliteLedger"]


class SqliteLedger:
    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = os.fspath(path)
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
                    "CREATE TABLE IF NOT EXISTS settlements ("
                    " key TEXT PRIMARY KEY, fields TEXT NOT NULL, state TEXT NOT NULL, holder TEXT,"
                    " lease_until REAL NOT NULL DEFAULT 0, keep_until REAL NOT NULL) WITHOUT ROWID"
                )
            except sqlite3.Error as exc:
                raise NonceStoreError(f"sqlite ledger at {self.path}: {exc}") from exc
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
            raise NonceStoreError(f"sqlite ledger at {self.path}: {exc}") from exc

    @staticmethod
    def _record(row: tuple[str, str, str | None, float, float]) -> dict[str, str]:
        fields, state, holder, lease_until, keep_until = row
        rec: dict[str, str] = json.loads(fields)
        rec.update(state=state, lease_until=repr(lease_until), keep_until=repr(keep_until))
        if holder is not None:
            rec["holder"] = holder
        return rec

    def get(self, key: str) -> dict[str, str] | None:
        try:
            row = self._conn().execute(
                "SELECT fields, state, holder, lease_until, keep_until FROM settlements WHERE key = ? AND keep_until > ?", (key, time.time())
            ).fetchone()
        except sqlite3.Error as exc:
            raise NonceStoreError(f"sqlite ledger at {self.path}: {exc}") from exc
        return None if row is None else self._record(row)

    def acquire(
        self, key: str, holder: str, *, lease_seconds: float, now: float | None = None,
        record: Mapping[str, str] | None = None, keep_until: float = 0.0,
    ) -> dict[str, str] | None:
        now = time.time() if now is None else now

        def run(conn: sqlite3.Connection) -> dict[str, str] | None:
            # Finished records past their authorization's life go in small steps.
            conn.execute("DELETE FROM settlements WHERE key IN (SELECT key FROM settlements WHERE keep_until <= ? LIMIT 64)", (now,))
            row = conn.execute("SELECT fields, state, holder, lease_until, keep_until FROM settlements WHERE key = ?", (key,)).fetchone()
            if row is None:
                if record is None:
                    return None
                fields = {**record, "credit": record.get("credit", "0"), "attempts": "0"}
                conn.execute(
                    "INSERT INTO settlements VALUES (?, ?, ?, NULL, 0, ?)", (key, json.dumps(fields), OPEN, keep_until)
                )
            else:
                fields = json.loads(row[0])
                if row[1] == SETTLING and row[3] > now:
                    return None
                if row[1] not in (OPEN, SETTLING):
                    return None
            fields["attempts"] = str(int(fields.get("attempts", "0")) + 1)
            conn.execute(
                "UPDATE settlements SET fields = ?, state = ?, holder = ?, lease_until = ? WHERE key = ?",
                (json.dumps(fields), SETTLING, holder, now + lease_seconds, key),
            )
            out = conn.execute("SELECT fields, state, holder, lease_until, keep_until FROM settlements WHERE key = ?", (key,)).fetchone()
            return self._record(out)

        result: dict[str, str] | None = self._tx(run)
        return result

    def finish(self, key: str, holder: str, *, state: str, outcome: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT fields, state, holder FROM settlements WHERE key = ?", (key,)).fetchone()
            if row is None or row[1] != SETTLING or row[2] != holder:
                return False
            fields = json.loads(row[0])
            # What settlement needed is no longer needed; the outcome stays.
            fields.pop("payload", None)
            fields.pop("requirements", None)
            fields["outcome"] = outcome
            conn.execute("UPDATE settlements SET fields = ?, state = ?, lease_until = 0 WHERE key = ?", (json.dumps(fields), state, key))
            return True

        result: bool = self._tx(run)
        return result

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
