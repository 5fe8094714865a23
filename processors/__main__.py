"""``python -m processors worker`` / ``mailpulse-processors worker``: run a Faust worker."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys

import mode.loop
import structlog

from ingest.logs import configure_logging
from processors.app import create_app, topic_specs
from processors.generations import generation_topics, resolve_active
from processors.settings import load_settings
from schemas.topics import ensure_topics

log = structlog.get_logger("processors")


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
    if settings.wipe_local_state_on_start:
        shutil.rmtree(settings.datadir / settings.generation, ignore_errors=True)
    app, _ = create_app(settings)
    if args[0] == "worker" and "--loglevel" not in args and "-l" not in args:
        args += ["--loglevel", "warn" if settings.log_level == "warning" else settings.log_level]
    sys.argv = [sys.argv[0], *args]
    app.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
