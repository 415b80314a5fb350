"""Handing the Redis broker's pub/sub frames to this instance's connections, each once.

A frame on `cp:client:<c>` goes to client c's local connections, one on
`cp:topic:<t>` to topic t's (sse/registry.py). Two kinds of repeat are
dropped here, both by comparing bytes (a frame carries its id, so equal bytes
mean the same event):

- replay vs live, per new connection (`_replayed`): frames published before
  its JOIN may reach it live after its replay already held them;
- catch-up vs live, per channel (`_caught_up`): after the listener reconnects,
  frames the catch-up sent may still arrive live.

Both sets are dropped at the first live frame they do not hold: this
instance's one pub/sub socket receives every channel's messages in the order
the publishing scripts ran, which is id order (one id sequence), so once a
later frame arrived no earlier one can follow, on any of a connection's
streams. The newest id delivered per channel (`_delivered`, or the head when
the channel was joined, `_joined_at`) is where a catch-up resumes.
"""

from __future__ import annotations

from typing import Iterable

from sse.events import parse_event_id
from sse.redis_scripts import RedisKeys
from sse.registry import Connection, ConnectionRegistry
from sse.replay import IdentifiedFrame, frame_event_id, merge_replay


class LocalFanout:
    def __init__(self, registry: ConnectionRegistry, keys: RedisKeys) -> None:
        self._registry = registry
        self._keys = keys
        self._delivered: dict[str, str] = {}
        self._caught_up: dict[str, set[bytes]] = {}
        self._joined_at: dict[str, str] = {}
        self._replayed: dict[str, set[bytes]] = {}

    def deliver(self, channel: str, frame: bytes) -> None:
        """A live frame from a client or topic channel."""
        connections = self._listeners(channel)
        event_id = frame_event_id(frame)
        if event_id is None or not connections:
            return
        caught_up = self._caught_up.get(channel)
        if caught_up is not None:
            if frame in caught_up:
                caught_up.discard(frame)  # already sent by the catch-up after reconnecting
                return
            del self._caught_up[channel]
        self._delivered[channel] = event_id
        for connection in connections:
            replayed = self._replayed.get(connection.id)
            if replayed is not None:
                if frame in replayed:
                    replayed.discard(frame)
                    continue
                del self._replayed[connection.id]  # past the replay: no repeat can follow
            connection.offer(frame)

    def channels_of(self, connection: Connection) -> list[str]:
        return [self._keys.channel(connection.client_id), *map(self._keys.topic_channel, connection.topics)]

    def joined(self, connection: Connection, cursor: str) -> None:
        for channel in self.channels_of(connection):
            self._joined_at.setdefault(channel, cursor)

    def replay_then_early_frames(self, connection: Connection, replay: list[IdentifiedFrame]) -> list[bytes]:
        """The replay and the live frames that reached the connection while its JOIN was
        in flight, minus those the replay holds (same bytes), in id order: a broadcast
        (never replayed) that arrived meanwhile may be older than replayed events, and
        written after them it would move the browser's Last-Event-ID back. Frames
        published before the JOIN can also arrive after it (pub/sub and commands use
        different sockets), so the replayed frames not seen yet are remembered and
        skipped in `deliver`."""
        ordered = list(replay)
        replayed = {frame for _, frame in replay}
        unmatched = set(replayed)
        without_id: list[bytes] = []
        if connection.close_reason is None:
            for frame in connection.take_pending():
                if frame in unmatched:
                    unmatched.discard(frame)
                elif (event_id := frame_event_id(frame)) is None:
                    without_id.append(frame)  # a heartbeat
                elif frame not in replayed:
                    ordered.append((event_id, frame))
        if unmatched:
            self._replayed[connection.id] = unmatched
        ordered.sort(key=lambda item: parse_event_id(item[0]))
        return [frame for _, frame in ordered] + without_id

    def closed(self, connection: Connection) -> None:
        self._replayed.pop(connection.id, None)

    def forget(self, channel: str) -> None:
        """The channel's last local listener is gone."""
        self._delivered.pop(channel, None)
        self._caught_up.pop(channel, None)
        self._joined_at.pop(channel, None)

    def resume_point(self, channel: str) -> str | None:
        return self._delivered.get(channel) or self._joined_at.get(channel)

    def caught_up(self, missed: dict[str, list[IdentifiedFrame]]) -> None:
        """Offer each connection the missed frames of its client and topics, merged by id."""
        for channel, frames in missed.items():
            self._delivered[channel] = frames[-1][0]
            self._caught_up[channel] = {frame for _, frame in frames}
        for connection in list(self._registry.connections()):
            owed = [missed[channel] for channel in self.channels_of(connection) if channel in missed]
            for _, frame in _merged(owed):
                connection.offer(frame)

    def _listeners(self, channel: str) -> list[Connection]:
        client_id = self._keys.client_of(channel)
        if client_id is not None:
            return self._registry.connections_of(client_id)
        topic = self._keys.topic_of(channel)
        return self._registry.topic_connections(topic) if topic is not None else []


def _merged(owed: list[list[IdentifiedFrame]]) -> Iterable[IdentifiedFrame]:
    return merge_replay(*owed) if len(owed) > 1 else (owed[0] if owed else ())
