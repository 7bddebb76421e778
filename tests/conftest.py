"""Shared pytest fixtures, and the guard that keeps the suite inside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

# The audit hook and its per-test / end-of-session checks (see checkout_guard.py).
from checkout_guard import (  # noqa: F401
    pytest_runtest_call,
    pytest_runtest_setup,
    pytest_runtest_teardown,
    pytest_sessionfinish,
    pytest_terminal_summary,
)

# The test EVM (tests/chain): the `chain_node` session fixture and the `chain` fixture.
pytest_plugins = ("chain.harness",)


VECTORS_DIR = Path(__file__).resolve().parent / "vectors"


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """The published test vectors copied into the repository (``tests/vectors``, see its README)."""
    return VECTORS_DIR
