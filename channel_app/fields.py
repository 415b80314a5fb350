"""Field types shared by every request model: the identifiers that reach the SSE
wire or key our state, validated by the rules in sse/names.py."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from sse.names import check_client_id, check_event_name, check_topic


def _blank_is_absent(value: Any) -> Any:
    """ALF sends optional command parameters as empty strings."""
    return None if value == "" else value


ClientId = Annotated[str, AfterValidator(check_client_id)]
TopicName = Annotated[str, AfterValidator(check_topic)]
EventName = Annotated[str, AfterValidator(check_event_name)]
OptionalClientId = Annotated[ClientId | None, BeforeValidator(_blank_is_absent)]
OptionalTopicName = Annotated[TopicName | None, BeforeValidator(_blank_is_absent)]
