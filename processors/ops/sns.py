"""``mailpulse sns confirm``: confirm pending SES/SNS subscriptions from the raw log.

SNS sends a ``SubscriptionConfirmation`` to a new HTTPS subscriber; ingest verifies it
like any SNS message, appends it to ``webhooks.raw`` (``mailpulse.kind:
subscription_confirmation``) and never visits its ``SubscribeURL`` itself. This command
lists the confirmations received since ``--since`` (default: the last 3 days, as long as
SNS keeps a token valid) for which no notification of the same topic came later, and
visits the chosen ones' ``SubscribeURL``: all with ``--yes``, one by one on a terminal,
none otherwise (a list only).

A URL is visited only after the host check ingest applies to an SNS signing certificate
URL (``ingest.signatures.certs.check_sns_url``: https on ``sns.<region>.amazonaws.com``),
no redirects followed. ``--insecure-allow-host HOST:PORT`` lets a test point it at a
local server; never use it with real traffic.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from ingest.errors import VerificationError
from ingest.signatures.certs import check_sns_url
from processors.generations import generation_topics
from processors.ops.common import iso_datetime, records_since, run_command
from processors.settings import ProcessorSettings
from schemas.raw import RawWebhook

TOKEN_LIFETIME = timedelta(days=3)
VISIT_TIMEOUT = aiohttp.ClientTimeout(total=15)
SUBSCRIPTION_ARN = re.compile(r"<SubscriptionArn>([^<]{1,512})</SubscriptionArn>")


@dataclass(frozen=True)
class Confirmation:
    topic_arn: str
    subscribe_url: str
    message_id: str
    source: str
    received_at: datetime
    position: str  # "<partition>:<offset>" in the raw topic

    def describe(self) -> str:
        shown = re.sub(r"(Token=[^&]{8})[^&]*", r"\1…", self.subscribe_url)
        return (
            f"{self.topic_arn} (source {self.source}, received "
            f"{self.received_at:%Y-%m-%d %H:%M:%S} UTC, raw {self.position}): {shown}"
        )


def _envelope(raw: RawWebhook) -> dict[str, Any] | None:
    try:
        body = orjson.loads(raw.body)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def pending(records: Iterable[RawWebhook]) -> list[Confirmation]:
    """Subscription confirmations with no later notification of their topic, oldest first;
    one per ``SubscribeURL`` (SNS may deliver a message twice)."""
    confirmations: dict[str, Confirmation] = {}
    notified: dict[str, datetime] = {}  # topic ARN -> newest notification received
    for raw in records:
        if raw.provider != "ses":
            continue
        body = _envelope(raw)
        if body is None or not isinstance(arn := body.get("TopicArn"), str):
            continue
        if raw.kind == "notification":
            notified[arn] = max(raw.received_at, notified.get(arn, raw.received_at))
        elif raw.kind == "subscription_confirmation":
            url = body.get("SubscribeURL")
            if isinstance(url, str):
                confirmations[url] = Confirmation(
                    topic_arn=arn,
                    subscribe_url=url,
                    message_id=str(body.get("MessageId", "")),
                    source=raw.source,
                    received_at=raw.received_at,
                    position=f"{raw.partition}:{raw.offset}",
                )
    waiting = [
        c
        for c in confirmations.values()
        if c.topic_arn not in notified or notified[c.topic_arn] < c.received_at
    ]
    return sorted(waiting, key=lambda c: c.received_at)


def refusal(url: str, allowed_hosts: Sequence[str] = ()) -> str | None:
    """Why ``url`` must not be visited (None: it may): the SNS host check, unless its
    ``host:port`` was allowed explicitly."""
    try:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and f"{parts.hostname}:{parts.port}" in allowed_hosts:
            return None
    except ValueError:
        return "not a URL"
    try:
        check_sns_url(url, reason="bad_subscribe_url")
    except VerificationError:
        return "not https on an SNS host (sns.<region>.amazonaws.com); refused"
    return None


async def visit(url: str) -> str:
    """GET the SubscribeURL (no redirects); what SNS answered, in one line."""
    async with (
        aiohttp.ClientSession(timeout=VISIT_TIMEOUT) as session,
        session.get(url, allow_redirects=False) as resp,
    ):
        text = (await resp.content.read(64 * 1024)).decode("utf-8", "replace")
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {text[:200]}")
    found = SUBSCRIPTION_ARN.search(text)
    return f"HTTP 200, SubscriptionArn {found.group(1)}" if found else "HTTP 200"


async def _raw_records(settings: ProcessorSettings, since: datetime) -> list[RawWebhook]:
    topic = generation_topics(settings).raw
    found: list[RawWebhook] = []
    async for r in records_since(settings.bootstrap_servers, topic, since, f"scan {topic}"):
        try:
            found.append(RawWebhook.from_kafka(r.value or b"", r.headers, r.partition, r.offset))
        except (KeyError, ValueError):
            continue  # not a raw webhook record (the normaliser sends it to the DLQ)
    return found


def _chosen(n: int, confirmation: Confirmation, yes: bool) -> bool:
    if yes:
        return True
    answer = input(f"confirm {n} ({confirmation.topic_arn})? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


async def confirm(settings: ProcessorSettings, args: argparse.Namespace) -> int:
    since: datetime = args.since or datetime.now(UTC) - TOKEN_LIFETIME
    waiting = pending(await _raw_records(settings, since))
    if not waiting:
        print(f"no pending SNS subscription confirmation since {since:%Y-%m-%d %H:%M} UTC")
        return 0
    print(f"{len(waiting)} pending SNS subscription confirmation(s):")
    for n, c in enumerate(waiting, 1):
        print(f"  {n}. {c.describe()}")
    if not args.yes and not sys.stdin.isatty():
        print("nothing visited: add --yes to confirm them all (or run on a terminal to choose)")
        return 0
    failures = 0
    for n, c in enumerate(waiting, 1):
        if not _chosen(n, c, args.yes):
            continue
        why = refusal(c.subscribe_url, args.insecure_allow_host or ())
        if why is not None:
            print(f"refused {n}: {why}", file=sys.stderr)
            failures += 1
            continue
        try:
            print(f"confirmed {n}: {await visit(c.subscribe_url)}")
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
            print(f"failed {n}: {exc!r:.300}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    return run_command("sns confirm", lambda settings: confirm(settings, args))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sns",
        help="SES/SNS subscription confirmations from the raw log",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("confirm", help="list pending confirmations and visit SubscribeURLs")
    step.add_argument(
        "--since",
        type=iso_datetime,
        metavar="ISO8601",
        help="received at or after (default: 3 days ago, an SNS token's lifetime)",
    )
    step.add_argument("--yes", action="store_true", help="confirm every pending one")
    step.add_argument(
        "--insecure-allow-host",
        action="append",
        metavar="HOST:PORT",
        help="also visit URLs on this host and port, over http too (tests with a local "
        "server; never with real traffic)",
    )
    parser.set_defaults(func=run)
