"""One source for each protocol fact, one exception boundary, one input reader (issue 11).

The v1 network table, CAIP-2 parsing, the Permit2 proxies, the default time buffer and clock
skew and the replay reasons are defined once, in the core (``rust/core/src/x402``), and the
Python package re-exports the core's own objects. The tests below fail if a second copy comes
back: in the package's sources (a precise pattern per fact), in the bindings (an exception made
outside ``rust/py/src/errors.rs``), or in the tests (the curve order outside payments.py).

"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

import x402_verify as xv
from payments import NOW, SECP256K1_N, requirements, sign_payment
from x402_verify import _core, asgi, routes

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "x402_verify"
BINDINGS = ROOT / "rust" / "py" / "src"

CORE_FACTS = ["DEFAULT_TIME_BUFFER", "DEFAULT_CLOCK_SKEW_SECONDS", "EXACT_PERMIT2_PROXY", "UPTO_PERMIT2_PROXY", "V1_NETWORK_NAMES"]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --- the package re-exports the core's objects ---------------------------------------------------


@pytest.mark.parametrize("name", CORE_FACTS)
def test_the_package_constants_are_the_cores(name: str) -> None:
    assert getattr(xv, name) is getattr(_core, name)
    assert name in xv.__all__


def test_routes_and_asgi_use_the_cores_tables() -> None:
    assert routes.V1_NETWORK_NAMES is _core.V1_NETWORK_NAMES
    assert routes.caip2_chain_id is _core.caip2_chain_id
    assert set(asgi.REPLAY_CODES) == set(_core.REPLAY_REASONS.values())


def test_the_core_values() -> None:
    # The values themselves, against x402's deployments and the SDK (one place, here).
    assert (xv.EXACT_PERMIT2_PROXY, xv.UPTO_PERMIT2_PROXY) == ("0x402085c248EeA27D92E8b30b2C58ed07f9E20001", "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002")
    assert (xv.DEFAULT_TIME_BUFFER, xv.DEFAULT_CLOCK_SKEW_SECONDS) == (6, 600)
    assert dict(_core.REPLAY_REASONS) == {"eip3009": "invalid_exact_evm_nonce_already_used", "permit2": "permit2_nonce_already_used"}
    codes = {code for code, kind, _ in xv.error_codes() if kind == "replay"}
    assert set(_core.REPLAY_REASONS.values()) <= codes
    assert xv.V1_NETWORK_NAMES["base"] == 8453 and xv.V1_NETWORK_NAMES["base-sepolia"] == 84532 and len(xv.V1_NETWORK_NAMES) == 21


def test_the_shared_tables_are_read_only() -> None:
    # One table for every verifier in the process: nobody may edit it under the others.
    with pytest.raises(TypeError):
        _core.V1_NETWORK_NAMES["mine"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        _core.REPLAY_REASONS["eip3009"] = "valid"  # type: ignore[index]


@pytest.mark.parametrize(
    ("network", "chain"),
    [
        ("eip155:8453", 8453),
        ("eip155:1", 1),
        (f"eip155:{10**19 - 1}", 10**19 - 1),
        (f"eip155:{2**64 - 1}", None),  # at most 19 digits: every such id fits 64 bits
        ("eip155:", None),
        ("eip155:0", None),
        ("eip155:08453", None),
        ("eip155:+1", None),
        ("eip155:1 ", None),
        ("eip155:٣", None),  # a Unicode digit is not a decimal digit here
        ("base", None),
        ("solana:abc", None),
    ],
)
def test_caip2_is_parsed_by_the_core(network: str, chain: int | None) -> None:
    assert _core.caip2_chain_id(network) == chain


def test_caip2_arguments_are_checked() -> None:
    with pytest.raises(TypeError):
        _core.caip2_chain_id(8453)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="UTF-8"):
        _core.caip2_chain_id("eip155:\ud800")


def test_a_verifier_reads_networks_as_the_core_does() -> None:
    # A leading zero is no CAIP-2 chain id for the cascade; it is none for `networks=` either.
    with pytest.raises(ValueError, match="unknown network"):
        xv.Verifier(networks=["eip155:08453"])
    assert xv.Verifier(networks=["eip155:8453", "base"], nonce_store=None) is not None


# --- no second copy in the package's sources -------------------------------------------------------

PROXY_HEX = re.compile("|".join(re.escape(a[2:]) for a in (xv.EXACT_PERMIT2_PROXY, xv.UPTO_PERMIT2_PROXY)), re.IGNORECASE)
# A v1 name mapped to a number: an entry of a network table.
V1_NAMES = "|".join(re.escape(n) for n in sorted(xv.V1_NETWORK_NAMES, key=len, reverse=True))
V1_ENTRY = re.compile(rf"""["']({V1_NAMES})["']\s*:\s*\d""")
# A regular expression over CAIP-2 chain ids: a parser of its own.
CAIP2_PATTERN = re.compile(r"eip155:\(|eip155:\[")
# Texts that are facts when a string literal is exactly one of them (prose may name them).
REPLAY_CODES = set(_core.REPLAY_REASONS.values())
REFUSAL_TEXTS = [message for _code, message in _core.store_refusals().values()]
DEFAULT_NAMES = {"DEFAULT_TIME_BUFFER", "DEFAULT_CLOCK_SKEW_SECONDS", "EXACT_PERMIT2_PROXY", "UPTO_PERMIT2_PROXY", "V1_NETWORK_NAMES"}
DEFAULTED_OPTIONS = {"time_buffer", "clock_skew_seconds"}


def copies(path: Path) -> list[str]:
    """Where ``path`` writes out a fact the core holds."""
    text = path.read_text(encoding="utf-8")
    found = [f"Permit2 proxy address {m.group(0)}" for m in PROXY_HEX.finditer(text)]
    found += [f"v1 network table entry {m.group(0)!r}" for m in V1_ENTRY.finditer(text)]
    found += [f"CAIP-2 pattern {m.group(0)!r}" for m in CAIP2_PATTERN.finditer(text)]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in REPLAY_CODES:
                found.append(f"replay reason {node.value!r} (line {node.lineno})")
            if node.value in REFUSAL_TEXTS:
                found.append(f"store refusal text {node.value!r} (line {node.lineno})")
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if isinstance(getattr(node, "value", None), (ast.Constant, ast.Dict)):
            found += [f"{t.id} assigned a literal" for t in targets if isinstance(t, ast.Name) and t.id in DEFAULT_NAMES]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults) :], a.defaults, strict=True))
            pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None]
            literal = [(arg, d) for arg, d in pairs if arg.arg in DEFAULTED_OPTIONS and isinstance(d, ast.Constant)]
            found += [f"{node.name}({arg.arg}={ast.unparse(d)}): a literal default" for arg, d in literal]
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=rel)
def test_no_package_source_holds_a_copy_of_a_core_fact(path: Path) -> None:
    assert copies(path) == [], f"{rel(path)} writes out what the core holds: take it from x402_verify._core"


