"""A whole mailpulse pipeline on the real broker, isolated by a unique topic prefix.

Ingest runs in the test's event loop; processor workers run as separate processes (so a
test can kill -9 one). State is read back from the tables' changelog topics and the
suppression topic with plain aiokafka consumers, never through our own code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from ingest.settings import IngestSettings, KafkaSettings, SourceSettings
from tests.fixtures.signing import sign
from tests.integration.helpers import commit_lag, latest_by_key, read_all, wait_committed
from tests.integration.stack import REPO, free_port, service_process

PARTITIONS = 3
NEXUS_SECRET = "it-nexus-secret"
GENERIC_SECRET = "it-generic-secret"
WAIT_S = 240.0  # for a generation's commits or a CLI run: inside the suite's test timeout
STUCK_LOG_LINES = 25  # of each running worker's log, when a wait for commits fails
# What a worker logs about a stall of its own (processors/, and Faust's wait).
STALL_EVENTS = (
    "commit_stalled",
    "stream_wait_given_up",
    "wait_empty",
    "consumer_stuck",
    "subscription_sync_slow",
    "subscription_view_failed",
)


@dataclass(frozen=True)
class CliResult:
    """Exit status and output of one ``mailpulse`` command."""

    code: int
    out: str
    err: str


@dataclass
class Pipeline:
    bootstrap: str
    workdir: Path
    prefix: str = field(default_factory=lambda: f"it{uuid.uuid4().hex[:8]}.")
    ingest_port: int = field(default_factory=free_port)
    extra_sources: dict[str, SourceSettings] = field(default_factory=dict)
    raw_partitions: int = PARTITIONS
    # On the three-broker cluster: 3 and 2 (the broker defaults are the single broker's).
    replication_factor: int = 1
    min_insync_replicas: int | None = None
    # True when the test restarts workers that exit, as a supervisor would.
    supervised: bool = False
    _workers: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)
    # Every worker this pipeline started, stopped ones too, with its generation.
    _started: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def check_workers(self) -> None:
        """Fail at once, with its log, if a worker died that no test killed (unless the
        test supervises them)."""
        if self.supervised:
            return
        for proc, log in self._workers:
            if proc.returncode is None and proc.poll() is not None:
                raise AssertionError(
                    f"worker exited with {proc.returncode}:\n"
                    + log.read_text(errors="replace")[-4000:]
                )

    def topic(self, name: str) -> str:
        return self.prefix + name

    def ingest_settings(self) -> IngestSettings:
        sources = {
            "nexuspromail": SourceSettings(kind="nexuspromail", secrets=(SecretStr(NEXUS_SECRET),)),
            "generic": SourceSettings(kind="generic", secrets=(SecretStr(GENERIC_SECRET),)),
            **self.extra_sources,
        }
        return IngestSettings(
            port=self.ingest_port,
            kafka=KafkaSettings(
                bootstrap_servers=self.bootstrap,
                topic_prefix=self.prefix,
                raw_partitions=self.raw_partitions,
                replication_factor=self.replication_factor,
                min_insync_replicas=self.min_insync_replicas,
                append_timeout_s=10,
            ),
            sources=sources,
        )

    def worker_env(self, generation: str, web_port: int) -> dict[str, str]:
        return {
            "MAILPULSE_PROCESSORS__BOOTSTRAP_SERVERS": self.bootstrap,
            "MAILPULSE_PROCESSORS__APP_ID": self.prefix.rstrip("."),
            "MAILPULSE_PROCESSORS__GENERATION": generation,
            "MAILPULSE_PROCESSORS__TOPICS__PREFIX": self.prefix,
            "MAILPULSE_PROCESSORS__TOPICS__PARTITIONS": str(PARTITIONS),
            "MAILPULSE_PROCESSORS__TOPICS__RAW_PARTITIONS": str(self.raw_partitions),
            "MAILPULSE_PROCESSORS__DATADIR": str(self.workdir / "data"),
            "MAILPULSE_PROCESSORS__WEB_PORT": str(web_port),
            "MAILPULSE_PROCESSORS__LOG_LEVEL": os.environ.get(
                "MAILPULSE_TEST_WORKER_LOG", "warning"
            ),
            "MAILPULSE_PROCESSORS__TOPICS__REPLICATION_FACTOR": str(self.replication_factor),
        } | (
            {"MAILPULSE_PROCESSORS__TOPICS__MIN_INSYNC_REPLICAS": str(self.min_insync_replicas)}
            if self.min_insync_replicas is not None
            else {}
        )

    @contextlib.contextmanager
    def worker(
        self,
        generation: str = "g1",
        env: dict[str, str] | None = None,
        web_port: int | None = None,
        module: str = "processors",
        datadir: str | None = None,
    ) -> Iterator[subprocess.Popen[bytes]]:
        """A worker process (``python -m module worker``, by default the real one).

        Each gets a data dir of its own, as on separate hosts (a worker locks its own);
        name ``datadir`` to restart a worker on the local state it left behind.
        """
        port = web_port or free_port()
        log = self.workdir / f"worker-{generation}-{port}.log"
        data = self.workdir / (datadir or f"data-{port}")
        own_datadir = {"MAILPULSE_PROCESSORS__DATADIR": str(data)}
        full_env = {**self.worker_env(generation, port), **own_datadir, **(env or {})}
        with service_process(module, ["worker"], full_env, log) as proc:
            self._workers.append((proc, log))
            self._started.append((generation, proc, log))
            try:
                yield proc
            finally:
                self._workers.remove((proc, log))

    async def wait_all_committed(
        self,
        generation: str = "g1",
        raw_records: int = 0,
        hop_suffix: str = "",
        timeout: float = WAIT_S,
    ) -> None:
        """Every record of the raw topic and of both hops committed by ``generation``.

        An offset is committed only once its table writes are acknowledged, so the
        changelogs are final then. The raw topic first: once it is committed, the
        normaliser has put every hop record on the broker, so the hops' end offsets are
        final too. ``raw_records`` 0 means the raw topic's record count now. Fails with
        the counts once ``timeout`` (for all three topics) is over: well inside the
        callers' test timeouts, so a stuck commit fails here, saying where it stuck.
        """
        deadline = time.monotonic() + timeout
        group = self.group(generation)
        hops = [f"{hop}{hop_suffix}" for hop in ("email.events", "message.events")]
        inputs = [(self.topic("webhooks.raw"), raw_records), *((self.topic(h), 0) for h in hops)]
        for topic, known in inputs:
            total = known or len(await read_all(self.bootstrap, topic))
            left = max(1.0, deadline - time.monotonic())
            try:
                await wait_committed(
                    self.bootstrap, group, topic, total, timeout=left, check=self.check_workers
                )
            except AssertionError as exc:
                report = await self._stuck_report([group], [t for t, _ in inputs])
                raise AssertionError(f"{exc}\n{report}") from None

    @contextlib.asynccontextmanager
    async def within(self, seconds: float) -> AsyncIterator[None]:
        """Fail if the block is not done within ``seconds``, with the stack of every task
        of the loop at that moment, where every generation's commits stand and what each
        worker logged.

        Each wait of a test is bounded, but a long test's waits can add up past its
        timeout, and pytest-timeout then ends the whole run with thread stacks alone: an
        idle event loop, none of the above. ``seconds`` is to be inside that timeout. It
        fails as well when the cancellation that ends the block was swallowed on its way
        out (the block then ends as if done, late).
        """
        loop = asyncio.get_running_loop()
        stacks: list[str] = []
        # Just before the cancellation: it unwinds the very awaits that are to be shown.
        snapshot = loop.call_later(max(0.0, seconds - 0.05), lambda: stacks.append(_tasks()))
        timer = asyncio.timeout(seconds)
        try:
            async with timer:
                yield
        except TimeoutError:
            if not timer.expired():
                raise
        finally:
            snapshot.cancel()
        if timer.expired():
            groups = list(dict.fromkeys(self.group(gen) for gen, _, _ in self._started))
            report = await self._stuck_report(groups, [self.topic("webhooks.raw")], every=True)
            raise AssertionError(
                f"not done within {seconds:.0f} s; the loop's tasks then:\n"
                + "".join(stacks)
                + report
            )

    async def _stuck_report(self, groups: list[str], topics: list[str], every: bool = False) -> str:
        """Where each group's commits stand on ``topics`` and on every topic it has
        committed on, and the stall and last log lines of each current worker (``every``:
        of each one started): what a failed wait for commits needs to be understood."""
        lines = ["partition: (committed, end)"]
        for group in groups:
            lag = await commit_lag(self.bootstrap, group, topics)
            lines += [f"{group}: {topic}: {partitions}" for topic, partitions in lag.items()]
        workers = [(proc, log) for _, proc, log in self._started] if every else self._workers
        for proc, log in workers:
            text = log.read_text(errors="replace").splitlines()
            telling = [line for line in text if any(e in line for e in STALL_EVENTS)]
            state = "running" if proc.poll() is None else f"exited {proc.returncode}"
            lines += [
                f"--- {log.name} (pid {proc.pid}, {state}), its stall lines:",
                *telling[-STUCK_LOG_LINES:],
                "--- and its last lines:",
                *text[-STUCK_LOG_LINES:],
            ]
        return "\n".join(lines)

    async def settled(
        self, generation: str = "g1", hop_suffix: str = "", timeout: float = WAIT_S
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Both tables once ``generation`` has committed every input record (final then)."""
        await self.wait_all_committed(generation, hop_suffix=hop_suffix, timeout=timeout)
        return await self.table("addresses", generation), await self.table("messages", generation)

    async def mailpulse(
        self, *args: str, generation: str = "g1", timeout: float = WAIT_S
    ) -> CliResult:
        """Run the ``mailpulse`` operator CLI as a process, with the workers' settings;
        fail, having killed it, if it has not exited within ``timeout``."""
        env = {
            **os.environ,
            "MAILPULSE_CONFIG": str(REPO / "config" / "dev.toml"),
            **self.worker_env(generation, free_port()),
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "processors.ops",
            *args,
            env=env,
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(
                f"mailpulse {' '.join(args)}: not done within {timeout:.0f} s (killed)"
            ) from None
        assert proc.returncode is not None
        return CliResult(proc.returncode, out.decode(), err.decode())

    def group(self, generation: str = "g1") -> str:
        return f"{self.prefix.rstrip('.')}-{generation}"

    async def post_nexus(self, session: aiohttp.ClientSession, event: dict[str, Any]) -> int:
        body = orjson.dumps(event)
        body, headers = sign("nexuspromail", body, NEXUS_SECRET, now=time.time())
        url = f"http://127.0.0.1:{self.ingest_port}/webhooks/nexuspromail"
        async with session.post(url, data=body, headers=headers) as resp:
            return resp.status

    async def table(self, name: str, generation: str = "g1") -> dict[str, dict[str, Any]]:
        self.check_workers()
        records = await read_all(self.bootstrap, f"{self.group(generation)}-{name}-changelog")
        latest = latest_by_key(records)
        return {k.decode(): orjson.loads(v) for k, v in latest.items() if k[:1] not in _INDEX}

    async def commands(self, generation: str | None = None) -> list[dict[str, Any]]:
        self.check_workers()
        name = "suppression.commands" + (f".{generation}" if generation else "")
        records = await read_all(self.bootstrap, self.topic(name))
        return [orjson.loads(r.value) for r in records if r.value is not None]

    async def dlq(self) -> list[dict[str, Any]]:
        records = await read_all(self.bootstrap, self.topic("webhooks.dlq"))
        return [orjson.loads(r.value) for r in records if r.value is not None]


KINDS = [
    "delivered",
    "delivered",
    "opened",
    "clicked",
    "bounced.soft",
    "bounced.soft",
    "bounced.hard",
    "complained",
    "unsubscribed",
]


def _tasks() -> str:
    """Each pending task of the running loop, with its chain of awaits (innermost last).

    ``Task.print_stack`` shows a suspended task's outermost coroutine only; the await
    that holds it is at the end of the chain of ``cr_await``.
    """
    lines = []
    for task in asyncio.all_tasks():
        if task.done():
            continue
        lines.append(f"task {task.get_name()}:")
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = next(
                (
                    f
                    for a in ("cr_frame", "gi_frame", "ag_frame")
                    if (f := getattr(awaited, a, None))
                ),
                None,
            )
            if frame is None:
                lines.append(f"  awaits {awaited!r:.300}")
                break
            code = frame.f_code
            lines.append(f"  {code.co_filename}:{frame.f_lineno} {code.co_name}")
            awaited = next(
                (
                    n
                    for a in ("cr_await", "gi_yieldfrom", "ag_await")
                    if (n := getattr(awaited, a, None))
                ),
                None,
            )
    return "\n".join(lines) + "\n"


def mixed_events(
    n: int, addresses: int, seed: int = 11, hot_share: float = 0.0
) -> list[dict[str, Any]]:
    """``n`` events over ``addresses`` (``hot_share`` of them for ``user0``), then retries."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        minute, second = divmod(rng.randrange(3600), 60)
        at = f"2026-05-14T09:{minute:02d}:{second:02d}Z"
        hot = rng.random() < hot_share
        email = f"user{0 if hot else rng.randrange(addresses)}@example.com"
        events.append(
            nexus_event(
                rng.choice(KINDS), email, n=i, at=at, message=f"msg_{rng.randrange(n // 3)}"
            )
        )
    # Provider retries: some events delivered again later in the stream.
    events += rng.sample(events, n // 10)
    return events


def generation_env(gen: str) -> dict[str, str]:
    """Settings giving generation ``gen`` its own internal and output topics, beside one
    shared raw topic, and its own control topic: each run is the active generation of its
    own world."""
    # Separate internal and output topics per generation, one shared raw topic.
    return {
        f"MAILPULSE_PROCESSORS__TOPICS__{name.upper()}": f"{topic}.{gen}"
        for name, topic in [
            ("email_events", "email.events"),
            ("message_events", "message.events"),
            ("dlq", "webhooks.dlq"),
            ("suppression", "suppression.commands"),
            # Own control topic: each run is the active generation of its own world.
            ("control", "mailpulse.control"),
        ]
    }


def explain_counts(crash: dict[str, Any], ref: dict[str, Any]) -> str:
    """Per differing address: the event counts of both runs."""
    lines = []
    for address in sorted(set(crash) | set(ref)):
        if crash.get(address) != ref.get(address):
            got = (crash.get(address) or {}).get("counts")
            want = (ref.get(address) or {}).get("counts")
            lines.append(f"{address}: counts after the kill {got}, undisturbed {want}")
    return "\n".join(lines)


# Index entries (dedupe keys, the suppression list) share the changelog with the state
# records; their keys start with these bytes (processors/keys.py).
_INDEX = (b"\x00", b"\x01")


def nexus_event(
    kind: str,
    email: str,
    *,
    n: int,
    at: str,
    message: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A NexusProMail webhook body as seed 002 documents it."""
    data: dict[str, Any] = {"message_id": message or f"msg_{n}", "email": email, "timestamp": at}
    if kind.startswith("bounced"):
        data |= {
            "bounce_code": "550" if kind == "bounced.hard" else "421",
            "bounce_reason": "test bounce",
        }
    return {"id": event_id or f"evt_{n}", "type": kind, "created_at": at, "data": data}
