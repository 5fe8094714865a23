"""The manage API of seed 003 on the workers' web port, with a bearer token
(``processors.webhooks.manage_token``):

* ``GET    /api/webhooks/manage``                    list: ``{"webhooks": [...]}``
* ``POST   /api/webhooks/manage``                    register ``{url, events, secret?}``: 201
* ``GET    /api/webhooks/manage/{id}``               one endpoint
* ``PATCH  /api/webhooks/manage/{id}`` (or ``PUT``)  change any of ``url``, ``events``, ``active``
* ``DELETE /api/webhooks/manage/{id}``               204
* ``POST   /api/webhooks/manage/{id}/rotate-secret`` a new secret (given, or generated)

Every change is a record appended to ``webhooks.subscriptions`` (acks=all) and answered
once this worker's view has applied it; every worker's view follows the topic. A
generated secret is in the answer that made it and nowhere else (never listed, never
logged). URLs are checked by ``UrlGuard`` (https, public addresses): a refusal is
``422 {"error": "url_not_allowed", "reason": ..., "detail": ...}``.

401 missing/wrong token, 403 no token configured, 400 not JSON, 404 unknown id,
413 body too large, 422 wrong shape, 503 + Retry-After not durable or view not ready.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
import structlog
from pydantic import BaseModel, SecretStr, ValidationError

from processors.admin import Reply, check_bearer, unauthorized, validation_detail
from processors.webhooks.registry import Endpoint, create, deactivate, new_uid, rotate, update
from processors.webhooks.signing import new_secret
from processors.webhooks.ssrf import UrlGuard, UrlRefused
from schemas.webhooks import (
    SecretRotated,
    SecretRotation,
    SubscriptionRecord,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookUpdate,
)

log = structlog.get_logger("processors.webhooks")

BASE = "/api/webhooks/manage"
MAX_BODY_BYTES = 16 * 1024
RETRY_AFTER_S = 3
REALM = "mailpulse-webhooks"


class Subscriptions(Protocol):
    """Where endpoints are read and their records appended (``SubscriptionView`` and
    ``SubscriptionLog`` on a worker, a fake in the unit tests)."""

    def get(self, webhook_id: int) -> Endpoint | None: ...

    def all(self) -> list[Endpoint]: ...

    async def ready(self) -> bool: ...

    async def append(self, uid: str, record: SubscriptionRecord | None) -> int: ...


class Unavailable(Exception):
    """The subscriptions cannot be read or written now (retry)."""


def authorize(token: SecretStr | None, authorization: str | None) -> Reply | None:
    """None when ``authorization`` carries the manage token, else the refusal."""
    verdict = check_bearer(authorization, token)
    if verdict == "ok":
        return None
    disabled = ("webhooks_disabled", "processors.webhooks.manage_token")
    return unauthorized(verdict, REALM, disabled)


def unavailable(error: str) -> Reply:
    return Reply(503, {"error": error}, {"Retry-After": str(RETRY_AFTER_S)})


def _json(model: BaseModel, status: int = 200) -> Reply:
    return Reply(status, model.model_dump(mode="json"))


def _not_found(webhook_id: object) -> Reply:
    return Reply(404, {"error": "not_found", "what": "webhook", "id": str(webhook_id)[:40]})


def _parse(model: type[BaseModel], body: bytes) -> BaseModel | Reply:
    if len(body) > MAX_BODY_BYTES:
        return Reply(413, {"error": "body_too_large", "limit_bytes": MAX_BODY_BYTES})
    try:
        data = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        return Reply(400, {"error": "invalid_json"})
    if not isinstance(data, dict):
        return Reply(422, {"error": "invalid_request", "detail": "body: an object is expected"})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return Reply(422, {"error": "invalid_request", "detail": validation_detail(exc)})


def _refused(exc: UrlRefused) -> Reply:
    return Reply(422, {"error": "url_not_allowed", "reason": exc.reason, "detail": exc.detail})


@dataclass
class ManageActions:
    """Authorise, validate, append, answer: the manage routes without Faust."""

    token: SecretStr | None
    guard: UrlGuard
    subscriptions: Subscriptions
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    generate_secret: Callable[[], str] = new_secret

    async def handle(
        self, action: str, authorization: str | None, body: bytes = b"", webhook_id: str = ""
    ) -> Reply:
        refusal = authorize(self.token, authorization)
        if refusal is not None:
            return refusal
        try:
            if not await self.subscriptions.ready():
                return unavailable("subscriptions_unavailable")
            handler: Callable[..., Awaitable[Reply]] = getattr(self, f"_{action}")
            if action in ("list", "create"):
                return await handler(body)
            endpoint = self._endpoint(webhook_id)
            if endpoint is None:
                return _not_found(webhook_id)
            return await handler(endpoint, body)
        except Unavailable:
            return unavailable("not_durable")

    def _endpoint(self, webhook_id: str) -> Endpoint | None:
        with contextlib.suppress(ValueError):
            return self.subscriptions.get(int(webhook_id))
        return None

    async def _append(self, uid: str, record: SubscriptionRecord | None) -> int:
        try:
            return await self.subscriptions.append(uid, record)
        except Unavailable:
            raise
        except Exception as exc:  # the broker did not take it in time
            log.warning("subscription_append_failed", error=type(exc).__name__)
            raise Unavailable from exc

    async def _list(self, body: bytes) -> Reply:
        webhooks = [e.record.public(e.id) for e in self.subscriptions.all()]
        return _json(WebhookList(webhooks=webhooks))

    async def _create(self, body: bytes) -> Reply:
        parsed = _parse(WebhookCreate, body)
        if isinstance(parsed, Reply):
            return parsed
        assert isinstance(parsed, WebhookCreate)
        try:
            await self.guard.check(parsed.url)
        except UrlRefused as exc:
            return _refused(exc)
        generated = None if parsed.secret is not None else self.generate_secret()
        secret = parsed.secret if parsed.secret is not None else SecretStr(generated or "")
        record = create(parsed, secret, self.now())
        offset = await self._append(new_uid(), record)
        webhook_id = offset + 1
        log.info("webhook_created", webhook_id=webhook_id, events=record.events)
        public = record.public(webhook_id)
        return _json(WebhookCreated(**public.model_dump(), secret=generated), status=201)

    async def _get(self, endpoint: Endpoint, body: bytes) -> Reply:
        return _json(endpoint.record.public(endpoint.id))

    async def _update(self, endpoint: Endpoint, body: bytes) -> Reply:
        parsed = _parse(WebhookUpdate, body)
        if isinstance(parsed, Reply):
            return parsed
        assert isinstance(parsed, WebhookUpdate)
        if parsed.url is not None:
            try:
                await self.guard.check(parsed.url)
            except UrlRefused as exc:
                return _refused(exc)
        record = update(endpoint, parsed, self.now())
        await self._append(endpoint.uid, record)
        log.info("webhook_updated", webhook_id=endpoint.id, active=record.active)
        return _json(record.public(endpoint.id))

    async def _delete(self, endpoint: Endpoint, body: bytes) -> Reply:
        await self._append(endpoint.uid, None)
        log.info("webhook_deleted", webhook_id=endpoint.id)
        return Reply(204, {})

    async def _rotate(self, endpoint: Endpoint, body: bytes) -> Reply:
        parsed = _parse(SecretRotation, body)
        if isinstance(parsed, Reply):
            return parsed
        assert isinstance(parsed, SecretRotation)
        secret = parsed.secret or SecretStr(self.generate_secret())
        await self._append(endpoint.uid, rotate(endpoint, secret, self.now()))
        log.info("webhook_secret_rotated", webhook_id=endpoint.id)
        return _json(SecretRotated(id=endpoint.id, secret=secret.get_secret_value()))

    async def deactivate_gone(self, webhook_id: int) -> None:
        """The scheduler's 410: mark the endpoint inactive (through the topic)."""
        endpoint = self.subscriptions.get(webhook_id)
        if endpoint is None or not endpoint.record.active:
            return
        await self._append(endpoint.uid, deactivate(endpoint, "gone", self.now()))
        log.warning("webhook_deactivated", webhook_id=webhook_id, reason="gone")


