"""Held-out EIP-712 / Permit2 / EIP-3009 vectors published by other projects.

Sources: ``tests/vectors/eip712/third_party_fixtures.json`` (EIP-712 spec example, MetaMask-signed
Permit2 messages, permit2-sdk digests, self-generated x402 regression vectors; sources and
licences in tests/vectors/README.md) and the research notes' ``x402-permit2.md`` sections 7.1-7.5,
written out below (x402 spec EIP-3009 example, Permit2 SDK digests, EIP-2098 compact
signatures, locally generated x402 vectors).

Only the signing digest is exposed by the library. Domain separators are checked two ways:
the fixture's ``keccak(0x1901 || domain_separator || struct_hash) == digest`` (so a digest match
implies both halves match), and a probe document whose struct hash we compute by hand.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

import x402_verify as xv
from payments import SECP256K1_N, spec_eip3009_doc, spec_permit2_doc
from x402_verify import SignatureError, SignaturePolicy

ANVIL0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
ANVIL0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
ZERO_ADDRESS = "0x" + "00" * 20

EIP712_DOMAIN_FIELDS = {
    "name": "string",
    "version": "string",
    "chainId": "uint256",
    "verifyingContract": "address",
    "salt": "bytes32",
}


# --- helpers ---------------------------------------------------------------------------------


def h(hex_str: str) -> bytes:
    return bytes.fromhex(hex_str.removeprefix("0x"))


def digest_from_parts(domain_separator: bytes, struct_hash: bytes) -> bytes:
    return keccak(b"\x19\x01" + domain_separator + struct_hash)


def word(value: int | str | bytes) -> bytes:
    """abi.encode of one static value: an int, an address (hex str) or 32 raw bytes."""
    if isinstance(value, bytes):
        assert len(value) == 32
        return value
    if isinstance(value, str):
        return h(value).rjust(32, b"\x00")
    return value.to_bytes(32, "big")


def declared_domain(domain: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": k, "type": t} for k, t in EIP712_DOMAIN_FIELDS.items() if k in domain]


def probe_digest(domain: dict[str, Any], *, declare: bool = True) -> bytes:
    """The library's digest of ``Probe(uint256 x)`` with x = 0 under ``domain``."""
    types: dict[str, Any] = {"Probe": [{"name": "x", "type": "uint256"}]}
    if declare:
        types["EIP712Domain"] = declared_domain(domain)
    return xv.hash_typed_data({"types": types, "primaryType": "Probe", "domain": domain, "message": {"x": 0}})


PROBE_STRUCT_HASH = keccak(keccak(b"Probe(uint256 x)") + word(0))


def assert_domain_separator(domain: dict[str, Any], expected_hex: str) -> None:
    """Checks the library's domain separator for ``domain`` through the probe document."""
    expected = digest_from_parts(h(expected_hex), PROBE_STRUCT_HASH)
    assert probe_digest(domain, declare=True) == expected
    assert probe_digest(domain, declare=False) == expected


