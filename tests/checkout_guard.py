"""Fails the test session if anything opens a file outside the places a test may read.

CI always has ``../shared`` (the research folder) beside its clone, while a user's fresh clone
has not: a test that reads it passes in CI and fails for everyone else. So an audit hook
(``sys.addaudithook``) watches every ``open`` (``open``, ``io.open_code``, ``os.open``),
``os.listdir``, ``os.scandir`` and ``sqlite3.connect`` of the process and refuses the ones
outside:

- the checkout (the folder above ``tests/``), which holds the test vectors (``tests/vectors``);
- the interpreter's installation: ``sys.prefix`` / ``sys.exec_prefix`` (a venv), the base
  prefixes (the standard library) and every site-packages folder (the installed packages);
- the temporary folder (``tempfile.gettempdir()``: pytest's ``tmp_path``, the SQLite and
  redis-server files) and Hypothesis's example database;
- ``/proc``, ``/dev``, ``/sys`` and ``/etc``, which libraries read for themselves;
- for listings only, the folders on ``sys.path``, which the import system scans.

A refused access raises :class:`OutsideCheckoutError` where it happens and is remembered, so a
test that swallows the error still fails, and an access outside any test
(collection, imports) fails the session at its end. Paths are resolved (``os.path.realpath``),
so a symbolic link out of the checkout is caught too; a relative path is judged only when it
climbs (``..``), since the events do not say which folder it is relative to.

conftest.py imports the hooks below; ``-p checkout_guard`` loads the same guard in a session
of its own (tests/test_checkout_guard.py does that to show it fails a session).
"""

from __future__ import annotations

import os
import site
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest

REPO_ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
SYSTEM_DIRS = ("/proc", "/dev", "/sys", "/etc")
WATCHED_EVENTS = frozenset({"open", "os.listdir", "os.scandir", "sqlite3.connect"})


class OutsideCheckoutError(PermissionError):
    """A test touched a file outside the checkout, the installed packages and the temp folder."""


def _hypothesis_dir() -> list[str]:
    try:
        from hypothesis.configuration import storage_directory
    except ImportError:
        return []
    return [str(storage_directory(intent_to_write=False))]


def allowed_roots() -> tuple[str, ...]:
    roots = [REPO_ROOT, tempfile.gettempdir(), *SYSTEM_DIRS, *_hypothesis_dir()]
    roots += [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    roots += site.getsitepackages()
    if site.ENABLE_USER_SITE:
        roots.append(site.getusersitepackages())
    out: set[str] = set()
    for root in roots:
        out.add(os.path.abspath(root))
        out.add(os.path.realpath(root))
    return tuple(sorted(out))


ALLOWED_ROOTS = allowed_roots()
violations: list[str] = []
_busy = threading.local()


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


_TMP = os.path.realpath(tempfile.gettempdir())
_PARENT = os.path.dirname(REPO_ROOT)
# A clone that itself sits in the temporary folder (/tmp/x/checkout) would otherwise let the
# temporary-folder root allow what lies beside it (/tmp/x/shared): that folder stays refused.
_BESIDE = _PARENT if _PARENT != _TMP and _within(_PARENT, _TMP) else None
_ROOTS_BUT_TMP = tuple(root for root in ALLOWED_ROOTS if os.path.realpath(root) != _TMP)


def is_allowed(path: str) -> bool:
    resolved = os.path.realpath(path)
    if _within(resolved, REPO_ROOT):
        return True
    if any(_within(resolved, root) for root in _ROOTS_BUT_TMP):
        return True
    if _BESIDE is not None and _within(resolved, _BESIDE):
        return False
    return any(_within(resolved, root) for root in ALLOWED_ROOTS)


def _on_import_path(path: str) -> bool:
    """A folder on ``sys.path``: the import system lists it (``python -m pytest`` puts the current
    folder there, wherever it is); its files are still judged when opened."""
    resolved = os.path.realpath(path)
    return any(resolved == os.path.realpath(entry or os.curdir) for entry in sys.path if isinstance(entry, str))


def _path_of(event: str, args: tuple[Any, ...]) -> str | None:
    """The file system path an event names, or None (a descriptor, an in-memory database, the
    current folder, a relative name)."""
    target = args[0] if args else None
    if target is None or isinstance(target, int):
        return None  # an open descriptor: its path was checked when it was opened
    try:
        path = os.fsdecode(os.fspath(target))
    except TypeError:
        return None
    if event == "sqlite3.connect":
        if path in ("", ":memory:") or path.startswith("file::memory:"):
            return None
        if path.startswith("file:"):
            path = path[len("file:") :].split("?", 1)[0]
    if not os.path.isabs(path) and os.pardir not in path.split(os.sep):
        # The events do not say whether a relative path is relative to the current folder or to
        # a directory descriptor (``dir_fd``: shutil.rmtree, pytest's temp cleanup), so only one
        # that climbs out (``../shared``) is judged, against the current folder.
        return None
    return path


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in WATCHED_EVENTS or getattr(_busy, "on", False):
        return
    _busy.on = True  # realpath and the checks below must not re-enter the hook
    try:
        path = _path_of(event, args)
        if path is None or is_allowed(path) or (event != "open" and _on_import_path(path)):
            return
        message = f"{event} {path!r}: outside the checkout ({REPO_ROOT}); copy the data into the repository"
        violations.append(message)
    finally:
        _busy.on = False
    raise OutsideCheckoutError(message)


sys.addaudithook(_audit)


# Each phase of a test (setup, call, teardown) fails if it touched a file outside, even if it
# caught the error.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    before = len(violations)
    try:
        return (yield)
    finally:
        if len(violations) > before:
            pytest.fail("\n".join(violations[before:]), pytrace=False)


pytest_runtest_call = pytest_runtest_teardown = pytest_runtest_setup


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if violations:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if violations:
        terminalreporter.section("files opened outside the checkout")
        for line in violations:
            terminalreporter.write_line(line)
