"""Topics, against the in-memory broker and a real Redis (same contract).

A connection listens to its client stream plus some topics, and its browser
keeps ONE Last-Event-ID: ids come from one sequence for every stream, so a
reconnect replays, from every stream it listens to, exactly what it missed,
merged in publish order.
"""

from __future__ import annotations

import pytest

from sse.broker import Delivery
from sse.events import parse_event_id
from tests.support.brokers import assert_resumes_meet_live_events, next_frame, note, nothing_arrives, parse_frame

pytestmark = pytest.mark.anyio


async def test_topic_event_reaches_every_subscriber_and_no_one_else(broker):
    async with broker.subscribe("alice", None, ("promo",)) as alice, broker.subscribe("bob", None, ("promo", "orders")) as bob:
        async with broker.subscribe("carol", None, ("orders",)) as carol, broker.subscribe("dave", None) as dave:
            delivery = await broker.publish_topic("promo", note("sale"))
            assert (delivery.delivered, delivery.queued) == (2, False)
            for subscription in (alice, bob):
                received = await next_frame(subscription.connection)
                assert (received.id, received.data) == (delivery.event_id, {"message": "sale"})
            assert await nothing_arrives(carol.connection)
            assert await nothing_arrives(dave.connection)


async def test_topic_with_no_subscriber_answers_zero_and_keeps_nothing(broker):
    delivery = await broker.publish_topic("promo", note("nobody"))
    assert (delivery.event_id, delivery.delivered) == (None, 0)
    async with broker.subscribe("alice", "0-0", ("promo",)) as late:
        assert late.replay == []


async def test_topics_never_count_as_clients(broker):
    async with broker.subscribe("alice", None, ("promo", "orders")), broker.subscribe("bob", None, ("promo",)):
        totals = await broker.totals()
        assert (totals.clients, totals.connections) == (2, 2)
        assert await broker.connection_count("promo") == 0
        delivered = (await broker.broadcast(note("once each"))).delivered
        assert delivered == 2


async def test_ids_come_from_one_sequence_across_client_and_topic_streams(broker):
    async with broker.subscribe("alice", None, ("promo",)), broker.subscribe("bob", None, ("orders",)):
        ids = []
        for n in range(12):
            if n % 3 == 0:
                ids.append((await broker.publish("alice", note(str(n)))).event_id)
            elif n % 3 == 1:
                ids.append((await broker.publish_topic("promo", note(str(n)))).event_id)
            else:
                ids.append((await broker.publish_topic("orders", note(str(n)))).event_id)
        ids.append((await broker.broadcast(note("all"))).event_id)
    parsed = [parse_event_id(event_id) for event_id in ids]
    assert parsed == sorted(set(parsed))


async def test_last_event_id_replays_client_stream_and_topics_exactly_in_order(broker):
    topics = ("promo", "orders")
    async with broker.subscribe("alice", None, topics) as first, broker.subscribe("other", None, ("elsewhere",)):
        published = []  # (stream, id) in publish order
        for n in range(15):
            stream = ("alice", "promo", "orders", "elsewhere")[n % 4]
            if stream == "alice":
                delivery = await broker.publish("alice", note(f"{stream}-{n}"))
            else:
                delivery = await broker.publish_topic(stream, note(f"{stream}-{n}"))
            published.append((stream, delivery.event_id))
        mine = [event_id for stream, event_id in published if stream != "elsewhere"]
        live = [(await next_frame(first.connection)).id for _ in mine]
        assert live == mine
        for cut in (0, 4, 9):
            async with broker.subscribe("alice", mine[cut], topics) as resumed:
                replayed = [parse_frame(frame).id for frame in resumed.replay]
                assert replayed == mine[cut + 1 :]
                assert resumed.cursor == mine[-1]
        async with broker.subscribe("alice", mine[3], ("promo",)) as fewer:
            after = parse_event_id(mine[3])
            expected = [i for stream, i in published if stream in ("alice", "promo") and parse_event_id(i) > after]
            assert [parse_frame(frame).id for frame in fewer.replay] == expected


async def test_queued_client_events_and_topic_history_replay_merged_by_id(broker):
    async with broker.subscribe("watcher", None, ("promo",)):
        async with broker.subscribe("alice", None, ("promo",)) as before:
            seen = await broker.publish("alice", note("seen"))
            await next_frame(before.connection)
        mixed = [
            await broker.publish("alice", note("q1"), queue_if_offline=True),
            await broker.publish_topic("promo", note("t1")),
            await broker.publish("alice", note("q2"), queue_if_offline=True),
            await broker.publish_topic("promo", note("t2")),
        ]
        async with broker.subscribe("alice", seen.event_id, ("promo",)) as resumed:
            assert [parse_frame(frame).id for frame in resumed.replay] == [d.event_id for d in mixed]


async def test_replay_and_live_events_meet_across_streams_without_gap_or_repeat(broker):
    """Resume again and again while client and topic events keep flowing: each once, in order."""
    topics = ("promo", "orders")

    async def publish_next(n: int) -> Delivery:
        if n % 3 == 0:
            return await broker.publish("alice", note(str(n)))
        return await broker.publish_topic(topics[n % 2], note(str(n)))

    await assert_resumes_meet_live_events(broker, publish_next, count=3000, topics=topics)


async def test_topic_listener_leaving_stops_delivery(broker):
    async with broker.subscribe("alice", None, ("promo",)):
        pass
    assert (await broker.publish_topic("promo", note("gone"))).delivered == 0
