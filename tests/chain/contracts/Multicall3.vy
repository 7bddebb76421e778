# pragma version 0.4.3
"""
@title Multicall3's aggregate3, for the test chain
@notice Placed at 0xcA11bde05977b3631167028862bE2a173976CA11 (runtime code only), for the
        measurement that chose JSON-RPC batches over it (benches/test_bench_chain.py). Static
        bounds, as Vyper needs: 256 calls, 128 bytes of calldata and 64 bytes of answer each.
"""

struct Call3:
    target: address
    allowFailure: bool
    callData: Bytes[128]

struct Result:
    success: bool
    returnData: Bytes[64]


@external
def aggregate3(calls: DynArray[Call3, 256]) -> DynArray[Result, 256]:
    results: DynArray[Result, 256] = []
    for c: Call3 in calls:
        ok: bool = False
        data: Bytes[64] = b""
        ok, data = raw_call(c.target, c.callData, max_outsize=64, revert_on_failure=False)
        assert ok or c.allowFailure, "Multicall3: call failed"
        results.append(Result(success=ok, returnData=data))
    return results
