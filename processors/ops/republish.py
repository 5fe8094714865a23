"""``mailpulse republish``: re-emit every address's current suppression command.

For a new downstream service: the latest command per address on the compacted
``suppression.commands`` topic is re-sent byte for byte (same ``command_id``, keyed by
address, ``acks=all``, idempotent producer) to ``--to`` (created compacted if missing) or
to the suppression topic itself. State is not touched.

Before sending, each command is checked against the ``addresses`` table (read from its
changelog): per scope, suppressed-or-not and reason must agree. Disagreements, and
addresses the table has suppressed with no command at all, are reported (exit status 3,
after publishing): they point at a bug or a worker that is still catching up.

Re-sending into the live suppression topic is refused while workers run: a command they
publish between our read and our write would be followed by our older one, and
compaction would keep the stale one.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from processors.generations import generation_topics
from processors.ops.common import OpsError, refuse_if_active, run_command
from processors.ops.kafkaio import latest_by_key, read_all, read_table
from processors.settings import ProcessorSettings
from schemas.commands import SuppressionCommand
from schemas.common import SuppressionScope
from schemas.state import AddressState, ScopeSuppression
from schemas.topics import COMPACTED_CONFIG, TopicSpec, ensure_topics

EXIT_MISMATCH = 3


def _verdict(
    suppression: dict[SuppressionScope, ScopeSuppression | None],
) -> dict[str, str]:
    """What a consumer acts on: per suppressed scope, its reason (cause/since may move)."""
    return {scope: s.reason for scope, s in sorted(suppression.items()) if s is not None}


@dataclass
class Check:
    """Commands to send and what disagrees with the table."""

    sendable: dict[bytes, bytes] = field(default_factory=dict)  # readable commands, as read
    mismatches: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    without_command: list[str] = field(default_factory=list)
    suppressed_in_table: int = 0


def cross_check(commands: dict[bytes, bytes], table: dict[bytes, bytes]) -> Check:
    """Compare the latest command per address with the ``addresses`` table."""
    check = Check()
    states: dict[bytes, AddressState] = {}
    for key, value in table.items():
        try:
            states[key] = AddressState.model_validate_json(value)
        except ValidationError:
            check.unreadable.append(f"addresses table record {key!r}")
    for key, value in commands.items():
        address = key.decode("utf-8", "replace")
        try:
            command = SuppressionCommand.model_validate_json(value)
        except ValidationError:
            check.unreadable.append(f"suppression command of {address}")
            continue
        check.sendable[key] = value
        said, state = _verdict(command.suppression), states.get(key)
        if state is None:
            check.mismatches.append(f"{address}: command says {said}, table has no record")
        elif said != _verdict(state.suppression):
            holds = _verdict(state.suppression)
            check.mismatches.append(f"{address}: command says {said}, table says {holds}")
    for key, state in states.items():
        if _verdict(state.suppression):
            check.suppressed_in_table += 1
            if key not in commands:
                check.without_command.append(
                    f"{state.address}: table says {_verdict(state.suppression)}, no command"
                )
    return check


async def publish(bootstrap: str, topic: str, records: dict[bytes, bytes]) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in records.items()]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)


async def republish(settings: ProcessorSettings, args: argparse.Namespace) -> int:
    bootstrap, t = settings.bootstrap_servers, settings.topics
    source = generation_topics(settings).suppression
    target: str = args.to or source
    if target == source:
        await refuse_if_active(bootstrap, settings.group_id, f"re-send into {source}")
    records = await read_all(bootstrap, source)
    if not records:
        raise OpsError(f"{source} is empty or does not exist: nothing to re-publish")
    if target != source:
        await ensure_topics(
            bootstrap,
            [
                TopicSpec(
                    target,
                    t.partitions,
                    t.replication_factor,
                    COMPACTED_CONFIG,
                    t.min_insync_replicas,
                )
            ],
        )
    commands = latest_by_key(records)
    check = cross_check(commands, await read_table(bootstrap, settings.group_id, "addresses"))
    for line in check.unreadable:
        print(f"unreadable: {line} (not re-published)")
    sent = await publish(bootstrap, target, check.sendable)
    for line in check.mismatches:
        print(f"mismatch: {line}")
    for line in check.without_command:
        print(f"missing command: {line}")
    print(
        f"read {len(records)} record(s) of {source}: {len(commands)} address(es) with a "
        f"command; table: {check.suppressed_in_table} suppressed address(es)\n"
        f"re-published {sent} command(s) to {target}; {len(check.mismatches)} mismatch(es), "
        f"{len(check.without_command)} suppressed address(es) without a command, "
        f"{len(check.unreadable)} unreadable record(s)"
    )
    problems = check.mismatches or check.without_command or check.unreadable
    return EXIT_MISMATCH if problems else 0


def run(args: argparse.Namespace) -> int:
    return run_command("republish", lambda settings: republish(settings, args))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "republish",
        help="re-emit the latest suppression command of every address (same command ids)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--to",
        metavar="TOPIC",
        help="target topic, used as given (no prefix added); created compacted if missing. "
        "Default: the suppression topic itself (workers must be stopped)",
    )
    parser.set_defaults(func=run)
