# pragma version 0.4.3
"""
@title ERC-6492 check in one eth_call, without deploying anything
@notice Run as creation code (an eth_call with no `to`): if the signer has no code yet, call
        its factory as the signature's wrapper says; then ask the signer's ERC-1271
        `isValidSignature`. The verdict is an immutable, so it comes back as the last word of
        the returned runtime code: 1 when the wallet answered the magic value, else 0.
        Compiled into python/x402_verify/chain/erc6492.py (tests check the two agree).
"""

MAGIC_1271: constant(bytes4) = 0x1626ba7e
MAX_BYTES: constant(uint256) = 4096

VERDICT: immutable(uint256)


@deploy
def __init__(signer: address, digest: bytes32, factory: address, factory_calldata: Bytes[MAX_BYTES], signature: Bytes[MAX_BYTES]):
    ok: bool = False
    answer: Bytes[32] = b""
    if not signer.is_contract:
        # A failed deployment is no verdict yet: the isValidSignature call below then fails.
        ok, answer = raw_call(factory, factory_calldata, max_outsize=32, revert_on_failure=False)
    ok, answer = raw_call(
        signer,
        abi_encode(digest, signature, method_id=method_id("isValidSignature(bytes32,bytes)")),
        max_outsize=32,
        is_static_call=True,
        revert_on_failure=False,
    )
    valid: bool = ok and len(answer) == 32 and convert(slice(answer, 0, 4), bytes4) == MAGIC_1271
    VERDICT = convert(valid, uint256)


@view
@external
def verdict() -> uint256:
    return VERDICT
