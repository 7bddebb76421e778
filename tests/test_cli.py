"""The `x402-verify` command: bench verdicts, `hash`, `recover`, and error reporting."""

from __future__ import annotations

import io
import json
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
    p = run("bench", "--items", "2000")
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
        # kind, threads (1 or "all (N)"), items, accepted, rejected, mismatched, ...
        counts = r[3:7] if r[1] == "all" else r[2:6]
        assert counts == ["2000", "2000", "0", "0"], r


def test_bench_one_kind_one_thread() -> None:
    assert cli.main(["bench", "--items", "100", "--kind", "eip3009", "--threads", "1"]) == 0


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
