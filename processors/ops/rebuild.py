"""``mailpulse rebuild``: a new generation of state from the earliest raw offset.

Faust restores tables from their changelogs and does not rebuild them when offsets are
reset, so a rebuild is a new *generation* (DESIGN.md §3): new consumer group, new
changelog topics, new data directory. The steps, each a sub-command:

* ``run --generation G``: start a worker of G (in shadow: its commands go to
  ``suppression.commands.G``, never to the live topic), show progress until it has
  consumed the whole raw log, check parity against the active generation, stop it.
* ``parity --generation G``: compare G's tables with the active generation's record for
  record (canonical JSON): counts, a digest of each table, the differing keys.
* ``switch --generation G``: with both generations' workers stopped and G caught up and
  equal, publish to the live topic G's latest command for any address whose live status
  differs, then mark G active. Workers started with ``generation = G`` from then on are live.
* ``drop --generation G``: delete an inactive generation's changelog topics, shadow
  command topic and local data directory.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from processors.generations import generation_topics, read_active, write_active
from processors.ops.catchup import ROLES, wait_caught_up
from processors.ops.children import child_process
from processors.ops.common import OpsError, refuse_if_active, run_command
from processors.ops.kafkaio import (
    commit_to_end,
    group_lag,
    latest_by_key,
    read_all,
    read_table,
)
from processors.ops.republish import publish
from processors.settings import ProcessorSettings

TABLES = ("addresses", "messages")
SHOWN_DIFFERENCES = 20


@dataclass
class TableParity:
    name: str
    count: tuple[int, int]
    digest: tuple[str, str]
    only_live: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not (self.only_live or self.only_new or self.different)

    def lines(self, live: str, new: str) -> list[str]:
        verdict = "equal" if self.equal else "DIFFERENT"
        out = [
            f"{self.name}: {verdict} — {live} {self.count[0]:,} records "
            f"(sha256 {self.digest[0][:16]}), {new} {self.count[1]:,} records "
            f"(sha256 {self.digest[1][:16]})"
        ]
        for label, keys in (
            (f"only in {live}", self.only_live),
            (f"only in {new}", self.only_new),
            ("values differ", self.different),
        ):
            if keys:
                shown = ", ".join(keys[:SHOWN_DIFFERENCES])
                more = len(keys) - SHOWN_DIFFERENCES
                out.append(f"  {label} ({len(keys)}): {shown}{f' … +{more}' if more > 0 else ''}")
        return out


def canonical(value: bytes) -> bytes:
    """A record's canonical JSON: keys sorted, no whitespace."""
    return orjson.dumps(orjson.loads(value), option=orjson.OPT_SORT_KEYS)


def digest(table: dict[bytes, bytes]) -> str:
    h = hashlib.sha256()
    for key in sorted(table):
        h.update(orjson.dumps([key.decode("utf-8", "replace"), table[key].decode()]))
    return h.hexdigest()


def compare(name: str, live: dict[bytes, bytes], new: dict[bytes, bytes]) -> TableParity:
    a = {k: canonical(v) for k, v in live.items()}
    b = {k: canonical(v) for k, v in new.items()}

    def text(keys: set[bytes]) -> list[str]:
        return sorted(k.decode("utf-8", "replace") for k in keys)

    return TableParity(
        name=name,
        count=(len(a), len(b)),
        digest=(digest(a), digest(b)),
        only_live=text(a.keys() - b.keys()),
        only_new=text(b.keys() - a.keys()),
        different=text({k for k in a.keys() & b.keys() if a[k] != b[k]}),
    )


def _generation(settings: ProcessorSettings, generation: str) -> ProcessorSettings:
    return settings.model_copy(update={"generation": generation})


async def parity(settings: ProcessorSettings, live: str, new: str) -> list[TableParity]:
    bootstrap = settings.bootstrap_servers
    a, b = _generation(settings, live).group_id, _generation(settings, new).group_id
    return [
        compare(t, await read_table(bootstrap, a, t), await read_table(bootstrap, b, t))
        for t in TABLES
    ]


async def active_generation(settings: ProcessorSettings) -> str:
    current = await read_active(settings)
    if current is None:
        raise OpsError("no generation is active yet: start the workers once first")
    return current.generation


def _input_topics(settings: ProcessorSettings) -> list[str]:
    """What a rebuilding (shadow) generation consumes: the raw log and its own hops."""
    return generation_topics(settings, shadow=True).inputs


def _stopped(worker: subprocess.Popen[bytes]) -> Callable[[], str | None]:
    def why() -> str | None:
        code = worker.poll()
        return None if code is None else f"the rebuild worker exited with code {code}"

    return why


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _worker(settings: ProcessorSettings, log: Path) -> ContextManager[subprocess.Popen[bytes]]:
    env = {
        "MAILPULSE_PROCESSORS__GENERATION": settings.generation,
        "MAILPULSE_PROCESSORS__WEB_PORT": str(_free_port()),
    }
    return child_process([sys.executable, "-m", "processors", "worker"], env, log, grace_s=60)


async def _run(settings: ProcessorSettings, args: argparse.Namespace) -> int:
    live = await active_generation(settings)
    if args.generation == live:
        raise OpsError(f"{live} is the active generation; rebuild into a new one")
    new = _generation(settings, args.generation)
    await refuse_if_active(new.bootstrap_servers, new.group_id, f"rebuild {new.generation}")
    log = new.datadir / f"rebuild-{new.generation}.log"
    print(f"rebuilding generation {new.generation} from the earliest raw offset (log {log})")
    with _worker(new, log) as worker:
        await wait_caught_up(
            new.bootstrap_servers,
            new.group_id,
            _input_topics(new),
            args.timeout,
            roles=ROLES,
            stopped=_stopped(worker),
        )
    print(f"caught up; parity against the active generation {live}:")
    return _report(await parity(settings, live, new.generation), live, new.generation)


