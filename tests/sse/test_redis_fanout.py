"""LocalFanout, the Redis broker's hand-off to local connections: what a new
connection is sent first, from its replay and what arrived during its JOIN,
and that nothing at or below what a connection was given follows it."""

from __future__ import annotations

import pytest

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
    opening = fanout.replay_then_early_frames(connection, replay, "1002-0")
    assert opening == [frame("1000-0"), frame("1001-0"), frame("1002-0"), frame("1003-0"), HEARTBEAT_FRAME]


def fanout_and_registry() -> tuple[LocalFanout, ConnectionRegistry, RedisKeys]:
    registry = ConnectionRegistry(RegistryLimits(per_client=5, total=10, queue_size=10))
    keys = RedisKeys()
    return LocalFanout(registry, keys), registry, keys


@pytest.mark.anyio
async def test_a_frame_arriving_after_the_opening_at_or_below_the_cursor_is_not_written():
    """Commands and pub/sub use different sockets: a frame published before the JOIN
    can arrive after the opening was written. Held by the replay, it was a repeat;
    older than the cursor, it moved the browser's Last-Event-ID back."""
    fanout, registry, keys = fanout_and_registry()
    async with registry.open("visitor") as connection:
        fanout.replay_then_early_frames(connection, [("1004-0", frame("1004-0"))], "1005-0")
        for late in ("1003-0", "1004-0", "1005-0", "1006-0"):
            fanout.deliver(keys.channel("visitor"), frame(late))
        assert connection.take_pending() == [frame("1006-0")]


@pytest.mark.anyio
async def test_an_early_frame_the_tab_already_has_is_left_out_of_the_opening():
    """A tab that got event X from instance B resumes on A with Last-Event-ID X while
    A's listener is still handing X on: X reached the new stream during its JOIN."""
    fanout, registry, keys = fanout_and_registry()
    async with registry.open("visitor") as connection:
        fanout.deliver(keys.channel("visitor"), frame("1001-0"))
        fanout.deliver(keys.channel("visitor"), frame("1002-0"))
        opening = fanout.replay_then_early_frames(connection, [], "1002-0", resume_from="1001-0")
        assert opening == [frame("1002-0")]


@pytest.mark.anyio
async def test_after_a_catch_up_an_older_broadcast_still_on_its_way_is_not_written():
    fanout, registry, keys = fanout_and_registry()
    async with registry.open("visitor") as connection:
        fanout.replay_then_early_frames(connection, [], "1000-0")
        fanout.caught_up({keys.channel("visitor"): [("1005-0", frame("1005-0"))]})
        fanout.deliver_all(frame("1003-0"))
        fanout.deliver(keys.channel("visitor"), frame("1005-0"))  # the live copy of a caught-up frame
        fanout.deliver_all(frame("1006-0"))
        assert connection.take_pending() == [frame("1005-0"), frame("1006-0")]


@pytest.mark.anyio
async def test_the_cursor_a_stream_reaches_counts_live_frames_that_came_during_its_join():
    """Review reproduction: the opening ended with the JOIN's cursor although a newer live
    frame had come in during the JOIN and was written before it, so the browser's
    Last-Event-ID went back and a reconnect replayed that event a second time."""
    fanout, registry, keys = fanout_and_registry()
    async with registry.open("visitor") as connection:
        fanout.deliver(keys.channel("visitor"), frame("1009-0"))
        opening = fanout.replay_then_early_frames(connection, [], "1005-0")
        assert opening == [frame("1009-0")]
        assert fanout.reached(connection) == "1009-0"
