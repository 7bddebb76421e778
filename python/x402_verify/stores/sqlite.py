"""``SqliteNonceStore``: durable reservations on one host (SQLite WAL, ``synchronous=FULL``)."""

from __future__ import annotations

import heapq
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's own busy wait is the only queue
    fcntl = None  # type: ignore[assignment]

from x402_verify._core import store_amount_arg, store_batch_args, store_key_arg, store_margin_arg, store_now_arg, store_owner_arg
from x402_verify.errors import NonceStoreError
from x402_verify.stores.protocol import _CLOSED, _Closing, _refused, _stored_int, _timeout

__all__ = ["SqliteNonceStore"]


_SWEEP_WINDOW = 4096  # log rows a sweep's write transaction looks at


def _entry(expires_at: int, cap: int | None, owner: str) -> str:
    """An index entry: ``"expires_at cap owner"`` (cap ``-`` when none; the owner last, as it
    may hold spaces)."""
    return f"{expires_at} {'-' if cap is None else cap} {owner}"


def _read_entry(entry: str) -> tuple[int, int | None, str]:
    """``(expires_at, cap, owner)`` of an index entry (``_entry``'s inverse)."""
    expires_at, cap, owner = entry.split(" ", 2)
    return int(expires_at), None if cap == "-" else int(cap), owner


def _expiry(entry: str) -> int:
    """The expiry an index entry leads with (``_read_entry``'s first field, read alone)."""
    return int(entry.split(" ", 1)[0])


def _in_lists(keys: list[bytes]) -> Iterator[tuple[list[bytes], str]]:
    """``keys`` in parts of at most 500 (under SQLite's bound on parameters), each with its
    ``?,?,...`` for an ``IN (...)``."""
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        yield chunk, ",".join("?" * len(chunk))


