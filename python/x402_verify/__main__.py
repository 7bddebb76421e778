"""``python -m x402_verify``: the ``x402-verify`` command."""

from x402_verify.cli import main

raise SystemExit(main())
