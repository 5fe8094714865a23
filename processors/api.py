"""Query API on the workers' web port: address state, message status, suppression list.

Tables are partitioned across workers, so any worker can be asked: a key lookup is
forwarded to the worker that owns the key's partition, and the suppression list is
gathered from every worker's local partitions and merged.

* ``GET /addresses/{address}/`` — AddressState (404 if never seen)
* ``GET /messages/{message_id}/`` — MessageState with its event history
* ``GET /suppressions/?scope=all|marketing&after=<address>&limit=N&format=json|ndjson|csv``
  — suppressed addresses in address order; ``next`` is the cursor for the following page.
  A page reads only the table's suppression index from the cursor on
  (processors/runtime/scan.py), so its cost does not grow with the table.

While a worker starts, rebalances or stops, or cannot tell which worker owns a partition,
every query answers ``503 {"error": "worker_unavailable", "reason": ...}`` with
``Retry-After``, never a partial answer or a 500.
"""

from __future__ import annotations

import csv
import heapq
import io
from itertools import islice
from operator import itemgetter
from typing import Any

import aiohttp
import faust
import orjson
from faust.web import Request, Response, View
from yarl import URL

from processors.agents import Topology
from processors.errors import NormaliseError
from processors.normalise import normalise_address
from processors.runtime.routing import WorkerUnavailable, check_ready, is_me, owner_of, owners
from processors.runtime.scan import PartitionsNotOpen, active_partition_dbs, suppression_page
from processors.settings import ProcessorSettings

MAX_PAGE = 1000
SCOPES = ("all", "marketing")
RETRY_AFTER_S = 3
# Set on a request one worker forwards to another: the receiver answers from its own
# partitions or not at all, so two workers that disagree mid-rebalance cannot ping-pong.
ROUTED_HEADER = "X-Mailpulse-Routed"
# A peer worker that does not answer in time (e.g. mid-rebalance) gives a 503, not a hang.
_PEER_TIMEOUT = aiohttp.ClientTimeout(total=10)


def local_suppressions(
    topo: Topology, partitions: list[int] | None, scope: str | None, after: str, limit: int
) -> list[dict[str, Any]]:
    """Suppressed addresses in this worker's active ``partitions`` (all by default)."""
    try:
        dbs = active_partition_dbs(topo.addresses)
    except PartitionsNotOpen as exc:
        raise WorkerUnavailable("rebalancing") from exc
    wanted = sorted(dbs) if partitions is None else partitions
    if not set(wanted) <= dbs.keys():
        # The asking worker's assignment is not ours (one of us is behind a rebalance).
        raise WorkerUnavailable("no_route")
    scopes = SCOPES if scope is None else (scope,)
    rows = suppression_page([dbs[p] for p in wanted], scopes, after, limit)
    return [row.as_json() for row in rows]


def _json(view: View, body: object, status: int = 200) -> Response:
    return view.bytes(orjson.dumps(body), content_type="application/json", status=status)


def _stored(view: View, value: bytes | None, what: str) -> Response:
    if value is None:
        return _json(view, {"error": "not_found", "what": what}, status=404)
    return view.bytes(value, content_type="application/json")


