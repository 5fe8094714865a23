"""Malformed input at volume: 100,000 requests across every provider's endpoint, each
wrong in one way (tampered where the signature covers it, unsigned, a garbage or wrong
signature, a stale timestamp, random bytes, an oversized body), with one correctly signed
control request per thousand. Ingest must answer every malformed request with a 4xx and
append exactly the controls: no 5xx, nothing unverified in ``webhooks.raw``."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from faults.harness import Outcome
from faults.report import Rows
from ingest.settings import IngestSettings, KafkaSettings
from localkafka import Cluster
from tests.fixtures.providers import SIGNING, provider_body, provider_sources, tamper
from tests.fixtures.signing import SIGNATURE_HEADERS, ses_signer, sign
from tests.integration.helpers import read_all, unique
from tests.integration.stack import free_port, running_ingest

pytestmark = pytest.mark.timeout(900)

REQUESTS = 100_000
CONTROL_EVERY = 1000
CONCURRENCY = 32
MAX_BODY = 64 * 1024
TIMESTAMPED = ("svix", "resend", "mailgun", "sendgrid")
MUTATIONS = ("tampered", "unsigned", "garbage", "wrong_secret", "stale", "random", "oversized")
# The headers that carry a signature or credential. SNS's message-type header is not one:
# an SES body whose own signature holds is genuine whatever that header says.
AUTHENTICATING = tuple(h for h in SIGNATURE_HEADERS if h != "x-amz-sns-message-type")

Request = tuple[str, bytes, dict[str, str], bool]  # kind, body, headers, is a control


def _requests(rng: random.Random) -> Iterator[Request]:
    kinds = list(SIGNING)
    for n in range(REQUESTS):
        kind = kinds[n % len(kinds)]
        secret = SIGNING[kind][1][0]
        body, headers = sign(kind, provider_body(kind, n), secret, now=time.time())
        if n % CONTROL_EVERY == 0:
            yield kind, body, headers, True
            continue
        yield (kind, *_malformed(rng, kind, n, body, headers), False)


def _malformed(
    rng: random.Random, kind: str, n: int, body: bytes, headers: dict[str, str]
) -> tuple[bytes, dict[str, str]]:
    mutation = MUTATIONS[n % len(MUTATIONS)]
    signature_headers = [h for h in headers if h in AUTHENTICATING]
    if mutation == "stale" and kind in TIMESTAMPED:
        return sign(kind, provider_body(kind, n), SIGNING[kind][1][0], now=time.time() - 3600)
    if mutation == "unsigned" and signature_headers:
        return body, {k: v for k, v in headers.items() if k not in signature_headers}
    if mutation == "garbage" and signature_headers:
        return body, headers | {h: _text(rng) for h in signature_headers}
    if mutation == "wrong_secret" and kind in ("nexuspromail", "generic", "mailgun", "postmark"):
        return sign(kind, provider_body(kind, n), "not-the-secret", now=time.time())
    if mutation == "random":
        junk = {h: _text(rng) for h in rng.sample(SIGNATURE_HEADERS, 3)}
        return rng.randbytes(rng.randrange(2000)), junk
    if mutation == "oversized":
        return body + b" " * MAX_BODY, headers
    return tamper(kind, body, headers)


def _text(rng: random.Random) -> str:
    return "".join(chr(rng.randrange(33, 127)) for _ in range(rng.randrange(1, 80)))


async def _fire(base: str, requests: Iterator[Request]) -> tuple[Counter[int], list[bytes], int]:
    """Send every request; the statuses of the malformed ones, the controls' bodies, and
    how many controls were answered 200."""
    statuses: Counter[int] = Counter()
    controls: list[bytes] = []
    accepted = 0

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        for kind, body, headers, control in requests:
            async with session.post(f"{base}/webhooks/{kind}", data=body, headers=headers) as r:
                await r.read()
                if control:
                    controls.append(body)
                    accepted += r.status == 200
                else:
                    statuses[r.status] += 1

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(sender(session) for _ in range(CONCURRENCY)))
    return statuses, controls, accepted


async def test_malformed_requests_get_4xx_and_append_nothing(
    kafka_cluster: Cluster, tmp_path: Path, rows: Rows
) -> None:
    name = f"malformed-input fuzz, {REQUESTS:,} requests"
    settings = IngestSettings(
        port=free_port(),
        max_body_bytes=MAX_BODY,
        kafka=KafkaSettings(
            bootstrap_servers=kafka_cluster.bootstrap,
            topic_prefix=unique("fuzz") + ".",
            raw_partitions=3,
            replication_factor=3,
            min_insync_replicas=2,
        ),
        sources=provider_sources(),
    )
    try:
        began = time.monotonic()
        async with running_ingest(settings, cert_fetcher=ses_signer().fetch) as base:
            statuses, controls, accepted = await _fire(base, _requests(random.Random(3)))
        took = time.monotonic() - began
        records = await read_all(kafka_cluster.bootstrap, settings.kafka.topic("webhooks.raw"))
        appended = Counter(r.value for r in records)
        unverified = sum((appended - Counter(controls)).values())
        missing = sum((Counter(controls) - appended).values())
        assert sum(statuses.values()) + len(controls) == REQUESTS
        assert all(400 <= status < 500 for status in statuses), statuses
        assert accepted == len(controls), f"{accepted} of {len(controls)} controls answered 200"
        assert unverified == 0, f"{unverified} records appended that no control sent"
        assert missing == 0, f"{missing} controls answered 200 are not in the topic"
    except BaseException as exc:
        rows.failed(name, exc)
        raise
    rows.add(
        Outcome(
            scenario=name,
            load=f"{REQUESTS:,} requests over {len(SIGNING)} sources in {took:.0f} s",
            acknowledged=accepted,
            lost=missing,
            double_counted=unverified,
            longest_without_200_s=None,
            caught_up_s=None,
            statuses=dict(sorted((statuses + Counter({200: accepted})).items())),
            notes=("double counted here: records appended that no control sent",),
        )
    )
