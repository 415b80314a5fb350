"""What only the Redis broker has to get right: several instances, expiring
presence, and losing Redis (or its pub/sub connection) without losing events.

Two brokers in one process stand for two instances; they share nothing but
the real redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from sse import presence as presence_module
from sse import redis_topics as redis_topics_module
from sse.broker import BrokerRefusedWrite, BrokerUnavailable
from sse.redis_scripts import BrokerScripts, RedisKeys
from sse.registry import ConnectionRefused
from tests.support.brokers import next_frame, no_subscriber, note, nothing_arrives, parse_frame, running_broker
from tests.support.server import free_port
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def test_client_on_one_instance_receives_a_publish_made_on_another(redis_url):
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        async with b.subscribe("alice", None) as on_b:
            delivery = await a.publish("alice", note("across"))
            assert delivery.delivered == 1 and not delivery.queued
            received = await next_frame(on_b.connection)
            assert (received.id, received.data) == (delivery.event_id, {"message": "across"})


async def test_max_connections_per_client_holds_across_instances(redis_url):
    # Two tabs on different instances fill a cap of 2: a third is refused on either,
    # with or without topics, and leaves no presence behind; a closed tab frees a slot.
    settings = {"redis_url": redis_url, "max_connections_per_client": 2}
    async with running_broker(instance_id="a", **settings) as a, running_broker(instance_id="b", **settings) as b:
        async with a.subscribe("alice", None), b.subscribe("alice", None, ("promo",)):
            for broker, topics in ((a, ()), (b, ()), (a, ("promo",))):
                with pytest.raises(ConnectionRefused) as refused:
                    async with broker.subscribe("alice", None, topics):
                        pass
                assert refused.value.reason == "client_connection_limit"
            assert await a.connection_count("alice") == 2
            assert (await b.publish_topic("promo", note("once"))).delivered == 1
            async with b.subscribe("bob", None):
                pass  # other clients are not affected
        async with b.subscribe("alice", None), a.subscribe("alice", None):
            assert await b.connection_count("alice") == 2


async def test_presence_and_totals_are_cluster_wide(redis_url):
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        async with a.subscribe("alice", None), b.subscribe("alice", None), b.subscribe("bob", None):
            assert await a.connection_count("alice") == 2
            assert await a.connection_count("bob") == 1
            totals = await a.totals()
            assert (totals.clients, totals.connections) == (2, 3)
            assert (await a.publish("alice", note("both"))).delivered == 2
        totals = await b.totals()
        assert (totals.clients, totals.connections) == (0, 0)


async def test_presence_lapses_without_heartbeats_and_returns_with_them(redis_url):
    """An instance that stops refreshing (it died) stops counting after two heartbeats."""
    async with running_broker(redis_url=redis_url, heartbeat_seconds=0.2) as broker:
        async with broker.subscribe("alice", None) as subscription:
            assert await broker.connection_count("alice") == 1
            await asyncio.sleep(0.5)
            assert await broker.connection_count("alice") == 0
            assert (await broker.totals()).connections == 0
            # One answer: a subscription without presence (this instance stalled past
            # it, or a tab between SUBSCRIBE and JOIN) is not published to live.
            lapsed = await broker.publish("alice", note("lapsed"))
            assert (lapsed.delivered, lapsed.queued) == (0, False)
            await broker.housekeeping()
            assert await broker.connection_count("alice") == 1
            assert (await broker.publish("alice", note("back"))).delivered == 1
            assert (await next_frame(subscription.connection)).data == {"message": "back"}


async def test_event_for_a_client_whose_instance_just_died_is_queued_for_its_reconnect(redis_url, admin):
    """Presence still live but no instance subscribed: the stream is in transit."""
    keys = RedisKeys()
    async with running_broker(redis_url=redis_url, instance_id="a") as a:
        async with a.subscribe("alice", None) as tab:
            seen = await a.publish("alice", note("seen on a"))
            await next_frame(tab.connection)
        await admin.zadd(keys.presence("alice"), {"dead-instance|1": int(time.time() * 1000) + 60_000})
        in_transit = await a.publish("alice", note("while reconnecting"))
        assert in_transit.queued and in_transit.delivered == 0
        async with a.subscribe("alice", seen.event_id) as resumed:
            assert [parse_frame(frame).id for frame in resumed.replay] == [in_transit.event_id]


async def test_nothing_is_stored_for_a_client_connected_nowhere(redis_url, admin):
    async with running_broker(redis_url=redis_url) as broker:
        assert (await broker.publish("ghost", note("?"))).event_id is None
        assert await admin.keys("cp:*ghost*") == []


async def test_instance_cut_off_from_pubsub_catches_up_once_when_back(redis_url, admin):
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        async with b.subscribe("alice", None) as on_b:
            before = await a.publish("alice", note("before"))
            assert (await next_frame(on_b.connection)).id == before.event_id
            scripts = BrokerScripts(admin)
            keys = RedisKeys()
            async with admin.pipeline(transaction=True) as cut_and_publish:
                cut_and_publish.client_kill_filter(_type="pubsub")
                await scripts.publish(
                    keys=[keys.presence("alice"), keys.history("alice"), keys.queue("alice"), keys.ids],
                    args=[keys.channel("alice"), "notification", b'{"message":"while cut off"}', 100, 300_000, 0, 30_000, 20],
                    client=cut_and_publish,
                )
                _, (outcome, missed_id, delivered) = await cut_and_publish.execute()
            assert outcome == b"queued"
            caught_up = await next_frame(on_b.connection, timeout=10)
            assert (caught_up.id, caught_up.data) == (missed_id.decode(), {"message": "while cut off"})
            after = await eventually(lambda: _delivered(a, "alice", "after"))
            assert (await next_frame(on_b.connection)).id == after.event_id
            assert await nothing_arrives(on_b.connection)


async def _delivered(broker, client_id: str, text: str):
    delivery = await broker.publish(client_id, note(text))
    return delivery if delivery.delivered else None


async def test_redis_outage_fails_loudly_keeps_streams_open_and_heals(redis_server, redis_url):
    async with running_broker(redis_url=redis_url, redis_timeout_seconds=0.5) as broker:
        async with broker.subscribe("alice", None) as open_stream:
            redis_server.stop()
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable):
                await broker.publish("alice", note("into the void"))
            assert time.monotonic() - started < 2
            assert not await broker.is_healthy()
            with pytest.raises(BrokerUnavailable):
                await broker.connection_count("alice")
            with pytest.raises(BrokerUnavailable):
                async with broker.subscribe("bob", None):
                    pass
            await broker.housekeeping()  # logs, never raises
            assert open_stream.connection.close_reason is None

            redis_server.start()
            await eventually(broker.is_healthy)
            assert await broker.connection_count("alice") == 1  # presence re-registered by the listener
            delivery = await broker.publish("alice", note("back"))
            assert delivery.delivered == 1
            assert (await next_frame(open_stream.connection)).id == delivery.event_id


async def test_absurd_last_event_id_is_harmless(redis_url):
    async with running_broker(redis_url=redis_url) as broker:
        async with broker.subscribe("alice", "18446744073709551615-18446744073709551615") as subscription:
            assert subscription.replay == []
            assert (await broker.publish("alice", note("fine"))).delivered == 1


async def test_tabs_closing_and_opening_at_once_leave_exactly_the_needed_subscriptions(redis_url, admin):
    channel = RedisKeys().channel("alice")
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:

        async def flicker() -> None:
            for _ in range(25):
                async with b.subscribe("alice", None):
                    await asyncio.sleep(0)

        async with b.subscribe("alice", None) as steady:
            await asyncio.gather(flicker(), flicker())
            assert (await admin.pubsub_numsub(channel)) == [(channel.encode(), 1)]
            delivery = await a.publish("alice", note("still subscribed"))
            assert delivery.delivered == 1
            assert (await next_frame(steady.connection)).id == delivery.event_id
        await eventually(lambda: no_subscriber(admin, channel))
        assert (await a.publish("alice", note("nobody"))).event_id is None


async def test_a_second_connection_opens_only_once_the_clients_subscription_is_confirmed(redis_url, monkeypatch):
    """A second tab arriving while the first tab's SUBSCRIBE is in flight used to
    JOIN at once: an event published in that window was answered as queued, went
    to the first tab only, and the second, already open, never got it."""
    async with running_broker(redis_url=redis_url) as broker:
        listener = broker._listener
        confirm = asyncio.Event()
        subscribe = listener.add

        async def slow_subscribe(channel: str) -> None:
            await confirm.wait()
            await subscribe(channel)

        monkeypatch.setattr(listener, "add", slow_subscribe)
        opened, release = [], asyncio.Event()

        async def tab() -> None:
            async with broker.subscribe("carol", None) as subscription:
                opened.append(subscription)
                await release.wait()

        tabs = [asyncio.create_task(tab()) for _ in range(2)]
        await asyncio.sleep(0.2)
        assert opened == [], "a tab opened before the client's channel was confirmed"
        confirm.set()

        async def both_open() -> bool:
            return len(opened) == 2

        await eventually(both_open)
        delivery = await broker.publish("carol", note("hello"))
        assert (delivery.delivered, delivery.queued) == (2, False)
        for subscription in opened:
            assert (await next_frame(subscription.connection)).id == delivery.event_id
        release.set()
        await asyncio.gather(*tabs)


async def test_a_burst_of_streams_ending_together_leaves_no_presence_behind(redis_url, admin):
    """Each ending stream removed its presence with its own call: a burst of them opened a
    burst of pool connections whose calls timed out, and the members left behind counted
    against MAX_CONNECTIONS_PER_CLIENT until they expired (review: 861 of 1,000 left)."""
    async with running_broker(redis_url=redis_url, instance_id="a") as broker:
        opened, end = asyncio.Semaphore(0), asyncio.Event()

        async def stream(n: int) -> None:
            async with broker.subscribe(f"visitor-{n % 300}", None, ("promo", f"room-{n % 7}")):
                opened.release()
                await end.wait()

        streams = [asyncio.create_task(stream(n)) for n in range(600)]
        for _ in streams:
            await opened.acquire()
        assert await admin.zcard("cp:connections") == 600
        end.set()  # every stream ends in the same moment
        await asyncio.gather(*streams)
        assert await admin.zcard("cp:connections") == 0
        assert await admin.keys("cp:presence:*") == []
        assert await admin.zcard("cp:topic-presence:promo") == 0


@pytest.mark.parametrize("queue_if_offline", [True, False])
async def test_an_event_published_between_a_tabs_subscribe_and_its_join_is_answered_truthfully(redis_url, monkeypatch, queue_if_offline):
    """Review reproduction: a fresh tab (no Last-Event-ID) had SUBSCRIBEd when a call
    for its client came: PUBLISH counted the subscription and answered delivered: 1,
    the JOIN that followed took that event's id as the tab's opening, and the live
    copy, arriving after it (a lagging listener), fell at the floor and was dropped.
    The visitor never saw it. Now a client without a joined connection is not
    published to live: the event is queued and the JOIN hands it over, or the call
    is answered not connected."""
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        join, early = a._join, []

        async def join_after_a_publish(*args, **kwargs):
            early.append(await b.publish("dave", note("in the window"), queue_if_offline=queue_if_offline))
            return await join(*args, **kwargs)

        monkeypatch.setattr(a, "_join", join_after_a_publish)
        async with a.subscribe("dave", None) as subscription:
            [delivery] = early
            assert (delivery.delivered, delivery.queued) == (0, queue_if_offline)
            expected = [delivery.event_id] if queue_if_offline else []
            assert [parse_frame(frame).id for frame in subscription.replay] == expected
            assert await nothing_arrives(subscription.connection)


async def test_deployments_on_two_databases_of_one_redis_never_reach_each_others_visitors(redis_url):
    """Review reproduction: staging on /5 notified a production visitor on /4 and was
    told delivered: 1. Pub/sub ignores database numbers; the key prefix holds it now."""
    production, staging = redis_url.rsplit("/", 1)[0] + "/4", redis_url.rsplit("/", 1)[0] + "/5"
    async with running_broker(redis_url=production, instance_id="p") as live, running_broker(redis_url=staging, instance_id="s") as test:
        async with live.subscribe("alice", None) as subscription:
            crossed = await test.publish("alice", note("from staging"))
            assert (crossed.delivered, crossed.queued) == (0, False)
            assert (await test.broadcast(note("to everyone on staging"))).delivered == 0
            assert await nothing_arrives(subscription.connection)
            assert (await live.publish("alice", note("from production"))).delivered == 1


@pytest.fixture
async def memory_limit(admin):
    """Set Redis's maxmemory settings for one test, and put them back whatever happens."""
    saved = await admin.config_get("maxmemory*")

    async def limit(maxmemory: str, policy: str) -> None:
        await admin.config_set("maxmemory-policy", policy)
        await admin.config_set("maxmemory", maxmemory)

    try:
        yield limit
    finally:
        await admin.config_set("maxmemory", saved["maxmemory"])
        await admin.config_set("maxmemory-policy", saved["maxmemory-policy"])