def all_input_forms(doc: dict[str, Any]) -> list[Any]:
    text = json.dumps(doc)
    return [doc, text, text.encode(), json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")]


def assert_digest(doc: dict[str, Any], expected_hex: str) -> None:
    for form in all_input_forms(doc):
        assert xv.hash_typed_data(form).hex() == expected_hex.removeprefix("0x").lower()


def code_of(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(SignatureError) as info:
        fn(*args, **kwargs)
    return info.value.code


def sig65(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def to_compact(sig: bytes) -> bytes:
    """EIP-2098 ``r || vs`` from a 65-byte low-s ``r || s || v`` (v 27/28)."""
    assert len(sig) == 65 and sig[64] in (27, 28)
    s = int.from_bytes(sig[32:64], "big")
    assert s <= SECP256K1_N // 2
    vs = s | ((sig[64] - 27) << 255)
    return sig[:32] + vs.to_bytes(32, "big")


POLICIES_ACCEPTING_65 = [
    SignaturePolicy(),
    SignaturePolicy.eip3009(),
    SignaturePolicy.permit2(),
    SignaturePolicy(require_low_s=False),
    SignaturePolicy(allow_compact=True, allow_v01=True),
]


def assert_recovers(doc: dict[str, Any], signature: str | bytes, signer: str) -> None:
    """``signature`` (low-s, v 27/28) recovers ``signer`` under every policy and input form."""
    assert signer == to_checksum_address(signer)
    for policy in POLICIES_ACCEPTING_65:
        for form in all_input_forms(doc):
            assert xv.recover_typed_data(form, signature, policy=policy) == signer
    digest = xv.hash_typed_data(doc)
    assert xv.recover_hash(digest, signature) == signer
    assert xv.recover_hash("0x" + digest.hex(), signature) == signer
    raw = h(signature) if isinstance(signature, str) else signature
    assert xv.recover_typed_data(doc, raw) == signer
    assert xv.recover_typed_data(doc, bytearray(raw)) == signer


# --- fixture file ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixtures(vectors_dir: Path) -> dict[str, Any]:
    path = vectors_dir / "eip712" / "third_party_fixtures.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


PERMIT2_METAMASK_CASES = [
    "PermitTransferFrom",
    "PermitBatchTransferFrom",
    "PermitWitnessTransferFrom",
    "PermitBatchWitnessTransferFrom",
]
PERMIT2_SDK_DIGEST_CASES = PERMIT2_METAMASK_CASES
SELF_GENERATED_CASES = ["eip3009_base_sepolia", "x402_permit2_witness_base_sepolia"]


def test_every_fixture_is_covered(fixtures: dict[str, Any]) -> None:
    """The parametrized lists below cover the whole file: a new fixture cannot go unchecked."""
    assert set(fixtures) == {
        "_about",
        "eip712_spec_mail_example",
        "permit2_metamask_signed",
        "permit2_sdk_zero_value_digests",
        "self_generated_not_independent",
    }
    assert [c["primaryType"] for c in fixtures["permit2_metamask_signed"]["cases"]] == PERMIT2_METAMASK_CASES
    assert sorted(fixtures["permit2_sdk_zero_value_digests"]["digests"]) == sorted(PERMIT2_SDK_DIGEST_CASES)
    assert sorted(fixtures["self_generated_not_independent"]["cases"]) == sorted(SELF_GENERATED_CASES)


def test_fixture_digests_are_self_consistent(fixtures: dict[str, Any]) -> None:
    """digest == keccak(0x1901 || ds || structHash) inside the file, so matching the digest checks both."""
    cases = [fixtures["eip712_spec_mail_example"]["expected"]]
    cases += fixtures["permit2_metamask_signed"]["cases"]
    cases += fixtures["self_generated_not_independent"]["cases"].values()
    assert len(cases) == 7
    for case in cases:
        assert digest_from_parts(h(case["domain_separator"]), h(case["struct_hash"])) == h(case["digest"])


# --- EIP-712 spec "Mail" example (fixtures + x402-permit2.md 7.1) --------------------------------


def test_mail_example(fixtures: dict[str, Any]) -> None:
    mail = fixtures["eip712_spec_mail_example"]
    exp = mail["expected"]
    doc = mail["typed_data"]

    assert keccak(text=exp["encodeType_Mail"]) == h(exp["typeHash_Mail"])
    assert_digest(doc, exp["digest"])
    assert_domain_separator(doc["domain"], exp["domain_separator"])
    assert exp["domain_separator"] == "0xf2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"

    # The struct hash, recomputed by hand from the 7.1 table (hashStruct(Person Cow) etc.).
    def person(p: dict[str, str]) -> bytes:
        return keccak(keccak(text="Person(string name,address wallet)") + keccak(text=p["name"]) + word(p["wallet"]))

    msg = doc["message"]
    assert person(msg["from"]).hex() == "fc71e5fa27ff56c350aa531bc129ebdf613b772b6604664f5d8dbe21b85eb0c8"
    struct_hash = keccak(h(exp["typeHash_Mail"]) + person(msg["from"]) + person(msg["to"]) + keccak(text=msg["contents"]))
    assert struct_hash == h(exp["struct_hash"])

    sig = sig65(int(exp["r"], 16), int(exp["s"], 16), exp["v"])
    assert_recovers(doc, sig, exp["signer"])
    assert_recovers(doc, "0x" + sig.hex(), exp["signer"])

    # The published key is keccak256("cow"); its address is the signer (x402-permit2.md 7.1).
    from eth_account import Account

    key = keccak(text="cow")
    assert key.hex() == "c85ef7d79691fe79573b1a7064c19c1a9819ebdbd1faaab1a8ec92344438aaf4"
    assert Account.from_key(key).address == exp["signer"]


def test_mail_example_domain_variants_change_the_digest(fixtures: dict[str, Any]) -> None:
    doc = fixtures["eip712_spec_mail_example"]["typed_data"]
    base = xv.hash_typed_data(doc)
    for key, value in [("name", "Ether Mail "), ("version", "2"), ("chainId", 2),
                       ("verifyingContract", "0xcccccccccccccccccccccccccccccccccccccccd")]:
        changed = copy.deepcopy(doc)
        changed["domain"][key] = value
        assert xv.hash_typed_data(changed) != base, key


# --- Permit2 MetaMask signatures (Uniswap/permit2 TypehashGeneration.t.sol) -----------------------


def metamask_case(fixtures: dict[str, Any], primary: str) -> dict[str, Any]:
    cases: list[dict[str, Any]] = fixtures["permit2_metamask_signed"]["cases"]
    (case,) = [c for c in cases if c["primaryType"] == primary]
    return case


@pytest.mark.parametrize("primary", PERMIT2_METAMASK_CASES)
def test_permit2_metamask_signature(fixtures: dict[str, Any], primary: str) -> None:
    case = metamask_case(fixtures, primary)
    signer = fixtures["permit2_metamask_signed"]["signer"]
    doc = case["typed_data"]
    assert doc["primaryType"] == primary

    assert_digest(doc, case["digest"])
    assert_domain_separator(doc["domain"], case["domain_separator"])
    assert_recovers(doc, case["signature"], signer)
    assert xv.recover_typed_data(doc, to_compact(h(case["signature"])), policy=SignaturePolicy.permit2()) == signer

    # The same document with the EIP712Domain type left out is inferred identically.
    inferred = copy.deepcopy(doc)
    del inferred["types"]["EIP712Domain"]
    assert_digest(inferred, case["digest"])

    # The order in which `types` lists the structs does not matter: encodeType sorts them.
    reordered = copy.deepcopy(doc)
    reordered["types"] = dict(reversed(list(doc["types"].items())))
    assert list(reordered["types"]) != list(doc["types"])
    assert_digest(reordered, case["digest"])


def permit2_witness_struct_hash(type_string: str, msg: dict[str, Any], *, batch: bool) -> bytes:
    """Permit2's own hashing (PermitHash.sol): keccak(stub || witnessTypeString) as the typehash."""
    tp_typehash = keccak(text="TokenPermissions(address token,uint256 amount)")

    def tp(p: dict[str, Any]) -> bytes:
        return keccak(tp_typehash + word(p["token"]) + word(int(p["amount"])))

    witness = msg["witness"]
    witness_hash = keccak(
        keccak(text="MockWitness(address person,uint256 amount)") + word(witness["person"]) + word(int(witness["amount"]))
    )
    if batch:
        stub = "PermitBatchWitnessTransferFrom(TokenPermissions[] permitted,address spender,uint256 nonce,uint256 deadline,"
        permitted = keccak(b"".join(tp(p) for p in msg["permitted"]))
    else:
        stub = "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,"
        permitted = tp(msg["permitted"])
    typehash = keccak(text=stub + type_string)
    return keccak(
        typehash + permitted + word(msg["spender"]) + word(int(msg["nonce"])) + word(int(msg["deadline"])) + witness_hash
    )


@pytest.mark.parametrize("primary", ["PermitWitnessTransferFrom", "PermitBatchWitnessTransferFrom"])
def test_permit2_witness_type_string_order(fixtures: dict[str, Any], primary: str) -> None:
    """The canonical (sorted) witness type string gives the library's digest and the signer; the
    wrong order (TokenPermissions before MockWitness) gives neither."""
    section = fixtures["permit2_metamask_signed"]
    case = metamask_case(fixtures, primary)
    doc, signer = case["typed_data"], section["signer"]
    ds = h(case["domain_separator"])
    batch = "Batch" in primary

    right = digest_from_parts(ds, permit2_witness_struct_hash(section["witness_type_string_correct"], doc["message"], batch=batch))
    wrong = digest_from_parts(ds, permit2_witness_struct_hash(section["witness_type_string_wrong_order"], doc["message"], batch=batch))

    ours = xv.hash_typed_data(doc)
    assert ours == right == h(case["digest"])
    assert wrong != ours
    assert xv.recover_hash(right, case["signature"]) == signer
    assert xv.recover_hash(wrong, case["signature"], policy=SignaturePolicy(require_low_s=False)) != signer

    # Declaring the structs in the wrong order in `types` still yields the canonical digest.
    types = doc["types"]
    wrong_order_types = {k: types[k] for k in ["EIP712Domain", primary, "TokenPermissions", "MockWitness"]}
    assert xv.hash_typed_data({**doc, "types": wrong_order_types}) == ours


# --- permit2-sdk zero-value digests (fixtures + x402-permit2.md 7.2) ----------------------------

TOKEN_PERMISSIONS = [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}]
PERMIT_DETAILS = [
    {"name": "token", "type": "address"},
    {"name": "amount", "type": "uint160"},
    {"name": "expiration", "type": "uint48"},
    {"name": "nonce", "type": "uint48"},
]


def permit2_sdk_zero_doc(primary: str, domain: dict[str, Any]) -> dict[str, Any]:
    zero_tp = {"token": ZERO_ADDRESS, "amount": 0}
    zero_details = {"token": ZERO_ADDRESS, "amount": 0, "expiration": 0, "nonce": 0}
    common = [{"name": "spender", "type": "address"}, {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"}]
    witness = [{"name": "witness", "type": "MockWitness"}]
    types: dict[str, Any]
    if primary == "PermitTransferFrom":
        types = {primary: [{"name": "permitted", "type": "TokenPermissions"}, *common], "TokenPermissions": TOKEN_PERMISSIONS}
        msg: dict[str, Any] = {"permitted": zero_tp, "spender": ZERO_ADDRESS, "nonce": 0, "deadline": 0}
    elif primary == "PermitBatchTransferFrom":
        types = {primary: [{"name": "permitted", "type": "TokenPermissions[]"}, *common], "TokenPermissions": TOKEN_PERMISSIONS}
        msg = {"permitted": [zero_tp], "spender": ZERO_ADDRESS, "nonce": 0, "deadline": 0}
    elif primary == "PermitWitnessTransferFrom":
        types = {
            primary: [{"name": "permitted", "type": "TokenPermissions"}, *common, *witness],
            "TokenPermissions": TOKEN_PERMISSIONS,
            "MockWitness": [{"name": "mock", "type": "uint256"}],
        }
        msg = {"permitted": zero_tp, "spender": ZERO_ADDRESS, "nonce": 0, "deadline": 0, "witness": {"mock": 0}}
    elif primary == "PermitBatchWitnessTransferFrom":
        types = {
            primary: [{"name": "permitted", "type": "TokenPermissions[]"}, *common, *witness],
            "TokenPermissions": TOKEN_PERMISSIONS,
            "MockWitness": [{"name": "mock", "type": "uint256"}],
        }
        msg = {"permitted": [zero_tp], "spender": ZERO_ADDRESS, "nonce": 0, "deadline": 0, "witness": {"mock": "0"}}
    elif primary == "PermitSingle":
        types = {
            primary: [{"name": "details", "type": "PermitDetails"}, {"name": "spender", "type": "address"},
                      {"name": "sigDeadline", "type": "uint256"}],
            "PermitDetails": PERMIT_DETAILS,
        }
        msg = {"details": zero_details, "spender": ZERO_ADDRESS, "sigDeadline": 0}
    elif primary == "PermitBatch":
        types = {
            primary: [{"name": "details", "type": "PermitDetails[]"}, {"name": "spender", "type": "address"},
                      {"name": "sigDeadline", "type": "uint256"}],
            "PermitDetails": PERMIT_DETAILS,
        }
        msg = {"details": [zero_details], "spender": ZERO_ADDRESS, "sigDeadline": "0"}
    else:  # pragma: no cover
        raise AssertionError(primary)
    return {"types": {"EIP712Domain": declared_domain(domain), **types}, "primaryType": primary, "domain": domain, "message": msg}


# x402-permit2.md 7.2 (the first four are also in the fixture file).
PERMIT2_SDK_DIGESTS_7_2 = {
    "PermitTransferFrom": "0xb9bf9813799d7f0de28d2142b0bc80ec289d4a6a5b9f41834149df4188804dc5",
    "PermitWitnessTransferFrom": "0x4236a4a7b3e8e65dbb4cc758ef10dc4887e2959853fb615140d0f5e0ae7be7c9",
    "PermitBatchTransferFrom": "0x5ba40c5ba725fec181e4a862c717adf91682b012ad01ea99a978189106d66923",
    "PermitBatchWitnessTransferFrom": "0xb45d605b0a4d4f16930a4f48294d94c78f34411278fd3133626cc190273e3ccf",
    "PermitSingle": "0xd47437bffdbc4d123a2165feb6ca646b8700c038622ce304f84e9048bc744f36",
    "PermitBatch": "0x49642ada5f77eb9458f8265eb01fed2684c2f25d50534fea3efdf2cf395deb2f",
}


@pytest.mark.parametrize("primary", list(PERMIT2_SDK_DIGESTS_7_2))
def test_permit2_sdk_zero_value_digest(fixtures: dict[str, Any], primary: str) -> None:
    section = fixtures["permit2_sdk_zero_value_digests"]
    expected = PERMIT2_SDK_DIGESTS_7_2[primary]
    if primary in section["digests"]:
        assert section["digests"][primary] == expected
    doc = permit2_sdk_zero_doc(primary, section["domain"])
    assert_digest(doc, expected)
    inferred = copy.deepcopy(doc)
    del inferred["types"]["EIP712Domain"]
    assert_digest(inferred, expected)


# --- self-generated x402 vectors (regression data) -----------------------------------------------


@pytest.mark.parametrize("name", SELF_GENERATED_CASES)
def test_self_generated_x402_vector(fixtures: dict[str, Any], name: str) -> None:
    case = fixtures["self_generated_not_independent"]["cases"][name]
    doc = case["typed_data"]
    assert_digest(doc, case["digest"])
    assert_domain_separator(doc["domain"], case["domain_separator"])
    assert_recovers(doc, case["signature"], case["signer"])


def test_fixture_signatures_in_one_batch(fixtures: dict[str, Any]) -> None:
    items: list[tuple[Any, Any]] = []
    expected: list[str] = []
    for case in fixtures["permit2_metamask_signed"]["cases"]:
        items.append((case["typed_data"], case["signature"]))
        expected.append(fixtures["permit2_metamask_signed"]["signer"])
    for case in fixtures["self_generated_not_independent"]["cases"].values():
        items.append((json.dumps(case["typed_data"]), case["signature"]))
        expected.append(case["signer"])
    mail = fixtures["eip712_spec_mail_example"]
    exp = mail["expected"]
    items.append((mail["typed_data"], sig65(int(exp["r"], 16), int(exp["s"], 16), exp["v"])))
    expected.append(exp["signer"])
    for threads in (None, 1, 2):
        assert xv.recover_typed_data_batch(items, threads=threads) == expected


# --- known domain separators (x402-permit2.md 2.1 and 4.1) ------------------------------------


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ({"name": "Permit2", "chainId": 1, "verifyingContract": PERMIT2},
         "0x866a5aba21966af95d6c7ab78eb2b2fc913915c28be3b9aa07cc04ff903e3f28"),
        ({"name": "Permit2", "chainId": 8453, "verifyingContract": PERMIT2},
         "0x3b6f35e4fce979ef8eac3bcdc8c3fc38fe7911bb0c69c8fe72bf1fd1a17e6f07"),
        ({"name": "Permit2", "chainId": 84532, "verifyingContract": PERMIT2},
         "0x010f27a92fb9a32622f44f001dc4d15706a85b33499cfc2ce9033113ab26592c"),
        ({"name": "USD Coin", "version": "2", "chainId": 8453,
          "verifyingContract": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"},
         "0x02fa7265e7c5d81118673727957699e4d68f74cd74b7db77da710fe8a2c7834f"),
        ({"name": "USDC", "version": "2", "chainId": 84532,
          "verifyingContract": "0x036CbD53842c5426634e7929541eC2318f3dCF7e"},
         "0x71f17a3b2ff373b803d70a5a07c046c1a2bc8e89c09ef722fcb047abe94c9818"),
    ],
    ids=["permit2-1", "permit2-8453", "permit2-84532", "usdc-base", "usdc-base-sepolia"],
)
def test_known_domain_separator(domain: dict[str, Any], expected: str) -> None:
    assert_domain_separator(domain, expected)


# --- x402 spec EIP-3009 example (x402-permit2.md 7.3) ------------------------------------------

USDC_BASE_SEPOLIA = {"name": "USDC", "version": "2", "chainId": 84532,
                     "verifyingContract": "0x036CbD53842c5426634e7929541eC2318f3dCF7e"}
USDC_BASE = {"name": "USD Coin", "version": "2", "chainId": 8453,
             "verifyingContract": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"}
SPEC_FROM = "0x857b06519E91e3A54538791bDbb0E22373e36b66"
SPEC_SIGNATURE = (
    "0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9"
    "bd15092f9ecab05ded3d6293af148b571c"
)


def eip3009_doc(domain: dict[str, Any], sender: str) -> dict[str, Any]:
    """The §7.3 example's message from ``sender`` under a USDC-style ``domain`` (tests/payments.py)."""
    return spec_eip3009_doc(
        from_=sender, name=domain["name"], version=domain["version"], chain_id=domain["chainId"], token=domain["verifyingContract"]
    )


def test_x402_spec_eip3009_example_recovers_to_from() -> None:
    doc = eip3009_doc(USDC_BASE_SEPOLIA, SPEC_FROM)
    assert_digest(doc, "0xf256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6")
    assert_recovers(doc, SPEC_SIGNATURE, SPEC_FROM)
    assert xv.recover_typed_data(doc, SPEC_SIGNATURE, policy=SignaturePolicy.eip3009()) == SPEC_FROM


@pytest.mark.parametrize(
    ("key", "value"),
    [("chainId", 8453), ("chainId", 84531), ("name", "USD Coin"), ("version", "1"),
     ("verifyingContract", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913")],
)
def test_x402_spec_eip3009_example_other_domain_gives_other_signer(key: str, value: Any) -> None:
    doc = eip3009_doc({**USDC_BASE_SEPOLIA, key: value}, SPEC_FROM)
    recovered = xv.recover_typed_data(doc, SPEC_SIGNATURE, policy=SignaturePolicy(require_low_s=False))
    assert recovered != SPEC_FROM
    assert recovered == to_checksum_address(recovered)


def test_x402_spec_eip3009_example_other_message_gives_other_signer() -> None:
    for field, value in [("value", "10001"), ("validBefore", "1740672155"), ("from", ANVIL0),
                         ("nonce", "0x" + "00" * 32)]:
        doc = eip3009_doc(USDC_BASE_SEPOLIA, SPEC_FROM)
        doc["message"][field] = value
        assert xv.recover_typed_data(doc, SPEC_SIGNATURE) != SPEC_FROM, field


def test_receive_with_authorization_is_not_transfer() -> None:
    """Same fields, other primary type (typehash 0xd099cc98...): other digest, other signer."""
    doc = eip3009_doc(USDC_BASE_SEPOLIA, SPEC_FROM)
    doc["types"]["ReceiveWithAuthorization"] = doc["types"].pop("TransferWithAuthorization")
    doc["primaryType"] = "ReceiveWithAuthorization"
    assert keccak(text="ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,"
                  "uint256 validBefore,bytes32 nonce)").hex().startswith("d099cc98")
    assert xv.hash_typed_data(doc).hex() != "f256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6"
    assert xv.recover_typed_data(doc, SPEC_SIGNATURE) != SPEC_FROM


# --- EIP-2098 compact signatures (x402-permit2.md 7.4) ------------------------------------------

EIP2098_KEY = "0x1234567890123456789012345678901234567890123456789012345678901234"
EIP2098_ADDRESS = to_checksum_address("0x2e988a386a799f506693793c6a5af6b54dfaabfb")
EIP2098_VECTORS = [
    ("Hello World", "0x68a020a209d3d56c46f38cc50a33f704f4a9a10a59377f8dd762ac66910e9b90",
     "0x7e865ad05c4035ab5792787d4a0297a43617ae897930a6fe4d822b8faea52064", 27),
    ("It's a small(er) world", "0x9328da16089fcba9bececa81663203989f2df5fe1faa6291a45381c81bd17f76",
     "0x139c6d6b623b42da56557e5e734a43dc83345ddfadec52cbe24d0cc64f550793", 28),
]


def personal_sign_digest(text: str) -> bytes:
    data = text.encode()
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)


@pytest.mark.parametrize(("text", "r", "s", "v"), EIP2098_VECTORS, ids=["hello", "smaller"])
def test_eip2098_compact_vector(text: str, r: str, s: str, v: int) -> None:
    from eth_account import Account

    assert Account.from_key(EIP2098_KEY).address == EIP2098_ADDRESS
    digest = personal_sign_digest(text)
    full = sig65(int(r, 16), int(s, 16), v)
    vs = int(s, 16) | ((v - 27) << 255)
    compact = h(r) + vs.to_bytes(32, "big")
    assert compact == to_compact(full)
    if v == 27:
        assert vs == int(s, 16)
    else:
        assert compact[32:36].hex() == "939c6d6b"

    assert xv.recover_hash(digest, full) == EIP2098_ADDRESS
    for policy in (SignaturePolicy.permit2(), SignaturePolicy(allow_compact=True)):
        assert xv.recover_hash(digest, compact, policy=policy) == EIP2098_ADDRESS
        assert xv.recover_hash(digest, "0x" + compact.hex(), policy=policy) == EIP2098_ADDRESS
    rejecting: list[SignaturePolicy | None] = [None, SignaturePolicy(), SignaturePolicy.eip3009(),
                                              SignaturePolicy(require_low_s=False, allow_v01=True)]
    for strict in rejecting:
        assert code_of(xv.recover_hash, digest, compact, policy=strict) == "invalid_signature_length"
    batch = xv.recover_hash_batch([(digest, compact), (digest, full)])
    assert isinstance(batch[0], SignatureError) and batch[0].code == "invalid_signature_length"
    assert batch[1] == EIP2098_ADDRESS


# --- locally generated x402 vectors (x402-permit2.md 7.5) ----------------------------------------


def x402_permit2_doc(*, upto: bool) -> dict[str, Any]:
    return spec_permit2_doc(upto=upto)  # tests/payments.py: 5000000 to the upto proxy, FAC's witness when upto


def test_x402_exact_permit2_vector() -> None:
    doc = x402_permit2_doc(upto=False)
    # Type strings and typehashes of x402-permit2.md 3.3, hashed by hand from the same values.
    full_type = ("PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,"
                 "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)")
    assert keccak(text=full_type).hex() == "ebc156cd23678a74c94df13d772ef5478420637f0c94bd10d509e1dc98f521c7"
    witness_typehash = keccak(text="Witness(address to,uint256 validAfter)")
    assert witness_typehash.hex() == "d97b3239a7f32295517bd14cb074edfdd188dfe5eb42f802bb26d4fd1eb12c37"
    msg = doc["message"]
    witness_hash = keccak(witness_typehash + word(msg["witness"]["to"]) + word(int(msg["witness"]["validAfter"])))
    assert witness_hash.hex() == "1d9a4354ed1358fb2043e93ba167a9ece2fabb07018aec3d609abccd18aec24b"
    tp_hash = keccak(keccak(text="TokenPermissions(address token,uint256 amount)") + word(msg["permitted"]["token"])
                     + word(int(msg["permitted"]["amount"])))
    struct_hash = keccak(keccak(text=full_type) + tp_hash + word(msg["spender"]) + word(int(msg["nonce"]))
                         + word(int(msg["deadline"])) + witness_hash)
    assert struct_hash.hex() == "f9efd2ab5ec37a11f062cfbde5dd2654b11aa7c03eedbac1f9bf0efd67b2d8b4"
    digest = "0x21528e1468aac114016416353e2309329f217dc180b21baa1d81cde941095685"
    assert digest_from_parts(h("0x010f27a92fb9a32622f44f001dc4d15706a85b33499cfc2ce9033113ab26592c"), struct_hash) == h(digest)

    assert_digest(doc, digest)
    signature = ("0x3b029ad182a14cdb81c9eb44f935279e124e88afdc4043ed1183345aba6781b95cd297107e2808d8ea2722260e88856b5a"
                 "13a6db23e38a30e2604dca9e1ce1da1b")
    assert_recovers(doc, signature, ANVIL0)
    assert xv.recover_typed_data(doc, to_compact(h(signature)), policy=SignaturePolicy.permit2()) == ANVIL0


def test_x402_upto_permit2_vector() -> None:
    doc = x402_permit2_doc(upto=True)
    full_type = ("PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,"
                 "Witness witness)TokenPermissions(address token,uint256 amount)"
                 "Witness(address to,address facilitator,uint256 validAfter)")
    assert keccak(text=full_type).hex() == "51dff6974ad4388c499e7fcfe838d2bd767162553a144098ce20ea661d70c2ee"
    assert_digest(doc, "0x22340f12e045f90a2bdf0bb39dd61d8c4674579544873480e8af265f383d4837")
    signature = ("0x95636daf74af6f82c3930e9d3baf3c1cacb37fb79e794b860ee5a2151274cd2e120fbb1a9774ae2a604cd4aeae0696da"
                 "0c05f0b14e242fd93d0bb0e22ce8f46f1b")
    assert_recovers(doc, signature, ANVIL0)


BASE_EIP3009_SIGNATURE = (
    "0xa70a7d235fd4218a3ed6625525892efed6fd1ac6a193ba612bb9da921620bce74885a8f7f56d2dc2f46005b7d6a089ae3"
    "469455a911004b6c4a6ab600677f56c1c"
)


def test_x402_eip3009_base_mainnet_vector() -> None:
    doc = eip3009_doc(USDC_BASE, ANVIL0)
    assert_digest(doc, "0x7e9613714edd92ad20fa5b252ec168245031911a3438dd20225f083b6a688f8a")
    assert_recovers(doc, BASE_EIP3009_SIGNATURE, ANVIL0)
    # The same signature under the Base Sepolia domain ("USDC", 84532) is someone else's.
    assert xv.recover_typed_data(eip3009_doc(USDC_BASE_SEPOLIA, ANVIL0), BASE_EIP3009_SIGNATURE) != ANVIL0


def test_x402_eip3009_base_mainnet_vector_reproduced_by_signing() -> None:
    """eth-account signs deterministically (RFC 6979): the published bytes come back."""
    from eth_account import Account

    signed = Account.sign_typed_data(ANVIL0_KEY, full_message=eip3009_doc(USDC_BASE, ANVIL0))
    assert "0x" + bytes(signed.signature).hex() == BASE_EIP3009_SIGNATURE


def test_x402_eip3009_eip2098_compact_form() -> None:
    """7.5: the compact form (top bit of s set because v = 28) recovers under Permit2 rules only."""
    doc = eip3009_doc(USDC_BASE, ANVIL0)
    full = h(BASE_EIP3009_SIGNATURE)
    compact = to_compact(full)
    assert full[64] == 28
    assert compact[30:32].hex() == "bce7" and compact[32:36].hex() == "c885a8f7" and compact[-2:].hex() == "f56c"

    for policy in (SignaturePolicy.permit2(), SignaturePolicy(allow_compact=True)):
        assert xv.recover_typed_data(doc, compact, policy=policy) == ANVIL0
        assert xv.recover_typed_data(json.dumps(doc), "0x" + compact.hex(), policy=policy) == ANVIL0
    rejecting: list[SignaturePolicy | None] = [None, SignaturePolicy(), SignaturePolicy.eip3009()]
    for strict in rejecting:
        assert code_of(xv.recover_typed_data, doc, compact, policy=strict) == "invalid_signature_length"

    # Clearing the parity bit gives the other recovery id: a different (valid-looking) signer.
    flipped = compact[:32] + bytes([compact[32] & 0x7F]) + compact[33:]
    assert xv.recover_typed_data(doc, flipped, policy=SignaturePolicy.permit2()) != ANVIL0

    results = xv.recover_typed_data_batch([(doc, compact), (doc, full)], policy=SignaturePolicy.eip3009())
    assert isinstance(results[0], SignatureError) and results[0].code == "invalid_signature_length"
    assert results[1] == ANVIL0
    assert xv.recover_typed_data_batch([(doc, compact), (doc, full)], policy=SignaturePolicy.permit2()) == [ANVIL0, ANVIL0]
