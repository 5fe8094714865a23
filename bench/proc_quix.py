"""The Quix Streams peer: the pipeline as a Python user would build it on Quix Streams.

``python -m bench.proc_quix --raw TOPIC --group GROUP --out PREFIX`` runs one Quix
``Application`` (consumer group GROUP, confluent-kafka underneath) on the raw topic:

* a ``StreamingDataFrame`` on the raw topic runs our ``normalise_record`` (canonical
  events are serialised once, ``model_dump_json``, as the Faust normaliser does);
* two ``group_by`` re-keyings, each through the internal repartition topic Quix names
  ``repartition__<group>--<raw>--address`` / ``--message``: by recipient address (every
  event and manual action) and by provider message id (events that have one);
* a stateful ``apply`` per re-keyed stream folds each item with our pure ``address_step``
  / ``message_step`` in Quix's RocksDB ``State`` (per-key prefix, one transaction per
  partition per checkpoint, one Quix changelog record per changed key per checkpoint):
  the owner's state JSON under ``STATE`` and its dedupe index beside it (``StateIndex``);
* the output topics of the plain loop (``bench/proc_plain.py``): every state change to
  ``<out>addresses.changelog`` / ``<out>messages.changelog`` (key = owner, value = the
  state's ``model_dump_json``) and every command to ``<out>suppression.commands``
  (key = address), an event's commands before its state record.

Like the plain loop it keeps no suppression-list index and sends nothing to a DLQ (the
benchmark input has no bad record; rejected records are counted and logged at exit).
Offsets are committed by Quix's checkpoint (every 5 s, its default): outputs flushed,
changelogs produced, offsets committed, RocksDB written. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import struct
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from quixstreams import Application, State, message_context
from quixstreams.models import (
    Deserializer,
    SerializationContext,
    Serializer,
    Topic,
    TopicConfig,
)

from bench.proc_runs import quix_repartition_topics
from processors.dedupe import IndexChange
from processors.settings import ProcessorSettings, load_settings
from processors.step import Rejected, address_step, message_step, normalise_record
from schemas.commands import MANUAL_ACTION_VALUE_TYPE, VALUE_TYPE_HEADER, ManualAction
from schemas.events import CanonicalEvent
from schemas.state import AddressState, MessageState

log = logging.getLogger("bench.proc_quix")

# Keys inside one owner's Quix state (Quix prefixes each with the message key, the owner).
STATE = b"s"  # the owner's AddressState / MessageState JSON, the bytes we publish
_SEEN = b"k"  # + bucket + dedupe key: the key is remembered; value: the key filed before it
_NEWEST = b"h"  # + bucket: the dedupe key filed last in the bucket
_PREVIOUS = b">"  # starts a value of _SEEN that names a key (empty: the bucket's first)
_U64 = struct.Struct(">Q")

_MANUAL_HEADERS = [(VALUE_TYPE_HEADER, MANUAL_ACTION_VALUE_TYPE.encode())]
_NO_HEADERS: list[tuple[str, bytes]] = []


class Hop(NamedTuple):
    """One canonical event or manual action on its way to the re-keying topics."""

    address: str
    message_id: str | None  # None: not for the messages table (manual action, no id)
    manual: bool
    value: bytes  # model_dump_json, serialised once for both repartition topics


class Out(NamedTuple):
    """One record for an output topic (``to_topic`` picks the topic from it)."""

    topic: Topic
    payload: bytes


class HopSerializer(Serializer):
    def __call__(self, value: Hop, ctx: SerializationContext) -> bytes:
        return value.value


class HopDeserializer(Deserializer):
    """A canonical event, or a manual action when the header says so (as on email.events)."""

    def __init__(self) -> None:  # Deserializer's own takes and keeps nothing (and is untyped)
        pass

    def __call__(self, value: bytes, ctx: SerializationContext) -> CanonicalEvent | ManualAction:
        if _is_manual(ctx.headers):
            return ManualAction.model_validate_json(value)
        return CanonicalEvent.model_validate_json(value)


class OutSerializer(Serializer):
    def __call__(self, value: Out, ctx: SerializationContext) -> bytes:
        return value.payload


def _is_manual(headers: object) -> bool:
    return isinstance(headers, Sequence) and _MANUAL_HEADERS[0] in headers


@dataclass(frozen=True, slots=True)
class StateIndex:
    """One owner's dedupe index (processors/dedupe.py) in its Quix state, with point ops only.

    Quix's ``State`` has get/set/delete/exists and no range scan, so the keys of a bucket
    form a chain: each entry's value names the key filed before it, and the bucket's
    ``_NEWEST`` entry the last one. A lookup is one point read; filing a key adds one
    entry (and rewrites the bucket's head: Quix sends one changelog record per changed key
    per checkpoint); expiring a bucket walks its chain once and deletes every entry once.
    So each event costs O(1) whatever the owner's traffic, and the index holds exactly
    ``MemoryIndex``'s keys.
    """

    state: State[bytes, Any]

    def seen(self, bucket: int, key: str) -> bool:
        return self.state.exists(_SEEN + _U64.pack(bucket) + key.encode())

    def apply(self, change: IndexChange) -> None:
        for bucket in change.expire:
            self._expire(_U64.pack(bucket))
        if change.remember is not None:
            bucket, key = change.remember
            b = _U64.pack(bucket)
            entry = _SEEN + b + key.encode()
            # A key filed again (an event older than the horizon, in the bucket that
            # straddles it) keeps its place: re-linking it would loop the chain.
            if self.state.exists(entry):
                return
            newest = self.state.get_bytes(_NEWEST + b)
            self.state.set_bytes(entry, b"" if newest is None else _PREVIOUS + newest)
            self.state.set_bytes(_NEWEST + b, key.encode())

    def _expire(self, b: bytes) -> None:
        key = self.state.get_bytes(_NEWEST + b)
        self.state.delete(_NEWEST + b)
        while key is not None:
            entry = _SEEN + b + key
            previous = self.state.get_bytes(entry)
            self.state.delete(entry)
            key = previous[1:] if previous and previous[:1] == _PREVIOUS else None


@dataclass
class Steps:
    """The three callbacks of the dataframes: our pure step, state in Quix's ``State``."""

    addresses: Topic
    messages: Topic
    commands: Topic
    settings: ProcessorSettings = field(default_factory=load_settings)
    rejected: int = 0

    def normalise(self, value: bytes, key: Any, timestamp: int, headers: Any) -> list[Hop]:
        ctx = message_context()
        result = normalise_record(
            value, headers or [], ctx.partition, ctx.offset, self.settings.normalise
        )
        if isinstance(result, Rejected):
            self.rejected += 1  # the Faust pipeline's DLQ; the bench input has none
            return []
        if result.manual is not None:
            manual = result.manual
            return [Hop(manual.address, None, True, manual.model_dump_json().encode())]
        return [
            Hop(ce.recipient, ce.message_id or None, False, ce.model_dump_json().encode())
            for ce in result.canonical
        ]

    def address(
        self,
        item: CanonicalEvent | ManualAction,
        key: str,
        timestamp: int,
        headers: Any,
        state: State[bytes, Any],
    ) -> list[Out]:
        stored = state.get_bytes(STATE)
        current = None if stored is None else AddressState.model_validate_json(stored)
        index = StateIndex(state)
        outcome = address_step(current, item, self.settings.policy, index.seen)
        index.apply(outcome.index)
        if not outcome.changed:
            return []
        value = outcome.state.model_dump_json().encode()
        state.set_bytes(STATE, value)
        commands = [Out(self.commands, c.model_dump_json().encode()) for c in outcome.commands]
        return [*commands, Out(self.addresses, value)]

    def message(
        self,
        event: CanonicalEvent,
        key: str,
        timestamp: int,
        headers: Any,
        state: State[bytes, Any],
    ) -> list[Out]:
        stored = state.get_bytes(STATE)
        current = None if stored is None else MessageState.model_validate_json(stored)
        index = StateIndex(state)
        outcome = message_step(current, event, self.settings.policy, index.seen)
        index.apply(outcome.index)
        if not outcome.changed:
            return []
        value = outcome.state.model_dump_json().encode()
        state.set_bytes(STATE, value)
        return [Out(self.messages, value)]


