"""What only the Redis broker has to get right for topics: several instances,
topic presence, subscriptions that follow local listeners, and catching up
after losing pub/sub. Two brokers in one process stand for two instances."""

from __future__ import annotations

import asyncio
import time

import pytest

from sse.events import parse_event_id
from sse.redis_scripts import RedisKeys
from tests.support.brokers import next_frame, no_subscriber, note, nothing_arrives, parse_frame, running_broker
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def test_topic_event_reaches_subscribers_on_every_instance_and_counts_them_all(redis_url):
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        async with a.subscribe("alice", None, ("promo",)) as on_a, b.subscribe("bob", None, ("promo",)) as on_b:
            async with b.subscribe("bob", None, ("promo",)) as bob_tab, b.subscribe("carol", None) as carol:
                delivery = await a.publish_topic("promo", note("sale"))
                assert delivery.delivered == 3
                for subscription in (on_a, on_b, bob_tab):
                    assert (await next_frame(subscription.connection)).id == delivery.event_id
                assert await nothing_arrives(carol.connection)


async def test_topic_channel_is_subscribed_while_a_local_listener_remains(redis_url, admin):
    channel = RedisKeys().topic_channel("promo")
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:

        async def flicker() -> None:
            for _ in range(25):
                async with b.subscribe("visitor", None, ("promo",)):
                    await asyncio.sleep(0)

        async with b.subscribe("steady", None, ("promo",)) as steady:
            await asyncio.gather(flicker(), flicker())
            assert (await admin.pubsub_numsub(channel)) == [(channel.encode(), 1)]
            delivery = await a.publish_topic("promo", note("still subscribed"))
            assert delivery.delivered == 1
            assert (await next_frame(steady.connection)).id == delivery.event_id
        await eventually(lambda: no_subscriber(admin, channel))
        assert (await a.publish_topic("promo", note("nobody"))).event_id is None
        assert await admin.exists(RedisKeys().topic_presence("promo")) == 0


async def test_streams_opening_together_all_hear_a_topic_right_after_subscribing(redis_url):
    """The first stream of a topic subscribes; the others must not run ahead of that."""
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:

        async def open_and_hear(n: int) -> bool:
            async with b.subscribe(f"visitor-{n}", None, ("launch",)) as subscription:
                delivery = await a.publish_topic("launch", note(str(n)))
                while (frame := await next_frame(subscription.connection)).id != delivery.event_id:
                    pass
                return frame.data == {"message": str(n)}

        assert all(await asyncio.gather(*(open_and_hear(n) for n in range(10))))


async def test_instance_cut_off_from_pubsub_catches_up_client_and_topics_in_id_order(redis_url, admin):
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        async with a.subscribe("anchor", None, ("promo", "orders")), b.subscribe("alice", None, ("promo", "orders")) as on_b:
            before = await a.publish_topic("promo", note("before"))
            assert (await next_frame(on_b.connection)).id == before.event_id
            await admin.client_kill_filter(_type="pubsub")
            missed = []
            for n in range(6):
                if n % 3 == 0:
                    missed.append(await a.publish("alice", note(str(n)), queue_if_offline=True))
                else:
                    missed.append(await a.publish_topic(("promo", "orders")[n % 2], note(str(n))))
            received = [(await next_frame(on_b.connection, timeout=10)).id for _ in missed]
            assert received == [delivery.event_id for delivery in missed]
            assert [parse_event_id(i) for i in received] == sorted(parse_event_id(i) for i in received)
            await eventually(lambda: _both_listening(a, b))
            after = await a.publish_topic("promo", note("after"))
            assert (await next_frame(on_b.connection)).id == after.event_id
            assert await nothing_arrives(on_b.connection)


async def test_topic_listeners_of_a_dead_instance_replay_what_was_kept_for_them(redis_url, admin):
    """Topic presence live but no instance subscribed: kept in history, delivered 0."""
    async with running_broker(redis_url=redis_url, instance_id="a") as a:
        async with a.subscribe("alice", None, ("promo",)) as tab:
            seen = await a.publish_topic("promo", note("seen"))
            await next_frame(tab.connection)
        await admin.zadd(RedisKeys().topic_presence("promo"), {"dead-instance|1": int(time.time() * 1000) + 60_000})
        in_transit = await a.publish_topic("promo", note("while reconnecting"))
        assert (in_transit.delivered, in_transit.queued) == (0, False) and in_transit.event_id
        async with a.subscribe("alice", seen.event_id, ("promo",)) as resumed:
            assert [parse_frame(frame).id for frame in resumed.replay] == [in_transit.event_id]


async def _both_listening(*brokers) -> bool:
    return all([await broker.is_healthy() for broker in brokers])


async def test_expired_listeners_and_tabs_of_a_dead_instance_leave_redis_while_others_stay(redis_url, admin):
    """Review reproduction: an instance killed with listeners on `promo` left them in the
    topic's presence for good (20 s later, 6 members for 1 live listener), because the
    live listener's refreshes kept the key from expiring; a client's presence likewise
    kept the tabs of a dead instance."""
    keys = RedisKeys()
    expired = int(time.time() * 1000) - 1000
    async with running_broker(redis_url=redis_url, instance_id="a") as a:
        async with a.subscribe("alice", None, ("promo",)) as listening:
            await admin.zadd(keys.topic_presence("promo"), {f"dead|{n}": expired for n in range(5)})
            await admin.zadd(keys.presence("alice"), {"dead|tab": expired})
            await a.housekeeping()
            member = a._presence.member(listening.connection.id)
            assert await admin.zrange(keys.topic_presence("promo"), 0, -1) == [member.encode()]
            assert await admin.zrange(keys.presence("alice"), 0, -1) == [member.encode()]
            await admin.zadd(keys.topic_presence("promo"), {"dead|late": expired})
            await admin.zadd(keys.presence("alice"), {"dead|late": expired})
            async with a.subscribe("alice", None, ("promo",)):  # a join tidies too
                assert b"dead|late" not in await admin.zrange(keys.topic_presence("promo"), 0, -1)
                assert b"dead|late" not in await admin.zrange(keys.presence("alice"), 0, -1)
