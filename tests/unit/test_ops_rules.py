"""The committed Grafana dashboard and Prometheus alert rules are current, valid for
Prometheus' own promtool, and name only metrics the services export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from ingest.metrics import IngestMetrics
from ops import dashboard
from processors.metrics import ProcessorMetrics

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "ops" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "ops" / "prometheus" / "alerts.test.yml"
# Grafana's own range variable: any range will do for parsing.
GRAFANA_RANGE = "$__rate_interval"
# Sample suffixes of each metric type, as the text exposition names the series.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exported(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry can expose, whether or not a label value exists yet."""
    return {
        family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]
    }


EXPORTED = exported(IngestMetrics().registry) | exported(ProcessorMetrics().registry)


def metric_names(node: Any) -> Iterator[str]:
    """The metric names a parsed PromQL expression selects."""
    if isinstance(node, promql_parser.VectorSelector):
        if node.name:
            yield node.name
        return
    for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            yield from metric_names(child)
    for arg in getattr(node, "args", None) or ():
        yield from metric_names(arg)


def names_in(expr: str) -> set[str]:
    return set(metric_names(promql_parser.parse(expr.replace(GRAFANA_RANGE, "5m"))))


def dashboard_queries() -> list[str]:
    doc = json.loads(dashboard.FILE.read_text(encoding="utf-8"))
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def rule_queries() -> list[str]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def promtool() -> str:
    """Prometheus' promtool: $PROMTOOL, on PATH, or where ./dev put it."""
    found = os.environ.get("PROMTOOL") or shutil.which("promtool")
    local = REPO / ".cache" / "promtool" / "promtool"
    if found is None and local.exists():
        found = str(local)
    if found is None:
        pytest.fail(
            "promtool not found: run ops/prometheus/fetch-promtool (./dev test does)",
            pytrace=False,
        )
    return found


def test_the_exported_metrics_are_what_the_code_declares() -> None:
    # A check of the check: the set is not empty and includes each type's series.
    assert "mailpulse_ingest_requests_total" in EXPORTED
    assert "mailpulse_ingest_append_seconds_bucket" in EXPORTED
    assert "mailpulse_consumer_lag" in EXPORTED
    assert "mailpulse_no_such_metric_total" not in EXPORTED


def test_committed_dashboard_is_current() -> None:
    assert dashboard.FILE.read_text(encoding="utf-8") == dashboard.render(), (
        "stale ops/grafana/mailpulse.json: run `python -m ops.dashboard` and commit"
    )


def test_dashboard_panels_are_well_formed() -> None:
    doc = json.loads(dashboard.FILE.read_text(encoding="utf-8"))
    panels = doc["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert [v["name"] for v in doc["templating"]["list"]] == ["datasource"]
    cells = set()
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        cells |= {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
    # No two panels overlap.
    assert len(cells) == sum(p["gridPos"]["w"] * p["gridPos"]["h"] for p in panels)


@pytest.mark.parametrize("source", ["dashboard", "alert rules"])
def test_every_query_names_only_exported_metrics(source: str) -> None:
    queries = dashboard_queries() if source == "dashboard" else rule_queries()
    for expr in queries:
        names = names_in(expr)
        assert names, f"{expr!r} reads no metric"
        assert names <= EXPORTED, f"{expr!r} names {sorted(names - EXPORTED)}, not exported"


def test_the_dashboard_covers_what_an_operator_needs() -> None:
    used = set().union(*(names_in(e) for e in dashboard_queries()))
    for name in (
        "mailpulse_ingest_requests_total",
        "mailpulse_ingest_verification_failures_total",
        "mailpulse_ingest_append_seconds_bucket",
        "mailpulse_consumer_lag",
        "mailpulse_dlq_records_total",
        "mailpulse_suppression_commands_total",
    ):
        assert name in used, name


def test_names_in_sees_through_functions_aggregations_and_operators() -> None:
    expr = (
        "histogram_quantile(0.9, sum by (le) (rate(a_bucket[5m]))) > 0 "
        "unless -(b) or max_over_time(c[10m:1m]) + vector(0)"
    )
    assert names_in(expr) == {"a_bucket", "b", "c"}


def test_promtool_checks_the_alert_rules_and_their_unit_tests() -> None:
    tool = promtool()
    check = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 5 rules found" in check.stdout
    tests = subprocess.run(
        [tool, "test", "rules", RULE_TESTS.name],
        capture_output=True,
        text=True,
        cwd=RULE_TESTS.parent,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Prometheus' own parser on the dashboard's queries, as recording rules."""
    rules = [
        {"record": f"mailpulse:dashboard_query_{n}", "expr": e.replace(GRAFANA_RANGE, "5m")}
        for n, e in enumerate(dashboard_queries())
    ]
    file = tmp_path / "dashboard.rules.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    check = subprocess.run(
        [promtool(), "check", "rules", str(file)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
