"""``mailpulse replay``: move the processors' consumer group back on the raw log.

The same as Kafka's ``kafka-consumer-groups --reset-offsets`` for our group and topics:
a dry run prints the plan (current -> new offset per partition), ``--execute`` commits
it. By default the group is reset on all three topics it reads (``webhooks.raw``,
``email.events``, ``message.events``), as ``--all-topics`` does. Safe because every
record keeps the highest raw position it applied (DESIGN.md §3): the workers re-read,
skip what they already applied, publish nothing again.

Offsets are committed by a consumer of the group with manual assignment (aiokafka's
admin client cannot alter group offsets). The broker itself rejects such a commit
while the group has members, and we refuse before trying: a running worker would
overwrite the reset with its own position.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError

from processors.generations import generation_topics
from processors.ops.catchup import ROLES, wait_caught_up
from processors.ops.common import (
    OpsError,
    epoch_ms,
    iso_datetime,
    refuse_if_active,
    run_command,
    topic_partitions,
)
from processors.ops.kafkaio import commit_offsets
from processors.settings import ProcessorSettings


@dataclass(frozen=True)
class Move:
    tp: TopicPartition
    current: int | None  # None: the group has no committed offset there
    new: int


def replay_topics(settings: ProcessorSettings, which: str) -> list[str]:
    inputs = generation_topics(settings).inputs  # raw, email.events, message.events
    return inputs[:1] if which == "raw" else inputs


async def plan(bootstrap: str, group: str, topics: list[str], to: datetime | None) -> list[Move]:
    """Where each partition of ``topics`` would move: earliest, or the first offset whose
    record timestamp is at or after ``to`` (the end offset where none is that late)."""
    # Never commits: the plan only reads (auto-commit would write positions on stop).
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in await topic_partitions(consumer, topic)
        ]
        current = {tp: await consumer.committed(tp) for tp in tps}
        if to is None:
            new = await consumer.beginning_offsets(tps)
        else:
            ends = await consumer.end_offsets(tps)
            found = await consumer.offsets_for_times({tp: epoch_ms(to) for tp in tps})
            new = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
    finally:
        await consumer.stop()
    return [Move(tp, current[tp], new[tp]) for tp in tps]


async def commit(bootstrap: str, group: str, moves: list[Move]) -> None:
    try:
        await commit_offsets(bootstrap, group, {m.tp: m.new for m in moves})
    except CommitFailedError:
        raise OpsError(
            f"the broker rejected the reset of group {group}: a consumer joined it meanwhile; "
            "stop the workers and run the command again"
        ) from None


def format_plan(moves: list[Move]) -> str:
    rows = [("TOPIC", "PARTITION", "CURRENT", "NEW")]
    rows += [
        (m.tp.topic, str(m.tp.partition), "-" if m.current is None else str(m.current), str(m.new))
        for m in moves
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return "\n".join(line.rstrip() for line in lines)


async def replay(settings: ProcessorSettings, args: argparse.Namespace) -> int:
    bootstrap, group = settings.bootstrap_servers, settings.group_id
    to: datetime | None = args.to_datetime
    await refuse_if_active(bootstrap, group, "reset its offsets")
    moves = await plan(bootstrap, group, replay_topics(settings, args.topic), to)
    target = "earliest" if to is None else f"the first record at or after {to.isoformat()}"
    print(f"group {group}: reset to {target}")
    print(format_plan(moves))
    if not args.execute:
        print("dry run: nothing changed (add --execute to apply)")
        return 0
    # Described again right before the commit: the plan took a few round trips.
    await refuse_if_active(bootstrap, group, "reset its offsets")
    await commit(bootstrap, group, moves)
    print(f"reset {len(moves)} partition(s) of group {group}; start the workers to replay")
    if args.follow:
        inputs = generation_topics(settings).inputs
        await wait_caught_up(bootstrap, group, inputs, args.follow_timeout, roles=ROLES)
        print(f"group {group} has replayed to the end of {', '.join(inputs)}")
    return 0


def run(args: argparse.Namespace) -> int:
    return run_command("replay", lambda settings: replay(settings, args))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="reset the processors' consumer group on the raw log (dry run unless --execute)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true", help="the beginning of each topic")
    target.add_argument(
        "--to-datetime",
        type=iso_datetime,
        metavar="ISO8601",
        help="the first record at or after this time (no offset given = UTC)",
    )
    parser.add_argument(
        "--topic",
        choices=("raw", "all"),
        default="all",
        help="all (default): webhooks.raw, email.events and message.events, like "
        "kafka-consumer-groups --all-topics; raw: webhooks.raw only (see README: a "
        "raw-only reset was seen to stall the restarted worker's raw commits)",
    )
    parser.add_argument("--execute", action="store_true", help="apply the plan")
    parser.add_argument(
        "--follow",
        action="store_true",
        help="with --execute: then show the workers' progress through the replay until "
        "they have caught up (start them meanwhile; Ctrl-C stops watching only)",
    )
    parser.add_argument(
        "--follow-timeout", type=float, default=3600.0, help="seconds (default %(default)s)"
    )
    parser.set_defaults(func=run)