async def test_a_redis_that_may_evict_our_keys_is_named_at_start(redis_url, memory_limit, caplog):
    """Review reproduction: under allkeys-lru, memory pressure evicted every cp:* key:
    queued events, publish ids and presence vanished without a word anywhere."""
    await memory_limit("100mb", "allkeys-lru")
    with caplog.at_level("WARNING", logger="channel_push.redis"):
        async with running_broker(redis_url=redis_url):
            pass
    assert any("maxmemory-policy is allkeys-lru" in record.getMessage() for record in caplog.records)


async def test_a_redis_refusing_writes_is_not_ready_and_says_nothing_was_sent(redis_url, memory_limit):
    """Review reproduction: with Redis out of memory (noeviction), /readyz said ready
    (PING still answers) and every refused publish was told Redis may have been slow
    and may still deliver it."""
    async with running_broker(redis_url=redis_url) as broker:
        assert await broker.is_healthy()
        await memory_limit("1", "noeviction")
        assert not await broker.is_healthy()
        with pytest.raises(BrokerRefusedWrite):
            await broker.publish("alice", note("refused"), queue_if_offline=True)
        await memory_limit("0", "noeviction")
        assert await broker.is_healthy()


async def test_a_topic_event_published_between_a_subscribers_subscribe_and_join_is_answered_truthfully(redis_url, monkeypatch):
    """Review reproduction: the topic twin of the race above. PUBLISH_TOPIC counted
    the subscription and answered delivered: 1; the JOIN took that event's id as the
    stream's opening, and its late live copy was dropped for good."""
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        join, early = a._join, []

        async def join_after_a_publish(*args, **kwargs):
            early.append(await b.publish_topic("promo", note("in the window")))
            return await join(*args, **kwargs)

        monkeypatch.setattr(a, "_join", join_after_a_publish)
        async with a.subscribe("dave", None, ("promo",)) as subscription:
            [delivery] = early
            assert (delivery.delivered, delivery.event_id) == (0, None)
            assert subscription.replay == []
            assert await nothing_arrives(subscription.connection)
            assert (await b.publish_topic("promo", note("joined"))).delivered == 1


