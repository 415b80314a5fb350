"""POST /api/publish against a real uvicorn, on the memory broker and on a real Redis.

The site's own backend publishes to a client, a topic or everyone; sequences
arrive in order, also across a reconnect with Last-Event-ID; an `id` makes a
retry harmless.
"""

from __future__ import annotations

import asyncio

import anyio
import httpx
import pytest

from sse.broker import BrokerRefusedWrite, BrokerUnavailable
from tests.support.apps import make_app
from tests.support.http import PUBLISH_KEY, open_stream, publish
from tests.support.server import run_server

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def server(backend):
    with run_server(make_app(publish_api_keys=PUBLISH_KEY, heartbeat_seconds=0.5, **backend)) as running:
        yield running


async def read_until(reader, last_event: str, limit: int = 500) -> list:
    received = []
    while len(received) < limit:
        event = await reader.next_event()
        received.append(event)
        if event.event == last_event:
            return received
    raise AssertionError(f"no {last_event!r} within {limit} events")


async def until_ready(base_url: str) -> None:
    """Until /readyz says 200 (Redis back and answering), for at most 10 s."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        for _ in range(100):
            if (await http.get("/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.1)


async def test_event_to_a_connected_client_is_delivered_and_answered(server):
    async with open_stream(server.url, "user-42") as (reader, _):
        response = await publish(server.url, {"target": {"clientId": "user-42"}, "event": "order.shipped", "data": {"order": 7, "메모": "배송 시작"}})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert (answer["delivered"], answer["queued"]) == (1, False)
        event = await reader.next_event()
        assert (event.id, event.event, event.data) == (answer["eventId"], "order.shipped", {"order": 7, "메모": "배송 시작"})


async def test_event_to_an_offline_client_is_dropped_or_queued_as_asked(server):
    dropped = (await publish(server.url, {"target": {"clientId": "away"}, "event": "ping"})).json()
    assert dropped == {"delivered": 0, "queued": False, "eventId": None}
    queued = (await publish(server.url, {"target": {"clientId": "away"}, "event": "later", "queueIfOffline": True})).json()
    assert (queued["delivered"], queued["queued"]) == (0, True) and queued["eventId"]
    async with open_stream(server.url, "away") as (reader, _):
        event = await reader.next_event()
        assert (event.id, event.event) == (queued["eventId"], "later")


async def test_topic_event_reaches_its_subscribers_only(server):
    async with open_stream(server.url, "alice", topics=("promo",)) as (alice, _), open_stream(server.url, "bob", topics=("promo", "orders")) as (bob, _):
        async with open_stream(server.url, "carol", topics=("orders",)) as (carol, _):
            answer = (await publish(server.url, {"target": {"topic": "promo"}, "event": "sale", "data": {"off": 20}})).json()
            assert (answer["delivered"], answer["queued"]) == (2, False)
            for reader in (alice, bob):
                assert (await reader.next_event()).id == answer["eventId"]
            marker = (await publish(server.url, {"target": {"topic": "orders"}, "event": "marker"})).json()
            assert (await carol.next_event()).id == marker["eventId"]  # nothing of promo came before it
    nobody = (await publish(server.url, {"target": {"topic": "promo"}, "event": "sale"})).json()
    assert nobody == {"delivered": 0, "queued": False, "eventId": None}


async def test_all_reaches_every_stream(server):
    async with open_stream(server.url, "alice") as (alice, _), open_stream(server.url, "bob", topics=("promo",)) as (bob, _):
        answer = (await publish(server.url, {"target": {"all": True}, "event": "maintenance", "data": {"at": "02:00"}})).json()
        assert answer["delivered"] == 2
        for reader in (alice, bob):
            assert (await reader.next_event()).id == answer["eventId"]


def chunks(count: int) -> list[dict]:
    return [{"event": "chunk", "data": {"n": n, "text": f"part {n} "}} for n in range(count)] + [{"event": "complete", "data": {"n": count}}]


async def test_null_data_is_absent_data_alone_or_in_a_sequence(server):
    """Review reproduction (fuzzing): `"data": null` arrived as {} for a single event
    but as null inside `events`."""
    async with open_stream(server.url, "reader") as (reader, _):
        await publish(server.url, {"target": {"clientId": "reader"}, "event": "blob", "data": None})
        await publish(server.url, {"target": {"clientId": "reader"}, "events": [{"event": "blob", "data": None}]})
        received = [await reader.next_event() for _ in range(2)]
    assert [event.data for event in received] == [{}, {}]


async def test_sequence_of_chunks_then_complete_arrives_in_order(server):
    async with open_stream(server.url, "reader") as (reader, _):
        answer = (await publish(server.url, {"target": {"clientId": "reader"}, "events": chunks(20)})).json()
        assert len(answer["eventIds"]) == 21 and answer["eventId"] == answer["eventIds"][-1]
        received = await read_until(reader, "complete")
    assert [event.id for event in received] == answer["eventIds"]
    assert [event.data["n"] for event in received] == list(range(21))


async def test_sequence_stays_in_order_across_a_reconnect_mid_sequence(server):
    async with open_stream(server.url, "reader") as (reader, _):
        sending = asyncio.create_task(publish(server.url, {"target": {"clientId": "reader"}, "events": chunks(20)}))
        before = [await reader.next_event() for _ in range(5)]
    answer = (await sending).json()
    assert "error" not in answer, answer
    async with open_stream(server.url, "reader", last_event_id=before[-1].id) as (resumed, _):
        after = await read_until(resumed, "complete")
    received = before + after
    assert [event.id for event in received] == answer["eventIds"]
    assert [event.data["n"] for event in received] == list(range(21))


async def test_sequence_longer_than_the_queue_while_offline_says_what_was_published(backend):
    """The rest of a begun sequence waits in the client's queue (QUEUE_SIZE); past it the
    answer is QUEUE_FULL with the ids published, and exactly those arrive."""
    with run_server(make_app(publish_api_keys=PUBLISH_KEY, queue_size=5, **backend)) as server:
        first = (await publish(server.url, {"target": {"clientId": "away"}, "event": "start", "queueIfOffline": True})).json()
        response = await publish(server.url, {"target": {"clientId": "away"}, "events": chunks(10), "queueIfOffline": True})
        assert (response.status_code, response.json()["error"]["type"]) == (429, "QUEUE_FULL")
        published = response.json()["error"]["eventIds"]
        assert len(published) == 4
        async with open_stream(server.url, "away") as (reader, _):
            assert [(await reader.next_event()).id for _ in range(5)] == [first["eventId"], *published]


async def test_reconnect_replays_client_stream_and_topics_exactly_once_in_order(server):
    topics = ("promo", "orders")
    targets = [{"clientId": "alice"}, {"topic": "promo"}, {"topic": "elsewhere"}, {"topic": "orders"}]
    async with open_stream(server.url, "watcher", topics=("elsewhere",)):
        async with open_stream(server.url, "alice", topics=topics) as (first, _):
            sent = []
            for n in range(8):
                target = targets[n % 4]
                sent.append((target, (await publish(server.url, {"target": target, "event": "step", "data": {"n": n}})).json()["eventId"]))
            mine = [event_id for target, event_id in sent if target.get("topic") != "elsewhere"]
            seen = [(await first.next_event()).id for _ in range(3)]
            assert seen == mine[:3]
        for n in range(8, 14):
            target = targets[n % 4]
            sent.append((target, (await publish(server.url, {"target": target, "event": "step", "data": {"n": n}})).json()["eventId"]))
        mine = [event_id for target, event_id in sent if target.get("topic") != "elsewhere" and event_id]
        async with open_stream(server.url, "alice", last_event_id=seen[-1], topics=topics) as (resumed, _):
            marker = (await publish(server.url, {"target": {"clientId": "alice"}, "event": "marker"})).json()["eventId"]
            replayed = [(event.event, event.id) for event in await read_until(resumed, "marker")]
    # The missed events, then `replayed` with the newest id the stream has reached, then live ones.
    assert replayed == [("step", event_id) for event_id in mine[3:]] + [("replayed", mine[-1]), ("marker", marker)]


async def test_same_id_publishes_once_and_answers_the_same(server):
    body = {"target": {"clientId": "alice"}, "event": "charge", "data": {"amount": 5}, "id": "charge-123"}
    async with open_stream(server.url, "alice") as (reader, _):
        first = await publish(server.url, body)
        again = await publish(server.url, body)
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        conflict = await publish(server.url, {**body, "data": {"amount": 6}})
        assert (conflict.status_code, conflict.json()["error"]["type"]) == (409, "IDEMPOTENCY_CONFLICT")
        marker = (await publish(server.url, {"target": {"clientId": "alice"}, "event": "marker"})).json()
        assert [(await reader.next_event()).id for _ in range(2)] == [first.json()["eventId"], marker["eventId"]]


async def test_a_replay_is_answered_even_when_the_clients_event_limit_is_spent(backend):
    # The replay sends no event, so a 429 would tell the backend its event did not go out.
    app = make_app(publish_api_keys=PUBLISH_KEY, rate_limit_function_per_client="1/minute", **backend)
    body = {"target": {"clientId": "alice"}, "event": "charge", "id": "charge-9", "queueIfOffline": True}
    with run_server(app) as server:
        first = await publish(server.url, body)
        again = await publish(server.url, body)
        another = await publish(server.url, {**body, "id": "charge-10"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert (another.status_code, another.json()["error"]["type"]) == (429, "RATE_LIMITED")


async def test_a_sequence_spends_the_clients_event_limit_once_per_event(backend):
    """Review reproduction: a sequence spent one hit, so 3/10s let 10 events through at once
    and a call to the client after it still went through."""
    app = make_app(publish_api_keys=PUBLISH_KEY, rate_limit_function_per_client="3/10s", **backend)
    with run_server(app) as server:
        pair = await publish(server.url, {"target": {"clientId": "alice"}, "queueIfOffline": True, "events": [{"event": "a"}, {"event": "b"}]})
        over = await publish(server.url, {"target": {"clientId": "alice"}, "queueIfOffline": True, "events": [{"event": "c"}, {"event": "d"}]})
        last = await publish(server.url, {"target": {"clientId": "alice"}, "event": "e", "queueIfOffline": True})
        refused = await publish(server.url, {"target": {"clientId": "alice"}, "event": "f", "queueIfOffline": True})
        long_one = await publish(server.url, {"target": {"clientId": "bob"}, "queueIfOffline": True, "events": [{"event": "g"}] * 10})
    assert [response.status_code for response in (pair, over, last, refused)] == [200, 429, 200, 429]
    assert long_one.status_code == 200  # longer than the limit: it spends the whole budget, and can pass


@pytest.mark.parametrize("with_id", [False, True], ids=["no-id", "id"])
async def test_a_sequence_cut_by_the_shutdown_grace_names_the_events_that_went_out(with_id):
    """Review reproductions: cut midway by the end of SHUTDOWN_GRACE_SECONDS, a sequence
    was answered 'nothing was done, retry' after six of its events had gone out, and
    was neither logged nor counted; with an id, the answer waited for a release the
    stalled Redis never confirmed, and was cut again there."""
    app = make_app(publish_api_keys=PUBLISH_KEY)
    with run_server(app) as server:
        services = app.state.services
        publish_for_real, published = services.sse.publish, []

        async def release_never_confirmed(*args):
            await asyncio.sleep(3600)

        services.idempotency.release = release_never_confirmed

        async def cut_at_the_second(*args, **kwargs):
            if published:
                services.lifecycle.begin_drain()
                asyncio.current_task().cancel()  # as uvicorn does when the grace ends
                await asyncio.sleep(1)
            published.append(await publish_for_real(*args, **kwargs))
            return published[-1]

        services.sse.publish = cut_at_the_second
        body = {"target": {"clientId": "alice"}, "events": chunks(3), "queueIfOffline": True, **({"id": "cut-1"} if with_id else {})}
        with anyio.fail_after(5):
            cut = await publish(server.url, body)
    assert (cut.status_code, cut.json()["error"]["type"]) == (503, "UNAVAILABLE")
    assert cut.json()["error"]["eventIds"] == [published[0].event_id]
    assert "went out" in cut.json()["error"]["message"]


async def test_a_publish_cut_before_any_event_went_out_lists_none_and_says_when_to_retry():
    """Review reproduction: the answer said "the events listed went out" but had no
    eventIds field at all, and no Retry-After."""
    app = make_app(publish_api_keys=PUBLISH_KEY)
    with run_server(app) as server:
        services = app.state.services

        async def cut_at_once(*args, **kwargs):
            services.lifecycle.begin_drain()
            asyncio.current_task().cancel()  # as uvicorn does when the grace ends
            await asyncio.sleep(1)

        services.sse.publish = cut_at_once
        with anyio.fail_after(5):
            cut = await publish(server.url, {"target": {"clientId": "alice"}, "events": chunks(2), "queueIfOffline": True})
    assert (cut.status_code, cut.json()["error"]["eventIds"], cut.headers.get("retry-after")) == (503, [], "1")


async def test_publish_is_counted_in_metrics(server):
    await publish(server.url, {"target": {"topic": "promo"}, "event": "sale"})
    await publish(server.url, {"target": {"topic": "promo"}}, key="wrong-key-0123456789abcdef")
    async with httpx.AsyncClient(base_url=server.url) as http:
        text = (await http.get("/metrics")).text
    assert 'channel_push_publish_api_calls_total{outcome="ok",target="topic"} 1.0' in text
    assert 'channel_push_publish_api_calls_total{outcome="UNAUTHORIZED",target="none"} 1.0' in text
    assert "promo" not in text


@pytest.mark.redis
async def test_redis_down_is_503_unavailable_and_nothing_is_remembered(redis_server, redis_url):
    app = make_app(publish_api_keys=PUBLISH_KEY, redis_url=redis_url, redis_timeout_seconds=0.5)
    with run_server(app) as server:
        body = {"target": {"topic": "promo"}, "event": "sale", "id": "sale-1"}
        async with open_stream(server.url, "alice", topics=("promo",)) as (reader, _):
            redis_server.stop()
            try:
                for request in (body, {**body, "id": None}):
                    response = await publish(server.url, {k: v for k, v in request.items() if v is not None})
                    assert (response.status_code, response.json()["error"]["type"]) == (503, "UNAVAILABLE")
            finally:
                redis_server.start()
            await until_ready(server.url)
            answer = (await publish(server.url, body)).json()
            assert answer["delivered"] == 1, answer  # the id was not remembered from the failed attempt
            assert (await reader.next_event(timeout=10)).id == answer["eventId"]



@pytest.mark.redis
async def test_a_sequence_whose_answer_redis_lost_midway_is_replayed_with_every_event_that_went_out(redis_url):
    """Redis publishes a sequence's second event but its answer is lost (a timeout):
    the request answers 503 with the one id it knows, and a retry gets the record the
    publish left in Redis, with both ids, and publishes nothing again. Before, the
    request recorded its own answer over it, so the retry was told one event fewer."""
    app = make_app(publish_api_keys=PUBLISH_KEY, redis_url=redis_url)
    body = {"target": {"clientId": "alice"}, "events": chunks(2), "id": "seq-1"}
    with run_server(app) as server:
        sse = app.state.services.sse
        publish_for_real, published = sse.publish, []

        async def answer_lost_after_the_second(*args, **kwargs):
            published.append(await publish_for_real(*args, **kwargs))
            if len(published) == 2:
                raise BrokerUnavailable("the answer timed out")
            return published[-1]

        sse.publish = answer_lost_after_the_second
        async with open_stream(server.url, "alice") as (reader, _):
            first = await publish(server.url, body)
            again = await publish(server.url, body)
            sse.publish = publish_for_real
            marker = (await publish(server.url, {"target": {"clientId": "alice"}, "event": "marker"})).json()
            received = [(await reader.next_event()).id for _ in range(3)]
    sent = [delivery.event_id for delivery in published]
    assert (first.status_code, first.json()["error"]["eventIds"]) == (503, sent[:1])
    assert (again.status_code, again.json()["error"]["eventIds"], again.headers["idempotent-replayed"]) == (503, sent, "true")
    assert received == [*sent, marker["eventId"]]


@pytest.mark.redis
async def test_publishes_with_an_id_succeed_at_once_after_a_redis_restart(redis_server, redis_url):
    """Review reproduction: after a Redis restart, with /readyz back at 200, 7 of 8
    concurrent publishes with an id answered 503: the idempotency store's client had
    no retry, so each pooled connection that died with Redis failed its first call."""
    app = make_app(publish_api_keys=PUBLISH_KEY, redis_url=redis_url)
    with run_server(app) as server:

        async def publish_all(round_name: str) -> list[int]:
            bodies = [{"target": {"clientId": f"c{n}"}, "event": "e", "id": f"{round_name}-{n}", "queueIfOffline": True} for n in range(8)]
            return [response.status_code for response in await asyncio.gather(*(publish(server.url, body) for body in bodies))]

        assert await publish_all("before") == [200] * 8  # the pool now holds several connections
        redis_server.stop()
        redis_server.start()
        await until_ready(server.url)
        assert await publish_all("after") == [200] * 8


async def test_a_sequence_redis_refused_midway_says_which_events_went_out(backend):
    """Review reproduction: Redis out of memory refused the 33rd event of a sequence,
    and the answer said "nothing was sent" next to the 32 ids that had been."""
    app = make_app(publish_api_keys=PUBLISH_KEY, **backend)
    with run_server(app) as server:
        sse = app.state.services.sse
        publish_for_real, published = sse.publish, []

        async def refused_after_the_first(*args, **kwargs):
            if published:
                raise BrokerRefusedWrite("OOM command not allowed")
            published.append(await publish_for_real(*args, **kwargs))
            return published[-1]

        sse.publish = refused_after_the_first
        answer = await publish(server.url, {"target": {"clientId": "alice"}, "events": chunks(2), "queueIfOffline": True})
    error = answer.json()["error"]
    assert (answer.status_code, error["eventIds"]) == (503, [published[0].event_id])
    assert "nothing was sent" not in error["message"] and "were sent" in error["message"]


async def test_a_queue_full_refusal_that_published_nothing_frees_its_id(backend):
    """It was recorded as the id's answer: the retry, once the client had taken its
    queue, was told QUEUE_FULL again (replayed) for the whole retention, and the
    event never went out."""
    with run_server(make_app(publish_api_keys=PUBLISH_KEY, queue_size=2, **backend)) as server:
        waiting = [(await publish(server.url, {"target": {"clientId": "away"}, "event": "e", "queueIfOffline": True})).json() for _ in range(2)]
        body = {"target": {"clientId": "away"}, "event": "late", "id": "late-1", "queueIfOffline": True}
        full = await publish(server.url, body)
        assert (full.status_code, full.json()["error"]["type"], full.json()["error"]["eventIds"]) == (429, "QUEUE_FULL", [])
        async with open_stream(server.url, "away") as (reader, _):
            assert [(await reader.next_event()).id for _ in range(2)] == [answer["eventId"] for answer in waiting]
            assert (await reader.next_event()).event == "replayed"
            retry = await publish(server.url, body)
            assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers
            assert (await reader.next_event()).id == retry.json()["eventId"]


@pytest.mark.parametrize("data", ["hi", [1, 2]])
async def test_the_widgets_own_events_need_object_data(server, data):
    """Non-object data could not carry `topic`, so every subscriber of a topic acknowledged
    such an event (an ack flood); the widget reads these events' fields anyway."""
    response = await publish(server.url, {"target": {"topic": "promo"}, "event": "notification", "data": data})
    assert (response.status_code, response.json()["error"]["type"]) == (400, "INVALID_REQUEST")
    assert "object data" in response.json()["error"]["message"]


async def test_a_topic_event_with_a_null_topic_field_is_marked_with_its_topic(server):
    async with open_stream(server.url, "reader", topics=("promo",)) as (reader, _):
        await publish(server.url, {"target": {"topic": "promo"}, "event": "notification", "data": {"message": "x", "topic": None}})
        assert (await reader.next_event()).data["topic"] == "promo"
