"""Outbound webhook deliveries: how many per second one worker delivers to a local
receiver, the event-to-delivery latency at half that rate, and whether a dead endpoint
beside the live one lowers the live one's rate.

One worker (``python -m processors worker``) on a topic prefix of its own; raw records
appended straight to its raw topic as ingest appends them (``bench.proc_workload``),
``delivered`` events of distinct addresses; receivers are aiohttp servers in this
process on 127.0.0.1 (the worker allows loopback endpoints for the run). The dead
endpoint accepts connections and never answers, so each of its attempts holds one of its
in-flight slots until the 2 s timeout. Writes its section of BENCHMARKS.md.

Run: ``.venv/bin/python -m bench.webhooks_delivery [--events 3000] [--seconds 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from bench.proc_runs import process
from bench.proc_workload import raw_record, webhook_body
from bench.report import replace_section
from bench.running import free_port

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- bench.webhooks_delivery: begin (generated, do not edit by hand) -->"
END = "<!-- bench.webhooks_delivery: end -->"
TOKEN = "bench-webhooks-token"
PARTITIONS = 6


@dataclass
class Sink:
    """A receiver: 200 at once (live), or never (dead); arrival time per delivery id."""

    dead: bool = False
    port: int = field(default_factory=free_port)
    arrivals: dict[str, float] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)  # delivery id -> event's scheduled time

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.dead:
            await asyncio.Event().wait()
        now = time.time()
        parsed = orjson.loads(body)
        if parsed["id"] not in self.arrivals:
            self.arrivals[parsed["id"]] = now
            self.sent_at[parsed["id"]] = datetime.fromisoformat(
                parsed["created_at"].replace("Z", "+00:00")
            ).timestamp()
        return web.Response(status=200)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def serve(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner


def worker_env(prefix: str, port: int, datadir: Path, bootstrap: str) -> dict[str, str]:
    p = "MAILPULSE_PROCESSORS__"
    w = p + "WEBHOOKS__"
    return {
        "MAILPULSE_CONFIG": str(REPO / "config" / "dev.toml"),
        f"{p}BOOTSTRAP_SERVERS": bootstrap,
        f"{p}APP_ID": prefix.rstrip("."),
        f"{p}TOPICS__PREFIX": prefix,
        f"{p}TOPICS__PARTITIONS": str(PARTITIONS),
        f"{p}TOPICS__RAW_PARTITIONS": str(PARTITIONS),
        f"{p}DATADIR": str(datadir),
        f"{p}WEB_PORT": str(port),
        f"{p}LOG_LEVEL": "warning",
        f"{w}MANAGE_TOKEN": TOKEN,
        f"{w}ALLOW_HTTP": "true",
        f"{w}ALLOW_PRIVATE_ADDRESSES": "true",
        f"{w}TIMEOUT_S": "2",
    }


MANAGE = "http://127.0.0.1:{port}/api/webhooks/manage"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


async def register(s: aiohttp.ClientSession, port: int, url: str) -> int:
    """The endpoint's id, once the worker has registered it (it may still be starting)."""
    deadline = time.monotonic() + 180
    last = "no answer"
    body = orjson.dumps({"url": url, "events": "email.delivered"})
    while time.monotonic() < deadline:
        try:
            async with s.post(MANAGE.format(port=port), data=body, headers=HEADERS) as resp:
                if resp.status == 201:
                    webhook_id: int = (await resp.json())["id"]
                    return webhook_id
                last = f"{resp.status} {(await resp.read())[:200]!r}"
        except aiohttp.ClientError as exc:
            last = repr(exc)
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the worker's manage API did not register the endpoint: {last}")


async def set_active(s: aiohttp.ClientSession, port: int, webhook_id: int, active: bool) -> None:
    url = f"{MANAGE.format(port=port)}/{webhook_id}"
    async with s.patch(url, data=orjson.dumps({"active": active}), headers=HEADERS) as resp:
        assert resp.status == 200, await resp.text()


