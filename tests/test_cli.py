"""The `x402-verify` command: `verify`, bench verdicts (tables, JSON, progress bar, the SDK
column), `hash`, `recover`, and error reporting."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

import x402_verify
from x402_verify import _samples, cli


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "x402_verify", *args], input=stdin, capture_output=True, text=True, timeout=300, check=False
    )


def test_bench_reports_no_wrong_verdicts() -> None:
    p = run("bench", "--items", "2000", "--sdk-items", "40")
    assert p.returncode == 0, p.stderr
    assert "wrong verdicts: 0" in p.stdout
    lines = [line for line in p.stdout.splitlines() if line.startswith(("permit2 ", "eip3009 "))]
    rows = [line.split() for line in lines if "replay protection" not in line]
    assert {r[0] for r in rows} == {"permit2", "eip3009"}
    # Two tables (recovery, full x402 verification), two runs each, two kinds.
    assert len(rows) == 8
    replay_lines = [line for line in lines if "replay protection" in line]
    assert len(replay_lines) == 2
    for line in replay_lines:
        assert "64 accepted, then 0; 192 refused as replays" in line, line
    for r in rows:
        # kind, threads (1 or "all (N)"), items, accepted, rejected, mismatched, ..., sdk/s, vs sdk
        counts = r[3:7] if r[1] == "all" else r[2:6]
        assert counts == ["2000", "2000", "0", "0"], r
        # The SDK column: the reference implementation's rate on the same items, and ours over it.
        assert float(r[-2].replace(",", "")) > 0 and r[-1].endswith("x") and float(r[-1][:-1]) > 0, r
    assert p.stdout.count("first 40 of the same items") == 4
    # Piped stdout: no progress bar anywhere.
    assert "[#" not in p.stdout + p.stderr and "\r" not in p.stdout + p.stderr


def test_bench_json() -> None:
    p = run("bench", "--items", "300", "--kind", "permit2", "--threads", "1", "--sdk-items", "20", "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)  # the whole of stdout is one JSON document
    assert report["wrong"] == 0 and report["items"] == 300
    assert [(r["kind"], r["threads"], r["accepted"]) for r in report["recover"]] == [("permit2", "1", 300)]
    assert [(r["kind"], r["threads"], r["accepted"]) for r in report["verify"]] == [("permit2", "1", 300)]
    assert report["replay"] == [{"kind": "permit2", "payments": 64, "first": 64, "again": 0, "replays": 192}]
    for row in report["recover"] + report["verify"]:
        assert row["items_per_s"] > 0 and row["sdk_items_per_s"] > 0
        assert row["vs_sdk"] == pytest.approx(row["items_per_s"] / row["sdk_items_per_s"])
    assert report["sdk"]["available"] is True
    assert {k: (v["items"], v["correct"]) for k, v in report["sdk"]["runs"].items()} == {
        "recover_permit2": (20, 20), "verify_permit2": (20, 20)
    }  # fmt: skip


def test_bench_without_sdk_column() -> None:
    p = run("bench", "--items", "100", "--kind", "eip3009", "--threads", "1", "--sdk-items", "0", "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["sdk"] == {"available": False, "items": 0, "runs": {}}
    assert all(r["sdk_items_per_s"] is None for r in report["verify"])


def test_bench_progress_bar_on_a_terminal() -> None:
    """Under a pseudo-terminal the bar is drawn (carriage returns, percentages up to 100%)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "x402_verify", "bench", "--items", "200", "--kind", "eip3009", "--threads", "1", "--sdk-items", "60"],
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    chunks: list[bytes] = []
    for _ in range(10_000):  # bounded: the bench ends in seconds
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    os.close(leader)
    out = b"".join(chunks).decode("utf-8", "replace")
    assert "\r[" in out and "100%" in out and "eip3009 verify (x402 SDK)" in out, out[-500:]
    assert "wrong verdicts: 0" in out


def test_bench_one_kind_one_thread() -> None:
    assert cli.main(["bench", "--items", "100", "--kind", "eip3009", "--threads", "1", "--sdk-items", "10"]) == 0


def test_bench_rejects_zero_threads() -> None:
    p = run("bench", "--threads", "0")
    assert p.returncode == 2
    assert "--threads" in p.stderr


@pytest.mark.parametrize("kind", _samples.KINDS)
def test_samples_are_signed_by_their_signer(kind: str) -> None:
    samples = _samples.load(kind)
    assert len(samples) == 64
    assert len({s.signer for s in samples}) == 8
    assert len({json.dumps(s.typed_data, sort_keys=True) for s in samples}) == 64
    for s in samples:
        assert x402_verify.recover_typed_data(s.typed_data, s.signature, policy=_samples.policy(kind)) == s.signer


