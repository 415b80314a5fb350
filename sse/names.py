"""Validation of the identifiers that reach the SSE wire or key our state.

An event name or id containing CR, LF or NUL would break SSE framing and let a
caller inject events, so only a conservative character set is accepted.
"""

from __future__ import annotations

import re

EVENT_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}")
EVENT_ID_PATTERN = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
TOPIC_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


class InvalidName(ValueError):
    pass


def check_event_name(name: str) -> str:
    if not isinstance(name, str) or not EVENT_NAME_PATTERN.fullmatch(name):
        raise InvalidName("event names are 1-64 characters: a letter, then letters, digits, '_', '.', ':', '-'")
    return name


def check_client_id(client_id: str) -> str:
    if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise InvalidName("clientId is 1-128 characters: letters, digits, '_', '.', ':', '@', '+', '-'")
    return client_id


def check_topic(topic: str) -> str:
    """Topic names share the event-name alphabet (they key Redis channels and
    history streams, and appear in logs), may start with a digit, and never
    contain '*', which the `topics` claim uses for prefixes."""
    if not isinstance(topic, str) or not TOPIC_PATTERN.fullmatch(topic):
        raise InvalidName(f"topic names are 1-64 characters: letters, digits, '_', '.', ':', '-' (got {str(topic)[:70]!r})")
    return topic


def is_event_id(text: str) -> bool:
    return bool(EVENT_ID_PATTERN.fullmatch(text))
