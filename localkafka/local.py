"""What the local services (this broker, ``localpg``'s PostgreSQL) share: paths from the
environment, ports on loopback, log tails, and resolving a pom's dependencies with Maven."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path


def env_path(name: str, default: str) -> Path:
    """``$name`` (or ``default``) as an absolute path."""
    return Path(os.environ.get(name, default)).resolve()


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def log_tail(log: Path, lines: int, missing: str) -> str:
    """The last ``lines`` lines of ``log``; ``missing`` when there is no log yet."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return missing


def maven_copy(pom: Path, into: Path, properties: dict[str, str]) -> str | None:
    """Copy ``pom``'s runtime dependencies into ``into`` (made anew) with Maven; None on
    success, else why not (Maven missing, or the tail of its output)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        return "`mvn` was not found on PATH (apt-get install maven)"
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        *(f"-D{key}={value}" for key, value in properties.items()),
        f"-DoutputDirectory={into}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return None
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
