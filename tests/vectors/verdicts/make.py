"""Writes pinned_verdicts.json: a sample of verdicts (reason, message, payer, replay key, ...)
from the verifier as it stood before issue 11 reshaped it into stages. tests/test_pinned_verdicts.py
replays every case and asks for the same verdict, so the reshaping keeps behaviour unchanged.

    python tests/vectors/verdicts/make.py   # needs eth-account and an installed x402_verify

Deterministic: fixed keys, nonces and clock (RFC 6979 signatures), so re-running it rewrites the
file byte for byte (from the same verifier). Cases are single verdicts (``Verifier(nonce_store=None)``)
and replay groups (several headers verified in one batch through a fresh ``MemoryNonceStore``,
then a second batch: reserved, replayed, duplicated in one batch).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # tests/
import x402_verify as xv  # noqa: E402
from payments import (  # noqa: E402
    DELETE,
    FAC,
    KINDS,
    NOW,
    OTHER,
    OTHER_ADDRESS,
    OTHER_FAC,
    ZERO_ADDRESS,
    auth_member,
    compact,
    edited,
    envelope,
    fields,
    header,
    high_s_twin,
    requirements,
    signed_payload,
)

OUT = HERE / "pinned_verdicts.json"
ERC6492_SUFFIX = bytes.fromhex("6492" * 16)


def nonce_for(kind: str, i: int) -> Any:
    return "0x" + (i.to_bytes(2, "big") * 16).hex() if kind in ("eip3009", "eip3009_v1") else (0xABCD << 200) + i


def response_record(r: Any) -> dict[str, Any]:
    return {
        "is_valid": r.is_valid,
        "reason": r.invalid_reason,
        "message": r.invalid_message,
        "payer": r.payer,
        "scheme": r.scheme,
        "x402_version": r.x402_version,
        "chain_id": r.chain_id,
        "replay_key": None if r.replay_key is None else r.replay_key.hex(),
        "nonce_space": r.nonce_space,
        "valid_until": r.valid_until,
        "digest": None if r.digest is None else r.digest.hex(),
    }


def field_edits(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Signed (correctly) over edited fields: every term check the cascade makes."""
    e: list[tuple[str, dict[str, Any]]] = [
        ("good", {}),
        ("to_other", {"to": OTHER_ADDRESS}),
        ("to_zero", {"to": ZERO_ADDRESS}),
        ("amount_low", {"amount": 9999}),
        ("amount_high", {"amount": 10001}),
        ("amount_zero", {"amount": 0}),
        ("expired", {"valid_before": NOW - 1}),
        ("expires_now", {"valid_before": NOW}),
        ("inside_buffer", {"valid_before": NOW + 5}),
        ("at_buffer", {"valid_before": NOW + 6}),
        ("not_yet_valid", {"valid_after": NOW + 1}),
        ("valid_from_now", {"valid_after": NOW}),
        ("window_at_bound", {"valid_before": NOW + 300 + 600}),
        ("window_too_long", {"valid_before": NOW + 300 + 601}),
        ("window_huge", {"valid_before": 2**256 - 1}),
        ("from_other", {"from_": OTHER.address}),
    ]
    if kind in ("permit2", "upto"):
        e += [
            ("token_other", {"token": OTHER_ADDRESS}),
            ("spender_other", {"spender": OTHER_ADDRESS}),
            ("spender_swapped", {"spender": "0x402085c248EeA27D92E8b30b2C58ed07f9E20001" if kind == "upto" else "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"}),
        ]
        if kind == "upto":
            e += [("facilitator_other", {"facilitator": OTHER_FAC}), ("facilitator_none", {"facilitator": None})]
        else:
            e += [("facilitator_named", {"facilitator": FAC})]
    return e


def signature_edits(sig: bytes) -> list[tuple[str, str]]:
    r, s, v = sig[:32], sig[32:64], sig[64]
    return [
        ("sig_high_s", "0x" + high_s_twin(sig).hex()),
        ("sig_compact", "0x" + compact(sig).hex()),
        ("sig_v_flip", "0x" + (r + s + bytes([55 - v])).hex()),
        ("sig_v_0", "0x" + (r + s + bytes([v - 27])).hex()),
        ("sig_v_29", "0x" + (r + s + bytes([29])).hex()),
        ("sig_r_zero", "0x" + (bytes(32) + s + bytes([v])).hex()),
        ("sig_s_zero", "0x" + (r + bytes(32) + bytes([v])).hex()),
        ("sig_r_max", "0x" + (b"\xff" * 32 + s + bytes([v])).hex()),
        ("sig_bitflip", "0x" + (r[:-1] + bytes([r[-1] ^ 1]) + s + bytes([v])).hex()),
        ("sig_empty", ""),
        ("sig_0x", "0x"),
        ("sig_not_hex", "0x" + "zz" * 65),
        ("sig_odd", "0x" + sig.hex()[:-1]),
        ("sig_no_prefix", sig.hex()),
        ("sig_short", "0x" + sig[:63].hex()),
        ("sig_long", "0x" + (sig + b"\x00").hex()),
        ("sig_1271", "0x" + (b"\x01" * 100).hex()),
        ("sig_6492", "0x" + (sig + ERC6492_SUFFIX).hex()),
        ("sig_upper", "0X" + sig.hex()),
    ]


