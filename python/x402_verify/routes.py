"""Paid routes in the x402 SDK's route-config shape, turned into payment requirements.

``{"POST /v1/chat/completions": {"accepts": {...} | [...], "description": ..., "mimeType": ...}}``:
keys are ``"VERB /path"`` (a bare path matches every verb; ``*``, ``:param`` and ``[param]``
patterns); each accepted option has ``scheme``, ``network``, ``payTo``, ``price``
(``"$0.01"``, ``0.01``, ``"0.01 USDC"`` for the network's USDC, or ``{"amount", "asset",
"extra"}``), ``maxTimeoutSeconds`` (default 300) and ``extra``. Requirements come out as the
SDK's server builds them (same amounts, same ``extra``), so an SDK client pays them unchanged.

Keys the SDK does not read, for this gateway (an SDK middleware ignores them):
``settle``: ``"after"`` (default: when the handler has answered, before its body is sent) or
``"before"`` (before the handler runs); ``streamSettle``: ``"end"`` (default: a streamed body
is settled when it ends) or ``"start"`` (before its first byte); for upto options, ``cost``
(atomic units charged per request, or a function of the finished exchange, at most ``hold``),
``hold`` (charged before the handler; default ``cost``) and ``streamCost`` (a function of each
streamed body chunk, charged before the chunk is sent).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from x402_verify._core import V1_NETWORK_NAMES, caip2_chain_id

__all__ = ["PaymentOption", "Route", "RouteTable", "USDC", "parse_price"]

#: Each network's USDC (the x402 SDK's default assets): address, EIP-712 name and version.
USDC: Mapping[str, tuple[str, str, str]] = {
    "eip155:8453": ("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USD Coin", "2"),
    "eip155:84532": ("0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC", "2"),
    "eip155:1": ("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "USD Coin", "2"),
    "eip155:43114": ("0xB97EF9Ef8734C71904D8002F8b6Bc66Dd9c48a6E", "USD Coin", "2"),
    "eip155:137": ("0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359", "USD Coin", "2"),
    "eip155:42161": ("0xaf88d065e77c8cC2239327C5EDb3A432268e5831", "USD Coin", "2"),
    "eip155:421614": ("0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d", "USD Coin", "2"),
    "eip155:143": ("0x754704Bc059F8C67012fEd69BC8A327a5aafb603", "USDC", "2"),
    "eip155:10143": ("0x534b2f3A21130d7a60830c2Df862319e593943A3", "USDC", "2"),
    "eip155:50": ("0xfA2958CB79b0491CC627c1557F441eF849Ca8eb1", "USDC", "2"),
    "eip155:51": ("0xb5AB69F7bBada22B28e79C8FFAECe55eF1c771D4", "USDC", "2"),
    "eip155:42220": ("0xcebA9300f2b948710d2653dD7B07f33A8B32118C", "USDC", "2"),
    "eip155:11142220": ("0x01C5C0122039549AD1493B8220cABEdD739BC44E", "USDC", "2"),
    "eip155:1329": ("0xe15fC38F6D8c56aF07bbCBe3BAf5708A2Bf42392", "USDC", "2"),
    "eip155:1328": ("0x4fCF1784B31630811181f670Aea7A7bEF803eaED", "USDC", "2"),
    "eip155:5042": ("0x3600000000000000000000000000000000000000", "USDC", "2"),
    "eip155:5042002": ("0x3600000000000000000000000000000000000000", "USDC", "2"),
}
USDC_DECIMALS = 6

_MONEY = re.compile(r"\$?\s*(\d+(?:\.\d+)?)(?:\s+([A-Za-z][A-Za-z0-9.]*))?")


def parse_price(price: Any, network: str) -> tuple[str, str, dict[str, Any]]:
    """``(amount, asset, extra)`` for a route price, as the SDK's ``ExactEvmScheme.parse_price``
    (money is truncated toward zero to the token's 6 decimals, never rounded up)."""
    if isinstance(price, Mapping):
        amount, asset = price.get("amount"), price.get("asset")
        if not isinstance(amount, (str, int)) or isinstance(amount, bool) or not str(amount).isdigit():
            raise ValueError(f"price amount must be atomic units (digits), not {amount!r}")
        if not isinstance(asset, str) or not asset:
            raise ValueError(f"an explicit price needs its asset address (network {network})")
        return str(int(amount)), asset, dict(price.get("extra") or {})
    if isinstance(price, bool) or not isinstance(price, (str, int, float)):
        raise ValueError(f"unreadable price {price!r}")
    if isinstance(price, (int, float)):
        if price < 0 or price != price or price in (float("inf"),):
            raise ValueError(f"invalid price {price!r}")
        text = format(Decimal(repr(price)), "f")
    else:
        m = _MONEY.fullmatch(price.strip())
        if not m or (m.group(2) and m.group(2).upper() not in ("USD", "USDC")):
            raise ValueError(f"invalid price {price!r}: use '$0.01', '0.01 USDC' or {{'amount', 'asset'}}")
        text = m.group(1)
    if network not in USDC:
        raise ValueError(f"no default USDC for {network}: give the price as {{'amount', 'asset', 'extra'}}")
    try:
        units = int(Decimal(text).scaleb(USDC_DECIMALS))  # int() truncates toward zero, as the SDK
    except InvalidOperation as exc:
        raise ValueError(f"invalid price {price!r}") from exc
    asset, name, version = USDC[network]
    return str(units), asset, {"name": name, "version": version}


def _v1_name(network: str) -> str | None:
    chain = caip2_chain_id(network)
    if chain is None:
        return network if network in V1_NETWORK_NAMES else None
    return next((n for n, c in V1_NETWORK_NAMES.items() if c == chain), None)


@dataclass(frozen=True)
class PaymentOption:
    """One accepted way to pay, with its requirements built once."""

    scheme: str
    network: str
    pay_to: str
    amount: str
    asset: str
    max_timeout_seconds: int
    extra: Mapping[str, Any]
    cost: int | Callable[[Mapping[str, Any]], int] | None = None
    hold: int = 0
    stream_cost: Callable[[bytes], int] | None = None

    @property
    def requirements(self) -> dict[str, Any]:
        """v2 PaymentRequirements (a fresh dict)."""
        return {
            "scheme": self.scheme,
            "network": self.network,
            "asset": self.asset,
            "amount": self.amount,
            "payTo": self.pay_to,
            "maxTimeoutSeconds": self.max_timeout_seconds,
            "extra": dict(self.extra),
        }

    def requirements_v1(self, resource: str, description: str, mime_type: str) -> dict[str, Any] | None:
        """v1 PaymentRequirements, or None where the network has no v1 name (or for upto)."""
        name = _v1_name(self.network)
        if name is None or self.scheme != "exact" or self.extra.get("assetTransferMethod", "eip3009") != "eip3009":
            return None
        return {
            "scheme": self.scheme,
            "network": name,
            "maxAmountRequired": self.amount,
            "resource": resource,
            "description": description,
            "mimeType": mime_type,
            "payTo": self.pay_to,
            "maxTimeoutSeconds": self.max_timeout_seconds,
            "asset": self.asset,
            "extra": dict(self.extra),
        }

    def matches(self, accepted: Mapping[str, Any]) -> bool:
        """The SDK's rule: core terms equal, this option's ``extra`` a subset of the client's."""
        try:
            same = (
                accepted.get("scheme") == self.scheme
                and accepted.get("network") == self.network
                and str(accepted.get("amount")) == self.amount
                and accepted.get("asset") == self.asset
                and accepted.get("payTo") == self.pay_to
                and accepted.get("maxTimeoutSeconds") == self.max_timeout_seconds
            )
            extra = accepted.get("extra") or {}
            return bool(same) and isinstance(extra, Mapping) and all(extra.get(k) == v for k, v in self.extra.items())
        except Exception:  # an odd client value is simply no match
            return False


@dataclass(frozen=True)
class Route:
    key: str
    verb: str
    regex: re.Pattern[str]
    options: tuple[PaymentOption, ...]
    description: str = ""
    mime_type: str = ""
    resource: str | None = None
    settle: str = "after"
    stream_settle: str = "end"
    config: Mapping[str, Any] = field(default_factory=dict)

    def select(self, scheme: str | None, network: str | None, accepted: Mapping[str, Any] | None) -> PaymentOption:
        """The option a payment was made for: an exact match of ``accepted``, else the first
        with its scheme and network, else the first (the verifier then says what is wrong)."""
        if accepted is not None:
            # An option equal to what the client echoed, else the SDK's rule (extra a subset).
            for opt in self.options:
                if opt.matches(accepted) and accepted.get("extra") == dict(opt.extra):
                    return opt
            for opt in self.options:
                if opt.matches(accepted):
                    return opt
        for opt in self.options:
            if opt.scheme == scheme and (opt.network == network or _v1_name(opt.network) == network):
                return opt
        return self.options[0]


def _compile(pattern: str) -> tuple[str, re.Pattern[str]]:
    """The SDK's ``_parse_route_pattern``."""
    parts = pattern.split(None, 1)
    verb, path = (parts[0].upper(), parts[1]) if len(parts) == 2 else ("*", pattern)
    trailing = path.endswith("/*")
    body = path[:-2] if trailing else path
    rx = "^" + re.escape(body)
    rx = rx.replace(r"\*", ".*?")
    rx = re.sub(r"\\\[([^\]]+)\\\]", r"[^/]+", rx)
    rx = re.sub(r":([a-zA-Z_]\w*)", r"[^/]+", rx)
    if trailing:
        rx += r"(?:/.*?)?"
    return verb, re.compile(rx + "$", re.IGNORECASE | re.DOTALL)


def _normalize(path: str) -> str:
    path = re.sub(r"/+", "/", path.split("?")[0].split("#")[0]).rstrip("/")
    return path or "/"


def _option(acc: Mapping[str, Any], facilitator_address: str | None) -> PaymentOption:
    if not isinstance(acc, Mapping):
        raise ValueError(f"an accepts entry is a mapping, not {type(acc).__name__}")
    scheme, network, pay_to = acc.get("scheme"), acc.get("network"), acc.get("payTo", acc.get("pay_to"))
    if scheme not in ("exact", "upto"):
        raise ValueError(f"scheme must be 'exact' or 'upto', not {scheme!r}")
    if not isinstance(network, str) or not isinstance(pay_to, str) or not pay_to:
        raise ValueError("an accepts entry needs network and payTo strings (callables are not supported)")
    amount, asset, price_extra = parse_price(acc.get("price"), network)
    timeout = acc.get("maxTimeoutSeconds", acc.get("max_timeout_seconds")) or 300
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
        raise ValueError(f"maxTimeoutSeconds must be a positive int, not {timeout!r}")
    extra: dict[str, Any] = {**price_extra, **(acc.get("extra") or {})}
    cost = acc.get("cost")
    hold = acc.get("hold")
    if scheme == "upto":
        # As the SDK's UptoEvmScheme.enhance_payment_requirements: Permit2, and the facilitator
        # the witness names.
        extra = {"assetTransferMethod": "permit2", **extra}
        if "facilitatorAddress" not in extra:
            if not facilitator_address:
                raise ValueError("upto options need extra.facilitatorAddress (or the middleware's facilitator_address)")
            extra["facilitatorAddress"] = facilitator_address
        if cost is None and acc.get("streamCost") is None:
            raise ValueError("upto options need a cost (per request) or a streamCost")
        if callable(cost) and hold is None:
            raise ValueError("a cost function needs a hold: the most one request may cost")
        if hold is None:
            hold = cost if isinstance(cost, int) else 0
        if not isinstance(hold, int) or isinstance(hold, bool) or hold < 0:
            raise ValueError(f"hold must be an int >= 0, not {hold!r}")
        if isinstance(cost, int) and (isinstance(cost, bool) or cost < 0):
            raise ValueError(f"cost must be an int >= 0 or a function, not {cost!r}")
    return PaymentOption(
        scheme=scheme, network=network, pay_to=pay_to, amount=amount, asset=asset,
        max_timeout_seconds=timeout, extra=extra, cost=cost, hold=int(hold or 0), stream_cost=acc.get("streamCost"),
    )  # fmt: skip


class RouteTable:
    """Compiled routes; ``match(method, path, raw_path)`` finds the first that applies."""

    def __init__(self, routes: Mapping[str, Mapping[str, Any]], *, facilitator_address: str | None = None) -> None:
        if not isinstance(routes, Mapping):
            raise TypeError("routes is a mapping of 'VERB /path' to route configs")
        if "accepts" in routes:  # one config for every path, as the SDK allows
            routes = {"*": routes}
        self.routes: list[Route] = []
        for pattern, cfg in routes.items():
            if not isinstance(cfg, Mapping):
                raise ValueError(f"route {pattern!r}: config is a mapping")
            accepts = cfg.get("accepts")
            accepts_list: Sequence[Any] = [accepts] if isinstance(accepts, Mapping) else list(accepts or [])
            if not accepts_list:
                raise ValueError(f"route {pattern!r}: accepts nothing")
            settle = cfg.get("settle", "after")
            stream_settle = cfg.get("streamSettle", "end")
            if settle not in ("after", "before"):
                raise ValueError(f"route {pattern!r}: settle is 'after' or 'before'")
            if stream_settle not in ("end", "start"):
                raise ValueError(f"route {pattern!r}: streamSettle is 'end' or 'start'")
            verb, regex = _compile(pattern)
            options = tuple(_option(a, facilitator_address) for a in accepts_list)
            self.routes.append(
                Route(
                    key=pattern, verb=verb, regex=regex, options=options,
                    description=str(cfg.get("description") or ""), mime_type=str(cfg.get("mimeType") or ""),
                    resource=cfg.get("resource"), settle=settle, stream_settle=stream_settle, config=cfg,
                )  # fmt: skip
            )

    def match(self, method: str, path: str, raw_path: str | None = None) -> Route | None:
        """Matches the decoded path and the raw one (percent-decoded per segment), so neither
        spelling bypasses a paid route."""
        method = method.upper()
        candidates = [_normalize(path)]
        if raw_path is not None:
            segments = [unquote(s).replace("/", "%2F") for s in raw_path.split("?")[0].split("/")]
            candidates.append(_normalize("/".join(segments)))
        for candidate in candidates:
            for route in self.routes:
                if (route.verb == "*" or route.verb == method) and route.regex.match(candidate):
                    return route
        return None
