"""``python -m localkafka {fetch,start,stop,status,run,tool}`` — the local Kafka broker."""

from __future__ import annotations

import argparse
import os
import sys
import time

from localkafka.broker import TOOLS, Broker, BrokerError, Cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailpulse-kafka", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="resolve Kafka's jars with Maven (no-op when cached)")
    start = sub.add_parser("start", help="start the broker in the background (idempotent)")
    start.add_argument("--timeout", type=float, default=120.0)
    stop = sub.add_parser("stop", help="stop the broker this tool started")
    status = sub.add_parser("status", help="say whether the broker runs and answers")
    for command in (start, stop, status):
        command.add_argument(
            "--cluster",
            action="store_true",
            help="the three-broker cluster (127.0.0.1:9192,9194,9196; RF 3, min ISR 2) "
            "instead of the single broker",
        )
    tool = sub.add_parser("tool", help="run a Kafka operator tool, e.g. console-consumer")
    tool.add_argument("name", choices=sorted(TOOLS))
    tool.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    broker = Broker()
    try:
        if getattr(args, "cluster", False):
            return _cluster(args.command, Cluster(), getattr(args, "timeout", 120.0))
        if args.command == "fetch":
            print(broker.fetch())
        elif args.command == "start":
            began = time.monotonic()
            broker.start(timeout=args.timeout)
            took = time.monotonic() - began
            print(
                f"broker ready on {broker.config.bootstrap} (Kafka {broker.config.version}, "
                f"{took:.1f}s; log {broker.log_file})"
            )
        elif args.command == "stop":
            print("broker stopped" if broker.stop() else "no broker of ours was running")
        elif args.command == "status":
            pid = broker.running_pid()
            ready = broker.is_ready()
            print(f"pid={pid} ready={ready} bootstrap={broker.config.bootstrap}")
            return 0 if ready else 1
        elif args.command == "tool":
            extra = args.args[1:] if args.args[:1] == ["--"] else args.args
            cmd = broker.java_command(broker.tool_class(args.name), *extra)
            os.execv(cmd[0], cmd)  # noqa: S606 - replace ourselves with the JVM tool
    except BrokerError as exc:
        print(f"mailpulse-kafka: {exc}", file=sys.stderr)
        return 2
    return 0


def _cluster(command: str, cluster: Cluster, timeout: float) -> int:
    if command == "start":
        began = time.monotonic()
        cluster.start(timeout=timeout)
        print(f"cluster ready on {cluster.bootstrap} ({time.monotonic() - began:.1f}s)")
    elif command == "stop":
        print("cluster stopped" if cluster.stop() else "no node of ours was running")
    else:
        pids = [node.running_pid() for node in cluster.nodes]
        ready = cluster.is_ready()
        print(f"pids={pids} ready={ready} bootstrap={cluster.bootstrap}")
        return 0 if ready else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
