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
}


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
    assert set(services) == {"kafka", "ingest", "processors"}
    assert "127.0.0.1:9092:9092" in services["kafka"]["ports"]
    assert "127.0.0.1:8080:8080" in services["ingest"]["ports"]
    assert "127.0.0.1:6066:6066" in services["processors"]["ports"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in services:
        assert "healthcheck" in services[name], name
    assert "kafka-data" in compose["volumes"]


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
