"""200 malformed or hostile requests against ``x402-verify serve`` over real HTTP: each gets a
clear 400 with a JSON reason (a fault of the envelope) or an HTTP 200 invalid verdict (a fault
inside the payload or the requirements), never a 5xx; valid payments sent meanwhile are valid."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from http_servers import facilitator_service, verify_body
from payments import sign_payment

JSON = {"content-type": "application/json"}
ENVELOPE_MEMBERS = {"x402Version", "paymentPayload", "paymentRequirements"}


def leaf_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from leaf_paths(v, prefix + (k,))


def set_path(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return out


class Case:
    def __init__(self, name: str, content: bytes, headers: dict[str, str], expect: str, path: str = "/verify") -> None:
        self.name, self.content, self.headers, self.expect, self.path = name, content, headers, expect, path


def fresh_body(kind: str = "eip3009") -> dict[str, Any]:
    p = sign_payment(kind, int(time.time()))
    return verify_body(p.payload, p.requirements)


def hostile_cases() -> list[Case]:
    cases: list[Case] = []
    base = json.dumps(fresh_body()).encode()
    for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", ""]:
        cases.append(Case(f"content-type {ct!r}", base, {"content-type": ct} if ct else {}, "400"))
    for cut in range(1, len(base), max(1, len(base) // 20)):
        cases.append(Case(f"truncated at {cut}", base[:cut], JSON, "400"))
    cases.append(Case("10 MB body", b'{"x402Version": 2, "pad": "' + b"a" * (10 * 1024 * 1024) + b'"}', JSON, "400"))
    cases.append(Case("invalid UTF-8", b'{"x402Version": 2, "paymentPayload": {"a": "\xff\xfe"}, "paymentRequirements": {}}', JSON, "400"))
    for depth in (33, 100, 5000, 50000):
        cases.append(Case(f"nesting {depth} deep", b"[" * depth + b"]" * depth, JSON, "400"))
        inner = b'{"a":' * depth + b"1" + b"}" * depth
        cases.append(Case(f"nesting {depth} deep in the payload", b'{"x402Version":2,"paymentPayload":' + inner + b',"paymentRequirements":{}}', JSON, "400"))
    for doc in ([], "text", 1, None, True, {}):
        cases.append(Case(f"body {doc!r}", json.dumps(doc).encode(), JSON, "400"))
    for version in (0, 3, 99, -1, "2", None, 2.0, True, 2**70, [2]):
        cases.append(Case(f"x402Version {version!r}", json.dumps({**fresh_body(), "x402Version": version}).encode(), JSON, "400"))
    for member in ("paymentPayload", "paymentRequirements", "x402Version"):
        body = fresh_body()
        del body[member]
        cases.append(Case(f"{member} missing", json.dumps(body).encode(), JSON, "400"))
    for version in (0, 3, "2", None):
        body = fresh_body()
        body["paymentPayload"]["x402Version"] = version
        cases.append(Case(f"paymentPayload.x402Version {version!r}", json.dumps(body).encode(), JSON, "invalid"))
    cases.append(Case("20 KB of headers", base, {**JSON, "x-pad": "a" * 20_000}, "400"))
    # Wrong types in every field (a fresh payment each, so a replay never hides a mistake).
    wrong_values: list[Any] = [None, 12345, [], {}, True, "0x" + "ff" * 600, -1.5]
    template = fresh_body("eip3009")
    # `paymentPayload.accepted` is the client's echo of the offer: the resource server matches it
    # against its offers (the SDK's middleware does) and the verifier checks the payment against
    # the requirements themselves, so it is not among the fields mutated here.
    for path in leaf_paths(template):
        if path[:2] == ("paymentPayload", "accepted"):
            continue
        for value in wrong_values:
            body = fresh_body("eip3009")
            current = body
            for k in path[:-1]:
                current = current[k]
            if type(current[path[-1]]) is type(value) and not isinstance(value, str):
                continue  # a value of the right type is no wrong type (a longer maxTimeoutSeconds is valid)
            expect = "400" if len(path) == 1 and path[0] in ENVELOPE_MEMBERS else "invalid"
            if len(path) == 1 and path[0] in ENVELOPE_MEMBERS and path[0] != "x402Version" and isinstance(value, dict):
                expect = "invalid"  # an object where an object belongs: read, and refused inside
            cases.append(Case(f"{'.'.join(map(str, path))} = {str(value)[:20]}", json.dumps(set_path(body, path, value)).encode(), JSON, expect))
    for path in ("/settle", "/release"):
        cases.append(Case(f"{path} truncated", base[:40], JSON, "400" if path == "/settle" else "404", path=path))
    return cases


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("hostile") / "n.db"
    with facilitator_service(["--store", f"sqlite:///{store}"]) as s:
        yield s.url


def test_two_hundred_hostile_requests_get_400_or_an_invalid_verdict_and_valid_ones_stay_valid(service: str) -> None:
    cases = hostile_cases()
    assert len(cases) >= 200, len(cases)
    goods = [fresh_body(kind) for kind in ("eip3009", "permit2", "upto") for _ in range(10)]

    async def run() -> tuple[list[tuple[Case, int, Any]], list[Any]]:
        async with httpx.AsyncClient(base_url=service, timeout=60, limits=httpx.Limits(max_connections=16)) as c:
            sem = asyncio.Semaphore(16)

            async def hostile(case: Case) -> tuple[Case, int, Any]:
                async with sem:
                    r = await c.post(case.path, content=case.content, headers=case.headers)
                    return case, r.status_code, r.json()

            async def good(body: dict[str, Any]) -> Any:
                await asyncio.sleep(0.01)
                return (await c.post("/verify", json=body)).json()

            hostile_answers, good_answers = await asyncio.gather(asyncio.gather(*(hostile(k) for k in cases)), asyncio.gather(*(good(b) for b in goods)))
            return list(hostile_answers), list(good_answers)

    hostile_answers, good_answers = asyncio.run(run())
    wrong = []
    for case, status, answer in hostile_answers:
        if case.expect == "400":
            ok = status == 400 and isinstance(answer.get("error"), str) and isinstance(answer.get("message"), str)
        elif case.expect == "404":
            ok = status == 404 and isinstance(answer.get("error"), str)
        else:
            ok = status == 200 and answer.get("isValid") is False and isinstance(answer.get("invalidReason"), str) and answer["invalidReason"]
        if not ok:
            wrong.append((case.name, status, answer))
    assert not wrong, [w[:2] for w in wrong]
    assert all(a["isValid"] is True for a in good_answers), [a for a in good_answers if not a["isValid"]][:3]
    # Served on uvloop, which the [server] extra installs and granian picks (docs/facilitator.md).
    assert httpx.get(service + "/health", timeout=10).json() == {"status": "ok", "loop": "uvloop"}


def test_a_chunked_body_past_the_bound_is_refused_while_it_streams(service: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"x402Version": 2, "pad": "'
        for _ in range(200):
            yield b"a" * 65536
        yield b'"}'

    r = httpx.post(service + "/verify", content=chunks(), headers=JSON, timeout=60)
    assert r.status_code == 400 and r.json()["error"] == "body_too_large"


def test_wrong_methods_and_paths_are_json_4xx(service: str) -> None:
    expected = [("GET", "/verify", 405), ("POST", "/supported", 405), ("GET", "/nope", 404), ("DELETE", "/settle", 405), ("POST", "/release", 404)]
    for method, path, status in expected:
        r = httpx.request(method, service + path, timeout=10, headers=JSON, content=b"{}")
        assert r.status_code == status and isinstance(r.json()["error"], str), (method, path, r.status_code, r.text)
