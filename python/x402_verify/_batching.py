"""Micro-batching: coalesce the items that concurrent coroutines submit into one blocking call
run off the event loop, and hand each caller its own result.

Used by the ASGI middleware and the SDK drop-in to turn many concurrent ``Verifier.verify``
calls into one ``Verifier.verify_batch`` (the core releases the GIL, so the loop keeps serving
while a batch runs). Reusable for anything shaped ``fn(list[item]) -> list[result]``.

Scheduling: a lone request is never held back on purpose. When fewer than ``max_inflight``
batches are running, whatever has arrived is flushed on the next turn of the event loop (so
the requests that arrive in the same turn share a batch). When ``max_inflight`` batches are
already running, new items queue; the next batch starts as soon as one finishes, holding
everything that queued meanwhile (at most ``max_batch``). ``max_wait`` (seconds, default 0)
optionally holds a batch open a little longer to gather more items when a batch is already
running; it never delays a request that finds the pipeline idle.

Stages chain (``MicroBatcher(then=serial)``): the thread that ran the checks hands the results that
go on straight to the next stage's queue with their callers' futures, so a caller awaits one
future for both stages and the event loop is woken once per batch of the last stage, not once
per stage.

``MicroBatcher(on_loop=True)`` runs each batch on the event loop's own thread instead, in the
flush: for a process whose loop does nothing but feed the batcher (a facilitator worker), the
two thread hand-offs a batch costs are dearer than the loop time they free. The loop is busy
while a batch runs; the core releases the GIL meanwhile, so the process's other threads (a
later stage's, the server's) carry on.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["BatchStats", "MicroBatcher", "SerialBatcher"]

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("x402_verify.batching")


@dataclass
class BatchStats:
    """Counters for the benchmarks and the docs: batches run and items they held."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    @property
    def mean_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0

    def record(self, n: int) -> None:
        self.batches += 1
        self.items += n
        self.largest = max(self.largest, n)
        self.sizes[n] = self.sizes.get(n, 0) + 1