@pytest.fixture
def sample_file(tmp_path: Path) -> tuple[Path, _samples.Sample]:
    sample = _samples.load("permit2")[5]
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(sample.typed_data), encoding="utf-8")
    return path, sample


def test_hash(sample_file: tuple[Path, _samples.Sample], capsys: pytest.CaptureFixture[str]) -> None:
    path, sample = sample_file
    assert cli.main(["hash", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "0x" + x402_verify.hash_typed_data(sample.typed_data).hex()


def test_recover(sample_file: tuple[Path, _samples.Sample], capsys: pytest.CaptureFixture[str]) -> None:
    path, sample = sample_file
    assert cli.main(["recover", str(path), sample.signature]) == 0
    assert capsys.readouterr().out.strip() == sample.signer
    assert cli.main(["recover", str(path), sample.signature, "--policy", "permit2"]) == 0
    assert capsys.readouterr().out.strip() == sample.signer


def test_recover_from_stdin(sample_file: tuple[Path, _samples.Sample]) -> None:
    path, sample = sample_file
    p = run("recover", "-", sample.signature, stdin=path.read_text(encoding="utf-8"))
    assert (p.returncode, p.stdout.strip(), p.stderr) == (0, sample.signer, "")


def test_hash_from_stdin(sample_file: tuple[Path, _samples.Sample], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path, sample = sample_file
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes())))
    assert cli.main(["hash", "-"]) == 0
    assert capsys.readouterr().out.strip() == "0x" + x402_verify.hash_typed_data(sample.typed_data).hex()


