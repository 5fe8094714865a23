"""``python -m bench.servers VARIANT --port N``: one server of the ingest ladder.

Each variant runs in its own process, pinned to one core when ``--cpu`` is given, so its
CPU time can be read from /proc and it does not share a core with the load generator.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from bench.payload import SECRET
from ingest.settings import IngestSettings, KafkaSettings, SourceSettings

VARIANTS = ("noop", "verify", "nowait", "durable", "reference")
SOURCE = "nexuspromail"


def bench_settings(topic_prefix: str) -> IngestSettings:
    """One NexusProMail source; Kafka settings as shipped apart from the topic prefix."""
    return IngestSettings(
        sources={SOURCE: SourceSettings(kind="nexuspromail", secrets=(SecretStr(SECRET),))},
        kafka=KafkaSettings(topic_prefix=topic_prefix),
    )


def noop_app() -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/{source}", receive)
    app.router.add_get("/readyz", healthz)
    return app


def ingest_app(variant: str, topic_prefix: str) -> web.Application:
    from bench.publishers import AckingPublisher, NoWaitKafkaPublisher
    from ingest.app import create_app
    from ingest.logs import configure_logging

    configure_logging("info")
    settings = bench_settings(topic_prefix)
    if variant == "verify":
        return create_app(settings, publisher=AckingPublisher())
    if variant == "durable":
        return create_app(settings)  # the real KafkaPublisher, lifecycle owned by the app
    nowait = NoWaitKafkaPublisher(settings.kafka)
    app = create_app(settings, publisher=nowait)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await nowait.start()
        yield
        await nowait.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.servers", description=__doc__)
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one core")
    parser.add_argument("--topic-prefix", default="bench-")
    parser.add_argument("--db", type=Path, default=Path("bench/.bin/reference.sqlite3"))
    parser.add_argument("--profile", type=Path, default=None, help="cProfile stats file")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    host = "127.0.0.1"

    if args.variant == "reference":
        from bench.reference_flask import serve_reference

        serve_reference(host, args.port, SECRET, args.db)
        return 0

    import uvloop

    app = noop_app() if args.variant == "noop" else ingest_app(args.variant, args.topic_prefix)
    profiler = cProfile.Profile() if args.profile is not None else None
    if profiler is not None:
        profiler.enable()
    web.run_app(
        app,
        host=host,
        port=args.port,
        access_log=None,
        print=lambda msg: print(msg, file=sys.stderr),
        shutdown_timeout=10,
        loop=uvloop.new_event_loop(),
    )
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
