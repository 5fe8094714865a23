"""``mailpulse sns confirm``: which confirmations are pending, and which SubscribeURLs may
be visited (the SNS host check ingest applies to certificate URLs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ingest.errors import VerificationError
from ingest.signatures.certs import check_certificate_url
from processors.ops.sns import pending, refusal
from schemas.raw import RawWebhook

T0 = datetime(2026, 5, 14, 12, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:us-east-1:123456789012:mailpulse-ses"
AWS = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t"

REFUSED = [
    "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",  # not https
    "https://sns.us-east-1.amazonaws.com.evil.example/?Action=ConfirmSubscription",
    "https://evil.example/?host=sns.us-east-1.amazonaws.com",
    "https://user:pw@sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
    "https://sns.us-east-1.amazonaws.com:8443/?Action=ConfirmSubscription",
    "https://sqs.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
    "https://127.0.0.1:8443/?Action=ConfirmSubscription",
    "file:///etc/passwd",
    "https://[::1/",
]


@pytest.mark.parametrize(
    "url", [AWS, "https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription"]
)
def test_sns_hosts_may_be_visited(url: str) -> None:
    assert refusal(url) is None


@pytest.mark.parametrize("url", REFUSED)
def test_other_hosts_are_refused_like_the_verifier_refuses_them(url: str) -> None:
    assert refusal(url) is not None
    # The same host check as a signing certificate's URL gets in the verifier.
    with pytest.raises(VerificationError):
        check_certificate_url(url.split("?")[0] + "cert.pem")


def test_a_local_server_only_when_allowed_by_host_and_port() -> None:
    local = "http://127.0.0.1:8099/?Action=ConfirmSubscription&Token=t"
    assert refusal(local) is not None
    assert refusal(local, ["127.0.0.1:8099"]) is None
    assert refusal(local, ["127.0.0.1:8100"]) is not None
    assert refusal(local.replace("http:", "ftp:"), ["127.0.0.1:8099"]) is not None


def raw(kind: str, at: datetime, *, topic: str = TOPIC, url: str = AWS, n: int = 0) -> RawWebhook:
    body = {"Type": "Notification", "TopicArn": topic, "MessageId": f"m{n}", "Message": "{}"}
    if kind == "subscription_confirmation":
        body |= {"Type": "SubscriptionConfirmation", "SubscribeURL": url, "Token": "t"}
    return RawWebhook(
        body=json.dumps(body).encode(),
        source="ses",
        provider="ses",
        received_at=at,
        verification="sns-v2",
        kind=kind,
        partition=0,
        offset=n,
    )


def test_pending_until_a_notification_of_the_topic_arrives() -> None:
    other = "arn:aws:sns:us-east-1:123456789012:other"
    later = T0 + timedelta(minutes=5)
    records = [
        raw("notification", T0 - timedelta(hours=1), n=1),  # before: still pending
        raw("subscription_confirmation", T0, n=2),
        raw("subscription_confirmation", T0, n=3),  # SNS delivered it twice
        raw("subscription_confirmation", T0, topic=other, url=AWS + "2", n=4),
        raw("notification", later, topic=other, n=5),  # other's subscription works
    ]
    [waiting] = pending(records)
    assert (waiting.topic_arn, waiting.subscribe_url) == (TOPIC, AWS)
    assert waiting.position == "0:3"
    assert "Token=t" in waiting.describe()
    assert pending([*records, raw("notification", later, n=6)]) == []


def test_other_providers_and_unreadable_bodies_are_ignored() -> None:
    webhook = raw("subscription_confirmation", T0)
    nexus = RawWebhook(
        body=webhook.body,
        source="nexuspromail",
        provider="nexuspromail",
        received_at=T0,
        verification="hmac",
        kind="subscription_confirmation",
    )
    garbled = RawWebhook(
        body=b"not json",
        source="ses",
        provider="ses",
        received_at=T0,
        verification="sns-v2",
        kind="subscription_confirmation",
    )
    assert pending([nexus, garbled]) == []
