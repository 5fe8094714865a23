"""The pure pipeline step: raw record -> canonical events -> transitions -> commands.

The Faust agents run it in three parts across their Kafka hops (``normalise_record`` in
the normaliser, ``address_step`` and ``message_step`` in the stateful agents); the
plain-loop benchmark and the tests run all of it on a list of records with
``run_pipeline``. No I/O: the dedupe index is read through a ``SeenLookup`` and every
outcome says what to write (``writes``), so a store only has to carry it out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from processors import keys
from processors.dedupe import (
    NO_CHANGE,
    IndexChange,
    MemoryIndex,
    SeenLookup,
    index_change,
    is_replay,
    repair,
)
from processors.errors import NormaliseError
from processors.normalise import (
    NormaliseOptions,
    is_manual_action,
    normalise,
    normalise_manual_action,
)
from processors.policy import Policy
from processors.transitions import apply_address_event, apply_manual_action, apply_message_event
from schemas.commands import ManualAction, SuppressionCommand
from schemas.common import SuppressionScope
from schemas.events import CanonicalEvent
from schemas.raw import RawWebhook
from schemas.state import AddressState, Dedupe, MessageState, ScopeSuppression

Write = tuple[bytes, bytes | None]  # (key, value); None deletes the key
KeysWithPrefix = Callable[[bytes], Iterable[bytes]]


# -- normalise ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Normalised:
    """What one raw record becomes: canonical events, or one manual action."""

    provider: str
    canonical: list[CanonicalEvent] = field(default_factory=list)
    manual: ManualAction | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A raw record that goes to the DLQ, and why."""

    reason: str
    detail: str


def normalise_record(
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes],
    partition: int,
    offset: int,
    options: NormaliseOptions,
) -> Normalised | Rejected:
    """Parse and map one ``webhooks.raw`` record; never raises on bad input."""
    try:
        if value is None:
            raise ValueError("a raw record without a value")
        raw = RawWebhook.from_kafka(value, headers, partition, offset)
        if is_manual_action(raw):
            return Normalised(raw.provider, manual=normalise_manual_action(raw, options))
        return Normalised(raw.provider, canonical=normalise(raw, options))
    except NormaliseError as exc:
        return Rejected(exc.reason, exc.detail)
    except (KeyError, ValueError) as exc:  # headers missing or unreadable
        return Rejected("invalid_raw_record", repr(exc))


# -- stateful steps -------------------------------------------------------------------------


# The order of an outcome's writes. They are several changelog records, and a crash can
# leave any prefix of them; the input, not acked, then comes again. So its dedupe entry goes
# after its state record: an entry without the state would make the input read as a retry
# of itself and be lost, while a state without the entry is a replay that re-files it
# (``dedupe.repair``). Entries derived from the state (suppression list, expired buckets)
# go before it: a replay writes nothing, so they must not depend on it.


def _expired(owner: str, index: IndexChange, keys_in: KeysWithPrefix) -> list[Write]:
    writes: list[Write] = []
    for bucket in index.expire:
        writes += [(k, None) for k in keys_in(keys.dedupe_bucket(owner, bucket))]
    return writes


def _remembered(owner: str, index: IndexChange) -> list[Write]:
    if index.remember is None:
        return []
    bucket, key = index.remember
    return [(keys.dedupe_entry(owner, bucket, key), b"1")]


@dataclass(frozen=True, slots=True)
class AddressOutcome:
    """One input folded into an address: new state, commands, and what to store."""

    state: AddressState
    changed: bool
    commands: list[SuppressionCommand]
    index: IndexChange
    # Scopes whose suppression changed (cause and since included): the list's index.
    suppression: dict[SuppressionScope, ScopeSuppression | None]

    def writes(self, state_value: bytes, keys_in: KeysWithPrefix) -> list[Write]:
        """Expired and suppression entries, the state record, its dedupe entry (see above)."""
        owner = self.state.address
        out = _expired(owner, self.index, keys_in)
        for scope, value in sorted(self.suppression.items()):
            entry = keys.suppression_entry(scope, owner)
            out.append((entry, None if value is None else value.model_dump_json().encode()))
        if self.changed:
            out.append((owner.encode(), state_value))
        return out + _remembered(owner, self.index)


