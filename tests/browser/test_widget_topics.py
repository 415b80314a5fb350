"""The widget with topics and the site's own event names, in real headless Chromium."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from playwright.sync_api import expect

from sse.events import Event
from tests.browser.conftest import running_sites
from tests.support.channel import function_body, signed_headers
from tests.support.http import PUBLISH_KEY
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def sites():
    with running_sites(publish_api_keys=PUBLISH_KEY, allow_broadcast=True) as sites:
        yield sites


def publish(sites, body: dict) -> dict:
    response = httpx.post(f"{sites.push.url}/api/publish", json=body, headers={"X-API-Key": PUBLISH_KEY}, timeout=15)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_chunked_answer_on_a_topic_reaches_the_page_in_order_without_acks(page, sites):
    acks: list[str] = []
    page.on("request", lambda request: acks.append(request.url) if "/sse/ack" in request.url else None)
    page.goto(sites.shop_page("visitor", topics="chat:room-7", events="chunk,complete"))
    expect(page.locator("#status")).to_have_text("open", timeout=10_000)
    events = [{"event": "chunk", "data": {"text": f"{n}번째 "}} for n in range(10)] + [{"event": "complete", "data": {}}]
    answer = publish(sites, {"target": {"topic": "chat:room-7"}, "events": events})
    assert answer["delivered"] == 1
    wait_until(lambda: page.evaluate("log.named.length") == 11)
    named = page.evaluate("log.named")
    assert [item["eventId"] for item in named] == answer["eventIds"]
    assert [item["name"] for item in named] == ["chunk"] * 10 + ["complete"]
    assert "".join(item["data"].get("text", "") for item in named) == "".join(f"{n}번째 " for n in range(10))
    to_client = publish(sites, {"target": {"clientId": "visitor"}, "event": "complete", "data": {"direct": True}})
    wait_until(lambda: page.evaluate("log.named.length") == 12)
    assert page.evaluate("log.named[11].eventId") == to_client["eventId"]
    assert acks == []


def test_notify_to_a_topic_shows_the_toast_and_is_not_acknowledged(page, sites):
    acks: list[str] = []
    page.on("request", lambda request: acks.append(request.url) if "/sse/ack" in request.url else None)
    page.goto(sites.shop_page("visitor", topics="promo"))
    expect(page.locator("#status")).to_have_text("open", timeout=10_000)
    body = function_body("notify", {"topic": "promo", "message": "오늘만 20% 할인"})
    answer = httpx.put(f"{sites.push.url}/functions", content=body, headers=signed_headers(body), timeout=15).json()
    assert answer["result"]["delivered"] == 1
    expect(page.locator(".channelpush-toast-message")).to_have_text("오늘만 20% 할인")
    page.wait_for_timeout(300)  # unlike time.sleep, this lets Playwright deliver request events
    assert acks == []


def test_a_topic_the_token_does_not_allow_closes_the_widget(page, sites):
    page.goto(sites.shop_page("visitor", topics="promo") + "&token=short")  # the initial token lacks the topic
    expect(page.locator("#status")).to_have_text("closed", timeout=10_000)


def test_an_event_published_to_a_topic_by_the_backend_is_shown_and_not_acknowledged(page, sites):
    """The publish API's topic events carry `topic` too, so a big topic's subscribers do
    not each answer every announcement with an acknowledgement."""
    acks: list[str] = []
    page.on("request", lambda request: acks.append(request.url) if "/sse/ack" in request.url else None)
    page.goto(sites.shop_page("visitor", topics="promo"))
    expect(page.locator("#status")).to_have_text("open", timeout=10_000)
    answer = publish(sites, {"target": {"topic": "promo"}, "event": "notification", "data": {"message": "sale today"}})
    assert answer["delivered"] == 1, answer
    expect(page.locator(".channelpush-toast-message")).to_have_text("sale today")
    page.wait_for_timeout(500)
    assert acks == []


def test_a_page_opened_with_queued_events_resumes_from_the_newest_id_not_the_queued_ones(page, sites):
    """Review reproduction: the queued events a new page is handed are older than the
    topic events published before it loaded; the widget's last id stayed at the queued
    one, so its next stream (a token renewal) replayed those older topic events and the
    page acted on them. The stream's `replayed` event carries the newest id."""
    subscriber = page.context.new_page()
    subscriber.goto(sites.shop_page("other", topics="promo"))
    expect(subscriber.locator("#status")).to_have_text("open", timeout=10_000)
    body = function_body("notify", {"clientId": "visitor", "message": "queued for you", "queueIfOffline": True})
    queued = httpx.put(f"{sites.push.url}/functions", content=body, headers=signed_headers(body), timeout=15).json()["result"]
    earlier = publish(sites, {"target": {"topic": "promo"}, "event": "notification", "data": {"message": "before the page"}})
    assert queued["queued"] and earlier["delivered"] == 1
    page.goto(sites.shop_page("visitor", topics="promo"))
    expect(page.locator(".channelpush-toast-message")).to_have_text("queued for you", timeout=10_000)
    wait_until(lambda: page.evaluate("window.push.lastEventId") == earlier["eventId"])


def test_events_sent_to_many_tabs_or_needing_no_answer_are_not_acknowledged(page, sites):
    """Review reproduction: events sent from Python to a topic, and every broadcast, were
    acknowledged by every open tab, though no call can wait for them (with Redis, a key
    and a PUBLISH each). Topic and broadcast data are marked now, and notifications
    (which no call can wait for) are not acknowledged; a redirect to one client still is."""
    acks: list[str] = []
    page.on("request", lambda request: acks.append(request.post_data or "") if "/sse/ack" in request.url else None)
    page.goto(sites.shop_page("visitor", topics="promo"))
    expect(page.locator("#status")).to_have_text("open", timeout=10_000)
    sse = sites.push.app.state.services.sse
    for sending in (
        sse.send_to_topic("promo", Event("custom", {"type": "custom", "action": "from-python-topic", "payload": {}})),
        sse.broadcast(Event("custom", {"type": "custom", "action": "from-python-all", "payload": {}})),
        sse.send_to_client("visitor", Event("notification", {"type": "notification", "message": "just a notice"})),
    ):
        assert asyncio.run_coroutine_threadsafe(sending, sites.push.loop).result(timeout=10) == 1
    wait_until(lambda: len(page.evaluate("log.events")) == 2)
    expect(page.locator(".channelpush-toast-message")).to_have_text("just a notice")
    body = function_body("sendEvent", {"clientId": "visitor", "action": "to-me", "payload": {}})
    sent = httpx.put(f"{sites.push.url}/functions", content=body, headers=signed_headers(body), timeout=15).json()
    wait_until(lambda: len(page.evaluate("log.events")) == 3)
    page.wait_for_timeout(500)  # unlike time.sleep, this lets Playwright deliver request events
    assert len(acks) == 1 and sent["result"]["eventId"] in acks[0]
