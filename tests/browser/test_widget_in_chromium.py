"""The embeddable widget in real headless Chromium, against real servers: channel-push on one port,
the customer's shop (which embeds /widget.js) on another, so every request is cross-origin."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from playwright.sync_api import expect

from sse.events import Event
from tests.browser.conftest import push_app, running_sites
from tests.support.apps import DEVELOPMENT_SECRETS, make_app
from tests.support.channel import function_body, signed_headers
from tests.support.server import free_port, run_server
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser

KOREAN_TITLE = "주문 안내"
KOREAN_MESSAGE = "결제 페이지로 이동할 준비가 되었습니다. 감사합니다!"


def open_shop(page, sites, client_id: str, **query: str) -> None:
    page.goto(sites.shop_page(client_id, **query))
    expect(page.locator("#status")).to_have_text("open", timeout=10_000)


def in_server_loop(server, coroutine):
    return asyncio.run_coroutine_threadsafe(coroutine, server.loop).result(timeout=10)


def test_signed_redirect_navigates_to_the_allowed_local_url(page, sites):
    open_shop(page, sites, "visitor")
    target = f"{sites.shop.url}/checkout?step=1"
    answer = sites.call("redirectClient", {"clientId": "visitor", "url": target})
    assert answer["result"]["delivered"] == 1
    page.wait_for_url(target)
    expect(page.locator("h1")).to_have_text("Checkout")
    wait_until(lambda: sites.connections() == 0)  # leaving the page closed its stream


def test_wait_for_ack_answers_acknowledged_true_once_the_browser_navigated(page, sites):
    open_shop(page, sites, "visitor")
    target = f"{sites.shop.url}/checkout"
    started = time.monotonic()
    result = sites.call("redirectClient", {"clientId": "visitor", "url": target, "waitForAck": 5000})["result"]
    assert time.monotonic() - started < 4
    assert result["acknowledged"] is True
    assert result["ackOutcome"] == "done"
    assert result["attributes"]["message"].endswith("the browser confirmed it acted on it")
    page.wait_for_url(target)


def test_notify_shows_a_dismissible_accessible_toast(page, sites, artifacts):
    open_shop(page, sites, "visitor")
    message = "Your parcel is on its way."
    sites.call("notify", {"clientId": "visitor", "title": "Order shipped", "message": message, "level": "success"})
    region = page.get_by_role("status")
    expect(region).to_contain_text(message)
    expect(region).to_have_attribute("aria-live", "polite")
    toast = page.locator(".channelpush-toast")
    expect(toast).to_be_visible()
    expect(toast).to_have_attribute("data-level", "success")
    page.screenshot(path=artifacts / "toast.png")
    page.get_by_role("button", name="Dismiss notification").click()
    expect(toast).to_have_count(0)


def test_korean_notification_shows_correctly(page, sites, artifacts):
    open_shop(page, sites, "visitor")
    sites.call("notify", {"clientId": "visitor", "title": KOREAN_TITLE, "message": KOREAN_MESSAGE})
    expect(page.locator(".channelpush-toast-title")).to_have_text(KOREAN_TITLE)
    expect(page.locator(".channelpush-toast-message")).to_have_text(KOREAN_MESSAGE)
    page.screenshot(path=artifacts / "toast-korean.png")


def test_notification_text_is_shown_as_text_never_as_html(page, sites):
    open_shop(page, sites, "visitor")
    sites.call("notify", {"clientId": "visitor", "message": '<img src=x onerror="document.title=\'pwned\'">'})
    expect(page.locator(".channelpush-toast-message")).to_have_text('<img src=x onerror="document.title=\'pwned\'">')
    assert page.locator(".channelpush-toast img").count() == 0
    assert page.title() == "Test shop"


def test_refused_url_never_navigates(page, sites):
    open_shop(page, sites, "visitor")
    shop_url = page.url
    answer = sites.call("redirectClient", {"clientId": "visitor", "url": "https://evil.example.net/login"})
    assert answer["error"]["type"] == "URL_NOT_ALLOWED"
    sites.call("notify", {"clientId": "visitor", "message": "marker"})
    expect(page.locator(".channelpush-toast-message")).to_have_text("marker")
    assert page.url == shop_url


@pytest.mark.parametrize("data", [{"url": "javascript:document.title='pwned'"}, {}], ids=["javascript", "no-url"])
def test_widget_refuses_a_non_http_redirect_even_if_one_reached_it(page, sites, data):
    """Defence in depth: should a javascript: URL (or none at all, which once resolved to
    a page called /undefined) ever get past the server, the widget refuses it."""
    open_shop(page, sites, "visitor")
    services = sites.push.app.state.services
    event = Event("redirect", {"type": "redirect", **data})
    delivery = in_server_loop(sites.push, services.sse.publish("visitor", event))
    assert in_server_loop(sites.push, services.acks.wait("visitor", delivery.event_id, 5)) == "refused"
    assert page.title() == "Test shop"
    assert page.url.startswith(f"{sites.shop.url}/shop")


def test_custom_event_reaches_dom_listeners_and_on_event_and_is_acknowledged(page, sites):
    open_shop(page, sites, "visitor")
    payload = {"sku": "A-1", "이름": "사과"}
    result = sites.call("sendEvent", {"clientId": "visitor", "action": "cart.highlight", "payload": payload, "waitForAck": 5000})["result"]
    assert result["acknowledged"] is True
    expected = {"action": "cart.highlight", "payload": payload, "eventId": result["eventId"]}
    for received in (page.evaluate("log.events"), page.evaluate("log.domEvents")):
        assert len(received) == 1
        assert {key: received[0][key] for key in expected} == expected


def test_widget_reconnects_after_server_restart_and_receives_the_next_event(page, sites):
    open_shop(page, sites, "visitor")
    sites.restart_push()
    wait_until(lambda: sites.connections() == 1, timeout=15)
    expect(page.locator("#status")).to_have_text("open")
    assert "retrying" in page.evaluate("log.statuses")
    sites.call("notify", {"clientId": "visitor", "message": "다시 연결되었습니다"})
    expect(page.locator(".channelpush-toast-message")).to_have_text("다시 연결되었습니다")


@pytest.mark.redis
def test_widget_reconnects_after_server_restart_and_receives_the_event_queued_meanwhile(page, redis_sites):
    open_shop(page, redis_sites, "visitor")
    redis_sites.stop()
    # While the visitor's instance is down, a call lands on another instance sharing Redis.
    with run_server(push_app(redis_sites.shop_port, redis_url=redis_sites.push_overrides["redis_url"])) as other:
        body = function_body("notify", {"clientId": "visitor", "message": "기다리던 알림", "queueIfOffline": True})
        answer = httpx.put(f"{other.url}/functions", content=body, headers=signed_headers(body), timeout=15).json()
    assert answer["result"]["queued"] is True
    redis_sites.start()
    expect(page.locator(".channelpush-toast-message")).to_have_text("기다리던 알림", timeout=15_000)
    assert "retrying" in page.evaluate("log.statuses")


def test_expired_token_is_replaced_through_get_token_before_retrying(page, sites):
    open_shop(page, sites, "visitor", token="expired")
    assert page.evaluate("log.tokensFetched") == 1
    assert page.evaluate("log.statuses") == ["connecting", "retrying", "connecting", "open"]
    sites.call("notify", {"clientId": "visitor", "message": "fresh token"})
    expect(page.locator(".channelpush-toast-message")).to_have_text("fresh token")


def test_token_is_renewed_before_it_expires_and_the_stream_resumes_from_the_last_event_id(page, sites):
    connect_urls: list[str] = []
    page.on("request", lambda request: connect_urls.append(request.url) if "/sse/connect" in request.url else None)
    open_shop(page, sites, "visitor", token="short")
    # Playwright's sync API hands over events only while one of its calls runs, so the renewal's
    # request is awaited with expect_request rather than by polling connect_urls.
    with page.expect_request(lambda request: "/sse/connect" in request.url and "lastEventId=" in request.url, timeout=20_000) as renewal:
        # level "error" keeps the toast up 15 s (info: 8 s), past the renewal, so the count below sees it.
        first = sites.call("notify", {"clientId": "visitor", "message": "one", "level": "error"})["result"]["eventId"]
        expect(page.locator(".channelpush-toast-message")).to_have_text("one")
    assert page.evaluate("log.tokensFetched") == 1
    assert httpx.URL(renewal.value.url).params["lastEventId"] == first
    assert len(connect_urls) == 2  # renewed before expiry: no reconnect with the old token
    wait_until(lambda: sites.connections() == 1)  # the old stream closed once the new one opened
    assert page.evaluate("log.statuses") == ["connecting", "open"]  # no gap the page could see
    assert len(connect_urls) == 2
    sites.call("notify", {"clientId": "visitor", "message": "two"})
    expect(page.locator(".channelpush-toast-message").last).to_have_text("two")
    assert page.locator(".channelpush-toast-message").all_inner_texts() == ["one", "two"]  # nothing acted on twice


def test_demo_page_connects_and_its_buttons_fire_signed_calls(page, artifacts):
    port = free_port()
    app = make_app(app_env="development", port=port, redirect_allowed_hosts=[], redirect_http_hosts=[], **DEVELOPMENT_SECRETS)
    with run_server(app, port=port) as server:
        page.goto(f"{server.url}/")
        expect(page.locator("#state")).to_have_text("open", timeout=10_000)
        page.get_by_role("button", name="notify (한국어)").click()
        expect(page.locator(".channelpush-toast-title")).to_have_text(KOREAN_TITLE)
        page.screenshot(path=artifacts / "demo.png", full_page=True)
        page.get_by_role("button", name="redirectClient → landing page (waitForAck 3000)").click()
        page.wait_for_url(f"{server.url}/demo/landing?clientId=demo-visitor")
        expect(page.locator("h1")).to_have_text("Landing page: redirectClient brought you here")
        expect(page.locator("#calls")).to_contain_text('"acknowledged": true', timeout=10_000)


def test_a_renewal_refused_by_the_tab_cap_keeps_the_working_stream(page):
    """At the per-client cap, the renewal's second stream is refused (429): the stream
    that works must carry on rather than be closed along with it."""
    with running_sites(max_connections_per_client=1) as capped:
        open_shop(page, capped, "visitor", token="short")
        with page.expect_request(lambda request: "/sse/connect" in request.url, timeout=20_000):
            pass  # the renewal's connect, refused
        page.wait_for_timeout(300)
        answer = capped.call("notify", {"clientId": "visitor", "message": "still here"})
        assert answer["result"]["delivered"] == 1, answer
        expect(page.locator(".channelpush-toast-message")).to_have_text("still here")
        assert "retrying" not in page.evaluate("log.statuses")


def test_an_acknowledgement_during_a_renewal_is_sent_once_the_new_token_arrives(page, sites):
    """Between tokens the widget used to drop acknowledgements, so waitForAck reported a
    timeout for an event the page had acted on."""
    open_shop(page, sites, "visitor", token="short", tokenDelay="3")
    wait_until(lambda: page.evaluate("log.tokensFetched") == 1, timeout=20)  # renewal begun, token pending
    answer = sites.call("sendEvent", {"clientId": "visitor", "action": "openCart", "waitForAck": 5000})["result"]
    assert (answer["acknowledged"], answer["ackOutcome"]) == (True, "done")
    assert [event["action"] for event in page.evaluate("log.events")] == ["openCart"]


def test_a_page_opened_while_redis_is_down_backs_off_and_never_claims_to_be_open(page, redis_sites, redis_server):
    """An instance without Redis answers 200 with only a retry hint; counting that as
    open made every page report `open` and reconnect at a fixed pace for the whole outage."""
    redis_server.stop()
    try:
        page.goto(redis_sites.shop_page("visitor"))
        page.wait_for_timeout(3000)
        assert "open" not in page.evaluate("log.statuses")
        assert page.evaluate("log.statuses").count("retrying") >= 1
    finally:
        redis_server.start()
    expect(page.locator("#status")).to_have_text("open", timeout=20_000)
    redis_sites.call("notify", {"clientId": "visitor", "message": "back"})
    expect(page.locator(".channelpush-toast-message")).to_have_text("back")


def test_an_event_named_error_reaches_its_handler_and_is_not_taken_for_a_dropped_stream(page, sites):
    """EventSource hands a server event named `error` to `onerror` as well (a sequence may
    end in one: channel_app/publishing.py). The widget took it for a dropped connection:
    status `retrying` on a healthy stream, and its next real drop handled as a refusal."""
    open_shop(page, sites, "visitor", events="error")
    services = sites.push.app.state.services
    for name in ("error", "notification"):
        data = {"code": "llm_timeout"} if name == "error" else {"type": "notification", "message": "still here"}
        in_server_loop(sites.push, services.sse.publish("visitor", Event(name, data)))
    expect(page.locator(".channelpush-toast-message")).to_have_text("still here")
    assert [entry["data"] for entry in page.evaluate("log.named")] == [{"code": "llm_timeout"}]
    assert page.evaluate("log.statuses") == ["connecting", "open"]
    expect(page.locator("#status")).to_have_text("open")


def test_events_named_like_object_members_reach_their_handlers(page, sites):
    """Review reproduction: `toString` and `constructor` were taken for built-in events
    (a lookup on a plain object found Object.prototype's), so they never reached the page."""
    open_shop(page, sites, "visitor", events="toString,constructor")
    services = sites.push.app.state.services
    for name in ("toString", "constructor"):
        in_server_loop(sites.push, services.sse.publish("visitor", Event(name, {"n": name})))
    wait_until(lambda: page.evaluate("log.named.length") == 2)
    assert [entry["name"] for entry in page.evaluate("log.named")] == ["toString", "constructor"]


def test_a_refused_topic_closes_the_widget_naming_the_topic_problem(page, sites):
    """Review reproduction: 400 INVALID_TOPIC and TOO_MANY_TOPICS were reported as `invalid_client_id`."""
    page.goto(sites.shop_page("visitor", topics="bad topic"))
    expect(page.locator("#status")).to_have_text("closed", timeout=10_000)
    assert page.evaluate("log.details[log.details.length - 1]") == {"reason": "invalid_topic", "status": 400}


@pytest.mark.parametrize("token", ["'   '", "42"])
def test_connect_with_a_blank_or_non_string_token_and_no_get_token_throws(page, sites, token):
    """Review reproduction: it retried forever, logging that getToken is not a function."""
    open_shop(page, sites, "visitor")
    thrown = page.evaluate(
        "() => { try { ChannelPush.connect({clientId: 'other', token: %s}); return null; } catch (e) { return e.name + ': ' + e.message; } }" % token
    )
    assert thrown is not None and thrown.startswith("TypeError")


def test_a_page_that_embeds_the_widget_twice_holds_one_stream_and_acts_once(page, sites):
    """Before, the second embed opened a second stream: every notification showed
    twice, every redirect ran twice, and two of the client's five slots were taken."""
    open_shop(page, sites, "visitor", twice="1")
    assert page.evaluate("log.secondIsFirst") is True
    answer = sites.call("notify", {"clientId": "visitor", "message": "only once"})
    assert answer["result"]["delivered"] == 1
    expect(page.locator(".channelpush-toast-message")).to_have_text("only once")
    assert sites.connections() == 1


def test_loaded_async_the_widget_runs_the_queued_setup(page, sites):
    """Review reproduction: with `<script async>` (or defer) the README's inline
    snippet ran first and threw `ChannelPush is not defined`; the page stayed unreachable."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_shop(page, sites, "visitor", **{"async": "1"})
    sites.call("notify", {"clientId": "visitor", "message": "async works"})
    expect(page.locator(".channelpush-toast-message")).to_have_text("async works")
    assert errors == []


def test_a_page_loaded_while_the_service_is_down_throws_nothing(page, sites):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sites.stop()
    try:
        page.goto(sites.shop_page("visitor", **{"async": "1"}))
        page.wait_for_timeout(500)
        assert page.evaluate("typeof window.push") == "undefined"
    finally:
        sites.start()
    assert errors == []


def test_a_page_on_an_origin_the_service_does_not_allow_closes_saying_so(page):
    """Review reproduction: on an origin missing from CORS_ALLOWED_ORIGINS, the refused
    preflight of /sse/check (its Authorization header) and the unreadable 403 looked like
    an unreachable service: the widget retried for good, reporting `unreachable`."""
    with running_sites(cors_allowed_origins=["https://shop.example.com"]) as sites:
        page.goto(sites.shop_page("visitor"))
        expect(page.locator("#status")).to_have_text("closed", timeout=10_000)
        assert page.evaluate("log.details[log.details.length - 1]") == {"reason": "forbidden_origin", "status": 403}
        assert sites.connections() == 0


def test_a_renewal_failing_after_the_old_stream_ended_is_retried_not_left_open(page, sites):
    """Review reproduction: the renewal's getToken failed after the old stream had ended
    (its token expired, its reconnect refused 401, an error ignored while it was being
    replaced); the widget put that dead stream back and said `open` for good, with no
    stream, no retry, and every call answered CLIENT_NOT_CONNECTED."""
    open_shop(page, sites, "visitor", token="short", tokenDelay="3.5", tokenFailFirst="1")
    wait_until(lambda: page.evaluate("log.tokensFetched") >= 2, timeout=30)  # the failure was taken up
    expect(page.locator("#status")).to_have_text("open", timeout=20_000)
    assert "retrying" in page.evaluate("log.statuses")
    wait_until(lambda: sites.connections() == 1)
    sites.call("notify", {"clientId": "visitor", "message": "back"})
    expect(page.locator(".channelpush-toast-message")).to_have_text("back")


def test_a_browser_clock_running_slow_still_renews_before_the_server_ends_the_stream(page, sites):
    """Review reproduction: renewal was planned on the browser's clock; 20 s slow, it came
    after the server had ended the stream at the token's expiry, so the visitor dropped
    off (calls answered CLIENT_NOT_CONNECTED) at every expiry."""
    page.add_init_script("(() => { const realNow = Date.now; Date.now = () => realNow() - 20000; })();")
    connect_urls: list[str] = []
    page.on("request", lambda request: connect_urls.append(request.url) if "/sse/connect" in request.url else None)
    open_shop(page, sites, "visitor", token="short")
    with page.expect_request(lambda request: "/sse/connect" in request.url and "lastEventId=" in request.url, timeout=20_000):
        sites.call("notify", {"clientId": "visitor", "message": "one", "level": "error"})
        expect(page.locator(".channelpush-toast-message")).to_have_text("one")
    wait_until(lambda: sites.connections() == 1)
    page.wait_for_timeout(3000)  # past the old token's expiry
    assert page.evaluate("log.statuses") == ["connecting", "open"]  # renewed in time: no gap
