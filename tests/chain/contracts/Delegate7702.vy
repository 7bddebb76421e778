# pragma version 0.4.3
"""
@title An EIP-7702 delegate that accepts its account's own ECDSA signatures (ERC-1271)
@notice Code an EOA delegates to (its code becomes 0xef0100 || this address): `self` is then
        the EOA, so a 65-byte signature by the EOA's own key is accepted.
"""

MAGIC_1271: constant(bytes4) = 0x1626ba7e


@view
@external
def isValidSignature(digest: bytes32, signature: Bytes[512]) -> bytes4:
    if len(signature) != 65:
        return 0xffffffff
    v: uint8 = convert(slice(signature, 64, 1), uint8)
    signer: address = ecrecover(digest, v, extract32(signature, 0), extract32(signature, 32))
    if signer != empty(address) and signer == self:
        return MAGIC_1271
    return 0xffffffff
