# pragma version 0.4.3
"""
@title An ERC-1271 smart wallet with one owner key
@notice A signature is the owner's 65-byte ECDSA signature of the digest, optionally followed
        by bytes the wallet ignores (so tests can give it lengths no EOA signature has). The
        owner is set once by `initialize` (the ERC-6492 factory deploys minimal proxies to this
        code); `execute` lets the owner call out (an ERC-20 approve of Permit2, say).
"""

MAGIC_1271: constant(bytes4) = 0x1626ba7e

owner: public(address)


@external
def initialize(owner_: address):
    assert self.owner == empty(address), "initialized"
    self.owner = owner_


@view
@external
def isValidSignature(digest: bytes32, signature: Bytes[512]) -> bytes4:
    if len(signature) < 65 or self.owner == empty(address):
        return 0xffffffff
    v: uint8 = convert(slice(signature, 64, 1), uint8)
    signer: address = ecrecover(digest, v, extract32(signature, 0), extract32(signature, 32))
    if signer != empty(address) and signer == self.owner:
        return MAGIC_1271
    return 0xffffffff


@external
def execute(target: address, data: Bytes[1024]) -> Bytes[256]:
    assert msg.sender == self.owner, "not owner"
    return raw_call(target, data, max_outsize=256)
