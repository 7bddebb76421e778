"""The facilitator app in process (httpx's ASGI transport; the real-HTTP tests are in
test_facilitator_e2e.py): envelope faults are 400s naming the problem, bad payments are
verdicts, the replay rules of /verify and /settle, how a retried /settle is answered, upto
charges, /release, bearer auth, bounds, metrics, /supported."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import x402_verify as xv
from redis_servers import RedisCluster, redis_cluster  # noqa: F401  (fixture)
from test_stores import FAC, REPLAY_REASON, Payment, sign_payment
from x402_verify.facilitator import DUPLICATE_SETTLEMENT, Limits, create_app
from x402_verify.settlers import CallbackSettler
from x402.schemas import SettleResponse, SupportedResponse, VerifyResponse

NETWORKS = ["eip155:84532", "eip155:8453"]
TX = "0x" + "ab" * 32


def body(p: Payment, **requirements: Any) -> dict[str, Any]:
    return {"x402Version": 2, "paymentPayload": p.payload, "paymentRequirements": {**p.requirements, **requirements}}


class Upstream:
    """A settler that records what it was asked and answers as told."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answer: dict[str, Any] | None = None
        self.delay = 0.0

    async def __call__(self, payload: Any, requirements: Any) -> dict[str, Any]:
        self.calls.append(dict(requirements))
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.answer or {"success": True, "transaction": TX, "network": requirements["network"], "amount": requirements["amount"]}


def app_and_upstream(tmp_path: Path, **kwargs: Any) -> tuple[Any, Upstream]:
    up = Upstream()
    options: dict[str, Any] = {"networks": NETWORKS, "store": f"sqlite://{tmp_path}/n.db", "settler": CallbackSettler(up), "facilitator_addresses": [FAC]}
    options.update(kwargs)
    return create_app(**options), up


_LOOPS: dict[int, asyncio.AbstractEventLoop] = {}


def call(app: Any, fn: Callable[[httpx.AsyncClient], Any]) -> Any:
    """Runs ``fn(client)`` on the app's own event loop (a server gives each worker one loop,
    and the micro-batcher serves one loop)."""
    loop = _LOOPS.get(id(app))
    if loop is None:
        loop = _LOOPS[id(app)] = asyncio.new_event_loop()

    async def run() -> Any:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://f") as c:
            return await fn(c)

    return loop.run_until_complete(run())