def _output(app: Application, name: str, like: Topic) -> Topic:
    """An output topic: str key (UTF-8, as ours), bytes value; created like the raw topic."""
    config = TopicConfig(
        num_partitions=like.broker_config.num_partitions,
        replication_factor=like.broker_config.replication_factor,
    )
    return app.topic(
        name,
        key_serializer="str",
        value_serializer=OutSerializer(),
        value_deserializer="bytes",
        key_deserializer="str",
        config=config,
    )


def build(app: Application, raw_name: str, out: str) -> Steps:
    """Declare the topology on ``app``; returns the callbacks (they hold the counters)."""
    raw = app.topic(raw_name, key_deserializer="bytes", value_deserializer="bytes")
    steps = Steps(
        addresses=_output(app, f"{out}addresses.changelog", raw),
        messages=_output(app, f"{out}messages.changelog", raw),
        commands=_output(app, f"{out}suppression.commands", raw),
    )
    hops = app.dataframe(raw).apply(steps.normalise, expand=True, metadata=True)
    # The hop records carry only the value-type header, not the raw record's headers.
    hops = hops.set_headers(lambda v, _k, _t, _h: _MANUAL_HEADERS if v.manual else _NO_HEADERS)
    serde: dict[str, Any] = {
        "key_serializer": "str",
        "key_deserializer": "str",
        "value_serializer": HopSerializer(),
        "value_deserializer": HopDeserializer(),
    }
    by_address = hops.group_by(lambda h: h.address, name="address", **serde)
    with_id = hops.filter(lambda h: h.message_id is not None)
    by_message = with_id.group_by(lambda h: h.message_id, name="message", **serde)

    expected = quix_repartition_topics(app.config.consumer_group, raw_name)
    actual = (by_address.topics[0].name, by_message.topics[0].name)
    if actual != expected:  # bench/proc_runs.py waits on these names
        raise SystemExit(f"Quix named its repartition topics {actual}, expected {expected}")

    def pick(value: Out, _key: Any, _timestamp: int, _headers: Any) -> Topic:
        return value.topic

    by_address.apply(steps.address, stateful=True, metadata=True, expand=True).to_topic(pick)
    by_message.apply(steps.message, stateful=True, metadata=True, expand=True).to_topic(pick)
    return steps


def run(bootstrap: str, raw: str, group: str, out: str, state_dir: Path, loglevel: int) -> Steps:
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel=loglevel,
        processing_guarantee="at-least-once",
    )
    steps = build(app, raw, out)
    app.run()  # until SIGTERM; the last checkpoint is committed on the way out
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proc_quix", description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--raw", required=True, help="raw topic to consume")
    parser.add_argument("--group", required=True, help="consumer group")
    parser.add_argument("--out", required=True, help="prefix of the output topics")
    parser.add_argument("--state-dir", type=Path, help="Quix state dir (default: a temp dir)")
    parser.add_argument("--loglevel", default="INFO", help="quixstreams logger level")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mailpulse-quix-") as tmp:
        state_dir = args.state_dir or Path(tmp)
        level = logging.getLevelNamesMapping()[args.loglevel.upper()]
        steps = run(args.bootstrap, args.raw, args.group, args.out, state_dir, level)
    log.warning("stopped; %d raw records rejected", steps.rejected)
    return 0


if __name__ == "__main__":
    # Run the importable module's copy: Quix pickles values at a branch (the hops), and
    # pickle finds ``Hop`` by its module's name, which ``__main__`` is not under a profiler.
    from bench import proc_quix

    sys.exit(proc_quix.main())
