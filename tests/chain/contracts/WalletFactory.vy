# pragma version 0.4.3
"""
@title ERC-6492 factory: counterfactual wallets at CREATE2 addresses
@notice `deploy(owner, salt)` makes a minimal proxy to the wallet implementation and sets its
        owner; an eth_call of it tells the address before deployment.
"""

interface IWallet:
    def initialize(owner_: address): nonpayable

implementation: public(immutable(address))


@deploy
def __init__(implementation_: address):
    implementation = implementation_


@external
def deploy(owner: address, salt: bytes32) -> address:
    wallet: address = create_minimal_proxy_to(implementation, salt=keccak256(abi_encode(owner, salt)))
    extcall IWallet(wallet).initialize(owner)
    return wallet
