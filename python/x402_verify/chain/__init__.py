"""Chain reads for x402 payments: what the payer can pay, checked before compute.

``ChainReader`` (and its async twin) reads one chain over HTTP JSON-RPC in batches;
``ChainChecks`` is the verifier's chain stage (``Verifier(chain_readers={network: reader})``);
``averify_batch(verifier, items)`` runs a verifier's batch on an event loop with async readers.
See docs/chain.md.
"""

from __future__ import annotations

from x402_verify.chain.aio import averify_batch
from x402_verify.chain.checks import ChainChecks
from x402_verify.chain.reader import AsyncChainReader, ChainReader, ChainReadError

__all__ = ["AsyncChainReader", "ChainChecks", "ChainReadError", "ChainReader", "averify_batch"]
