"""Fetch, initdb, start and stop a local PostgreSQL server on 127.0.0.1.

Layout (all gitignored, relative to the working directory unless overridden):

* ``.cache/postgres/<version>/dist`` — ``bin/``, ``lib/``, ``share/`` unpacked from the
  ``io.zonky.test.postgres:embedded-postgres-binaries-linux-<arch>`` jar that Maven copies
  from Maven Central (self-contained builds: their libraries sit beside them). A
  ``.complete`` marker makes later runs skip Maven.
* ``var/postgres/<version>/`` — the cluster (``data/``, initdb'd once), ``server.log``,
  ``port`` (the loopback port of the running server) and ``password`` (0600).

PostgreSQL refuses to run as root. Run as root (CI, containers), every server command runs
as ``nobody``, which must reach both directories; when a parent directory is closed to
it (a clone under ``/root``), both move under the system temp directory instead.
"""

from __future__ import annotations

import os
import platform
import pwd
import secrets
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from hashlib import sha256
from pathlib import Path
from typing import Any

from localkafka.local import env_path, free_port, log_tail, maven_copy, port_open

DEFAULT_VERSION = "17.5.0"
PACKAGE_DIR = Path(__file__).resolve().parent
SUPERUSER = "mailpulse"
UNPRIVILEGED = "nobody"


class PostgresError(RuntimeError):
    """The local server could not be fetched, initialised or started; the message says why."""


@dataclass(frozen=True)
class ServerConfig:
    """Where the server lives. Environment variables override the defaults."""

    version: str = field(
        default_factory=lambda: os.environ.get("MAILPULSE_PG_VERSION", DEFAULT_VERSION)
    )
    cache_dir: Path = field(
        default_factory=lambda: env_path("MAILPULSE_PG_CACHE", ".cache/postgres")
    )
    state_root: Path = field(default_factory=lambda: env_path("MAILPULSE_PG_STATE", "var/postgres"))
    host: str = "127.0.0.1"
    # 0: a free port, chosen at each start and written to the state dir's ``port`` file.
    port: int = field(default_factory=lambda: int(os.environ.get("MAILPULSE_PG_PORT", "0")))

    @property
    def dist_dir(self) -> Path:
        return self.cache_dir / self.version / "dist"

    @property
    def state_dir(self) -> Path:
        return self.state_root / self.version