async def test_a_redis_without_config_starts_without_an_error_line(tmp_path, caplog):
    """Review reproduction: managed Redis often disables CONFIG; the eviction check
    then logged ERROR "redis call failed" on every start."""
    port = free_port()
    server = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--rename-command", "CONFIG", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"redis://127.0.0.1:{port}/0"
        admin = Redis.from_url(url)

        async def answers() -> bool:
            try:
                return await admin.ping()
            except RedisConnectionError:
                return False

        await eventually(answers, timeout=10)
        await admin.aclose()
        with caplog.at_level("WARNING"):
            async with running_broker(redis_url=url) as broker:
                assert await broker.is_healthy()
        assert [record.getMessage() for record in caplog.records if record.levelname in ("ERROR", "WARNING")] == []
    finally:
        server.terminate()
        server.wait(10)


async def test_delivered_counts_joined_streams_not_an_instance_stalled_past_its_presence(redis_url, admin):
    """Review reproduction: with a tab on a and another on b, b stalled past its
    presence, getClientStatus said 1 connection and notify said delivered: 2 (the
    stalled instance's subscription still counted as a receiver)."""
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        async with a.subscribe("alice", None), b.subscribe("alice", None) as on_b:
            await admin.zrem(RedisKeys().presence("alice"), b._presence.member(on_b.connection.id))  # b's presence lapsed
            assert await a.connection_count("alice") == 1
            assert (await a.publish("alice", note("one tab"))).delivered == 1


