"""The manage API (seed 003 shapes) without Faust or Kafka: a fake topic behind the
real registry, the real URL guard."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from processors.webhooks.manage import ManageActions
from processors.webhooks.registry import Endpoint, Registry, topic_key
from processors.webhooks.ssrf import UrlGuard
from schemas.webhooks import SubscriptionRecord

TOKEN = "manage-token"
AUTH = f"Bearer {TOKEN}"
NOW = datetime(2026, 3, 3, 10, 0, 0, 123456, tzinfo=UTC)


async def public_resolver(host: str, port: int) -> list[str]:
    return {"yourapp.com": ["93.184.216.34"], "intranet.corp": ["10.2.3.4"]}[host]


@dataclass
class FakeTopic:
    """The compacted topic as records in order, folded by the real ``Registry``."""

    registry: Registry = field(default_factory=Registry)
    records: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    fail: bool = False

    def get(self, webhook_id: int) -> Endpoint | None:
        return self.registry.get(webhook_id)

    def all(self) -> list[Endpoint]:
        return self.registry.all()

    async def ready(self) -> bool:
        return True

    async def append(self, uid: str, record: SubscriptionRecord | None) -> int:
        if self.fail:
            raise TimeoutError("broker")
        value = record.to_topic() if record is not None else None
        self.records.append((topic_key(uid), value))
        offset = len(self.records) - 1
        self.registry.apply(topic_key(uid), value, offset)
        return offset


def actions(topic: FakeTopic, token: str | None = TOKEN, private: bool = False) -> ManageActions:
    secrets = iter(f"whsec_generated_{n}" for n in range(100))
    return ManageActions(
        SecretStr(token) if token else None,
        UrlGuard(allow_http=private, allow_private_addresses=private, resolve=public_resolver),
        topic,
        now=lambda: NOW,
        generate_secret=lambda: next(secrets),
    )


async def call(a: ManageActions, action: str, body: Any = None, webhook_id: str = "") -> Any:
    raw = orjson.dumps(body) if body is not None else b""
    reply = await a.handle(action, AUTH, raw, webhook_id)
    return reply.status, dict(reply.body)


async def test_seed_003_create_and_list_shapes() -> None:
    topic = FakeTopic()
    a = actions(topic)
    request = {
        "url": "https://yourapp.com/hooks/email-events",
        "events": "open,click,bounce,unsubscribe",
        "secret": "whsec_your_secret_key_here",
    }
    status, created = await call(a, "create", request)
    assert status == 201
    assert created == {
        "id": 1,
        "url": "https://yourapp.com/hooks/email-events",
        "events": "open,click,bounce,unsubscribe",
        "active": True,
        "created_at": "2026-03-03T10:00:00Z",
        "secret": None,  # given, so not echoed
    }
    status, listed = await call(a, "list")
    assert status == 200
    assert listed == {"webhooks": [{k: v for k, v in created.items() if k != "secret"}]}
    # The secret is on the topic (signing needs it) and nowhere in an answer.
    assert b"whsec_your_secret_key_here" in (topic.records[0][1] or b"")
    assert "whsec_your_secret_key_here" not in repr(topic.registry.get(1))


async def test_a_generated_secret_is_returned_once() -> None:
    a = actions(FakeTopic())
    body = {"url": "https://yourapp.com/h", "events": "email.bounce,suppression.changed"}
    status, created = await call(a, "create", body)
    assert status == 201
    assert created["secret"] == "whsec_generated_0"
    for action in ("get", "list"):
        _, answer = await call(a, action, webhook_id="1")
        assert "whsec_generated_0" not in orjson.dumps(answer).decode()


async def test_ids_are_unique_whichever_order_creations_land_in() -> None:
    topic = FakeTopic()
    a = actions(topic)
    ids = [
        (await call(a, "create", {"url": "https://yourapp.com/h", "events": "open"}))[1]["id"]
        for _ in range(5)
    ]
    await call(a, "update", {"active": False}, webhook_id=str(ids[0]))  # uses an offset too
    _, later = await call(a, "create", {"url": "https://yourapp.com/h", "events": "open"})
    assert len({*ids, later["id"]}) == 6
    assert ids == [1, 2, 3, 4, 5]
    assert later["id"] == 7


async def test_update_delete_rotate() -> None:
    topic = FakeTopic()
    a = actions(topic)
    await call(a, "create", {"url": "https://yourapp.com/h", "events": "open"})
    status, changed = await call(
        a, "update", {"events": "email.click, email.open", "active": False}, webhook_id="1"
    )
    assert status == 200
    assert (changed["events"], changed["active"], changed["id"]) == (
        "email.click,email.open",
        False,
        1,
    )
    status, rotated = await call(a, "rotate", webhook_id="1")
    assert status == 200
    assert rotated == {"id": 1, "secret": "whsec_generated_1"}
    endpoint = topic.registry.get(1)
    assert endpoint is not None
    assert endpoint.secret.get_secret_value() == "whsec_generated_1"
    assert endpoint.record.created_at == NOW  # kept across changes
    status, _ = await call(a, "delete", webhook_id="1")
    assert status == 204
    assert topic.records[-1][1] is None  # a tombstone
    assert (await call(a, "get", webhook_id="1"))[0] == 404
    assert topic.registry.subscribers("email.open") == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "scheme_not_allowed"),
        ("https://127.0.0.1/hook", "address_not_allowed"),
        ("https://intranet.corp/hook", "address_not_allowed"),
        ("https://169.254.169.254/latest/meta-data/", "address_not_allowed"),
        ("https://user:pw@yourapp.com/hook", "credentials_in_url"),
    ],
)
async def test_urls_that_may_not_be_called_are_a_clear_422(url: str, reason: str) -> None:
    topic = FakeTopic()
    status, answer = await call(actions(topic), "create", {"url": url, "events": "open"})
    assert status == 422
    assert answer["error"] == "url_not_allowed"
    assert answer["reason"] == reason
    assert answer["detail"]
    assert topic.records == []  # nothing registered


async def test_private_urls_pass_when_configuration_allows_them() -> None:
    a = actions(FakeTopic(), private=True)
    status, _ = await call(a, "create", {"url": "http://127.0.0.1:9000/hook", "events": "open"})
    assert status == 201


async def test_updating_to_a_refused_url_is_refused_too() -> None:
    a = actions(FakeTopic())
    await call(a, "create", {"url": "https://yourapp.com/h", "events": "open"})
    status, answer = await call(a, "update", {"url": "https://10.0.0.1/"}, webhook_id="1")
    assert (status, answer["reason"]) == (422, "address_not_allowed")


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{", 400, "invalid_json"),
        (b"[1]", 422, "invalid_request"),
        (b'{"url": "https://yourapp.com/h"}', 422, "invalid_request"),
        (b'{"url": "https://yourapp.com/h", "events": "open,sneeze"}', 422, "invalid_request"),
        (b'{"url": "https://yourapp.com/h", "events": " , "}', 422, "invalid_request"),
        (b'{"url": "https://yourapp.com/h", "events": "open", "extra": 1}', 422, "invalid_request"),
        (
            b'{"url": "https://yourapp.com/h", "events": "open", "secret": "short"}',
            422,
            "invalid_request",
        ),
        (b"x" * 20000, 413, "body_too_large"),
    ],
)
async def test_bad_bodies(body: bytes, status: int, error: str) -> None:
    reply = await actions(FakeTopic()).handle("create", AUTH, body)
    assert (reply.status, reply.body["error"]) == (status, error)
    assert "short" not in orjson.dumps(reply.body).decode()  # values are never echoed


async def test_tokens() -> None:
    a = actions(FakeTopic())
    assert (await a.handle("list", None)).status == 401
    assert (await a.handle("list", "Bearer wrong")).status == 401
    assert (await a.handle("list", "Basic abc")).status == 401
    assert (await actions(FakeTopic(), token=None).handle("list", AUTH)).status == 403


async def test_a_broker_that_does_not_take_the_record_is_a_503() -> None:
    a = actions(FakeTopic(fail=True))
    reply = await a.handle("create", AUTH, b'{"url": "https://yourapp.com/h", "events": "open"}')
    assert reply.status == 503
    assert reply.headers["Retry-After"].isdigit()


async def test_410_deactivation_goes_through_the_topic() -> None:
    topic = FakeTopic()
    a = actions(topic)
    await call(a, "create", {"url": "https://yourapp.com/h", "events": "bounce"})
    await a.deactivate_gone(1)
    endpoint = topic.registry.get(1)
    assert endpoint is not None
    assert (endpoint.record.active, endpoint.record.deactivated_reason) == (False, "gone")
    assert topic.registry.subscribers("email.bounce") == []
    _, changed = await call(a, "update", {"active": True}, webhook_id="1")
    assert changed["active"] is True
    assert topic.registry.subscribers("email.bounce")[0].webhook_id == 1


def test_registry_folds_the_topic_in_offset_order() -> None:
    registry = Registry()
    record = SubscriptionRecord(
        url="https://a",
        events="open",
        active=True,
        created_at=NOW,
        updated_at=NOW,
        secret=SecretStr("s" * 10),
    )
    assert registry.apply(topic_key("u1"), record.to_topic(), 41) is not None
    assert registry.get(42) is not None  # id = offset + 1
    updated = record.model_copy(update={"id": 42, "events": "click"})
    registry.apply(topic_key("u1"), updated.to_topic(), 50)
    assert [e.id for e in registry.all()] == [42]
    assert [s.webhook_id for s in registry.subscribers("email.click")] == [42]
    assert registry.apply(topic_key("u1"), None, 51) == (42, None)
    assert registry.all() == []
    assert registry.apply(b"other", b"{}", 52) is None
    assert registry.apply(topic_key("u2"), b"not json", 53) is None
