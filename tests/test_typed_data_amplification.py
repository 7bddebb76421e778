"""Typed data whose cost is out of proportion to its size (issue 10 item 5).

The issue's document: a primary struct with 250 fields of 250 small struct types, chained
through dynamic arrays, the last referring to one struct with a 120 KB name (261 KB, under the
256 KiB default). Every struct's encodeType repeats everything it reaches, so hashing it built
and hashed about 60 MB of type text and left each of those texts in the typehash cache (bounded
in entries, not bytes): 0.25-0.66 s of CPU and ~0.9 GB pinned for good after ~17 such documents.
A dict of that shape was not bounded by ``max_bytes`` at all.

The builders here are also used by benches/test_bench_typed_data.py.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

import pytest

import x402_verify as xv
from x402_verify import TypedDataError

LONG_NAME = 120_000
LINKS = 250


def chain_document(links: int = LINKS, name_len: int = LONG_NAME, tag: str = "") -> dict[str, Any]:
    """The issue's shape: ``Root`` has one field of each of ``links`` small structs ``S<i>``;
    ``S<i>`` holds ``S<i+1>[]`` and the last one the struct with the ``name_len``-byte name, so
    each ``S<i>``'s encodeType repeats the long name. ``tag`` makes the document distinct."""
    big = ("B" + tag + "x" * name_len)[:name_len]
    types: dict[str, Any] = {"Root": [{"name": f"f{i}", "type": f"S{i}"} for i in range(links)]}
    for i in range(links):
        types[f"S{i}"] = [{"name": "n", "type": f"S{i + 1}[]" if i + 1 < links else big}]
    types[big] = [{"name": "v", "type": "bool"}]
    message = {f"f{i}": {"n": []} for i in range(links - 1)}
    message[f"f{links - 1}"] = {"n": {"v": True}}
    return {"types": types, "primaryType": "Root", "domain": {"name": "amplify"}, "message": message}


def long_name_document(name_len: int, tag: str) -> dict[str, Any]:
    """One struct with a long name and nothing repeating it: accepted, but its type text is
    longer than anything the typehash cache should keep."""
    name = ("L" + tag + "x" * name_len)[:name_len]
    return {
        "types": {name: [{"name": "v", "type": "uint256"}]},
        "primaryType": name,
        "domain": {"name": "long"},
        "message": {"v": 1},
    }


