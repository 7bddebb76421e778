"""200 malformed or hostile requests against ``x402-verify serve`` over real HTTP: each gets a
clear 400 (a JSON body naming the problem) or an invalid verdict (HTTP 200), never a 5xx, and
valid requests sent meanwhile keep being answered valid."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

import facilitator_proc
from test_stores import sign_payment

JUNK_VALUES: list[Any] = [None, True, 0, -1, 1.5, "", "x" * 300, [], {}, [1, [2]], 2**300]
TEN_MB = 10 * 1024 * 1024


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every member of a JSON document, containers included."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def hostile_requests(good: dict[str, Any]) -> list[tuple[str, str, dict[str, str], bytes]]:
    """(label, path, headers, body): 200 of them, made from one good request."""
    text = json.dumps(good).encode()
    js = {"content-type": "application/json"}
    out: list[tuple[str, str, dict[str, str], bytes]] = []
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", ""):
        out.append((f"content type {ctype!r}", "/verify", {"content-type": ctype} if ctype else {}, text))
    for cut in range(1, len(text), max(1, len(text) // 30)):
        out.append((f"truncated at {cut}", "/verify" if cut % 2 else "/settle", js, text[:cut]))
    for depth in (33, 1000, 60_000):
        out.append((f"nested arrays {depth}", "/verify", js, b"[" * depth + b"]" * depth))
        inner = b'{"a":' * depth + b"1" + b"}" * depth
        out.append((f"nested payload {depth}", "/settle", js, b'{"x402Version":2,"paymentPayload":' + inner + b',"paymentRequirements":{}}'))
    for version in (0, 3, -1, "2", 2.0, None, [], 2**64):
        out.append((f"version {version!r}", "/verify", js, json.dumps({**good, "x402Version": version}).encode()))
    out += [
        ("not UTF-8", "/verify", js, b'{"x402Version":2,"paymentPayload":{"a":"\xff\xfe"},"paymentRequirements":{}}'),
        ("NaN", "/verify", js, text.replace(b'"x402Version": 2', b'"x402Version": NaN', 1)),
        ("huge number", "/verify", js, text.replace(b'"maxTimeoutSeconds": 300', b'"maxTimeoutSeconds": ' + b"9" * 5000)),
        ("empty", "/verify", js, b""),
        ("null", "/settle", js, b"null"),
        ("string", "/settle", js, b'"hello"'),
    ]
    paths = list(_paths(good))
    i = 0
    while len(out) < 200:
        path = paths[i % len(paths)]
        value = JUNK_VALUES[(i // len(paths) + i) % len(JUNK_VALUES)]
        endpoint = "/verify" if i % 3 else "/settle"
        out.append((f"{'.'.join(map(str, path))} = {json.dumps(value)[:20]}", endpoint, js, json.dumps(_replaced(good, path, value)).encode()))
        i += 1
    return out[:200]


def oversized(url: str, chunked: bool) -> tuple[int, bytes]:
    """A 10 MB body over a raw socket: headers, then as much of the body as the server reads."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as s:
        framing = b"Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {TEN_MB}\r\n".encode()
        s.sendall(b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + framing + b"Connection: close\r\n\r\n")
        chunk = b"[" * 65536
        sent = 0
        try:
            while sent < TEN_MB:
                s.sendall(b"10000\r\n" + chunk + b"\r\n" if chunked else chunk)
                sent += len(chunk)
            if chunked:
                s.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed before taking it all
            pass
        reply = b""
        try:
            while len(reply) < 65536:
                data = s.recv(65536)
                if not data:
                    break
                reply += data
        except OSError:
            pass
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, body


def raw(url: str, request: bytes) -> int:
    """The status of a hand-written HTTP/1.1 request (0: the server closed without answering)."""
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as s:
        s.sendall(request)
        reply = b""
        try:
            while b"\r\n" not in reply:
                data = s.recv(4096)
                if not data:
                    break
                reply += data
        except OSError:
            pass
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[facilitator_proc.Served]:
    tmp = tmp_path_factory.mktemp("hostile")
    with facilitator_proc.serving(tmp, "--store", f"sqlite://{tmp}/n.db") as s:
        yield s


