"""Query API on the workers' web port: address state, message status, suppression list.

Tables are partitioned across workers, so any worker can be asked: a key lookup is
forwarded to the worker that owns the key's partition (Faust's router), and the
suppression list is gathered from every worker's local partitions and merged.

* ``GET /addresses/{address}/`` — AddressState (404 if never seen)
* ``GET /messages/{message_id}/`` — MessageState with its event history
* ``GET /suppressions/?scope=all|marketing&after=<address>&limit=N&format=json|ndjson|csv``
  — suppressed addresses in address order; ``next`` is the cursor for the following page.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import aiohttp
import faust
import orjson
from faust.exceptions import SameNode
from faust.web import Request, Response, View

from processors.agents import Topology
from processors.errors import NormaliseError
from processors.normalise import normalise_address
from processors.settings import ProcessorSettings
from schemas.state import AddressState

MAX_PAGE = 1000


def _json(view: View, body: object, status: int = 200) -> Response:
    return view.bytes(orjson.dumps(body), content_type="application/json", status=status)


def _stored(view: View, value: bytes | None, what: str) -> Response:
    if value is None:
        return _json(view, {"error": "not_found", "what": what}, status=404)
    return view.bytes(value, content_type="application/json")


def local_suppressions(
    topo: Topology, scope: str | None, after: str, limit: int
) -> list[dict[str, Any]]:
    """Suppressed addresses held by this worker, after the cursor, in address order."""
    rows: list[dict[str, Any]] = []
    for key, value in topo.addresses.items():
        address = key.decode() if isinstance(key, bytes) else str(key)
        if address <= after:
            continue
        state = AddressState.model_validate_json(value)
        scopes = {s: v for s, v in state.suppression.items() if v is not None}
        if scope is not None:
            scopes = {s: v for s, v in scopes.items() if s == scope}
        if scopes:
            rows.append(
                {
                    "address": address,
                    "suppression": {
                        s: v.model_dump(mode="json") for s, v in sorted(scopes.items())
                    },
                }
            )
    rows.sort(key=lambda r: r["address"])
    return rows[:limit]


# A peer worker that does not answer in time (e.g. mid-rebalance) gives a 503, not a hang.
_PEER_TIMEOUT = aiohttp.ClientTimeout(total=10)


def _unavailable(view: View, host: object) -> Response:
    return _json(view, {"error": "worker_unavailable", "worker": str(host)}, status=503)


def register_api(app: faust.App, topo: Topology, settings: ProcessorSettings) -> None:
    options = settings.normalise

    @app.page("/addresses/{address}/")
    class AddressView(View):
        async def get(self, request: Request, address: str) -> Response:
            try:
                canonical = normalise_address(address, options)
            except NormaliseError:
                return _json(self, {"error": "invalid_address"}, status=400)
            try:
                return await app.router.route_req(
                    topo.addresses.name, canonical.encode(), self.web, request
                )
            except SameNode:
                return _stored(self, topo.addresses.get(canonical.encode()), "address")

    @app.page("/messages/{message_id}/")
    class MessageView(View):
        async def get(self, request: Request, message_id: str) -> Response:
            try:
                return await app.router.route_req(
                    topo.messages.name, message_id.encode(), self.web, request
                )
            except SameNode:
                return _stored(self, topo.messages.get(message_id.encode()), "message")

    @app.page("/internal/suppressions/")
    class LocalSuppressions(View):
        async def get(self, request: Request) -> Response:
            try:
                scope, after, limit = _page_args(request)
            except ValueError as exc:
                return _json(self, {"error": "bad_request", "detail": str(exc)}, status=400)
            return _json(self, local_suppressions(topo, scope, after, limit))

    @app.page("/suppressions/")
    class Suppressions(View):
        async def get(self, request: Request) -> Response:
            try:
                scope, after, limit = _page_args(request)
            except ValueError as exc:
                return _json(self, {"error": "bad_request", "detail": str(exc)}, status=400)
            rows: list[dict[str, Any]] = []
            hosts = app.router.table_metadata(topo.addresses.name) or {}
            me = str(app.conf.canonical_url).rstrip("/")
            for host in sorted(hosts) or [me]:
                if str(host).rstrip("/") == me:
                    rows += local_suppressions(topo, scope, after, limit)
                    continue
                url = f"{str(host).rstrip('/')}/internal/suppressions/"
                params = {
                    "after": after,
                    "limit": str(limit),
                    **({"scope": scope} if scope else {}),
                }
                try:
                    async with app.http_client.get(
                        url, params=params, timeout=_PEER_TIMEOUT
                    ) as resp:
                        if resp.status != 200:
                            return _unavailable(self, host)
                        rows += orjson.loads(await resp.read())
                except (TimeoutError, aiohttp.ClientError):
                    return _unavailable(self, host)
            rows.sort(key=lambda r: r["address"])
            page = rows[:limit]
            cursor = page[-1]["address"] if len(rows) > limit or len(page) == limit else None
            fmt = request.query.get("format", "json")
            if fmt == "ndjson":
                body = b"".join(orjson.dumps(r) + b"\n" for r in page)
                return self.bytes(
                    body, content_type="application/x-ndjson", headers=_cursor_header(cursor)
                )
            if fmt == "csv":
                out = io.StringIO()
                writer = csv.writer(out)
                writer.writerow(["address", "scope", "reason", "cause", "since"])
                for r in page:
                    for s, v in r["suppression"].items():
                        writer.writerow([r["address"], s, v["reason"], v["cause"], v["since"]])
                return self.bytes(
                    out.getvalue().encode(), content_type="text/csv", headers=_cursor_header(cursor)
                )
            return _json(self, {"items": page, "next": cursor})


def _cursor_header(cursor: str | None) -> dict[str, str]:
    return {"X-Next-Cursor": cursor} if cursor else {}


def _page_args(request: Request) -> tuple[str | None, str, int]:
    scope = request.query.get("scope")
    if scope not in (None, "all", "marketing"):
        raise ValueError("scope must be all or marketing")
    after = request.query.get("after", "")
    try:
        limit = max(1, min(MAX_PAGE, int(request.query.get("limit", "100"))))
    except ValueError:
        limit = 100
    return scope, after, limit
