"""The ``x402-verify`` command.

    x402-verify bench [--items N] [--threads T] [--kind permit2|eip3009|both]
    x402-verify hash FILE|-
    x402-verify recover FILE|- SIGNATURE [--policy eip3009|permit2]

Errors go to stderr as ``error: <code>: <message>`` with exit status 2. ``bench`` exits 1 if
any verdict is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import NamedTuple

from x402_verify import _samples
from x402_verify._core import SignaturePolicy, hash_typed_data, recover_typed_data, recover_typed_data_batch
from x402_verify.errors import X402VerifyError

IO_ERROR = "io_error"  # the CLI's own code for an unreadable input file; not a library code


class CliError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code, self.message = code, message


class Run(NamedTuple):
    kind: str
    threads: str
    items: int
    accepted: int
    rejected: int
    mismatched: int
    seconds: float

    @property
    def wrong(self) -> int:
        # Every bundled sample is validly signed, so anything but "accepted" is a wrong verdict.
        return self.items - self.accepted


def _bench_kind(kind: str, n_items: int, thread_counts: list[int | None]) -> list[Run]:
    samples = _samples.load(kind)
    # JSON text and 0x-hex signatures: what a gateway takes off the wire.
    texts = [json.dumps(s.typed_data, separators=(",", ":")) for s in samples]
    items = [(texts[i % len(samples)], samples[i % len(samples)].signature) for i in range(n_items)]
    expected = [samples[i % len(samples)].signer for i in range(n_items)]
    runs = []
    for threads in thread_counts:
        start = time.perf_counter()
        results = recover_typed_data_batch(items, policy=_samples.policy(kind), threads=threads)
        seconds = time.perf_counter() - start
        rejected = sum(isinstance(r, X402VerifyError) for r in results)
        accepted = sum(r == want for r, want in zip(results, expected))
        label = str(threads) if threads else f"all ({os.cpu_count()})"
        runs.append(Run(kind, label, n_items, accepted, rejected, len(results) - accepted - rejected, seconds))
    return runs


def _verify_kind(kind: str, n_items: int, thread_counts: list[int | None]) -> tuple[list[Run], tuple[int, int, int]]:
    """Full x402 verification of base64 headers: throughput without replay state, then the
    embedded default (an in-process nonce store) on every payment sent twice, then again."""
    from x402_verify.verifier import Verifier

    payments = _samples.x402_items(kind)
    items = [(payments[i % len(payments)][0], payments[i % len(payments)][1]) for i in range(n_items)]
    stateless = Verifier(nonce_store=None)
    runs = []
    for threads in thread_counts:
        start = time.perf_counter()
        results = stateless.verify_batch(items, now=_samples.VALID_AT, threads=threads)
        seconds = time.perf_counter() - start
        accepted = sum(r.is_valid and r.payer == payments[i % len(payments)][2] for i, r in enumerate(results))
        label = str(threads) if threads else f"all ({os.cpu_count()})"
        runs.append(Run(kind, label, n_items, accepted, sum(not r.is_valid for r in results), n_items - accepted - sum(not r.is_valid for r in results), seconds))
    guarded = Verifier()  # the embedded default: MemoryNonceStore
    twice = [(h, r) for h, r, _ in payments] * 2
    first = guarded.verify_batch(twice, now=_samples.VALID_AT)
    again = guarded.verify_batch(twice, now=_samples.VALID_AT)
    replays = sum(r.invalid_reason in ("permit2_nonce_already_used", "invalid_exact_evm_nonce_already_used") for r in first + again)
    return runs, (sum(r.is_valid for r in first), sum(r.is_valid for r in again), replays)


def _print_runs(runs: list[Run]) -> int:
    """Prints one table row a run (speedup against the first run); returns the wrong verdicts."""
    for run in runs:
        rate = run.items / run.seconds if run.seconds > 0 else float("inf")
        speedup = runs[0].seconds / run.seconds if run.seconds > 0 else float("inf")
        print(
            f"{run.kind:<8} {run.threads:>8} {run.items:>7} {run.accepted:>9} {run.rejected:>9} {run.mismatched:>11}"
            f" {rate:>10,.0f} {1e6 / rate:>8.2f} {speedup:>7.2f}x"
        )
    return sum(run.wrong for run in runs)


def _bench(args: argparse.Namespace) -> int:
    kinds = list(_samples.KINDS) if args.kind == "both" else [args.kind]
    thread_counts: list[int | None] = [1] if args.threads == 1 else [1, args.threads]
    print(f"x402-verify bench: recover_typed_data_batch, {args.items} items a run, documents as JSON text")
    header = f"{'kind':<8} {'threads':>8} {'items':>7} {'accepted':>9} {'rejected':>9} {'mismatched':>11} {'items/s':>10} {'µs/item':>8} {'speedup':>8}"
    print(header)
    print("-" * len(header))
    wrong = 0
    for kind in kinds:
        runs = _bench_kind(kind, args.items, thread_counts)
        wrong += _print_runs(runs)
    print()
    print(f"x402-verify bench: Verifier.verify_batch on base64 x402 headers, {args.items} items a run")
    print(header)
    print("-" * len(header))
    for kind in kinds:
        runs, (first, again, replays) = _verify_kind(kind, args.items, thread_counts)
        wrong += _print_runs(runs)
        unique = len(_samples.load(kind))
        print(f"{kind:<8} replay protection (in-process store), {unique} payments each sent twice, then the batch again:"
              f" {first} accepted, then {again}; {replays} refused as replays")
        # Exactly one accept per payment, ever.
        wrong += abs(first - unique) + again + abs(replays - 3 * unique)
    print(f"wrong verdicts: {wrong}")
    if wrong:
        print("FAIL: some validly signed samples were not accepted", file=sys.stderr)
        return 1
    return 0


def _read(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CliError(IO_ERROR, f"cannot read {path}: {e.strerror or e}") from e


def _hash(args: argparse.Namespace) -> int:
    print("0x" + hash_typed_data(_read(args.file)).hex())
    return 0


def _recover(args: argparse.Namespace) -> int:
    policy = SignaturePolicy.permit2() if args.policy == "permit2" else SignaturePolicy.eip3009()
    print(recover_typed_data(_read(args.file), args.signature, policy=policy))
    return 0


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="x402-verify", description="Verify x402 payment authorizations (EIP-712 typed data).")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="recover the bundled signed samples in a batch and time it")
    b.add_argument("--items", type=_positive, default=20000, help="items a run (default 20000)")
    b.add_argument("--threads", type=_positive, default=None, help="threads of the second run (default: every core)")
    b.add_argument("--kind", choices=["permit2", "eip3009", "both"], default="both", help="which samples (default both)")
    b.set_defaults(func=_bench)

    h = sub.add_parser("hash", help="print the EIP-712 signing digest of a typed-data JSON document")
    h.add_argument("file", help="a JSON file, or - for stdin")
    h.set_defaults(func=_hash)

    r = sub.add_parser("recover", help="print the address that signed a typed-data JSON document")
    r.add_argument("file", help="a JSON file, or - for stdin")
    r.add_argument("signature", help="0x-hex signature")
    r.add_argument(
        "--policy", choices=["eip3009", "permit2"], default="eip3009",
        help="signature encodings to accept (default eip3009: 65 bytes, v 27/28, low s; permit2 adds EIP-2098 and high s)",
    )
    r.set_defaults(func=_recover)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except (X402VerifyError, CliError) as e:
        where = f" (at {e.path})" if isinstance(e, X402VerifyError) and e.path else ""
        print(f"error: {e.code}: {e.message}{where}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    raise SystemExit(main())
