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
# Left out: the files that make no Verifier in this process (typed data and hashing alone,
# stubs, docs, file pins, and the facilitator tests whose verifiers live in a served
# subprocess), where the switch changes nothing, to keep CI inside its time.
off=(typing docs pinned_files checkout_guard chain_artifacts eip712_differential eip712_vectors typed_data_amplification
     typed_data_arguments typed_data_forms strictness robustness store_state_machine facilitator_replay cli_facilitator)
X402_VERIFY_TEST_PAYER_KEY_CACHE=0 python3 -m pytest "$PWD/tests" --rootdir "$PWD" -q -p no:cacheprovider \
    $(printf -- "--ignore=$PWD/tests/test_%s.py " "${off[@]}")
# The lints last, so a lint failure still shows the tests (rules: Cargo.toml [workspace.lints],
# pyproject.toml [tool.ruff]).
cargo clippy --quiet --workspace --all-targets -- -D warnings
python3 -m ruff check --quiet .
