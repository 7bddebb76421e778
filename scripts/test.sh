#!/usr/bin/env bash
# The whole test suite: installs the package with its test extras, the Debian packages the
# tests need (redis-server), then runs the Rust tests and the Python tests, then the lints
# (clippy with every warning an error, ruff; their rules: Cargo.toml [workspace.lints] and
# pyproject.toml [tool.ruff]). The lints run last so a lint failure still shows the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    fi
fi

python3 -m pip install --quiet ".[test]"
cargo test --quiet -p x402-verify-core -p x402-verify-secp-batch
# Run from outside the checkout so the installed wheel, not the source tree, is imported.
python3 -m pytest "$PWD/tests" --rootdir "$PWD" -q -p no:cacheprovider
# The Python suite again with the payer-key cache off in every verifier that does not name one
# (tests/conftest.py): batch and per-item verification must pass the same tests (issue 15).
X402_VERIFY_TEST_PAYER_KEY_CACHE=0 python3 -m pytest "$PWD/tests" --rootdir "$PWD" -q -p no:cacheprovider
