"""docker-compose.yml cannot run here (no Docker engine), so check what it promises:
the services and ports, and that every MAILPULSE_* variable is one our settings read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from ingest.settings import IngestSettings
from processors.settings import ProcessorSettings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
SETTINGS: dict[str, tuple[str, type[BaseModel]]] = {
    "ingest": ("MAILPULSE_INGEST__", IngestSettings),
    "processors": ("MAILPULSE_PROCESSORS__", ProcessorSettings),
    "ingest-cluster": ("MAILPULSE_INGEST__", IngestSettings),
    "processors-cluster": ("MAILPULSE_PROCESSORS__", ProcessorSettings),
}
CLUSTER = ("kafka-1", "kafka-2", "kafka-3", "ingest-cluster", "processors-cluster")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _field_value(model: BaseModel, path: list[str]) -> Any:
    value: Any = model
    for part in path:
        fields = type(value).model_fields
        assert part in fields, f"{type(value).__name__} has no setting {part!r}"
        value = getattr(value, part)
    return value


def test_services_ports_and_volumes() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"kafka", "ingest", "processors", *CLUSTER}
    assert "127.0.0.1:9092:9092" in services["kafka"]["ports"]
    assert "127.0.0.1:8080:8080" in services["ingest"]["ports"]
    assert "127.0.0.1:6066:6066" in services["processors"]["ports"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in services:
        assert "healthcheck" in services[name], name
    assert "kafka-data" in compose["volumes"]


def test_the_cluster_profile_is_three_voters_with_rf_3_and_min_isr_2() -> None:
    services = _compose()["services"]
    for name in CLUSTER:
        assert services[name]["profiles"] == ["cluster"], name
    for name in ("kafka", "ingest", "processors"):  # `docker compose up` stays one broker
        assert "profiles" not in services[name], name
    nodes = [services[f"kafka-{n}"]["environment"] for n in (1, 2, 3)]
    assert [env["KAFKA_NODE_ID"] for env in nodes] == ["1", "2", "3"]
    for env in nodes:
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
    assert len({env["KAFKA_ADVERTISED_LISTENERS"] for env in nodes}) == 3
    ingest = services["ingest-cluster"]["environment"]
    assert ingest["MAILPULSE_INGEST__KAFKA__MIN_INSYNC_REPLICAS"] == "2"
    processors = services["processors-cluster"]["environment"]
    assert processors["MAILPULSE_PROCESSORS__TOPICS__REPLICATION_FACTOR"] == "3"


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_environment_is_read_by_settings(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix, settings_cls = SETTINGS[service]
    env = _compose()["services"][service]["environment"]
    ours = {k: str(v) for k, v in env.items() if k.startswith(prefix)}
    assert ours, f"{service} sets no {prefix}* variable"
    repo = COMPOSE.parent
    monkeypatch.setenv(
        "MAILPULSE_CONFIG", str(repo / env["MAILPULSE_CONFIG"].removeprefix("/app/"))
    )
    for key, value in ours.items():
        monkeypatch.setenv(key, value)
    settings = settings_cls()
    for key, value in ours.items():
        path = key.removeprefix(prefix).lower().split("__")
        assert str(_field_value(settings, path)) == value, key
