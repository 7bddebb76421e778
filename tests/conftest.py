"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The test EVM (tests/chain): the `chain_node` session fixture and the `chain` fixture.
pytest_plugins = ("chain.harness",)


def _shared_dir() -> Path:
    """The shared research folder: ``$X402_SHARED_DIR``, else ``<repo>/../shared``."""
    override = os.environ.get("X402_SHARED_DIR")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Root of the shared vectors and references (``vectors/``, ``reference/``).

    Missing data is a failure, not a skip: the vector tests are the held-out checks.
    """
    path = _shared_dir()
    if not (path / "vectors").is_dir():
        pytest.fail(f"shared folder not found at {path} (set X402_SHARED_DIR)", pytrace=False)
    return path
