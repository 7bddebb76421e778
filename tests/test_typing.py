"""The stubs are honest (``mypy.stubtest``) and usable (``mypy --strict`` on a real program)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).resolve().parent / "typing_example.py"


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def report(proc: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(proc.args)}\nexit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


def test_mypy_strict_accepts_the_example(tmp_path: Path) -> None:
    # Run from the project root so pyproject's [tool.mypy] applies; the cache goes to tmp.
    proc = run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), str(EXAMPLE)], ROOT)
    assert proc.returncode == 0, report(proc)


def test_stubtest_matches_the_compiled_module(tmp_path: Path) -> None:
    # Run from a scratch directory: stubtest finds the stub next to the installed module.
    proc = run([sys.executable, "-m", "mypy.stubtest", "x402_verify._core", "--mypy-config-file", str(ROOT / "pyproject.toml")], tmp_path)
    assert proc.returncode == 0, report(proc)


def test_the_example_runs() -> None:
    proc = run([sys.executable, str(EXAMPLE)], ROOT)
    assert proc.returncode == 0, report(proc)


def test_mypy_strict_accepts_the_package(tmp_path: Path) -> None:
    proc = run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), str(ROOT / "python" / "x402_verify")], ROOT)
    assert proc.returncode == 0, report(proc)