def test_tampered_document_recovers_someone_else(sample_file: tuple[Path, _samples.Sample], capsys: pytest.CaptureFixture[str]) -> None:
    path, sample = sample_file
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["message"]["permitted"]["amount"] = str(int(doc["message"]["permitted"]["amount"]) + 1)
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert cli.main(["recover", str(path), sample.signature]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("0x") and out != sample.signer


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ('{"types": {', "invalid_json"),
        ("[]", "invalid_typed_data"),
        ('{"types": {}, "primaryType": "X", "domain": {}, "message": {}}', "undeclared_type"),
    ],
)
def test_malformed_file(tmp_path: Path, content: str, code: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    # A well-formed signature, so the document is what gets refused.
    for args in (["hash", str(path)], ["recover", str(path), _samples.load("permit2")[0].signature]):
        p = run(*args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert p.stdout == ""
        assert p.stderr.startswith(f"error: {code}: "), p.stderr


def test_bad_path_reported_at_its_location(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _samples.load("permit2")[0].typed_data
    doc["message"]["nonce"] = "01"  # a leading zero (0x hex is an integer form since issue 9)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert cli.main(["hash", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: non_canonical_number: ") and "message.nonce" in err


def test_bad_signature(sample_file: tuple[Path, _samples.Sample]) -> None:
    path, _ = sample_file
    p = run("recover", str(path), "0x1234")
    assert p.returncode == 2
    assert p.stderr.startswith("error: invalid_signature_length: ")
    p = run("recover", str(path), "not-hex")
    assert p.returncode == 2
    assert p.stderr.startswith("error: invalid_signature_encoding: ")


def test_missing_file(tmp_path: Path) -> None:
    p = run("hash", str(tmp_path / "nope.json"))
    assert p.returncode == 2
    assert p.stderr.startswith("error: io_error: ")


def test_usage() -> None:
    assert run("--help").returncode == 0
    assert run().returncode == 2
    assert run("frobnicate").returncode == 2


# --- x402-verify verify -------------------------------------------------------------------------


@pytest.fixture
def payment(tmp_path: Path) -> tuple[str, Path, dict[str, object], str]:
    """A bundled Permit2 payment: (header, requirements file, requirements, payer)."""
    header, req, payer = _samples.x402_items("permit2")[3]
    path = tmp_path / "req.json"
    path.write_text(json.dumps(req), encoding="utf-8")
    return header, path, req, payer


NOW = str(_samples.VALID_AT)


def test_verify_valid(payment: tuple[str, Path, dict[str, object], str]) -> None:
    header, path, _, payer = payment
    p = run("verify", header, "--requirements", str(path), "--now", NOW)
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout == f"valid: exact_permit2 on eip155:8453, payer {payer}\n"
    p = run("verify", header, "--requirements", str(path), "--now", NOW, "--json", "--network", "base")
    assert (p.returncode, json.loads(p.stdout)) == (0, {"isValid": True, "payer": payer})


def test_verify_invalid_names_the_check_and_the_field(payment: tuple[str, Path, dict[str, object], str]) -> None:
    header, path, req, payer = payment
    path.write_text(json.dumps({**req, "payTo": "0x" + "11" * 20}), encoding="utf-8")
    p = run("verify", header, "--requirements", str(path), "--now", NOW)
    assert p.returncode == 1, p.stderr
    assert p.stdout.startswith("invalid: invalid_permit2_recipient_mismatch: witness.to ") and "payTo" in p.stdout, p.stdout
    p = run("verify", header, "-r", str(path), "--now", NOW, "--json")
    verdict = json.loads(p.stdout)
    assert (p.returncode, verdict["isValid"], verdict["invalidReason"], verdict["payer"]) == (1, False, "invalid_permit2_recipient_mismatch", payer)


def test_verify_expired_on_the_clock(payment: tuple[str, Path, dict[str, object], str]) -> None:
    header, path, _, _ = payment  # the bundled samples' window closed long before the clock
    p = run("verify", header, "--requirements", str(path))
    assert p.returncode == 1 and p.stdout.startswith("invalid: permit2_deadline_expired: deadline "), p.stdout


def test_verify_network_outside_the_allowed(payment: tuple[str, Path, dict[str, object], str]) -> None:
    header, path, _, _ = payment
    p = run("verify", header, "--requirements", str(path), "--now", NOW, "--network", "eip155:1")
    assert p.returncode == 1 and p.stdout.startswith("invalid: invalid_network: "), p.stdout


def test_verify_reads_stdin(payment: tuple[str, Path, dict[str, object], str]) -> None:
    header, path, req, _ = payment
    p = run("verify", header, "--requirements", "-", "--now", NOW, stdin=json.dumps(req))
    assert p.returncode == 0, p.stdout + p.stderr
    p = run("verify", "-", "--requirements", str(path), "--now", NOW, stdin=header + "\n")
    assert p.returncode == 0, p.stdout + p.stderr


def test_verify_bad_payments_are_verdicts(payment: tuple[str, Path, dict[str, object], str]) -> None:
    _, path, _, _ = payment
    for header, code in (("not base64!", "invalid_base64"), ("e30=", "invalid_x402_version"), ("", "invalid_json")):
        p = run("verify", header, "--requirements", str(path), "--now", NOW, "--json")
        assert p.returncode == 1, (header, p.stdout, p.stderr)
        assert json.loads(p.stdout)["invalidReason"] == code, (header, p.stdout)


@pytest.mark.parametrize(
    ("args", "stdin", "code"),
    [
        (["verify", "-", "--requirements", "-"], "", "usage_error"),
        (["verify", "e30=", "--requirements", "/nonexistent/req.json"], None, "io_error"),
        (["verify", "e30=", "--requirements", "-"], "{", "invalid_json"),
        (["verify", "e30=", "--requirements", "-"], "[]", "invalid_payment_requirements"),
        (["verify", "e30=", "--requirements", "-", "--network", "nowhere"], "{}", "usage_error"),
    ],
)
def test_verify_usage_errors(args: list[str], stdin: str | None, code: str) -> None:
    p = run(*args, stdin=stdin)
    assert (p.returncode, p.stdout) == (2, ""), (p.stdout, p.stderr)
    assert p.stderr.startswith(f"error: {code}: "), p.stderr


def test_verify_argument_errors() -> None:
    assert run("verify", "e30=").returncode == 2  # --requirements missing
    assert run("verify", "--requirements", "-").returncode == 2  # HEADER missing
    assert run("verify", "e30=", "-r", "-", "--now", "soon").returncode == 2


# --- x402-verify serve (the service itself: tests/test_facilitator_*.py) -----------------------


def test_serve_help_lists_every_flag_with_its_default_and_variable() -> None:
    p = run("serve", "--help")
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())
    for flag, name, _, _ in cli.SERVE_OPTIONS:
        assert flag in text and f"env {cli._env_name(name)}" in text, flag
    for default in ("default: 127.0.0.1", "default: 8402", "default: eip155:8453,eip155:84532", "default: sqlite://x402-verify.sqlite3"):
        assert default in text, default


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--workers", "0"], {}, "--workers"),
        (["--port", "70000"], {}, "--port"),
        ([], {"X402_VERIFY_PORT": "eighty"}, "X402_VERIFY_PORT"),
        (["--store", "postgres://db"], {}, "scheme"),
        (["--network", "atlantis"], {}, "unknown network"),
        (["--max-body-bytes", "0"], {}, "max_body_bytes"),
    ],
)
def test_serve_usage_errors(tmp_path: Path, args: list[str], env: dict[str, str], needle: str) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "x402_verify", "serve", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )  # fmt: skip
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.startswith("error: usage_error: ") and needle in p.stderr, p.stderr
    assert p.stdout == ""
