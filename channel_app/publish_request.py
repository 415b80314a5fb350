"""The body of `POST /api/publish`, validated (pydantic), with the wire names.

    {"target": {"clientId": "user-42"} | {"topic": "promo"} | {"all": true},
     "event": "notification", "data": {...},          # one event, or
     "events": [{"event": "chunk", "data": {...}}, ...],  # an ordered sequence (at most 100)
     "id": "order-7-shipped",                          # optional idempotency key
     "queueIfOffline": true}                           # clientId targets only

Event names follow the same rules as everywhere (sse/names.py); `connected` is
the stream's own and is refused. The widget's own `notification` and `custom`
events need object data: the widget reads their fields, and on a topic the
`topic` field it gains tells the widget not to acknowledge it. (A `redirect`
needs `data.url`, checked with the allow-list: publish_api.py.)
Unknown fields are refused, so a typo is an error rather than silently ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator, model_validator

from channel_app.fields import ClientId, EventName, EventPayload, TopicName

MAX_SEQUENCE_EVENTS = 100
RESERVED_EVENTS = frozenset({"connected", "replayed"})  # the stream's own (channel_app/stream.py)
OBJECT_DATA_EVENTS = frozenset({"notification", "custom"})
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Target(_Strict):
    client_id: ClientId | None = Field(None, alias="clientId")
    topic: TopicName | None = None
    all: Literal[True] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Target":
        if sum(value is not None for value in (self.client_id, self.topic, self.all)) != 1:
            raise ValueError("target needs exactly one of clientId, topic, all: true")
        return self

    @property
    def kind(self) -> str:
        return "client" if self.client_id is not None else ("topic" if self.topic is not None else "all")


def _not_reserved(value: str) -> str:
    if value in RESERVED_EVENTS:
        raise ValueError(f"event name {value!r} is reserved for the stream itself")
    return value


PublishableEventName = Annotated[EventName, AfterValidator(_not_reserved)]


def _null_is_absent(value: Any) -> Any:
    # As for a single event's `data`: the same input is delivered one way (review reproduction).
    return {} if value is None else value


class EventSpec(_Strict):
    event: PublishableEventName
    data: Annotated[EventPayload, BeforeValidator(_null_is_absent)] = Field(default_factory=dict)


class PublishRequest(_Strict):
    target: Target
    event: PublishableEventName | None = None
    data: EventPayload = None
    events: list[EventSpec] | None = Field(None, min_length=1, max_length=MAX_SEQUENCE_EVENTS)
    id: str | None = None
    queue_if_offline: StrictBool | None = Field(None, alias="queueIfOffline")

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str | None) -> str | None:
        if value is not None and not REQUEST_ID_PATTERN.fullmatch(value):
            raise ValueError("id is 1-128 characters: letters, digits, '_', '.', ':', '-'")
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> "PublishRequest":
        if (self.event is None) == (self.events is None):
            raise ValueError("give either event (with data) or events, not both")
        if self.events is not None and self.data is not None:
            raise ValueError("data belongs inside each item of events")
        if self.queue_if_offline is not None and self.target.client_id is None:
            raise ValueError("queueIfOffline applies to clientId targets only")
        for spec in self.sequence():
            if spec.event in OBJECT_DATA_EVENTS and not isinstance(spec.data, dict):
                raise ValueError(f"a {spec.event} event needs object data: the widget reads its fields")
        return self

    def sequence(self) -> list[EventSpec]:
        if self.events is not None:
            return self.events
        return [EventSpec(event=self.event or "", data={} if self.data is None else self.data)]
