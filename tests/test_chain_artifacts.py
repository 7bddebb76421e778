"""The committed EVM bytecode matches the Vyper sources it claims to come from."""

from __future__ import annotations

import json
from pathlib import Path

from chain import compile as chain_compile
from x402_verify.chain import erc6492

ROOT = Path(__file__).resolve().parents[1]


def test_test_chain_artifacts_match_their_sources() -> None:
    fresh = chain_compile.render(chain_compile.compile_all())
    assert json.loads(fresh) == json.loads(chain_compile.ARTIFACTS.read_text(encoding="utf-8")), "run: python tests/chain/compile.py"


def test_the_erc6492_validator_matches_its_source() -> None:
    import vyper

    source = (ROOT / "python" / "x402_verify" / "chain" / "Erc6492Validator.vy").read_text(encoding="utf-8")
    out = vyper.compile_code(source, output_formats=["bytecode", "bytecode_runtime"])
    assert bytes.fromhex(out["bytecode"][2:]) == erc6492.VALIDATOR_CREATION_CODE
    assert len(bytes.fromhex(out["bytecode_runtime"][2:])) == erc6492.VALIDATOR_RUNTIME_LEN
