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

# Fixtures that several test modules use, registered once here: a module that imported one
# and then took it as a parameter would shadow its own import (ruff F811, which also catches
# two tests of one name, the first of which would never run).
from redis_servers import redis_cluster, redis_server, shared_redis_server  # noqa: F401
from test_store_concurrency import process_pair, thread_pool  # noqa: F401
from test_stores import make_store, store, store_kind  # noqa: F401

# The test EVM (tests/chain): the `chain_node` session fixture and the `chain` fixture.
pytest_plugins = ("chain.harness",)


VECTORS_DIR = Path(__file__).resolve().parent / "vectors"


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """The published test vectors copied into the repository (``tests/vectors``, see its README)."""
    return VECTORS_DIR
