"""The suite reads nothing outside the checkout: the guard (checkout_guard.py) fails a session
that opens ``../shared`` or any other outside path, and lets through what the tests need.

Each case runs a tiny test file in a pytest session of its own (a subprocess loading the guard
with ``-p checkout_guard``), so the failure it provokes is that session's, not this one's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import checkout_guard

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
SHARED_FILE = REPO.parent / "shared" / "vectors" / "eip712" / "third_party_fixtures.json"


def run_session(tmp_path: Path, body: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Runs ``body`` (a test module) under the guard in a fresh interpreter, in ``cwd``."""
    test_file = tmp_path / "test_tiny.py"
    test_file.write_text(textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "checkout_guard", "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path), str(test_file)],
        cwd=cwd or tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_reading_inside_passes(tmp_path: Path) -> None:
    """The control: the checkout, the temp folder, the stdlib and site-packages are allowed."""
    result = run_session(
        tmp_path,
        f"""
        import json, os, sqlite3, sysconfig, tempfile
        import x402_verify

        def test_inside(tmp_path):
            json.loads(open({str(REPO / "tests" / "vectors" / "eip712" / "third_party_fixtures.json")!r}).read())
            os.listdir({str(REPO)!r})
            open(os.path.join(sysconfig.get_paths()["stdlib"], "json", "__init__.py")).close()
            open(x402_verify.__file__).close()
            (tmp_path / "x").write_text("x")
            sqlite3.connect(str(tmp_path / "db.sqlite")).close()
            sqlite3.connect(":memory:").close()
            with tempfile.NamedTemporaryFile() as f:
                f.write(b"x")
            open("/proc/self/status").close()
        """,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_reading_shared_fails_the_session(tmp_path: Path) -> None:
    """``../shared`` beside the checkout (whether it exists or not): the open is refused."""
    result = run_session(
        tmp_path,
        f"""
        import checkout_guard, pytest

        def test_reads_shared():
            with pytest.raises(checkout_guard.OutsideCheckoutError):
                open({str(SHARED_FILE)!r})
        """,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert str(SHARED_FILE) in result.stdout
    assert "1 failed" in result.stdout


def test_a_swallowed_refusal_still_fails(tmp_path: Path) -> None:
    """A test that catches the error, lists an outside folder or opens a database there, fails."""
    outside = REPO.parent / "not-in-the-checkout"
    result = run_session(
        tmp_path,
        f"""
        import os, sqlite3

        def test_open():
            try:
                open({str(outside / "data.json")!r}, "rb")
            except Exception:
                pass

        def test_listdir():
            try:
                os.listdir({str(REPO.parent)!r})
            except Exception:
                pass

        def test_sqlite():
            try:
                sqlite3.connect({str(outside / "db.sqlite")!r})
            except Exception:
                pass

        def test_absolute_escape():
            try:
                open(os.path.join({str(REPO)!r}, "..", "shared", "x"))
            except Exception:
                pass

        def test_relative_escape(monkeypatch):
            monkeypatch.chdir({str(REPO)!r})
            try:
                open(os.path.join("..", "shared", "x"))
            except Exception:
                pass
        """,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "5 failed" in result.stdout, result.stdout


def test_a_refusal_outside_any_test_fails_the_session(tmp_path: Path) -> None:
    """An open at import (collection) time, caught there, still fails the whole session."""
    result = run_session(
        tmp_path,
        f"""
        try:
            open({str(SHARED_FILE)!r})
        except Exception:
            pass

        def test_nothing():
            pass
        """,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "files opened outside the checkout" in result.stdout


def test_the_session_may_run_from_any_folder(tmp_path: Path) -> None:
    """Started from ``/`` (outside every allowed folder), a session that reads only allowed files
    passes: the import system's listing of the current folder (on ``sys.path`` under ``python -m``)
    and relative names under a directory descriptor (shutil.rmtree) are not refusals."""
    result = run_session(
        tmp_path,
        """
        import importlib, shutil

        def test_import_probe_and_rmtree(tmp_path):
            importlib.invalidate_caches()  # the next import lists every sys.path folder again
            try:
                import no_such_module_in_any_folder  # noqa: F401
            except ImportError:
                pass
            (tmp_path / "d" / "e").mkdir(parents=True)
            (tmp_path / "d" / "e" / "x").write_text("x")
            shutil.rmtree(tmp_path / "d")
        """,
        cwd=Path("/"),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_link_out_of_the_checkout_is_refused(tmp_path: Path) -> None:
    """Paths are resolved: a symbolic link inside an allowed folder to a file outside is refused."""
    link = tmp_path / "link"
    link.symlink_to(SHARED_FILE)
    assert not checkout_guard.is_allowed(str(link))
    assert checkout_guard.is_allowed(str(tmp_path / "plain"))


def test_this_session_is_guarded() -> None:
    """The guard is on in the suite itself (conftest.py loads it)."""
    with pytest.raises(checkout_guard.OutsideCheckoutError):
        open(SHARED_FILE)
    checkout_guard.violations.pop()  # the refusal above was this test's point
