"""Topics and the publish API across two real instances (subprocesses) on one real redis-server.

Subscribers of a topic sit on both instances; the backend publishes through
either; every subscriber receives it once, non-subscribers never; a stream
killed with its instance resumes on the other with its one Last-Event-ID,
client stream and topics alike.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.http import PUBLISH_KEY, get_json, open_stream, publish
from tests.support.instances import running_instances

pytestmark = [pytest.mark.anyio, pytest.mark.redis, pytest.mark.timeout(120)]


async def test_topic_event_reaches_subscribers_on_both_instances_and_no_one_else(redis_url, tmp_path):
    with running_instances(redis_url, tmp_path, PUBLISH_API_KEYS=PUBLISH_KEY) as (a, b):
        async with open_stream(a.url, "alice", topics=("promo",)) as (on_a, _), open_stream(b.url, "bob", topics=("promo",)) as (on_b, _):
            async with open_stream(b.url, "carol", topics=("orders",)) as (carol, _), open_stream(a.url, "dave") as (dave, _):
                for via, other in ((a, b), (b, a)):
                    answer = (await publish(via.url, {"target": {"topic": "promo"}, "event": "sale", "data": {"via": via.name}})).json()
                    assert (answer["delivered"], answer["queued"]) == (2, False), answer
                    for reader in (on_a, on_b):
                        event = await reader.next_event()
                        assert (event.id, event.event, event.data) == (answer["eventId"], "sale", {"via": via.name, "topic": "promo"})
                for reader, target in ((carol, {"topic": "orders"}), (dave, {"clientId": "dave"})):
                    marker = (await publish(a.url, {"target": target, "event": "marker"})).json()
                    assert (await reader.next_event()).id == marker["eventId"]  # no promo event came first
                code, summary = await get_json(a.url, "/sse/status")
                assert (code, summary["connected_clients"], summary["connections"]) == (200, 4, 4)


async def test_stream_of_a_killed_instance_resumes_client_and_topics_on_the_other(redis_url, tmp_path):
    heartbeat = 1.5
    with running_instances(redis_url, tmp_path, PUBLISH_API_KEYS=PUBLISH_KEY, HEARTBEAT_SECONDS=str(heartbeat)) as (a, b):
        async with open_stream(a.url, "watcher", topics=("promo",)):
            async with open_stream(b.url, "alice", topics=("promo",)) as (on_b, _):
                seen = (await publish(a.url, {"target": {"topic": "promo"}, "event": "step", "data": {"n": 0}})).json()
                assert (await on_b.next_event()).id == seen["eventId"]
                b.kill()
                sent = []
                for n in range(1, 7):
                    target = {"clientId": "alice"} if n % 2 else {"topic": "promo"}
                    body = {"target": target, "event": "step", "data": {"n": n}, **({"queueIfOffline": True} if n % 2 else {})}
                    sent.append((await publish(a.url, body)).json()["eventId"])
                with pytest.raises((httpx.HTTPError, EOFError)):
                    await on_b.next_event(timeout=5)
            async with open_stream(a.url, "alice", last_event_id=seen["eventId"], topics=("promo",)) as (on_a, _):
                resumed = [await on_a.next_event() for _ in sent]
                assert [event.id for event in resumed] == sent
                assert [event.data["n"] for event in resumed] == list(range(1, 7))
                assert (await on_a.next_event()).event == "replayed"
                live = (await publish(a.url, {"target": {"topic": "promo"}, "event": "step", "data": {"n": 7}})).json()
                assert (await on_a.next_event()).id == live["eventId"]
                with pytest.raises(TimeoutError):
                    await on_a.next_event(timeout=1)