def payload_edits(kind: str, doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """Structural edits of the payload (the reader's checks, the scheme and network checks)."""
    m = auth_member(kind)
    v1 = kind == "eip3009_v1"
    out: list[tuple[str, Any]] = [
        ("version_3", edited(doc, ("x402Version",), 3)),
        ("version_str", edited(doc, ("x402Version",), "2")),
        ("no_payload", edited(doc, ("payload",), DELETE)),
        ("no_signature", edited(doc, ("payload", "signature"), DELETE)),
        ("no_authorization", edited(doc, ("payload", m), DELETE)),
        ("extra_member", edited(doc, ("payload", "bogus"), 1)),
        ("nonce_short", edited(doc, ("payload", m, "nonce"), "0x1234")),
        ("from_bad", edited(doc, ("payload", m, "from"), "0x1234")),
        ("from_lower", edited(doc, ("payload", m, "from"), doc["payload"][m]["from"].lower())),
        (
            "amount_neg",
            edited(
                doc,
                ("payload", m, "value" if kind.startswith("eip3009") else "permitted"),
                "-1" if kind.startswith("eip3009") else {"token": "x", "amount": "-1"},
            ),
        ),
        ("not_json", "not a header"),
        ("empty", ""),
        ("json_array", "[]"),
    ]
    if v1:
        out += [
            ("v1_scheme_upto", edited(doc, ("scheme",), "upto")),
            ("v1_network_other", edited(doc, ("network",), "base")),
            ("v1_network_caip2", edited(doc, ("network",), "eip155:84532")),
        ]
    else:
        out += [
            ("accepted_scheme", edited(doc, ("accepted", "scheme"), "upto" if kind != "upto" else "exact")),
            ("accepted_network", edited(doc, ("accepted", "network"), "eip155:1")),
            ("no_accepted", edited(doc, ("accepted",), DELETE)),
        ]
    return out


def requirement_edits(kind: str, req: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [
        ("req_scheme_other", edited(req, ("scheme",), "stream")),
        ("req_scheme_swap", edited(req, ("scheme",), "upto" if req["scheme"] == "exact" else "exact")),
        ("req_network_other", edited(req, ("network",), "eip155:1")),
        ("req_network_unknown", edited(req, ("network",), "eip155:999999" if kind != "eip3009_v1" else "atlantis")),
        ("req_pay_to_other", edited(req, ("payTo",), OTHER_ADDRESS)),
        ("req_asset_other", edited(req, ("asset",), OTHER_ADDRESS)),
        ("req_amount_other", edited(req, ("amount" if kind != "eip3009_v1" else "maxAmountRequired",), "10001")),
        ("req_amount_bad", edited(req, ("amount" if kind != "eip3009_v1" else "maxAmountRequired",), "ten")),
        ("req_no_extra", edited(req, ("extra",), DELETE)),
        ("req_no_name", edited(req, ("extra", "name"), DELETE)),
        ("req_method_eip3009", edited(req, ("extra", "assetTransferMethod"), "eip3009")),
        ("req_method_permit2", edited(req, ("extra", "assetTransferMethod"), "permit2")),
        ("req_method_bad", edited(req, ("extra", "assetTransferMethod"), "wire")),
        ("req_timeout_short", edited(req, ("maxTimeoutSeconds",), 10)),
        ("req_timeout_zero", edited(req, ("maxTimeoutSeconds",), 0)),
        ("req_not_json", "{"),
        ("req_list", "[]"),
    ]
    if kind == "upto":
        out += [
            ("req_no_facilitator", edited(req, ("extra", "facilitatorAddress"), DELETE)),
            ("req_facilitator_other", edited(req, ("extra", "facilitatorAddress"), OTHER_FAC)),
        ]
    return out


def single_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    counter = 0

    def add(name: str, payload: Any, req: Any, now: int = NOW, verifier: str = "default") -> None:
        cases.append(
            {
                "name": name,
                "payload": payload if isinstance(payload, str) else header(payload),
                "requirements": req if isinstance(req, str) else json.dumps(req),
                "now": now,
                "verifier": verifier,
            }
        )

    for kind in KINDS:
        req = requirements(kind)
        for name, over in field_edits(kind):
            for variant in range(5):
                counter += 1
                f = fields(kind, nonce=nonce_for(kind, counter), **over)
                if f.get("facilitator", FAC) is None:
                    f.pop("facilitator")
                doc = envelope(kind, req, signed_payload(kind, f))
                add(f"{kind}/{name}/{variant}", doc, req, NOW + (0, 1, -1, 2, -2)[variant])
        f = fields(kind, nonce=nonce_for(kind, 9000))
        good = envelope(kind, req, signed_payload(kind, f))
        other_signed = envelope(kind, req, signed_payload(kind, f, acct=OTHER))
        add(f"{kind}/signed_by_other", other_signed, req)
        sig = bytes.fromhex(good["payload"]["signature"][2:])
        for name, text in signature_edits(sig):
            add(f"{kind}/{name}", edited(good, ("payload", "signature"), text), req)
            add(f"{kind}/{name}/strict", edited(good, ("payload", "signature"), text), req, verifier="strict")
            add(f"{kind}/{name}/nocache", edited(good, ("payload", "signature"), text), req, verifier="nocache")
        for name, doc in payload_edits(kind, good):
            add(f"{kind}/{name}", doc, req)
        for name, r in requirement_edits(kind, req):
            add(f"{kind}/{name}", good, r)
            add(f"{kind}/{name}/nocache", good, r, verifier="nocache")
        add(f"{kind}/networks_other", good, req, verifier="networks_other")
        add(f"{kind}/max_validity", good, req, verifier="max_validity")
        add(f"{kind}/no_buffer", good, req, verifier="no_buffer")
        add(f"{kind}/dict_payload", json.dumps(good), req)
    return cases


def replay_groups() -> list[dict[str, Any]]:
    groups = []
    for kind in KINDS:
        req = requirements(kind)
        heads = [header(envelope(kind, req, signed_payload(kind, fields(kind, nonce=nonce_for(kind, 20000 + i))))) for i in range(3)]
        expired = header(envelope(kind, req, signed_payload(kind, fields(kind, nonce=nonce_for(kind, 20010), valid_before=NOW - 1))))
        # Batch 1: a, b, a (duplicate in one batch), expired; batch 2: a, c, b, c.
        groups.append(
            {
                "name": f"{kind}/replay",
                "requirements": json.dumps(req),
                "now": NOW,
                "batches": [[heads[0], heads[1], heads[0], expired], [heads[0], heads[2], heads[1], heads[2]]],
            }
        )
    return groups


VERIFIERS: dict[str, dict[str, Any]] = {
    "default": {},
    "strict": {"permit2_policy": "eip3009"},
    "networks_other": {"networks": ["eip155:1"]},
    "max_validity": {"max_validity_seconds": 100},
    "no_buffer": {"time_buffer": 0},
    "nocache": {"payer_key_cache": 0},
}


def make_verifier(name: str, **kw: Any) -> Any:
    opts = dict(VERIFIERS[name])
    if opts.get("permit2_policy") == "eip3009":
        opts["permit2_policy"] = xv.SignaturePolicy.eip3009()
    return xv.Verifier(**opts, **kw)


def main() -> None:
    cases = single_cases()
    verifiers = {name: make_verifier(name, nonce_store=None) for name in VERIFIERS}
    for c in cases:
        payload = json.loads(c["payload"]) if c["name"].endswith("dict_payload") else c["payload"]
        c["verdict"] = response_record(verifiers[c["verifier"]].verify(payload, c["requirements"], now=c["now"]))
    groups = replay_groups()
    for g in groups:
        v = make_verifier("default", nonce_store=xv.MemoryNonceStore())
        g["verdicts"] = [[response_record(r) for r in v.verify_batch([(h, g["requirements"]) for h in batch], now=g["now"])] for batch in g["batches"]]
    OUT.write_text(json.dumps({"cases": cases, "replay_groups": groups}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    reasons = sorted({c["verdict"]["reason"] or "valid" for c in cases})
    print(f"{len(cases)} cases, {len(groups)} replay groups, {len(reasons)} outcomes: {reasons}")


if __name__ == "__main__":
    main()