async def test_events_queued_while_a_stream_lapsed_reach_it_when_its_presence_returns(redis_url, admin):
    """Review reproduction: an instance stopped past its presence, calls for its
    visitor answered queued: true; when it resumed, its refresh restored the presence
    but left the queue, so the open stream never got them, and a later reconnect got
    them below its Last-Event-ID."""
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        async with a.subscribe("alice", None) as alice:
            await admin.zrem(RedisKeys().presence("alice"), a._presence.member(alice.connection.id))  # a stalled
            queued = await b.publish("alice", note("while stalled"), queue_if_offline=True)
            assert queued.queued
            await a.housekeeping()  # a resumes: its refresh
            arrived = await next_frame(alice.connection)
            assert (arrived.id, arrived.data) == (queued.event_id, {"message": "while stalled"})
            assert (await b.publish("alice", note("live again"))).delivered == 1


async def test_housekeeping_while_a_tab_is_joining_neither_counts_it_twice_nor_takes_its_queue(redis_url, monkeypatch):
    """Review reproduction (a slow SUBSCRIBE): the presence refresh registered the
    still-joining tab, so its JOIN counted it twice and a cap of 1 refused the only
    tab (429), and the refresh took the queue meant for that JOIN: the queued event
    went to the refused connection and was lost."""
    settings = {"redis_url": redis_url, "max_connections_per_client": 1}
    async with running_broker(instance_id="a", **settings) as a, running_broker(instance_id="b", **settings) as b:
        queued = await b.publish("q1", note("waiting"), queue_if_offline=True)
        listener, confirm = a._listener, asyncio.Event()
        subscribe = listener.add

        async def slow_subscribe(channel: str) -> None:
            await confirm.wait()
            await subscribe(channel)

        monkeypatch.setattr(listener, "add", slow_subscribe)
        opened = []

        async def tab() -> None:
            async with a.subscribe("q1", None) as subscription:
                opened.append(subscription)
                await asyncio.sleep(1)

        joining = asyncio.create_task(tab())
        await asyncio.sleep(0.1)
        await a.housekeeping()  # a heartbeat's upkeep while the tab is joining
        confirm.set()
        await eventually(lambda: asyncio.sleep(0, result=bool(opened)))
        assert [parse_frame(frame).id for frame in opened[0].replay] == [queued.event_id]
        joining.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await joining


