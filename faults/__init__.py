"""The fault suite (``./dev faults``): each scenario runs ingest and the processors on a
three-broker cluster under load, injects one fault, and writes its figures to
RELIABILITY.md. Loopback only, bounded in time."""
