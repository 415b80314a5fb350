"""Arguments of each function method (`params.input`), with Channel's names.

Wire names (`clientId`) are aliases of snake_case fields; unknown fields are
ignored. ALF fills a command's parameters as text (channel_app/native/commands.py)
and sends the optional ones it leaves out as empty strings: so a blank (or
all-space) value is taken as absent, `"true"`/`"false"` as a bool, and digits as
a number; a number where text is expected (a numeric clientId) is read as its text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator

from channel_app.fields import ClientId, EventName, TopicName, check_payload
from sse.names import InvalidName


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_strip_whitespace=True, coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {name: value for name, value in data.items() if not (isinstance(value, str) and not value.strip())}
        return data


def _bool_text(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


# Strict otherwise: 1, "yes" or "on" for a bool is more likely a mistake than a wish.
CommandBool = Annotated[StrictBool, BeforeValidator(_bool_text)]


class ClientTarget(_Input):
    client_id: ClientId | None = Field(None, alias="clientId")


MAX_WAIT_FOR_ACK_MS = 5000


class AckWait(_Input):
    """`waitForAck`: milliseconds to wait for the browser's acknowledgement; larger
    values are capped at MAX_WAIT_FOR_ACK_MS so a call always answers promptly."""

    wait_for_ack: int | None = Field(None, alias="waitForAck", ge=0)

    @field_validator("wait_for_ack", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("waitForAck is a number of milliseconds")
        return value

    @field_validator("wait_for_ack")
    @classmethod
    def _cap_wait(cls, value: int | None) -> int | None:
        return None if value is None else min(value, MAX_WAIT_FOR_ACK_MS)


class QueueableTarget(ClientTarget):
    """`queueIfOffline: true` keeps the event for the client's next connection
    (QUEUE_TTL_SECONDS) when it has none now; absent: QUEUE_IF_OFFLINE_DEFAULT."""

    queue_if_offline: CommandBool | None = Field(None, alias="queueIfOffline")


class TopicOption(_Input):
    """`topic` in place of `clientId`: every stream subscribed to it (broadcast
    rules apply: ALLOW_BROADCAST). Not with clientId, queueIfOffline or waitForAck."""

    topic: TopicName | None = None

    @model_validator(mode="after")
    def _topic_alone(self) -> "TopicOption":
        if self.topic is None:
            return self
        clashes = [name for attribute, name in _CLIENT_ONLY if _given(getattr(self, attribute, None))]
        if clashes:
            raise ValueError(f"topic cannot be combined with {', '.join(clashes)}")
        return self


_CLIENT_ONLY = (("client_id", "clientId"), ("queue_if_offline", "queueIfOffline"), ("wait_for_ack", "waitForAck"))


def _given(value: Any) -> bool:
    """queueIfOffline false is as good as absent; waitForAck 0 is a wait (of 0 ms), though 0 == False."""
    return value is not None and value is not False


class RedirectInput(QueueableTarget, AckWait):
    url: str = Field(min_length=1, max_length=4096)


class NotifyInput(QueueableTarget, TopicOption):
    message: str = Field(min_length=1, max_length=2000)
    title: str | None = Field(None, max_length=200)
    level: Literal["info", "success", "warning", "error"] = "info"


class SendEventInput(QueueableTarget, AckWait, TopicOption):
    action: EventName
    payload: Any = None

    @field_validator("payload")
    @classmethod
    def _json_text_becomes_json(cls, value: Any) -> Any:
        """ALF passes command parameters as strings, so a payload that is the text of
        a JSON object or array is delivered as that object; other text stays text."""
        if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
        return check_payload(value)


class BroadcastInput(_Input):
    message: str = Field(min_length=1, max_length=2000)
    title: str | None = Field(None, max_length=200)


class ClientStatusInput(ClientTarget):
    pass


def describe_validation_error(error: ValidationError) -> str:
    """One readable line, naming fields as Channel spells them."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in item["loc"]) or "input"
        reason = str(item["msg"])
        context_error = (item.get("ctx") or {}).get("error")
        if isinstance(context_error, InvalidName):
            reason = str(context_error)
        parts.append(f"{field}: {reason}")
    return "; ".join(parts)