class SqliteNonceStore(_Closing):
    """Durable reservations on one host, shared by the processes that open the same file.

    One ``BEGIN IMMEDIATE`` transaction (one fsync) per batch; WAL with ``synchronous=FULL``,
    so a reservation acknowledged to the caller survives ``kill -9``, a restart and power loss.
    Unsettled rows go once ``now`` passes their expiry (validBefore / deadline +
    ``margin_seconds``); settled rows stay for as long as the file does (about 100 bytes each).
    Do not put the file on a network filesystem. ``close()`` (or leaving a ``with`` block)
    closes the calling thread's connection; every later call raises ``NonceStoreError``.

    Writers take turns through ``writer()`` (a lock per process and ``flock`` on
    ``<path>.lock`` between processes) before SQLite's own lock: a writer that finds SQLite's
    lock taken sleeps in steps of milliseconds and retries, while one queued on the file lock
    starts as soon as the previous commit ends.

    ``reserve_many`` appends to a log (``reservation_log``, a rowid table) rather than inserting
    into the ``reservations`` B-tree: replay keys are hashes, so each insert there lands on a
    random page, and a commit of 16 wrote 46 WAL frames where 16 appended rows write 2
    (docs/facilitator.md). Each process answers from an in-memory index of the log, caught up
    from its tail (rows are never changed, ids only grow: AUTOINCREMENT) inside the write
    transaction, so every decision still sees everything committed before it. A settle or a
    charge moves the entry into ``reservations``, which takes precedence while it is live; a
    release appends a tombstone.
    """

    def __init__(self, path: str | os.PathLike[str], *, margin_seconds: int = 60, timeout: float = 5.0) -> None:
        self.path = os.fspath(path)
        if "\0" in (self.path if isinstance(self.path, str) else self.path.decode("latin-1")):
            raise ValueError("the store's path contains a NUL character")
        self.margin_seconds: int = store_margin_arg(margin_seconds)
        self.timeout = _timeout(timeout, positive=False)
        self._local = threading.local()
        self._closed = False
        self._turn = threading.RLock()
        self._lock_file: tuple[int, weakref.finalize[Any, Any], int] | None = None  # (pid, closer, fd): a forked child opens its own
        # The log's live entries as of log row ``_seen``: key -> ``_entry`` text (read back by
        # ``_logged``). Text, not tuples: a dict of strings is never tracked by the cyclic GC,
        # where each new tuple made the dict tracked again, so the next collection walked every
        # entry (of 300k entries: 2-7 ms collections, hundreds a second). And the keys read, by
        # expiry (32 bytes each in a bytearray: untracked too), with a heap of those expiries, so
        # expired entries leave the index in expiry order, a second's worth at a time, not in
        # scans of the whole index.
        self._index: dict[bytes, str] = {}
        self._expiring: dict[int, bytearray] = {}
        self._seconds: list[int] = []
        self._seen = 0
        self._index_lock = threading.Lock()
        self._pruned = -1  # the second of the last step of expiry (``_reserve``) and batches since
        self._batches = 0
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
                # op 1: reserved; op 0: released (a tombstone, so every process's index drops it).
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS reservation_log ("
                    " id INTEGER PRIMARY KEY AUTOINCREMENT, op INTEGER NOT NULL, key BLOB NOT NULL, owner TEXT NOT NULL,"
                    " cap TEXT, expires_at INTEGER NOT NULL)"
                )
            except (sqlite3.Error, UnicodeError) as exc:
                raise NonceStoreError(f"sqlite store at {self.path!r}: {exc}") from exc
            self._local.conn = conn
        return conn

    def _lock_fd(self) -> int | None:
        if fcntl is None:
            return None
        pid = os.getpid()
        if self._lock_file is None or self._lock_file[0] != pid:
            # flock belongs to the open file, which a forked child would share with its parent.
            name = self.path + (b".lock" if isinstance(self.path, bytes) else ".lock")
            try:
                fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                return None  # no lock file (a read-only directory, say): SQLite's lock still holds
            # Closed with the store, or when it is collected unclosed.
            self._lock_file = (pid, weakref.finalize(self, os.close, fd), fd)
        return self._lock_file[2]

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Holds this store's write turn among the threads and processes that open the file
        (re-entrant in one thread). Every write transaction takes it; a caller that gathers
        its batch while holding it (x402_verify._batching.SerialBatcher) gets everything that
        queued while the previous writer committed."""
        if getattr(self._local, "turns", 0):
            self._local.turns += 1
            try:
                yield
            finally:
                self._local.turns -= 1
            return
        with self._turn:
            if self._closed:
                raise NonceStoreError(_CLOSED)
            fd = self._lock_fd()
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError:
                    fd = None  # a filesystem without flock: SQLite's lock still holds
            self._local.turns = 1
            try:
                yield
            finally:
                self._local.turns = 0
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _tx(self, fn: Any) -> Any:
        with self.writer():
            return self._tx_held(fn)

    @contextmanager
    def _faults(self) -> Iterator[None]:
        """SQLite's errors as the store's fault (``NonceStoreError``: callers fail closed)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise NonceStoreError(f"sqlite store at {self.path!r}: {exc}") from exc

    def _tx_held(self, fn: Any) -> Any:
        conn = self._conn()
        with self._faults():
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return out

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
        self, keys: Sequence[bytes], valid_until: Sequence[int], owners: Sequence[str], caps: Sequence[int | None] | None, now: int | None, admit: Any
    ) -> list[Any]:
        """The reservation rules, once for both entry points. ``admit`` (the exposure ledger's,
        x402_verify.chain.exposure), when given, is asked in the same transaction about each
        item these rules would newly reserve: ``admit(conn, i, key, owner, expires, at)``
        returns None to let it be reserved (having recorded what it needs), or the outcome to
        give instead."""
        at, names, expiries, tokens, limits = store_batch_args(keys, valid_until, owners, caps, self.margin_seconds, now)
        if admit is not None and len(admit) != len(names):
            raise ValueError("one exposure reading per key")

        def run(conn: sqlite3.Connection) -> list[Any]:
            # Expired rows go in steps, so one batch never pays for a large backlog: once a
            # second per process (nothing more expires within the second), the log's oldest
            # 64 rows a batch reserved since the previous step (``sweep`` takes the rest).
            self._batches += 1
            if at != self._pruned:
                conn.execute(
                    "DELETE FROM reservations WHERE key IN (SELECT key FROM reservations WHERE expires_at <= ? AND settled = 0 LIMIT 512)",
                    (at,),
                )
                conn.execute(
                    "DELETE FROM reservation_log WHERE id IN (SELECT id FROM reservation_log ORDER BY id LIMIT ?) AND expires_at <= ?",
                    (64 * min(self._batches, 64), at),
                )
                self._pruned, self._batches = at, 0
            self._catch_up(conn, at)
            if admit is None:
                return self._reserve_plain(conn, names, expiries, tokens, limits, at)
            out: list[Any] = []
            for i, (key, expires, owner, cap) in enumerate(zip(names, expiries, tokens, limits, strict=True)):
                row = conn.execute("SELECT settled, owner, expires_at FROM reservations WHERE key = ?", (key,)).fetchone()
                if row is not None and (row[0] or row[2] > at):
                    out.append(row[0] == 0 and row[1] == owner)
                    continue
                logged = self._logged(key, at)
                if logged is not None:
                    out.append(logged[0] == owner)
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

    def _reserve_plain(
        self, conn: sqlite3.Connection, names: list[bytes], expiries: list[int], tokens: list[str], limits: list[int | None], at: int
    ) -> list[bool | None]:
        """_reserve's rules without an exposure ledger, in a few statements a batch: the
        ``reservations`` rows read at once, the log's entries from the index, then the writes
        (new reservations appended to the log). A batch that names a key twice is answered as
        if item by item (``fresh`` holds what the batch reserved so far)."""
        rows: dict[bytes, tuple[int, str, int]] = {}
        unique = list(dict.fromkeys(names))
        for chunk, marks in _in_lists(unique):
            for key, settled, owner, expires_at in conn.execute(f"SELECT key, settled, owner, expires_at FROM reservations WHERE key IN ({marks})", chunk):
                rows[bytes(key)] = (settled, owner, expires_at)
        out: list[bool | None] = []
        dead: list[tuple[bytes]] = []
        fresh: dict[bytes, str] = {}
        appends: list[tuple[bytes, str, str | None, int]] = []
        for key, expires, owner, cap in zip(names, expiries, tokens, limits, strict=True):
            row = rows.get(key)
            if row is not None and (row[0] or row[2] > at):
                out.append(row[0] == 0 and row[1] == owner)
                continue
            holder = fresh.get(key)
            if holder is None:
                logged = self._logged(key, at)
                holder = None if logged is None else logged[0]
            if holder is not None:
                out.append(holder == owner)
                continue
            if row is not None:  # a moved entry that expired: it goes, so the log's entry answers
                dead.append((key,))
                rows.pop(key)
            if expires <= at:
                # Kept for no time is not kept: refused, never acknowledged.
                out.append(None)
                continue
            appends.append((key, owner, None if cap is None else str(cap), expires))
            fresh[key] = owner
            out.append(True)
        if dead:
            conn.executemany("DELETE FROM reservations WHERE key = ?", dead)
        if appends:
            conn.executemany("INSERT INTO reservation_log (op, key, owner, cap, expires_at) VALUES (1, ?, ?, ?, ?)", appends)
        return out

    # --- the log's index -----------------------------------------------------------------

    def _catch_up(self, conn: sqlite3.Connection, at: int | None = None) -> None:
        """Reads the log rows committed since the last read into the index (called inside a
        write transaction, as every decision is: then every row committed before it; ``state``
        and ``sweep`` read outside one). With ``at``, drops the entries that expired by then."""
        with self._index_lock:
            rows = conn.execute("SELECT id, op, key, owner, cap, expires_at FROM reservation_log WHERE id > ? ORDER BY id", (self._seen,)).fetchall()
            index, expiring = self._index, self._expiring
            for _id, op, key, owner, cap, expires_at in rows:
                if op:
                    k = bytes(key)
                    if len(k) != 32 or type(expires_at) is not int:
                        raise NonceStoreError("the store holds an unreadable log row")
                    index[k] = _entry(expires_at, None if cap is None else _stored_int(cap, "cap"), owner)
                    keys = expiring.get(expires_at)
                    if keys is None:
                        keys = expiring[expires_at] = bytearray()
                        heapq.heappush(self._seconds, expires_at)
                    keys += k
                else:
                    index.pop(bytes(key), None)
            if rows:
                self._seen = rows[-1][0]
            if at is not None:
                self._drop_expired(at)

    def _drop_expired(self, at: int) -> None:
        """Drops the index entries that expired by ``at`` (the caller holds ``_index_lock``):
        each key is looked at once, in the second it expires, so the work is that of what
        expired. A key released (or released and reserved again) since it was read is left
        alone unless the index still holds it with that expiry."""
        index, expiring, seconds = self._index, self._expiring, self._seconds
        while seconds and seconds[0] <= at:
            second = heapq.heappop(seconds)
            keys = expiring.pop(second)
            for i in range(0, len(keys), 32):
                key = bytes(keys[i : i + 32])
                entry = index.get(key)
                if entry is not None and _expiry(entry) == second:
                    del index[key]

    def _logged(self, key: bytes, at: int) -> tuple[str, int | None, int] | None:
        """The log's live entry for ``key`` as of the last catch-up: (owner, cap, expires_at)."""
        with self._index_lock:
            entry = self._index.get(key)
        if entry is None:
            return None
        expires, cap, owner = _read_entry(entry)
        return None if expires <= at else (owner, cap, expires)

    def _live(self, conn: sqlite3.Connection, key: bytes, owner: str, now: int) -> tuple[bool, int | None, int, int | None]:
        """(settled, cap, charged, expires_at if the entry is still in the log else None) of
        the owner's live entry under ``key``."""
        self._catch_up(conn)  # first, so the caller's view of the log is current too (release)
        row = conn.execute("SELECT settled, owner, cap, charged, expires_at FROM reservations WHERE key = ?", (key,)).fetchone()
        if row is not None and (row[0] or row[4] > now):
            if row[1] != owner:
                raise _refused("not_owner")
            return bool(row[0]), None if row[2] is None else _stored_int(row[2], "cap"), _stored_int(row[3], "charge"), None
        logged = self._logged(key, now)
        if logged is None:
            raise _refused("not_found")
        if logged[0] != owner:
            raise _refused("not_owner")
        return False, logged[1], 0, logged[2]

    @staticmethod
    def _move(conn: sqlite3.Connection, key: bytes, owner: str, cap: int | None, settled: int, charged: int, expires: int) -> None:
        """A log entry into ``reservations`` (which then answers for the key)."""
        conn.execute(
            "INSERT OR REPLACE INTO reservations VALUES (?, ?, ?, ?, ?, ?)", (key, settled, owner, None if cap is None else str(cap), str(charged), expires)
        )

    def settle(self, key: bytes, owner: str, *, now: int | None = None) -> int:
        """Marks the caller's reservation settled, kept for as long as the file lives; returns
        the upto total charged (0 for exact)."""
        key, owner, at = store_key_arg(key), store_owner_arg(owner), store_now_arg(now)

        def run(conn: sqlite3.Connection) -> int:
            settled, cap, charged, logged = self._live(conn, key, owner, at)
            if logged is not None:
                self._move(conn, key, owner, cap, 1, charged, logged)
            elif not settled:
                conn.execute("UPDATE reservations SET settled = 1 WHERE key = ?", (key,))
            return charged

        result: int = self._tx(run)
        return result

    def release(self, key: bytes, owner: str, *, now: int | None = None) -> None:
        """Drops the caller's reservation: nothing was served and nothing broadcast."""
        key, owner, at = store_key_arg(key), store_owner_arg(owner), store_now_arg(now)

        def run(conn: sqlite3.Connection) -> None:
            settled, _cap, _charged, _logged = self._live(conn, key, owner, at)
            if settled:
                raise _refused("closed")
            conn.execute("DELETE FROM reservations WHERE key = ?", (key,))
            with self._index_lock:
                entry = self._index.get(key)
            if entry is not None:  # a moved entry's log row too, or it would answer again
                # Kept until the entry it cancels expires: the step of expiry must not take it
                # before every process has read it.
                conn.execute("INSERT INTO reservation_log (op, key, owner, cap, expires_at) VALUES (0, ?, ?, NULL, ?)", (key, owner, _expiry(entry)))

        self._tx(run)

    def charge(self, key: bytes, owner: str, amount: int, *, now: int | None = None) -> int:
        """Debits an upto session by ``amount`` (an int in [0, 2**256)); returns the new total;
        never passes the cap."""
        key, owner, value, at = store_key_arg(key), store_owner_arg(owner), store_amount_arg(amount), store_now_arg(now)

        def run(conn: sqlite3.Connection) -> int:
            settled, cap, charged, logged = self._live(conn, key, owner, at)
            if settled:
                raise _refused("closed")
            if cap is None:
                raise _refused("not_upto")
            total = charged + value
            if total > cap:
                raise _refused("exceeds_cap")
            if logged is not None:
                self._move(conn, key, owner, cap, 0, total, logged)
            else:
                conn.execute("UPDATE reservations SET charged = ? WHERE key = ?", (str(total), key))
            return total

        result: int = self._tx(run)
        return result

    def state(self, key: bytes, *, now: int | None = None) -> tuple[str, str, int, int | None] | None:
        """``("reserved" | "settled", owner, charged_total, expires_at)`` for a live key, else
        None; ``expires_at`` is None for a settled key (kept for as long as the file lives)."""
        key, at = store_key_arg(key), store_now_arg(now)
        with self._faults():
            row = self._conn().execute("SELECT settled, owner, charged, expires_at FROM reservations WHERE key = ?", (key,)).fetchone()
            in_log = row is None or (not row[0] and row[3] <= at)  # no live row: the log answers
            if in_log:
                self._catch_up(self._conn())
        if in_log:
            logged = self._logged(key, at)
            return None if logged is None else ("reserved", logged[0], 0, logged[2])
        charged = _stored_int(row[2], "charge")
        return ("settled", row[1], charged, None) if row[0] else ("reserved", row[1], charged, row[3])

    def sweep(self, *, now: int | None = None) -> int:
        """Drops expired (unsettled) rows; returns how many remain.

        In short write transactions: the log in windows of ``_SWEEP_WINDOW`` rows, the write
        turn given up between them, and the count read after them, outside the turn (exact
        when no writer runs meanwhile). As one transaction, a sweep of 500k entries held the
        turn 377 ms, 339 of them counting, and every request behind it waited that long."""
        at = store_now_arg(now)
        self._tx(lambda conn: conn.execute("DELETE FROM reservations WHERE expires_at <= ? AND settled = 0", (at,)))

        def window(conn: sqlite3.Connection, after: int) -> int | None:
            last, n = conn.execute(
                "SELECT max(id), count(*) FROM (SELECT id FROM reservation_log WHERE id > ? ORDER BY id LIMIT ?)", (after, _SWEEP_WINDOW)
            ).fetchone()
            if n:
                conn.execute("DELETE FROM reservation_log WHERE id > ? AND id <= ? AND expires_at <= ?", (after, last, at))
            return int(last) if n == _SWEEP_WINDOW else None

        after: int | None = 0
        while after is not None:
            after = self._tx(lambda conn, a=after: window(conn, a))
        conn = self._conn()
        with self._faults():
            self._catch_up(conn, at)
            count: int = conn.execute("SELECT count(*) FROM reservations").fetchone()[0]
            with self._index_lock:
                logged = len(self._index)
            return count + logged - self._moved(conn, count, logged)

    def _moved(self, conn: sqlite3.Connection, count: int, logged: int) -> int:
        """How many of the index's entries ``reservations`` also holds (counted once by
        ``sweep``), looked up from the smaller side: settled rows stay for as long as the file
        does, and live entries can number hundreds of thousands (by IN lists over 600k
        entries, the count took 420 ms of a 490 ms sweep, every 30 s in each worker)."""
        index = self._index
        if count <= logged:
            # Each lookup is atomic on its own; the lock would stall the reserve thread's
            # lookups for the whole loop, and the count is exact only with no writer anyway.
            return sum(1 for (key,) in conn.execute("SELECT key FROM reservations") if key in index)
        with self._index_lock:
            entries = list(index)
        moved = 0
        for chunk, marks in _in_lists(entries):
            moved += conn.execute(f"SELECT count(*) FROM reservations WHERE key IN ({marks})", chunk).fetchone()[0]
        return moved

    def close(self) -> None:
        """Closes this thread's connection; the store refuses every later call."""
        self._closed = True
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        with self._turn:  # not while a writer of this process holds the file's lock
            if self._lock_file is not None and self._lock_file[0] == os.getpid():
                self._lock_file[1]()
            self._lock_file = None

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
