"""Processors: Faust workers that turn raw webhooks into per-address and per-message state."""
