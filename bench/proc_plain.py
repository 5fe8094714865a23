"""The reference "plain loop": what the three Faust agents do, in one aiokafka loop.

``python -m bench.proc_plain --raw TOPIC --group GROUP --out PREFIX`` consumes the raw
topic with a consumer group (manual commits, ``getmany`` batches), runs the same
``normalise`` and the same pure transitions on in-memory dicts, and writes every state
change to a changelog-like topic per table and every suppression command to a commands
topic. Per batch: send the commands and await their acks, *then* store the new states
(dicts + changelog records), flush, commit — the same "command acked before state"
order as the Faust agent. It does less than the Faust pipeline: no re-keying hop through
``email.events``/``message.events`` (so no canonical event JSON round trip), states kept
as objects (no JSON parse per event), no RocksDB. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import dataclass, field

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from processors.dedupe import MemoryIndex
from processors.settings import ProcessorSettings, load_settings
from processors.step import Rejected, address_step, message_step, normalise_record
from schemas.commands import SuppressionCommand
from schemas.state import AddressState, MessageState

BATCH = 2000


@dataclass
class Batch:
    """The effect of one ``getmany`` batch, held back until its commands are acked."""

    addresses: dict[str, AddressState] = field(default_factory=dict)
    messages: dict[str, MessageState] = field(default_factory=dict)
    address_changes: list[tuple[str, AddressState]] = field(default_factory=list)
    message_changes: list[tuple[str, MessageState]] = field(default_factory=list)
    commands: list[SuppressionCommand] = field(default_factory=list)
    rejected: int = 0


@dataclass
class PlainLoop:
    # The worker's own settings (same config file and environment): same policy, options.
    settings: ProcessorSettings = field(default_factory=load_settings)
    addresses: dict[str, AddressState] = field(default_factory=dict)
    messages: dict[str, MessageState] = field(default_factory=dict)
    # Dedupe indexes in memory (the worker keeps them in its tables' stores).
    address_index: MemoryIndex = field(default_factory=MemoryIndex)
    message_index: MemoryIndex = field(default_factory=MemoryIndex)

    def fold(self, records: list[ConsumerRecord[bytes, bytes]]) -> Batch:
        """Apply a batch to in-memory state (not yet stored): the same pure step."""
        batch = Batch()
        policy, options = self.settings.policy, self.settings.normalise
        for r in records:
            result = normalise_record(r.value, r.headers, r.partition, r.offset, options)
            if isinstance(result, Rejected):
                batch.rejected += 1  # the Faust pipeline's DLQ; the bench input has none
                continue
            for ce in result.canonical:
                key = ce.recipient
                state = batch.addresses.get(key) or self.addresses.get(key)
                out = address_step(state, ce, policy, self.address_index.lookup(key))
                self.address_index.apply(key, out.index)
                if out.changed:
                    batch.addresses[key] = out.state
                    batch.address_changes.append((key, out.state))
                    batch.commands.extend(out.commands)
                if ce.message_id:
                    mkey = ce.message_id
                    mstate = batch.messages.get(mkey) or self.messages.get(mkey)
                    mout = message_step(mstate, ce, policy, self.message_index.lookup(mkey))
                    self.message_index.apply(mkey, mout.index)
                    if mout.changed:
                        batch.messages[mkey] = mout.state
                        batch.message_changes.append((mkey, mout.state))
        return batch


async def run(bootstrap: str, raw: str, group: str, out: str, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        raw,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 << 10,
    )
    await producer.start()
    await consumer.start()
    loop = PlainLoop()
    try:
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            records = [r for part in fetched.values() for r in part]
            if not records:
                continue
            batch = loop.fold(records)
            acks = [
                await producer.send(
                    f"{out}suppression.commands",
                    key=c.address.encode(),
                    value=c.model_dump_json().encode(),
                )
                for c in batch.commands
            ]
            await asyncio.gather(*acks)
            for key, state in batch.address_changes:
                await producer.send(
                    f"{out}addresses.changelog",
                    key=key.encode(),
                    value=state.model_dump_json().encode(),
                )
            for key, mstate in batch.message_changes:
                await producer.send(
                    f"{out}messages.changelog",
                    key=key.encode(),
                    value=mstate.model_dump_json().encode(),
                )
            loop.addresses.update(batch.addresses)
            loop.messages.update(batch.messages)
            await producer.flush()
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await run(args.bootstrap, args.raw, args.group, args.out, stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proc_plain", description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--raw", required=True, help="raw topic to consume")
    parser.add_argument("--group", required=True, help="consumer group")
    parser.add_argument("--out", required=True, help="prefix of the output topics")
    args = parser.parse_args(argv)
    uvloop.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
