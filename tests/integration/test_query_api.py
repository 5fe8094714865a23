"""The query API answers correctly whichever of two workers is asked, and while a worker
starts, rebalances or loses its peer it answers 503 with Retry-After, never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.helpers import eventually
from tests.integration.pipeline import Pipeline, nexus_event
from tests.integration.stack import free_port, running_ingest

# Polled in the background from before the workers start until the end of the test.
WATCHED = ["/addresses/q1@example.com/", "/messages/qmsg1/", "/suppressions/?limit=5"]


async def _get(s: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with s.get(url) as resp:
        return resp.status, await resp.json(content_type=None)


@dataclass(frozen=True)
class Answer:
    port: int
    path: str
    status: int
    retry_after: str | None
    error: str | None
    reason: str | None


@dataclass
class Watch:
    """Every answer of the watched pages of some workers, polled until stopped."""

    ports: list[int]
    answers: list[Answer] = field(default_factory=list)

    async def run(self, s: aiohttp.ClientSession) -> None:
        while True:
            for port in self.ports:
                for path in WATCHED:
                    with contextlib.suppress(aiohttp.ClientConnectionError, TimeoutError):
                        self.answers.append(await self._ask(s, port, path))
            await asyncio.sleep(0.2)

    async def _ask(self, s: aiohttp.ClientSession, port: int, path: str) -> Answer:
        async with s.get(f"http://127.0.0.1:{port}{path}") as resp:
            body = await resp.read()
        parsed = orjson.loads(body) if resp.content_type == "application/json" else None
        info = parsed if isinstance(parsed, dict) else {}
        return Answer(
            port,
            path,
            resp.status,
            resp.headers.get("Retry-After"),
            info.get("error"),
            info.get("reason"),
        )

    def unavailable(self, port: int) -> list[Answer]:
        return [a for a in self.answers if a.port == port and a.status == 503]

    def check(self) -> None:
        """Only 200, 404 or a well-formed 503 was ever answered."""
        wrong = [a for a in self.answers if a.status not in (200, 404, 503)]
        assert not wrong, f"answers other than 200/404/503: {wrong[:5]}"
        for a in self.answers:
            if a.status == 503:
                assert a.error == "worker_unavailable", a
                assert a.retry_after is not None, a
                assert a.retry_after.isdigit(), a
                assert int(a.retry_after) > 0, a


@contextlib.asynccontextmanager
async def watching(s: aiohttp.ClientSession, ports: list[int]) -> AsyncIterator[Watch]:
    watch = Watch(ports)
    task = asyncio.create_task(watch.run(s))
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _states(table: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """State records only: the table's index entries start with \\x00 or \\x01."""
    return {k: v for k, v in table.items() if k[:1] not in ("\x00", "\x01")}


