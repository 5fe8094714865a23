"""Real webhook receivers for the outbound-webhook tests: aiohttp servers on 127.0.0.1
in the test's loop (each answers from a script of statuses and checks the signature with
Python's hmac), and a Node receiver that checks it as seed 003's snippet does."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tests.integration.stack import free_port

TOKEN = "it-webhooks-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NODE_RECEIVER = Path(__file__).with_name("webhook_receiver.mjs")


def fast_delivery_env(**overrides: str) -> dict[str, str]:
    """Worker settings for tests: loopback http endpoints allowed, a short retry schedule."""
    settings = {
        "MANAGE_TOKEN": TOKEN,
        "ALLOW_HTTP": "true",
        "ALLOW_PRIVATE_ADDRESSES": "true",
        "RETRY_BASE_S": "0.2",
        "RETRY_CAP_S": "0.5",
        "MAX_AGE_S": "300",
        "TIMEOUT_S": "2",
        "CONNECT_TIMEOUT_S": "1",
        "TICK_S": "0.2",
        **overrides,
    }
    return {f"MAILPULSE_PROCESSORS__WEBHOOKS__{k}": v for k, v in settings.items()}


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed

    @property
    def id(self) -> str:
        return self.headers["X-Webhook-Id"]


@dataclass
class Receiver:
    """Answers each POST with the next status of ``script`` (then 200), records it."""

    script: list[int] = field(default_factory=list)
    secret: str = ""
    port: int = field(default_factory=free_port)
    deliveries: list[Delivery] = field(default_factory=list)
    webhook_id: int = 0  # its endpoint's id, once registered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        signature = request.headers.get("X-Webhook-Signature", "")
        verified = hmac.compare_digest(expected, signature)
        self.deliveries.append(Delivery(dict(request.headers), body, verified))
        status = self.script.pop(0) if self.script else 200
        return web.Response(status=status)

    def ids(self) -> set[str]:
        """The delivery ids received, deduplicated (what a receiver that dedupes keeps)."""
        return {d.id for d in self.deliveries}


@contextlib.asynccontextmanager
async def serving(*receivers: Receiver) -> AsyncIterator[None]:
    runners = []
    try:
        for receiver in receivers:
            app = web.Application()
            app.router.add_post("/hook", receiver.handle)
            # A receiver that never answers must not hold the test's end up for a minute.
            runner = web.AppRunner(app, shutdown_timeout=0.5)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
            runners.append(runner)
        yield
    finally:
        for runner in runners:
            await runner.cleanup()


@contextlib.contextmanager
def node_receiver(secret: str, log: Path) -> Iterator[str]:
    """The Node receiver on a free port; yields its base URL."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["node", str(NODE_RECEIVER), str(port), secret], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 20
        while b"listening" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the node receiver did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def node_received(s: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    async with s.get(f"{base}/_received") as resp:
        got: list[dict[str, Any]] = await resp.json()
        return got


class Manage:
    """The manage API of one worker."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.s = session
        self.base = f"http://127.0.0.1:{port}/api/webhooks/manage"

    async def call(
        self, method: str, path: str = "", body: Any = None, auth: bool = True
    ) -> tuple[int, Any]:
        data = orjson.dumps(body) if body is not None else None
        headers = {**(AUTH if auth else {}), "Content-Type": "application/json"}
        async with self.s.request(method, self.base + path, data=data, headers=headers) as resp:
            raw = await resp.read()
            return resp.status, orjson.loads(raw) if raw else None

    async def create(self, url: str, events: str, secret: str | None = None) -> dict[str, Any]:
        body = {"url": url, "events": events, **({"secret": secret} if secret else {})}
        status, answer = await self.call("POST", body=body)
        assert status == 201, (status, answer)
        return dict(answer)

    async def deliveries(self, webhook_id: int, **query: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        after = ""
        while True:
            params = "&".join(f"{k}={v}" for k, v in {**query, "after": after}.items() if v)
            status, page = await self.call("GET", f"/{webhook_id}/deliveries?{params}")
            assert status == 200, (status, page)
            rows += page["deliveries"]
            if page["next"] is None:
                return rows
            after = page["next"]


async def wait_ready(manage: Manage, timeout: float = 120) -> None:
    """Until the worker's manage API answers (its view has read the topic)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            status, last = await manage.call("GET")
            if status == 200:
                return
        await asyncio.sleep(0.3)
    raise AssertionError(f"the manage API did not answer within {timeout} s: {last!r}")
