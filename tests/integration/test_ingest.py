"""Ingest against the real broker: every provider's signed request is appended byte for
byte, tampered or stale ones are not, and nothing answered 200 is ever missing."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from ingest.settings import IngestSettings, KafkaSettings, SourceSettings
from localkafka import Broker, BrokerConfig
from schemas.raw import H_SOURCE
from tests.fixtures.providers import SIGNING, provider_body, provider_sources, tamper
from tests.fixtures.signing import ses_signer, sign
from tests.integration.helpers import eventually, read_all, unique, wait_status
from tests.integration.stack import free_port, running_ingest, service_process


@pytest.fixture
def settings(kafka_bootstrap: str) -> IngestSettings:
    return IngestSettings(
        port=free_port(),
        kafka=KafkaSettings(
            bootstrap_servers=kafka_bootstrap, topic_prefix=unique("ing") + ".", raw_partitions=3
        ),
        sources=provider_sources(),
    )


async def _post(
    session: aiohttp.ClientSession, base: str, kind: str, body: bytes, headers: dict[str, str]
) -> int:
    async with session.post(f"{base}/webhooks/{kind}", data=body, headers=headers) as resp:
        return resp.status


async def test_every_provider_signed_is_appended_tampered_is_not(
    settings: IngestSettings,
) -> None:
    accepted: dict[str, list[bytes]] = {}
    async with (
        running_ingest(settings, cert_fetcher=ses_signer().fetch) as base,
        aiohttp.ClientSession() as s,
    ):
        for kind, (_, signing) in SIGNING.items():
            for n, secret in enumerate(signing):  # every secret of a rotated source
                body, headers = sign(kind, provider_body(kind, n), secret, now=time.time())
                assert await _post(s, base, kind, body, headers) == 200, (kind, n)
                accepted.setdefault(kind, []).append(body)
                bad_body, bad_headers = tamper(kind, body, headers)
                assert await _post(s, base, kind, bad_body, bad_headers) == 401, (kind, n)
        # Stale signed timestamps are refused where the scheme signs one.
        for kind in ("svix", "resend", "mailgun", "sendgrid"):
            secret = SIGNING[kind][1][0]
            body, headers = sign(kind, provider_body(kind, 99), secret, now=time.time() - 3600)
            assert await _post(s, base, kind, body, headers) == 401, kind

    records = await read_all(
        settings.kafka.bootstrap_servers, settings.kafka.topic(settings.kafka.raw_topic)
    )
    appended: dict[str, list[bytes]] = {}
    for r in records:
        source = dict(r.headers)[H_SOURCE].decode()
        appended.setdefault(source, []).append(r.value)
    assert {k: sorted(v) for k, v in appended.items()} == {
        k: sorted(v) for k, v in accepted.items()
    }


async def test_broker_down_503_then_recovers_without_restart(tmp_path: Path) -> None:
    broker = Broker(
        BrokerConfig(port=free_port(), controller_port=free_port(), state_root=tmp_path / "kafka")
    )
    await asyncio.to_thread(broker.start)
    try:
        settings = IngestSettings(
            port=free_port(),
            kafka=KafkaSettings(
                bootstrap_servers=broker.config.bootstrap, raw_partitions=1, append_timeout_s=2.0
            ),
            sources={
                "nexuspromail": SourceSettings(kind="nexuspromail", secrets=(SecretStr("k"),))
            },
        )
        async with running_ingest(settings) as base, aiohttp.ClientSession() as s:

            async def post(n: int) -> tuple[int, str | None]:
                body, headers = sign(
                    "nexuspromail", provider_body("nexuspromail", n), "k", now=time.time()
                )
                async with s.post(
                    f"{base}/webhooks/nexuspromail", data=body, headers=headers
                ) as resp:
                    return resp.status, resp.headers.get("Retry-After")

            assert (await post(1))[0] == 200
            await asyncio.to_thread(broker.stop)
            # A 503 within the append timeout, not a request left hanging: the client
            # gives up (and the test fails) well after that timeout.
            status, retry_after = await asyncio.wait_for(
                post(2), timeout=settings.kafka.append_timeout_s + 10
            )
            assert status == 503
            assert retry_after is not None
            assert int(retry_after) > 0
            await wait_status(s, f"{base}/readyz", 503, timeout=15)
            await asyncio.to_thread(broker.start)
            await eventually(
                lambda: post(3), lambda answer: answer[0] == 200, timeout=60,
                what="a 200 once the broker is back",
            )  # fmt: skip
            await wait_status(s, f"{base}/readyz", 200, timeout=15)
        records = await read_all(broker.config.bootstrap, "webhooks.raw")
        bodies = [r.value for r in records]
        assert provider_body("nexuspromail", 1) in bodies
        assert provider_body("nexuspromail", 3) in bodies
    finally:
        await asyncio.to_thread(broker.stop)


async def test_kill_minus_nine_loses_no_acknowledged_request(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique("kill") + "."
    port = free_port()
    env = {
        "MAILPULSE_INGEST__PORT": str(port),
        "MAILPULSE_INGEST__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MAILPULSE_INGEST__KAFKA__TOPIC_PREFIX": prefix,
        "MAILPULSE_INGEST__KAFKA__RAW_PARTITIONS": "3",
    }
    secret = "dev-fake-nexuspromail-secret"
    ok: list[bytes] = []
    with service_process("ingest", [], env, tmp_path / "ingest.log") as proc:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as s:
            await wait_status(s, f"{base}/readyz", 200)

            async def client(worker: int, stop: Callable[[], bool]) -> None:
                for n in range(400):  # bounded: at most 400 requests per client
                    if stop():
                        return
                    body, headers = sign(
                        "nexuspromail",
                        provider_body("nexuspromail", worker * 1000 + n),
                        secret,
                        now=time.time(),
                    )
                    try:
                        if await _post(s, base, "nexuspromail", body, headers) == 200:
                            ok.append(body)
                    except aiohttp.ClientError:
                        return

            killed = False

            async def killer() -> None:
                nonlocal killed
                while len(ok) < 300:
                    await asyncio.sleep(0.01)
                proc.send_signal(signal.SIGKILL)
                killed = True

            await asyncio.wait_for(
                asyncio.gather(killer(), *(client(w, lambda: killed) for w in range(20))),
                timeout=120,
            )
    assert killed
    assert len(ok) >= 300
    records = await read_all(kafka_bootstrap, prefix + "webhooks.raw")
    stored = {r.value for r in records}
    missing = [b for b in ok if b not in stored]
    assert missing == [], f"{len(missing)} of {len(ok)} acknowledged requests are not in Kafka"
