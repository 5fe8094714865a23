"""Admin API on the workers' web port: an operator's manual suppress and unsuppress.

* ``POST /admin/suppressions/``   — suppress ``address`` for ``scope``
* ``POST /admin/unsuppressions/`` — lift every suppression of ``scope`` up to now

Both take ``{"address": ..., "scope": "all"|"marketing", "reason": "..."}`` (reason
optional) and ``Authorization: Bearer <ProcessorSettings.admin_token>``. An action is
not applied here: it is appended to ``webhooks.raw`` (acks=all, awaited) as a record of
provider ``admin`` and answered ``202`` with its ``action_id``; the normaliser and the
address agent then apply it like any provider event, so a replay or a rebuild from the
raw log reproduces it. Each POST is a new action (its own id); repeating one is harmless
(a second suppress adds a cause, a second unsuppress lifts nothing more).

401 missing/wrong token (nothing appended), 403 admin API disabled (no token configured),
400 body not JSON, 422 body of the wrong shape, 503 + Retry-After append not durable.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import faust
import orjson
import structlog
from faust.web import Request, Response, View
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from processors.addresses import MAX_ADDRESS_CHARS, NormaliseOptions, normalise_address
from processors.agents import Topology
from processors.errors import NormaliseError
from processors.settings import ProcessorSettings
from schemas.commands import ManualActionRequest
from schemas.common import SuppressionScope
from schemas.raw import (
    ADMIN_PROVIDER,
    ADMIN_SOURCE,
    ADMIN_VERIFICATION,
    MANUAL_ACTION_KIND,
    RawWebhook,
)

log = structlog.get_logger("processors.admin")

ActionKind = Literal["suppress", "unsuppress"]
# Path -> action; registration and the OpenAPI route test both read this table.
ROUTES: dict[str, ActionKind] = {
    "/admin/suppressions/": "suppress",
    "/admin/unsuppressions/": "unsuppress",
}
MAX_BODY_BYTES = 4096
MAX_REASON_CHARS = 200
APPEND_TIMEOUT_S = 10.0
RETRY_AFTER_S = 5
REALM = "mailpulse-admin"

AuthVerdict = Literal["ok", "disabled", "missing", "not_bearer", "invalid"]
# (partition, offset) of the durable record, like ingest's Publisher.append.
Append = Callable[[RawWebhook, bytes], Awaitable[tuple[int, int]]]


class AdminRequest(BaseModel):
    """The HTTP body of both admin routes."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    address: str = Field(min_length=3, max_length=MAX_ADDRESS_CHARS)
    scope: SuppressionScope
    reason: str = Field(default="", max_length=MAX_REASON_CHARS, pattern=r"^[^\x00-\x1f\x7f]*$")


def check_bearer(authorization: str | None, token: SecretStr | None) -> AuthVerdict:
    """Is ``authorization`` ``Bearer <token>``? Compared in constant time.

    A missing or blank token means the admin API is disabled: nothing can match it.
    """
    expected = token.get_secret_value().strip() if token is not None else ""
    if not expected:
        return "disabled"
    if not authorization or not authorization.strip():
        return "missing"
    scheme, _, presented = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return "not_bearer"
    # Digests first, so the comparison takes the same time whatever the lengths.
    ok = hmac.compare_digest(
        hashlib.sha256(presented.strip().encode("utf-8", "replace")).digest(),
        hashlib.sha256(expected.encode()).digest(),
    )
    return "ok" if ok else "invalid"


@dataclass(frozen=True)
class Reply:
    status: int
    body: Mapping[str, object]
    headers: Mapping[str, str] = field(default_factory=dict)


def unauthorized(
    reason: AuthVerdict,
    realm: str = REALM,
    disabled: tuple[str, str] = ("admin_disabled", "processors.admin_token"),
) -> Reply:
    """The refusal of a request whose bearer check said ``reason`` (not ``ok``):
    403 when no token is configured (``disabled``: error code, setting), else 401."""
    if reason == "disabled":
        error, setting = disabled
        detail = f"no token is configured ({setting})"
        return Reply(403, {"error": error, "detail": detail})
    challenge = f'Bearer realm="{realm}"'
    if reason == "invalid":
        challenge += ', error="invalid_token"'
    return Reply(401, {"error": "unauthorized", "reason": reason}, {"WWW-Authenticate": challenge})