# (path, method) -> action; registration and the OpenAPI route test read this table.
ROUTES: dict[tuple[str, str], str] = {
    (BASE, "get"): "list",
    (BASE, "post"): "create",
    (BASE + "/{webhook_id}", "get"): "get",
    (BASE + "/{webhook_id}", "patch"): "update",
    (BASE + "/{webhook_id}", "put"): "update",
    (BASE + "/{webhook_id}", "delete"): "delete",
    (BASE + "/{webhook_id}/rotate-secret", "post"): "rotate",
}


def register_manage(app: Any, actions: ManageActions) -> None:
    """Faust pages for ``ROUTES``: read the body (bounded), call ``actions``, answer."""
    from faust.web import Request, Response, View

    by_path: dict[str, dict[str, str]] = {}
    for (path, method), action in ROUTES.items():
        by_path.setdefault(path, {})[method] = action

    def respond(view: View, reply: Reply) -> Response:
        if reply.status == 204:
            return view.bytes(b"", status=204, headers=dict(reply.headers))
        return view.bytes(
            orjson.dumps(reply.body),
            content_type="application/json",
            status=reply.status,
            headers=dict(reply.headers),
        )

    def page(path: str, methods: dict[str, str]) -> None:
        async def call(view: View, request: Request, method: str, webhook_id: str) -> Response:
            body = await request.content.read(MAX_BODY_BYTES + 1)  # type: ignore[attr-defined]
            auth = request.headers.get("Authorization")
            return respond(view, await actions.handle(methods[method], auth, body, webhook_id))

        handlers: dict[str, Any] = {}
        for method in methods:

            async def handler(
                self: View, request: Request, webhook_id: str = "", _method: str = method
            ) -> Response:
                return await call(self, request, _method, webhook_id)

            handlers[method] = handler
        view_class = type(f"Manage{len(path)}{'_'.join(sorted(methods))}", (View,), handlers)
        app.page(path, name="webhooks" + path.replace("/", "_").replace("{", "").replace("}", ""))(
            view_class
        )

    for path, methods in by_path.items():
        page(path, methods)
