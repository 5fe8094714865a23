"""Resend webhooks (delivered through Svix, Standard Webhooks signatures).

``{type, created_at, data{email_id, from, to[], subject, bounce{type, subType, message},
click{link}, tags}}``. Types ``email.sent``, ``email.delivered``,
``email.delivery_delayed``, ``email.bounced``, ``email.complained``, ``email.opened``,
``email.clicked``, ``email.failed``, ``email.suppressed``, ``email.scheduled``,
``email.received``, plus ``contact.*`` and ``domain.*`` events that carry no delivery
outcome. The payload has no event id: the ``webhook-id`` (``svix-id``) header is the
delivery's id, stable across retries.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ResendBounce(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # "Permanent", "Transient" or "Undetermined" (the SES classes underneath).
    type: str | None = None
    sub_type: str | None = Field(default=None, alias="subType")
    message: str | None = None


class ResendClick(BaseModel):
    model_config = ConfigDict(extra="ignore")

    link: str | None = None


class ResendTag(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    name: str
    value: str


class ResendData(BaseModel):
    """``data`` of an ``email.*`` event. Lenient: contact/domain events share the model."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    email_id: str | None = None
    to: list[str] = Field(default_factory=list)
    from_: str | None = Field(default=None, alias="from")
    subject: str | None = None
    bounce: ResendBounce | None = None
    click: ResendClick | None = None
    # The webhook shows tags as an object; the send API takes a list of {name, value}.
    tags: dict[str, str] | list[ResendTag] | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    def tag(self, name: str) -> str | None:
        if isinstance(self.tags, dict):
            return self.tags.get(name)
        for tag in self.tags or ():
            if tag.name == name:
                return tag.value
        return None


class ResendEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    created_at: datetime | None = None
    data: ResendData = Field(default_factory=ResendData)
