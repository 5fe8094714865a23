"""``RefusedCommits``: a commit the broker refused leaves Faust's record of committed
offsets as it was, also when a rebalance reset that record during the commit.

Faust's own ``Consumer._commit_offsets``, ``_should_commit`` and ``ack`` run here, on a
stand-in that has what they use; only the driver's ``_commit`` (the broker's answer) and
the rebalance's reset (``perform_seek``: the broker's committed offset) are played.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from mode.utils.logging import CompositeLogger

from processors.runtime.commits import RefusedCommits

TOPIC = TP("email.events", 0)


async def _flushed() -> None:
    return None


@dataclass
class Consumer:
    """The parts of Faust's Consumer its commit and ack use, with its own methods."""

    accept: bool  # what the broker answers the commit
    # The broker's committed offset, set by a rebalance during the commit (None: none).
    rebalanced_to: int | None = None
    _committed_offset: defaultdict[TP, int | None] = field(
        default_factory=lambda: defaultdict(lambda: None)
    )
    _acked: defaultdict[TP, list[int]] = field(default_factory=lambda: defaultdict(list))
    _acked_index: defaultdict[TP, set[int]] = field(default_factory=lambda: defaultdict(set))
    _unacked_messages: set[Any] = field(default_factory=set)
    _n_acked: int = 0
    _waiting_for_ack: Any = None
    in_transaction: bool = False
    log: CompositeLogger = field(
        default_factory=lambda: CompositeLogger(logging.getLogger("test_commits"))
    )
    app: Any = field(
        default_factory=lambda: SimpleNamespace(
            producer=SimpleNamespace(flush=_flushed),
            tables=SimpleNamespace(on_commit=lambda offsets: None),
            monitor=SimpleNamespace(on_tp_commit=lambda offsets: None),
            topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
        )
    )

    # Faust's own, typed loosely: they are bound to this stand-in, not to its Consumer.
    _commit_offsets: ClassVar[Any] = FaustConsumer._commit_offsets
    _should_commit: ClassVar[Any] = FaustConsumer._should_commit
    ack: ClassVar[Any] = FaustConsumer.ack

    def assignment(self) -> set[TP]:
        return {TOPIC}

    async def _commit(self, offsets: dict[TP, int]) -> bool:
        if self.rebalanced_to is not None:  # the rebalance ran while the commit waited
            self._committed_offset.pop(TOPIC, None)
            self._committed_offset[TOPIC] = self.rebalanced_to
        return self.accept


@dataclass(eq=False)
class Message:
    offset: int
    acked: bool = False
    tp: TP = TOPIC
    topic: str = TOPIC.topic


async def test_refused_across_a_rebalance_keeps_the_brokers_offset_and_counts_acks() -> None:
    consumer = Consumer(accept=False, rebalanced_to=10)
    consumer._committed_offset[TOPIC] = 10
    refused = RefusedCommits.of(consumer)

    assert await consumer._commit_offsets({TOPIC: 20}) is False

    assert consumer._committed_offset[TOPIC] == 10
    assert consumer._should_commit(TOPIC, 20)
    # The records from 10 on come again after the rebalance's seek; their acks count.
    assert consumer.ack(Message(10)) is True
    assert consumer._acked[TOPIC] == [10]
    assert (refused.refused, refused.restored) == (1, 1)


async def test_faust_alone_believes_the_refused_offset_committed() -> None:
    # What the wrapper is for: without it, the same commit leaves 20 recorded, the record
    # at 10 that comes again is never acked, and 20 is never committed.
    consumer = Consumer(accept=False, rebalanced_to=10)

    assert await consumer._commit_offsets({TOPIC: 20}) is False

    assert consumer._committed_offset[TOPIC] == 20
    assert not consumer._should_commit(TOPIC, 20)
    assert consumer.ack(Message(10)) is False


@pytest.mark.parametrize("before", [None, 5])
async def test_refused_without_a_rebalance_leaves_the_record_as_it_was(
    before: int | None,
) -> None:
    consumer = Consumer(accept=False)
    if before is not None:
        consumer._committed_offset[TOPIC] = before
    RefusedCommits.of(consumer)

    await consumer._commit_offsets({TOPIC: 20})

    assert (TOPIC in consumer._committed_offset) == (before is not None)
    assert consumer._committed_offset[TOPIC] == before


async def test_an_accepted_commit_is_recorded_as_faust_does() -> None:
    consumer = Consumer(accept=True)
    consumer._committed_offset[TOPIC] = 5
    refused = RefusedCommits.of(consumer)

    assert await consumer._commit_offsets({TOPIC: 20}) is True

    assert consumer._committed_offset[TOPIC] == 20
    assert (refused.refused, refused.restored) == (0, 0)


def test_installed_once_per_consumer() -> None:
    consumer = Consumer(accept=True)
    first = RefusedCommits.of(consumer)
    commit = consumer._commit
    assert RefusedCommits.of(consumer) is first
    assert consumer._commit is commit