def test_two_hundred_hostile_requests_never_a_5xx(server: facilitator_proc.Served) -> None:
    p = sign_payment("permit2", int(time.time()))
    good = {"x402Version": 2, "paymentPayload": p.payload, "paymentRequirements": p.requirements}
    # Reserved first: an edit that leaves the payment intact (an unsigned member of
    # ``accepted``, say) is then a replay, so every answer below must be a refusal.
    assert httpx.post(server.url + "/verify", json=good, timeout=30).json()["isValid"] is True
    requests = hostile_requests(good)
    assert len(requests) == 200
    valid = [sign_payment(kind, int(time.time())) for kind in ("eip3009", "permit2", "upto") for _ in range(8)]
    answered_valid: list[bool] = []

    def keep_verifying() -> None:
        with httpx.Client(timeout=30) as c:
            for p in valid:  # bounded: 24 requests, all sent whether the hostile ones are done or not
                doc = {"x402Version": 2, "paymentPayload": p.payload, "paymentRequirements": p.requirements}
                r = c.post(server.url + "/verify", json=doc)
                answered_valid.append(r.status_code == 200 and r.json()["isValid"] is True)
                time.sleep(0.02)

    worker = threading.Thread(target=keep_verifying)
    worker.start()
    problems = []
    try:
        with httpx.Client(timeout=30) as c:
            for label, path, headers, content in requests:
                r = c.post(server.url + path, headers=headers, content=content)
                if r.status_code == 400:
                    ok = isinstance(r.json().get("error"), str) and bool(r.json().get("message"))
                elif r.status_code == 200:
                    doc = r.json()
                    ok = doc.get("isValid") is False if path == "/verify" else (doc.get("success") is False and "transaction" in doc and "network" in doc)
                else:
                    ok = False
                if not ok:
                    problems.append((label, path, r.status_code, r.text[:200]))
    finally:
        worker.join(timeout=120)
    assert problems == []
    assert len(answered_valid) == len(valid) and all(answered_valid)
    assert httpx.get(server.url + "/health", timeout=10).json()["status"] == "ok"


@pytest.mark.parametrize("chunked", [False, True])
def test_a_ten_megabyte_body_is_a_400(server: facilitator_proc.Served, chunked: bool) -> None:
    status, body = oversized(server.url, chunked)
    assert status == 400, body[:200]
    assert json.loads(body)["error"] == "body_too_large"
    p = sign_payment("eip3009", int(time.time()))
    doc = {"x402Version": 2, "paymentPayload": p.payload, "paymentRequirements": p.requirements}
    assert httpx.post(server.url + "/verify", json=doc, timeout=30).json()["isValid"] is True


def test_hostile_headers(server: facilitator_proc.Served) -> None:
    p = sign_payment("eip3009", int(time.time()))
    doc = json.dumps({"x402Version": 2, "paymentPayload": p.payload, "paymentRequirements": p.requirements}).encode()
    with httpx.Client(timeout=30) as c:
        big = c.post(server.url + "/verify", content=doc, headers={"content-type": "application/json", "x-junk": "j" * 20_000})
        assert 400 <= big.status_code < 500
        many = c.post(server.url + "/verify", content=doc, headers={"content-type": "application/json", **{f"x-h{i}": "v" * 100 for i in range(200)}})
        assert 400 <= many.status_code < 500
        for framing in (b"Content-Length: abc\r\n", b"Content-Length: -5\r\n", b"Content-Length: 10\r\nContent-Length: 20\r\n"):
            status = raw(server.url, b"POST /verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + framing + b"Connection: close\r\n\r\n" + doc)
            assert 400 <= status < 500, framing
        assert c.post(server.url + "/verify", content=doc, headers={"content-type": "application/json"}).json()["isValid"] is True
