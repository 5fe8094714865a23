"""Pydantic models for everything mailpulse reads or writes: provider payloads, the raw
webhook envelope, canonical events, per-address and per-message state, and commands."""
