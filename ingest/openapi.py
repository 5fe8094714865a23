"""The OpenAPI 3.1 document of the ingest HTTP API (DESIGN.md §2), served at
``GET /openapi.json``.

``ingest/openapi.json`` is generated from ``document()`` and committed (package data):
``python -m ingest.openapi`` rewrites it; a unit test fails when it is stale or when the
documented paths and methods differ from the routes ``create_app`` registers.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

FILE = Path(__file__).with_name("openapi.json")
JSON = "application/json"


def error(description: str, example: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A JSON error response (``{"error": ..., ...}``); shared with the processors' document."""
    return {
        "description": description,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}, "example": example}},
        **extra,
    }


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "Machine-readable code."},
        "reason": {"type": "string"},
        "detail": {"type": "string"},
    },
    "additionalProperties": True,
}
# GET /: what ingest.app.route_index answers.
INDEX_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["service", "routes", "docs"],
    "properties": {
        "service": {"type": "string"},
        "routes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "method": {"type": "string"},
                    "path": {"type": "string"},
                    "summary": {"type": "string"},
                },
            },
        },
        "docs": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def _plain(description: str, media: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def document() -> dict[str, Any]:
    """The ingest OpenAPI document."""
    accepted = {
        "type": "object",
        "properties": {
            "status": {"const": "accepted"},
            "partition": {"type": "integer", "description": "webhooks.raw partition"},
            "offset": {"type": "integer", "description": "webhooks.raw offset"},
        },
    }
    received = {"type": "object", "properties": {"received": {"const": True}}}
    body = {
        "required": True,
        "description": "The provider's request body, verified and stored byte for byte.",
        "content": {
            JSON: {"schema": {}},
            "application/x-www-form-urlencoded": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
    unverified = error(
        "Signature (or basic auth) missing or wrong; nothing was appended.",
        {"error": "invalid_signature", "reason": "signature_mismatch"},
    )
    too_large = error(
        "Body over `max_body_bytes` (default 1 MiB).",
        {"error": "body_too_large", "limit_bytes": 1048576},
    )
    not_durable = error(
        "The append could not be made durable in time; the provider should retry.",
        {"error": "not_durable", "detail": "the event was not stored; retry later"},
        headers=RETRY_AFTER,
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mailpulse ingest",
            "version": "1",
            "description": "Verified, durable intake of email providers' delivery webhooks. "
            "Every accepted request is appended to the `webhooks.raw` Kafka topic with "
            "acks=all before the answer; a wrong method on a known path is 405.",
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": {
            "/webhooks/{source}": {
                "parameters": [
                    {
                        "name": "source",
                        "in": "path",
                        "required": True,
                        "description": "A configured source (`[ingest.sources.<name>]`); "
                        "its provider kind decides how the request is verified.",
                        "schema": {"type": "string"},
                    }
                ],
                "post": {
                    "operationId": "postWebhook",
                    "summary": "Receive one provider webhook",
                    "requestBody": body,
                    "responses": {
                        "200": _plain(
                            "Stored durably (the generic source answers {received: true}).",
                            JSON,
                            {"oneOf": [accepted, received]},
                        ),
                        "401": unverified,
                        "404": error("Unknown source.", {"error": "unknown_source"}),
                        "413": too_large,
                        "503": not_durable,
                    },
                },
                "head": {
                    "operationId": "probeWebhook",
                    "summary": "URL check (Mandrill probes a webhook URL before using it)",
                    "responses": {
                        "200": {"description": "Known source."},
                        "404": {"description": "Unknown source."},
                    },
                },
            },
            "/api/webhooks": {
                "post": {
                    "operationId": "postGenericWebhook",
                    "summary": "Seed-003 inbound path of the generic platform (source `generic`)",
                    "requestBody": body,
                    "responses": {
                        "200": _plain("Stored durably.", JSON, received),
                        "401": unverified,
                        "404": error(
                            "No `generic` source configured.", {"error": "unknown_source"}
                        ),
                        "413": too_large,
                        "503": not_durable,
                    },
                }
            },
            "/": {
                "get": {
                    "operationId": "index",
                    "summary": "This index: the routes and where the documentation is",
                    "responses": {"200": _plain("Routes and docs.", JSON, INDEX_SCHEMA)},
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "The process is up",
                    "responses": {"200": _plain("Up.", JSON, {"type": "object"})},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "The broker is reachable",
                    "responses": {
                        "200": _plain("Ready.", JSON, {"type": "object"}),
                        "503": _plain("Broker unreachable.", JSON, {"type": "object"}),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": _plain("Text exposition.", "text/plain", {"type": "string"})
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": _plain("OpenAPI 3.1.", JSON, {"type": "object"})},
                }
            },
        },
        "components": {"schemas": {"Error": ERROR_SCHEMA}},
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def served(package: str = "ingest") -> bytes:
    """The committed document as packaged (what ``GET /openapi.json`` answers)."""
    return resources.files(package).joinpath("openapi.json").read_bytes()


def main() -> None:
    FILE.write_text(render(document()), encoding="utf-8")
    print(f"wrote {FILE}")


if __name__ == "__main__":
    main()
