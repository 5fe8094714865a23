"""Run our own services against the real broker: ingest in-process or as a process, and
processor workers as processes (so tests can kill -9 them)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path

from aiohttp import web

from ingest.app import PUBLISHER_KEY, create_app
from ingest.settings import IngestSettings
from ingest.signatures import CertFetcher
from processors.ops.children import child_process

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running_ingest(
    settings: IngestSettings, cert_fetcher: CertFetcher | None = None
) -> AsyncIterator[str]:
    """Serve ingest in this event loop with the real Kafka publisher; yields its base URL."""
    app = create_app(settings, cert_fetcher=cert_fetcher)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", settings.port)
    await site.start()
    publisher = app[PUBLISHER_KEY]
    deadline = time.monotonic() + 60
    while not publisher.ready():
        if time.monotonic() > deadline:
            await runner.cleanup()
            raise TimeoutError("ingest did not connect to the broker within 60 s")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        await runner.cleanup()


def wait_http(url: str, timeout: float = 60.0, status: int = 200) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
                if resp.status == status:
                    return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer {status} within {timeout}s ({last!r})")


def service_process(
    module: str, args: list[str], env: Mapping[str, str], log: Path
) -> ContextManager[subprocess.Popen[bytes]]:
    """``python -m module args`` with ``env`` added; SIGTERM (then SIGKILL) on exit."""
    full_env = {"MAILPULSE_CONFIG": str(REPO / "config" / "dev.toml"), **env}
    return child_process([sys.executable, "-m", module, *args], full_env, log, cwd=REPO)
