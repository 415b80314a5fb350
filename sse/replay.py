"""Assembling what a (re)connecting client is owed, the same way in both brokers.

A replay is the union of the history after the connection's Last-Event-ID,
from its client stream and from each topic it subscribes to, and the events
queued for the client while it was offline. Every stream's ids come from the
broker's one sequence (sse/history.py, sse/redis_scripts.py), so merging them
by id gives each event once, oldest first, in the order they were published;
and since live frames also arrive in that order, the browser's one
Last-Event-ID says exactly where it stopped on every stream.
"""

from __future__ import annotations

from typing import Iterable

from sse.events import parse_event_id

IdentifiedFrame = tuple[str, bytes]


def frame_event_id(frame: bytes) -> str | None:
    """The id of an encoded event frame (`id: <ms>-<seq>` is its first line)."""
    if not frame.startswith(b"id: "):
        return None
    return frame[4 : frame.index(b"\n")].decode()


def merge_replay(*sources: Iterable[IdentifiedFrame]) -> list[IdentifiedFrame]:
    by_id: dict[str, bytes] = {}
    for source in sources:
        for event_id, frame in source:
            by_id.setdefault(event_id, frame)
    return sorted(by_id.items(), key=lambda item: parse_event_id(item[0]))


def newest_id(head: str, replay: list[IdentifiedFrame]) -> str:
    """The later of the stream head and the last replayed id: the cursor a
    connection has reached once its replay is sent."""
    if replay and parse_event_id(replay[-1][0]) > parse_event_id(head):
        return replay[-1][0]
    return head
