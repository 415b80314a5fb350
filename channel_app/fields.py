"""Field types shared by every request model: the identifiers that reach the SSE
wire or key our state, validated by the rules in sse/names.py."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from sse.names import check_client_id, check_event_name, check_topic

# orjson parses 1024 levels of nesting but encodes at most 254: a payload we accept
# must be one we can send on, so the limit is checked when the request is validated.
MAX_PAYLOAD_DEPTH = 32


def check_payload(value: Any) -> Any:
    """`value` unchanged if its objects and arrays nest at most MAX_PAYLOAD_DEPTH deep
    and none of its numbers lost digits when parsed."""
    _check_number(value)
    containers = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while containers:
        depth += 1
        if depth > MAX_PAYLOAD_DEPTH:
            raise ValueError(f"objects and arrays nested more than {MAX_PAYLOAD_DEPTH} levels deep")
        children: list[Any] = []
        for container in containers:
            children.extend(container.values() if isinstance(container, dict) else container)
        for child in children:
            if type(child) is float:
                _check_number(child)
        containers = [child for child in children if isinstance(child, (dict, list))]
    return value


def _check_number(value: Any) -> None:
    """JSON parsing turns integers past 64 bits into floats: 18446744073709551617 would
    go out as 1.8446744073709552e+19, another number. Every number that large is refused
    (a float written as 1e20 with it: after parsing the two cannot be told apart)."""
    if type(value) is float and value.is_integer() and not -(2**63) < value < 2**64:
        raise ValueError("a whole number beyond 64 bits would lose digits; send it as text")


def not_a_float(value: Any) -> Any:
    """Ids may come as numbers and are read as their text, but only whole numbers:
    JSON parsing turns integers past 64 bits into floats (123456789012345678901234567890
    would become client "1.2345678901234568e+29"), and no id is a fraction."""
    if isinstance(value, float):
        raise ValueError("an id sent as a number must be a whole number below 2^64; send larger ones as text")
    return value


ClientId = Annotated[str, BeforeValidator(not_a_float), AfterValidator(check_client_id)]
# An id from Channel's context (channel, user, chat), read the same way.
ContextId = Annotated[str, BeforeValidator(not_a_float)]
TopicName = Annotated[str, AfterValidator(check_topic)]
EventName = Annotated[str, AfterValidator(check_event_name)]
EventPayload = Annotated[Any, AfterValidator(check_payload)]