async def test_a_stream_that_closes_while_an_earlier_refresh_batch_waits_is_not_brought_back(redis_url, admin, monkeypatch):
    """Review reproduction: the refresh chose its connections once, then sent them 500 at
    a time; a tab that closed (and left) while an earlier batch waited on Redis was put
    back in presence, and topic presence, by its later batch: getClientStatus said
    connected and calls were queued for a visitor who had left, for two heartbeats."""
    monkeypatch.setattr(presence_module, "REFRESH_BATCH", 1)
    monkeypatch.setattr(redis_topics_module, "REFRESH_BATCH", 1)
    async with running_broker(redis_url=redis_url, instance_id="a") as a:
        async with a.subscribe("first", None, ("promo",)):
            ghost = a.subscribe("ghost", None, ("promo",))
            await ghost.__aenter__()
            leaves = _after_first_call(lambda: ghost.__aexit__(None, None, None))
            monkeypatch.setattr(a._presence, "_scripts", _ScriptsWithRefresh(a._presence._scripts, leaves))
            await a.housekeeping()
            assert await a.connection_count("ghost") == 0

            ghost = a.subscribe("ghost", None, ("promo",))
            await ghost.__aenter__()
            leaves = _after_first_call(lambda: ghost.__aexit__(None, None, None))
            monkeypatch.setattr(a._topics, "_scripts", _ScriptsWithRefresh(a._topics._scripts, leaves))
            await a.housekeeping()
            assert await admin.zcard(RedisKeys().topic_presence("promo")) == 1


class _ScriptsWithRefresh:
    def __init__(self, scripts, wrap) -> None:
        self._scripts, self.refresh = scripts, wrap(scripts.refresh)

    def __getattr__(self, name: str):
        return getattr(self._scripts, name)


def _after_first_call(then):
    """Wraps a script so that `then()` is awaited once, after its first call answered."""
    done = []

    def wrap(script):
        async def call(*args, **kwargs):
            answer = await script(*args, **kwargs)
            if not done:
                done.append(True)
                await then()
            return answer

        return call

    return wrap


async def test_a_new_streams_cursor_counts_an_event_that_arrived_live_during_its_join(redis_url, monkeypatch):
    """Review reproduction: a live event that came while the JOIN was answered was written
    in the opening, but the cursor stayed the JOIN's, older: the stream's last id went
    back, and a reconnect replayed the event a second time."""
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        join, during = a._join, []

        async def join_then_an_event_arrives(*args, **kwargs):
            answer = await join(*args, **kwargs)
            during.append(await b.publish("alice", note("during the join")))
            await asyncio.sleep(0.2)  # delivered to a's listener, held for the joining stream
            return answer

        monkeypatch.setattr(a, "_join", join_then_an_event_arrives)
        async with a.subscribe("alice", None) as subscription:
            assert [parse_frame(frame).id for frame in subscription.replay] == [during[0].event_id]
            assert subscription.cursor == during[0].event_id


