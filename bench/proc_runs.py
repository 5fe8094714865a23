"""One timed run of a pipeline over the preloaded raw topic: the Faust worker (run A), the
plain loop (run B) or the Quix Streams peer (run C), each a separate process, measured
from outside the same way."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager as ContextManager
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.proc_kafka import Broker, Progress, latest_by_key, watch
from processors.ops.children import child_process

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 6
# Both pipelines read the same config file, so they apply the same policy.
CONFIG = str(REPO / "config" / "dev.toml")


@dataclass(frozen=True)
class Names:
    """The topics and group of one run; every run reads the same raw topic."""

    kind: str  # "faust" | "plain" | "quix"
    tag: str  # e.g. "a1"
    raw: str
    out: str  # prefix of this run's own topics
    group: str
    addresses: str
    messages: str
    commands: str
    hops: tuple[str, ...] = ()  # internal topics the group also consumes
    extra_outputs: tuple[str, ...] = ()
    # Topics counted in the report but not watched for output (Quix's changelogs: it
    # writes them at each checkpoint, so the last one would time the checkpoint interval).
    unwatched: tuple[str, ...] = ()

    @classmethod
    def faust(cls, base: str, raw: str, tag: str, generation: str = "g1") -> Names:
        app_id = f"{base}{tag}".replace(".", "-")
        group = f"{app_id}-{generation}"
        out = f"{base}{tag}."
        return cls(
            "faust",
            tag,
            raw,
            out,
            group,
            addresses=f"{group}-addresses-changelog",
            messages=f"{group}-messages-changelog",
            commands=f"{out}suppression.commands",
            hops=(f"{out}email.events", f"{out}message.events"),
            extra_outputs=(f"{out}webhooks.dlq",),
        )

    @classmethod
    def plain(cls, base: str, raw: str, tag: str) -> Names:
        out = f"{base}{tag}."
        return cls(
            "plain",
            tag,
            raw,
            out,
            group=f"{base}{tag}".replace(".", "-"),
            addresses=f"{out}addresses.changelog",
            messages=f"{out}messages.changelog",
            commands=f"{out}suppression.commands",
        )

    @classmethod
    def quix(cls, base: str, raw: str, tag: str) -> Names:
        plain = cls.plain(base, raw, tag)
        hops = quix_repartition_topics(plain.group, raw)
        return cls(
            "quix",
            tag,
            raw,
            plain.out,
            plain.group,
            addresses=plain.addresses,
            messages=plain.messages,
            commands=plain.commands,
            hops=hops,
            unwatched=tuple(quix_changelog_topic(plain.group, hop) for hop in hops),
        )

    @property
    def created(self) -> list[str]:
        """The output topics the runner creates before the process starts (Faust and Quix
        create their internal topics themselves)."""
        if self.kind == "faust":
            return []
        return [self.addresses, self.messages, self.commands, *self.extra_outputs]

    @property
    def outputs(self) -> list[str]:
        return [*self.hops, self.addresses, self.messages, self.commands, *self.extra_outputs]

    def label(self, topic: str) -> str:
        """The topic's name in the report: without this run's prefix, and Quix's internal
        topics by what they hold (``quix repartition.address``, ``quix changelog.message``)."""
        internal = (*self.hops, *self.unwatched)
        if self.kind == "quix" and topic in internal:
            owner = ("address", "message")[internal.index(topic) % 2]
            return f"quix {topic.split('__', 1)[0]}.{owner}"
        return topic.removeprefix(self.out)


def quix_repartition_topics(group: str, raw: str) -> tuple[str, str]:
    """The repartition topics of bench/proc_quix.py's two ``group_by`` (by address, by
    message id), as Quix Streams names them (``TopicManager._internal_name``); the peer
    checks them against Quix's own at start-up."""
    return (f"repartition__{group}--{raw}--address", f"repartition__{group}--{raw}--message")


def quix_changelog_topic(group: str, repartition: str) -> str:
    """The changelog of the default store of the dataframe on ``repartition`` (Quix names
    a nested internal topic without its group, ``--`` turned into ``.``)."""
    nested = repartition.replace(f"__{group}", "").replace("--", ".")
    return f"changelog__{group}--{nested}--default"


def quix_internal_prefixes(group_prefix: str) -> tuple[str, str]:
    """Prefixes of every internal topic Quix creates for groups starting ``group_prefix``."""
    return (f"repartition__{group_prefix}", f"changelog__{group_prefix}")