def validation_detail(exc: ValidationError) -> str:
    """Locations and messages only, never the values (an address is personal data, a
    secret is a secret)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
    )


@dataclass(frozen=True)
class AdminActions:
    """Check, validate, append, answer: the admin routes without Faust (unit-testable)."""

    token: SecretStr | None
    options: NormaliseOptions
    append: Append
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    new_id: Callable[[], str] = lambda: f"admin:{uuid.uuid4().hex}"

    async def handle(self, action: ActionKind, authorization: str | None, body: bytes) -> Reply:
        verdict = check_bearer(authorization, self.token)
        if verdict != "ok":
            log.info("admin_unauthorized", action=action, reason=verdict)
            return unauthorized(verdict)
        if len(body) > MAX_BODY_BYTES:
            return Reply(413, {"error": "body_too_large", "limit_bytes": MAX_BODY_BYTES})
        try:
            request = AdminRequest.model_validate_json(body)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                return Reply(400, {"error": "invalid_json", "detail": "the body is not JSON"})
            return Reply(422, {"error": "invalid_request", "detail": validation_detail(exc)})
        try:
            address = normalise_address(request.address, self.options)
        except NormaliseError:
            return Reply(422, {"error": "invalid_request", "detail": "address: not an email"})

        record = ManualActionRequest(
            action_id=self.new_id(),
            action=action,
            address=request.address,
            scope=request.scope,
            reason=request.reason,
            requested_at=self.now(),
        )
        raw = RawWebhook(
            body=record.model_dump_json().encode(),
            source=ADMIN_SOURCE,
            provider=ADMIN_PROVIDER,
            received_at=record.requested_at,
            verification=ADMIN_VERIFICATION,
            delivery_id=record.action_id,
            kind=MANUAL_ACTION_KIND,
            http_headers={"content-type": "application/json"},
        )
        try:
            partition, offset = await asyncio.wait_for(
                self.append(raw, record.action_id.encode()), APPEND_TIMEOUT_S
            )
        except Exception as exc:  # any failure to make it durable: the caller retries
            log.warning("admin_append_failed", action_id=record.action_id, error=type(exc).__name__)
            return Reply(
                503,
                {"error": "not_durable", "detail": "the action was not stored; retry later"},
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        log.info(
            "admin_action",
            action_id=record.action_id,
            action=action,
            scope=request.scope,
            address=address,
            partition=partition,
            offset=offset,
        )
        return Reply(
            202,
            {
                "status": "accepted",
                "action_id": record.action_id,
                "action": action,
                "address": address,
                "scope": request.scope,
                "raw": {"partition": partition, "offset": offset},
            },
        )


def register_admin(app: faust.App, topo: Topology, settings: ProcessorSettings) -> None:
    """Attach the admin routes; actions go to ``topo.raw`` through the worker's producer."""

    async def append(record: RawWebhook, key: bytes) -> tuple[int, int]:
        # The worker's producer has acks=-1 (all); awaiting the future awaits the ack.
        pending = await topo.raw.send(key=key, value=record.body, headers=record.kafka_headers())
        metadata = await pending
        return int(metadata.partition), int(metadata.offset)

    actions = AdminActions(settings.admin_token, settings.normalise, append)

    def page(path: str, action: ActionKind) -> None:
        class AdminView(View):
            async def post(self, request: Request) -> Response:
                body = await request.content.read(MAX_BODY_BYTES + 1)  # type: ignore[attr-defined]
                reply = await actions.handle(action, request.headers.get("Authorization"), body)
                return self.bytes(
                    orjson.dumps(reply.body),
                    content_type="application/json",
                    status=reply.status,
                    headers=dict(reply.headers),
                )

        app.page(path, name=f"admin_{action}")(AdminView)

    for path, action in ROUTES.items():
        page(path, action)
