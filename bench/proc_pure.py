"""The pure step alone: what every pipeline does per raw record, with no Kafka at all.

For each record of the benchmark's input, in the order and at the offsets the raw topic
gives them: ``normalise_record``, then each canonical event folded into its address and
its message with the JSON round trip of a stored state: the state parsed from its bytes,
``address_step`` / ``message_step``, the new state serialised (the worker keeps parsed
states in a cache; here every event parses, as the reference the issue gave was
measured). Dedupe index in memory (``MemoryIndex``). What a pipeline spends per event
beyond this is its machinery: consuming, re-keying, storing, producing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.proc_workload import RawRecord
from processors.dedupe import MemoryIndex
from processors.policy import Policy
from processors.settings import ProcessorSettings
from processors.step import Rejected, address_step, message_step, normalise_record
from schemas.commands import ManualAction
from schemas.events import CanonicalEvent
from schemas.state import AddressState, MessageState


@dataclass(frozen=True)
class PureRun:
    tag: str
    events: int  # raw records
    seconds: float  # wall clock
    cpu: float  # this process's CPU time

    @property
    def rate(self) -> float:
        return self.events / self.seconds


@dataclass
class _Table:
    """One table's stored states (JSON, as a worker stores them) and dedupe index."""

    parse: Callable[[bytes], Any]
    step: Callable[..., Any]  # address_step or message_step
    states: dict[str, bytes] = field(default_factory=dict)
    index: MemoryIndex = field(default_factory=MemoryIndex)

    def fold(self, key: str, item: CanonicalEvent | ManualAction, policy: Policy) -> None:
        stored = self.states.get(key)
        state = None if stored is None else self.parse(stored)
        out = self.step(state, item, policy, self.index.lookup(key))
        if out.changed:
            self.states[key] = out.state.model_dump_json().encode()
        self.index.apply(key, out.index)


def run_pure(tag: str, records: list[RawRecord], settings: ProcessorSettings) -> PureRun:
    """Fold ``records`` (raw offsets numbered per partition, as the topic holds them)."""
    addresses = _Table(AddressState.model_validate_json, address_step)
    messages = _Table(MessageState.model_validate_json, message_step)
    offsets: dict[int, int] = {}
    options, policy = settings.normalise, settings.policy
    wall, cpu = time.perf_counter(), time.process_time()
    for r in records:
        offset = offsets.get(r.partition, 0)
        offsets[r.partition] = offset + 1
        result = normalise_record(r.value, r.headers, r.partition, offset, options)
        if isinstance(result, Rejected):
            continue
        for item in [result.manual] if result.manual else result.canonical:
            owner = item.address if isinstance(item, ManualAction) else item.recipient
            addresses.fold(owner, item, policy)
            if isinstance(item, CanonicalEvent) and item.message_id:
                messages.fold(item.message_id, item, policy)
    return PureRun(tag, len(records), time.perf_counter() - wall, time.process_time() - cpu)