def compact(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def test_the_issue_document_is_refused_before_any_hashing() -> None:
    doc = chain_document()
    text = compact(doc)
    assert len(text) <= xv.DEFAULT_MAX_TYPED_DATA_BYTES  # it passes the size bound
    # Before: a digest, after ~60 MB of encodeType text. Now: refused from the type definitions.
    for form in (doc, text, text.encode()):
        with pytest.raises(TypedDataError) as info:
            xv.hash_typed_data(form, max_bytes=1 << 20)
        assert (info.value.code, info.value.path) == ("limit_exceeded", "types"), info.value
    (item,) = xv.recover_typed_data_batch([(text, b"\x00" * 65)], max_bytes=1 << 20)
    assert isinstance(item, xv.SignatureError)  # the signature is refused first, cheaply
    (item,) = xv.recover_typed_data_batch([(text, "0x" + "11" * 32 + "22" * 32 + "1b")], max_bytes=1 << 20)
    assert isinstance(item, TypedDataError) and item.code == "limit_exceeded"


@pytest.mark.parametrize(("links", "name_len"), [(2, LONG_NAME), (40, 40), (10, 2000)])
def test_chains_within_the_allowance_hash(links: int, name_len: int) -> None:
    # The allowance is 64 KiB plus 4x the definitions: short chains over a long name, or long
    # chains over short names, hash as before (and as dict, str and bytes alike).
    doc = chain_document(links, name_len)
    want = xv.hash_typed_data(doc, max_bytes=1 << 20)
    assert xv.hash_typed_data(compact(doc), max_bytes=1 << 20) == want
    assert xv.hash_typed_data(compact(doc).encode(), max_bytes=1 << 20) == want


def test_the_allowance_grows_with_the_definitions() -> None:
    # With a 120 KB name the definitions are ~240 KB, so the allowance is ~1 MB of type text:
    # 2 links need ~0.84 MB, 3 links ~1.08 MB. With 40-byte names 40 links need ~13 KB, within
    # the fixed 64 KiB, and 250 links ~0.5 MB, past 64 KiB + 4 x ~6 KB.
    xv.hash_typed_data(chain_document(2, LONG_NAME), max_bytes=1 << 20)
    xv.hash_typed_data(chain_document(40, 40), max_bytes=1 << 20)
    for links, name_len in [(3, LONG_NAME), (250, 40)]:
        with pytest.raises(TypedDataError, match="encodeType") as info:
            xv.hash_typed_data(chain_document(links, name_len), max_bytes=1 << 20)
        assert info.value.code == "limit_exceeded"


def test_dicts_are_bounded_by_max_bytes() -> None:
    # Before: a dict ignored max_bytes (a 4 MB dict of the issue's shape took 12.5 s, 1.85 GB).
    doc = chain_document(LINKS, 4_000_000)
    with pytest.raises(TypedDataError) as info:
        xv.hash_typed_data(doc)
    assert (info.value.code, info.value.path) == ("payload_too_large", None)
    (item,) = xv.recover_typed_data_batch([(doc, "0x" + "11" * 32 + "22" * 32 + "1b")])
    assert isinstance(item, TypedDataError) and item.code == "payload_too_large"


@pytest.mark.parametrize(
    "doc",
    [
        chain_document(3, 500),
        long_name_document(1000, "a"),
        {"types": {"T": [{"name": "a", "type": "int64[]"}, {"name": "b", "type": "bool"}, {"name": "c", "type": "bytes"},
                         {"name": "d", "type": "string"}]},
         "primaryType": "T", "domain": {"name": "n", "chainId": 1},
         "message": {"a": [-(2**63), 2**63 - 1, 0, -1, 7], "b": False, "c": "0xff", "d": "ascii only"}},
    ],
    ids=["chain", "long-name", "numbers"],
)  # fmt: skip
def test_a_dict_counts_as_its_compact_json(doc: dict[str, Any]) -> None:
    # For ASCII text without escapes and ints within 64 bits the count is exact: the bound
    # takes a dict exactly when it would take its compact JSON text.
    n = len(compact(doc))
    want = xv.hash_typed_data(doc, max_bytes=n)
    assert xv.hash_typed_data(compact(doc), max_bytes=n) == want
    for form in (doc, compact(doc)):
        with pytest.raises(TypedDataError) as info:
            xv.hash_typed_data(form, max_bytes=n - 1)
        assert info.value.code == "payload_too_large"


def test_wide_objects_are_read_like_narrow_ones() -> None:
    # Objects of more than 16 keys are indexed once (hash_struct was O(fields x keys)); the
    # answers, errors and their paths included, are those of the plain scan.
    fields = [f"k{i}" for i in range(200)]
    doc: dict[str, Any] = {
        "types": {"W": [{"name": f, "type": "uint8"} for f in fields]},
        "primaryType": "W",
        "domain": {"name": "wide"},
        "message": {f: i % 256 for i, f in enumerate(fields)},
    }
    reordered = dict(doc, message=dict(reversed(list(doc["message"].items()))))
    assert xv.hash_typed_data(doc) == xv.hash_typed_data(reordered) == xv.hash_typed_data(compact(reordered))
    cases = [
        ({k: v for k, v in doc["message"].items() if k != "k150"}, "missing_field", "message.k150"),
        (dict(doc["message"], zz=1), "unknown_field", "message.zz"),
        (dict(doc["message"], k3=300, zz=1), "number_out_of_range", "message.k3"),
        ({**{f"x{i}": 0 for i in range(5000)}, **doc["message"]}, "unknown_field", "message.x0"),
    ]
    for message, code, path in cases:
        for form in (dict(doc, message=message), compact(dict(doc, message=message))):
            with pytest.raises(TypedDataError) as info:
                xv.hash_typed_data(form, max_bytes=1 << 20)
            assert (info.value.code, info.value.path) == (code, path)


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@pytest.mark.skipif(sys.platform == "win32", reason="resource.getrusage")
def test_rss_stays_bounded_after_1000_distinct_documents() -> None:
    # Before: each document of the issue's shape left ~60 MB of type text in the typehash
    # cache (until it held 4096 entries, ~0.9 GB), and each long-name document its 200 KB
    # text (200 MB for 1000). The bound is generous: what matters is that the growth does not scale with the
    # number of documents. Peak RSS never goes down, so it also catches transient spikes.
    for i in range(3):  # warm-up: allocator arenas, the cache's first entries
        xv.hash_typed_data(compact(long_name_document(200_000, f"w{i}")), max_bytes=1 << 20)
    before = peak_rss_bytes()
    limit = 150 << 20
    for i in range(1000):
        text = compact(chain_document(tag=f"{i}"))
        with pytest.raises(TypedDataError):
            xv.hash_typed_data(text, max_bytes=1 << 20)
        xv.hash_typed_data(compact(long_name_document(200_000, f"{i}")), max_bytes=1 << 20)
        if i % 50 == 0:
            assert peak_rss_bytes() - before < limit, f"peak RSS grew by {(peak_rss_bytes() - before) >> 20} MB after {i + 1} documents"
    assert peak_rss_bytes() - before < limit
