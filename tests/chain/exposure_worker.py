"""One gateway process for tests/test_chain_exposure.py: verifies a JSON job's payments with a
ChainReader on the test node and a RedisNonceStore, prints ``{"accepted": n, "refused": [...]}``."""

from __future__ import annotations

import json
import sys

import x402_verify as xv


def main() -> None:
    job = json.loads(open(sys.argv[1], encoding="utf-8").read())
    store = xv.RedisNonceStore(job["redis"], prefix=job["prefix"], timeout=10.0)
    with xv.ChainReader(job["rpc"], timeout=60.0, negative_ttl=0) as reader:
        verifier = xv.Verifier(networks=["eip155:8453"], chain_readers={"eip155:8453": reader}, nonce_store=store)
        accepted, refused = 0, []
        # Small batches, so the two processes' reservations interleave.
        items = [tuple(i) for i in job["items"]]
        for k in range(0, len(items), 5):
            for r in verifier.verify_batch(items[k : k + 5]):
                if r.is_valid:
                    accepted += 1
                else:
                    refused.append(r.invalid_reason)
    store.client.close()
    print(json.dumps({"accepted": accepted, "refused": refused}))


if __name__ == "__main__":
    main()
