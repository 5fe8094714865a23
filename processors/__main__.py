"""``python -m processors worker`` / ``mailpulse-processors worker``: run a Faust worker."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys

import mode.loop
import structlog
from filelock import FileLock, Timeout

from ingest.logs import configure_logging
from processors.app import create_app, topic_specs
from processors.generations import generation_topics, resolve_active
from processors.settings import ProcessorSettings, load_settings
from schemas.topics import ensure_topics

log = structlog.get_logger("processors")


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
    app.main()
    lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
