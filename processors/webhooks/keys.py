"""Key layout of the ``webhook_deliveries`` table (one RocksDB store per partition).

A delivery lives in the partition of its event's address (the partition of the
``email.events`` or ``suppression.commands`` record it came from), under three keys:

* ``r/<webhook id>/<delivery id>``: the ``DeliveryRecord`` (JSON);
* ``t/<webhook id>/<created ms>/<delivery id>``: empty, the endpoint's log in time order
  (listing pages, replay from a point in time, pruning by age);
* ``p/<webhook id>/<delivery id>``: present while the delivery is pending, so a worker
  that takes the partition over finds what is still to do without reading the log.

Ids are zero-padded so bytewise order is numeric order.
"""

from __future__ import annotations

RECORD = b"r/"
TIME = b"t/"
PENDING = b"p/"
PRESENT = b"1"  # value of a pending entry (an empty value would read as absent)


def _endpoint(webhook_id: int) -> bytes:
    return b"%010d/" % webhook_id


def record_key(webhook_id: int, delivery_id: str) -> bytes:
    return RECORD + _endpoint(webhook_id) + delivery_id.encode()


def time_key(webhook_id: int, created_ms: int, delivery_id: str) -> bytes:
    return TIME + _endpoint(webhook_id) + b"%013d/" % created_ms + delivery_id.encode()


def pending_key(webhook_id: int, delivery_id: str) -> bytes:
    return PENDING + _endpoint(webhook_id) + delivery_id.encode()


def endpoint_prefix(kind: bytes, webhook_id: int) -> bytes:
    """Every key of ``kind`` (RECORD, TIME, PENDING) of one endpoint starts with this."""
    return kind + _endpoint(webhook_id)


def time_from(webhook_id: int, created_ms: int) -> bytes:
    """The first time-index key of ``webhook_id`` at or after ``created_ms``."""
    return TIME + _endpoint(webhook_id) + b"%013d/" % max(created_ms, 0)


def parse_time_key(key: bytes) -> tuple[int, int, str]:
    """(webhook id, created ms, delivery id) of a time-index key."""
    webhook, created, delivery = key[len(TIME) :].split(b"/", 2)
    return int(webhook), int(created), delivery.decode()


def parse_pending_key(key: bytes) -> tuple[int, str]:
    """(webhook id, delivery id) of a pending entry."""
    webhook, delivery = key[len(PENDING) :].split(b"/", 1)
    return int(webhook), delivery.decode()