async def test_a_new_instance_reaching_redis_first_after_a_loss_leaves_the_grace_to_the_others(redis_url, admin):
    """Review reproduction: Redis restarted empty, and an instance started meanwhile
    reached it first: its first look at the data (nothing seen before) recorded the
    start without marking it a loss, and an older instance catching up next took that
    start as the one it knew. Its calls for a visitor whose stream was open elsewhere
    (presence not yet registered again) answered CLIENT_NOT_CONNECTED within the grace."""
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        async with b.subscribe("visitor", None) as on_b:
            await admin.flushall()  # the restart without persistence
            async with running_broker(redis_url=redis_url, instance_id="c"):
                await a._catch_up()  # a reconnects after c started
                delivery = await a.publish("visitor", note("right after the loss"))
                assert delivery.event_id is not None  # not answered as offline
                assert (await next_frame(on_b.connection)).id == delivery.event_id


@pytest.mark.parametrize("first_back", ["catch-up", "refresh"])
async def test_after_an_outage_longer_than_presence_lives_an_open_stream_is_never_called_offline(redis_url, admin, first_back):
    """Review reproduction: Redis with persistence down for over two heartbeats came back
    with every presence expired; until the stream's instance registered it again, calls
    on another instance answered CLIENT_NOT_CONNECTED (2-9 calls over 0.1-1.1 s) and
    dropped their events. Such a gap starts the grace a loss of the data starts."""
    keys = RedisKeys()
    async with running_broker(redis_url=redis_url, instance_id="a") as a, running_broker(redis_url=redis_url, instance_id="b") as b:
        async with b.subscribe("visitor", None) as on_b:
            ttl_ms = a._presence.ttl_ms
            long_ago = int(time.time() * 1000) - 2 * ttl_ms
            await admin.hset(keys.ids, "alive_at", long_ago)  # nobody refreshed since: Redis was away
            await admin.delete(keys.presence("visitor"))  # expired meanwhile
            if first_back == "catch-up":
                await a._catch_up()
            else:
                await a.housekeeping()
            delivery = await a.publish("visitor", note("right after the outage"))
            assert delivery.event_id is not None  # not answered as offline
            assert (await next_frame(on_b.connection)).id == delivery.event_id


async def test_a_cold_start_after_a_long_stop_is_no_outage_offline_clients_stay_offline(redis_url, admin):
    """Review reproduction (of the gap grace): every instance stopped for longer than
    presence lives and started again; the first one back took the pause for an outage
    with streams open, so for two heartbeats calls for offline visitors answered
    `queued: true` and skipped the chat fallback, though no stream could be open."""
    keys = RedisKeys()
    await admin.hset(keys.ids, mapping={"since": int(time.time() * 1000) - 3_600_000, "alive_at": int(time.time() * 1000) - 600_000})
    async with running_broker(redis_url=redis_url, instance_id="fresh") as fresh:
        await fresh.housekeeping()
        delivery = await fresh.publish("visitor", note("nobody is here"))
    assert delivery.event_id is None and not delivery.queued
    assert await admin.hget(keys.ids, "gap_at") is None


async def test_an_instance_started_while_another_is_stalled_starts_the_grace_for_its_streams(redis_url, admin):
    """Review reproduction (of the cold-start rule): with the only instance stalled past
    its presence, a freshly started one reached Redis first and, having run before
    nowhere, took the pause for a cold start: the stalled instance's visitor was answered
    CLIENT_NOT_CONNECTED, and when it resumed nothing marked the gap any more. Its
    connections, still registered though expired, say streams may be open."""
    keys = RedisKeys()
    async with running_broker(redis_url=redis_url, instance_id="stalled") as stalled:
        async with stalled.subscribe("visitor", None) as on_stalled:
            await admin.hset(keys.ids, "alive_at", int(time.time() * 1000) - 2 * stalled._presence.ttl_ms)
            await admin.delete(keys.presence("visitor"))  # its presence expired while it was stalled
            async with running_broker(redis_url=redis_url, instance_id="fresh") as fresh:
                delivery = await fresh.publish("visitor", note("while it was stalled"))
                assert delivery.event_id is not None  # not answered as offline
                assert (await next_frame(on_stalled.connection)).id == delivery.event_id
