"""Fetch, format, start and stop KRaft Kafka on 127.0.0.1: one broker, or a cluster of three.

Layout (all gitignored, relative to the working directory unless overridden):

* ``.cache/kafka/<version>/jars`` — every runtime jar, copied by Maven from Maven Central.
  A ``.complete`` marker makes later runs skip Maven entirely.
* ``var/kafka/<version>/`` — ``server.properties``, the KRaft log dirs (``data/``), the
  broker's pid file and its log (``broker.log``).
* ``var/kafka/<version>/cluster/node<n>/`` — the same for node ``n`` of the cluster
  (``Cluster``: three nodes, each broker and controller, replication factor 3, min ISR 2).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from localkafka.local import env_path, log_tail, maven_copy, port_open

DEFAULT_VERSION = "3.9.1"
PACKAGE_DIR = Path(__file__).resolve().parent

# Operator tools by the name users know, with the class in each Kafka generation
# (3.x moved most of them from `kafka.*` to `org.apache.kafka.tools.*`; 4.0 finished).
TOOLS: dict[str, tuple[str, ...]] = {
    "console-producer": ("org.apache.kafka.tools.ConsoleProducer", "kafka.tools.ConsoleProducer"),
    "console-consumer": (
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        "kafka.tools.ConsoleConsumer",
    ),
    "consumer-groups": (
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "kafka.admin.ConsumerGroupCommand",
    ),
    "topics": ("org.apache.kafka.tools.TopicCommand", "kafka.admin.TopicCommand"),
    "producer-perf-test": ("org.apache.kafka.tools.ProducerPerformance",),
    "storage": ("kafka.tools.StorageTool",),
}


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or reached; the message says why."""


@dataclass(frozen=True)
class BrokerConfig:
    """Where the broker lives and how it listens. Environment variables override defaults."""

    version: str = field(
        default_factory=lambda: os.environ.get("MAILPULSE_KAFKA_VERSION", DEFAULT_VERSION)
    )
    cache_dir: Path = field(
        default_factory=lambda: env_path("MAILPULSE_KAFKA_CACHE", ".cache/kafka")
    )
    state_root: Path = field(default_factory=lambda: env_path("MAILPULSE_KAFKA_STATE", "var/kafka"))
    host: str = "127.0.0.1"
    port: int = field(default_factory=lambda: int(os.environ.get("MAILPULSE_KAFKA_PORT", "9092")))
    controller_port: int = field(
        default_factory=lambda: int(os.environ.get("MAILPULSE_KAFKA_CONTROLLER_PORT", "9093"))
    )
    heap: str = "1g"
    # One node of a cluster: its id, every voter's (id, controller port), the replication
    # factor of internal and default topics and their min ISR. The defaults: one broker.
    node_id: int = 1
    voters: tuple[tuple[int, int], ...] = ()
    replication: int = 1
    min_isr: int = 1
    node_dir: str = ""  # under the version's state dir; "" for the single broker

    @property
    def jars_dir(self) -> Path:
        return self.cache_dir / self.version / "jars"

    @property
    def state_dir(self) -> Path:
        base = self.state_root / self.version
        return base / self.node_dir if self.node_dir else base

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


