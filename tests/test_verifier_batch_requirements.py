"""``verify_batch`` reads each item's requirements as they are when the item is taken, never a
copy cached by object identity (issue 10 item 3); compiled ``Requirements`` are reusable."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

import x402_verify as xv
from payments import requirements, sign_payment

NOW = 1_800_000_000
KINDS = ("eip3009", "permit2", "upto")
AMOUNT_KEY = "amount"


@pytest.mark.parametrize("kind", KINDS)
def test_a_dict_edited_between_items_is_read_again(kind: str) -> None:
    cheap, dear = sign_payment(kind, NOW, amount=1), sign_payment(kind, NOW, amount=1)
    route = requirements(kind, amount=1)

    def items() -> Iterator[tuple[str, dict[str, Any]]]:
        yield cheap.header, route
        route[AMOUNT_KEY] = "1000000"  # the route's price changes while the batch is read
        yield dear.header, route

    v = xv.Verifier(nonce_store=None)
    got = [r.invalid_reason for r in v.verify_batch(items(), now=NOW)]
    alone = v.verify(dear.header, route, now=NOW).invalid_reason
    assert alone is not None and alone.endswith("mismatch")
    assert got == [None, alone]


def test_many_routes_and_edits_give_the_verdicts_of_single_calls() -> None:
    v = xv.Verifier(nonce_store=None)
    pays = [sign_payment(KINDS[i % 3], NOW, amount=1 + i % 2) for i in range(12)]
    shared = {k: requirements(k, amount=1) for k in KINDS}
    snapshots: list[dict[str, Any]] = []

    def items() -> Iterator[tuple[str, Any]]:
        for i, p in enumerate(pays):
            r = shared[p.kind]
            r[AMOUNT_KEY] = str(1 + (i // 3) % 2)  # flips every three items
            snapshots.append(copy.deepcopy(r))
            yield p.header, (r if i % 4 else json.dumps(r))

    got = v.verify_batch(items(), now=NOW, threads=2)
    want = [v.verify(p.header, snap, now=NOW) for p, snap in zip(pays, snapshots, strict=True)]
    assert [r.invalid_reason for r in got] == [r.invalid_reason for r in want]
    assert any(r.is_valid for r in got) and not all(r.is_valid for r in got)


@pytest.mark.parametrize("kind", KINDS)
def test_compiled_requirements_serve_many_calls_and_batches(kind: str) -> None:
    route = requirements(kind)
    compiled = xv.Requirements(route)
    route[AMOUNT_KEY] = "1"  # the dict it was read from no longer matters
    v = xv.Verifier(nonce_store=None)
    pays = [sign_payment(kind, NOW) for _ in range(20)]
    assert all(v.verify(p.header, compiled, now=NOW).is_valid for p in pays[:3])
    assert all(r.is_valid for r in v.verify_batch([(p.header, compiled) for p in pays], now=NOW, threads=2))
    mixed = v.verify_batch([(pays[0].header, compiled), (pays[1].header, route), (pays[2].header, requirements(kind))], now=NOW)
    assert [r.is_valid for r in mixed] == [True, False, True]


def test_bad_requirements_in_a_batch_fail_only_their_item() -> None:
    v = xv.Verifier(nonce_store=None)
    p = sign_payment("eip3009", NOW)
    good = requirements("eip3009")
    bad = {k: val for k, val in good.items() if k != "maxTimeoutSeconds"}
    out = v.verify_batch([(p.header, bad), (p.header, good), (p.header, 42), (p.header, "{"), (p.header, good)], now=NOW)
    assert [r.invalid_reason for r in out] == ["invalid_payment_requirements", None, "invalid_payment_requirements", "invalid_payment_requirements", None]
