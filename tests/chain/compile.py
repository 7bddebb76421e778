"""Compiles the test chain's Vyper sources into tests/chain/artifacts.json.

    python tests/chain/compile.py            # rewrite the artifacts
    python tests/chain/compile.py --check    # exit 1 if they differ from the sources

The artifacts are committed so the tests need no compiler at run time;
tests/test_chain_artifacts.py recompiles and compares (vyper is pinned in the test extra).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTRACTS = HERE / "contracts"
ARTIFACTS = HERE / "artifacts.json"


def compile_all() -> dict[str, dict[str, object]]:
    import vyper

    out: dict[str, dict[str, object]] = {}
    for path in sorted(CONTRACTS.glob("*.vy")):
        result = vyper.compile_code(path.read_text(encoding="utf-8"), output_formats=["bytecode", "bytecode_runtime", "abi"])
        out[path.stem] = {"bytecode": result["bytecode"], "runtime": result["bytecode_runtime"], "abi": result["abi"]}
    out["_compiler"] = {"vyper": vyper.__version__}
    return out


def render(artifacts: dict[str, dict[str, object]]) -> str:
    return json.dumps(artifacts, indent=1, sort_keys=True) + "\n"


def main() -> int:
    text = render(compile_all())
    if "--check" in sys.argv:
        return 0 if ARTIFACTS.read_text(encoding="utf-8") == text else 1
    ARTIFACTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
