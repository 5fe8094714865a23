"""The Grafana dashboard ``ops/grafana/mailpulse.json``, written from the panel data here.

``python -m ops.dashboard`` rewrites the file; a unit test fails when it is stale, when a
query does not parse, or when it names a metric the services do not export. Every query
reads the Prometheus data source chosen in the dashboard's ``datasource`` variable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = Path(__file__).parent / "grafana" / "mailpulse.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
WIDTH, HEIGHT = 12, 8


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    description: str = ""


PANELS = (
    Panel(
        "Ingest requests by status",
        "reqps",
        (
            (
                "sum by (status) (rate(mailpulse_ingest_requests_total[$__rate_interval]))",
                "{{status}}",
            ),
        ),
        "Webhook requests answered per second; 200 = appended durably, 401 = failed "
        "verification, 503 = the broker did not acknowledge in time.",
    ),
    Panel(
        "Ingest accepted by source",
        "reqps",
        (
            (
                'sum by (source) (rate(mailpulse_ingest_requests_total{status="200"}'
                "[$__rate_interval]))",
                "{{source}}",
            ),
        ),
    ),
    Panel(
        "Verification failures by reason",
        "reqps",
        (
            (
                "sum by (source, reason) "
                "(rate(mailpulse_ingest_verification_failures_total[$__rate_interval]))",
                "{{source}} {{reason}}",
            ),
        ),
    ),
    Panel(
        "Append latency (request to acks=all)",
        "s",
        tuple(
            (
                f"histogram_quantile({q}, sum by (le) "
                "(rate(mailpulse_ingest_append_seconds_bucket[$__rate_interval])))",
                f"p{round(q * 100)}",
            )
            for q in (0.5, 0.9, 0.99)
        ),
    ),
    Panel(
        "Consumer lag",
        "short",
        (("max by (group, topic) (mailpulse_consumer_lag)", "{{group}} {{topic}}"),),
        "Records the processors' consumer group has not committed, per input topic "
        "(every worker reports its group's figure: the max is taken).",
    ),
    Panel(
        "Events normalised by provider",
        "ops",
        (
            (
                "sum by (provider) (rate(mailpulse_events_normalised_total[$__rate_interval]))",
                "{{provider}}",
            ),
        ),
    ),
    Panel(
        "DLQ records by reason",
        "ops",
        (
            (
                "sum by (stage, reason) (rate(mailpulse_dlq_records_total[$__rate_interval]))",
                "{{stage}} {{reason}}",
            ),
        ),
        "Inputs sent to webhooks.dlq; re-drive them with `mailpulse redrive` after a fix.",
    ),
    Panel(
        "Suppression commands by action",
        "ops",
        (
            (
                "sum by (action) (rate(mailpulse_suppression_commands_total[$__rate_interval]))",
                "{{action}}",
            ),
        ),
    ),
    Panel(
        "Events applied and duplicates skipped",
        "ops",
        (
            (
                "sum by (table) (rate(mailpulse_events_applied_total[$__rate_interval]))",
                "applied {{table}}",
            ),
            (
                "sum by (table) (rate(mailpulse_events_duplicate_total[$__rate_interval]))",
                "duplicate {{table}}",
            ),
        ),
    ),
    Panel(
        "Appends in flight; control messages waiting for an operator",
        "short",
        (
            ("sum(mailpulse_ingest_in_flight)", "in flight"),
            (
                "sum by (source, kind) (increase(mailpulse_ingest_control_messages_total[1h]))",
                "{{kind}} ({{source}}, last hour)",
            ),
        ),
        "A subscription confirmation is confirmed with `mailpulse sns confirm`.",
    ),
)


def panel_json(n: int, panel: Panel) -> dict[str, Any]:
    return {
        "id": n + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": HEIGHT, "w": WIDTH, "x": (n % 2) * WIDTH, "y": (n // 2) * HEIGHT},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": e, "legendFormat": f}
            for i, (e, f) in enumerate(panel.queries)
        ],
    }


def dashboard() -> dict[str, Any]:
    return {
        "uid": "mailpulse",
        "title": "mailpulse",
        "description": "Ingest, processors and suppression commands (metrics of /metrics).",
        "tags": ["mailpulse"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": [panel_json(n, p) for n, p in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {FILE}")


if __name__ == "__main__":
    main()
