"""``./dev up``: the whole local system in the foreground — broker, ingest, processors.

"mailpulse is up" is printed only once ingest's ``/readyz`` answers 200 (it reaches the
broker) and the worker's web port answers; if either does not within ``--timeout``
seconds, the one that did not is named, everything is stopped and the exit status is 1.
Ctrl-C (or SIGTERM) stops the services first, then the broker, so nothing of ours is
left running. Service logs go to ``var/logs/``.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from localkafka.broker import Broker, BrokerError

SERVICES = {
    "ingest": [sys.executable, "-m", "ingest"],
    "processors": [sys.executable, "-m", "processors", "worker"],
}
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Probe:
    """What answers when a service is ready."""

    service: str
    url: str


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - a bind-all


def probes() -> tuple[Probe, Probe]:
    """Ingest's ``/readyz`` and the worker's web port, at the configured addresses."""
    from ingest.settings import load_settings as ingest_settings
    from processors.settings import load_settings as processors_settings

    ingest, worker = ingest_settings(), processors_settings()
    return (
        Probe("ingest", f"http://{_loopback(ingest.host)}:{ingest.port}/readyz"),
        Probe(
            "processors",
            f"http://{_loopback(worker.web_host)}:{worker.web_port}/openapi.json",
        ),
    )


def answer(url: str, timeout_s: float = 2.0) -> str | None:
    """None when ``url`` answers 200; otherwise what it did instead."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - our own
            return None if resp.status == 200 else f"answered {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"did not answer ({reason})"


def wait_ready(
    checks: tuple[Probe, ...],
    exited: Callable[[str], int | None],
    timeout_s: float,
    stopping: Callable[[], bool] = lambda: False,
    poll_s: float = 0.5,
) -> dict[str, str]:
    """Poll every probe until all answer; the services that did not, and why ({}: ready).

    ``exited(service)`` is the exit code of a service that stopped, or None.
    """
    pending = {p.service: p for p in checks}
    why: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while pending and not stopping():
        for name, probe in list(pending.items()):
            code = exited(name)
            if code is not None:
                return {name: f"exited with code {code} before answering at {probe.url}"}
            last = answer(probe.url)
            if last is None:
                del pending[name]
                why.pop(name, None)
            else:
                why[name] = f"{probe.url} {last}"
        if pending and time.monotonic() >= deadline:
            return {n: f"{why[n]} after {timeout_s:.0f} s" for n in pending}
        if pending:
            time.sleep(poll_s)
    return dict.fromkeys(pending, "stopped before it answered")


def _stop(procs: Mapping[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in procs.values():
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _up_message(checks: tuple[Probe, ...], logs: Path, broker_log: Path) -> str:
    ingest = checks[0].url.removesuffix("/readyz")
    worker = checks[1].url.removesuffix("/openapi.json")
    return (
        "mailpulse is up.\n"
        f"  POST webhooks to {ingest}/webhooks/<source>  "
        "(sources: config/dev.toml; seed-003 path: /api/webhooks)\n"
        f"  index: {ingest}/   health: {ingest}/healthz   metrics: {ingest}/metrics\n"
        f"  query API: {worker}/   status: .venv/bin/mailpulse status\n"
        f"  logs: {logs}/ingest.log, {logs}/processors.log, {broker_log}\n"
        "Ctrl-C stops everything."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev up", description=__doc__)
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds to wait for both services to answer (default %(default)s)",
    )
    args = parser.parse_args(argv)
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
    code = 0
    try:
        for name, cmd in SERVICES.items():
            log = (logs / f"{name}.log").open("ab")
            procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        checks = probes()
        print("waiting for ingest and the processors to answer ...", flush=True)
        failed = wait_ready(checks, lambda n: procs[n].poll(), args.timeout, lambda: stopping)
        if failed and not stopping:
            for name, why in failed.items():
                print(f"mailpulse: {name} is not up: {why}; see {logs}/{name}.log", file=sys.stderr)
            code = 1
            stopping = True
        elif not stopping:
            print(_up_message(checks, logs, broker.log_file), flush=True)
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
        _stop(procs)
        if started_here:
            broker.stop()
        print("stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
