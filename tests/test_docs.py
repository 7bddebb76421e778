"""The documentation names what the code does."""

from __future__ import annotations

import re
from pathlib import Path

import x402_verify as xv

ROOT = Path(__file__).resolve().parents[1]


def test_reason_code_page_names_every_code() -> None:
    text = (ROOT / "docs" / "reason-codes.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z0-9_]+)`", text))
    missing = [code for code, _kind, _desc in xv.error_codes() if code not in documented]
    assert not missing, f"docs/reason-codes.md does not name: {missing}"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands[0] == "pip install . && x402-verify bench"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci
