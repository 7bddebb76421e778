"""Chain reads for x402 payments."""
