# pragma version 0.4.3
"""
@title Permit2's SignatureTransfer, as much as x402 uses
@notice Placed at the canonical address 0x000000000022D473030F116dDEE9F6B43aC78BA3 by the test
        chain (runtime code only: nothing here is set by a constructor). The unordered nonce
        bitmap, `invalidateUnorderedNonces`, and `permitWitnessTransferFrom` with Permit2's
        checks in its order: deadline, amount, nonce, signature (ECDSA 65 or 64 bytes without a
        low-s rule for a signer without code, ERC-1271 otherwise), then the ERC-20 transferFrom
        that needs the token allowance to this contract.
"""

interface IERC20:
    def transferFrom(sender: address, receiver: address, amount: uint256) -> bool: nonpayable

struct TokenPermissions:
    token: address
    amount: uint256

struct PermitTransferFrom:
    permitted: TokenPermissions
    nonce: uint256
    deadline: uint256

struct SignatureTransferDetails:
    to: address
    requestedAmount: uint256

event UnorderedNonceInvalidation:
    owner: indexed(address)
    word: uint256
    mask: uint256

MAX_SIG: constant(uint256) = 512
DOMAIN_TYPEHASH: constant(bytes32) = keccak256("EIP712Domain(string name,uint256 chainId,address verifyingContract)")
NAME_HASH: constant(bytes32) = keccak256("Permit2")
TOKEN_PERMISSIONS_TYPEHASH: constant(bytes32) = keccak256("TokenPermissions(address token,uint256 amount)")
STUB: constant(String[100]) = "PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,"
MAGIC_1271: constant(bytes4) = 0x1626ba7e
LOW_255: constant(uint256) = max_value(uint256) >> 1

nonceBitmap: public(HashMap[address, HashMap[uint256, uint256]])


@view
@internal
def _domain() -> bytes32:
    return keccak256(abi_encode(DOMAIN_TYPEHASH, NAME_HASH, chain.id, self))


@view
@external
def DOMAIN_SEPARATOR() -> bytes32:
    return self._domain()


@external
def invalidateUnorderedNonces(wordPos: uint256, mask: uint256):
    self.nonceBitmap[msg.sender][wordPos] |= mask
    log UnorderedNonceInvalidation(owner=msg.sender, word=wordPos, mask=mask)


@internal
def _use_unordered_nonce(owner: address, nonce: uint256):
    word_pos: uint256 = nonce >> 8
    bit: uint256 = 1 << (nonce & 255)
    flipped: uint256 = self.nonceBitmap[owner][word_pos] ^ bit
    assert flipped & bit != 0, "InvalidNonce"
    self.nonceBitmap[owner][word_pos] = flipped


@view
@internal
def _verify(signature: Bytes[MAX_SIG], digest: bytes32, claimed: address):
    if claimed.is_contract:
        ok: bool = False
        answer: Bytes[32] = b""
        ok, answer = raw_call(
            claimed,
            abi_encode(digest, signature, method_id=method_id("isValidSignature(bytes32,bytes)")),
            max_outsize=32,
            is_static_call=True,
            revert_on_failure=False,
        )
        assert ok and len(answer) == 32 and convert(slice(answer, 0, 4), bytes4) == MAGIC_1271, "InvalidContractSignature"
        return
    r: bytes32 = empty(bytes32)
    s: bytes32 = empty(bytes32)
    v: uint8 = 0
    if len(signature) == 65:
        r = extract32(signature, 0)
        s = extract32(signature, 32)
        v = convert(slice(signature, 64, 1), uint8)
    elif len(signature) == 64:
        r = extract32(signature, 0)
        vs: uint256 = convert(extract32(signature, 32), uint256)
        s = convert(vs & LOW_255, bytes32)
        v = convert((vs >> 255) + 27, uint8)
    else:
        raise "InvalidSignatureLength"
    signer: address = ecrecover(digest, v, r, s)
    assert signer != empty(address), "InvalidSignature"
    assert signer == claimed, "InvalidSigner"


@external
def permitWitnessTransferFrom(
    permit: PermitTransferFrom,
    transferDetails: SignatureTransferDetails,
    owner: address,
    witness: bytes32,
    witnessTypeString: String[512],
    signature: Bytes[MAX_SIG],
):
    assert block.timestamp <= permit.deadline, "SignatureExpired"
    assert transferDetails.requestedAmount <= permit.permitted.amount, "InvalidAmount"
    self._use_unordered_nonce(owner, permit.nonce)
    typehash: bytes32 = keccak256(concat(STUB, witnessTypeString))
    permissions: bytes32 = keccak256(abi_encode(TOKEN_PERMISSIONS_TYPEHASH, permit.permitted.token, permit.permitted.amount))
    data_hash: bytes32 = keccak256(abi_encode(typehash, permissions, msg.sender, permit.nonce, permit.deadline, witness))
    self._verify(signature, keccak256(concat(b"\x19\x01", self._domain(), data_hash)), owner)
    assert extcall IERC20(permit.permitted.token).transferFrom(owner, transferDetails.to, transferDetails.requestedAmount), "TRANSFER_FROM_FAILED"
