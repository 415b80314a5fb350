"""What only the in-memory broker can promise: it hands each frame to the
connections itself, so it knows at once whether any of them took it."""

from __future__ import annotations

import pytest

from tests.support.brokers import next_frame, note, running_broker

pytestmark = pytest.mark.anyio


async def test_an_event_every_connection_refused_is_not_kept_for_replay():
    """A stream being dropped (too slow, or closing) is still registered until its
    writer lets go; an event it refused was answered as undelivered, so a reconnect
    with Last-Event-ID must not bring it back."""
    async with running_broker() as broker:
        async with broker.subscribe("alice", None) as first:
            seen = await broker.publish("alice", note("seen"))
            await next_frame(first.connection)
            first.connection.close("slow_client")
            refused = await broker.publish("alice", note("refused"))
        assert (refused.event_id, refused.delivered, refused.queued) == (None, 0, False)
        async with broker.subscribe("alice", seen.event_id) as again:
            assert again.replay == []


async def test_an_event_every_connection_refused_is_queued_when_asked():
    """`queueIfOffline` promises the next connection the event; a client whose
    only stream is closing is offline for that purpose."""
    async with running_broker() as broker:
        async with broker.subscribe("alice", None) as first:
            first.connection.close("slow_client")
            waiting = await broker.publish("alice", note("later"), queue_if_offline=True)
        assert (waiting.delivered, waiting.queued) == (0, True)
        async with broker.subscribe("alice", None) as again:
            assert len(again.replay) == 1 and waiting.event_id.encode() in again.replay[0]


async def test_a_subscription_whose_replay_fails_leaves_no_connection_registered(monkeypatch):
    """Registering comes before reading the replay; should the replay raise, the
    connection must not stay registered (it would count as reachable forever)."""
    async with running_broker() as broker:

        def broken_replay(connection, last_event_id):
            raise RuntimeError("history unreadable")

        monkeypatch.setattr(broker, "subscription_for", broken_replay)
        with pytest.raises(RuntimeError, match="history unreadable"):
            async with broker.subscribe("alice", "1-1", ("promo",)):
                pass
        assert broker.registry.connection_count("alice") == 0
        assert broker.registry.topic_connection_count("promo") == 0
        assert broker.registry.connection_total == 0


async def test_leaving_a_subscription_twice_unregisters_once():
    async with running_broker() as broker:
        subscription = broker.subscribe("alice", None)
        async with broker.subscribe("alice", None):
            await subscription.__aenter__()
            assert broker.registry.connection_count("alice") == 2
            await subscription.__aexit__(None, None, None)
            await subscription.__aexit__(None, None, None)
            assert broker.registry.connection_count("alice") == 1
