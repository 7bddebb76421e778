"""The one builder of x402 payments, EIP-712 documents, signatures and headers for the tests, the
benches (benches/), the bundled samples (scripts/make_samples.py) and the fuzz seeds
(rust/core/fuzz/seeds/make_seeds.py); those put ``tests/`` on ``sys.path`` to import it.

eth-account signs here (a test dependency: the package itself never imports this module). The
typed data is x402's: EIP-3009 ``TransferWithAuthorization`` (USDC's domain), and Permit2's
``PermitWitnessTransferFrom`` with x402's exact witness ``Witness(address to,uint256
validAfter)`` or upto witness ``Witness(address to,address facilitator,uint256 validAfter)``.
Permit2 payments are signed over a digest built here by hand (``permit2_digest``), which
tests/test_x402_bad_inputs.py checks against eth-account's encoder and the published vectors.
Everything is deterministic but ``random_nonce`` (RFC 6979 signatures), so the samples and seeds
made from it are byte-identical run after run (tests/test_pinned_files.py checks them).

Payments are described by flat ``fields`` (Python values: ``from_``, ``to``, ``amount``,
``valid_after``, ``valid_before``, ``nonce``, and for Permit2 ``token``, ``spender``,
``facilitator``); ``authorization`` spells them as the payload does (numbers as decimal strings).
"""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # the curve order

# --- addresses ---------------------------------------------------------------------------------

ANVIL0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil key #0: signer of the spec vectors
PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
FAC = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil #1; the §7.5 upto vector's facilitator
OTHER_FAC = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"  # anvil #2
OTHER_ADDRESS = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"  # anvil #3
ZERO_ADDRESS = "0x" + "00" * 20
USDC_BASE_SEPOLIA = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
OPG_BASE = "0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB"
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
EXACT_PROXY = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"  # x402ExactPermit2Proxy
UPTO_PROXY = "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"  # x402UptoPermit2Proxy
ERC6492_MAGIC = bytes.fromhex("6492" * 16)

BASE_CHAIN_ID = 8453
BASE_SEPOLIA_CHAIN_ID = 84532

# --- EIP-712 documents -------------------------------------------------------------------------


def typed(members: list[tuple[str, str]]) -> list[dict[str, str]]:
    """An EIP-712 member list from (name, type) pairs."""
    return [{"name": n, "type": t} for n, t in members]


EIP3009_DOMAIN_TYPE = typed([("name", "string"), ("version", "string"), ("chainId", "uint256"), ("verifyingContract", "address")])
PERMIT2_DOMAIN_TYPE = typed([("name", "string"), ("chainId", "uint256"), ("verifyingContract", "address")])
TRANSFER_WITH_AUTHORIZATION = typed(
    [("from", "address"), ("to", "address"), ("value", "uint256"), ("validAfter", "uint256"), ("validBefore", "uint256"), ("nonce", "bytes32")]
)
PERMIT_WITNESS_TRANSFER_FROM = typed(
    [("permitted", "TokenPermissions"), ("spender", "address"), ("nonce", "uint256"), ("deadline", "uint256"), ("witness", "Witness")]
)
TOKEN_PERMISSIONS = typed([("token", "address"), ("amount", "uint256")])


def witness_type(*, upto: bool) -> list[dict[str, str]]:
    return typed([("to", "address"), ("facilitator", "address"), ("validAfter", "uint256")] if upto else [("to", "address"), ("validAfter", "uint256")])


def eip3009_typed_data(
    message: dict[str, Any], *, name: str = "USDC", version: str = "2", chain_id: int = BASE_SEPOLIA_CHAIN_ID,
    token: str = USDC_BASE_SEPOLIA, primary: str = "TransferWithAuthorization",
) -> dict[str, Any]:  # fmt: skip
    """USDC's EIP-3009 document around ``message`` (``primary`` may be ReceiveWithAuthorization)."""
    return {
        "types": {"EIP712Domain": copy.deepcopy(EIP3009_DOMAIN_TYPE), primary: copy.deepcopy(TRANSFER_WITH_AUTHORIZATION)},
        "primaryType": primary,
        "domain": {"name": name, "version": version, "chainId": chain_id, "verifyingContract": token},
        "message": message,
    }


