# pragma version 0.4.3
"""
@title x402ExactPermit2Proxy's `settle`, for the test chain
@notice Placed at 0x402085c248EeA27D92E8b30b2C58ed07f9E20001 (runtime code only). The base
        checks of x402BasePermit2Proxy._settle, then Permit2's witness transfer of the full
        permitted amount to witness.to; Permit2 hashes this contract as the spender.
"""

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

struct Witness:
    to: address
    validAfter: uint256

interface IPermit2:
    def permitWitnessTransferFrom(
        permit: PermitTransferFrom,
        transferDetails: SignatureTransferDetails,
        owner: address,
        witness: bytes32,
        witnessTypeString: String[512],
        signature: Bytes[512],
    ): nonpayable

PERMIT2: public(constant(address)) = 0x000000000022D473030F116dDEE9F6B43aC78BA3
WITNESS_TYPEHASH: constant(bytes32) = keccak256("Witness(address to,uint256 validAfter)")
WITNESS_TYPE_STRING: constant(String[512]) = "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)"


@external
def settle(permit: PermitTransferFrom, owner: address, witness: Witness, signature: Bytes[512]):
    assert permit.permitted.amount != 0, "InvalidAmount"
    assert owner != empty(address), "InvalidOwner"
    assert witness.to != empty(address), "InvalidDestination"
    assert block.timestamp >= witness.validAfter, "PaymentTooEarly"
    extcall IPermit2(PERMIT2).permitWitnessTransferFrom(
        permit,
        SignatureTransferDetails(to=witness.to, requestedAmount=permit.permitted.amount),
        owner,
        keccak256(abi_encode(WITNESS_TYPEHASH, witness.to, witness.validAfter)),
        WITNESS_TYPE_STRING,
        signature,
    )
