"""The records between the normaliser and the stateful agents: batches of canonical events.

A raw record used to become one ``email.events`` and one ``message.events`` record per
canonical event, and each of those cost a produced record, a consumed record and a Faust
event with its ack: most of a worker's CPU went to that machinery, not to our logic. The
normaliser now gathers the canonical events of the raw records it takes during a few
milliseconds, per hop partition, and sends each partition's events as one record
(``CanonicalEventBatch``, header ``mailpulse.value_type: event_batch``).

What stays true: every event lands in the partition its key hashes to (so the table,
its changelog and the query API's routing agree on where a key lives), in the order of
its raw records; and a batch is one record, so a consumer sees all of it or none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aiokafka.partitioner import murmur2
from pydantic import ValidationError

from schemas.events import CanonicalEvent, CanonicalEventBatch


def hop_partition(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``: what aiokafka's default partitioner
    (Java's too) gives a keyed record, and what ``consumer.key_partition`` routes by."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def encode_batch(events: list[bytes]) -> bytes:
    """A batch record's value from canonical events already serialised as JSON."""
    return b"[" + b",".join(events) + b"]"


@dataclass(frozen=True, slots=True)
class BadItem:
    """One element of a batch that is not a canonical event (DLQ ``invalid_canonical_event``)."""

    body: bytes
    error: str
    reason: str = "invalid_canonical_event"


def decode_batch(value: bytes) -> list[CanonicalEvent | BadItem]:
    """The events of a batch record; an element that does not validate is a ``BadItem``
    and the others still count (one bad event must not take its batch to the DLQ)."""
    try:
        return list(CanonicalEventBatch.model_validate_json(value).root)
    except ValidationError:
        pass  # validate element by element below, to find which
    try:
        elements = json.loads(value)
    except ValueError as exc:
        return [BadItem(value, f"not JSON: {exc}")]
    if not isinstance(elements, list):
        return [BadItem(value, "not a JSON array of canonical events")]
    decoded: list[CanonicalEvent | BadItem] = []
    for element in elements:
        body = json.dumps(element, separators=(",", ":")).encode()
        try:
            decoded.append(CanonicalEvent.model_validate_json(body))
        except ValidationError as exc:
            decoded.append(BadItem(body, str(exc)))
    return decoded


@dataclass
class Batches:
    """Serialised events waiting to be sent, per partition of one hop topic, in order."""

    partitions: int
    pending: dict[int, list[bytes]] = field(default_factory=dict)
    size: int = 0  # bytes pending, all partitions

    def add(self, key: bytes, event: bytes) -> None:
        self.pending.setdefault(hop_partition(key, self.partitions), []).append(event)
        self.size += len(event) + 1

    def take(self) -> list[tuple[int, bytes]]:
        """``(partition, batch record value)`` of everything pending; empties the batches."""
        taken = [(partition, encode_batch(events)) for partition, events in self.pending.items()]
        self.pending, self.size = {}, 0
        return taken
