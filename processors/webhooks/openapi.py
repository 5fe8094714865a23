"""The webhook routes' part of the processors' OpenAPI document (processors/openapi.py)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from ingest.openapi import JSON, RETRY_AFTER, error
from processors.webhooks import log_api, manage
from schemas.webhooks import (
    DeliveryRecord,
    SecretRotated,
    SecretRotation,
    WebhookBody,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookUpdate,
)

REF = "#/components/schemas/{model}"
SECURITY: list[dict[str, list[str]]] = [{"webhooksToken": []}]
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "processors.webhooks.manage_token "
    "(MAILPULSE_PROCESSORS__WEBHOOKS__MANAGE_TOKEN).",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def components() -> dict[str, Any]:
    _, top = models_json_schema(
        [
            (WebhookCreate, "validation"),
            (WebhookUpdate, "validation"),
            (SecretRotation, "validation"),
            (WebhookCreated, "serialization"),
            (WebhookList, "serialization"),
            (SecretRotated, "serialization"),
            (DeliveryRecord, "serialization"),
            (WebhookBody, "serialization"),
        ],
        ref_template=REF,
    )
    schemas: dict[str, Any] = dict(top["$defs"])
    schemas["DeliveryPage"] = {
        "type": "object",
        "required": ["deliveries", "next"],
        "properties": {
            "deliveries": {
                "type": "array",
                "description": "DeliveryRecord rows without their payload, in event time order.",
                "items": _ref("DeliveryRecord"),
            },
            "next": {"type": ["string", "null"], "description": "Cursor: pass as `after`."},
        },
    }
    return schemas


def _auth_errors() -> dict[str, Any]:
    return {
        "401": error(
            "Missing or wrong bearer token.",
            {"error": "unauthorized", "reason": "invalid"},
            headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
        ),
        "403": error("No manage token configured.", {"error": "webhooks_disabled"}),
        "503": error(
            "Not stored durably in time, or the worker cannot answer now; retry.",
            {"error": "not_durable"},
            headers=RETRY_AFTER,
        ),
    }


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": _ref(name)}}}


def _bad_body() -> dict[str, Any]:
    return {
        "400": error("Body is not JSON.", {"error": "invalid_json"}),
        "413": error("Body too large.", {"error": "body_too_large"}),
        "422": error(
            "Wrong shape, or a URL that may not be called (`url_not_allowed`: reason "
            "scheme_not_allowed, credentials_in_url, host_missing, unresolvable, "
            "address_not_allowed).",
            {
                "error": "url_not_allowed",
                "reason": "address_not_allowed",
                "detail": "127.0.0.1 is or resolves to a loopback address (127.0.0.1)",
            },
        ),
    }


def _id(name: str = "webhook_id", description: str = "The endpoint's id.") -> dict[str, Any]:
    schema = {"type": "integer"} if name == "webhook_id" else {"type": "string"}
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


_OPERATIONS: dict[str, dict[str, Any]] = {
    "list": {
        "summary": "List the registered endpoints (seed 003)",
        "responses": {"200": _ok("Every endpoint.", _ref("WebhookList"))},
    },
    "create": {
        "summary": "Register an endpoint (seed 003); no secret given: one is generated and "
        "returned in this answer only",
        "requestBody": _body("WebhookCreate"),
        "responses": {"201": _ok("Registered.", _ref("WebhookCreated")), **_bad_body()},
    },
    "get": {
        "summary": "One endpoint",
        "responses": {"200": _ok("The endpoint.", _ref("Webhook"))},
    },
    "update": {
        "summary": "Change an endpoint's url, events or active flag",
        "requestBody": _body("WebhookUpdate"),
        "responses": {"200": _ok("Changed.", _ref("Webhook")), **_bad_body()},
    },
    "delete": {
        "summary": "Delete an endpoint (its pending deliveries fail, its log is pruned)",
        "responses": {"204": {"description": "Deleted."}},
    },
    "rotate": {
        "summary": "Replace the endpoint's secret (given, or generated); returned once",
        "requestBody": {"required": False, "content": {JSON: {"schema": _ref("SecretRotation")}}},
        "responses": {"200": _ok("The new secret.", _ref("SecretRotated")), **_bad_body()},
    },
}

_LOG: dict[str, dict[str, Any]] = {
    "list": {
        "summary": "The endpoint's delivery log: status, attempts, last response, next attempt",
        "parameters": [
            _query("status", "Only this status.", {"enum": ["pending", "delivered", "failed"]}),
            _query("since", "Events received at or after (ISO 8601).", {"type": "string"}),
            _query("after", "Cursor from the previous page's `next`.", {"type": "string"}),
            _query("limit", "Page size (1-500).", {"type": "integer", "default": 100}),
        ],
        "responses": {
            "200": _ok("One page.", _ref("DeliveryPage")),
            "400": error("Bad query.", {"error": "bad_request"}),
        },
    },
    "get": {
        "summary": "One delivery, with its payload",
        "responses": {"200": _ok("The delivery.", _ref("DeliveryRecord"))},
    },
    "resend": {
        "summary": "Attempt an ended delivery again (a new series of attempts, same id)",
        "responses": {
            "202": _ok("Queued (durably).", _ref("DeliveryRecord")),
            "409": error("The delivery is pending.", {"error": "pending"}),
        },
    },
    "replay": {
        "summary": "Re-send every ended delivery of the endpoint from a point in time",
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": {
                        "type": "object",
                        "required": ["since"],
                        "properties": {"since": {"type": "string", "format": "date-time"}},
                    }
                }
            },
        },
        "responses": {
            "202": _ok(
                "Queued (durably).",
                {"type": "object", "properties": {"requeued": {"type": "integer"}}},
            ),
            "422": error("No `since`.", {"error": "invalid_request"}),
        },
    },
}


def paths() -> dict[str, Any]:
    found: dict[str, Any] = {}
    not_found = error("No such endpoint (or delivery).", {"error": "not_found"})
    for (path, method), action in manage.ROUTES.items():
        operation = dict(_OPERATIONS[action])
        operation["operationId"] = f"webhooks_{action}_{method}"
        if "{webhook_id}" in path:
            operation["parameters"] = [_id()]
            operation["responses"] = {**operation["responses"], "404": not_found}
        operation["responses"] = {**operation["responses"], **_auth_errors()}
        operation["security"] = SECURITY
        found.setdefault(path, {})[method] = operation
    for (path, method), action in log_api.ROUTES.items():
        operation = dict(_LOG[action])
        operation["operationId"] = f"webhooks_log_{action}"
        params = [_id()]
        if "{delivery_id}" in path:
            params.append(_id("delivery_id", "The delivery's id (X-Webhook-Id)."))
        operation["parameters"] = [*params, *operation.get("parameters", [])]
        operation["responses"] = {**operation["responses"], "404": not_found, **_auth_errors()}
        operation["security"] = SECURITY
        found.setdefault(path, {})[method] = operation
    found[log_api.INTERNAL] = {
        "post": {
            "operationId": "webhooks_internal",
            "summary": "Worker to worker: one log operation on this worker's partitions",
            "x-internal": True,
            "security": SECURITY,
            "parameters": [
                {
                    "name": "operation",
                    "in": "path",
                    "required": True,
                    "schema": {"enum": ["list", "get", "resend", "replay"]},
                },
                _query("webhook_id", "The endpoint.", {"type": "integer"}),
                _query("partitions", "Comma-separated partitions asked for.", {"type": "string"}),
            ],
            "responses": {
                "200": _ok("This worker's part of the answer.", {}),
                **_auth_errors(),
            },
        }
    }
    return found
