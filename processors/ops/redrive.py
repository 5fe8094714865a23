"""``mailpulse redrive``: send DLQ records back through the normaliser after a fix.

Each selected DLQ record's original raw record (same key, body bytes and headers) is
appended again to ``webhooks.raw`` with the header ``mailpulse.redriven_from`` =
``<dlq topic>:<partition>:<offset>``. It gets a fresh raw position, so it passes the
replay dedupe; the events it yields say ``processing_status = "redriven"``. A dry run
(the default) lists what would go; ``--execute`` appends (``acks=all``, idempotent).

Each DLQ record applies once, twice over:
* a DLQ record already re-driven is skipped: the raw log is scanned for its
  ``mailpulse.redriven_from`` header (from the earliest selected ``failed_at``, minus an
  hour for clock skew), so a second run sends nothing again;
* should two runs race, the provider event id (or body hash) kept in each address and
  message record drops the second copy, within the dedupe retention.
A re-driven record that fails again lands in the DLQ as a new DLQ record, which can be
re-driven in turn once fixed. Only records that failed in the normaliser, read from this
generation's raw topic, can be re-driven; others are listed as such.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from processors.generations import generation_topics
from processors.ops.common import OpsError, iso_datetime, records_since, run_command
from processors.ops.kafkaio import read_all
from processors.ops.progress import progress
from processors.settings import ProcessorSettings
from schemas.dlq import DlqRecord
from schemas.raw import H_REDRIVEN_FROM

CLOCK_SKEW = timedelta(hours=1)


@dataclass(frozen=True)
class Entry:
    """One DLQ record and where it sits in the DLQ topic."""

    tag: str  # "<dlq topic>:<partition>:<offset>", the value of H_REDRIVEN_FROM
    record: DlqRecord

    def describe(self) -> str:
        r = self.record
        return (
            f"{self.tag} reason={r.reason} stage={r.stage} failed_at={r.failed_at.isoformat()} "
            f"raw={r.raw.topic}:{r.raw.partition}:{r.raw.offset} key={r.raw.key}"
        )


def selected(entry: Entry, args: argparse.Namespace) -> bool:
    r = entry.record
    return (
        (not args.reason or r.reason in args.reason)
        and (args.since is None or r.failed_at >= args.since)
        and (args.until is None or r.failed_at < args.until)
    )


def why_not(entry: Entry, raw_topic: str) -> str | None:
    """Why this DLQ record cannot go back to the normaliser (None: it can)."""
    raw = entry.record.raw
    if entry.record.stage != "normalise" or raw.topic != raw_topic:
        return (
            f"failed in {entry.record.stage} reading {raw.topic}, not a raw record of {raw_topic}"
        )
    try:
        base64.b64decode(raw.body_b64, validate=True)
    except (binascii.Error, ValueError):
        return "its body is not valid base64"
    return None


async def redriven_tags(bootstrap: str, raw_topic: str, since: datetime) -> set[str]:
    """``H_REDRIVEN_FROM`` values on raw records appended at or after ``since``."""
    tags: set[str] = set()
    async for record in records_since(bootstrap, raw_topic, since, f"scan {raw_topic}"):
        tags.update(v.decode("utf-8", "replace") for k, v in record.headers if k == H_REDRIVEN_FROM)
    return tags


async def append(bootstrap: str, raw_topic: str, entries: list[Entry]) -> list[str]:
    """Append each entry's raw record to ``raw_topic``; returns the new positions."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = []
        with progress(f"append to {raw_topic}", len(entries)) as bar:
            for entry in entries:
                raw = entry.record.raw
                headers = [(k, v.encode()) for k, v in raw.headers.items() if k != H_REDRIVEN_FROM]
                headers.append((H_REDRIVEN_FROM, entry.tag.encode()))
                futures.append(
                    await producer.send(
                        raw_topic,
                        key=None if raw.key is None else raw.key.encode(),
                        value=base64.b64decode(raw.body_b64, validate=True),
                        headers=headers,
                    )
                )
                bar.update(len(futures))
            metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [f"{m.topic}:{m.partition}:{m.offset}" for m in metadata]


async def redrive(settings: ProcessorSettings, args: argparse.Namespace) -> int:
    bootstrap, names = settings.bootstrap_servers, generation_topics(settings)
    dlq_topic, raw_topic = names.dlq, names.raw
    entries: list[Entry] = []
    unreadable = 0
    for record in await read_all(bootstrap, dlq_topic):
        tag = f"{record.topic}:{record.partition}:{record.offset}"
        try:
            entries.append(Entry(tag, DlqRecord.model_validate_json(record.value or b"")))
        except ValidationError:
            unreadable += 1
            print(f"skip {tag}: not a DLQ record this version can read")
    chosen = [e for e in entries if selected(e, args)]
    ready: list[Entry] = []
    for entry in chosen:
        reason = why_not(entry, raw_topic)
        if reason is None:
            ready.append(entry)
        else:
            print(f"cannot re-drive {entry.describe()}: {reason}")
    done: set[str] = set()
    if ready:
        since = min(e.record.failed_at for e in ready) - CLOCK_SKEW
        done = await redriven_tags(bootstrap, raw_topic, since)
    todo = [e for e in ready if e.tag not in done]
    for entry in ready:
        state = "already re-driven" if entry.tag in done else "re-drive"
        print(f"{state}: {entry.describe()}")
    summary = (
        f"{len(entries)} DLQ record(s) in {dlq_topic}, {len(chosen)} selected: "
        f"{len(todo)} to re-drive, {len(ready) - len(todo)} already re-driven, "
        f"{len(chosen) - len(ready)} not re-drivable; {unreadable} unreadable"
    )
    if not args.execute:
        print(f"{summary}\ndry run: nothing sent (add --execute to re-drive)")
        return 0
    positions = await append(bootstrap, raw_topic, todo) if todo else []
    for entry, position in zip(todo, positions, strict=True):
        print(f"re-drove {entry.tag} -> {position}")
    print(f"{summary}\nre-drove {len(positions)} record(s) to {raw_topic}")
    return 0


def _check_range(args: argparse.Namespace) -> None:
    if args.since is not None and args.until is not None and args.since >= args.until:
        raise OpsError("--since must be earlier than --until")


async def _main(settings: ProcessorSettings, args: argparse.Namespace) -> int:
    _check_range(args)
    return await redrive(settings, args)


def run(args: argparse.Namespace) -> int:
    return run_command("redrive", lambda settings: _main(settings, args))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "redrive",
        help="send DLQ records back through the normaliser (dry run unless --execute)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--reason",
        action="append",
        metavar="R",
        help="only DLQ records with this reason (repeatable), e.g. unknown_event_type",
    )
    parser.add_argument(
        "--since",
        type=iso_datetime,
        metavar="ISO8601",
        help="failed at or after (UTC if no offset)",
    )
    parser.add_argument(
        "--until", type=iso_datetime, metavar="ISO8601", help="failed before (UTC if no offset)"
    )
    parser.add_argument("--execute", action="store_true", help="append them to the raw topic")
    parser.set_defaults(func=run)
