"""The OpenAPI 3.1 document of the processors' web port (query and admin API), served at
``GET /openapi.json`` by every worker.

``processors/openapi.json`` is generated from ``document()`` and committed (package
data): ``python -m processors.openapi`` rewrites it; a unit test fails when it is stale
or when its paths and methods differ from the pages ``create_app`` registers. Response
schemas are the pydantic models' own (the same as ``schemas/jsonschema/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from ingest.openapi import ERROR_SCHEMA, JSON, RETRY_AFTER, error, render
from processors.admin import MAX_BODY_BYTES, ROUTES, AdminRequest
from processors.webhooks import openapi as webhooks_openapi
from schemas.commands import SuppressionCommand
from schemas.state import AddressState, MessageState

FILE = Path(__file__).with_name("openapi.json")
REF = "#/components/schemas/{model}"


def _ok(description: str, schema: dict[str, Any], media: str = JSON) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _components() -> dict[str, Any]:
    _, top = models_json_schema(
        [
            (AddressState, "serialization"),
            (MessageState, "serialization"),
            (SuppressionCommand, "serialization"),
            (AdminRequest, "validation"),
        ],
        ref_template=REF,
    )
    schemas: dict[str, Any] = {**top["$defs"], **webhooks_openapi.components()}
    schemas["Error"] = ERROR_SCHEMA
    schemas["SuppressionRow"] = {
        "type": "object",
        "required": ["address", "suppression"],
        "properties": {
            "address": {"type": "string"},
            "suppression": {
                "type": "object",
                "description": "Suppressed scopes only.",
                "additionalProperties": _ref("ScopeSuppression"),
            },
        },
    }
    schemas["ActionAccepted"] = {
        "type": "object",
        "required": ["status", "action_id", "action", "address", "scope", "raw"],
        "properties": {
            "status": {"const": "accepted"},
            "action_id": {
                "type": "string",
                "description": "Cause of the resulting SuppressionCommand on "
                "suppression.commands (change.cause).",
            },
            "action": {"enum": ["suppress", "unsuppress"]},
            "address": {"type": "string", "description": "Normalised address."},
            "scope": {"enum": ["all", "marketing"]},
            "raw": {
                "type": "object",
                "description": "Where the action sits in webhooks.raw.",
                "properties": {"partition": {"type": "integer"}, "offset": {"type": "integer"}},
            },
        },
    }
    return schemas


def _page_params() -> list[dict[str, Any]]:
    def query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "description": description, "schema": schema}

    return [
        query("scope", "Only this scope.", {"enum": ["all", "marketing"]}),
        query("after", "Cursor: the last address of the previous page.", {"type": "string"}),
        query("limit", "Page size (1-1000).", {"type": "integer", "default": 100}),
    ]


def _admin(action: str) -> dict[str, Any]:
    lifts = action == "unsuppress"
    return {
        "post": {
            "operationId": f"admin_{action}",
            "summary": (
                "Lift every suppression of the scope caused up to now"
                if lifts
                else "Suppress an address (reason `manual` or `manual:<reason>`)"
            ),
            "description": "Appended to webhooks.raw (acks=all) and applied by the address "
            "agent like a provider event: a SuppressionCommand (see components) follows "
            "on suppression.commands if the address's suppression changes.",
            "security": [{"adminToken": []}],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _ref("AdminRequest")}},
            },
            "responses": {
                "202": _ok("Stored durably; applied asynchronously.", _ref("ActionAccepted")),
                "400": error("Body is not JSON.", {"error": "invalid_json"}),
                "401": error(
                    "Missing or wrong bearer token; nothing was appended.",
                    {"error": "unauthorized", "reason": "invalid"},
                    headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
                ),
                "403": error("No admin token configured.", {"error": "admin_disabled"}),
                "413": error(
                    f"Body over {MAX_BODY_BYTES} bytes.",
                    {"error": "body_too_large", "limit_bytes": MAX_BODY_BYTES},
                ),
                "422": error(
                    "Body of the wrong shape (locations and messages, never values).",
                    {"error": "invalid_request", "detail": "scope: Input should be 'all'…"},
                ),
                "503": error(
                    "Not stored durably in time; retry.",
                    {"error": "not_durable"},
                    headers=RETRY_AFTER,
                ),
            },
        }
    }


def _unavailable(description: str) -> dict[str, Any]:
    return error(
        description + " Retry after `Retry-After` seconds. `reason`: starting, "
        "rebalancing, stopping, no_route (partition owner unknown) or peer (the owner "
        "did not answer).",
        {"error": "worker_unavailable", "reason": "rebalancing"},
        headers=RETRY_AFTER,
    )


def document() -> dict[str, Any]:
    """The processors OpenAPI document."""
    not_found = error("Never seen.", {"error": "not_found"})
    unavailable = _unavailable("The worker, or the key's owner, cannot answer now.")
    paths: dict[str, Any] = {
        "/addresses/{address}/": {
            "get": {
                "operationId": "getAddress",
                "summary": "An address's state (normalised before lookup)",
                "parameters": [
                    {
                        "name": "address",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _ok("Address state.", _ref("AddressState")),
                    "400": error("Not an email address.", {"error": "invalid_address"}),
                    "404": not_found,
                    "503": unavailable,
                },
            }
        },
        "/messages/{message_id}/": {
            "get": {
                "operationId": "getMessage",
                "summary": "A message's delivery status and event history",
                "parameters": [
                    {
                        "name": "message_id",
                        "in": "path",
                        "required": True,
                        "description": "Provider message id.",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _ok("Message state.", _ref("MessageState")),
                    "404": not_found,
                    "503": unavailable,
                },
            }
        },
        "/suppressions/": {
            "get": {
                "operationId": "listSuppressions",
                "summary": "Suppressed addresses in address order, paginated",
                "parameters": [
                    *_page_params(),
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"enum": ["json", "ndjson", "csv"], "default": "json"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "One page. ndjson/csv give the next cursor in the "
                        "X-Next-Cursor header; json in `next`.",
                        "headers": {"X-Next-Cursor": {"schema": {"type": "string"}}},
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "items": {
                                            "type": "array",
                                            "items": _ref("SuppressionRow"),
                                        },
                                        "next": {"type": ["string", "null"]},
                                    },
                                }
                            },
                            "application/x-ndjson": {"schema": {"type": "string"}},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "400": error("Bad scope.", {"error": "bad_request"}),
                    "503": _unavailable("A worker cannot answer for its partitions now."),
                },
            }
        },
        "/internal/suppressions/": {
            "get": {
                "operationId": "localSuppressions",
                "summary": "Worker to worker: this worker's partitions of /suppressions/",
                "x-internal": True,
                "parameters": [
                    *_page_params(),
                    {
                        "name": "partitions",
                        "in": "query",
                        "description": "Comma-separated partitions the asking worker expects "
                        "this one to own (default: all it owns); 503 if it does not own them.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": _ok("Rows.", {"type": "array", "items": _ref("SuppressionRow")}),
                    "400": error("Bad scope.", {"error": "bad_request"}),
                    "503": _unavailable("Not ready, or not the owner of those partitions."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "responses": {"200": _ok("Text exposition.", {"type": "string"}, "text/plain")},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": _ok("OpenAPI 3.1.", {"type": "object"})},
            }
        },
    }
    for path, action in ROUTES.items():
        paths[path] = _admin(action)
    paths.update(webhooks_openapi.paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mailpulse processors",
            "version": "1",
            "description": "Query, admin and webhook manage API on every processors worker's "
            "web port. Any worker answers for any key (requests are routed to the partition "
            "owner). Outbound webhook deliveries are POSTed with the body `WebhookBody` "
            "(schemas/jsonschema/webhook_delivery.json) and `X-Webhook-Signature`.",
        },
        "servers": [{"url": "http://127.0.0.1:6066"}],
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "processors.admin_token (MAILPULSE_PROCESSORS__ADMIN_TOKEN).",
                },
                "webhooksToken": webhooks_openapi.SECURITY_SCHEME,
            },
        },
    }


def main() -> None:
    FILE.write_text(render(document()), encoding="utf-8")
    print(f"wrote {FILE}")


if __name__ == "__main__":
    main()