def _report(tables: list[TableParity], live: str, new: str) -> int:
    for table in tables:
        print("\n".join(table.lines(live, new)))
    return 0 if all(t.equal for t in tables) else 1


async def _parity(settings: ProcessorSettings, args: argparse.Namespace) -> int:
    live = args.against or await active_generation(settings)
    return _report(await parity(settings, live, args.generation), live, args.generation)


async def _require_stopped(settings: ProcessorSettings, what: str, *generations: str) -> None:
    for generation in generations:
        group = _generation(settings, generation).group_id
        await refuse_if_active(settings.bootstrap_servers, group, what)


def suppression_status(command: bytes) -> dict[str, str | None]:
    """What a consumer acts on in a command: per scope, the reason it is suppressed (or None)."""
    scopes: dict[str, Any] = orjson.loads(command)["suppression"]
    return {scope: (s or {}).get("reason") for scope, s in sorted(scopes.items())}


async def reconcile_commands(settings: ProcessorSettings, generation: str) -> int:
    """Publish to the live topic the latest shadow command of every address whose live
    suppression status differs (events only the new generation applied).

    Ids of intermediate commands can differ between generations (a reason change seen in
    one arrival order and not in another); the latest status per address does not.
    """
    bootstrap = settings.bootstrap_servers
    live_topic = generation_topics(settings, shadow=False).suppression
    shadow_topic = generation_topics(_generation(settings, generation), shadow=True).suppression
    live = latest_by_key(await read_all(bootstrap, live_topic))
    shadow = latest_by_key(await read_all(bootstrap, shadow_topic))
    stale = {
        key: value
        for key, value in shadow.items()
        if key not in live or suppression_status(live[key]) != suppression_status(value)
    }
    return await publish(bootstrap, live_topic, stale) if stale else 0


async def _switch(settings: ProcessorSettings, args: argparse.Namespace) -> int:
    live = await active_generation(settings)
    new = args.generation
    if new == live:
        print(f"{new} is already the active generation")
        return 0
    await _require_stopped(settings, f"switch to {new}", live, new)
    raw = settings.topics.name(settings.topics.raw)
    lag = await group_lag(settings.bootstrap_servers, _generation(settings, new).group_id, [raw])
    if lag[raw]:
        raise OpsError(f"{new} is {lag[raw]:,} raw records behind: `mailpulse rebuild run` it")
    tables = await parity(settings, live, new)
    if _report(tables, live, new) and not args.force:
        raise OpsError(f"{new} differs from {live}; not switching (--force to override)")
    copied = await reconcile_commands(settings, new)
    # g2 derived every raw record through its own hops; the live hops hold the old
    # generation's copies of the same events, which g2 must not read again.
    hops = generation_topics(settings, shadow=False)
    group = _generation(settings, new).group_id
    await commit_to_end(settings.bootstrap_servers, group, [hops.email_events, hops.message_events])
    record = await write_active(settings, new, previous=live)
    print(
        f"published {copied} address(es) whose latest status only {new} had; {new} is active since "
        f"{record.since:%Y-%m-%d %H:%M:%S} UTC (was {live}). Start the workers with "
        f"MAILPULSE_PROCESSORS__GENERATION={new}; drop {live} when satisfied."
    )
    return 0


async def _drop(settings: ProcessorSettings, args: argparse.Namespace) -> int:
    gone = _generation(settings, args.generation)
    if args.generation == await active_generation(settings):
        raise OpsError(f"{args.generation} is the active generation; switch first")
    await _require_stopped(settings, f"drop {args.generation}", args.generation)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        own = set(generation_topics(gone, shadow=True).outputs)
        topics = [
            t for t in await admin.list_topics() if t.startswith(f"{gone.group_id}-") or t in own
        ]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()
    datadir = gone.datadir / gone.generation
    shutil.rmtree(datadir, ignore_errors=True)
    print(f"dropped {gone.generation}: deleted topics {sorted(topics)} and {datadir}")
    return 0


COMMANDS: dict[str, Any] = {"run": _run, "parity": _parity, "switch": _switch, "drop": _drop}


def run(args: argparse.Namespace) -> int:
    step = COMMANDS[args.step]
    return run_command(f"rebuild {args.step}", lambda settings: step(settings, args))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rebuild",
        help="build a new generation of state from the raw log, compare, switch, drop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    steps = parser.add_subparsers(dest="step", required=True)
    for name, text in (
        ("run", "build generation G from the earliest raw offset, then check parity"),
        ("parity", "compare generation G's tables with the active (or --against) one"),
        ("switch", "make generation G the active one (workers of both stopped)"),
        ("drop", "delete an inactive generation's topics and local data"),
    ):
        step = steps.add_parser(name, help=text)
        step.add_argument("--generation", "-g", required=True, help="e.g. g2")
        if name == "run":
            step.add_argument("--timeout", type=float, default=3600.0, help="seconds")
        if name == "parity":
            step.add_argument("--against", help="generation to compare with (default: active)")
        if name == "switch":
            step.add_argument("--force", action="store_true", help="switch despite differences")
    parser.set_defaults(func=run)
