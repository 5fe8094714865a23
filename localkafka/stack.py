"""``./dev up``: the whole local system in the foreground — broker, ingest, processors.

Ctrl-C (or SIGTERM) stops the services first, then the broker, so nothing of ours is
left running. Service logs go to ``var/logs/``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from localkafka.broker import Broker, BrokerError

SERVICES = {
    "ingest": [sys.executable, "-m", "ingest"],
    "processors": [sys.executable, "-m", "processors", "worker"],
}


def main() -> int:
    logs = Path("var/logs")
    logs.mkdir(parents=True, exist_ok=True)
    broker = Broker()
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    print(f"starting Kafka {broker.config.version} on {broker.config.bootstrap} ...", flush=True)
    started_here = broker.running_pid() is None
    try:
        broker.start()
    except BrokerError as exc:
        print(f"mailpulse: {exc}", file=sys.stderr)
        return 2
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, cmd in SERVICES.items():
            log = (logs / f"{name}.log").open("ab")
            procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        print(
            "mailpulse is up.\n"
            "  POST webhooks to http://127.0.0.1:8080/webhooks/<source>  "
            "(sources: config/dev.toml; seed-003 path: /api/webhooks)\n"
            "  health: http://127.0.0.1:8080/healthz   metrics: http://127.0.0.1:8080/metrics\n"
            "  query API: http://127.0.0.1:6066/\n"
            f"  logs: {logs}/ingest.log, {logs}/processors.log, {broker.log_file}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(
                        f"{name} exited with code {proc.returncode}; see {logs}/{name}.log",
                        file=sys.stderr,
                    )
                    stopping = True
            time.sleep(0.5)
    finally:
        print("stopping ...", flush=True)
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if started_here:
            broker.stop()
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
