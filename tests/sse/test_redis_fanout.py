"""LocalFanout, the Redis broker's hand-off to local connections: what a new
connection is sent first, from its replay and what arrived during its JOIN."""

from __future__ import annotations

from sse.events import HEARTBEAT_FRAME, encode_frame
from sse.redis_fanout import LocalFanout
from sse.redis_scripts import RedisKeys
from sse.registry import Connection, ConnectionRegistry, RegistryLimits


def frame(event_id: str) -> bytes:
    return encode_frame(event_id, "notification", b"{}")


def test_opening_frames_are_in_id_order_even_when_a_broadcast_arrived_during_the_join():
    """A broadcast is never replayed; one that reached the stream while its JOIN was in
    flight may be older than replayed events, and written after them it would move the
    browser's Last-Event-ID back, so the next reconnect replays events it already has."""
    fanout = LocalFanout(ConnectionRegistry(RegistryLimits(per_client=5, total=10, queue_size=10)), RedisKeys())
    connection = Connection("c1", "visitor", queue_size=10)
    replay = [("1000-0", frame("1000-0")), ("1002-0", frame("1002-0"))]
    for early in (frame("1001-0"), frame("1002-0"), HEARTBEAT_FRAME, frame("1003-0")):
        connection.offer(early)
    opening = fanout.replay_then_early_frames(connection, replay)
    assert opening == [frame("1000-0"), frame("1001-0"), frame("1002-0"), frame("1003-0"), HEARTBEAT_FRAME]
