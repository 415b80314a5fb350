"""Handing the Redis broker's pub/sub frames to this instance's connections, each once and in id order.

A frame on `cp:client:<c>` goes to client c's local connections, one on
`cp:topic:<t>` to topic t's (sse/registry.py), one on the broadcast channel to
all of them. Every event id comes from one sequence, and live frames arrive on
this instance's one pub/sub socket in the order the publishing scripts ran,
so a connection's frames normally arrive in id order. Three things break
that, because commands and pub/sub use different sockets:

- a frame published before a connection's JOIN can arrive after its opening
  (replay and connected cursor) was written;
- a listener that lags can hand a resuming tab an event it already has;
- after the listener reconnects, the catch-up (read from history) can offer
  newer frames than broadcasts still on their way.

So each joined connection has a floor (`_sent_up_to`): the newest id it was
given, starting at its connected cursor. A frame at or below the floor is not
offered: it is a repeat, or older than what the browser already holds, and
written it would move the browser's Last-Event-ID back (the next reconnect
would then replay events it has). The one thing this can drop is a broadcast
that arrives after a newer event (broadcasts are live only and never
replayed). The newest id delivered per channel (`_delivered`, or the head when
the channel was joined, `_joined_at`) is where a catch-up resumes.
"""

from __future__ import annotations

from typing import Iterable

from sse.events import format_event_id, parse_event_id
from sse.redis_scripts import RedisKeys
from sse.registry import Connection, ConnectionRegistry
from sse.replay import IdentifiedFrame, frame_event_id, merge_replay

EventKey = tuple[int, int]  # a parsed event id


class LocalFanout:
    def __init__(self, registry: ConnectionRegistry, keys: RedisKeys) -> None:
        self._registry = registry
        self._keys = keys
        self._delivered: dict[str, str] = {}
        self._joined_at: dict[str, str] = {}
        self._sent_up_to: dict[str, EventKey] = {}  # connection id -> newest event id it was given

    def deliver(self, channel: str, frame: bytes) -> None:
        """A live frame from a client or topic channel."""
        connections = self._listeners(channel)
        event_id = frame_event_id(frame)
        if event_id is None or not connections:
            return
        self._delivered[channel] = event_id
        self._offer_above_floor(connections, parse_event_id(event_id), frame)

    def deliver_all(self, frame: bytes) -> None:
        """A live frame from the broadcast channel."""
        event_id = frame_event_id(frame)
        if event_id is not None:
            self._offer_above_floor(self._registry.connections(), parse_event_id(event_id), frame)

    def _offer_above_floor(self, connections: Iterable[Connection], key: EventKey, frame: bytes) -> None:
        sent_up_to = self._sent_up_to
        for connection in connections:
            floor = sent_up_to.get(connection.id)
            if floor is None:
                connection.offer(frame)  # still joining: its opening merges and orders this frame
            elif key > floor and connection.offer(frame):
                sent_up_to[connection.id] = key

    def channels_of(self, connection: Connection) -> list[str]:
        return [self._keys.channel(connection.client_id), *map(self._keys.topic_channel, connection.topics)]

    def joined(self, connection: Connection, cursor: str) -> None:
        for channel in self.channels_of(connection):
            self._joined_at.setdefault(channel, cursor)

    def replay_then_early_frames(
        self, connection: Connection, replay: list[IdentifiedFrame], cursor: str, resume_from: str | None = None
    ) -> list[bytes]:
        """The replay and the live frames that reached the connection while its JOIN was
        in flight, minus those the replay holds (same bytes) and those at or below the
        browser's Last-Event-ID (`resume_from`: a lagging listener can still be handing
        on an event the tab got from another instance), in id order: a broadcast (never
        replayed) that arrived meanwhile may be older than replayed events, and written
        after them it would move the browser's Last-Event-ID back. From here on the
        connection's floor holds: nothing at or below the newest of these and its
        cursor is offered to it."""
        ordered = list(replay)
        replayed = {frame for _, frame in replay}
        already_held = parse_event_id(resume_from) if resume_from else None
        without_id: list[bytes] = []
        if connection.close_reason is None:
            for frame in connection.take_pending():
                if frame in replayed:
                    continue
                if (event_id := frame_event_id(frame)) is None:
                    without_id.append(frame)  # a heartbeat
                elif already_held is None or parse_event_id(event_id) > already_held:
                    ordered.append((event_id, frame))
        keyed = sorted(((parse_event_id(event_id), frame) for event_id, frame in ordered), key=lambda item: item[0])
        newest = parse_event_id(cursor)
        if keyed and keyed[-1][0] > newest:
            newest = keyed[-1][0]
        self._sent_up_to[connection.id] = newest
        return [frame for _, frame in keyed] + without_id

    def reached(self, connection: Connection) -> str:
        """The newest event id the connection's opening carries or its cursor names."""
        return format_event_id(*self._sent_up_to[connection.id])

    def has_opened(self, connection: Connection) -> bool:
        """Whether the connection has joined and not yet begun to close: only such a
        connection's presence is refreshed. Refreshed while still joining, it was counted
        twice against the client's cap at its JOIN, and took the client's queue meant
        for that JOIN; while closing, it came back as a listener after its leave
        (review reproductions)."""
        return connection.id in self._sent_up_to

    def closed(self, connection: Connection) -> None:
        self._sent_up_to.pop(connection.id, None)

    def forget(self, channel: str) -> None:
        """The channel's last local listener is gone."""
        self._delivered.pop(channel, None)
        self._joined_at.pop(channel, None)

    def resume_point(self, channel: str) -> str | None:
        return self._delivered.get(channel) or self._joined_at.get(channel)

    def caught_up(self, missed: dict[str, list[IdentifiedFrame]]) -> None:
        """Offer each connection the missed frames of its client and topics, merged by
        id; live copies of them that are still on their way fall below its floor."""
        for channel, frames in missed.items():
            self._delivered[channel] = frames[-1][0]
        for connection in list(self._registry.connections()):
            owed = [missed[channel] for channel in self.channels_of(connection) if channel in missed]
            for event_id, frame in _merged(owed):
                self._offer_above_floor((connection,), parse_event_id(event_id), frame)

    def _listeners(self, channel: str) -> list[Connection]:
        client_id = self._keys.client_of(channel)
        if client_id is not None:
            return self._registry.connections_of(client_id)
        topic = self._keys.topic_of(channel)
        return self._registry.topic_connections(topic) if topic is not None else []


def _merged(owed: list[list[IdentifiedFrame]]) -> Iterable[IdentifiedFrame]:
    return merge_replay(*owed) if len(owed) > 1 else (owed[0] if owed else ())