def _unavailable(view: View, exc: WorkerUnavailable) -> Response:
    body: dict[str, str] = {"error": "worker_unavailable", "reason": exc.reason}
    if exc.worker is not None:
        body["worker"] = exc.worker
    return view.bytes(
        orjson.dumps(body),
        content_type="application/json",
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def register_api(app: faust.App, topo: Topology, settings: ProcessorSettings) -> None:
    options = settings.normalise
    partitions = settings.topics.partitions

    async def forward(view: View, request: Request, host: str) -> Response:
        """The owner's answer to ``request``; any failure of the owner is a 503."""
        target = URL(host)
        url = request.url.with_scheme(target.scheme).with_host(target.host or "")
        url = url.with_port(target.port)
        try:
            async with app.http_client.get(
                url, headers={ROUTED_HEADER: "1"}, timeout=_PEER_TIMEOUT
            ) as resp:
                body = await resp.read()
                if resp.status >= 500:
                    raise WorkerUnavailable("peer", host)
                return view.bytes(body, content_type=resp.content_type, status=resp.status)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise WorkerUnavailable("peer", host) from exc

    async def lookup(view: View, request: Request, table: Any, key: bytes, what: str) -> Response:
        try:
            check_ready(app)
            host = owner_of(app, table, key)
            if is_me(app, host):
                return _stored(view, table.get(key), what)
            if ROUTED_HEADER in request.headers:
                raise WorkerUnavailable("no_route", host)
            return await forward(view, request, host)
        except WorkerUnavailable as exc:
            return _unavailable(view, exc)

    async def peer_suppressions(
        host: str, parts: list[int], scope: str | None, after: str, limit: int
    ) -> list[dict[str, Any]]:
        url = f"{host.rstrip('/')}/internal/suppressions/"
        params = {
            "partitions": ",".join(map(str, parts)),
            "after": after,
            "limit": str(limit),
            **({"scope": scope} if scope else {}),
        }
        try:
            async with app.http_client.get(
                url, params=params, headers={ROUTED_HEADER: "1"}, timeout=_PEER_TIMEOUT
            ) as resp:
                if resp.status != 200:
                    raise WorkerUnavailable("peer", host)
                rows: list[dict[str, Any]] = orjson.loads(await resp.read())
                return rows
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise WorkerUnavailable("peer", host) from exc

    async def all_suppressions(scope: str | None, after: str, limit: int) -> list[dict[str, Any]]:
        """The first ``limit`` rows of every worker's partitions, merged in address order."""
        check_ready(app)
        pages = []
        for host, parts in sorted(owners(app, topo.addresses, partitions).items()):
            if is_me(app, host):
                pages.append(local_suppressions(topo, parts, scope, after, limit))
            else:
                pages.append(await peer_suppressions(host, parts, scope, after, limit))
        return list(islice(heapq.merge(*pages, key=itemgetter("address")), limit))

    @app.page("/addresses/{address}/")
    class AddressView(View):
        async def get(self, request: Request, address: str) -> Response:
            try:
                canonical = normalise_address(address, options)
            except NormaliseError:
                return _json(self, {"error": "invalid_address"}, status=400)
            return await lookup(self, request, topo.addresses, canonical.encode(), "address")

    @app.page("/messages/{message_id}/")
    class MessageView(View):
        async def get(self, request: Request, message_id: str) -> Response:
            return await lookup(self, request, topo.messages, message_id.encode(), "message")

    @app.page("/internal/suppressions/")
    class LocalSuppressions(View):
        async def get(self, request: Request) -> Response:
            try:
                scope, after, limit = _page_args(request)
                parts = _partitions_arg(request)
            except ValueError as exc:
                return _json(self, {"error": "bad_request", "detail": str(exc)}, status=400)
            try:
                check_ready(app)
                return _json(self, local_suppressions(topo, parts, scope, after, limit))
            except WorkerUnavailable as exc:
                return _unavailable(self, exc)

    @app.page("/suppressions/")
    class Suppressions(View):
        async def get(self, request: Request) -> Response:
            try:
                scope, after, limit = _page_args(request)
            except ValueError as exc:
                return _json(self, {"error": "bad_request", "detail": str(exc)}, status=400)
            try:
                page = await all_suppressions(scope, after, limit)
            except WorkerUnavailable as exc:
                return _unavailable(self, exc)
            cursor = page[-1]["address"] if len(page) == limit else None
            return _page_response(self, request.query.get("format", "json"), page, cursor)


def _page_response(
    view: View, fmt: str, page: list[dict[str, Any]], cursor: str | None
) -> Response:
    headers = {"X-Next-Cursor": cursor} if cursor else {}
    if fmt == "ndjson":
        body = b"".join(orjson.dumps(r) + b"\n" for r in page)
        return view.bytes(body, content_type="application/x-ndjson", headers=headers)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["address", "scope", "reason", "cause", "since"])
        for r in page:
            for s, v in r["suppression"].items():
                writer.writerow([r["address"], s, v["reason"], v["cause"], v["since"]])
        return view.bytes(out.getvalue().encode(), content_type="text/csv", headers=headers)
    return _json(view, {"items": page, "next": cursor})


def _page_args(request: Request) -> tuple[str | None, str, int]:
    scope = request.query.get("scope")
    if scope not in (None, *SCOPES):
        raise ValueError("scope must be all or marketing")
    after = request.query.get("after", "")
    try:
        limit = max(1, min(MAX_PAGE, int(request.query.get("limit", "100"))))
    except ValueError:
        limit = 100
    return scope, after, limit


def _partitions_arg(request: Request) -> list[int] | None:
    """``partitions=0,3``: the partitions the asking worker expects this one to own."""
    raw = request.query.get("partitions")
    if raw is None:
        return None
    try:
        return sorted({int(p) for p in raw.split(",") if p})
    except ValueError:
        raise ValueError("partitions must be comma-separated integers") from None
