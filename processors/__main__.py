"""``python -m processors worker`` / ``mailpulse-processors worker``: run a Faust worker."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import threading
import time
from typing import Protocol

import mode.loop
import structlog
from filelock import FileLock, Timeout

from ingest.logs import configure_logging
from processors.app import create_app, topic_specs
from processors.generations import generation_topics, resolve_active
from processors.settings import ProcessorSettings, load_settings
from schemas.topics import ensure_topics

log = structlog.get_logger("processors")

EXIT_CRASHED = 1
_CRASH_POLL_S = 0.2


def claim_datadir(settings: ProcessorSettings) -> FileLock:
    """Lock the generation's data dir for this process, or exit if another worker has it.

    A worker wipes its data dir at start and keeps RocksDB files there: two workers
    sharing one would delete and overwrite each other's state. The lock is a file beside
    the directory (the wipe removes the directory) and is released when the process exits,
    however it exits.
    """
    datadir = settings.datadir / settings.generation
    settings.datadir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(settings.datadir / f"{settings.generation}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.error("datadir_in_use", datadir=str(datadir))
        raise SystemExit(
            f"{datadir} is in use by another worker: give each worker on this host its own "
            "data dir (MAILPULSE_PROCESSORS__DATADIR)"
        ) from None
    return lock


class Crashable(Protocol):
    """What the crash watchdog reads of a Faust app (a ``mode.Service``)."""

    @property
    def crashed(self) -> bool: ...

    @property
    def crash_reason(self) -> BaseException | None: ...


def exit_when_crashed(app: Crashable, grace_s: float) -> threading.Thread:
    """Once ``app`` has crashed, give Faust ``grace_s`` to stop, then end the process with
    status ``EXIT_CRASHED`` (the status Faust's worker gives a crash it does stop from).

    A crashed app does not always stop. ``App.crash`` marks every service crashed, the
    consumer's thread too, which then shuts down and ends its event loop; Faust's
    shutdown still commits the acked offsets through that thread (``App.on_stop`` ->
    ``Consumer.wait_empty`` -> ``commit`` -> ``call_thread``) and, when the thread has
    gone first, waits without a timeout for an answer that will never come. The process
    would stay up, out of its consumer group, and a supervisor never restarts a process
    that is still running. Ending it without a clean stop is safe: a worker survives
    kill -9 (README "Crash safety"), and the data-dir lock, a file lock, goes with the
    process.

    A thread rather than a task, so that a blocked event loop cannot hold the exit up.
    """

    def watch() -> None:
        while not app.crashed:
            time.sleep(_CRASH_POLL_S)
        error = _describe(app.crash_reason)
        log.error("worker_crashed", error=error, grace_s=grace_s)
        time.sleep(grace_s)
        log.error("worker_exit_forced", error=error, grace_s=grace_s)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_CRASHED)

    watchdog = threading.Thread(target=watch, name="exit-when-crashed", daemon=True)
    watchdog.start()
    return watchdog


def _describe(reason: BaseException | None) -> str:
    """The exception's type and the start of its message, enough to name the failure
    (a broker error, a refused size) in one line; Faust logs the traceback."""
    if reason is None:
        return "unknown"
    return f"{type(reason).__module__}.{type(reason).__qualname__}: {str(reason)[:200]}"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv) or ["worker"]
    settings = load_settings()
    configure_logging(settings.log_level)
    # uvloop unless FAUST_LOOP says otherwise: asyncio's own scheduler showed as a fifth of
    # the worker's profile; the throughput gain measured was within the noise.
    mode.loop.use(os.environ.get("FAUST_LOOP", "uvloop"))
    # Our topics exist with the right partition counts before any client can auto-create
    # them with the broker's default.
    active = asyncio.run(resolve_active(settings))
    if active != settings.generation:
        # A rebuild in progress: build state, but never publish to the live topic.
        settings = settings.model_copy(update={"shadow": True})
    asyncio.run(ensure_topics(settings.bootstrap_servers, topic_specs(settings)))
    log.info(
        "generation",
        generation=settings.generation,
        active=active,
        commands_topic=generation_topics(settings).suppression,
    )
    lock = claim_datadir(settings)  # held until the process exits
    if settings.wipe_local_state_on_start:
        shutil.rmtree(settings.datadir / settings.generation, ignore_errors=True)
    app, _ = create_app(settings)
    if args[0] == "worker" and "--loglevel" not in args and "-l" not in args:
        args += ["--loglevel", "warn" if settings.log_level == "warning" else settings.log_level]
    sys.argv = [sys.argv[0], *args]
    exit_when_crashed(app, settings.crash_exit_grace_s)
    # Faust's command line leaves through SystemExit: 0 after SIGTERM, 1 after a crash.
    app.main()
    lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
