"""Verdicts pinned from the verifier as it stood before issue 11 reshaped it into stages
(tests/vectors/verdicts/pinned_verdicts.json, written by make.py beside it): every case must
give the same reason, message, payer, replay key, scheme, chain, nonce space, deadline and
digest, one at a time and in batches, and each replay group the same outcomes through a
fresh in-process store and a fresh SQLite store."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import x402_verify as xv

HERE = Path(__file__).resolve().parent / "vectors" / "verdicts"
sys.path.insert(0, str(HERE))
from make import VERIFIERS, make_verifier, response_record  # noqa: E402

PINNED = json.loads((HERE / "pinned_verdicts.json").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = PINNED["cases"]
GROUPS: list[dict[str, Any]] = PINNED["replay_groups"]


def payload_of(case: dict[str, Any]) -> Any:
    return json.loads(case["payload"]) if case["name"].endswith("dict_payload") else case["payload"]


def test_the_sample_is_wide() -> None:
    assert len(CASES) >= 800
    reasons = {c["verdict"]["reason"] for c in CASES}
    assert None in reasons and len(reasons) >= 30
    assert {c["verifier"] for c in CASES} == set(VERIFIERS)
    assert any(c["verdict"]["replay_key"] for c in CASES if not c["verdict"]["is_valid"])


@pytest.mark.parametrize("verifier", sorted(VERIFIERS))
def test_each_case_one_at_a_time(verifier: str) -> None:
    v = make_verifier(verifier, nonce_store=None)
    cases = [c for c in CASES if c["verifier"] == verifier]
    got = [response_record(v.verify(payload_of(c), c["requirements"], now=c["now"])) for c in cases]
    diffs = [(c["name"], c["verdict"], g) for c, g in zip(cases, got, strict=True) if c["verdict"] != g]
    assert diffs == []


@pytest.mark.parametrize("verifier", sorted(VERIFIERS))
def test_each_case_in_a_batch(verifier: str) -> None:
    v = make_verifier(verifier, nonce_store=None)
    by_now: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for c in CASES:
        if c["verifier"] == verifier:
            by_now[c["now"]].append(c)
    for now, cases in by_now.items():
        got = [response_record(r) for r in v.verify_batch([(payload_of(c), c["requirements"]) for c in cases], now=now)]
        diffs = [(c["name"], c["verdict"], g) for c, g in zip(cases, got, strict=True) if c["verdict"] != g]
        assert diffs == []


@pytest.mark.parametrize("verifier", sorted(VERIFIERS))
def test_each_case_again_from_the_verdict_cache(verifier: str) -> None:
    # Every case three times through one verifier: the valid ones the third time from its
    # verdict cache (tests/test_verdict_cache.py: kept on a second sight), which must not change
    # a field. (Sized so that its doorkeeper's buckets do not overflow.)
    v = make_verifier(verifier, nonce_store=None, verdict_cache=1 << 16)
    cases = [c for c in CASES if c["verifier"] == verifier]
    for _ in range(3):
        got = [response_record(v.verify(payload_of(c), c["requirements"], now=c["now"])) for c in cases]
        assert [(c["name"], g) for c, g in zip(cases, got, strict=True) if c["verdict"] != g] == []
    texts = sum(1 for c in cases if c["verdict"]["is_valid"] and isinstance(payload_of(c), str))
    assert v.stats()["verdict_hits"] >= texts and (texts > 0 or verifier != "default")


def test_requirements_compiled_once_give_the_same_verdicts() -> None:
    v = make_verifier("default", nonce_store=None)
    for c in CASES:
        if c["verifier"] != "default":
            continue
        try:
            req = xv.Requirements(c["requirements"])
        except xv.PaymentError:
            continue  # bad requirements fail at construction; the verdict of the text is pinned above
        assert response_record(v.verify(payload_of(c), req, now=c["now"])) == c["verdict"], c["name"]


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
@pytest.mark.parametrize("group", GROUPS, ids=[g["name"] for g in GROUPS])
def test_replay_groups(group: dict[str, Any], store_kind: str, tmp_path: Path) -> None:
    store = xv.MemoryNonceStore() if store_kind == "memory" else xv.SqliteNonceStore(tmp_path / "pinned.db")
    with store:
        v = make_verifier("default", nonce_store=store)
        got = [[response_record(r) for r in v.verify_batch([(h, group["requirements"]) for h in batch], now=group["now"])] for batch in group["batches"]]
    assert got == group["verdicts"]
