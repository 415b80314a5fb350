"""Event ids from one sequence, and a bounded, expiring history for replay.

A stream is the sequence of events addressed to one client, or to one topic
(key `topic_stream(name)`); the broadcast stream uses the key `*` and is not
stored. Ids are `<ms>-<seq>` like Redis stream ids, and they are issued from
ONE sequence for every stream of this broker, strictly increasing even if the
clock steps back. So ids also increase per stream, and a connection that
listens to its client stream plus some topics, whose browser keeps one
Last-Event-ID, can be replayed exactly: every stream's entries after that
id, merged by id (sse/replay.py). The Redis broker issues its ids the same way
(sse/redis_scripts.py, `next_id`).

History keeps the last `size` frames of each stream for `ttl_seconds`.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from sse.events import Event, encode_frame, format_event_id, parse_event_id

BROADCAST_STREAM = "*"
TOPIC_STREAM_MARK = "#"  # client ids never start with '#', so the two key spaces never meet


def topic_stream(topic: str) -> str:
    return TOPIC_STREAM_MARK + topic


@dataclass
class _Stream:
    last_id: tuple[int, int] = (0, -1)
    touched_at: float = 0.0
    entries: deque[tuple[tuple[int, int], float, bytes]] = field(default_factory=deque)


class MemoryHistory:
    def __init__(self, size: int, ttl_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._size = size
        self._ttl = ttl_seconds
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        self._last_id: tuple[int, int] = (0, -1)  # the newest id issued, on any stream

    def append(self, stream_key: str, event: Event) -> tuple[str, bytes]:
        """Assign the next id, encode the frame once, and keep it for replay."""
        event_id, frame = self.assign(stream_key, event)
        self.keep(stream_key, frame)
        return event_id, frame

    def keep(self, stream_key: str, frame: bytes) -> None:
        """Keep for replay the frame just assigned on this stream (call it with no
        await since `assign`, so that frame is still the stream's newest)."""
        stream = self._streams[stream_key]
        if self._size and stream_key != BROADCAST_STREAM:
            stream.entries.append((stream.last_id, stream.touched_at, frame))
            if len(stream.entries) > self._size:
                stream.entries.popleft()

    def assign(self, stream_key: str, event: Event) -> tuple[str, bytes]:
        """Assign the next id and encode the frame, without keeping it (queued events)."""
        now = self._clock()
        stream = self._streams.setdefault(stream_key, _Stream())
        last_millis, last_sequence = self._last_id
        millis = max(int(now * 1000), last_millis)
        sequence = last_sequence + 1 if millis == last_millis else 0
        self._last_id = stream.last_id = (millis, sequence)
        stream.touched_at = now
        event_id = format_event_id(millis, sequence)
        return event_id, encode_frame(event_id, event.name, event.encode_data())

    def head(self, stream_key: str) -> str:
        stream = self._streams.get(stream_key)
        return format_event_id(*stream.last_id) if stream and stream.last_id[1] >= 0 else "0-0"

    def since(self, stream_key: str, last_event_id: str) -> list[bytes]:
        """Frames after `last_event_id`, oldest first, within the age limit."""
        return [frame for _, frame in self.entries_since(stream_key, last_event_id)]

    def entries_since(self, stream_key: str, last_event_id: str) -> list[tuple[str, bytes]]:
        """(id, frame) pairs after `last_event_id`, oldest first, within the age limit."""
        stream = self._streams.get(stream_key)
        if stream is None:
            return []
        after = parse_event_id(last_event_id)
        oldest = self._clock() - self._ttl
        return [
            (format_event_id(*entry_id), frame)
            for entry_id, stored_at, frame in stream.entries
            if entry_id > after and stored_at >= oldest
        ]

    def prune(self) -> None:
        """Forget expired entries, and streams idle for longer than the age limit
        (the id sequence itself is never forgotten)."""
        oldest = self._clock() - self._ttl
        for key, stream in list(self._streams.items()):
            while stream.entries and stream.entries[0][1] < oldest:
                stream.entries.popleft()
            if not stream.entries and stream.touched_at < oldest:
                del self._streams[key]
