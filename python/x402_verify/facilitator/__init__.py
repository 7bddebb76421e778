"""The x402 facilitator service: ``/verify``, ``/settle``, ``/supported`` over the ``Verifier``
(needs ``x402-verify[server]``). Build it with ``create_app(...)`` (an ASGI app) or run it with
``x402-verify serve``; docs/facilitator.md."""

from __future__ import annotations

from typing import Any

from x402_verify.facilitator.config import DEFAULT_NETWORKS, DEFAULT_STORE, FacilitatorConfig

__all__ = ["DEFAULT_NETWORKS", "DEFAULT_STORE", "FacilitatorApp", "FacilitatorConfig", "create_app", "reservation_owner"]


def __getattr__(name: str) -> Any:
    # The app needs prometheus-client (the `server` extra); the config and the CLI's flags do not.
    if name in ("FacilitatorApp", "create_app", "reservation_owner"):
        from x402_verify.facilitator import app

        return getattr(app, name)
    raise AttributeError(name)
