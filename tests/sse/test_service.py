"""The in-process Python API (sse/service.py), as README "Using it from Python" shows it."""

from __future__ import annotations

import pytest

from sse.events import Event
from sse.names import InvalidName
from sse.service import SseService
from tests.support.brokers import parse_frame, running_broker

pytestmark = pytest.mark.anyio


async def test_the_readme_calls_answer_counts_and_a_bool():
    async with running_broker() as broker:
        sse = SseService(broker)
        async with broker.subscribe("user-42", None, ("promo",)):
            assert await sse.send_to_client("user-42", Event("notification", {"message": "Hi"})) == 1
            assert await sse.broadcast(Event("notification", {"message": "Sale starts now"})) == 1
            assert await sse.send_to_topic("promo", Event("sale", {"percent": 20})) == 1
            assert await sse.is_client_connected("user-42") is True
        assert await sse.is_client_connected("user-42") is False


@pytest.mark.parametrize(
    "call",
    [
        lambda sse: sse.send_to_client("", Event("notification", {})),
        lambda sse: sse.send_to_client("a b\r\n", Event("notification", {})),
        lambda sse: sse.send_to_client(42, Event("notification", {})),
        lambda sse: sse.send_to_topic("bad topic*", Event("sale", {})),
        lambda sse: sse.is_client_connected("a b"),
        lambda sse: sse.connection_count(""),
    ],
    ids=["empty", "crlf", "number", "bad-topic", "connected-bad", "count-empty"],
)
async def test_an_id_no_stream_could_have_is_refused_not_answered_0(call):
    """Review reproduction: a typo answered 0, exactly like 'nobody connected'."""
    async with running_broker() as broker:
        with pytest.raises(InvalidName):
            await call(SseService(broker))


async def test_a_broadcast_or_topic_field_the_data_has_is_kept():
    """Review reproduction: `"broadcast": false` in a site's own data was turned into true."""
    async with running_broker() as broker:
        sse = SseService(broker)
        async with broker.subscribe("user-42", None, ("promo",)) as subscription:
            await sse.broadcast(Event("sale", {"p": 2, "broadcast": False}))
            await sse.send_to_topic("promo", Event("sale", {"p": 3}))
            first, second = (parse_frame(frame) for frame in subscription.connection.take_pending())
    assert first.data == {"p": 2, "broadcast": False}
    assert second.data == {"p": 3, "topic": "promo"}
