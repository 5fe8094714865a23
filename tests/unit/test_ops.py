"""The pure parts of the operator commands: argument parsing, the group check, what
redrive selects, republish's cross-check, and the re-driven marker on canonical events."""

from __future__ import annotations

import argparse
import base64
from datetime import UTC, datetime, timedelta

import pytest

from processors.normalise import normalise
from processors.ops.cli import build_parser
from processors.ops.common import GroupInfo, iso_datetime
from processors.ops.redrive import Entry, selected, why_not
from processors.ops.republish import cross_check
from schemas.commands import SuppressionChange, SuppressionCommand
from schemas.dlq import DlqRaw, DlqRecord
from schemas.raw import H_REDRIVEN_FROM, RawWebhook
from schemas.state import AddressState, ScopeSuppression
from tests.fixtures.payloads import DEFAULT, load, raw

AT = datetime(2026, 5, 14, 10, 0, tzinfo=UTC)


def test_iso_datetime_reads_offsets_and_defaults_to_utc() -> None:
    assert iso_datetime("2026-05-14T10:00:00Z") == AT
    assert iso_datetime("2026-05-14T12:00:00+02:00") == AT
    assert iso_datetime("2026-05-14T10:00:00") == AT
    with pytest.raises(argparse.ArgumentTypeError, match="not an ISO 8601"):
        iso_datetime("yesterday")


def test_replay_needs_exactly_one_target(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for argv in (["replay"], ["replay", "--to-earliest", "--to-datetime", "2026-05-14"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(argv)
        assert exc.value.code == 2
    args = parser.parse_args(["replay", "--to-datetime", "2026-05-14T10:00:00Z"])
    assert (args.to_datetime, args.topic, args.execute) == (AT, "all", False)


@pytest.mark.parametrize(
    ("state", "members", "active"),
    [
        ("Empty", (), False),
        ("Dead", (), False),
        ("Stable", ("w@/127.0.0.1",), True),
        ("PreparingRebalance", (), True),  # a member is joining
        ("Empty", ("w@/127.0.0.1",), True),
    ],
)
def test_group_is_active_while_it_has_or_gains_members(
    state: str, members: tuple[str, ...], active: bool
) -> None:
    assert GroupInfo("g", state, members).active is active


def _dlq(reason: str, failed_at: datetime, stage: str = "normalise") -> Entry:
    record = raw("nexuspromail", b'{"id": "evt_1"}')
    return Entry(
        "webhooks.dlq:0:7",
        DlqRecord(
            reason=reason,
            error="",
            stage=stage,
            failed_at=failed_at,
            raw=DlqRaw(
                topic="webhooks.raw" if stage == "normalise" else "email.events",
                partition=1,
                offset=3,
                key="k",
                headers={k: v.decode() for k, v in record.kafka_headers()},
                body_b64=base64.b64encode(record.body).decode(),
            ),
        ),
    )


def test_redrive_filters_by_reason_and_failure_time() -> None:
    entry = _dlq("unknown_event_type", AT)

    def args(**kw: object) -> argparse.Namespace:
        return argparse.Namespace(**{"reason": None, "since": None, "until": None, **kw})

    assert selected(entry, args())
    assert selected(entry, args(reason=["invalid_json", "unknown_event_type"]))
    assert not selected(entry, args(reason=["invalid_json"]))
    assert selected(entry, args(since=AT, until=AT + timedelta(seconds=1)))  # since inclusive
    assert not selected(entry, args(until=AT))  # until exclusive
    assert not selected(entry, args(since=AT + timedelta(seconds=1)))


def test_redrive_only_takes_raw_records_the_normaliser_refused() -> None:
    assert why_not(_dlq("unknown_event_type", AT), "webhooks.raw") is None
    # Another generation's (prefix's) raw topic: not ours to re-append.
    assert "not a raw record of it1.webhooks.raw" in str(
        why_not(_dlq("unknown_event_type", AT), "it1.webhooks.raw")
    )
    assert "failed in addresses" in str(
        why_not(_dlq("invalid_canonical_event", AT, stage="addresses"), "webhooks.raw")
    )


def test_events_of_a_redriven_record_say_so() -> None:
    body = load("nexuspromail_bounced_hard.json")
    original = raw("nexuspromail", body)
    headers = [*original.kafka_headers(), (H_REDRIVEN_FROM, b"webhooks.dlq:0:7")]
    redriven = RawWebhook.from_kafka(body, headers, partition=0, offset=99)
    assert redriven.redriven_from == "webhooks.dlq:0:7"
    assert dict(redriven.kafka_headers())[H_REDRIVEN_FROM] == b"webhooks.dlq:0:7"
    [before] = normalise(original, DEFAULT)
    [after] = normalise(redriven, DEFAULT)
    assert (before.processing_status, after.processing_status) == ("normalised", "redriven")
    # Same event, same dedupe key: the address record counts it once.
    assert after.dedupe_key == before.dedupe_key
    assert after.model_copy(update={"processing_status": "normalised", "raw": before.raw}) == before


def _command(address: str, reason: str | None) -> bytes:
    scope = None if reason is None else ScopeSuppression(reason=reason, cause="c", since=AT)
    change = SuppressionChange(
        action="unsuppress" if reason is None else "suppress",
        scope="all",
        reason=reason or "delivered_after_soft_bounces",
        cause="c",
    )
    return (
        SuppressionCommand(
            command_id=SuppressionCommand.make_id(address, change),
            address=address,
            suppression={"all": scope, "marketing": None},
            change=change,
            issued_at=AT,
        )
        .model_dump_json()
        .encode()
    )


def _state(address: str, reason: str | None, since: datetime = AT) -> bytes:
    scope = None if reason is None else ScopeSuppression(reason=reason, cause="x", since=since)
    state = AddressState(address=address, suppression={"all": scope, "marketing": None})
    return state.model_dump_json().encode()


def test_republish_cross_check_reports_what_disagrees() -> None:
    commands = {
        b"same@x.com": _command("same@x.com", "hard_bounce"),
        b"lifted@x.com": _command("lifted@x.com", None),
        b"stale@x.com": _command("stale@x.com", "soft_bounce_threshold"),
        b"orphan@x.com": _command("orphan@x.com", "complaint"),
        b"bad@x.com": b"{not json",
    }
    table = {
        # cause/since may differ: the table is authoritative for them, no command says so.
        b"same@x.com": _state("same@x.com", "hard_bounce", since=AT + timedelta(hours=1)),
        b"lifted@x.com": _state("lifted@x.com", None),
        b"stale@x.com": _state("stale@x.com", None),
        b"silent@x.com": _state("silent@x.com", "complaint"),
    }
    check = cross_check(commands, table)
    assert set(check.sendable) == {b"same@x.com", b"lifted@x.com", b"stale@x.com", b"orphan@x.com"}
    assert check.sendable[b"same@x.com"] == commands[b"same@x.com"]  # byte for byte
    assert [m.split(":")[0] for m in check.mismatches] == ["stale@x.com", "orphan@x.com"]
    assert [m.split(":")[0] for m in check.without_command] == ["silent@x.com"]
    assert check.unreadable == ["suppression command of bad@x.com"]
    assert check.suppressed_in_table == 2


def test_dlq_entry_description_names_position_and_reason() -> None:
    entry = _dlq("unknown_event_type", AT)
    text = entry.describe()
    assert text.startswith("webhooks.dlq:0:7 reason=unknown_event_type stage=normalise")
    assert "raw=webhooks.raw:1:3" in text
