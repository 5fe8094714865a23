"""The broker is real: aiokafka and Kafka's own console tools talk to it."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.helpers import consume_until, produce, unique


async def test_idempotent_acks_all_producer_round_trips(kafka_bootstrap: str) -> None:
    topic = unique("smoke.roundtrip")
    sent = [(f"k{i}".encode(), f"value-{i}".encode()) for i in range(200)]
    await produce(kafka_bootstrap, topic, sent, headers=[("h", b"\x00\xff")])

    got = await consume_until(kafka_bootstrap, topic, lambda r: len(r) >= len(sent))

    assert [(r.key, r.value) for r in got] == sent
    assert all(list(r.headers) == [("h", b"\x00\xff")] for r in got)


def _tool(name: str, *args: str, stdin: str | None = None) -> str:
    cmd = [sys.executable, "-m", "localkafka", "tool", name, "--", *args]
    result = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_kafka_console_tools_write_and_read(kafka_bootstrap: str) -> None:
    topic = unique("smoke.console")
    _tool(
        "topics",
        "--bootstrap-server",
        kafka_bootstrap,
        "--create",
        "--topic",
        topic,
        "--partitions",
        "1",
        "--replication-factor",
        "1",
    )
    _tool(
        "console-producer",
        "--bootstrap-server",
        kafka_bootstrap,
        "--topic",
        topic,
        stdin="first line\nsecond line\n",
    )
    out = _tool(
        "console-consumer",
        "--bootstrap-server",
        kafka_bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--max-messages",
        "2",
        "--timeout-ms",
        "30000",
    )
    assert out.splitlines() == ["first line", "second line"]