class Source:
    """Appends ``delivered`` raw records of fresh addresses, at a rate or at once."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer, self._topic = producer, topic
        self._rng, self._n = random.Random(7), 0

    async def send(self, count: int, rate: float | None = None) -> None:
        start = time.time()
        futures = []
        for i in range(count):
            scheduled = start + i / rate if rate else time.time()
            if rate:
                await asyncio.sleep(max(0.0, scheduled - time.time()))
            self._n += 1
            address = f"bench{self._n}@example.com"
            at = datetime.fromtimestamp(scheduled, UTC)
            event = webhook_body(self._rng, self._n, "delivered", address, f"m{self._n}", at)
            record = raw_record(event, address, at, PARTITIONS)
            futures.append(
                await self._producer.send(
                    self._topic, record.value, record.key, record.partition, None, record.headers
                )
            )
        await asyncio.gather(*futures)


async def until(sink: Sink, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(sink.arrivals) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(sink.arrivals)} of {count} deliveries within {timeout} s")
        await asyncio.sleep(0.05)


async def until_none_pending(s: aiohttp.ClientSession, port: int, webhook_id: int) -> None:
    """Until the endpoint's log holds no pending delivery: deactivating an endpoint fails
    each of its pending deliveries, one changelog write each, which would otherwise fall
    into the latency measurement that follows."""
    url = f"{MANAGE.format(port=port)}/{webhook_id}/deliveries?status=pending&limit=1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        async with s.get(url, headers=HEADERS) as resp:
            assert resp.status == 200, await resp.text()
            if not (await resp.json())["deliveries"]:
                return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"endpoint {webhook_id} still has pending deliveries after 300 s")


def rate(sink: Sink, ids: set[str], started: float) -> float:
    times = [sink.arrivals[i] for i in ids]
    return len(times) / (max(times) - started)


def pct(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, round(q / 100 * (len(data) - 1)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bw{uuid.uuid4().hex[:8]}."
    port = free_port()
    workdir = Path(args.workdir) / prefix.rstrip(".")
    workdir.mkdir(parents=True, exist_ok=True)
    live, dead = Sink(), Sink(dead=True)
    runners = [await live.serve(), await dead.serve()]
    env = worker_env(prefix, port, workdir / "data", args.bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    results: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    alone: list[float] = []
    beside: list[float] = []
    try:
        with process([sys.executable, "-m", "processors", "worker"], env, workdir / "worker.log"):
            async with aiohttp.ClientSession() as s:
                await register(s, port, live.url)
                source = Source(producer, prefix + "webhooks.raw")
                await source.send(200)  # warm-up: the pipeline and the pool are up
                await until(live, 200, 180)

                async def burst() -> float:
                    before = set(live.arrivals)
                    started = time.time()
                    await source.send(args.events)
                    await until(live, len(before) + args.events, 300)
                    return rate(live, set(live.arrivals) - before, started)

                # Alone and beside the dead endpoint in turns: the machine's other load
                # drifts, and only runs close in time compare.
                dead_id = await register(s, port, dead.url)
                await set_active(s, port, dead_id, False)
                for _ in range(args.rounds):
                    alone.append(await burst())
                    await set_active(s, port, dead_id, True)
                    beside.append(await burst())
                    await set_active(s, port, dead_id, False)
                await until_none_pending(s, port, dead_id)
                half = statistics.median(alone) / 2
                before = set(live.arrivals)
                await source.send(int(half * args.seconds), rate=half)
                await until(live, len(before) + int(half * args.seconds), 120)
                new = set(live.arrivals) - before
                latencies = [live.arrivals[i] - live.sent_at[i] for i in new]
                results |= {"half": half, "p50": pct(latencies, 50), "p99": pct(latencies, 99)}
    finally:
        await producer.stop()
        for runner in runners:
            await runner.cleanup()
    results["load_after"] = os.getloadavg()[0]
    results["alone"] = statistics.median(alone)
    results["beside_dead"] = statistics.median(beside)
    results["ratio"] = statistics.median(b / a for a, b in zip(alone, beside, strict=True))
    results["ratios"] = [round(b / a, 2) for a, b in zip(alone, beside, strict=True)]
    return results


METHOD = (
    "Method: `delivered` events of distinct addresses appended to the raw topic as ingest "
    "appends them; one endpoint subscribed to `email.delivered`. Rate = deliveries received "
    "/ time from the first append to the last delivery: the whole pipeline (normaliser, the "
    "address and message agents, the delivery agent, the scheduler, HTTP), all in one worker "
    "process. Latency = delivery received minus the event's receipt time (its scheduled "
    "append), at half the measured rate, open loop. Then a second endpoint that accepts "
    "connections and never answers subscribes to the same events and the burst is repeated: "
    "the live endpoint's rate beside it. Alone and beside alternate (the dead endpoint "
    "deactivated and activated again between bursts), and the ratio is the median of the "
    "rounds' ratios: the machine's other load drifts, and only bursts close in time compare. "
    "The latency is measured after the rounds, once the deactivated dead endpoint's pending "
    "deliveries have all ended (deactivation fails each, a changelog write apiece)."
)
NOTE = (
    "Beside the dead endpoint every event makes two deliveries (the agent writes both, the "
    "dead one's attempts time out after 2 s and retry), so any drop is partly that work on "
    "the same cores, not waiting: the dead endpoint's attempts hold only its own 8 slots. "
    "The rate is bounded by the worker's CPU for the whole pipeline (about 1 ms per raw "
    "event before webhooks, see the processors throughput section, plus the delivery "
    "agent, the scheduler and the HTTP client in the same process), not by the receiver."
)


def render(r: dict[str, Any], args: argparse.Namespace) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "**met**" if r["ratio"] >= 0.9 else "**not met**"
    command = f"--events {args.events} --seconds {args.seconds:g} --rounds {args.rounds}"
    lines = [
        "## Outbound webhooks: deliveries per second, latency, a dead endpoint beside a live one",
        "",
        f"Run: `.venv/bin/python -m bench.webhooks_delivery {command}` (a minute or two; needs "
        "the broker). It rewrites this section.",
        "",
        f"Machine: {os.cpu_count()} cores, CPython {platform.python_version()}, {when}, shared "
        f"with other work (load average {r['load_before']:.1f} at the start, "
        f"{r['load_after']:.1f} at the end of the run). One worker, {PARTITIONS} partitions, "
        "default webhook settings (8 attempts in flight per endpoint) but a 2 s attempt "
        "timeout and loopback endpoints allowed; the receivers run in the benchmark's "
        "process on the same cores.",
        "",
        METHOD,
        "",
        "| measure | value |",
        "|---|--:|",
        f"| deliveries/s to one live endpoint ({args.events:,} events, median) "
        f"| **{r['alone']:,.0f}** |",
        f"| event-to-delivery p50 / p99 at {r['half']:,.0f}/s "
        f"| {r['p50'] * 1000:,.0f} ms / **{r['p99'] * 1000:,.0f} ms** |",
        f"| deliveries/s to the live endpoint beside a dead one (median) "
        f"| **{r['beside_dead']:,.0f}** |",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        "| a dead endpoint beside a live one lowers the live one's rate by at most 10 % "
        f"| **{r['ratio']:.2f}x** (median of the rounds' ratios {r['ratios']}) | {verdict} |",
        "",
        NOTE,
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="alone/beside pairs")
    parser.add_argument("--workdir", default=str(REPO / "bench" / "results" / "webhooks"))
    parser.add_argument("--no-write", action="store_true", help="print, do not write the file")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    text = render(results, args)
    print(text)
    if not args.no_write:
        replace_section(REPO / "BENCHMARKS.md", BEGIN, END, text)


if __name__ == "__main__":
    main()
