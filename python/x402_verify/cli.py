"""The ``x402-verify`` command.

    x402-verify verify HEADER|- --requirements FILE|- [--network N ...] [--now T] [--json]
    x402-verify bench [--items N] [--threads T] [--kind permit2|eip3009|both] [--sdk-items N] [--json]
    x402-verify hash FILE|-
    x402-verify recover FILE|- SIGNATURE [--policy eip3009|permit2]
    x402-verify serve [--host H] [--port P] [--store URL] ...   (see ``serve --help``)

Errors go to stderr as ``error: <code>: <message>`` with exit status 2. ``verify`` exits 0 for
a valid payment and 1 for an invalid one; ``bench`` exits 1 if any verdict is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TextIO

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

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("inf")


class SdkRun(NamedTuple):
    """The reference implementation on the first ``items`` of the same items, one thread."""

    name: str  # what was timed
    items: int
    correct: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("inf")


class Progress:
    """A one-line progress bar on stderr, drawn only when stdout is a terminal (so piped or
    captured output, and ``--json`` read by a program, stay clean)."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.total, self.done = max(total, 1), 0
        self.stream = stream or sys.stderr
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.label = ""

    def advance(self, n: int) -> None:
        self.done = min(self.done + n, self.total)
        if self.enabled:
            filled = self.WIDTH * self.done // self.total
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            self.stream.write(f"\r[{bar}] {100 * self.done // self.total:3d}% {self.label:<28}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (self.WIDTH + 36) + "\r")
            self.stream.flush()


def _sdk_module() -> Any:
    """``x402_verify._sdk_bench`` when the x402 SDK and eth-account are importable, else None."""
    try:
        from x402_verify import _sdk_bench
    except ImportError:
        return None
    return _sdk_bench


def _label(threads: int | None) -> str:
    return str(threads) if threads else f"all ({os.cpu_count()})"


def _bench_kind(kind: str, n_items: int, thread_counts: list[int | None], progress: Progress, sdk: Any, n_sdk: int) -> tuple[list[Run], SdkRun | None]:
    samples = _samples.load(kind)
    # JSON text and 0x-hex signatures: what a gateway takes off the wire.
    texts = [json.dumps(s.typed_data, separators=(",", ":")) for s in samples]
    items = [(texts[i % len(samples)], samples[i % len(samples)].signature) for i in range(n_items)]
    expected = [samples[i % len(samples)].signer for i in range(n_items)]
    runs = []
    progress.label = f"{kind} recover"
    for threads in thread_counts:
        start = time.perf_counter()
        results = recover_typed_data_batch(items, policy=_samples.policy(kind), threads=threads)
        seconds = time.perf_counter() - start
        rejected = sum(isinstance(r, X402VerifyError) for r in results)
        accepted = sum(r == want for r, want in zip(results, expected))
        runs.append(Run(kind, _label(threads), n_items, accepted, rejected, len(results) - accepted - rejected, seconds))
        progress.advance(n_items)
    ref = None
    if sdk is not None and n_sdk:
        progress.label = f"{kind} recover (eth-account)"
        n = min(n_sdk, n_items)
        correct, seconds = sdk.recover(items[:n], expected[:n], progress.advance)
        ref = SdkRun("eth_account.Account.recover_message(encode_typed_data(json.loads(text)))", n, correct, seconds)
    return runs, ref


def _verify_kind(
    kind: str, n_items: int, thread_counts: list[int | None], progress: Progress, sdk: Any, n_sdk: int
) -> tuple[list[Run], tuple[int, int, int], SdkRun | None]:
    """Full x402 verification of base64 headers: throughput without replay state, then the
    embedded default (an in-process nonce store) on every payment sent twice, then again."""
    from x402_verify.verifier import Verifier

    payments = _samples.x402_items(kind)
    items = [(payments[i % len(payments)][0], payments[i % len(payments)][1]) for i in range(n_items)]
    stateless = Verifier(nonce_store=None)
    runs = []
    progress.label = f"{kind} verify"
    for threads in thread_counts:
        start = time.perf_counter()
        results = stateless.verify_batch(items, now=_samples.VALID_AT, threads=threads)
        seconds = time.perf_counter() - start
        accepted = sum(r.is_valid and r.payer == payments[i % len(payments)][2] for i, r in enumerate(results))
        rejected = sum(not r.is_valid for r in results)
        runs.append(Run(kind, _label(threads), n_items, accepted, rejected, n_items - accepted - rejected, seconds))
        progress.advance(n_items)
    guarded = Verifier()  # the embedded default: MemoryNonceStore
    twice = [(h, r) for h, r, _ in payments] * 2
    first = guarded.verify_batch(twice, now=_samples.VALID_AT)
    again = guarded.verify_batch(twice, now=_samples.VALID_AT)
    replays = sum(r.invalid_reason in ("permit2_nonce_already_used", "invalid_exact_evm_nonce_already_used") for r in first + again)
    ref = None
    if sdk is not None and n_sdk:
        progress.label = f"{kind} verify (x402 SDK)"
        n = min(n_sdk, n_items)
        valid, seconds = sdk.verify(items[:n], _samples.VALID_AT, progress.advance)
        ref = SdkRun("x402 SDK ExactEvmScheme.verify (stub chain), models validated per item", n, valid, seconds)
    return runs, (sum(r.is_valid for r in first), sum(r.is_valid for r in again), replays), ref


HEADER = (
    f"{'kind':<8} {'threads':>8} {'items':>7} {'accepted':>9} {'rejected':>9} {'mismatched':>11}"
    f" {'items/s':>10} {'µs/item':>8} {'speedup':>8} {'sdk/s':>9} {'vs sdk':>8}"
)


def _print_runs(runs: list[Run], ref: SdkRun | None) -> None:
    """Prints one table row a run (speedup against the first run, and against the reference
    implementation on the same items when it ran)."""
    for run in runs:
        speedup = runs[0].seconds / run.seconds if run.seconds > 0 else float("inf")
        sdk_cols = f" {ref.rate:>9,.0f} {run.rate / ref.rate:>7.1f}x" if ref is not None else f" {'-':>9} {'-':>8}"
        print(
            f"{run.kind:<8} {run.threads:>8} {run.items:>7} {run.accepted:>9} {run.rejected:>9} {run.mismatched:>11}"
            f" {run.rate:>10,.0f} {1e6 / run.rate:>8.2f} {speedup:>7.2f}x{sdk_cols}"
        )


def _run_dict(run: Run, ref: SdkRun | None) -> dict[str, Any]:
    out: dict[str, Any] = {**run._asdict(), "items_per_s": run.rate, "us_per_item": 1e6 / run.rate}
    out["sdk_items_per_s"] = ref.rate if ref is not None else None
    out["vs_sdk"] = run.rate / ref.rate if ref is not None else None
    return out


def _bench(args: argparse.Namespace) -> int:
    kinds = list(_samples.KINDS) if args.kind == "both" else [args.kind]
    thread_counts: list[int | None] = [1] if args.threads == 1 else [1, args.threads]
    sdk = None if args.sdk_items == 0 else _sdk_module()
    n_sdk = min(args.sdk_items, args.items) if sdk is not None else 0
    per_kind = 2 * len(thread_counts) * args.items + 2 * n_sdk
    progress = Progress(per_kind * len(kinds))
    report: dict[str, Any] = {"items": args.items, "threads": [_label(t) for t in thread_counts], "recover": [], "verify": [], "replay": []}
    report["sdk"] = {"available": sdk is not None, "items": n_sdk}
    wrong = 0
    tables: list[tuple[str, list[Run], SdkRun | None]] = []
    replay_lines: list[str] = []
    try:
        for kind in kinds:
            runs, ref = _bench_kind(kind, args.items, thread_counts, progress, sdk, n_sdk)
            wrong += sum(r.wrong for r in runs) + (ref.items - ref.correct if ref else 0)
            tables.append(("recover", runs, ref))
            report["recover"] += [_run_dict(r, ref) for r in runs]
        for kind in kinds:
            runs, (first, again, replays), ref = _verify_kind(kind, args.items, thread_counts, progress, sdk, n_sdk)
            wrong += sum(r.wrong for r in runs) + (ref.items - ref.correct if ref else 0)
            tables.append(("verify", runs, ref))
            report["verify"] += [_run_dict(r, ref) for r in runs]
            unique = len(_samples.load(kind))
            report["replay"].append({"kind": kind, "payments": unique, "first": first, "again": again, "replays": replays})
            replay_lines.append(
                f"{kind:<8} replay protection (in-process store), {unique} payments each sent twice, then the batch again:"
                f" {first} accepted, then {again}; {replays} refused as replays"
            )
            # Exactly one accept per payment, ever.
            wrong += abs(first - unique) + again + abs(replays - 3 * unique)
    finally:
        progress.close()
    refs = {f"{name}_{runs[0].kind}": ref._asdict() | {"items_per_s": ref.rate} for name, runs, ref in tables if ref is not None}
    report["sdk"]["runs"] = refs
    report["wrong"] = wrong
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name in ("recover", "verify"):
            if name == "recover":
                print(f"x402-verify bench: recover_typed_data_batch, {args.items} items a run, documents as JSON text")
            else:
                print()
                print(f"x402-verify bench: Verifier.verify_batch on base64 x402 headers, {args.items} items a run")
            print(HEADER)
            print("-" * len(HEADER))
            for table, runs, ref in tables:
                if table == name:
                    _print_runs(runs, ref)
            if name == "verify":
                for line in replay_lines:
                    print(line)
        print()
        if sdk is None:
            why = "--sdk-items 0" if args.sdk_items == 0 else "the x402 SDK or eth-account is not importable"
            print(f"sdk column: not measured ({why})")
        else:
            done = [t for t in tables if t[2] is not None]
            for table, runs, ref in done:
                assert ref is not None
                print(f"sdk column, {table} {runs[0].kind}: {ref.name}, first {ref.items} of the same items, 1 thread")
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


def _verify(args: argparse.Namespace) -> int:
    """One payment against one set of requirements, without replay state (a one-shot check
    has no earlier payments to compare with): exit 0 valid, 1 invalid."""
    from x402_verify.verifier import Verifier

    if args.header == "-" and args.requirements == "-":
        raise CliError("usage_error", "only one of HEADER and --requirements can be read from stdin")
    header = _read(args.header).decode("utf-8", "replace").strip() if args.header == "-" else args.header
    requirements = _read(args.requirements)
    try:
        parsed = json.loads(requirements)
    except (ValueError, UnicodeDecodeError) as e:
        raise CliError("invalid_json", f"--requirements {args.requirements} is not JSON: {e}") from e
    if not isinstance(parsed, dict):
        raise CliError("invalid_payment_requirements", f"--requirements {args.requirements} holds a JSON {type(parsed).__name__}, not an object")
    try:
        verifier = Verifier(networks=args.network or None, time_buffer=args.time_buffer, nonce_store=None)
    except ValueError as e:
        raise CliError("usage_error", str(e)) from e
    # The raw text, so the verifier's strict reader (duplicate keys, number forms) judges it.
    response = verifier.verify(header, requirements, now=args.now)
    if args.json:
        print(json.dumps(response.to_dict()))
    elif response.is_valid:
        network = f"eip155:{response.chain_id}" if response.chain_id is not None else "?"
        print(f"valid: {response.scheme} on {network}, payer {response.payer}")
    else:
        payer = f" (payer {response.payer})" if response.payer else ""
        print(f"invalid: {response.invalid_reason}: {response.invalid_message}{payer}")
    return 0 if response.is_valid else 1


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


# --- x402-verify serve ---------------------------------------------------------------------

# (flag, field, type, help): each flag's default comes from X402_VERIFY_<FIELD> when set.
SERVE_OPTIONS: list[tuple[str, str, Callable[[str], Any], str]] = [
    ("--host", "host", str, "address to listen on"),
    ("--port", "port", int, "port to listen on (0: any free port; the address is printed once ready)"),
    ("--workers", "workers", int, "worker processes (the memory store is refused above 1)"),
    ("--network", "networks", str, "accepted networks, CAIP-2 or v1 names (repeatable or comma-separated)"),
    ("--store", "store", str, "reservations and settlements: sqlite://PATH, redis://HOST:PORT/DB, redis+cluster://HOST:PORT, memory://"),
    ("--upstream", "upstream", str, "the x402 facilitator that settles on-chain (its base URL); none: /settle answers no_settler"),
    ("--upstream-token", "upstream_token", str, "bearer token sent to the upstream facilitator"),
    ("--facilitator-address", "facilitator_addresses", str, "addresses an upto witness may name (repeatable; default: the upstream's signers)"),
    ("--auth-token", "auth_token", str, "require 'Authorization: Bearer TOKEN' on /verify, /settle, /release (and enable /release)"),
    ("--max-body-bytes", "max_body_bytes", int, "largest request body read"),
    ("--max-header-bytes", "max_header_bytes", int, "largest request head (all headers)"),
    ("--max-json-depth", "max_json_depth", int, "deepest JSON nesting accepted"),
    ("--verify-timeout", "verify_timeout", float, "seconds a /verify (and reading a body) may take"),
    ("--settle-timeout", "settle_timeout", float, "seconds one upstream settle call may take"),
    ("--max-upstream", "max_upstream", int, "concurrent upstream settle calls per worker"),
    ("--max-batch", "max_batch", int, "most verifications in one verify_batch call"),
    ("--max-inflight", "max_inflight", int, "verify_batch calls (with their store write) running at once per worker"),
    ("--max-connections", "max_connections", int, "requests in progress per worker; more wait (granian backpressure)"),
    ("--log-level", "log_level", str, "server log level (critical, error, warning, info, debug)"),
]
LIST_FIELDS = {"networks", "facilitator_addresses"}
SECRET_FIELDS = {"auth_token", "upstream_token"}


def _env_name(name: str) -> str:
    return "X402_VERIFY_" + name.upper()


def _serve_parser(sub: Any) -> None:
    from x402_verify.facilitator.server import ServeConfig

    defaults = ServeConfig()
    s = sub.add_parser(
        "serve",
        help="run the x402 facilitator service (/verify /settle /supported /health /metrics)",
        description="Run the x402 facilitator service. Every flag can also be set by the environment variable named after it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag, name, kind, text in SERVE_OPTIONS:
        default = getattr(defaults, name)
        shown = "none" if default in (None, []) else (",".join(default) if isinstance(default, list) else default)
        if name in SECRET_FIELDS:
            shown = "none"
        env = _env_name(name)
        raw = os.environ.get(env)
        help_text = f"{text} (default: {shown}; env {env})"
        if name in LIST_FIELDS:
            s.add_argument(flag, dest=name, metavar=flag[2:].upper().replace("-", "_"), action="append", type=str, default=None, help=help_text)
            s.set_defaults(**{f"{name}_env": raw})
        else:
            s.add_argument(flag, dest=name, metavar=flag[2:].upper().replace("-", "_"), type=kind, default=None, help=help_text)
            s.set_defaults(**{f"{name}_env": raw})
    s.set_defaults(func=_serve)


def _serve_config(args: argparse.Namespace) -> Any:
    from x402_verify.facilitator.server import ServeConfig

    values: dict[str, Any] = {}
    for flag, name, kind, _ in SERVE_OPTIONS:
        given = getattr(args, name)
        raw = getattr(args, f"{name}_env")
        if name in LIST_FIELDS:
            items = given if given is not None else ([raw] if raw else None)
            if items is not None:
                values[name] = [part.strip() for item in items for part in item.split(",") if part.strip()]
            continue
        if given is None and raw is not None and raw != "":
            try:
                given = kind(raw)
            except ValueError as e:
                raise CliError("usage_error", f"{_env_name(name)}={raw!r}: not a valid {flag} value") from e
        if given is not None:
            values[name] = given
    try:
        config = ServeConfig(**values)
        if config.workers < 1 or not 0 <= config.port <= 65535:
            raise ValueError("--workers must be >= 1 and --port in 0..65535")
        config.limits()
    except (TypeError, ValueError) as e:
        raise CliError("usage_error", str(e)) from e
    return config


def _serve(args: argparse.Namespace) -> int:
    try:
        from x402_verify.facilitator.server import serve
    except ImportError as e:
        raise CliError("missing_dependency", f"the service needs its extra: pip install 'x402-verify[server]' ({e})") from e
    config = _serve_config(args)
    try:
        return serve(config)
    except (ValueError, ImportError) as e:
        raise CliError("usage_error", str(e)) from e
    except OSError as e:
        raise CliError("io_error", f"cannot listen on {config.host}:{config.port}: {e.strerror or e}") from e


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="x402-verify", description="Verify x402 payment authorizations (EIP-712 typed data).")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser(
        "verify", help="verify one x402 payment header against payment requirements (exit 0 valid, 1 invalid, 2 usage error)"
    )
    v.add_argument("header", help="the PAYMENT-SIGNATURE / X-PAYMENT header value (base64 JSON, or JSON), or - for stdin")
    v.add_argument("--requirements", "-r", required=True, help="a PaymentRequirements JSON file (v1 or v2), or - for stdin")
    v.add_argument("--network", action="append", default=[], help="accept payments only on this network (repeatable; default: any EVM network)")
    v.add_argument("--now", type=int, default=None, help="unix time to judge the time window at (default: the clock)")
    v.add_argument("--time-buffer", type=int, default=6, help="seconds validBefore / deadline must lie ahead of now (default 6)")
    v.add_argument("--json", action="store_true", help="print the verdict as x402 JSON (isValid, invalidReason, ...)")
    v.set_defaults(func=_verify)

    b = sub.add_parser("bench", help="recover and verify the bundled signed samples in batches and time it")
    b.add_argument("--items", type=_positive, default=20000, help="items a run (default 20000)")
    b.add_argument("--threads", type=_positive, default=None, help="threads of the second run (default: every core)")
    b.add_argument("--kind", choices=["permit2", "eip3009", "both"], default="both", help="which samples (default both)")
    b.add_argument(
        "--sdk-items", type=int, default=1000,
        help="items the x402 SDK / eth-account column runs on, when they are importable (default 1000; 0: skip)",
    )
    b.add_argument("--json", action="store_true", help="print the results as one JSON document")
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

    try:
        _serve_parser(sub)
    except ImportError:  # without the [server] extra, serve explains what to install
        sv = sub.add_parser("serve", help="run the x402 facilitator service (needs x402-verify[server])")
        sv.set_defaults(func=_serve)
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