def test_the_copy_finder_finds_each_kind_of_copy(tmp_path: Path) -> None:
    # The finder would see each fact written out again (so the test above can fail).
    samples = {
        "proxy": f'P = "{xv.UPTO_PERMIT2_PROXY.lower()}"',
        "table": 'NAMES = {"base": 8453}',
        "caip2": 'C = re.compile(r"eip155:([1-9][0-9]*)")',
        "replay": 'R = ("permit2_nonce_already_used",)',
        "refusal": f"M = {REFUSAL_TEXTS[0]!r}",
        "constant": "DEFAULT_CLOCK_SKEW_SECONDS = 600",
        "annotated": "V1_NETWORK_NAMES: dict[str, int] = {}",
        "default": "def f(*, time_buffer: int = 6) -> None: ...",
    }
    for kind, source in samples.items():
        f = tmp_path / f"{kind}.py"
        f.write_text("import re\n" + source + "\n", encoding="utf-8")
        assert copies(f), kind
    clean = tmp_path / "clean.py"
    clean.write_text("from x402_verify._core import DEFAULT_TIME_BUFFER\n\ndef f(*, time_buffer: int = DEFAULT_TIME_BUFFER) -> None: ...\n", encoding="utf-8")
    assert copies(clean) == []


# --- the curve order: tests/payments.py alone ---------------------------------------------------------

CURVE_ORDER = re.compile(rf"{SECP256K1_N:x}|{SECP256K1_N}", re.IGNORECASE)


