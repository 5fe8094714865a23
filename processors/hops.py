"""The records between the normaliser and the stateful agents: batches of canonical events.

A raw record used to become one ``email.events`` and one ``message.events`` record per
canonical event, and each of those cost a produced record, a consumed record and a Faust
event with its ack: most of a worker's CPU went to that machinery, not to our logic. The
normaliser now gathers the canonical events of the raw records it takes during a few
milliseconds, per hop partition, and sends each partition's events as one record
(``CanonicalEventBatch``, header ``mailpulse.value_type: event_batch``).

What stays true: every event lands in the partition its key hashes to over the topic's
partitions (the partition a keyed record gets: the table, its changelog and the query
API's routing agree on where a key lives), in the order of its raw records; and a batch
is one record, so a consumer sees all of it or none.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from schemas.events import CanonicalEvent, CanonicalEventBatch


def encode_batch(events: list[bytes]) -> bytes:
    """A batch record's value from canonical events already serialised as JSON."""
    return b"[" + b",".join(events) + b"]"


@dataclass(frozen=True, slots=True)
class BadItem:
    """One element of a batch that is not a canonical event (DLQ ``invalid_canonical_event``)."""

    body: bytes
    error: str
    reason: str = "invalid_canonical_event"


def decode_batch(value: bytes) -> Sequence[CanonicalEvent | BadItem]:
    """The events of a batch record; an element that does not validate is a ``BadItem``
    and the others still count (one bad event must not take its batch to the DLQ)."""
    try:
        return CanonicalEventBatch.model_validate_json(value).root
    except ValidationError:
        pass  # validate element by element below, to find which
    try:
        elements = json.loads(value)
    except ValueError as exc:
        return [BadItem(value, f"not JSON: {exc}")]
    if not isinstance(elements, list):
        return [BadItem(value, "not a JSON array of canonical events")]
    decoded: list[CanonicalEvent | BadItem] = []
    for index, element in enumerate(elements):
        body = json.dumps(element, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            decoded.append(CanonicalEvent.model_validate_json(body))
        except ValidationError as exc:
            decoded.append(BadItem(body, f"element {index} of the batch: {exc}"))
    return decoded


@dataclass
class Batches:
    """Serialised events waiting to be sent to one hop topic, per partition, in order.

    A partition's batch is closed before an event would take it past ``max_bytes``, so
    no record exceeds it (the producer refuses a request over 1 MB, and a refused record
    would come back after every restart); one event alone may still be larger.
    """

    partition_of: Callable[[bytes], int]  # the key's partition of the topic
    max_bytes: int
    closed: list[tuple[int, list[bytes]]] = field(default_factory=list)
    open: dict[int, list[bytes]] = field(default_factory=dict)
    open_bytes: dict[int, int] = field(default_factory=dict)
    size: int = 0  # bytes pending, all partitions

    def add(self, key: bytes, event: bytes) -> None:
        partition = self.partition_of(key)
        grown = self.open_bytes.get(partition, 1) + len(event) + 1  # "[", "," and "]"
        if grown > self.max_bytes and partition in self.open:
            self.closed.append((partition, self.open.pop(partition)))
            grown = len(event) + 2
        self.open.setdefault(partition, []).append(event)
        self.open_bytes[partition] = grown
        self.size += len(event) + 1

    def take(self) -> list[tuple[int, bytes]]:
        """``(partition, batch record value)`` of everything pending, each partition in
        order; empties the batches."""
        taken = [*self.closed, *self.open.items()]
        self.closed, self.open, self.open_bytes, self.size = [], {}, {}, 0
        return [(partition, encode_batch(events)) for partition, events in taken]
