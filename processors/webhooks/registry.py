"""The endpoints as their topic describes them, and what each manage action writes. Pure.

``Registry.apply`` folds the records of ``webhooks.subscriptions`` (compacted, one
partition, key ``webhook:<uid>``) in offset order into the current endpoints; the
transitions (``create``, ``update``, ``rotate``, ``deactivate``) build the next record of
an endpoint. An endpoint's id is the offset of its creation record plus one, so ids are
unique without any coordination between the workers that create them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from pydantic import SecretStr, ValidationError

from processors.webhooks.deliveries import Subscriber
from schemas.webhooks import (
    SubscriptionRecord,
    WebhookCreate,
    WebhookUpdate,
    event_types,
)

log = structlog.get_logger("processors.webhooks")

KEY_PREFIX = "webhook:"


def new_uid() -> str:
    return uuid.uuid4().hex


def topic_key(uid: str) -> bytes:
    return (KEY_PREFIX + uid).encode()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint now: its id, its key on the topic and its latest record."""

    id: int
    uid: str
    record: SubscriptionRecord
    types: frozenset[str]

    @property
    def secret(self) -> SecretStr:
        return self.record.secret


def create(request: WebhookCreate, secret: SecretStr, now: datetime) -> SubscriptionRecord:
    return SubscriptionRecord(
        url=request.url,
        events=request.events,
        active=request.active,
        created_at=now,
        updated_at=now,
        secret=secret,
    )


def update(endpoint: Endpoint, patch: WebhookUpdate, now: datetime) -> SubscriptionRecord:
    changes: dict[str, object] = {"id": endpoint.id, "updated_at": now}
    if patch.url is not None:
        changes["url"] = patch.url
    if patch.events is not None:
        changes["events"] = patch.events
    if patch.active is not None:
        changes["active"] = patch.active
        if patch.active:
            changes["deactivated_reason"] = None
    return endpoint.record.model_copy(update=changes)


def rotate(endpoint: Endpoint, secret: SecretStr, now: datetime) -> SubscriptionRecord:
    return endpoint.record.model_copy(
        update={"id": endpoint.id, "secret": secret, "updated_at": now}
    )


def deactivate(endpoint: Endpoint, reason: str, now: datetime) -> SubscriptionRecord:
    return endpoint.record.model_copy(
        update={"id": endpoint.id, "active": False, "deactivated_reason": reason, "updated_at": now}
    )


@dataclass
class Registry:
    """Current endpoints, by id and by topic key, and who subscribes to each type."""

    by_id: dict[int, Endpoint] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)  # uid -> id
    _subscribers: dict[str, list[Subscriber]] = field(default_factory=dict)

    def apply(
        self, key: bytes | None, value: bytes | None, offset: int
    ) -> tuple[int, Endpoint | None] | None:
        """Fold one record in: (webhook id, the endpoint now or None if deleted), or None
        for a record that is skipped (logged)."""
        if key is None or not key.startswith(KEY_PREFIX.encode()):
            log.warning("subscription_record_skipped", offset=offset, reason="key")
            return None
        uid = key[len(KEY_PREFIX) :].decode(errors="replace")
        if value is None:
            deleted = self.ids.pop(uid, None)
            if deleted is None:
                return None
            self.by_id.pop(deleted, None)
            self._reindex()
            return deleted, None
        try:
            record = SubscriptionRecord.model_validate_json(value)
        except ValidationError as exc:
            errors = exc.error_count()
            log.warning(
                "subscription_record_skipped", offset=offset, reason="invalid", errors=errors
            )
            return None
        webhook_id = record.id if record.id is not None else self.ids.get(uid, offset + 1)
        endpoint = Endpoint(webhook_id, uid, record, event_types(record.events))
        self.ids[uid] = webhook_id
        self.by_id[webhook_id] = endpoint
        self._reindex()
        return webhook_id, endpoint

    def _reindex(self) -> None:
        index: dict[str, list[Subscriber]] = {}
        for endpoint in sorted(self.by_id.values(), key=lambda e: e.id):
            if endpoint.record.active:
                for kind in endpoint.types:
                    index.setdefault(kind, []).append(
                        Subscriber(endpoint.id, endpoint.record.created_at)
                    )
        self._subscribers = index

    def subscribers(self, kind: str) -> list[Subscriber]:
        """Active endpoints subscribed to ``kind``, by id."""
        return self._subscribers.get(kind, [])

    def any_active(self) -> bool:
        return bool(self._subscribers)

    def get(self, webhook_id: int) -> Endpoint | None:
        return self.by_id.get(webhook_id)

    def all(self) -> list[Endpoint]:
        return sorted(self.by_id.values(), key=lambda e: e.id)