@pytest.fixture(autouse=True)
def _close_loops() -> Any:
    yield
    while _LOOPS:
        _, loop = _LOOPS.popitem()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def post(app: Any, path: str, doc: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    async def run(c: httpx.AsyncClient) -> httpx.Response:
        return await c.post(path, json=doc, headers=headers)

    response: httpx.Response = call(app, run)
    return response


@pytest.mark.parametrize("kind", ["eip3009", "permit2", "upto"])
def test_verify_reserves_and_settle_settles_once(tmp_path: Path, kind: str) -> None:
    app, up = app_and_upstream(tmp_path)
    p = sign_payment(kind, int(time.time()))
    first = post(app, "/verify", body(p))
    assert first.status_code == 200 and VerifyResponse.model_validate(first.json()).is_valid
    again = post(app, "/verify", body(p)).json()
    assert (again["isValid"], again["invalidReason"]) == (False, REPLAY_REASON[kind])
    settled = post(app, "/settle", body(p))
    assert settled.status_code == 200
    answer = SettleResponse.model_validate(settled.json())
    assert (answer.success, answer.transaction, answer.network) == (True, TX, p.requirements["network"])
    # A retry: never a second success; the original transaction to reconcile by.
    retry = SettleResponse.model_validate(post(app, "/settle", body(p)).json())
    assert (retry.success, retry.error_reason, retry.transaction, retry.network) == (False, DUPLICATE_SETTLEMENT, TX, p.requirements["network"])
    assert len(up.calls) == 1
    assert post(app, "/verify", body(p)).json()["invalidReason"] == REPLAY_REASON[kind]


def test_settle_without_verify_reserves_first(tmp_path: Path) -> None:
    app, up = app_and_upstream(tmp_path)
    p = sign_payment("eip3009", int(time.time()))
    assert post(app, "/settle", body(p)).json()["success"] is True
    assert post(app, "/verify", body(p)).json()["invalidReason"] == "invalid_exact_evm_nonce_already_used"
    assert len(up.calls) == 1


def test_concurrent_settles_of_one_payment_settle_once(tmp_path: Path) -> None:
    app, up = app_and_upstream(tmp_path)
    up.delay = 0.05
    p = sign_payment("permit2", int(time.time()))

    async def run(c: httpx.AsyncClient) -> list[dict[str, Any]]:
        rs = await asyncio.gather(*(c.post("/settle", json=body(p)) for _ in range(20)))
        return [r.json() for r in rs]

    answers = call(app, run)
    assert sum(a["success"] for a in answers) == 1
    assert {a.get("errorReason") for a in answers if not a["success"]} == {DUPLICATE_SETTLEMENT}
    assert all("transaction" in a and a["network"] == "eip155:8453" for a in answers)
    assert len(up.calls) == 1


def test_a_bad_payment_is_a_verdict_on_both_endpoints(tmp_path: Path) -> None:
    app, up = app_and_upstream(tmp_path)
    p = sign_payment("eip3009", int(time.time()))
    r = post(app, "/verify", body(p, payTo="0x" + "11" * 20))
    assert r.status_code == 200
    assert r.json()["invalidReason"] == "invalid_exact_evm_payload_recipient_mismatch"
    s = post(app, "/settle", body(p, amount="1"))
    assert s.status_code == 200
    answer = SettleResponse.model_validate(s.json())  # transaction and network present
    assert (answer.success, answer.error_reason, answer.transaction, answer.network) == (
        False, "invalid_exact_evm_payload_authorization_value_mismatch", "", "eip155:84532"
    )  # fmt: skip
    assert up.calls == []
    # The payment itself is untouched: still valid once.
    assert post(app, "/verify", body(p)).json()["isValid"] is True


def test_an_expired_payment_is_refused_at_settle(tmp_path: Path) -> None:
    app, up = app_and_upstream(tmp_path)
    p = sign_payment("permit2", int(time.time()) - 400, valid_for=300)
    answer = post(app, "/settle", body(p)).json()
    assert (answer["success"], answer["errorReason"]) == (False, "permit2_deadline_expired")
    assert up.calls == []


def test_a_failed_settlement_answers_the_same_failure_again(tmp_path: Path) -> None:
    app, up = app_and_upstream(tmp_path)
    up.answer = {"success": False, "errorReason": "insufficient_funds", "errorMessage": "no", "transaction": "", "network": "eip155:84532"}
    p = sign_payment("eip3009", int(time.time()))
    first = post(app, "/settle", body(p)).json()
    assert (first["success"], first["errorReason"], first["transaction"]) == (False, "insufficient_funds", "")
    assert post(app, "/settle", body(p)).json() == first
    assert len(up.calls) == 1


def test_upto_settles_the_charged_amount_never_past_the_maximum(tmp_path: Path) -> None:
    app, up = app_and_upstream(tmp_path)
    p = sign_payment("upto", int(time.time()), amount=10_000)
    assert post(app, "/verify", body(p)).json()["isValid"] is True
    over = post(app, "/settle", body(p, amount="10001")).json()
    assert (over["success"], over["errorReason"]) == (False, "invalid_upto_evm_payload_settlement_exceeds_amount")
    assert up.calls == []
    q = sign_payment("upto", int(time.time()), amount=10_000)
    ok = post(app, "/settle", body(q, amount="2500")).json()
    assert (ok["success"], ok["amount"]) == (True, "2500")
    assert [c["amount"] for c in up.calls] == ["2500"]
    bad = post(app, "/settle", body(sign_payment("upto", int(time.time())), amount="01")).json()
    assert bad["errorReason"] == "invalid_payment_requirements"


def test_no_settler_answers_no_settler(tmp_path: Path) -> None:
    app = create_app(networks=NETWORKS, store=f"sqlite://{tmp_path}/n.db")
    p = sign_payment("eip3009", int(time.time()))
    answer = post(app, "/settle", body(p)).json()
    assert (answer["success"], answer["errorReason"], answer["transaction"], answer["network"]) == (False, "no_settler", "", "eip155:84532")


def test_a_slow_settlement_times_out_and_its_outcome_is_kept(tmp_path: Path) -> None:
    app, up = app_and_upstream(tmp_path, limits=Limits(settle_timeout=0.1, settle_attempts=1))
    up.delay = 0.4
    p = sign_payment("eip3009", int(time.time()))

    async def run(c: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
        first = (await c.post("/settle", json=body(p))).json()
        # The settler's wait_for ends it at 0.1 s too: the stored outcome is that failure.
        for _ in range(100):
            await asyncio.sleep(0.05)
            later = (await c.post("/settle", json=body(p))).json()
            if "another request" not in later.get("errorMessage", ""):
                return first, later
        raise AssertionError("the settlement never finished")

    first, later = call(app, run)
    assert (first["success"], first["errorReason"]) == (False, "unexpected_settle_error")
    assert later["success"] is False and later["transaction"] == ""


def test_release_frees_a_reservation_only_with_the_token(tmp_path: Path) -> None:
    app, up = app_and_upstream(tmp_path, auth_token="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    p = sign_payment("permit2", int(time.time()))
    assert post(app, "/verify", body(p)).status_code == 401
    assert post(app, "/verify", body(p), {"Authorization": "Bearer s3cre"}).status_code == 401
    assert post(app, "/verify", body(p), auth).json()["isValid"] is True
    assert post(app, "/release", body(p)).status_code == 401
    assert post(app, "/release", body(p), auth).json() == {"released": True}
    # Freed: the same payment verifies again, once.
    assert post(app, "/verify", body(p), auth).json()["isValid"] is True
    assert post(app, "/verify", body(p), auth).json()["isValid"] is False
    assert post(app, "/settle", body(p), auth).json()["success"] is True
    closed = post(app, "/release", body(p), auth).json()
    assert (closed["released"], closed["reason"]) == (False, "reservation_closed")
    unheld = post(app, "/release", body(sign_payment("permit2", int(time.time()))), auth).json()
    assert (unheld["released"], unheld["reason"]) == (False, "not_reserved")
    # /supported, /health and /metrics stay open.
    assert call(app, lambda c: c.get("/supported")).status_code == 200


def test_release_does_not_exist_without_a_token(tmp_path: Path) -> None:
    app, _ = app_and_upstream(tmp_path)
    p = sign_payment("permit2", int(time.time()))
    assert post(app, "/release", body(p)).status_code == 404


ENVELOPE_FAULTS: list[tuple[str, Any, str]] = [
    ("not JSON", b"{", "invalid_json"),
    ("an array", [], "invalid_request"),
    ("no version", {"paymentPayload": {}, "paymentRequirements": {}}, "missing_field"),
    ("version 3", {"x402Version": 3, "paymentPayload": {}, "paymentRequirements": {}}, "invalid_x402_version"),
    ("version as text", {"x402Version": "2", "paymentPayload": {}, "paymentRequirements": {}}, "invalid_x402_version"),
    ("version true", {"x402Version": True, "paymentPayload": {}, "paymentRequirements": {}}, "invalid_x402_version"),
    ("no payload", {"x402Version": 2, "paymentRequirements": {}}, "missing_field"),
    ("payload a string", {"x402Version": 2, "paymentPayload": "eyJ4In0=", "paymentRequirements": {}}, "invalid_value_type"),
    ("requirements null", {"x402Version": 2, "paymentPayload": {}, "paymentRequirements": None}, "invalid_value_type"),
    ("deep", json.loads("[" * 40 + "]" * 40), "json_too_deep"),
    ("an array of arrays", [[1]], "invalid_request"),
]


@pytest.mark.parametrize(("what", "doc", "code"), ENVELOPE_FAULTS, ids=[f[0] for f in ENVELOPE_FAULTS])
@pytest.mark.parametrize("path", ["/verify", "/settle"])
def test_envelope_faults_are_400s_naming_the_problem(tmp_path: Path, path: str, what: str, doc: Any, code: str) -> None:
    app, up = app_and_upstream(tmp_path)

    async def run(c: httpx.AsyncClient) -> httpx.Response:
        content = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        return await c.post(path, content=content, headers={"content-type": "application/json"})

    r = call(app, run)
    assert r.status_code == 400, (what, r.text)
    assert r.json()["error"] == code and r.json()["message"], r.json()


def test_bounds(tmp_path: Path) -> None:
    app, _ = app_and_upstream(tmp_path, limits=Limits(max_body_bytes=4096, max_json_depth=8, max_header_bytes=2048))
    deep = {"x402Version": 2, "paymentPayload": {"a": [[[[[[[[[[1]]]]]]]]]]}, "paymentRequirements": {}}
    checks = [
        ({"content": b"{" + b" " * 5000 + b"}", "headers": {"content-type": "application/json"}}, "body_too_large"),
        ({"content": json.dumps(deep).encode(), "headers": {"content-type": "application/json"}}, "json_too_deep"),
        ({"content": b"[" * 100_000, "headers": {"content-type": "application/json"}}, "body_too_large"),
        ({"content": b"{}", "headers": {"content-type": "text/plain"}}, "unsupported_media_type"),
        ({"content": b"{}", "headers": {"content-type": "application/json", "x-junk": "j" * 3000}}, "headers_too_large"),
    ]
    for kwargs, code in checks:
        r = call(app, lambda c, kw=kwargs: c.post("/verify", **kw))
        assert (r.status_code, r.json()["error"]) == (400, code)
    # Past the parser's own recursion limit, and under it but past ours: both refused, no RecursionError escapes.
    roomy = create_app(networks=NETWORKS, store="memory://", limits=Limits(max_body_bytes=4 << 20, max_json_depth=1000))
    for n in (20_000, 400_000):
        doc = b'{"a":' * n + b"1" + b"}" * n
        r = call(roomy, lambda c, d=doc: c.post("/verify", content=d, headers={"content-type": "application/json"}))
        assert (r.status_code, r.json()["error"]) == (400, "json_too_deep"), n
    assert call(app, lambda c: c.get("/verify")).status_code == 405
    assert call(app, lambda c: c.get("/nope")).status_code == 404


def test_inner_faults_are_verdicts(tmp_path: Path) -> None:
    app, _ = app_and_upstream(tmp_path)
    p = sign_payment("eip3009", int(time.time()))
    cases = [
        ({"x402Version": 2, "paymentPayload": {}, "paymentRequirements": p.requirements}, "invalid_x402_version"),
        ({"x402Version": 2, "paymentPayload": {**p.payload, "x402Version": 1}, "paymentRequirements": p.requirements}, "invalid_x402_version"),
        ({"x402Version": 2, "paymentPayload": p.payload, "paymentRequirements": {}}, "invalid_payment_requirements"),
        ({"x402Version": 2, "paymentPayload": {**p.payload, "payload": 7}, "paymentRequirements": p.requirements}, "invalid_payload"),
    ]
    for doc, code in cases:
        for path, flag in (("/verify", "isValid"), ("/settle", "success")):
            r = post(app, path, doc)
            assert r.status_code == 200 and r.json()[flag] is False, (path, r.text)
            reason = r.json()["invalidReason" if flag == "isValid" else "errorReason"]
            assert reason == code or reason.startswith(("invalid_", "missing_")), (path, code, r.json())


def test_supported_is_what_the_sdk_needs(tmp_path: Path) -> None:
    app, _ = app_and_upstream(tmp_path)
    doc = call(app, lambda c: c.get("/supported")).json()
    model = SupportedResponse.model_validate(doc)
    kinds = {(k.x402_version, k.scheme, k.network) for k in model.kinds}
    assert kinds == {
        (2, "exact", "eip155:84532"), (2, "upto", "eip155:84532"), (2, "exact", "eip155:8453"), (2, "upto", "eip155:8453"),
        (1, "exact", "base-sepolia"), (1, "exact", "base"),
    }  # fmt: skip
    assert all(k.extra == {"facilitatorAddress": FAC} for k in model.kinds if k.scheme == "upto")
    assert all("*" not in k.network for k in model.kinds)
    assert model.signers == {"eip155:*": [FAC]}


def test_metrics_and_health(tmp_path: Path) -> None:
    app, _ = app_and_upstream(tmp_path)
    p = sign_payment("eip3009", int(time.time()))
    post(app, "/verify", body(p))
    post(app, "/verify", body(p))
    post(app, "/settle", body(p))
    call(app, lambda c: c.post("/verify", content=b"{", headers={"content-type": "application/json"}))
    text = call(app, lambda c: c.get("/metrics")).text
    for line in (
        'x402_facilitator_verifications_total{endpoint="verify",reason="valid",scheme="exact_eip3009"} 1.0',
        'x402_facilitator_verifications_total{endpoint="verify",reason="invalid_exact_evm_nonce_already_used",scheme="exact_eip3009"} 1.0',
        'x402_facilitator_settlements_total{outcome="success"} 1.0',
        'x402_facilitator_requests_total{route="/verify",status="200"} 2.0',
        'x402_facilitator_requests_total{route="/verify",status="400"} 1.0',
    ):
        assert line in text, line
    assert "x402_facilitator_verify_batch_size_bucket" in text and "x402_facilitator_upstream_seconds_bucket" in text
    assert 'x402_facilitator_store_seconds_count{op="store_settle"} 1.0' in text
    assert call(app, lambda c: c.get("/health")).json()["status"] == "ok"


def test_memory_store_refused_with_several_workers() -> None:
    with pytest.raises(ValueError, match="per process"):
        create_app(networks=NETWORKS, store="memory://", workers=2)
    with pytest.raises(ValueError, match="scheme"):
        create_app(networks=NETWORKS, store="postgres://x")
    with pytest.raises(ValueError, match="unknown network"):
        create_app(networks=["nowhere"], store="memory://")
    app = create_app(networks=NETWORKS, store="memory://", workers=1)
    assert isinstance(app.service.store, xv.MemoryNonceStore)


@pytest.mark.parametrize("kind", ["eip3009", "permit2"])
def test_redis_cluster_store(tmp_path: Path, redis_cluster: RedisCluster, kind: str) -> None:
    """On a Redis Cluster: reservations spread over the nodes, the ledger in one slot."""
    app, up = app_and_upstream(tmp_path, store="redis+cluster://" + redis_cluster.url.split("://", 1)[1])
    p = sign_payment(kind, int(time.time()))
    assert post(app, "/verify", body(p)).json()["isValid"] is True
    assert post(app, "/verify", body(p)).json()["invalidReason"] == REPLAY_REASON[kind]
    assert post(app, "/settle", body(p)).json()["success"] is True
    assert post(app, "/settle", body(p)).json()["errorReason"] == DUPLICATE_SETTLEMENT
    assert len(up.calls) == 1
