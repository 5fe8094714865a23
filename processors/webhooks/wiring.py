"""``register_webhooks``: the webhook parts of one worker, wired (called by ``create_app``).

Every worker follows the subscriptions and serves the manage API and the delivery log.
A worker of the active generation with ``webhooks.enabled`` also runs the delivery agent
and the scheduler; a shadow generation (a rebuild) never delivers: it would send history
again to every endpoint.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import faust
import structlog

from processors.generations import generation_topics
from processors.metrics import ProcessorMetrics
from processors.runtime.offsets import CommittedOffsets, PresentOffsets
from processors.runtime.produce import DirectTopic
from processors.settings import ProcessorSettings
from processors.webhooks.agent import register_delivery_agent
from processors.webhooks.log_api import register_log_api
from processors.webhooks.manage import ManageActions, register_manage
from processors.webhooks.registry import Endpoint
from processors.webhooks.scheduler import DeliveryScheduler
from processors.webhooks.sender import Sender
from processors.webhooks.ssrf import UrlGuard
from processors.webhooks.view import SubscriptionLog, SubscriptionView
from schemas.webhooks import SubscriptionRecord

log = structlog.get_logger("processors.webhooks")

DELIVERIES_TABLE = "webhook_deliveries"


def delivery_tables(settings: ProcessorSettings) -> list[str]:
    """The tables ``register_webhooks`` declares for ``settings`` (their changelogs are
    created before the worker starts)."""
    return [DELIVERIES_TABLE] if settings.webhooks.enabled and not settings.shadow else []


class WorkerSubscriptions:
    """The manage API's ``Subscriptions`` on a worker: the view and the topic."""

    def __init__(self, view: SubscriptionView, appender: SubscriptionLog) -> None:
        self._view = view
        self._log = appender

    def get(self, webhook_id: int) -> Endpoint | None:
        return self._view.registry.get(webhook_id)

    def all(self) -> list[Endpoint]:
        return self._view.registry.all()

    async def ready(self) -> bool:
        if self._view.ready:
            return True
        try:
            await self._view.sync(timeout_s=5.0)
        except TimeoutError:
            return False
        return True

    async def append(self, uid: str, record: SubscriptionRecord | None) -> int:
        return await self._log.append(uid, record)


@dataclass
class Webhooks:
    view: SubscriptionView
    actions: ManageActions
    scheduler: DeliveryScheduler | None
    table: Any


def register_webhooks(
    app: faust.App, settings: ProcessorSettings, metrics: ProcessorMetrics
) -> Webhooks:
    w, t = settings.webhooks, settings.topics
    view = SubscriptionView(settings.bootstrap_servers, t.name(t.webhook_subscriptions))
    guard = UrlGuard(w.allow_http, w.allow_private_addresses)
    subscriptions = WorkerSubscriptions(view, SubscriptionLog(DirectTopic(app, view.topic), view))
    actions = ManageActions(w.manage_token, guard, subscriptions)
    register_manage(app, actions)

    async def webhook_subscriptions() -> None:
        while True:
            try:
                await view.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("subscription_view_failed")
                await asyncio.sleep(1.0)

    app.task(webhook_subscriptions)

    scheduler: DeliveryScheduler | None = None
    table: Any = None
    if delivery_tables(settings):
        table = app.Table(
            DELIVERIES_TABLE,
            default=None,
            partitions=t.partitions,
            key_type=bytes,
            value_type=bytes,
            extra_topic_configs=t.durability(),
        )
        sender = Sender(guard, w.connect_timeout_s, w.timeout_s, w.max_response_bytes)
        scheduler = DeliveryScheduler(app, table, w, view, sender, actions.deactivate_gone, metrics)
        names = generation_topics(settings)
        register_delivery_agent(
            app,
            table,
            names.email_events,
            names.suppression,
            view,
            scheduler,
            CommittedOffsets(settings.bootstrap_servers, settings.group_id),
            PresentOffsets(settings.bootstrap_servers),
            w.log_retention_s,
            metrics,
        )
        changelog = table.changelog_topic.get_topic_name()
        running = scheduler

        async def webhook_scheduler() -> None:
            await running.run()

        async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            revoked = args[0] if args else kwargs.get("revoked", ())
            await running.on_revoked(tp.partition for tp in revoked if tp.topic == changelog)

        app.task(webhook_scheduler)
        app.on_partitions_revoked.connect(on_revoked)

    register_log_api(
        app,
        table,
        t.partitions,
        w.manage_token,
        scheduler,
        known=lambda webhook_id: view.registry.get(webhook_id) is not None,
    )
    return Webhooks(view, actions, scheduler, table)
