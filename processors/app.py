"""``create_app``: one Faust app (one generation of state) with its topics, tables, agents."""

from __future__ import annotations

import asyncio
import logging
import re

import faust
import structlog
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.logs import json_handler
from ingest.openapi import served as openapi_document
from processors.admin import register_admin
from processors.agents import TABLES, Topology, register_agents
from processors.api import register_api
from processors.generations import control_spec, generation_topics
from processors.metrics import ProcessorMetrics
from processors.ops.kafkaio import GroupLag
from processors.settings import ProcessorSettings
from processors.webhooks.wiring import delivery_tables, register_webhooks
from schemas.topics import COMPACTED_CONFIG, DLQ_CONFIG, EVENTS_CONFIG, RAW_CONFIG, TopicSpec

log = structlog.get_logger("processors")

# What Faust gives a table's changelog.
CHANGELOG = {"cleanup.policy": "compact"}


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner.

    The spinner hooks a log handler in and sets the root logger to DEBUG so that it can
    spin on every record: every ``logger.debug`` in Faust and aiokafka (one per message
    sent) would then build a record that no handler prints.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Leave the root logger as ``configure_logging`` set it."""


def topic_specs(settings: ProcessorSettings) -> list[TopicSpec]:
    """The topics the processors read and write, the tables' changelogs and Faust's
    assignor topic included: all exist, known to every broker, before the worker's
    consumer joins its group (see ``schemas.topics.ensure_topics``)."""
    t = settings.topics
    rf, isr = t.replication_factor, t.min_insync_replicas
    names = generation_topics(settings)
    tables = [*TABLES, *delivery_tables(settings)]
    return [
        TopicSpec(names.raw, t.raw_partitions, rf, RAW_CONFIG, isr),
        TopicSpec(names.email_events, t.partitions, rf, EVENTS_CONFIG, isr),
        TopicSpec(names.message_events, t.partitions, rf, EVENTS_CONFIG, isr),
        TopicSpec(names.dlq, 1, rf, DLQ_CONFIG, isr),
        TopicSpec(names.suppression, t.partitions, rf, COMPACTED_CONFIG, isr),
        # One partition: an endpoint's id is its creation record's offset (processors/webhooks).
        TopicSpec(t.name(t.webhook_subscriptions), 1, rf, COMPACTED_CONFIG, isr),
        control_spec(settings),
        # Faust names these "<app id>-<table>-changelog" and "<app id>-__assignor-__leader";
        # it declares none itself (``topic_allow_declare=False``).
        *(
            TopicSpec(f"{settings.group_id}-{table}-changelog", t.partitions, rf, CHANGELOG, isr)
            for table in tables
        ),
        TopicSpec(f"{settings.group_id}-__assignor-__leader", 1, rf, {}, isr),
    ]


def group_instance_id(settings: ProcessorSettings) -> str | None:
    """The consumer's ``group.instance.id`` (static membership), or None (dynamic).

    The worker's URL is part of it. A static member that rejoins gets back the assignment
    its previous incarnation got, and Faust's assignor (``PartitionAssignor.on_assignment``)
    asserts that the URL inside it is its own: under another URL the assertion kills the
    consumer's coordinator task and the worker stays up without consuming anything. A
    worker that comes back under another URL is therefore another member, which joins
    with a rebalance like any new one.
    """
    if settings.instance_id is None:
        return None
    # Kafka allows ASCII alphanumerics, '.', '_' and '-' (an IPv6 host has ':').
    host = re.sub(r"[^A-Za-z0-9._-]", "_", settings.web_host)
    return f"{settings.instance_id}-{host}-{settings.web_port}"


def report_lag(app: faust.App, settings: ProcessorSettings, metrics: ProcessorMetrics) -> None:
    """Keep ``mailpulse_consumer_lag`` current: the group's committed offsets against the
    end offsets of its inputs, as the broker has them (what ``mailpulse status`` shows)."""
    inputs = generation_topics(settings).inputs

    async def report(reader: GroupLag) -> None:
        lag = await reader.lag(settings.group_id, inputs)
        for topic, records in lag.items():
            metrics.lag.labels(settings.group_id, topic).set(records)

    async def consumer_lag() -> None:
        # The same clients for every reading (GroupLag says why); a reading that fails is
        # not worth a crash: the clients are opened again at the next interval.
        while True:
            await asyncio.sleep(settings.lag_interval_s)
            try:
                async with GroupLag(settings.bootstrap_servers) as reader:
                    while True:
                        await report(reader)
                        await asyncio.sleep(settings.lag_interval_s)
            except (KafkaError, OSError) as exc:
                log.warning("consumer_lag_unavailable", error=repr(exc))

    app.task(consumer_lag)


def create_app(settings: ProcessorSettings) -> tuple[faust.App, Topology]:
    """Build the Faust app of ``settings.generation``; the worker runs it."""
    datadir = settings.datadir / settings.generation
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        settings.group_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        store=settings.store,
        datadir=str(datadir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=settings.producer_linger_s,
        # At-least-once plus our own dedupe (DESIGN.md §3, §6): no Kafka transactions.
        processing_guarantee="at_least_once",
        # A crashed worker must hand its partitions over quickly.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        consumer_group_instance_id=group_instance_id(settings),
        table_standby_replicas=0,
        # Every topic exists before the app starts (``topic_specs``, changelogs included).
        # Faust's own declaration asks the controller the metadata names, and a worker
        # starting while that broker was down exited with NodeNotReadyError.
        topic_allow_declare=False,
        # The worker re-configures logging when it starts: keep our JSON lines on stdout
        # instead of its coloured text (no handlers of its own, ours added after).
        logging_config={"version": 1, "disable_existing_loggers": False},
        loghandlers=[json_handler(settings.log_level)],
        Worker=QuietWorker,
    )
    topology = Topology.declare(app, settings)
    metrics = ProcessorMetrics()
    register_agents(app, topology, settings, metrics)
    register_api(app, topology, settings)
    register_admin(app, topology, settings)
    register_webhooks(app, settings, metrics)

    report_lag(app, settings, metrics)

    @app.page("/metrics")
    async def metrics_page(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # As a header: aiohttp refuses a content_type argument with a charset in it.
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        return view.bytes(generate_latest(metrics.registry), headers=headers)

    openapi = openapi_document("processors")

    @app.page("/openapi.json")
    async def openapi_page(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return view.bytes(openapi, content_type="application/json")

    return app, topology
