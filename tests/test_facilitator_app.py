"""The facilitator app in process (httpx's ASGI transport): auth, release, settle bookkeeping,
metrics, the deadline sweep, a store that fails closed, and how ``serve`` forks its workers."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from http_servers import verify_body
from payments import sign_payment
from x402_verify import _core
from x402_verify.facilitator import FacilitatorConfig, create_app
from x402_verify.settlers import CallbackSettler

TOKEN = "s3cret-token"
TX = "0x" + "cd" * 32


def settler(calls: list[Any], *, delay: float = 0.0) -> CallbackSettler:
    async def fn(payload: Any, requirements: Any) -> dict[str, Any]:
        calls.append(requirements.get("amount"))
        await asyncio.sleep(delay)
        return {"success": True, "transaction": TX, "network": requirements["network"]}

    return CallbackSettler(fn)


async def client_for(app: Any, token: str | None = None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers)


def test_the_bearer_token_guards_verify_settle_release(tmp_path: Path) -> None:
    p = sign_payment("eip3009", int(time.time()))
    body = verify_body(p.payload, p.requirements)
    app = create_app(store=f"sqlite:///{tmp_path / 'n.db'}", auth_token=TOKEN, settler=settler([]))

    async def flow() -> None:
        async with await client_for(app) as anon, await client_for(app, "wrong") as wrong, await client_for(app, TOKEN) as ok:
            for c in (anon, wrong):
                for path in ("/verify", "/settle", "/release"):
                    r = await c.post(path, json=body)
                    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
            assert (await anon.get("/supported")).status_code == 200  # public
            assert (await ok.post("/verify", json=body)).json()["isValid"] is True

    asyncio.run(flow())


def test_release_frees_a_reservation_once_and_never_a_settled_one(tmp_path: Path) -> None:
    now = int(time.time())
    p, q = sign_payment("eip3009", now), sign_payment("permit2", now)
    app = create_app(store=f"sqlite:///{tmp_path / 'n.db'}", auth_token=TOKEN, settler=settler([]))

    async def flow() -> None:
        async with await client_for(app, TOKEN) as c:
            body = verify_body(p.payload, p.requirements)
            assert (await c.post("/verify", json=body)).json()["isValid"] is True
            assert (await c.post("/release", json=body)).json() == {"released": True}
            assert (await c.post("/verify", json=body)).json()["isValid"] is True  # free again
            other = verify_body(q.payload, q.requirements)
            assert (await c.post("/release", json=other)).json()["released"] is False  # never reserved
            assert (await c.post("/verify", json=other)).json()["isValid"] is True  # and left unreserved
            assert (await c.post("/settle", json=body)).json()["success"] is True
            assert (await c.post("/release", json=body)).json() == {"released": False, "reason": "settled"}

    asyncio.run(flow())


def test_concurrent_settles_of_one_reservation_call_the_upstream_once(tmp_path: Path) -> None:
    p = sign_payment("eip3009", int(time.time()))
    calls: list[Any] = []
    app = create_app(store=f"sqlite:///{tmp_path / 'n.db'}", settler=settler(calls, delay=0.2))

    async def flow() -> list[Any]:
        async with await client_for(app) as c:
            body = verify_body(p.payload, p.requirements)
            assert (await c.post("/verify", json=body)).json()["isValid"] is True
            answers = await asyncio.gather(*(c.post("/settle", json=body) for _ in range(10)))
            later = await c.post("/settle", json=body)
            return [a.json() for a in answers] + [later.json()]

    answers = asyncio.run(flow())
    assert len(calls) == 1 and sum(a["success"] for a in answers) == 1
    replay = _core.REPLAY_REASONS["eip3009"]
    assert {a["errorReason"] for a in answers if not a["success"]} <= {"settlement_pending", replay}
    assert answers[-1] == {**answers[-1], "success": False, "errorReason": replay, "transaction": TX}


def test_upto_settle_charges_within_the_signed_maximum(tmp_path: Path) -> None:
    p = sign_payment("upto", int(time.time()), amount=50_000)
    calls: list[Any] = []
    app = create_app(store=f"sqlite:///{tmp_path / 'n.db'}", settler=settler(calls))

    async def flow() -> tuple[Any, Any]:
        async with await client_for(app) as c:
            over = verify_body(p.payload, {**p.requirements, "amount": "50001"})
            too_much = (await c.post("/settle", json=over)).json()
            return too_much, None

    too_much, _ = asyncio.run(flow())
    assert too_much["success"] is False and too_much["errorReason"] == "invalid_upto_evm_payload_settlement_exceeds_amount"
    assert calls == []
    q = sign_payment("upto", int(time.time()), amount=50_000)

    async def flow2() -> Any:
        async with await client_for(app) as c:
            return (await c.post("/settle", json=verify_body(q.payload, {**q.requirements, "amount": "1234"}))).json()

    app = create_app(store=f"sqlite:///{tmp_path / 'm.db'}", settler=settler(calls))
    ok = asyncio.run(flow2())
    assert ok["success"] is True and calls == ["1234"]


def test_without_an_upstream_settle_fails_and_marks_nothing(tmp_path: Path) -> None:
    p = sign_payment("eip3009", int(time.time()))
    app = create_app(store=f"sqlite:///{tmp_path / 'n.db'}")

    async def flow() -> tuple[Any, Any]:
        async with await client_for(app) as c:
            body = verify_body(p.payload, p.requirements)
            s = (await c.post("/settle", json=body)).json()
            v = (await c.post("/verify", json=body)).json()
            return s, v

    s, v = asyncio.run(flow())
    assert s["success"] is False and s["transaction"] == "" and s["network"] == p.requirements["network"]
    assert v["isValid"] is True  # nothing was reserved or settled by the failed settle


def test_metrics_count_verdicts_batches_and_settlements(tmp_path: Path) -> None:
    now = int(time.time())
    pays = [sign_payment("eip3009", now) for _ in range(3)]
    app = create_app(store=f"sqlite:///{tmp_path / 'n.db'}", settler=settler([]))

    async def flow() -> str:
        async with await client_for(app) as c:
            await asyncio.gather(*(c.post("/verify", json=verify_body(p.payload, p.requirements)) for p in pays))
            await c.post("/verify", json=verify_body(pays[0].payload, pays[0].requirements))
            await c.post("/settle", json=verify_body(pays[1].payload, pays[1].requirements))
            r = await c.get("/metrics")
            assert r.headers["content-type"].startswith("text/plain")
            return r.text

    text = asyncio.run(flow())
    assert 'x402_verify_verifications_total{endpoint="verify",reason="valid",scheme="exact_eip3009"} 3.0' in text
    replay = _core.REPLAY_REASONS["eip3009"]
    assert f'x402_verify_verifications_total{{endpoint="verify",reason="{replay}",scheme="exact_eip3009"}} 1.0' in text
    assert 'x402_verify_settlements_total{outcome="success"} 1.0' in text
    assert "x402_verify_batch_size_count" in text and "x402_verify_upstream_seconds_count 1.0" in text
    assert 'x402_verify_request_seconds_count{endpoint="/verify"} 4.0' in text


def test_the_sweep_frees_a_reservation_whose_authorization_died_without_settle(tmp_path: Path) -> None:
    p = sign_payment("eip3009", int(time.time()), valid_for=7)
    store_url = f"sqlite:///{tmp_path / 'n.db'}"
    app = create_app(store=store_url, sweep_interval=0.2)

    async def flow() -> Any:
        await app.startup()
        async with await client_for(app) as c:
            assert (await c.post("/verify", json=verify_body(p.payload, p.requirements))).json()["isValid"] is True
        verdict = app.verifier.verify_batch([(p.payload, p.requirements)])[0]
        key = verdict.replay_key
        assert app.store.state(key) is not None
        # The reservation lives until validBefore + the store's margin (60 s): sweep at a later "now".
        app.store.sweep(now=int(time.time()) + 7 + 61)
        assert app.store.state(key, now=int(time.time()) + 7 + 61) is None
        sweeps_before = app.sweeps
        await asyncio.sleep(0.5)
        await app.shutdown()
        return app.sweeps - sweeps_before

    assert asyncio.run(flow()) >= 1  # the lifespan task sweeps on its own


def test_a_store_that_cannot_answer_fails_closed(tmp_path: Path) -> None:
    p = sign_payment("eip3009", int(time.time()))
    app = create_app(store="redis://127.0.0.1:1/0", settler=settler([]))  # nothing listens on port 1

    async def flow() -> tuple[Any, Any]:
        async with await client_for(app) as c:
            body = verify_body(p.payload, p.requirements)
            return (await c.post("/verify", json=body)), (await c.post("/settle", json=body))

    v, s = asyncio.run(flow())
    assert v.status_code == 200 and v.json()["isValid"] is False and v.json()["invalidReason"] == "nonce_store_unavailable"
    assert s.status_code == 200 and s.json()["success"] is False


def test_config_is_checked() -> None:
    bad_fields = ({"networks": ("eip155:*",)}, {"networks": "eip155:1"}, {"store": "mysql://x"}, {"max_body_bytes": 0}, {"request_timeout": 0}, {"upstream": "ftp://x"})
    for bad in (*bad_fields, {"checks": "sideways"}, {"checks": None}):
        with pytest.raises((ValueError, TypeError)):
            FacilitatorConfig(**bad)  # type: ignore[arg-type]
    c = FacilitatorConfig(store="memory://", auth_token="hidden-token")
    assert FacilitatorConfig.from_json(c.to_json()) == c and "hidden-token" not in repr(c)


def test_checks_run_on_the_loop_unless_they_read_chain_state(tmp_path: Path) -> None:
    """``checks="auto"`` (the default) runs verify_batch on the worker's event loop thread, with
    the SQLite store's reserve stage in its own thread behind it; ``"threads"`` beside the loop;
    a verifier that reads chain state waits on the network, so ``auto`` keeps it off the loop and
    ``"loop"`` is refused for it."""
    from x402_verify import ChainReader, SqliteNonceStore, Verifier

    class Recording(Verifier):
        def verify_batch(self, *args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.get_ident())  # type: ignore[attr-defined]
            return super().verify_batch(*args, **kwargs)

    def verify_on(checks: str) -> tuple[int, list[int], bool]:
        verifier = Recording(networks=["eip155:84532", "eip155:8453"], nonce_store=SqliteNonceStore(tmp_path / f"{checks}.db"))
        verifier.threads = []  # type: ignore[attr-defined]
        app = create_app(FacilitatorConfig(store=f"sqlite:///{tmp_path / f'{checks}.db'}", checks=checks), verifier=verifier)
        p = sign_payment("eip3009", int(time.time()))

        async def flow() -> tuple[int, bool]:
            async with await client_for(app) as c:
                r = await c.post("/verify", json=verify_body(p.payload, p.requirements))
                again = await c.post("/verify", json=verify_body(p.payload, p.requirements))
                assert again.json()["invalidReason"] == "invalid_exact_evm_nonce_already_used"  # the stage reserved it
                return threading.get_ident(), r.json()["isValid"]

        loop_thread, valid = asyncio.run(flow())
        app.batcher.close()
        return loop_thread, verifier.threads, valid  # type: ignore[attr-defined]

    loop_thread, threads, valid = verify_on("auto")
    assert valid and set(threads) == {loop_thread}
    loop_thread, threads, valid = verify_on("threads")
    assert valid and threads and loop_thread not in threads

    reader = ChainReader("http://127.0.0.1:9")  # never asked: nothing is verified here
    try:
        chained = Verifier(networks=["eip155:8453"], chain_readers={"eip155:8453": reader})
        assert create_app(FacilitatorConfig(store="memory://"), verifier=chained).batcher.on_loop is False
        assert create_app(FacilitatorConfig(store="memory://", checks="threads"), verifier=chained).batcher.on_loop is False
        with pytest.raises(ValueError, match="reads chain state"):
            create_app(FacilitatorConfig(store="memory://", checks="loop"), verifier=chained)
    finally:
        reader.close()


def test_workers_are_forked_with_no_thread_of_ours_running(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # granian forks its workers from `serve`: a thread of ours alive then could hold a lock (an
    # import lock, say) that a child would wait on for ever. The readiness check is a process.
    import granian

    from x402_verify import cli
    from x402_verify.facilitator import server

    before = {t.ident for t in threading.enumerate()}
    seen: dict[str, Any] = {}

    def fake_serve(self: Any, *args: Any, **kwargs: Any) -> None:
        seen["threads"] = [t for t in threading.enumerate() if t.ident not in before]
        seen["workers"] = self.workers

    spawned: list[list[str]] = []

    class Recorder:
        def __init__(self, cmd: list[str], **kw: Any) -> None:
            spawned.append(cmd)

    monkeypatch.setattr(granian.Granian, "serve", fake_serve)
    monkeypatch.setattr(server.subprocess, "Popen", Recorder)
    assert cli.main(["serve", "--workers", "2", "--store", f"sqlite:///{tmp_path / 'n.db'}", "--port", "0"]) == 0
    assert seen == {"threads": [], "workers": 2}
    assert len(spawned) == 1 and spawned[0][1:3] == ["-m", "x402_verify.facilitator.server"]


def test_a_failed_settlement_answers_its_retries_as_it_did_and_keeps_the_reservation(tmp_path: Path) -> None:
    p = sign_payment("eip3009", int(time.time()))
    calls: list[Any] = []

    async def refuse(payload: Any, requirements: Any) -> dict[str, Any]:
        calls.append(1)
        return {"success": False, "errorReason": "transaction_failed", "transaction": "", "network": requirements["network"]}

    app = create_app(store=f"sqlite:///{tmp_path / 'n.db'}", settler=CallbackSettler(refuse))

    async def flow() -> list[Any]:
        async with await client_for(app) as c:
            body = verify_body(p.payload, p.requirements)
            first = (await c.post("/settle", json=body)).json()
            again = (await c.post("/settle", json=body)).json()
            verify = (await c.post("/verify", json=body)).json()
            return [first, again, verify]

    first, again, verify = asyncio.run(flow())
    assert first["success"] is False and first["errorReason"] == "transaction_failed"
    assert again == first and len(calls) == 1  # not "settled already", and not settled again
    assert verify["invalidReason"] == _core.REPLAY_REASONS["eip3009"]  # still reserved: a transaction may yet land


@pytest.mark.parametrize(("slow", "checks"), [("verify_batch", "threads"), ("reserve", "threads"), ("reserve", "loop")])
def test_a_verify_past_the_request_timeout_answers_unfinished_and_reserves_nothing(tmp_path: Path, slow: str, checks: str) -> None:
    """Slow checks, or a slow commit of the reserve stage: the answer is unexpected_verify_error
    at the timeout, and a reservation the stage makes afterwards is undone (on_orphan), so the
    payment is valid when presented again. (Checks on the loop are CPU work bounded by
    max_batch, the loop busy while they run: nothing there for a timer to interrupt.)"""
    from x402_verify import SqliteNonceStore, Verifier

    class Slow(Verifier):
        pass

    def slowed(name: str) -> Any:
        inner = getattr(Verifier, name)

        def fn(self: Verifier, *args: Any, **kwargs: Any) -> Any:
            if self.slow:  # type: ignore[attr-defined]
                time.sleep(0.6)
            return inner(self, *args, **kwargs)

        return fn

    setattr(Slow, slow, slowed(slow))
    verifier = Slow(networks=["eip155:84532", "eip155:8453"], nonce_store=SqliteNonceStore(tmp_path / "n.db"))
    verifier.slow = True  # type: ignore[attr-defined]
    p = sign_payment("eip3009", int(time.time()))
    body = verify_body(p.payload, p.requirements)
    app = create_app(FacilitatorConfig(store=f"sqlite:///{tmp_path / 'n.db'}", request_timeout=0.2, checks=checks), verifier=verifier)

    async def flow() -> None:
        async with await client_for(app) as c:
            r = await c.post("/verify", json=body)
            assert r.status_code == 200 and r.json()["invalidReason"] == "unexpected_verify_error"
            await asyncio.sleep(1.0)  # the slow stage finishes; its orphaned reservation is released
            verifier.slow = False  # type: ignore[attr-defined]
            assert (await c.post("/verify", json=body)).json()["isValid"] is True
            assert (await c.post("/verify", json=body)).json()["isValid"] is False  # and now reserved

    asyncio.run(flow())


def test_a_serve_worker_freezes_what_exists_once_its_app_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``x402-verify serve`` workers move the objects alive once the app is built out of the
    cyclic GC's reach (gc.freeze), so full collections under load walk only what requests
    made; ``create_app`` alone leaves an embedding process's GC as it was."""
    import gc

    from x402_verify.facilitator import server

    monkeypatch.setenv(server.ENV_CONFIG, FacilitatorConfig(store=f"sqlite:///{tmp_path / 'n.db'}").to_json())
    gc.unfreeze()
    try:
        embedded = create_app(store=f"sqlite:///{tmp_path / 'e.db'}")
        assert gc.get_freeze_count() == 0
        app = server.app_from_env()
        assert gc.get_freeze_count() > 0
        assert isinstance(app, type(embedded))
    finally:
        gc.unfreeze()