def _expected_rows(states: dict[str, Any], scope: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for address, state in sorted(states.items()):
        scopes = {
            s: v
            for s, v in sorted(state["suppression"].items())
            if v is not None and scope in (None, s)
        }
        if scopes:
            rows.append({"address": address, "suppression": scopes})
    return rows


async def test_two_workers_route_queries_to_the_partition_owner(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    p = Pipeline(kafka_bootstrap, tmp_path)
    kinds = ["delivered", "bounced.hard", "unsubscribed", "opened", "complained"]
    events = [
        nexus_event(
            kinds[i % 5], f"q{i}@example.com", n=i, at="2026-05-15T08:00:00Z", message=f"qmsg{i}"
        )
        for i in range(24)
    ]
    first, second = free_port(), free_port()
    # A worker that does not answer fails the test within seconds, naming the URL.
    timeout = aiohttp.ClientTimeout(total=20)
    async with (
        running_ingest(p.ingest_settings()),
        aiohttp.ClientSession(timeout=timeout) as s,
        watching(s, [first, second]) as watch,
    ):
        for e in events:
            assert await p.post_nexus(s, e) == 200
        with contextlib.ExitStack() as stack:
            stack.enter_context(p.worker(web_port=first))
            await _until_ready(s, first, p)
            # The web port opens before the partitions are assigned and recovered.
            opening = next(a for a in watch.answers if a.port == first)
            assert (opening.status, opening.reason) in {(503, "starting"), (503, "rebalancing")}
            killable = stack.enter_context(p.worker(web_port=second))
            # Both workers must have joined and split the partitions between them.
            assert (
                await eventually(
                    lambda: _members(kafka_bootstrap, p.group()), lambda n: n == 2, timeout=120
                )
                == 2
            )
            await eventually(
                lambda: p.table("addresses"), lambda t: len(_states(t)) == 24, timeout=120
            )
            addresses, messages = map(_states, await p.settled())
            for port in (first, second):
                await _until_ready(s, port, p)
                await _check_answers(s, f"http://127.0.0.1:{port}", addresses, messages)

            # The second worker dies: the first forwards to it until the group notices,
            # then rebalances, then answers for every key itself.
            killable.kill()
            killable.wait()
            states = await eventually(
                lambda: _address_answers(s, first, addresses),
                lambda got: got == {a: (200, st) for a, st in addresses.items()},
                timeout=120,
            )
            assert states == {a: (200, st) for a, st in addresses.items()}
            assert await _all_suppressions(s, f"http://127.0.0.1:{first}") == _expected_rows(
                addresses
            )
    watch.check()
    assert watch.unavailable(first), "the first worker's start and rebalances went unseen"


async def _until_ready(s: aiohttp.ClientSession, port: int, p: Pipeline) -> None:
    async def probe() -> int:
        p.check_workers()
        with contextlib.suppress(aiohttp.ClientConnectionError, TimeoutError):
            return (await _get(s, f"http://127.0.0.1:{port}/suppressions/?limit=1"))[0]
        return 0

    assert await eventually(probe, lambda status: status == 200, timeout=120) == 200


async def _check_answers(
    s: aiohttp.ClientSession,
    base: str,
    addresses: dict[str, dict[str, Any]],
    messages: dict[str, dict[str, Any]],
) -> None:
    for address, state in addresses.items():
        assert await _get(s, f"{base}/addresses/{address}/") == (200, state)
    for message_id, state in messages.items():
        assert await _get(s, f"{base}/messages/{message_id}/") == (200, state)
    status, _ = await _get(s, f"{base}/addresses/nobody@example.com/")
    assert status == 404
    # Mixed case is normalised before routing.
    assert (await _get(s, f"{base}/addresses/Q1@EXAMPLE.com/"))[1] == addresses["q1@example.com"]

    expected = _expected_rows(addresses)
    assert expected, "the events hold hard bounces, complaints and unsubscribes"
    assert await _all_suppressions(s, base) == expected
    for scope in ("all", "marketing"):
        assert await _all_suppressions(s, base, scope) == _expected_rows(addresses, scope)
    await _check_formats(s, base, expected)


async def _check_formats(
    s: aiohttp.ClientSession, base: str, expected: list[dict[str, Any]]
) -> None:
    """ndjson and csv give the same first page, the cursor in X-Next-Cursor."""
    async with s.get(f"{base}/suppressions/?limit=3&format=ndjson") as resp:
        assert resp.status == 200
        lines = (await resp.read()).splitlines()
        assert [orjson.loads(line) for line in lines] == expected[:3]
        assert resp.headers["X-Next-Cursor"] == expected[2]["address"]
    async with s.get(f"{base}/suppressions/?limit=3&format=csv") as resp:
        assert resp.status == 200
        rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == ["address", "scope", "reason", "cause", "since"]
    assert rows[1:] == [
        [r["address"], scope, v["reason"], v["cause"], v["since"]]
        for r in expected[:3]
        for scope, v in r["suppression"].items()
    ]


async def _address_answers(
    s: aiohttp.ClientSession, port: int, addresses: dict[str, Any]
) -> dict[str, tuple[int, Any]]:
    return {a: await _get(s, f"http://127.0.0.1:{port}/addresses/{a}/") for a in addresses}


async def _members(bootstrap: str, group: str) -> int:
    """Members of the workers' consumer group (what Kafka itself says)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [description] = await admin.describe_consumer_groups([group])
        group_info = description.groups[
            0
        ]  # (error, group, state, protocol_type, protocol, members)
        return len(group_info[5]) if group_info[2] == "Stable" else 0
    finally:
        await admin.close()


async def _all_suppressions(
    s: aiohttp.ClientSession, base: str, scope: str | None = None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = ""
    scoped = f"&scope={scope}" if scope else ""
    for _ in range(1000):  # pages of 5: far more than any test's rows
        status, page = await _get(s, f"{base}/suppressions/?limit=5&after={after}{scoped}")
        assert status == 200, page
        rows += page["items"]
        if page["next"] is None:
            return rows
        after = page["next"]
    raise AssertionError("pagination did not end")