def address_step(
    state: AddressState | None,
    item: CanonicalEvent | ManualAction,
    policy: Policy,
    seen: SeenLookup,
) -> AddressOutcome:
    """Fold a canonical event or an operator's action into an address's state."""
    if isinstance(item, ManualAction):
        new, commands = apply_manual_action(state, item, policy, seen)
    else:
        new, commands = apply_address_event(state, item, policy, seen)
    changed = state is None or new != state
    if not changed:
        return AddressOutcome(new, False, [], _skipped(new.dedupe, item, policy, seen), {})
    # A new address starts unsuppressed: it has no list entry to delete.
    before = (state or AddressState(address=new.address)).suppression
    moved = {s: v for s, v in new.suppression.items() if before.get(s) != v}
    index = index_change(state.dedupe if state else Dedupe(), new.dedupe, *_kat(item), policy)
    return AddressOutcome(new, True, commands, index, moved)


@dataclass(frozen=True, slots=True)
class MessageOutcome:
    """One canonical event folded into a message: new state and what to store."""

    state: MessageState
    changed: bool
    index: IndexChange

    def writes(self, state_value: bytes, keys_in: KeysWithPrefix) -> list[Write]:
        """Expired entries, the state record, its dedupe entry (see above)."""
        owner = self.state.message_id
        out = _expired(owner, self.index, keys_in)
        if self.changed:
            out.append((owner.encode(), state_value))
        return out + _remembered(owner, self.index)


def message_step(
    state: MessageState | None, event: CanonicalEvent, policy: Policy, seen: SeenLookup
) -> MessageOutcome:
    """Fold a canonical event into its message's status and history."""
    new = apply_message_event(state, event, policy, seen)
    if state is not None and new == state:
        return MessageOutcome(new, False, _skipped(new.dedupe, event, policy, seen))
    index = index_change(state.dedupe if state else Dedupe(), new.dedupe, *_kat(event), policy)
    return MessageOutcome(new, True, index)


def _kat(item: CanonicalEvent | ManualAction) -> tuple[str, datetime]:
    """The input's dedupe key and event time."""
    if isinstance(item, ManualAction):
        return item.action_id, item.requested_at
    return item.dedupe_key, item.occurred_at


def _skipped(
    dedupe: Dedupe, item: CanonicalEvent | ManualAction, policy: Policy, seen: SeenLookup
) -> IndexChange:
    """A replay re-files its key when the index lacks it; a retry changes nothing."""
    key, at = _kat(item)
    if is_replay(dedupe, item.raw):
        return repair(dedupe, key, at, policy, seen)
    return NO_CHANGE


# -- the whole pipeline on a list of records ------------------------------------------------


@dataclass
class PipelineResult:
    """Tables, commands and rejections of ``run_pipeline``, in input order."""

    addresses: dict[str, AddressState] = field(default_factory=dict)
    messages: dict[str, MessageState] = field(default_factory=dict)
    commands: list[SuppressionCommand] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    index: MemoryIndex = field(default_factory=MemoryIndex)
    message_index: MemoryIndex = field(default_factory=MemoryIndex)

    def apply(self, item: CanonicalEvent | ManualAction, policy: Policy) -> None:
        """Fold one canonical event or manual action into both tables."""
        owner = item.address if isinstance(item, ManualAction) else item.recipient
        out = address_step(self.addresses.get(owner), item, policy, self.index.lookup(owner))
        self.addresses[owner] = out.state
        self.commands += out.commands
        self.index.apply(owner, out.index)
        if isinstance(item, CanonicalEvent) and item.message_id:
            mid = item.message_id
            seen = self.message_index.lookup(mid)
            mout = message_step(self.messages.get(mid), item, policy, seen)
            self.messages[mid] = mout.state
            self.message_index.apply(mid, mout.index)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A ``webhooks.raw`` record as a consumer hands it over."""

    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    partition: int
    offset: int


def run_pipeline(
    records: Iterable[RawRecord],
    policy: Policy,
    options: NormaliseOptions,
    result: PipelineResult | None = None,
) -> PipelineResult:
    """Run every record through the whole step, in order, on in-memory tables."""
    result = PipelineResult() if result is None else result
    for r in records:
        normalised = normalise_record(r.value, r.headers, r.partition, r.offset, options)
        if isinstance(normalised, Rejected):
            result.rejected.append(normalised)
            continue
        for item in [normalised.manual] if normalised.manual else normalised.canonical:
            result.apply(item, policy)
    return result