@dataclass
class RunResult:
    names: Names
    events: int
    progress: Progress
    counts: dict[str, int] = field(default_factory=dict)  # topic role -> records
    finals: dict[str, dict[bytes, bytes]] = field(default_factory=dict)  # role -> key -> hash
    log: Path | None = None

    @property
    def span(self) -> float:
        p = self.progress
        assert p.first_output is not None
        assert p.last_output is not None
        return p.last_output - p.first_output

    @property
    def total(self) -> float:
        assert self.progress.done is not None
        return self.progress.done - self.progress.started

    @property
    def rate(self) -> float:
        """Raw records per second from the first output to the last."""
        return self.events / self.span

    def cpu(self, process: str, a: str = "first", b: str = "last") -> float:
        c = self.progress.cpu
        return c[f"{b}.{process}"] - c[f"{a}.{process}"]

    def busy(self, a: str = "first", b: str = "last") -> float:
        return self.progress.busy[b] - self.progress.busy[a]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def faust_env(names: Names, bootstrap: str, datadir: Path) -> dict[str, str]:
    """Like tests/integration/pipeline.py, with every topic named in full (shared raw)."""
    app_id, generation = names.group.rsplit("-", 1)
    p = "MAILPULSE_PROCESSORS__"
    return {
        "MAILPULSE_CONFIG": CONFIG,
        f"{p}BOOTSTRAP_SERVERS": bootstrap,
        f"{p}APP_ID": app_id,
        f"{p}GENERATION": generation,
        f"{p}TOPICS__PREFIX": "",
        f"{p}TOPICS__RAW": names.raw,
        f"{p}TOPICS__EMAIL_EVENTS": names.hops[0],
        f"{p}TOPICS__MESSAGE_EVENTS": names.hops[1],
        f"{p}TOPICS__DLQ": names.extra_outputs[0],
        f"{p}TOPICS__SUPPRESSION": names.commands,
        f"{p}TOPICS__PARTITIONS": str(PARTITIONS),
        f"{p}TOPICS__RAW_PARTITIONS": str(PARTITIONS),
        f"{p}DATADIR": str(datadir),
        f"{p}WEB_PORT": str(free_port()),
        f"{p}LOG_LEVEL": "warning",
    }


def command(names: Names, bootstrap: str, profile: Path | None = None) -> list[str]:
    if names.kind in ("plain", "quix"):
        return [
            sys.executable, "-m", f"bench.proc_{names.kind}", "--bootstrap", bootstrap,
            "--raw", names.raw, "--group", names.group, "--out", names.out,
        ]  # fmt: skip
    if profile is not None:
        return [sys.executable, "-m", "bench.proc_cpuprof", str(profile), "worker"]
    return [sys.executable, "-m", "processors", "worker"]


def process(
    cmd: list[str], env: dict[str, str], log: Path
) -> ContextManager[subprocess.Popen[bytes]]:
    """Start ``cmd``; on exit SIGTERM it (SIGKILL after 60 s). Only ever our own child."""
    return child_process(cmd, env, log, cwd=REPO, grace_s=60)


async def timed_run(
    broker: Broker,
    names: Names,
    events: int,
    workdir: Path,
    *,
    broker_pid: int | None,
    timeout: float,
    while_up: Callable[[RunResult], Awaitable[None]] | None = None,
    extra_env: Mapping[str, str] | None = None,
    workers: int = 1,
) -> RunResult:
    """Start the pipeline, wait until it committed everything, stop it, count its output.

    ``extra_env`` is added to the process's environment (e.g. a topic name of its own).
    ``workers`` Faust workers of one group (each its own web port and data dir) share the
    work; their CPU is reported as ``worker`` (all of them) and ``worker<n>`` (each).
    """
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    log = workdir / f"{names.tag}.log"
    assert workers == 1 or names.kind == "faust", "only Faust runs several workers"
    envs = []
    for n in range(workers):
        env = (
            faust_env(names, broker.bootstrap, workdir / f"data{n or ''}")
            if names.kind == "faust"
            else {"MAILPULSE_CONFIG": CONFIG}
        )
        envs.append({**env, **(extra_env or {})})
    await broker.create(names.created, PARTITIONS)
    started = time.monotonic()
    with ExitStack() as stack:
        procs = [
            stack.enter_context(process(command(names, broker.bootstrap), env, log)) for env in envs
        ]
        pids = {f"worker{n + 1}": proc.pid for n, proc in enumerate(procs)}
        pids |= {"broker": broker_pid} if broker_pid else {}
        try:
            progress = await watch(
                broker,
                group=names.group,
                inputs=[names.raw, *names.hops],
                outputs=names.outputs,
                expected_raw=events,
                pids=pids,
                alive=lambda: all(proc.poll() is None for proc in procs),
                started=started,
                timeout=timeout,
            )
        except (TimeoutError, RuntimeError) as exc:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{exc}; its log ends:\n{tail}") from exc
        for point in {k.split(".", 1)[0] for k in progress.cpu}:
            for part in ("", ".sys"):
                each = [progress.cpu[f"{point}.worker{n + 1}{part}"] for n in range(workers)]
                progress.cpu[f"{point}.worker{part}"] = sum(each)
        result = RunResult(names, events, progress, log=log)
        # Counted while the (idle, caught-up) process still runs, before ``while_up`` adds
        # records of its own.
        await count_outputs(broker, result)
        if while_up is not None:
            await while_up(result)
    return result


async def count_outputs(broker: Broker, result: RunResult) -> None:
    names = result.names
    roles = {"addresses": names.addresses, "messages": names.messages, "commands": names.commands}
    for role, topic in roles.items():
        result.counts[role], result.finals[role] = await latest_by_key(broker, topic)
    for topic in (*names.hops, *names.extra_outputs, *names.unwatched):
        result.counts[names.label(topic)] = await broker.records(topic)