class _Answering(Generic[T, R]):
    """What both batchers do with a batch's outcome: answer its callers' futures on the loop
    (from the thread that ran it, now when that is the loop's), and hand the results nobody waits for any more to
    ``on_orphan`` off the loop (undoing a reservation may be a store round trip)."""

    _loop: asyncio.AbstractEventLoop | None
    _on_orphan: Callable[[T, R], None] | None

    def _offload(self, fn: Callable[..., None], *args: object) -> None:
        raise NotImplementedError

    def _bind(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.AbstractEventLoop:
        """``loop`` (by default the running one), which must be the one this batcher first served."""
        if loop is None:
            loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(f"a {type(self).__name__} serves one event loop")
        return loop

    def _results(self, fn: Callable[[list[T]], Sequence[R]], batch: list[tuple[T, asyncio.Future[R]]]) -> list[R] | None:
        """``fn`` over the batch's items, one result an item; or None once every caller of the
        batch has been told why not."""
        try:
            results = list(fn([item for item, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # every caller of the batch learns of it
            self._answer(self._fail, batch, exc)
            if not isinstance(exc, Exception) and self._on_loop_thread():
                raise  # KeyboardInterrupt, SystemExit: the loop's to handle, not only the callers'
            return None
        return results

    def _on_loop_thread(self) -> bool:
        return False

    def _answer(self, fn: Callable[..., None], *args: object) -> None:
        """Runs ``fn`` on the loop: now when called there, else through ``_call_soon``."""
        if self._on_loop_thread():
            fn(*args)
        else:
            self._call_soon(fn, *args)

    def _call_soon(self, fn: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed under us: nobody is left to answer
            log.warning("event loop closed before a batch's results were delivered")

    def _deliver(self, batch: list[tuple[T, asyncio.Future[R]]], results: list[R]) -> None:
        orphans: list[tuple[T, R]] = []
        for (item, fut), result in zip(batch, results, strict=True):
            if fut.done():  # cancelled while the batch ran
                orphans.append((item, result))
            else:
                fut.set_result(result)
        if orphans and self._on_orphan is not None:
            self._offload(self._orphans, orphans)

    def _orphans(self, orphans: list[tuple[T, R]]) -> None:
        assert self._on_orphan is not None
        for item, result in orphans:
            try:
                self._on_orphan(item, result)
            except Exception:
                log.exception("on_orphan failed")

    @staticmethod
    def _fail(batch: list[tuple[T, asyncio.Future[R]]], exc: BaseException) -> None:
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(exc)


class MicroBatcher(_Answering[T, R]):
    """Coalesces ``await submit(item)`` calls into ``fn(items)`` calls in a worker thread.

    Args:
        fn: a blocking function from a list of items to a list of results of the same length,
            in order. If it raises, every caller of that batch gets the exception.
        max_batch: most items in one call.
        max_wait: seconds a batch may wait for more items while another batch is running
            (0: none). Never applied when the pipeline is idle.
        max_inflight: batches running at once (threads of the private executor).
        on_orphan: called (in a worker thread) with ``(item, result)`` for each result
            whose caller went away (its task was cancelled), so a reservation it carries can be
            undone. Exceptions it raises are logged.
        then: a ``SerialBatcher`` the results that ``goes_on`` picks are handed to, from the
            thread that ran the batch, with their callers' futures: such a caller's future is answered by
            that stage, not by this one, and the result never goes back to the event loop in
            between (one wake-up of the loop and one await fewer a request).
        goes_on: which results go on to ``then`` (all of them when not given).
        on_loop: run each batch on the event loop's thread, when it is flushed, rather than in
            a worker thread (see the module docs); ``max_inflight`` and ``max_wait`` then have
            no effect, since one batch runs at a time and none is running when items arrive,
            and ``max_batch`` bounds how long the loop is busy.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 256,
        max_wait: float = 0.0,
        max_inflight: int = 2,
        on_orphan: Callable[[T, R], None] | None = None,
        then: SerialBatcher[R, R] | None = None,
        goes_on: Callable[[R], bool] | None = None,
        on_loop: bool = False,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if max_wait < 0:
            raise ValueError("max_wait must be >= 0")
        if max_inflight < 1:
            raise ValueError("max_inflight must be >= 1")
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_inflight = max_inflight
        self._on_orphan = on_orphan
        self._then = then
        self._goes_on = goes_on
        self.on_loop = on_loop
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._inflight = 0
        self._scheduled: asyncio.Handle | asyncio.TimerHandle | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=max_inflight, thread_name_prefix="x402-batch")
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = BatchStats()

    async def submit(self, item: T) -> R:
        """Queues ``item`` and waits for its result."""
        return await self.submit_nowait(item)

    def submit_nowait(self, item: T) -> asyncio.Future[R]:
        """Queues ``item``; its result arrives on the returned future (cancel it to leave: a
        result that comes anyway goes to ``on_orphan``). Call it on the event loop."""
        loop = self._bind()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, fut))
        if len(self._pending) >= self.max_batch and self._inflight < self.max_inflight:
            self._cancel_scheduled()
            self._flush()
        elif self._scheduled is None and self._inflight < self.max_inflight:
            if self._inflight == 0 or self.max_wait == 0:
                self._scheduled = loop.call_soon(self._flush)
            else:
                self._scheduled = loop.call_later(self.max_wait, self._flush)
        return fut

    def _cancel_scheduled(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None

    def _flush(self) -> None:
        self._scheduled = None
        while self._pending and self._inflight < self.max_inflight:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            # Callers that went away before the batch started need no work done.
            batch = [(item, fut) for item, fut in batch if not fut.done()]
            if not batch:
                continue
            self._inflight += 1
            self.stats.record(len(batch))
            if self.on_loop:
                try:
                    self._run(batch)
                finally:
                    self._inflight -= 1
                continue
            assert self._loop is not None
            task = self._loop.run_in_executor(self._executor, self._run, batch)
            task.add_done_callback(self._done)

    def _on_loop_thread(self) -> bool:
        return self.on_loop

    def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        results = self._results(self._fn, batch)
        if results is None:
            return
        if self._then is not None:
            assert self._loop is not None
            kept, answers = [], []
            for entry, result in zip(batch, results, strict=True):
                if self._goes_on is None or self._goes_on(result):
                    try:
                        self._then.adopt(result, entry[1], self._loop)
                    except RuntimeError as exc:  # that stage closed: its caller learns why
                        self._answer(self._fail, [entry], exc)
                else:
                    kept.append(entry)
                    answers.append(result)
            batch, results = kept, answers
        if batch:
            self._answer(self._deliver, batch, results)

    def _offload(self, fn: Callable[..., None], *args: object) -> None:
        self._executor.submit(fn, *args)

    def _done(self, _task: asyncio.Future[None]) -> None:
        self._inflight -= 1
        if self._pending and self._scheduled is None:
            self._flush()

    def close(self) -> None:
        """Stops the worker threads once running batches finish."""
        self._executor.shutdown(wait=False)


class SerialBatcher(_Answering[T, R]):
    """One worker thread running ``fn(items)`` on everything queued, one call at a time.

    For a stage whose cost is per call rather than per item, such as a durable store's commit:
    a batch is gathered when the thread is ready to run it, inside ``gate()`` (a context
    manager entered before each batch: the store's write turn, which another process may hold),
    not when the previous batch ended. So the items that queue while the thread waits for the
    gate join the batch it is about to run instead of the one after, and each wait for the gate
    (one commit of another process) is paid once by everything queued.

    Args:
        fn: a blocking function from a list of items to a list of results of the same length,
            in order. If it raises, every caller of that batch gets the exception; so does every
            caller of a batch whose gate raises on entry or exit (the thread carries on).
        max_batch: most items in one call.
        gate: called before each batch; the batch is gathered and run inside the context
            manager it returns (None: no gate).
        on_orphan: as ``MicroBatcher``'s: called with ``(item, result)`` for each result whose
            caller went away, so a reservation it carries can be undone.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 1024,
        gate: Callable[[], AbstractContextManager[object]] | None = None,
        on_orphan: Callable[[T, R], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._fn = fn
        self.max_batch = max_batch
        self._gate = gate
        self._on_orphan = on_orphan
        # deque: appended on the loop, popped by the worker thread (both atomic operations).
        self._queue: collections.deque[tuple[T, asyncio.Future[R]]] = collections.deque()
        self._wake = threading.Event()
        self._closed = False
        self._starting = threading.Lock()  # adopt() may be called from several threads at once
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = BatchStats()

    def submit_nowait(self, item: T) -> asyncio.Future[R]:
        """Queues ``item``; its result arrives on the returned future (cancel it to leave)."""
        loop = self._bind()
        fut: asyncio.Future[R] = loop.create_future()
        self._enqueue(item, fut)
        return fut

    def adopt(self, item: T, fut: asyncio.Future[R], loop: asyncio.AbstractEventLoop) -> None:
        """Queues ``item`` with a future another stage made on ``loop`` (which must be the
        loop this batcher serves): this stage answers it. Callable from any thread."""
        self._bind(loop)
        self._enqueue(item, fut)

    def _enqueue(self, item: T, fut: asyncio.Future[R]) -> None:
        if self._closed:
            raise RuntimeError("the batcher is closed")
        self._queue.append((item, fut))
        if self._thread is None:
            with self._starting:
                if self._thread is None:
                    thread = threading.Thread(target=self._work, name="x402-serial", daemon=True)
                    thread.start()
                    self._thread = thread
        self._wake.set()

    async def submit(self, item: T) -> R:
        """Queues ``item`` and waits for its result."""
        return await self.submit_nowait(item)

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        while self._queue and len(batch) < self.max_batch:
            entry = self._queue.popleft()
            if not entry[1].done():  # its caller went away before the batch: no work
                batch.append(entry)
        return batch

    def _work(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()  # before the queue is read: an item queued from now on sets it again
            if self._closed:
                return
            while self._queue:
                batch: list[tuple[T, asyncio.Future[R]]] = []
                results: list[R] | None = None
                try:
                    with self._gate() if self._gate is not None else contextlib.nullcontext():
                        batch = self._take()
                        if batch:
                            self.stats.record(len(batch))
                            results = self._results(self._fn, batch)
                except BaseException as exc:  # the gate itself failed (a closed store, say): the thread lives on
                    if not batch:  # on entry: what is queued would only find it failing again
                        batch = self._take()
                    self._call_soon(self._fail, batch, exc)
                    continue
                if results is not None:
                    self._call_soon(self._deliver, batch, results)

    def _offload(self, fn: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        self._loop.run_in_executor(None, fn, *args)

    def close(self) -> None:
        """Stops the worker thread once the running batch finishes."""
        self._closed = True
        self._wake.set()
