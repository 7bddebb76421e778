"""The ``x402-verify`` command.

    x402-verify serve [--host H] [--port P] [--workers N] [--store URL] [--network N ...] [--upstream URL] ...
    x402-verify verify HEADER --requirements FILE|- [--json] [--network N ...] [--now T]
    x402-verify bench [--items N] [--threads T] [--kind permit2|eip3009|both] [--json]
    x402-verify hash FILE|-
    x402-verify recover FILE|- SIGNATURE [--policy eip3009|permit2]

Errors go to stderr as ``error: <code>: <message>`` with exit status 2. ``bench`` exits 1 if
any verdict is wrong; ``verify`` exits 0 for a valid payment, 1 for an invalid one, 2 for a
usage error. Every ``serve`` flag also reads an environment variable, ``X402_VERIFY_<FLAG>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import NamedTuple

from x402_verify import _core, _samples
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
        accepted = sum(r == want for r, want in zip(results, expected, strict=True))
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
        rejected = sum(not r.is_valid for r in results)
        runs.append(Run(kind, label, n_items, accepted, rejected, n_items - accepted - rejected, seconds))
    guarded = Verifier()  # the embedded default: MemoryNonceStore
    twice = [(h, r) for h, r, _ in payments] * 2
    first = guarded.verify_batch(twice, now=_samples.VALID_AT)
    again = guarded.verify_batch(twice, now=_samples.VALID_AT)
    replay_codes = set(_core.REPLAY_REASONS.values())
    replays = sum(r.invalid_reason in replay_codes for r in first + again)
    return runs, (sum(r.is_valid for r in first), sum(r.is_valid for r in again), replays)


def _print_runs(runs: list[Run], sdk_rate: float | None = None) -> int:
    """Prints one table row a run (speedup against the first run; the SDK's rate on the same
    items when measured); returns the wrong verdicts."""
    for run in runs:
        rate = run.items / run.seconds if run.seconds > 0 else float("inf")
        speedup = runs[0].seconds / run.seconds if run.seconds > 0 else float("inf")
        sdk = f" {sdk_rate:>12,.0f}" if sdk_rate is not None else ""
        print(
            f"{run.kind:<8} {run.threads:>8} {run.items:>7} {run.accepted:>9} {run.rejected:>9} {run.mismatched:>11}"
            f" {rate:>10,.0f} {1e6 / rate:>8.2f} {speedup:>7.2f}x{sdk}"
        )
    return sum(run.wrong for run in runs)


def _sdk_recover_rate(kind: str, n_items: int, progress: _Progress) -> float | None:
    """eth-account's recovery (what the x402 SDK calls) on the same documents: items/s, or
    None when eth-account is not importable. At most 500 items (it is some 100x slower)."""
    try:
        from eth_account import Account
        from eth_account.messages import encode_typed_data
    except ImportError:
        return None
    samples = _samples.load(kind)
    n = min(n_items, 500)
    start = time.perf_counter()
    for i in range(n):
        s = samples[i % len(samples)]
        Account.recover_message(encode_typed_data(full_message=s.typed_data), signature=s.signature)
        if i % 100 == 0:
            progress.update(f"eth-account {kind}", i, n)
    seconds = time.perf_counter() - start
    return n / seconds if seconds > 0 else None


class _Progress:
    """A one-line progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self) -> None:
        self.on = sys.stderr.isatty()

    def update(self, what: str, done: int, total: int) -> None:
        if self.on:
            width = 30
            filled = width * done // max(total, 1)
            sys.stderr.write(f"\r{what:<24} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            sys.stderr.flush()

    def clear(self) -> None:
        if self.on:
            sys.stderr.write("\r" + " " * 72 + "\r")
            sys.stderr.flush()


def _run_dict(run: Run) -> dict[str, object]:
    rate = run.items / run.seconds if run.seconds > 0 else None
    return {**run._asdict(), "items_per_second": rate}


def _bench(args: argparse.Namespace) -> int:
    kinds = list(_samples.KINDS) if args.kind == "both" else [args.kind]
    thread_counts: list[int | None] = [1] if args.threads == 1 else [1, args.threads]
    progress = _Progress()
    out = sys.stdout
    if args.json:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the tables are not wanted: only the JSON)
    report: dict[str, object] = {"items": args.items, "recover": [], "verify": [], "replay": [], "sdk_recover_items_per_second": {}}
    try:
        print(f"x402-verify bench: recover_typed_data_batch, {args.items} items a run, documents as JSON text")
        header = f"{'kind':<8} {'threads':>8} {'items':>7} {'accepted':>9} {'rejected':>9} {'mismatched':>11} {'items/s':>10} {'µs/item':>8} {'speedup':>8}"
        print(header + f" {'eth-account/s':>12}")
        print("-" * (len(header) + 13))
        wrong = 0
        for i, kind in enumerate(kinds):
            progress.update(f"recover {kind}", i, len(kinds))
            runs = _bench_kind(kind, args.items, thread_counts)
            sdk_rate = _sdk_recover_rate(kind, args.items, progress) if not args.no_sdk else None
            wrong += _print_runs(runs, sdk_rate)
            report["recover"] += [_run_dict(r) for r in runs]  # type: ignore[operator]
            report["sdk_recover_items_per_second"][kind] = sdk_rate  # type: ignore[index]
        print()
        print(f"x402-verify bench: Verifier.verify_batch on base64 x402 headers, {args.items} items a run")
        print(header)
        print("-" * len(header))
        for i, kind in enumerate(kinds):
            progress.update(f"verify {kind}", i, len(kinds))
            runs, (first, again, replays) = _verify_kind(kind, args.items, thread_counts)
            wrong += _print_runs(runs)
            report["verify"] += [_run_dict(r) for r in runs]  # type: ignore[operator]
            unique = len(_samples.load(kind))
            print(f"{kind:<8} replay protection (in-process store), {unique} payments each sent twice, then the batch again:"
                  f" {first} accepted, then {again}; {replays} refused as replays")
            report["replay"].append({"kind": kind, "payments": unique, "accepted_first": first, "accepted_again": again, "replays": replays})  # type: ignore[attr-defined]
            # Exactly one accept per payment, ever.
            wrong += abs(first - unique) + again + abs(replays - 3 * unique)
        progress.clear()
        print(f"wrong verdicts: {wrong}")
    finally:
        if args.json:
            sys.stdout.close()
            sys.stdout = out
    report["wrong_verdicts"] = wrong
    if args.json:
        print(json.dumps(report, indent=2))
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


