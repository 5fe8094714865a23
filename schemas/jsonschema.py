"""JSON Schemas of the topic values, for consumers that do not run our Python.

The files in ``schemas/jsonschema/`` are generated from the pydantic models, never edited
by hand: ``python -m schemas.jsonschema`` rewrites them (and deletes stale ones), and a
unit test fails when they differ from what the models say.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.commands import ManualAction, ManualActionRequest, SuppressionCommand
from schemas.dlq import DlqRecord
from schemas.events import CanonicalEvent, CanonicalEventBatch
from schemas.state import AddressState, MessageState
from schemas.webhooks import DeliveryRecord, SubscriptionRecord, WebhookBody

DIRECTORY = Path(__file__).with_suffix("")

SCHEMAS: dict[str, type[BaseModel]] = {
    # Value of email.events and of message.events: a batch when the header
    # mailpulse.value_type is "event_batch" (what the normaliser writes), else one event.
    "canonical_event_batch.json": CanonicalEventBatch,
    "canonical_event.json": CanonicalEvent,
    # Value of email.events when its header mailpulse.value_type is "manual_action".
    "manual_action.json": ManualAction,
    # Body of a webhooks.raw record of provider "admin" (an operator's action).
    "manual_action_request.json": ManualActionRequest,
    # Value of suppression.commands.
    "suppression_command.json": SuppressionCommand,
    # Value of webhooks.dlq.
    "dlq_record.json": DlqRecord,
    # Values of the address and message state tables (and their changelogs).
    "address_state.json": AddressState,
    "message_state.json": MessageState,
    # The body of an outbound webhook delivery (POST to a registered endpoint).
    "webhook_delivery.json": WebhookBody,
    # Value of webhooks.subscriptions (compacted; key webhook:<uid>; a tombstone deletes).
    "webhook_subscription.json": SubscriptionRecord,
    # Value of the webhook_deliveries table (record keys r/<webhook id>/<delivery id>).
    "webhook_delivery_record.json": DeliveryRecord,
}


def generate() -> dict[str, str]:
    """File name -> JSON Schema text (of what the model *serialises*, i.e. what consumers read)."""
    return {
        name: json.dumps(model.model_json_schema(mode="serialization"), indent=2, sort_keys=True)
        + "\n"
        for name, model in SCHEMAS.items()
    }


def write(directory: Path = DIRECTORY) -> list[str]:
    """Write every schema into ``directory``, delete stale ``.json`` files; names changed."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = generate()
    changed = []
    for stale in sorted(directory.glob("*.json")):
        if stale.name not in wanted:
            stale.unlink()
            changed.append(stale.name)
    for name, text in wanted.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    return changed


def main() -> None:
    changed = write()
    print(f"{len(changed)} schema file(s) changed in {DIRECTORY}: {', '.join(changed) or '-'}")


if __name__ == "__main__":
    main()
