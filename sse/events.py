"""Events and their SSE wire form.

An `Event` is what the application publishes; a *frame* is the exact bytes a
browser receives. Frames are encoded once per publish and shared by every
recipient, so the write loop only moves bytes.

Event ids have the form `<milliseconds>-<sequence>` (the same shape as Redis
stream ids), increase per stream, and compare as integer pairs.
"""

from __future__ import annotations

import time

from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from sse.names import check_event_name

HEARTBEAT_FRAME = b": heartbeat\n\n"


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: Mapping[str, Any]

    def __post_init__(self) -> None:
        check_event_name(self.name)

    def encode_data(self) -> bytes:
        # orjson never emits a raw newline and leaves non-ASCII text as UTF-8,
        # so the payload always fits on one `data:` line and Korean stays readable.
        return orjson.dumps(self.data)


def encode_frame(event_id: str, name: str, data_json: bytes) -> bytes:
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), name.encode(), data_json)


def encode_unidentified_frame(name: str, data_json: bytes) -> bytes:
    """A frame without `id:`: the browser's Last-Event-ID stays as it was."""
    return b"event: %s\ndata: %s\n\n" % (name.encode(), data_json)


def encode_retry(retry_ms: int) -> bytes:
    return b"retry: %d\n\n" % retry_ms


def parse_event_id(event_id: str) -> tuple[int, int]:
    millis, _, sequence = event_id.partition("-")
    return int(millis), int(sequence)


FUTURE_ID_SLACK_MS = 60_000  # clocks of instances and Redis may differ this much


def is_future_id(event_id: str) -> bool:
    """Whether `event_id` (well formed) names a time no broker here has reached: a client
    resuming from it saw a clock step or lost Redis state. Judged by the clock, since
    broadcasts, never kept in history, may be newer than any history head."""
    return parse_event_id(event_id)[0] > time.time() * 1000 + FUTURE_ID_SLACK_MS


def format_event_id(millis: int, sequence: int) -> str:
    return f"{millis}-{sequence}"