def test_the_curve_order_is_written_in_payments_alone() -> None:
    assert SECP256K1_N == 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    files = [p for d in ("tests", "benches", "scripts") for p in sorted((ROOT / d).rglob("*.py"))]
    holders = [rel(p) for p in files if CURVE_ORDER.search(p.read_text(encoding="utf-8"))]
    # This file names it once above, to pin the value.
    assert holders == ["tests/payments.py", "tests/test_single_source.py"], holders


# --- one exception boundary in the bindings -------------------------------------------------------

MAKES_EXCEPTION = re.compile(r"import_exception!|\bPy\w*(Error|Exception)::new_err|::new_err\(")

@pytest.mark.parametrize("path", [p for p in sorted(BINDINGS.glob("*.rs")) if p.name != "errors.rs"], ids=rel)
def test_exceptions_are_made_in_errors_rs_alone(path: Path) -> None:
    made = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if MAKES_EXCEPTION.search(line)]
    assert made == [], f"{rel(path)} makes exceptions itself: {made}"


def test_a_store_refusal_has_one_class_whichever_store_raises_it(tmp_path: Path) -> None:
    key = b"\x01" * 32
    for store in (xv.MemoryNonceStore(), xv.SqliteNonceStore(tmp_path / "s.db")):
        with store:
            for call in (lambda s=store: s.settle(key, "o", now=1), lambda s=store: s.release(key, "o", now=1)):
                with pytest.raises(xv.ReservationError) as info:
                    call()
                assert info.value.code == "reservation_not_found"
                assert not isinstance(info.value, xv.PaymentError)


# --- one input reader, one budget -------------------------------------------------------------------

# Taking a dict argument as a document: only convert.rs's `Reader` does (under its budget).
READS_A_DICT = re.compile(r"(cast|is_instance_of)::<PyDict>\(\)")

@pytest.mark.parametrize("path", [p for p in sorted(BINDINGS.glob("*.rs")) if p.name != "convert.rs"], ids=rel)
def test_arguments_are_read_by_the_one_reader(path: Path) -> None:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if READS_A_DICT.search(line)]
    assert lines == [], f"{rel(path)} reads a Python argument itself: {lines}"


def _padded(limit: int) -> dict[str, Any]:
    """Valid requirements whose compact JSON is just over ``limit`` bytes (the padding in extra)."""
    req = requirements("eip3009")
    size = len(json.dumps(req, separators=(",", ":")))
    req["extra"] = {**req["extra"], "pad": "x" * (limit - size)}
    return req


def test_a_requirements_dict_gets_the_bound_its_text_gets() -> None:
    limit = 4096
    fits = requirements("eip3009")
    over = _padded(limit)
    assert len(json.dumps(over, separators=(",", ":"))) > limit
    assert xv.Requirements(fits, max_bytes=limit) == xv.Requirements(json.dumps(fits), max_bytes=limit)
    for form in (over, json.dumps(over, separators=(",", ":"))):
        with pytest.raises(xv.PaymentError) as info:
            xv.Requirements(form, max_bytes=limit)
        assert info.value.code == "invalid_payment_requirements" and "payload_too_large" in info.value.message, info.value


def test_a_batch_refuses_requirements_over_the_payload_bound_in_either_form() -> None:
    # The verifier's bound (max_payload_bytes) applies to requirements as dicts too.
    limit = 4096
    v = xv.Verifier(nonce_store=None, max_payload_bytes=limit)
    over = _padded(limit)
    header = sign_payment("eip3009", NOW).header
    assert v.verify(header, requirements("eip3009"), now=NOW).is_valid
    for form in (over, json.dumps(over, separators=(",", ":"))):
        [r] = v.verify_batch([(header, form)], now=NOW)
        assert r.invalid_reason == "invalid_payment_requirements" and "payload_too_large" in (r.invalid_message or ""), r.invalid_message


@pytest.mark.parametrize("value", [5, None, bytearray(b"{}"), {"x402Version": 2}])
def test_a_header_of_another_type_is_a_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        _core.decode_payment_header(value)
    with pytest.raises(TypeError, match="str or bytes"):
        xv.decode_payment_header(value)


def test_a_header_that_is_not_text_is_invalid_payload() -> None:
    with pytest.raises(xv.PaymentError) as info:
        xv.decode_payment_header("\ud800")
    assert info.value.code == "invalid_payload"
