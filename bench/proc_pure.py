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
from dataclasses import dataclass

from bench.proc_workload import RawRecord
from processors.dedupe import MemoryIndex
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


def _fold(
    item: CanonicalEvent | ManualAction,
    addresses: dict[str, bytes],
    messages: dict[str, bytes],
    indexes: tuple[MemoryIndex, MemoryIndex],
    settings: ProcessorSettings,
) -> None:
    policy = settings.policy
    owner = item.address if isinstance(item, ManualAction) else item.recipient
    stored = addresses.get(owner)
    state = None if stored is None else AddressState.model_validate_json(stored)
    out = address_step(state, item, policy, indexes[0].lookup(owner))
    if out.changed:
        addresses[owner] = out.state.model_dump_json().encode()
    indexes[0].apply(owner, out.index)
    if isinstance(item, CanonicalEvent) and item.message_id:
        mid = item.message_id
        stored = messages.get(mid)
        mstate = None if stored is None else MessageState.model_validate_json(stored)
        mout = message_step(mstate, item, policy, indexes[1].lookup(mid))
        if mout.changed:
            messages[mid] = mout.state.model_dump_json().encode()
        indexes[1].apply(mid, mout.index)


def run_pure(tag: str, records: list[RawRecord], settings: ProcessorSettings) -> PureRun:
    """Fold ``records`` (raw offsets numbered per partition, as the topic holds them)."""
    addresses: dict[str, bytes] = {}
    messages: dict[str, bytes] = {}
    indexes = (MemoryIndex(), MemoryIndex())
    offsets: dict[int, int] = {}
    options = settings.normalise
    wall, cpu = time.perf_counter(), time.process_time()
    for r in records:
        offset = offsets.get(r.partition, 0)
        offsets[r.partition] = offset + 1
        result = normalise_record(r.value, r.headers, r.partition, offset, options)
        if isinstance(result, Rejected):
            continue
        for item in [result.manual] if result.manual else result.canonical:
            _fold(item, addresses, messages, indexes, settings)
    return PureRun(tag, len(records), time.perf_counter() - wall, time.process_time() - cpu)