def permit2_typed_data(authorization: dict[str, Any], *, chain_id: int = BASE_CHAIN_ID) -> dict[str, Any]:
    """x402's ``PermitWitnessTransferFrom`` document for a payload's ``permit2Authorization`` (its
    ``from`` is not signed); the witness type follows the witness (upto when it names a facilitator)."""
    return {
        "types": {
            "EIP712Domain": copy.deepcopy(PERMIT2_DOMAIN_TYPE),
            "PermitWitnessTransferFrom": copy.deepcopy(PERMIT_WITNESS_TRANSFER_FROM),
            "TokenPermissions": copy.deepcopy(TOKEN_PERMISSIONS),
            "Witness": witness_type(upto="facilitator" in authorization["witness"]),
        },
        "primaryType": "PermitWitnessTransferFrom",
        "domain": {"name": "Permit2", "chainId": chain_id, "verifyingContract": PERMIT2},
        "message": {k: v for k, v in authorization.items() if k != "from"},
    }


def eip3009_authorization(*, from_: str, to: str, value: int | str, valid_after: int | str, valid_before: int | str, nonce: str) -> dict[str, Any]:
    """A payload's EIP-3009 ``authorization`` (also the typed data's message): decimal strings."""
    return {
        "from": from_, "to": to, "value": str(value), "validAfter": str(valid_after), "validBefore": str(valid_before),
        "nonce": nonce,
    }  # fmt: skip