class Broker:
    """One local broker. Every public method is safe to call twice."""

    def __init__(self, config: BrokerConfig | None = None) -> None:
        self.config = config or BrokerConfig()
        state = self.config.state_dir
        self.pid_file = state / "broker.pid"
        self.log_file = state / "broker.log"
        self.properties_file = state / "server.properties"
        self.data_dir = state / "data"

    # -- jars -----------------------------------------------------------------------------

    def fetch(self) -> Path:
        """Resolve the broker's jars with Maven unless the cache is already complete."""
        jars = self.config.jars_dir
        marker = jars / ".complete"
        if marker.exists():
            return jars
        _require("mvn", "Maven is needed once to fetch Kafka's jars (apt-get install maven)")
        _require(
            "java", "Java 17+ is needed to run Kafka (apt-get install openjdk-17-jre-headless)"
        )
        partial = jars.with_name("jars.partial")
        failed = maven_copy(
            PACKAGE_DIR / "pom.xml", partial, {"kafka.version": self.config.version}
        )
        if failed is not None:
            raise BrokerError(f"Maven could not fetch Kafka {self.config.version}: {failed}")
        shutil.rmtree(jars, ignore_errors=True)
        partial.rename(jars)
        marker.write_text(self.config.version + "\n")
        return jars

    def classpath(self) -> str:
        return str(self.fetch() / "*")

    def tool_class(self, tool: str) -> str:
        """The main class of a Kafka operator tool in the fetched version."""
        try:
            candidates = TOOLS[tool]
        except KeyError:
            raise BrokerError(f"unknown tool {tool!r}; known: {', '.join(sorted(TOOLS))}") from None
        present: set[str] = set()
        for jar in self.fetch().glob("kafka*.jar"):
            with zipfile.ZipFile(jar) as z:
                present.update(
                    n[:-6].replace("/", ".") for n in z.namelist() if n.endswith(".class")
                )
        for cls in candidates:
            if cls in present:
                return cls
        raise BrokerError(f"no class for tool {tool!r} in Kafka {self.config.version}")

    def java_command(self, main_class: str, *args: str, heap: str = "512m") -> list[str]:
        java = _require("java", "Java 17+ is needed to run Kafka")
        log_config = PACKAGE_DIR / "tools-log4j.properties"
        return [
            java,
            f"-Xmx{heap}",
            f"-Dlog4j.configuration=file:{log_config}",
            "-cp",
            self.classpath(),
            main_class,
            *args,
        ]

    # -- lifecycle ------------------------------------------------------------------------

    def format(self) -> None:
        """Write server.properties and format KRaft storage once (a no-op when formatted)."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self._server_properties())
        cluster_file = self.config.state_dir / "cluster.id"
        if not cluster_file.exists():
            cluster_file.write_text(_random_cluster_id())
        if (self.data_dir / "meta.properties").exists():
            return
        cmd = self.java_command(
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_file.read_text().strip(),
            "-c",
            str(self.properties_file),
            "--ignore-formatted",
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed: {result.stderr.strip()[-2000:]}")

    def start(self, timeout: float = 90.0) -> None:
        """Start the broker unless ours runs already; return once a client round trip works."""
        proc = self.launch()
        if proc is not None:
            self.wait_ready(proc, timeout)

    def launch(self) -> subprocess.Popen[bytes] | None:
        """Start the broker's process without waiting for it (None: ours runs and answers).

        A node of a cluster cannot answer before a majority of the controllers runs, so a
        cluster launches every node first and then waits for each (``wait_ready``)."""
        pid = self.running_pid()
        if pid is not None:
            if self.is_ready():
                return None
            # Our process, alive but not answering: a hung earlier run. Replace it.
            self.stop()
        elif port_open(self.config.host, self.config.port):
            raise BrokerError(
                f"{self.config.bootstrap} is already taken by a process this tool did not start; "
                "stop it or set MAILPULSE_KAFKA_PORT"
            )
        self.pid_file.unlink(missing_ok=True)
        self.format()
        java = _require("java", "Java 17+ is needed to run Kafka")
        cmd = [
            java,
            f"-Xmx{self.config.heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{PACKAGE_DIR / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.config.state_dir}",
            "-cp",
            self.classpath(),
            "kafka.Kafka",
            str(self.properties_file),
        ]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc

    def wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        """Return once the launched broker answers; stop it and raise if it does not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(
                    f"the broker exited with code {proc.returncode}; last log lines:\n"
                    + self.log_tail()
                )
            if self.is_ready():
                return
            time.sleep(0.5)
        self.stop()
        raise BrokerError(f"the broker was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop our broker (SIGTERM, then SIGKILL); True if one was running."""
        pid = self.terminate()
        if pid is None:
            return False
        _reap(pid, time.monotonic() + timeout)
        return True

    def terminate(self) -> int | None:
        """Send our broker SIGTERM and return its pid (None: none was running)."""
        pid = self.running_pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is not None:
            _signal(pid, signal.SIGTERM)
        return pid

    def running_pid(self) -> int | None:
        """The pid of our broker if it is alive; a stale pid file is cleaned up."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid) and _is_our_broker(pid, self.properties_file):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def is_ready(self, timeout: float = 5.0) -> bool:
        """True when a Kafka client completes a metadata round trip with a live broker."""
        if not port_open(self.config.host, self.config.port):
            return False

        def probe() -> bool:
            return asyncio.run(asyncio.wait_for(_probe(self.config.bootstrap), timeout))

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            runner = probe
        else:  # called from async code: probe on a thread with its own event loop

            def runner() -> bool:
                with ThreadPoolExecutor(max_workers=1) as pool:
                    return pool.submit(probe).result()

        try:
            return runner()
        except Exception:  # any failure to talk Kafka means "not ready"
            return False

    def log_tail(self, lines: int = 25) -> str:
        return log_tail(self.log_file, lines, "(no broker log yet)")

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to our broker (SIGKILL, SIGSTOP, SIGCONT); True if one was running."""
        pid = self.running_pid()
        if pid is None:
            return False
        _signal(pid, sig)
        return True

    def _server_properties(self) -> str:
        c = self.config
        voters = c.voters or ((c.node_id, c.controller_port),)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(c.node_id),
            "controller.quorum.voters": ",".join(f"{n}@{c.host}:{port}" for n, port in voters),
            "listeners": f"PLAINTEXT://{c.host}:{c.port},CONTROLLER://{c.host}:{c.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{c.host}:{c.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": str(c.replication),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(c.replication),
            "transaction.state.log.min.isr": str(c.min_isr),
            "default.replication.factor": str(c.replication),
            "min.insync.replicas": str(c.min_isr),
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.cleaner.backoff.ms": "5000",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())


CLUSTER_SIZE = 3
CLUSTER_MIN_ISR = 2


class Cluster:
    """Three KRaft nodes on loopback, each broker and controller, beside the single broker.

    Node ``n`` (1-3) listens on ``base_port + 2 (n - 1)`` for clients and the next port
    for the controllers (defaults 9192/9193, 9194/9195, 9196/9197; the single broker
    keeps 9092/9093, so both can run at once). Internal and default topics get
    replication factor 3 and ``min.insync.replicas`` 2: an ``acks=all`` write survives the
    loss of any one node, and is refused while two are down.
    """

    def __init__(self, base_port: int | None = None, version: str | None = None) -> None:
        base = base_port or int(os.environ.get("MAILPULSE_KAFKA_CLUSTER_PORT", "9192"))
        ports = [(base + 2 * i, base + 2 * i + 1) for i in range(CLUSTER_SIZE)]
        voters = tuple((n + 1, controller) for n, (_, controller) in enumerate(ports))
        common = BrokerConfig() if version is None else BrokerConfig(version=version)
        self.nodes = [
            Broker(
                replace(
                    common,
                    port=client,
                    controller_port=controller,
                    node_id=n + 1,
                    voters=voters,
                    replication=CLUSTER_SIZE,
                    min_isr=CLUSTER_MIN_ISR,
                    node_dir=f"cluster/node{n + 1}",
                    heap="512m",
                )
            )
            for n, (client, controller) in enumerate(ports)
        ]
        self.cluster_file = common.state_root / common.version / "cluster" / "cluster.id"

    @property
    def bootstrap(self) -> str:
        return ",".join(node.config.bootstrap for node in self.nodes)

    def node(self, node_id: int) -> Broker:
        return self.nodes[node_id - 1]

    def start(self, timeout: float = 120.0) -> None:
        """Start every node not running; return once each answers and sees all three."""
        self.cluster_file.parent.mkdir(parents=True, exist_ok=True)
        if not self.cluster_file.exists():
            self.cluster_file.write_text(_random_cluster_id())
        cluster_id = self.cluster_file.read_text()
        launched = []
        for node in self.nodes:
            node.config.state_dir.mkdir(parents=True, exist_ok=True)
            (node.config.state_dir / "cluster.id").write_text(cluster_id)
            launched.append((node, node.launch()))
        for node, proc in launched:
            if proc is not None:
                node.wait_ready(proc, timeout)
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise BrokerError(f"the cluster did not see all {CLUSTER_SIZE} brokers in time")
            time.sleep(0.5)

    def start_node(self, node_id: int, timeout: float = 90.0) -> None:
        """Start one node again (after ``stop_node`` or a kill)."""
        self.node(node_id).start(timeout)

    def stop(self, timeout: float = 30.0, *, at_once: bool = False) -> bool:
        """Stop every node; True if any was running.

        One after another by default: the last node's controlled shutdown then waits for
        a controller quorum that left with the others, until the SIGKILL after
        ``timeout``. ``at_once`` signals all three together and takes about 10 s instead
        of 40: for a teardown. The fault suite's outage keeps the default, the stop its
        figures were measured with (after stops at once, its senders once ran out of
        their 180 s of patience before ingest accepted again).
        """
        if not at_once:
            stopped = [node.stop(timeout) for node in self.nodes]  # every one, no short cut
            return any(stopped)
        pids = [pid for pid in (node.terminate() for node in self.nodes) if pid is not None]
        deadline = time.monotonic() + timeout
        for pid in pids:
            _reap(pid, deadline)
        return bool(pids)

    def stop_node(self, node_id: int) -> bool:
        return self.node(node_id).stop()

    def signal_node(self, node_id: int, sig: signal.Signals) -> bool:
        """SIGKILL, SIGSTOP or SIGCONT one node."""
        return self.node(node_id).signal(sig)

    def is_ready(self, timeout: float = 5.0) -> bool:
        """True when a client round trip through any node lists all three brokers."""
        if not all(port_open(n.config.host, n.config.port) for n in self.nodes):
            return False  # and no client logging connection errors for a stopped node
        try:
            brokers = asyncio.run(asyncio.wait_for(_brokers(self.bootstrap), timeout))
        except Exception:  # any failure to talk Kafka means "not ready"
            return False
        return brokers == CLUSTER_SIZE


async def _brokers(bootstrap: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        return len(cluster.get("brokers") or [])
    finally:
        await admin.close()


async def _probe(bootstrap: str) -> bool:
    return await _brokers(bootstrap) > 0


def _random_cluster_id() -> str:
    # Kafka's Uuid.toString(): url-safe base64 of 16 random bytes, no padding. Like Kafka's
    # own generator, avoid a leading "-", which command-line parsers take for an option.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _require(command: str, hint: str) -> str:
    path = shutil.which(command)
    if path is None:
        raise BrokerError(f"`{command}` was not found on PATH. {hint}")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def _is_our_broker(pid: int, properties_file: Path) -> bool:
    """Guard against pid reuse: the process must be a java broker on our properties file."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (not Linux): trust the pid file
    return b"kafka.Kafka" in cmdline and str(properties_file).encode() in cmdline


def _reap(pid: int, deadline: float) -> None:
    """Wait for ``pid`` to exit until ``deadline`` (monotonic), then SIGKILL it."""
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        _signal(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
