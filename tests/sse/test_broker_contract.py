"""The broker contract, run against the in-memory broker and against a real Redis.

Whatever the backend: an event reaches every connection of its client and
nobody else, an unconnected client gets nothing stored for it (unless the
caller asked to queue), ids increase per client, a reconnect with
Last-Event-ID receives exactly what it missed, and a slow connection is
dropped without holding up the others.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack

import pytest

from sse.broker import QueueFull
from sse.events import parse_event_id
from tests.support.brokers import (
    assert_resumes_meet_live_events,
    next_frame,
    note,
    nothing_arrives,
    parse_frame,
    running_broker,
)

pytestmark = pytest.mark.anyio


async def test_event_reaches_every_connection_of_its_client_and_no_other(broker):
    async with broker.subscribe("alice", None) as first, broker.subscribe("alice", None) as second:
        async with broker.subscribe("bob", None) as bob:
            delivery = await broker.publish("alice", note("hi"))
            assert delivery.delivered == 2 and not delivery.queued
            assert re.fullmatch(r"\d+-\d+", delivery.event_id)
            for subscription in (first, second):
                received = await next_frame(subscription.connection)
                assert (received.id, received.event, received.data) == (delivery.event_id, "notification", {"message": "hi"})
            assert await nothing_arrives(bob.connection)


async def test_unconnected_client_gets_nothing_and_nothing_is_kept(broker):
    delivery = await broker.publish("ghost", note("lost?"))
    assert (delivery.event_id, delivery.delivered, delivery.queued) == (None, 0, False)
    async with broker.subscribe("ghost", "0-0") as late:
        assert late.replay == []
        assert await nothing_arrives(late.connection)


async def test_ids_increase_per_client(broker):
    async with broker.subscribe("alice", None) as subscription:
        ids = [(await broker.publish("alice", note(str(n)))).event_id for n in range(20)]
        received = [(await next_frame(subscription.connection)).id for _ in ids]
    assert received == ids
    assert [parse_event_id(i) for i in ids] == sorted({parse_event_id(i) for i in ids})


async def test_connection_count_and_totals(broker):
    assert await broker.connection_count("alice") == 0
    async with broker.subscribe("alice", None), broker.subscribe("alice", None), broker.subscribe("bob", None):
        assert await broker.connection_count("alice") == 2
        totals = await broker.totals()
        assert (totals.clients, totals.connections) == (2, 3)
    assert await broker.connection_count("alice") == 0
    totals = await broker.totals()
    assert (totals.clients, totals.connections) == (0, 0)


async def test_reconnect_with_last_event_id_replays_what_was_missed_in_order(broker):
    async with broker.subscribe("alice", None) as anchor:
        async with broker.subscribe("alice", None) as tab:
            first = await broker.publish("alice", note("one"))
            assert (await next_frame(tab.connection)).id == first.event_id
        later = [(await broker.publish("alice", note(text))).event_id for text in ("two", "three")]
        async with broker.subscribe("alice", first.event_id) as resumed:
            replayed = [parse_frame(frame) for frame in resumed.replay]
            assert [frame.data["message"] for frame in replayed] == ["two", "three"]
            assert [frame.id for frame in replayed] == later
            assert resumed.cursor == later[-1]
            newest = await broker.publish("alice", note("four"))
            assert (await next_frame(resumed.connection)).id == newest.event_id
        assert anchor.connection.close_reason is None


async def test_history_keeps_only_the_newest_history_size_events(backend):
    async with running_broker(history_size=3, **backend) as broker:
        async with broker.subscribe("alice", None) as anchor:
            ids = [(await broker.publish("alice", note(str(n)))).event_id for n in range(6)]
            async with broker.subscribe("alice", ids[0]) as resumed:
                assert [parse_frame(frame).id for frame in resumed.replay] == ids[3:]
            assert anchor.connection.close_reason is None


async def test_history_forgets_events_older_than_history_ttl(backend):
    async with running_broker(history_ttl_seconds=0.4, **backend) as broker:
        async with broker.subscribe("alice", None):
            old = await broker.publish("alice", note("old"))
            await broker.publish("alice", note("stale"))
            await asyncio.sleep(0.6)
            fresh = await broker.publish("alice", note("fresh"))
            async with broker.subscribe("alice", old.event_id) as resumed:
                assert [parse_frame(frame).id for frame in resumed.replay] == [fresh.event_id]


async def test_queued_event_waits_for_the_next_connection_once(broker):
    delivery = await broker.publish("alice", note("later"), queue_if_offline=True)
    assert delivery.queued and delivery.delivered == 0 and delivery.event_id
    async with broker.subscribe("alice", None) as next_page:
        assert [parse_frame(frame).data["message"] for frame in next_page.replay] == ["later"]
        assert next_page.cursor == delivery.event_id
    async with broker.subscribe("alice", None) as page_after:
        assert page_after.replay == []


async def test_queued_event_expires_after_queue_ttl(backend):
    async with running_broker(queue_ttl_seconds=0.3, **backend) as broker:
        await broker.publish("alice", note("too late"), queue_if_offline=True)
        await asyncio.sleep(0.5)
        async with broker.subscribe("alice", None) as subscription:
            assert subscription.replay == []


async def test_full_queue_refuses_rather_than_dropping_an_accepted_event(backend):
    async with running_broker(queue_size=2, **backend) as broker:
        await broker.publish("alice", note("1"), queue_if_offline=True)
        await broker.publish("alice", note("2"), queue_if_offline=True)
        with pytest.raises(QueueFull):
            await broker.publish("alice", note("3"), queue_if_offline=True)
        async with broker.subscribe("alice", None) as subscription:
            assert [parse_frame(frame).data["message"] for frame in subscription.replay] == ["1", "2"]


async def test_queue_and_history_together_replay_each_event_once(broker):
    async with broker.subscribe("alice", None) as before:
        seen = await broker.publish("alice", note("seen"))
        await next_frame(before.connection)
    queued = [await broker.publish("alice", note(text), queue_if_offline=True) for text in ("q1", "q2")]
    async with broker.subscribe("alice", seen.event_id) as resumed:
        assert [parse_frame(frame).id for frame in resumed.replay] == [d.event_id for d in queued]


async def test_queued_event_goes_to_a_connected_client_directly(broker):
    async with broker.subscribe("alice", None) as subscription:
        delivery = await broker.publish("alice", note("now"), queue_if_offline=True)
        assert delivery.delivered == 1 and not delivery.queued
        assert (await next_frame(subscription.connection)).id == delivery.event_id


async def test_broadcast_reaches_every_connection(broker):
    async with broker.subscribe("alice", None) as alice, broker.subscribe("bob", None) as bob:
        delivery = await broker.broadcast(note("everyone"))
        assert delivery.delivered == 2
        for subscription in (alice, bob):
            assert (await next_frame(subscription.connection)).data == {"message": "everyone"}


async def test_replay_and_live_events_meet_without_gap_or_repeat(broker):
    """Resume again and again while events keep flowing: each event once, in order."""
    await assert_resumes_meet_live_events(broker, lambda n: broker.publish("alice", note(str(n))), count=1000)


async def test_slow_connection_is_dropped_and_others_keep_receiving(backend):
    async with running_broker(connection_queue_size=4, **backend) as broker:
        async with AsyncExitStack() as stack:
            stuck = await stack.enter_async_context(broker.subscribe("alice", None))
            reader = await stack.enter_async_context(broker.subscribe("alice", None))
            ids = []
            for n in range(10):
                ids.append((await broker.publish("alice", note(str(n)))).event_id)
                assert (await next_frame(reader.connection)).id == ids[-1]
            assert stuck.connection.close_reason == "slow_client"
            assert reader.connection.close_reason is None


async def test_broker_reports_healthy(broker):
    assert await broker.is_healthy()