class Server:
    """One local PostgreSQL cluster. Every public method is safe to call twice."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        config = config or ServerConfig()
        self._user = _unprivileged_user() if os.geteuid() == 0 else None
        if self._user is not None and not all(
            _reachable(p, self._user) for p in (config.cache_dir, config.state_root)
        ):
            moved = Path(tempfile.gettempdir()) / f"mailpulse-postgres-{_digest(config)}"
            config = replace(config, cache_dir=moved / "cache", state_root=moved / "state")
        self.config = config
        self.data_dir = config.state_dir / "data"
        self.log_file = config.state_dir / "server.log"
        self.port_file = config.state_dir / "port"
        self.password_file = config.state_dir / "password"

    # -- binaries -------------------------------------------------------------------------

    def fetch(self) -> Path:
        """Resolve and unpack the server's binaries unless the cache is already complete."""
        dist = self.config.dist_dir
        marker = dist / ".complete"
        if marker.exists():
            return dist
        partial = dist.with_name("dist.partial")
        shutil.rmtree(partial, ignore_errors=True)
        jars = partial / "jars"
        properties = {"pg.version": self.config.version, "pg.arch": _arch()}
        failed = maven_copy(PACKAGE_DIR / "pom.xml", jars, properties)
        if failed is not None:
            raise PostgresError(f"Maven could not fetch PostgreSQL {self.config.version}: {failed}")
        for jar in jars.glob("*.jar"):
            _unpack_txz(jar, partial)
        shutil.rmtree(jars)
        if not (partial / "bin" / "postgres").exists():
            raise PostgresError(f"no bin/postgres in the PostgreSQL {self.config.version} jar")
        shutil.rmtree(dist, ignore_errors=True)
        partial.rename(dist)
        marker.write_text(self.config.version + "\n")
        return dist

    def _bin(self, name: str) -> str:
        return str(self.fetch() / "bin" / name)

    # -- lifecycle ------------------------------------------------------------------------

    def init(self) -> None:
        """Create the cluster once (a no-op when ``data/PG_VERSION`` exists)."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        state = self.config.state_dir
        state.mkdir(parents=True, exist_ok=True)
        self._own(state)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_hex(16) + "\n")
        self.password_file.chmod(0o600)
        self._own(self.password_file)
        self._run(
            self._bin("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=scram-sha-256",
            f"--pwfile={self.password_file}",
            "-E",
            "UTF8",
            "--locale=C",
            what="initdb",
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start the server unless ours runs and answers; return once it accepts connections."""
        if self.running() and self.answers():
            return
        self.stop()
        self.init()
        port = self.config.port or free_port(self.config.host)
        self.port_file.write_text(f"{port}\n")
        options = (
            f"-c listen_addresses={self.config.host} -p {port} "
            "-c unix_socket_directories='' -c fsync=off -c max_connections=50"
        )
        self._run(
            self._bin("pg_ctl"),
            "start",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(int(timeout)),
            "-o",
            options,
            what="pg_ctl start",
        )

    def stop(self) -> bool:
        """Stop our server (fast shutdown); True if one was running."""
        if not self.running():
            return False
        pg_ctl = self._bin("pg_ctl")
        self._run(pg_ctl, "stop", "-D", str(self.data_dir), "-m", "fast", "-w", what="pg_ctl stop")
        return True

    def running(self) -> bool:
        """True when ``pg_ctl status`` finds our postmaster alive."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        cmd = [self._bin("pg_ctl"), "status", "-D", str(self.data_dir)]
        status = subprocess.run(cmd, capture_output=True, check=False, **self._as_user())
        return status.returncode == 0

    def answers(self) -> bool:
        """True when the recorded port accepts TCP connections."""
        port = self.port()
        return port is not None and port_open(self.config.host, port)

    def port(self) -> int | None:
        try:
            return int(self.port_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URI for ``database`` on the running server (it holds the password)."""
        port = self.port()
        if port is None:
            raise PostgresError("the server has not been started (no port file)")
        password = self.password_file.read_text().strip()
        return f"postgresql://{SUPERUSER}:{password}@{self.config.host}:{port}/{database}"

    def log_tail(self, lines: int = 25) -> str:
        return log_tail(self.log_file, lines, "(no server log yet)")

    # -- running as an unprivileged user --------------------------------------------------

    def _as_user(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _run(self, *cmd: str, what: str) -> None:
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the server must not get the terminal's Ctrl-C
            **self._as_user(),
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-2000:]
            raise PostgresError(f"{what} failed ({result.returncode}): {output}\n{self.log_tail()}")


def _arch() -> str:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "amd64"
    if machine in ("aarch64", "arm64"):
        return "arm64v8"
    raise PostgresError(f"no PostgreSQL binaries for {machine} (have: x86_64, aarch64)")


def _unpack_txz(jar: Path, into: Path) -> None:
    """Unpack the ``.txz`` inside ``jar`` into ``into`` (relative members only)."""
    with zipfile.ZipFile(jar) as z:
        for name in z.namelist():
            if name.endswith(".txz"):
                with z.open(name) as member, tarfile.open(fileobj=member, mode="r:xz") as tar:
                    tar.extractall(into, filter="data")


def _unprivileged_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(UNPRIVILEGED)
    except KeyError:
        raise PostgresError(
            f"running as root, PostgreSQL needs an unprivileged user; no {UNPRIVILEGED!r} here"
        ) from None


def _reachable(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` can traverse every existing ancestor of ``path`` (others' x bit,
    or the user's own directory)."""
    for parent in [path, *path.parents]:
        try:
            st = parent.stat()
        except FileNotFoundError:
            continue
        if st.st_uid != user.pw_uid and not st.st_mode & stat.S_IXOTH:
            return False
    return True


def _digest(config: ServerConfig) -> str:
    return sha256(str(config.state_root).encode()).hexdigest()[:10]
