# pragma version 0.4.3
"""
@title ERC-20 with EIP-3009, checked as USDC FiatToken v2.2 checks it
@notice Test-chain token: anyone may mint. Both `transferWithAuthorization` forms route the
        signature by the signer's code length (SignatureChecker): ECDSA with USDC's rules
        (65 bytes, v 27/28, low s) for a signer without code, ERC-1271 otherwise (EIP-7702
        delegated accounts included, their code being 0xef0100 || delegate).
        Vyper has no overloading: the `bytes signature` form is served by `__default__`.
"""

interface IERC1271:
    def isValidSignature(digest: bytes32, signature: Bytes[MAX_SIG]) -> bytes4: view

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

event AuthorizationUsed:
    authorizer: indexed(address)
    nonce: indexed(bytes32)

event AuthorizationCanceled:
    authorizer: indexed(address)
    nonce: indexed(bytes32)

MAX_SIG: constant(uint256) = 512
SIG_WORDS: constant(uint256) = 16

DOMAIN_TYPEHASH: constant(bytes32) = keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
TRANSFER_TYPEHASH: constant(bytes32) = keccak256("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")
CANCEL_TYPEHASH: constant(bytes32) = keccak256("CancelAuthorization(address authorizer,bytes32 nonce)")
HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168
MAGIC_1271: constant(bytes4) = 0x1626ba7e
# transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)
BYTES_FORM: constant(bytes4) = 0xcf092995

name: public(String[64])
version: public(String[16])
symbol: public(String[16])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
authorizationState: public(HashMap[address, HashMap[bytes32, bool]])


@deploy
def __init__(name_: String[64], version_: String[16], symbol_: String[16], decimals_: uint8):
    self.name = name_
    self.version = version_
    self.symbol = symbol_
    self.decimals = decimals_


@view
@internal
def _domain() -> bytes32:
    return keccak256(abi_encode(DOMAIN_TYPEHASH, keccak256(self.name), keccak256(self.version), chain.id, self))


@view
@external
def DOMAIN_SEPARATOR() -> bytes32:
    return self._domain()


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert self.balanceOf[sender] >= amount, "ERC20: transfer amount exceeds balance"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@external
def mint(receiver: address, amount: uint256):
    self.balanceOf[receiver] += amount
    self.totalSupply += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@external
def mintMany(receivers: DynArray[address, 512], amount: uint256):
    for r: address in receivers:
        self.balanceOf[r] += amount
        log Transfer(sender=empty(address), receiver=r, value=amount)
    self.totalSupply += amount * len(receivers)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[sender][msg.sender]
    assert allowed >= amount, "ERC20: insufficient allowance"
    if allowed != max_value(uint256):
        self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    return True


@view
@internal
def _valid_signature(signer: address, digest: bytes32, signature: Bytes[MAX_SIG]) -> bool:
    if signer.is_contract:
        ok: bool = False
        answer: Bytes[32] = b""
        ok, answer = raw_call(
            signer,
            abi_encode(digest, signature, method_id=method_id("isValidSignature(bytes32,bytes)")),
            max_outsize=32,
            is_static_call=True,
            revert_on_failure=False,
        )
        return ok and len(answer) == 32 and convert(slice(answer, 0, 4), bytes4) == MAGIC_1271
    assert len(signature) == 65, "ECRecover: invalid signature length"
    r: bytes32 = extract32(signature, 0)
    s: bytes32 = extract32(signature, 32)
    v: uint8 = convert(slice(signature, 64, 1), uint8)
    assert convert(s, uint256) <= HALF_N, "ECRecover: invalid signature 's' value"
    assert v == 27 or v == 28, "ECRecover: invalid signature 'v' value"
    recovered: address = ecrecover(digest, v, r, s)
    assert recovered != empty(address), "ECRecover: invalid signature"
    return recovered == signer


@internal
def _transfer_with_authorization(
    sender: address, receiver: address, amount: uint256, valid_after: uint256, valid_before: uint256, nonce: bytes32, signature: Bytes[MAX_SIG]
):
    assert block.timestamp > valid_after, "FiatTokenV2: authorization is not yet valid"
    assert block.timestamp < valid_before, "FiatTokenV2: authorization is expired"
    assert not self.authorizationState[sender][nonce], "FiatTokenV2: authorization is used or canceled"
    struct_hash: bytes32 = keccak256(abi_encode(TRANSFER_TYPEHASH, sender, receiver, amount, valid_after, valid_before, nonce))
    digest: bytes32 = keccak256(concat(b"\x19\x01", self._domain(), struct_hash))
    assert self._valid_signature(sender, digest, signature), "FiatTokenV2: invalid signature"
    self.authorizationState[sender][nonce] = True
    log AuthorizationUsed(authorizer=sender, nonce=nonce)
    self._transfer(sender, receiver, amount)


@external
def transferWithAuthorization(
    sender: address, receiver: address, amount: uint256, valid_after: uint256, valid_before: uint256, nonce: bytes32, v: uint8, r: bytes32, s: bytes32
):
    self._transfer_with_authorization(sender, receiver, amount, valid_after, valid_before, nonce, concat(r, s, convert(v, bytes1)))


@external
def cancelAuthorization(authorizer: address, nonce: bytes32, v: uint8, r: bytes32, s: bytes32):
    assert not self.authorizationState[authorizer][nonce], "FiatTokenV2: authorization is used or canceled"
    digest: bytes32 = keccak256(concat(b"\x19\x01", self._domain(), keccak256(abi_encode(CANCEL_TYPEHASH, authorizer, nonce))))
    assert self._valid_signature(authorizer, digest, concat(r, s, convert(v, bytes1))), "FiatTokenV2: invalid signature"
    self.authorizationState[authorizer][nonce] = True
    log AuthorizationCanceled(authorizer=authorizer, nonce=nonce)


@view
@internal
def _word(offset: uint256) -> bytes32:
    if offset + 32 > len(msg.data):
        return empty(bytes32)
    return convert(slice(msg.data, offset, 32), bytes32)


@external
def __default__():
    # transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes): slices of
    # msg.data must have constant lengths, so the signature is read word by word.
    assert len(msg.data) >= 4 + 32 * 8, "unknown selector"
    assert convert(slice(msg.data, 0, 4), bytes4) == BYTES_FORM, "unknown selector"
    start: uint256 = 4 + convert(self._word(4 + 32 * 6), uint256)
    length: uint256 = convert(self._word(start), uint256)
    assert length <= MAX_SIG, "signature too long"
    w: bytes32[SIG_WORDS] = empty(bytes32[SIG_WORDS])
    for i: uint256 in range(SIG_WORDS):
        if i * 32 >= length:
            break
        w[i] = self._word(start + 32 + i * 32)
    padded: Bytes[MAX_SIG] = concat(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10], w[11], w[12], w[13], w[14], w[15])
    self._transfer_with_authorization(
        convert(convert(self._word(4), uint256), address),
        convert(convert(self._word(36), uint256), address),
        convert(self._word(68), uint256),
        convert(self._word(100), uint256),
        convert(self._word(132), uint256),
        self._word(164),
        slice(padded, 0, length),
    )
