"""The micro-batcher (x402_verify._batching): coalescing, caps, failures, orphans; each rule
that holds for both kinds of batch is checked with the batch run in a worker thread and on the
event loop's own thread (``on_loop``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from x402_verify._batching import MicroBatcher


def run(coro: Any) -> Any:
    return asyncio.run(coro)


both = pytest.mark.parametrize("on_loop", [False, True], ids=["thread", "on_loop"])


@both
def test_concurrent_submits_share_batches_and_get_their_own_results(on_loop: bool) -> None:
    seen: list[list[int]] = []

    def fn(items: list[int]) -> list[int]:
        seen.append(items)
        return [i * 2 for i in items]

    async def main() -> list[int]:
        b: MicroBatcher[int, int] = MicroBatcher(fn, max_batch=64, max_inflight=1, on_loop=on_loop)
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(200)))
        finally:
            b.close()

    assert run(main()) == [i * 2 for i in range(200)]
    assert sum(len(s) for s in seen) == 200
    assert len(seen) < 200 and max(len(s) for s in seen) <= 64


def test_max_inflight_bounds_the_batches_running_at_once() -> None:
    lock = threading.Lock()
    running = peak = 0
    gate = threading.Event()

    def fn(items: list[int]) -> list[int]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        gate.wait(0.05)
        with lock:
            running -= 1
        return items

    async def main() -> None:
        b: MicroBatcher[int, int] = MicroBatcher(fn, max_batch=4, max_inflight=2)
        try:
            assert await asyncio.gather(*(b.submit(i) for i in range(40))) == list(range(40))
        finally:
            b.close()
        assert b.stats.items == 40 and b.stats.largest <= 4

    run(main())
    assert peak == 2


@both
def test_a_failing_batch_fails_its_callers_only(on_loop: bool) -> None:
    def fn(items: list[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("boom")
        return items

    async def main() -> None:
        b: MicroBatcher[int, int] = MicroBatcher(fn, max_batch=1, on_loop=on_loop)
        try:
            out = await asyncio.gather(*(b.submit(i) for i in (1, 13, 2)), return_exceptions=True)
            assert out[0] == 1 and out[2] == 2 and isinstance(out[1], RuntimeError)
            assert await b.submit(3) == 3
        finally:
            b.close()

    run(main())


@both
def test_a_short_answer_is_an_error_not_a_misdelivery(on_loop: bool) -> None:
    async def main() -> None:
        b: MicroBatcher[int, int] = MicroBatcher(lambda items: items[:-1], on_loop=on_loop)
        try:
            with pytest.raises(RuntimeError, match="returned"):
                await b.submit(1)
        finally:
            b.close()

    run(main())


def test_results_of_cancelled_callers_go_to_on_orphan() -> None:
    started = threading.Event()
    release = threading.Event()
    orphans: list[tuple[int, int]] = []
    done = threading.Event()

    def fn(items: list[int]) -> list[int]:
        started.set()
        release.wait(5)
        return [i + 100 for i in items]

    def on_orphan(item: int, result: int) -> None:
        orphans.append((item, result))
        done.set()

    async def main() -> None:
        b: MicroBatcher[int, int] = MicroBatcher(fn, on_orphan=on_orphan)
        task = asyncio.ensure_future(b.submit(7))
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        while not done.is_set():
            await asyncio.sleep(0.001)
        b.close()

    run(main())
    assert orphans == [(7, 107)]


@both
def test_a_lone_request_does_not_wait_for_max_wait(on_loop: bool) -> None:
    async def main() -> int:
        b: MicroBatcher[int, int] = MicroBatcher(lambda items: items, max_wait=3600.0, on_loop=on_loop)
        try:
            # The pipeline is idle: flushed on the next loop turn, not after an hour.
            return await asyncio.wait_for(b.submit(5), timeout=60)
        finally:
            b.close()

    assert run(main()) == 5


def test_on_loop_batches_run_on_the_loops_thread_and_take_what_arrived_meanwhile() -> None:
    """A batch on the loop runs in the flush, on the loop's thread; the submits made while it
    ran (from callbacks it triggered) form the next batch, not one each."""
    where: list[int] = []
    seen: list[list[int]] = []

    def fn(items: list[int]) -> list[int]:
        where.append(threading.get_ident())
        seen.append(items)
        return [i + 1 for i in items]

    async def main() -> tuple[int, list[int]]:
        b: MicroBatcher[int, int] = MicroBatcher(fn, on_loop=True)
        try:
            first = [b.submit_nowait(i) for i in range(5)]
            # Each answer of the first batch submits another item as soon as it is delivered.
            later = [asyncio.ensure_future(_then_submit(b, f, 100 + i)) for i, f in enumerate(first)]
            return threading.get_ident(), list(await asyncio.gather(*later))
        finally:
            b.close()

    loop_thread, out = run(main())
    assert out == [101, 102, 103, 104, 105]
    assert set(where) == {loop_thread}
    assert seen == [[0, 1, 2, 3, 4], [100, 101, 102, 103, 104]]


async def _then_submit(b: MicroBatcher[int, int], fut: asyncio.Future[int], item: int) -> int:
    await fut
    return await b.submit(item)


def test_on_loop_a_keyboard_interrupt_reaches_the_loop_and_the_callers() -> None:
    """An exception that is not an ``Exception`` is the loop's to handle: the batch's callers
    learn of it, and it is not swallowed on the way out of the flush."""

    def fn(items: list[int]) -> list[int]:
        raise KeyboardInterrupt

    futures: list[asyncio.Future[int]] = []

    async def main() -> None:
        b: MicroBatcher[int, int] = MicroBatcher(fn, on_loop=True)
        futures.append(b.submit_nowait(1))
        await asyncio.sleep(1)

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(main())
    finally:
        left = asyncio.all_tasks(loop)  # main(), still asleep when the interrupt came
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.close()
    assert isinstance(futures[0].exception(), KeyboardInterrupt)


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_wait": -1.0}, {"max_inflight": 0}])
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MicroBatcher(lambda items: items, **kwargs)


# --- SerialBatcher: one call at a time, gathered inside the gate -------------------------------


def test_serial_batches_gather_what_queued_while_the_gate_was_held() -> None:
    from x402_verify._batching import SerialBatcher

    seen: list[list[int]] = []
    held = threading.Lock()
    held.acquire()  # another writer's commit: the worker waits for it before gathering

    def fn(items: list[int]) -> list[int]:
        seen.append(items)
        return [i + 100 for i in items]

    async def main() -> list[int]:
        b: SerialBatcher[int, int] = SerialBatcher(fn, gate=lambda: held)
        try:
            futures = [b.submit_nowait(i) for i in range(5)]
            await asyncio.sleep(0.05)  # the worker is now blocked on the gate, holding nothing
            for i in range(5, 8):
                futures.append(b.submit_nowait(i))
            held.release()
            return list(await asyncio.gather(*futures))
        finally:
            b.close()

    assert run(main()) == [i + 100 for i in range(8)]
    assert seen == [list(range(8))]  # one batch: everything queued before the gate opened


def test_serial_batch_failures_and_short_answers_reach_every_caller_of_the_batch() -> None:
    from x402_verify._batching import SerialBatcher

    def boom(items: list[int]) -> list[int]:
        raise ValueError("store down")

    async def main(fn: Any) -> list[Any]:
        b: SerialBatcher[int, int] = SerialBatcher(fn)
        try:
            return list(await asyncio.gather(*(b.submit(i) for i in range(4)), return_exceptions=True))
        finally:
            b.close()

    assert all(isinstance(e, ValueError) for e in run(main(boom)))
    assert all(isinstance(e, RuntimeError) and "results for" in str(e) for e in run(main(lambda items: items[:-1])))


@pytest.mark.parametrize("where", ["entry", "exit"])
def test_serial_gate_failures_reach_the_batch_and_the_worker_carries_on(where: str) -> None:
    """A gate that raises (a store closed under the stage, an unlock that fails) answers its
    batch with the exception, never the results computed inside it, and the next batch runs:
    a dead worker would leave every later caller waiting for its request timeout."""
    from contextlib import contextmanager

    from x402_verify._batching import SerialBatcher

    failures = [where]
    ran: list[list[int]] = []

    @contextmanager
    def gate() -> Any:
        if failures and failures[0] == "entry":
            failures.pop()
            raise OSError("gate failed on entry")
        yield
        if failures and failures[0] == "exit":
            failures.pop()
            raise OSError("gate failed on exit")

    def fn(items: list[int]) -> list[int]:
        ran.append(items)
        return [i + 100 for i in items]

    async def main() -> tuple[list[Any], int]:
        b: SerialBatcher[int, int] = SerialBatcher(fn, gate=gate)
        try:
            first = list(await asyncio.wait_for(asyncio.gather(*(b.submit_nowait(i) for i in range(3)), return_exceptions=True), 5))
            later = await asyncio.wait_for(b.submit(7), 5)
            return first, later
        finally:
            b.close()

    first, later = run(main())
    assert all(isinstance(e, OSError) and f"on {where}" in str(e) for e in first), first
    assert later == 107
    assert ran == ([[7]] if where == "entry" else [[0, 1, 2], [7]])


def test_serial_results_of_cancelled_callers_go_to_on_orphan() -> None:
    from x402_verify._batching import SerialBatcher

    started, finish = threading.Event(), threading.Event()
    orphans: list[tuple[int, int]] = []
    got = threading.Event()

    def fn(items: list[int]) -> list[int]:
        started.set()
        finish.wait(5)
        return [i * 3 for i in items]

    def on_orphan(item: int, result: int) -> None:
        orphans.append((item, result))
        got.set()

    async def main() -> int:
        b: SerialBatcher[int, int] = SerialBatcher(fn, on_orphan=on_orphan)
        try:
            gone, kept = b.submit_nowait(1), b.submit_nowait(2)
            while not started.is_set():
                await asyncio.sleep(0.01)
            gone.cancel()  # the caller leaves while its batch runs
            finish.set()
            result = await kept
            await asyncio.get_running_loop().run_in_executor(None, got.wait, 5)
            return result
        finally:
            b.close()

    assert run(main()) == 6
    assert orphans == [(1, 3)]


# --- the two chained: checks, then the serial stage, one future a caller ------------------------


@both
def test_results_going_on_are_answered_by_the_next_stage_alone_and_its_orphans_are_undone(on_loop: bool) -> None:
    from x402_verify._batching import SerialBatcher

    second: list[list[int]] = []
    orphans: list[tuple[int, int]] = []
    held, got = threading.Event(), threading.Event()
    threads: set[str] = set()

    def reserve(items: list[int]) -> list[int]:
        threads.add(threading.current_thread().name)
        held.wait(5)
        second.append(items)
        return [-i for i in items]

    def on_orphan(item: int, result: int) -> None:
        orphans.append((item, result))
        got.set()

    async def main() -> list[Any]:
        serial: SerialBatcher[int, int] = SerialBatcher(reserve, on_orphan=on_orphan)
        checks: MicroBatcher[int, int] = MicroBatcher(lambda items: [i * 10 for i in items], then=serial, goes_on=lambda r: r % 20 == 0, on_loop=on_loop)
        try:
            futures = [checks.submit_nowait(i) for i in range(8)]
            odd = await asyncio.gather(*futures[1::2])  # answered by the checks, the other stage held
            assert not second
            futures[2].cancel()  # leaves while its result waits in the serial stage
            held.set()
            even = await asyncio.gather(*futures[0::2], return_exceptions=True)
            if 20 in [i for batch in second for i in batch]:  # reserved before it left: undone
                await asyncio.get_running_loop().run_in_executor(None, got.wait, 5)
            return [odd, even]
        finally:
            checks.close()
            serial.close()

    odd, even = run(main())
    assert odd == [10, 30, 50, 70]
    assert even[0] == 0 and isinstance(even[1], asyncio.CancelledError) and even[2:] == [-40, -60]
    # The cancelled one was either dropped before its batch (no work) or undone after it.
    assert sorted(i for batch in second for i in batch) in ([0, 20, 40, 60], [0, 40, 60])
    assert orphans == ([(20, -20)] if 20 in [i for batch in second for i in batch] else [])
    assert threads == {"x402-serial"}
