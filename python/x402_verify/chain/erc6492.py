"""ERC-6492 in one eth_call: the compiled validator (Erc6492Validator.vy beside this file) and
the wrapper parser. tests/test_chain_artifacts.py recompiles the source and compares.

The validator runs as creation code, so it needs no deployed contract on any chain; its
verdict comes back as the last word of the runtime code the creation returns.
"""

from __future__ import annotations

from x402_verify.chain.abi import AbiError, decode_bytes_tuple, encode

__all__ = ["MAGIC_SUFFIX", "VALIDATOR_CREATION_CODE", "VALIDATOR_RUNTIME_LEN", "unwrap", "validator_call", "validator_verdict"]

MAGIC_SUFFIX = bytes.fromhex("6492" * 16)

#: vyper 0.4.3, Erc6492Validator.vy (creation code, without constructor arguments).
VALIDATOR_CREATION_CODE = bytes.fromhex(
    "61326051503461022d5760206102905f395f518060a01c61022d5760405260206102d05f395f518060a01c61022d5760605260206102f05f395f51602081610290015f395f51611000811161022d57506020602082610290015f395f5101808261029001608039505060206103105f395f51602081610290015f395f51611000811161022d57506020602082610290015f395f51018082610290016110a03950506040366120c0376040513b6100f8576060515a608050602061214060805160a05f8686f190509050612160523d602081183d6020100218612120526121206040816121805e50612160516120c05260406121806120e05e5b6040515a631626ba7e612124526004604060206102b0612144398061216452806121440160206110a05101806110a0835e508051806020830101601f825f03163682375050601f19601f8251602001011690508101905001612120526121205060206131e0612120516121408585fa90509050613200523d602081183d60201002186131c0526131c06040816132205e50613200516120c05260406132206120e05e6120c0516101a8575f61020f565b60206120e0511861020d577f1626ba7e0000000000000000000000000000000000000000000000000000000060036120e051111561022d576121005161216052600461214052612140805160200360031b6020820151811c811b90509050181561020f565b5f5b61212052612120516132605261002a6102316132363961004a613236f35b5f80fd5f3560e01c636aba253c8118610022573461002657602061002a60403960206040f35b5f5ffd5b5f80fd855820f7844770b35f3962586fb6223e9624551f23bfed9ca5bb5b7e47d9d56dd099ba182a801820a1657679706572830004030035"
)
#: Length of its runtime code; the returned code is that plus one 32-byte immutable.
VALIDATOR_RUNTIME_LEN = 42


def unwrap(signature: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(factory, factory_calldata, inner_signature) of an ERC-6492 signature, None when it
    has no ERC-6492 suffix; raises AbiError when the wrapper is malformed."""
    if not signature.endswith(MAGIC_SUFFIX):
        return None
    return decode_bytes_tuple(signature[: -len(MAGIC_SUFFIX)])


def validator_call(signer: str, digest: bytes, factory: str | bytes, factory_calldata: bytes, signature: bytes) -> bytes:
    """The data of an eth_call without to that answers whether signer (deployed
    now, or by factory first) accepts signature over digest (ERC-1271)."""
    if len(digest) != 32:
        raise ValueError("the digest is 32 bytes")
    factory_hex = factory if isinstance(factory, str) else "0x" + factory.hex()
    return VALIDATOR_CREATION_CODE + encode([signer, int.from_bytes(digest, "big"), factory_hex, factory_calldata, signature])


def validator_verdict(returned: bytes) -> bool:
    """The validator's answer from the eth_call's returned data."""
    if len(returned) != VALIDATOR_RUNTIME_LEN + 32:
        raise AbiError(f"the ERC-6492 validator returned {len(returned)} bytes")
    verdict = int.from_bytes(returned[-32:], "big")
    if verdict not in (0, 1):
        raise AbiError("the ERC-6492 validator returned no verdict")
    return verdict == 1
