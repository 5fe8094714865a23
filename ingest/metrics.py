"""Prometheus metrics of one ingest app (own registry, so apps in one process don't clash)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "mailpulse_ingest_requests",
            "Webhook requests by source and HTTP status",
            ["source", "status"],
            registry=r,
        )
        self.verification_failures = Counter(
            "mailpulse_ingest_verification_failures",
            "Requests rejected by signature verification, by reason",
            ["source", "reason"],
            registry=r,
        )
        self.append_latency = Histogram(
            "mailpulse_ingest_append_seconds",
            "Time from request to the broker's acks=all acknowledgement",
            ["source"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.in_flight = Gauge(
            "mailpulse_ingest_in_flight", "Appends waiting for the broker", registry=r
        )
        self.control_messages = Counter(
            "mailpulse_ingest_control_messages",
            "Provider control messages (e.g. SNS SubscriptionConfirmation) needing an operator",
            ["source", "kind"],
            registry=r,
        )
