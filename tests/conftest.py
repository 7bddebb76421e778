"""Shared pytest fixtures, and the guard that keeps the suite inside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import x402_verify as xv

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

# X402_VERIFY_TEST_PAYER_KEY_CACHE=N makes N the payer_key_cache of every Verifier the suite
# makes without naming one (scripts/test.sh reruns the verification tests with 0: the fast path
# off, so the suite passes with the cache on and off). A test of the default itself is marked
# `real_default_payer_key_cache` and sees the package's own default.
_PAYER_KEY_CACHE = os.environ.get("X402_VERIFY_TEST_PAYER_KEY_CACHE")
_REAL_DEFAULT_PAYER_KEY_CACHE = xv.Verifier.__init__.__kwdefaults__["payer_key_cache"]
if _PAYER_KEY_CACHE is not None:
    xv.Verifier.__init__.__kwdefaults__["payer_key_cache"] = int(_PAYER_KEY_CACHE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_default_payer_key_cache: the test sees Verifier's own payer_key_cache default")


@pytest.fixture(autouse=True)
def _real_default_payer_key_cache(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("real_default_payer_key_cache") is not None:
        monkeypatch.setitem(xv.Verifier.__init__.__kwdefaults__, "payer_key_cache", _REAL_DEFAULT_PAYER_KEY_CACHE)


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """The published test vectors copied into the repository (``tests/vectors``, see its README)."""
    return VECTORS_DIR
