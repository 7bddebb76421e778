"""Route configs in the x402 SDK's shape: prices, requirements and path matching agree with the
SDK's own server code (x402.mechanisms.evm.exact.server, x402.http.x402_http_server_base)."""

from __future__ import annotations

from typing import Any

import pytest
from x402.http.x402_http_server_base import x402HTTPServerBase
from x402.mechanisms.evm.exact import ExactEvmServerScheme

from x402_verify.routes import USDC, RouteTable, parse_price

PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
PRICES: list[Any] = ["$0.01", "0.01", 0.01, "1", "$2.5", "0.015 USDC", "$0.0000001", "0.1234567", 3]


@pytest.mark.parametrize("network", sorted(USDC))
@pytest.mark.parametrize("price", PRICES)
def test_money_prices_are_the_sdks(network: str, price: Any) -> None:
    theirs = ExactEvmServerScheme().parse_price(price, network)
    amount, asset, extra = parse_price(price, network)
    assert (amount, asset, extra) == (theirs.amount, theirs.asset, theirs.extra)


def test_explicit_prices_and_bad_ones() -> None:
    assert parse_price({"amount": "1234", "asset": "0xabc", "extra": {"name": "T", "version": "1"}}, "eip155:1") == (
        "1234",
        "0xabc",
        {"name": "T", "version": "1"},
    )
    for bad in ("-1", "$1e3", "1.5 EUR", "abc", True, None, {"amount": "1.5", "asset": "0xabc"}, {"amount": "1"}, float("nan")):
        with pytest.raises(ValueError):
            parse_price(bad, "eip155:8453")
    with pytest.raises(ValueError, match="no default USDC"):
        parse_price("$0.01", "eip155:999999")


def test_requirements_and_config_errors() -> None:
    table = RouteTable({"GET /x": {"accepts": {"scheme": "exact", "network": "eip155:8453", "payTo": PAY_TO, "price": "$0.01"}}})
    (route,) = table.routes
    assert route.options[0].requirements == {
        "scheme": "exact", "network": "eip155:8453", "asset": USDC["eip155:8453"][0], "amount": "10000", "payTo": PAY_TO,
        "maxTimeoutSeconds": 300, "extra": {"name": "USD Coin", "version": "2"},
    }  # fmt: skip
    upto = {"scheme": "upto", "network": "eip155:8453", "payTo": PAY_TO, "price": "$1", "cost": 5}
    with pytest.raises(ValueError, match="facilitatorAddress"):
        RouteTable({"POST /u": {"accepts": upto}})
    opt = RouteTable({"POST /u": {"accepts": upto}}, facilitator_address="0xF").routes[0].options[0]
    assert opt.extra["assetTransferMethod"] == "permit2" and opt.extra["facilitatorAddress"] == "0xF" and opt.hold == 5
    with pytest.raises(ValueError, match="hold"):
        RouteTable({"POST /u": {"accepts": {**upto, "cost": lambda info: 1}}}, facilitator_address="0xF")
    with pytest.raises(ValueError, match="cost"):
        RouteTable({"POST /u": {"accepts": {**upto, "cost": None}}}, facilitator_address="0xF")
    for bad in (
        {"accepts": []},
        {"accepts": {"scheme": "nope", "network": "eip155:1", "payTo": PAY_TO, "price": "$1"}},
        {"accepts": {**upto, "scheme": "exact"}, "settle": "later"},
    ):
        with pytest.raises(ValueError):
            RouteTable({"GET /bad": bad})


PATTERNS = ["GET /api/*", "POST /v1/chat/completions", "/any/:id/x", "GET /items/[id]", "GET /exact"]
REQUESTS = [
    ("GET", "/api"), ("GET", "/api/"), ("GET", "/api/a/b"), ("POST", "/api/a"), ("POST", "/v1/chat/completions"), ("post", "/V1/CHAT/COMPLETIONS"),
    ("GET", "/v1/chat/completions"), ("DELETE", "/any/7/x"), ("GET", "/any/7/y"), ("GET", "/items/3"), ("GET", "/items/3/4"),
    ("GET", "/exact"), ("GET", "/exact/"), ("GET", "//exact"), ("GET", "/exac"), ("GET", "/exact?q=1"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_paths_match_as_the_sdk_matches(method: str, path: str) -> None:
    accepts = {"scheme": "exact", "network": "eip155:8453", "payTo": PAY_TO, "price": "$0.01"}
    ours = RouteTable({p: {"accepts": accepts} for p in PATTERNS}).match(method, path.split("?")[0], path)
    compiled = [(p, *x402HTTPServerBase._parse_route_pattern(p)) for p in PATTERNS]
    norm = x402HTTPServerBase._normalize_path(path)
    theirs = next((p for p, verb, _raw, rx in compiled if rx.match(norm) and verb in ("*", method.upper())), None)
    assert (ours.key if ours else None) == theirs


def test_an_encoded_path_does_not_bypass_a_paid_route() -> None:
    accepts = {"scheme": "exact", "network": "eip155:8453", "payTo": PAY_TO, "price": "$0.01"}
    table = RouteTable({"GET /paid": {"accepts": accepts}})
    assert table.match("GET", "/paid", "/p%61id") is not None  # raw spelling decoded per segment
    assert table.match("GET", "/paid", "/paid%2F") is not None
