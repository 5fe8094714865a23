"""An SES subscription confirmation through ingest is listed by ``mailpulse sns confirm``
and its SubscribeURL visited only when the host is allowed; once a notification of the
topic arrives, nothing is pending any more."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from ingest.settings import SourceSettings
from tests.fixtures.signing import ses_signer
from tests.integration.pipeline import Pipeline
from tests.integration.stack import free_port, running_ingest

SUBSCRIPTION = "arn:aws:sns:us-east-1:123456789012:mailpulse-ses:0f1e2d3c"
RESPONSE = (
    "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult>"
    f"<SubscriptionArn>{SUBSCRIPTION}</SubscriptionArn>"
    "</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>"
)


@asynccontextmanager
async def fake_sns(port: int, visits: list[dict[str, str]]) -> AsyncIterator[str]:
    """A local stand-in for SNS's ConfirmSubscription endpoint; records each visit."""

    async def confirm(request: web.Request) -> web.Response:
        visits.append(dict(request.query))
        return web.Response(text=RESPONSE, content_type="text/xml")

    app = web.Application()
    app.router.add_get("/", confirm)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_sns_confirm_visits_an_allowed_subscribe_url_once_pending(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    signer = ses_signer()
    p = Pipeline(kafka_bootstrap, tmp_path, extra_sources={"ses": SourceSettings(kind="ses")})
    port, visits = free_port(), list[dict[str, str]]()
    async with (
        fake_sns(port, visits) as local,
        running_ingest(p.ingest_settings(), cert_fetcher=signer.fetch) as base,
        aiohttp.ClientSession() as session,
    ):

        async def post(body: bytes, headers: dict[str, str]) -> int:
            async with session.post(f"{base}/webhooks/ses", data=body, headers=headers) as r:
                return r.status

        body, headers = signer.envelope(
            "You have chosen to subscribe to the topic.",
            now=time.time(),
            msg_type="SubscriptionConfirmation",
            subscribe_url=local,
        )
        assert await post(body, headers) == 200
        token = json.loads(body)["Token"]

        # Listed, then refused: the URL is on no SNS host.
        refused = await p.mailpulse("sns", "confirm", "--yes")
        assert refused.code == 1, refused
        assert "1 pending SNS subscription confirmation(s):" in refused.out
        assert signer.topic_arn in refused.out
        assert "refused 1: not https on an SNS host" in refused.err
        assert visits == []

        allow = f"127.0.0.1:{port}"
        done = await p.mailpulse("sns", "confirm", "--yes", "--insecure-allow-host", allow)
        assert done.code == 0, done
        assert f"confirmed 1: HTTP 200, SubscriptionArn {SUBSCRIPTION}" in done.out
        assert visits == [
            {"Action": "ConfirmSubscription", "TopicArn": signer.topic_arn, "Token": token}
        ]

        # SNS now delivers notifications: the confirmation is no longer pending.
        event = {"eventType": "Delivery", "mail": {"destination": ["a@example.com"]}}
        body, headers = signer.envelope(json.dumps(event), now=time.time())
        assert await post(body, headers) == 200
        after = await p.mailpulse("sns", "confirm", "--yes", "--insecure-allow-host", allow)
        assert after.code == 0, after
        assert "no pending SNS subscription confirmation" in after.out
        assert len(visits) == 1