def permit2_authorization(
    *, from_: str, token: str, amount: int | str, spender: str, nonce: int | str, deadline: int | str, to: str,
    valid_after: int | str, facilitator: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A payload's ``permit2Authorization``: decimal strings; an upto witness when ``facilitator``."""
    witness: dict[str, Any] = {"to": to, "validAfter": str(valid_after)}
    if facilitator is not None:
        witness = {"to": to, "facilitator": facilitator, "validAfter": str(valid_after)}
    return {
        "from": from_, "permitted": {"token": token, "amount": str(amount)}, "spender": spender, "nonce": str(nonce),
        "deadline": str(deadline), "witness": witness,
    }  # fmt: skip


DELETE = object()  # edited(): "remove this member"


def edited(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of ``doc`` with the member at ``path`` (keys and list indexes) set to ``value``,
    or removed when ``value`` is DELETE; the empty path stands for the whole document."""
    if not path:
        return value
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


# --- the x402 specification's vectors (x402-permit2.md §7.3 and §7.5) ---------------------------

SPEC_NOW_WINDOW = (1740672089, 1740672154)  # validAfter, validBefore / deadline of both vectors
SPEC_PERMIT2_NONCE = 33247007178036348590600198031289925668252061821958005840077069883511451257277
SPEC_PERMIT2_DIGEST = bytes.fromhex("21528e1468aac114016416353e2309329f217dc180b21baa1d81cde941095685")
SPEC_PERMIT2_SIG = bytes.fromhex(
    "3b029ad182a14cdb81c9eb44f935279e124e88afdc4043ed1183345aba6781b9"
    "5cd297107e2808d8ea2722260e88856b5a13a6db23e38a30e2604dca9e1ce1da1b"
)
SPEC_EIP3009_FROM = "0x857b06519E91e3A54538791bDbb0E22373e36b66"
SPEC_EIP3009_NONCE = "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"
SPEC_EIP3009_DIGEST = bytes.fromhex("f256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6")
SPEC_EIP3009_SIG = bytes.fromhex(
    "2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a12832597641736"
    "08a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c"
)


def spec_permit2_doc(*, amount: int | str | None = None, nonce: int | str = SPEC_PERMIT2_NONCE, upto: bool = False) -> dict[str, Any]:
    """The §7.5 exact Permit2 vector on Base Sepolia, signed by anvil #0 (SPEC_PERMIT2_SIG) as it
    stands; ``upto`` gives the upto vector's document (5000000 to the upto proxy, FAC's witness)."""
    return permit2_typed_data(
        permit2_authorization(
            from_=ANVIL0, token=USDC_BASE_SEPOLIA, amount=(5_000_000 if upto else 10_000) if amount is None else amount,
            spender=UPTO_PROXY if upto else EXACT_PROXY, nonce=nonce, deadline=SPEC_NOW_WINDOW[1], to=PAY_TO, valid_after=SPEC_NOW_WINDOW[0],
            facilitator=FAC if upto else None,
        ),
        chain_id=BASE_SEPOLIA_CHAIN_ID,
    )  # fmt: skip


def spec_eip3009_doc(*, from_: str = SPEC_EIP3009_FROM, value: int | str = 10000, nonce: str = SPEC_EIP3009_NONCE, **domain: Any) -> dict[str, Any]:
    """The §7.3 EIP-3009 example (USDC on Base Sepolia, SPEC_EIP3009_SIG by SPEC_EIP3009_FROM);
    ``domain`` takes eip3009_typed_data's domain keywords."""
    auth = eip3009_authorization(from_=from_, to=PAY_TO, value=value, valid_after=SPEC_NOW_WINDOW[0], valid_before=SPEC_NOW_WINDOW[1], nonce=nonce)
    return eip3009_typed_data(auth, **domain)


# --- signatures ---------------------------------------------------------------------------------

# The signers of the bundled samples and the benches: PUBLIC keys anyone can recompute.
PUBLIC_TEST_KEY_LABEL = "x402-verify public test key #{}"


def public_test_keys(count: int = 8) -> list[bytes]:
    """Private key i = keccak256(utf8(PUBLIC_TEST_KEY_LABEL.format(i))); never fund their addresses."""
    keys = [keccak(PUBLIC_TEST_KEY_LABEL.format(i).encode()) for i in range(count)]
    assert all(0 < int.from_bytes(k, "big") < SECP256K1_N for k in keys)
    return keys


def sign_typed_data(doc: dict[str, Any], key: bytes | str) -> bytes:
    """eth-account's 65-byte signature (v 27/28, low s) of an EIP-712 document."""
    return bytes(Account.sign_typed_data(key, full_message=doc).signature)


def high_s_twin(sig: bytes) -> bytes:
    """The other valid signature of the same digest: (r, n - s) with the parity flipped."""
    return sig[:32] + (SECP256K1_N - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + bytes([55 - sig[64]])


def compact(sig: bytes) -> bytes:
    """EIP-2098 ``r || vs`` of a 65-byte ``r || s || v`` (v 27/28): the parity in the top bit of s."""
    return sig[:32] + (int.from_bytes(sig[32:64], "big") | ((sig[64] - 27) << 255)).to_bytes(32, "big")


PERMIT_STUB = "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,Witness witness)"
TOKEN_PERMISSIONS_TYPE = "TokenPermissions(address token,uint256 amount)"
EXACT_WITNESS_TYPE = "Witness(address to,uint256 validAfter)"
UPTO_WITNESS_TYPE = "Witness(address to,address facilitator,uint256 validAfter)"


def permit2_digest(f: dict[str, Any], chain_id: int, *, wrong_order: bool = False, domain_version: str | None = None) -> bytes:
    """x402's PermitWitnessTransferFrom digest of ``fields``, by hand. ``wrong_order`` lists
    ``Witness`` before ``TokenPermissions`` in the type string (EIP-712 sorts them the other
    way); ``domain_version`` adds a ``version`` member to Permit2's domain (which has none)."""
    upto = f.get("facilitator") is not None
    witness_name = UPTO_WITNESS_TYPE if upto else EXACT_WITNESS_TYPE
    deps = witness_name + TOKEN_PERMISSIONS_TYPE if wrong_order else TOKEN_PERMISSIONS_TYPE + witness_name
    permitted = keccak(abi_encode(["bytes32", "address", "uint256"], [keccak(text=TOKEN_PERMISSIONS_TYPE), f["token"], f["amount"]]))
    if upto:
        witness = keccak(
            abi_encode(["bytes32", "address", "address", "uint256"], [keccak(text=UPTO_WITNESS_TYPE), f["to"], f["facilitator"], f["valid_after"]])
        )
    else:
        witness = keccak(abi_encode(["bytes32", "address", "uint256"], [keccak(text=EXACT_WITNESS_TYPE), f["to"], f["valid_after"]]))
    struct = keccak(
        abi_encode(
            ["bytes32", "bytes32", "address", "uint256", "uint256", "bytes32"],
            [keccak(text=PERMIT_STUB + deps), permitted, f["spender"], f["nonce"], f["valid_before"], witness],
        )
    )
    if domain_version is None:
        domain_type = "EIP712Domain(string name,uint256 chainId,address verifyingContract)"
        domain = keccak(abi_encode(["bytes32", "bytes32", "uint256", "address"], [keccak(text=domain_type), keccak(text="Permit2"), chain_id, PERMIT2]))
    else:
        domain_type = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
        domain = keccak(
            abi_encode(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [keccak(text=domain_type), keccak(text="Permit2"), keccak(text=domain_version), chain_id, PERMIT2],
            )
        )
    return keccak(b"\x19\x01" + domain + struct)


# --- x402 payments from fields --------------------------------------------------------------------

NOW = 1_750_000_000  # the fixed clock of the bad-input tests and the fuzz seeds (fuzz_checks::X402_NOW)
PAYER: LocalAccount = Account.from_key("0x" + "11" * 32)
OTHER: LocalAccount = Account.from_key("0x" + "22" * 32)

KINDS = ("eip3009", "eip3009_v1", "permit2", "upto")
EIP3009_KINDS = ("eip3009", "eip3009_v1")
PERMIT2_KINDS = ("permit2", "upto")
CHAIN_ID = {"eip3009": BASE_SEPOLIA_CHAIN_ID, "eip3009_v1": BASE_SEPOLIA_CHAIN_ID, "permit2": BASE_CHAIN_ID, "upto": BASE_CHAIN_ID}
RESOURCE_URL = "https://api.example/x"

# Where each logical authorization field sits inside the payload's authorization object.
AUTH_PATHS: dict[str, dict[str, tuple[str, ...]]] = {
    "eip3009": {
        "from": ("from",), "to": ("to",), "amount": ("value",), "validAfter": ("validAfter",),
        "validBefore": ("validBefore",), "nonce": ("nonce",),
    },
    "permit2": {
        "from": ("from",), "to": ("witness", "to"), "amount": ("permitted", "amount"), "validAfter": ("witness", "validAfter"),
        "validBefore": ("deadline",), "nonce": ("nonce",), "token": ("permitted", "token"), "spender": ("spender",),
        "facilitator": ("witness", "facilitator"),
    },
}  # fmt: skip
AUTH_PATHS["eip3009_v1"] = AUTH_PATHS["eip3009"]
AUTH_PATHS["upto"] = AUTH_PATHS["permit2"]


def auth_member(kind: str) -> str:
    """The payload member that holds the authorization."""
    return "authorization" if kind in EIP3009_KINDS else "permit2Authorization"


def requirements(kind: str, amount: int | str = 10000, *, max_timeout: int = 300) -> dict[str, Any]:
    """The route's requirements: EIP-3009 USDC on Base Sepolia (v2 and v1 framing), exact and
    upto Permit2 for an 18-decimals token on Base; ``max_timeout`` is ``maxTimeoutSeconds``."""
    if kind == "eip3009":
        return {
            "scheme": "exact", "network": "eip155:84532", "asset": USDC_BASE_SEPOLIA, "amount": str(amount),
            "payTo": PAY_TO, "maxTimeoutSeconds": max_timeout, "extra": {"name": "USDC", "version": "2"},
        }  # fmt: skip
    if kind == "eip3009_v1":
        return {
            "scheme": "exact", "network": "base-sepolia", "maxAmountRequired": str(amount), "resource": RESOURCE_URL,
            "description": "", "mimeType": "application/json", "payTo": PAY_TO, "maxTimeoutSeconds": max_timeout,
            "asset": USDC_BASE_SEPOLIA, "extra": {"name": "USDC", "version": "2"},
        }  # fmt: skip
    extra: dict[str, Any] = {"name": "OpenGradient", "version": "1", "assetTransferMethod": "permit2"}
    if kind == "upto":
        extra["facilitatorAddress"] = FAC
    return {
        "scheme": "upto" if kind == "upto" else "exact", "network": "eip155:8453", "asset": OPG_BASE, "amount": str(amount),
        "payTo": PAY_TO, "maxTimeoutSeconds": max_timeout, "extra": extra,
    }  # fmt: skip


def fields(kind: str, **over: Any) -> dict[str, Any]:
    """The authorization's values (flat, Python types), defaults as the SDK clients make them at NOW."""
    f: dict[str, Any] = {"from_": PAYER.address, "to": PAY_TO, "amount": 10000, "valid_after": NOW - 600, "valid_before": NOW + 300}
    if kind in EIP3009_KINDS:
        f["nonce"] = "0x" + "5a" * 32
    else:
        f["nonce"] = 0x1234_5678_9ABC_DEF0 << 128
        f["token"] = OPG_BASE
        f["spender"] = UPTO_PROXY if kind == "upto" else EXACT_PROXY
        if kind == "upto":
            f["facilitator"] = FAC
    f.update(over)
    return f


def authorization(kind: str, f: dict[str, Any]) -> dict[str, Any]:
    """The payload's authorization object for ``f`` (numbers as decimal strings)."""
    if kind in EIP3009_KINDS:
        return eip3009_authorization(
            from_=f["from_"], to=f["to"], value=f["amount"], valid_after=f["valid_after"], valid_before=f["valid_before"], nonce=f["nonce"]
        )
    return permit2_authorization(
        from_=f["from_"], token=f["token"], amount=f["amount"], spender=f["spender"], nonce=f["nonce"],
        deadline=f["valid_before"], to=f["to"], valid_after=f["valid_after"], facilitator=f.get("facilitator"),
    )  # fmt: skip


def eip3009_message(f: dict[str, Any]) -> dict[str, Any]:
    """The EIP-3009 message the client signs for ``f``, in Python values (any int, any bytes)."""
    return {
        "from": f["from_"], "to": f["to"], "value": f["amount"], "validAfter": f["valid_after"], "validBefore": f["valid_before"],
        "nonce": bytes.fromhex(f["nonce"].removeprefix("0x")),
    }  # fmt: skip


def sign(kind: str, f: dict[str, Any], *, acct: LocalAccount = PAYER, **kw: Any) -> str:
    """The 65-byte signature (0x hex) the client makes for ``f``; ``kw`` changes what is signed
    (eip3009_typed_data's domain keywords; for Permit2 ``chain_id`` and permit2_digest's options)."""
    if kind in EIP3009_KINDS:
        raw = sign_typed_data(eip3009_typed_data(eip3009_message(f), **kw), acct.key)
    else:
        chain_id = kw.pop("chain_id", CHAIN_ID[kind])
        raw = bytes(Account.unsafe_sign_hash(permit2_digest(f, chain_id, **kw), acct.key).signature)
    return "0x" + raw.hex()


def envelope(kind: str, req: dict[str, Any], inner: dict[str, Any], *, resource: bool = True) -> dict[str, Any]:
    """The whole payment payload around ``inner`` (x402 v2, or v1 for ``eip3009_v1``)."""
    if kind == "eip3009_v1":
        return {"x402Version": 1, "scheme": req["scheme"], "network": req["network"], "payload": inner}
    doc = {"x402Version": 2, "accepted": copy.deepcopy(req), "payload": inner}
    if resource:
        doc["resource"] = {"url": RESOURCE_URL}
    return doc


def signed_payload(kind: str, f: dict[str, Any], *, acct: LocalAccount = PAYER, **sign_kw: Any) -> dict[str, Any]:
    """The payload's inner object: the signature and the authorization of ``f``."""
    return {"signature": sign(kind, f, acct=acct, **sign_kw), auth_member(kind): authorization(kind, f)}


def payment(kind: str, *, acct: LocalAccount = PAYER, sign_kw: dict[str, Any] | None = None, **over: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A correctly signed payment (at NOW) whose fields hold ``over``, with its requirements."""
    req = requirements(kind)
    return envelope(kind, req, signed_payload(kind, fields(kind, **over), acct=acct, **(sign_kw or {}))), req


def header(doc: dict[str, Any]) -> str:
    """The payment header of a payload, through the library's own encoder."""
    from x402_verify import encode_payment_header  # here: the sample and seed scripts run without the package

    return encode_payment_header(doc)


# --- fresh payments on the real clock (stores, benches) ----------------------------------------------

STORE_KEY = keccak(text="x402-verify store test key 0")
STORE_PAYER: LocalAccount = Account.from_key(STORE_KEY)


@dataclass(frozen=True)
class Payment:
    kind: str
    header: str
    payload: dict[str, Any]
    requirements: dict[str, Any]
    signature: bytes
    valid_until: int

    def _edited(self, edit: Any) -> str:
        p = copy.deepcopy(self.payload)
        edit(p)
        return header(p)

    def with_signature(self, sig: bytes) -> str:
        return self._edited(lambda p: p["payload"].update(signature="0x" + sig.hex()))

    def with_nonce_text(self, text: str) -> str:
        return self._edited(lambda p: p["payload"][auth_member(self.kind)].update(nonce=text))

    @property
    def nonce_text(self) -> str:
        text: str = self.payload["payload"][auth_member(self.kind)]["nonce"]
        return text


def random_nonce(kind: str) -> int | str:
    return "0x" + secrets.token_bytes(32).hex() if kind in EIP3009_KINDS else secrets.randbits(256)


def sign_payment(
    kind: str,
    now: int,
    *,
    valid_for: int = 300,
    amount: int = 10_000,
    nonce: int | bytes | None = None,
    max_timeout: int | None = None,
    spender: str | None = None,
) -> Payment:
    """A fresh, valid x402 v2 payment of ``kind`` (``eip3009`` | ``permit2`` | ``upto``) by
    STORE_PAYER at ``now``, valid until ``now + valid_for``, with a random nonce unless one is given.
    The route's ``maxTimeoutSeconds`` is ``max_timeout``, by default what the client signs
    (``valid_for``, at least 300), as an SDK client signs validBefore = now + maxTimeoutSeconds.
    For Permit2, ``spender`` stands instead of the scheme's proxy when given."""
    spelled = random_nonce(kind) if nonce is None else "0x" + nonce.hex() if isinstance(nonce, bytes) else nonce
    f = fields(kind, from_=STORE_PAYER.address, amount=amount, valid_after=now - 60, valid_before=now + valid_for, nonce=spelled)
    if spender is not None:
        f["spender"] = spender
    req = requirements(kind, amount, max_timeout=max(300, valid_for) if max_timeout is None else max_timeout)
    doc = envelope(kind, req, signed_payload(kind, f, acct=STORE_PAYER), resource=False)
    sig = bytes.fromhex(doc["payload"]["signature"][2:])
    return Payment(kind, header(doc), doc, req, sig, now + valid_for)
