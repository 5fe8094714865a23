"""Which worker answers for a key or a partition, and whether this one can answer now.

The query API's view of Faust's assignment: readiness, the owner of a key, the owners of
every partition. The only part of the API that reads Faust's state.
"""

from __future__ import annotations

from typing import Any, Literal

import faust
from faust.exceptions import NotReady
from yarl import URL

from processors.errors import ProcessorError

UnavailableReason = Literal["starting", "rebalancing", "stopping", "no_route", "peer"]


class WorkerUnavailable(ProcessorError):
    """This worker cannot answer for the data asked now; the client should retry."""

    retriable = True

    def __init__(self, reason: UnavailableReason, worker: str | None = None) -> None:
        super().__init__(reason if worker is None else f"{reason}: {worker}")
        self.reason: UnavailableReason = reason
        self.worker = worker


def check_ready(app: faust.App) -> None:
    """Raise ``WorkerUnavailable`` unless this worker serves its partitions' state now.

    Faust sets ``rebalancing`` as soon as partitions are revoked and clears it only once
    the new assignment's tables are recovered and the streams resumed.
    ``tables.actives_ready`` is false from the app's construction and from every
    rebalance start until that recovery ends: it also covers the start, before the first
    rebalance, when ``rebalancing`` is still false and nothing is assigned.
    """
    if app.should_stop:
        raise WorkerUnavailable("stopping")
    if app.rebalancing or not app.tables.actives_ready:
        raise WorkerUnavailable("rebalancing" if app.rebalancing_count else "starting")


def _changelog(table: Any) -> str:
    name: str = table.changelog_topic.get_topic_name()
    return name


def is_me(app: faust.App, host: str) -> bool:
    """``host`` (a URL from the router's metadata) is this worker."""
    url, me = URL(host), URL(str(app.conf.canonical_url))
    return (url.host, url.port) == (me.host, me.port)


def owner_of(app: faust.App, table: Any, key: bytes) -> str:
    """URL of the worker whose active partitions hold ``key`` (possibly this one).

    The partition is hashed over the consumer's metadata, not the producer's as Faust's
    router does: the consumer subscribes to the changelog, while the producer, once it
    sends, tracks only the topics it sends to. On a worker that has not yet written a
    changelog record, Faust's ``key_store`` fails (``TypeError`` in ``key_partition``).
    Both use the same partitioner.
    """
    topic = _changelog(table)
    try:
        partition = app.consumer.key_partition(topic, key)
    except NotReady as exc:
        raise WorkerUnavailable("no_route") from exc
    if partition is None:  # the consumer has no metadata for the changelog yet
        raise WorkerUnavailable("no_route")
    for host, topics in app.router.table_metadata(table.name).items():
        if partition in topics.get(topic, ()):
            return str(host)
    raise WorkerUnavailable("no_route")


def owners(app: faust.App, table: Any, partitions: int) -> dict[str, list[int]]:
    """Each worker owning active partitions of ``table``, with its partitions.

    Every partition must have exactly one owner, or the listing would miss or repeat some.
    """
    topic = _changelog(table)
    found = {
        str(host): sorted(topics.get(topic, ()))
        for host, topics in app.router.table_metadata(table.name).items()
    }
    found = {host: parts for host, parts in found.items() if parts}
    if sorted(p for parts in found.values() for p in parts) != list(range(partitions)):
        raise WorkerUnavailable("no_route")
    return found