def _checks(text: str) -> str:
    from x402_verify.facilitator.config import CHECKS

    if text not in CHECKS:
        raise argparse.ArgumentTypeError(f"one of {', '.join(CHECKS)}")
    return text


def _port(text: str) -> int:
    n = int(text)
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError("a TCP port is 0 to 65535")
    return n


def _seconds(text: str) -> float:
    t = float(text)
    if not 0 < t <= 3600:
        raise argparse.ArgumentTypeError("seconds in (0, 3600]")
    return t


def _words(text: str) -> list[str]:
    return [w for w in text.replace(",", " ").split() if w]


class _Flag(NamedTuple):
    flag: str
    kind: object
    default: object
    help: str


def _serve_flags() -> list[_Flag]:
    from x402_verify.facilitator.config import DEFAULT_NETWORKS, DEFAULT_STORE, FacilitatorConfig

    d = FacilitatorConfig()
    return [
        _Flag("host", str, "127.0.0.1", "address to listen on"),
        _Flag("port", _port, 8402, "TCP port (0: a free one, printed when ready)"),
        _Flag("workers", _positive, 1, "worker processes (more than 1 needs a shared store: sqlite://, redis:// or redis+cluster://)"),
        _Flag("network", _words, list(DEFAULT_NETWORKS), "CAIP-2 networks accepted (repeat, or comma-separated)"),
        _Flag("store", str, DEFAULT_STORE, "nonce store: sqlite:///path, redis://host:port/db, redis+cluster://host:port, memory://"),
        _Flag("upstream", str, None, "the facilitator that settles (its /settle and /supported)"),
        _Flag("facilitator_address", _words, [], "upto facilitator addresses listed in /supported (default: the upstream's signers)"),
        _Flag("auth_token", str, None, "bearer token required by /verify, /settle and /release"),
        _Flag("max_body_bytes", _positive, d.max_body_bytes, "largest request body"),
        _Flag("max_header_bytes", _positive, d.max_header_bytes, "largest request headers (all of them)"),
        _Flag("max_json_depth", _positive, d.max_json_depth, "deepest JSON nesting of a body"),
        _Flag("request_timeout", _seconds, d.request_timeout, "seconds a request may take"),
        _Flag("upstream_timeout", _seconds, d.upstream_timeout, "seconds an upstream settle may take"),
        _Flag("max_upstream", _positive, d.max_upstream, "concurrent upstream settle calls (per worker)"),
        _Flag("max_batch", _positive, d.max_batch, "most payments in one verify_batch call"),
        _Flag("threads", _positive, None, "threads a verify_batch may use (default: every core)"),
        _Flag("checks", _checks, d.checks, "where a worker runs its checks: loop, threads, or auto (the loop unless they read chain state)"),
        _Flag("sweep_interval", float, d.sweep_interval, "seconds between sweeps of expired reservations (0: none)"),
    ]


def _env_name(flag: str) -> str:
    return "X402_VERIFY_" + flag.upper()


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "serve", help="run the facilitator service (/verify, /settle, /supported)",
        description="Run the x402 facilitator service. Every flag also reads X402_VERIFY_<FLAG> (e.g. X402_VERIFY_STORE).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    for f in _serve_flags():
        name = "--" + f.flag.replace("_", "-")
        env = os.environ.get(_env_name(f.flag))
        default = f.default
        if env is not None:
            try:
                default = f.kind(env)  # type: ignore[operator]
            except (ValueError, argparse.ArgumentTypeError) as e:
                raise CliError("usage", f"{_env_name(f.flag)}={env!r}: {e}") from e
        if f.kind is _words:
            s.add_argument(name, action=_Listed, type=_words, default=default, help=f"{f.help} [{_env_name(f.flag)}]")
        elif f.flag == "auth_token":  # never shown in --help
            s.add_argument(name, type=str, default=default, help=f"{f.help} [{_env_name(f.flag)}]%(default).0s")
        else:
            s.add_argument(name, type=f.kind, default=default, help=f"{f.help} [{_env_name(f.flag)}]")  # type: ignore[arg-type]
    s.set_defaults(func=_serve)


