"""Server processes of the ladder: start pinned, wait until ready, read CPU, stop."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.procstat import cpu_seconds

# The ingest variants answer /readyz 200 only once the Kafka producer is connected.
PATHS = {
    "noop": ("/webhooks/nexuspromail", "/readyz"),
    "verify": ("/webhooks/nexuspromail", "/readyz"),
    "nowait": ("/webhooks/nexuspromail", "/readyz"),
    "durable": ("/webhooks/nexuspromail", "/readyz"),
    "reference": ("/webhooks/email", "/healthz"),
}
REQUESTS_METRIC = re.compile(
    r'^mailpulse_ingest_requests_total\{source="[^"]*",status="(\d+)"\} ([0-9.e+]+)$', re.M
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class ServerProcess:
    variant: str
    cpu: int | None
    log_dir: Path
    topic_prefix: str = "bench-"
    db: Path | None = None
    profile: Path | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATHS[self.variant][0]}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        cmd = [sys.executable, "-m", "bench.servers", self.variant, f"--port={self.port}"]
        cmd.append(f"--topic-prefix={self.topic_prefix}")
        if self.cpu is not None:
            cmd.append(f"--cpu={self.cpu}")
        if self.db is not None:
            cmd.append(f"--db={self.db}")
        if self.profile is not None:
            cmd.append(f"--profile={self.profile}")
        # Only the settings given in code: no dev config file, no stray overrides.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPULSE_INGEST__")}
        env["MAILPULSE_CONFIG"] = "/nonexistent/mailpulse-bench.toml"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{self.variant}.log").open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.variant} server exited with {self.proc.returncode}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_get(self.port, PATHS[self.variant][1])[0] == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.variant} server not ready within {timeout:.0f}s")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def statuses(self) -> dict[str, int]:
        """Requests by HTTP status as the ingest app counted them (its /metrics)."""
        _, body = http_get(self.port, "/metrics", timeout=5.0)
        return {m[1]: int(float(m[2])) for m in REQUESTS_METRIC.finditer(body.decode())}

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (aiohttp finishes in-flight requests and flushes the producer), then kill."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
