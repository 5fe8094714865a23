"""The delivery log on the workers' web port (same bearer token as the manage API):

* ``GET  /api/webhooks/manage/{id}/deliveries?status=&since=&after=&limit=``
  an endpoint's deliveries in time order (of their events): status, attempts, last
  response code or error, next attempt, the newest attempts; ``next`` is the cursor
* ``GET  /api/webhooks/manage/{id}/deliveries/{delivery_id}``  one, with its payload
* ``POST /api/webhooks/manage/{id}/deliveries/{delivery_id}/resend``  a new series of
  attempts for an ended (failed or delivered) delivery: 202; 409 while it is pending
* ``POST /api/webhooks/manage/{id}/replay`` ``{"since": ISO 8601}``  re-send every ended
  delivery of the endpoint whose event came at or after ``since``: 202 with the count

Deliveries live in the table partition of their address, spread over the workers: a
worker asks every partition owner (``/internal/webhooks/...``, token forwarded) and
merges, as ``/suppressions/`` does. 503 + Retry-After while a worker cannot answer.
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from itertools import islice
from operator import itemgetter
from typing import Any

import aiohttp
import faust
import orjson
from faust.web import Request, Response, View
from pydantic import SecretStr

from processors.admin import Reply
from processors.api import ROUTED_HEADER
from processors.runtime.routing import WorkerUnavailable, check_ready, is_me, owners
from processors.webhooks.keys import record_key, time_key
from processors.webhooks.manage import BASE, RETRY_AFTER_S, authorize
from processors.webhooks.scheduler import DeliveryScheduler
from schemas.webhooks import DELIVERY_STATUSES

MAX_PAGE = 500
_PEER_TIMEOUT = aiohttp.ClientTimeout(total=10)
Row = tuple[str, dict[str, Any]]  # (cursor "<created ms>/<delivery id>", summary)

# (path, method) -> operation; registration and the OpenAPI route test read this table.
ROUTES: dict[tuple[str, str], str] = {
    (BASE + "/{webhook_id}/deliveries", "get"): "list",
    (BASE + "/{webhook_id}/deliveries/{delivery_id}", "get"): "get",
    (BASE + "/{webhook_id}/deliveries/{delivery_id}/resend", "post"): "resend",
    (BASE + "/{webhook_id}/replay", "post"): "replay",
}
INTERNAL = "/internal/webhooks/{operation}/"


class BadRequest(ValueError):
    pass


def _since_ms(value: str | None) -> int:
    if not value:
        return 0
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest("since must be an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _after(webhook_id: int, cursor: str | None) -> bytes | None:
    if not cursor:
        return None
    ms, _, identifier = cursor.partition("/")
    if not ms.isdigit() or not identifier:
        raise BadRequest("after must be a cursor from an earlier page")
    return time_key(webhook_id, int(ms), identifier)


class LocalLog:
    """What this worker answers for its own partitions."""

    def __init__(self, scheduler: DeliveryScheduler) -> None:
        self.scheduler = scheduler

    def _parts(self, wanted: list[int] | None) -> list[int]:
        mine = self.scheduler.partitions()
        if wanted is None:
            return sorted(mine)
        if not set(wanted) <= mine:
            raise WorkerUnavailable("no_route")
        return wanted

    def op_list(
        self, webhook_id: int, parts: list[int] | None, args: Mapping[str, str]
    ) -> list[Row]:
        status = args.get("status")
        if status is not None and status not in DELIVERY_STATUSES:
            raise BadRequest("status must be pending, delivered or failed")
        limit = max(1, min(MAX_PAGE, int(args.get("limit", "100") or 100)))
        since, after = _since_ms(args.get("since")), _after(webhook_id, args.get("after"))
        pages = []
        for partition in self._parts(parts):
            rows = (
                (f"{int(r.created_at.timestamp() * 1000):013d}/{r.delivery_id}", r.summary())
                for r in self.scheduler.records(partition, webhook_id, since, after)
                if status is None or r.status == status
            )
            pages.append(list(islice(rows, limit)))
        return list(islice(heapq.merge(*pages, key=itemgetter(0)), limit))

    def find(self, webhook_id: int, delivery_id: str, parts: list[int] | None) -> Any:
        key = record_key(webhook_id, delivery_id)
        for partition in self._parts(parts):
            record = self.scheduler.read(partition, key)
            if record is not None:
                return partition, record
        return None

    async def op_get(
        self, webhook_id: int, parts: list[int] | None, args: Mapping[str, str]
    ) -> Any:
        found = self.find(webhook_id, args.get("delivery_id", ""), parts)
        return None if found is None else found[1].model_dump(mode="json")

    async def op_resend(
        self, webhook_id: int, parts: list[int] | None, args: Mapping[str, str]
    ) -> Any:
        found = self.find(webhook_id, args.get("delivery_id", ""), parts)
        if found is None:
            return None
        partition, record = found
        if record.status == "pending":
            return {"conflict": record.summary()}
        renewed = await self.scheduler.requeue(partition, record)
        if renewed is None:
            raise WorkerUnavailable("rebalancing")
        return renewed.summary()

    async def op_replay(
        self, webhook_id: int, parts: list[int] | None, args: Mapping[str, str]
    ) -> Any:
        since = _since_ms(args.get("since"))
        count = 0
        for partition in self._parts(parts):
            ended = [
                r
                for r in self.scheduler.records(partition, webhook_id, since)
                if r.status != "pending"
            ]
            for record in ended:
                if await self.scheduler.requeue(partition, record) is None:
                    raise WorkerUnavailable("rebalancing")
                count += 1
        return count


def _reply(view: View, reply: Reply) -> Response:
    return view.bytes(
        orjson.dumps(reply.body),
        content_type="application/json",
        status=reply.status,
        headers=dict(reply.headers),
    )


def _unavailable(exc: WorkerUnavailable) -> Reply:
    body = {"error": "worker_unavailable", "reason": exc.reason}
    return Reply(503, body, {"Retry-After": str(RETRY_AFTER_S)})


def register_log_api(
    app: faust.App,
    table: Any,
    partitions: int,
    token: SecretStr | None,
    scheduler: DeliveryScheduler | None,
    known: Callable[[int], bool],
) -> None:
    local = LocalLog(scheduler) if scheduler is not None else None

    async def gather(operation: str, webhook_id: int, args: dict[str, str], auth: str) -> list[Any]:
        """Every partition owner's answer (this worker's own directly)."""
        check_ready(app)
        if local is None:
            raise WorkerUnavailable("starting")
        answers = []
        for host, parts in sorted(owners(app, table, partitions).items()):
            if is_me(app, host):
                answers.append(await run_local(operation, webhook_id, parts, args))
            else:
                answers.append(await ask_peer(host, operation, webhook_id, parts, args, auth))
        return answers

    async def run_local(
        operation: str, webhook_id: int, parts: list[int] | None, args: Mapping[str, str]
    ) -> Any:
        assert local is not None
        handler: Callable[..., Any] = getattr(local, f"op_{operation}")
        answer = handler(webhook_id, parts, args)
        return await answer if isinstance(answer, Awaitable) else answer

    async def ask_peer(
        host: str,
        operation: str,
        webhook_id: int,
        parts: list[int],
        args: dict[str, str],
        auth: str,
    ) -> Any:
        url = f"{host.rstrip('/')}{INTERNAL.format(operation=operation)}"
        params = {**args, "webhook_id": str(webhook_id), "partitions": ",".join(map(str, parts))}
        headers = {ROUTED_HEADER: "1", "Authorization": auth}
        try:
            async with app.http_client.post(
                url, params=params, headers=headers, timeout=_PEER_TIMEOUT
            ) as resp:
                if resp.status == 400:
                    raise BadRequest((await resp.json(content_type=None)).get("detail", ""))
                if resp.status != 200:
                    raise WorkerUnavailable("peer", host)
                return orjson.loads(await resp.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise WorkerUnavailable("peer", host) from exc

    async def public(operation: str, request: Request, webhook_id: str, **extra: str) -> Reply:
        auth = request.headers.get("Authorization") or ""
        refusal = authorize(token, auth)
        if refusal is not None:
            return refusal
        if not webhook_id.isdigit() or not known(int(webhook_id)):
            return Reply(404, {"error": "not_found", "what": "webhook", "id": webhook_id[:40]})
        args = {
            k: v for k, v in request.query.items() if k in ("status", "since", "after", "limit")
        }
        args.update(extra)
        if operation == "replay":
            body = await request.content.read(4096)  # type: ignore[attr-defined]
            try:
                data = orjson.loads(body) if body.strip() else {}
                args["since"] = str(data["since"]) if isinstance(data, dict) else ""
            except (orjson.JSONDecodeError, KeyError):
                return Reply(
                    422, {"error": "invalid_request", "detail": 'give {"since": ISO 8601}'}
                )
        try:
            answers = await gather(operation, int(webhook_id), args, auth)
        except ValueError as exc:  # BadRequest among them
            return Reply(400, {"error": "bad_request", "detail": str(exc)[:200]})
        except WorkerUnavailable as exc:
            return _unavailable(exc)
        return combine(operation, answers, args)

    def combine(operation: str, answers: list[Any], args: Mapping[str, str]) -> Reply:
        if operation == "list":
            limit = max(1, min(MAX_PAGE, int(args.get("limit", "100") or 100)))
            rows = list(islice(heapq.merge(*answers, key=itemgetter(0)), limit))
            cursor = rows[-1][0] if len(rows) == limit else None
            return Reply(200, {"deliveries": [row for _, row in rows], "next": cursor})
        if operation == "replay":
            return Reply(202, {"requeued": sum(answers)})
        found = [a for a in answers if a is not None]
        if not found:
            return Reply(404, {"error": "not_found", "what": "delivery"})
        if "conflict" in found[0]:
            detail = "the delivery is pending: it is being attempted"
            return Reply(
                409, {"error": "pending", "detail": detail, "delivery": found[0]["conflict"]}
            )
        return Reply(202 if operation == "resend" else 200, found[0])

    def page(path: str, method: str, operation: str) -> None:
        async def handler(
            self: View, request: Request, webhook_id: str = "", delivery_id: str = ""
        ) -> Response:
            extra = {"delivery_id": delivery_id} if delivery_id else {}
            return _reply(self, await public(operation, request, webhook_id, **extra))

        name = "webhooks_log_" + operation
        app.page(path, name=name)(type(f"WebhookLog_{operation}", (View,), {method: handler}))

    for (path, method), operation in ROUTES.items():
        page(path, method, operation)

    @app.page(INTERNAL.replace("{operation}", "{operation}"), name="webhooks_internal")
    class Internal(View):
        async def post(self, request: Request, operation: str) -> Response:
            refusal = authorize(token, request.headers.get("Authorization"))
            if refusal is not None:
                return _reply(self, refusal)
            if operation not in ("list", "get", "resend", "replay") or local is None:
                return _reply(self, Reply(404, {"error": "not_found"}))
            query = dict(request.query)
            try:
                webhook_id = int(query.pop("webhook_id"))
                parts = sorted({int(p) for p in query.pop("partitions", "").split(",") if p})
                check_ready(app)
                answer = await run_local(operation, webhook_id, parts, query)
            except (KeyError, ValueError) as exc:
                return _reply(self, Reply(400, {"error": "bad_request", "detail": str(exc)}))
            except WorkerUnavailable as exc:
                return _reply(self, _unavailable(exc))
            return self.bytes(orjson.dumps(answer), content_type="application/json")
