"""The admin API without Faust or Kafka: token check, body validation, the raw record it
appends, and that record normalised and applied like a provider event."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from pydantic import SecretStr, ValidationError

from ingest.settings import SourceSettings
from processors.admin import AdminActions, Reply, check_bearer
from processors.errors import NormaliseError
from processors.normalise import (
    NormaliseOptions,
    is_manual_action,
    normalise,
    normalise_manual_action,
)
from processors.policy import Policy
from processors.step import PipelineResult
from schemas.common import PROVIDER_KINDS
from schemas.events import CanonicalEvent, RawPosition
from schemas.raw import ADMIN_PROVIDER, RawWebhook
from tests.unit.strategies import run

TOKEN = SecretStr("unit-admin-token")
NOW = datetime(2026, 5, 20, 9, 30, tzinfo=UTC)
OPTIONS = NormaliseOptions()


class FakeRawLog:
    """Records appends like the raw topic would, handing out offsets on partition 4."""

    def __init__(self, fail: bool = False) -> None:
        self.records: list[tuple[RawWebhook, bytes]] = []
        self.fail = fail

    async def append(self, record: RawWebhook, key: bytes) -> tuple[int, int]:
        if self.fail:
            raise TimeoutError("broker gone")
        self.records.append((record, key))
        return 4, 100 + len(self.records)

    def read_back(self, n: int = 0) -> RawWebhook:
        """Record ``n`` as the normaliser reads it: value + headers + position."""
        record, _ = self.records[n]
        return RawWebhook.from_kafka(record.body, record.kafka_headers(), 4, 101 + n)


def admin(log: FakeRawLog, token: SecretStr | None = TOKEN) -> AdminActions:
    ids = iter(f"admin:{n}" for n in range(100))
    return AdminActions(token, OPTIONS, log.append, now=lambda: NOW, new_id=lambda: next(ids))


def body(**fields: object) -> bytes:
    return orjson.dumps({"address": "Jane@Example.COM", "scope": "all", **fields})


# -- the token --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "verdict"),
    [
        ("Bearer unit-admin-token", "ok"),
        ("bearer   unit-admin-token  ", "ok"),
        (None, "missing"),
        ("", "missing"),
        ("Basic dW5pdDp0b2tlbg==", "not_bearer"),
        ("unit-admin-token", "not_bearer"),
        ("Bearer unit-admin-toke", "invalid"),
        ("Bearer unit-admin-token-and-more", "invalid"),
        ("Bearer ", "invalid"),
        ("Bearer ünit-admin-token", "invalid"),
    ],
)
def test_bearer_token_check(header: str | None, verdict: str) -> None:
    assert check_bearer(header, TOKEN) == verdict


@pytest.mark.parametrize("token", [None, SecretStr(""), SecretStr("   ")])
def test_no_configured_token_disables_the_api_even_for_an_empty_bearer(
    token: SecretStr | None,
) -> None:
    assert check_bearer("Bearer ", token) == "disabled"
    assert check_bearer("Bearer    ", token) == "disabled"
    assert check_bearer(None, token) == "disabled"


async def test_without_the_right_token_nothing_is_appended_and_the_token_is_not_echoed() -> None:
    log = FakeRawLog()
    for header in (None, "Bearer wrong", "Token unit-admin-token"):
        reply = await admin(log).handle("unsuppress", header, body())
        assert reply.status == 401
        assert reply.headers["WWW-Authenticate"].startswith('Bearer realm="mailpulse-admin"')
        assert "unit-admin-token" not in repr(reply)
    disabled = await admin(log, token=None).handle("suppress", "Bearer anything", body())
    assert (disabled.status, disabled.body["error"]) == (403, "admin_disabled")
    assert log.records == []


# -- the body ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_body", "status"),
    [
        (b"not json", 400),
        (b"", 400),
        (b"[]", 422),
        (orjson.dumps({"scope": "all"}), 422),
        (body(scope="transactional"), 422),
        (body(address="no-at-sign"), 422),
        (body(address="a b@example.com"), 422),
        (body(reason="x" * 201), 422),
        (body(reason="line\nbreak"), 422),
        (body(extra="field"), 422),
        (b"{" + b" " * 5000 + b"}", 413),
    ],
)
async def test_bad_bodies_are_4xx_with_a_reason_and_append_nothing(
    raw_body: bytes, status: int
) -> None:
    log = FakeRawLog()
    reply = await admin(log).handle("suppress", "Bearer unit-admin-token", raw_body)
    assert reply.status == status
    assert reply.body["error"]
    assert log.records == []


async def test_an_append_that_does_not_become_durable_is_503_with_retry_after() -> None:
    reply = await admin(FakeRawLog(fail=True)).handle("suppress", "Bearer unit-admin-token", body())
    assert reply.status == 503
    assert reply.headers["Retry-After"].isdigit()


# -- the raw record and what the processors make of it ----------------------------------


async def test_accepted_action_is_one_admin_record_in_the_raw_log() -> None:
    log = FakeRawLog()
    reply = await admin(log).handle(
        "suppress", "Bearer unit-admin-token", body(reason="asked by phone")
    )
    assert reply == Reply(
        202,
        {
            "status": "accepted",
            "action_id": "admin:0",
            "action": "suppress",
            "address": "jane@example.com",
            "scope": "all",
            "raw": {"partition": 4, "offset": 101},
        },
    )
    [(record, key)] = log.records
    assert key == b"admin:0"
    assert (record.provider, record.source, record.kind) == ("admin", "admin", "manual_action")
    assert record.delivery_id == "admin:0"
    assert orjson.loads(record.body) == {
        "schema_version": 1,
        "action_id": "admin:0",
        "action": "suppress",
        "address": "Jane@Example.COM",  # as asked; the normaliser normalises it
        "scope": "all",
        "reason": "asked by phone",
        "actor": "admin",
        "requested_at": "2026-05-20T09:30:00Z",
    }


async def test_normalised_manual_action_carries_its_raw_position_and_normalised_address() -> None:
    log = FakeRawLog()
    await admin(log).handle("unsuppress", "Bearer unit-admin-token", body(scope="marketing"))
    raw = log.read_back()
    assert is_manual_action(raw)
    action = normalise_manual_action(raw, OPTIONS)
    assert action.address == "jane@example.com"
    assert (action.action, action.scope, action.action_id) == ("unsuppress", "marketing", "admin:0")
    assert action.raw == RawPosition(partition=4, offset=101, index=0)
    assert action.requested_at == NOW
    # Options apply as for provider recipients (a rebuild with other options agrees).
    stripping = NormaliseOptions(strip_plus_tags=True)
    await admin(log).handle("suppress", "Bearer unit-admin-token", body(address="j+x@Example.com"))
    assert normalise_manual_action(log.read_back(1), stripping).address == "j@example.com"


def test_a_broken_admin_record_is_a_normalise_error_not_a_crash() -> None:
    def admin_raw(payload: bytes, kind: str = "manual_action") -> RawWebhook:
        return RawWebhook(
            body=payload,
            source="admin",
            provider="admin",
            received_at=NOW,
            verification="admin_token",
            kind=kind,
            partition=0,
            offset=7,
        )

    cases = {
        b"{": "invalid_json",
        b'{"action": "delete"}': "invalid_payload",
    }
    for payload, reason in cases.items():
        with pytest.raises(NormaliseError) as info:
            normalise_manual_action(admin_raw(payload), OPTIONS)
        assert info.value.reason == reason
    with pytest.raises(NormaliseError):
        normalise_manual_action(admin_raw(b"{}", kind="notification"), OPTIONS)
    # The provider dispatch alone never maps an admin record as a provider event.
    with pytest.raises(NormaliseError) as info:
        normalise(admin_raw(b"{}"), OPTIONS)
    assert info.value.reason == "unknown_provider"


async def test_unsuppress_through_the_raw_log_lifts_an_earlier_hard_bounce() -> None:
    policy = Policy()
    bounce = CanonicalEvent(
        dedupe_key="nexuspromail:evt_1",
        provider="nexuspromail",
        source="nexuspromail",
        type="bounced.hard",
        recipient="jane@example.com",
        occurred_at=datetime(2026, 5, 19, tzinfo=UTC),
        received_at=datetime(2026, 5, 19, tzinfo=UTC),
        raw=RawPosition(partition=4, offset=3),
        verification="hmac-sha256",
    )
    tables = PipelineResult()
    state, commands = run([bounce], policy, tables)
    assert state.suppression["all"] is not None
    log = FakeRawLog()
    await admin(log).handle("unsuppress", "Bearer unit-admin-token", body(reason="fixed"))
    action = normalise_manual_action(log.read_back(), OPTIONS)
    state, commands = run([action], policy, tables)
    assert state.suppression["all"] is None
    [command] = commands
    assert (command.change.action, command.change.reason) == ("unsuppress", "manual:fixed")
    assert command.change.cause == "admin:0"


def test_ingest_can_never_write_an_admin_record() -> None:
    # A raw record's provider is the kind of one of ingest's configured sources.
    assert ADMIN_PROVIDER not in PROVIDER_KINDS
    with pytest.raises(ValidationError):
        SourceSettings.model_validate({"kind": ADMIN_PROVIDER, "secrets": ["s"]})