class _Listed(argparse.Action):
    """A repeatable flag of comma/space-separated words whose first use replaces the default."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option: str | None = None) -> None:
        current = getattr(namespace, self.dest)
        words = list(values) if isinstance(values, list) else [str(values)]
        setattr(namespace, self.dest, words if current is self.default else [*current, *words])


def _listed(args: argparse.Namespace, name: str) -> list[str]:
    return list(getattr(args, name))


def _serve(args: argparse.Namespace) -> int:
    from x402_verify.facilitator.config import FacilitatorConfig
    from x402_verify.facilitator.server import serve

    try:
        config = FacilitatorConfig(
            networks=tuple(_listed(args, "network")), store=args.store, upstream=args.upstream,
            facilitator_addresses=tuple(_listed(args, "facilitator_address")), auth_token=args.auth_token,
            max_body_bytes=args.max_body_bytes, max_header_bytes=args.max_header_bytes, max_json_depth=args.max_json_depth,
            request_timeout=args.request_timeout, upstream_timeout=args.upstream_timeout, max_upstream=args.max_upstream,
            max_batch=args.max_batch, threads=args.threads, sweep_interval=args.sweep_interval, checks=args.checks,
        )  # fmt: skip
        port = args.port
        if port == 0:
            import socket

            with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as sock:
                sock.bind((args.host, 0))
                port = sock.getsockname()[1]
        from x402_verify.facilitator.server import check_workers

        check_workers(config, args.workers)
    except (ValueError, TypeError) as e:
        raise CliError("usage", str(e)) from e
    serve(config, host=args.host, port=port, workers=args.workers)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from x402_verify.verifier import Verifier

    raw = _read(args.requirements)
    try:
        requirements = json.loads(raw)
    except ValueError as e:
        raise CliError("invalid_json", f"the requirements are not JSON: {e}") from e
    if not isinstance(requirements, dict):
        raise CliError("invalid_payment_requirements", "the requirements must be a JSON object (x402 PaymentRequirements)")
    try:
        verifier = Verifier(networks=args.network, nonce_store=None)
    except (ValueError, TypeError) as e:
        raise CliError("usage", str(e)) from e
    try:
        verdict = verifier.verify(args.header, requirements, now=args.now)
    except (ValueError, TypeError) as e:
        raise CliError("usage", str(e)) from e
    if args.json:
        out = verdict.to_dict()
        out.update({"scheme": verdict.scheme, "x402Version": verdict.x402_version})
        print(json.dumps(out))
    elif verdict.is_valid:
        auth = verdict.authorization
        amount = f" of {auth.amount}" if auth is not None else ""
        print(f"valid: {verdict.scheme} payment{amount} from {verdict.payer}")
    else:
        print(f"invalid: {verdict.invalid_reason}: {verdict.invalid_message}")
    return 0 if verdict.is_valid else 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="x402-verify", description="Verify x402 payment authorizations (EIP-712 typed data).")
    sub = p.add_subparsers(dest="command", required=True)
    _add_serve(sub)

    v = sub.add_parser("verify", help="verify one payment header against requirements (exit 0 valid, 1 invalid, 2 usage)")
    v.add_argument("header", help="the PAYMENT-SIGNATURE / X-PAYMENT header value (base64 JSON)")
    v.add_argument("--requirements", required=True, help="a PaymentRequirements JSON file, or - for stdin")
    v.add_argument("--json", action="store_true", help="print the verdict as JSON")
    v.add_argument("--network", action=_Listed, type=_words, default=None, help="accepted networks (default: any EVM network)")
    v.add_argument("--now", type=int, default=None, help="unix seconds to verify at (default: the clock)")
    v.set_defaults(func=_verify)

    b = sub.add_parser("bench", help="recover the bundled signed samples in a batch and time it")
    b.add_argument("--items", type=_positive, default=20000, help="items a run (default 20000)")
    b.add_argument("--threads", type=_positive, default=None, help="threads of the second run (default: every core)")
    b.add_argument("--kind", choices=["permit2", "eip3009", "both"], default="both", help="which samples (default both)")
    b.add_argument("--json", action="store_true", help="print the results as JSON (for dashboards) instead of tables")
    b.add_argument("--no-sdk", action="store_true", help="skip the eth-account column")
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
    try:
        args = _parser().parse_args(argv)
    except CliError as e:
        print(f"error: {e.code}: {e.message}", file=sys.stderr)
        return 2
    try:
        status: int = args.func(args)
    except (X402VerifyError, CliError) as e:
        where = f" (at {e.path})" if isinstance(e, X402VerifyError) and e.path else ""
        print(f"error: {e.code}: {e.message}{where}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    raise SystemExit(main())
