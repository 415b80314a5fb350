"""A page restored from the back/forward cache, in Chromium with that cache on.

Playwright launches Chromium with `--disable-back-forward-cache`, so the other
browser tests never restore a page from it; this module's browser keeps it on.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.chromium import CHROMIUM_ARGS, chromium_path
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True, ignore_default_args=["--disable-back-forward-cache"]
        )
        yield browser
        browser.close()


def open_shop(page, sites, page_name: str) -> None:
    page.goto(sites.shop_page("visitor", page=page_name))
    expect(page.locator("#status")).to_have_text("open", timeout=10_000)


def test_a_restored_page_does_not_act_on_what_the_next_page_handled(page, sites):
    """Review reproduction: back on a page restored from the cache, the widget resumed
    from the last event id that page had seen, so the server replayed every event
    the next page had handled since, and the restored page acted on them again (a
    redirect bounced the visitor forward to where they had just left)."""
    open_shop(page, sites, "first")
    page.evaluate("window.addEventListener('pageshow', function (e) { window.restoredFromCache = e.persisted; })")
    open_shop(page, sites, "second")
    handled_on_second = sites.call("sendEvent", {"clientId": "visitor", "action": "applyCoupon"})["result"]["eventId"]
    wait_until(lambda: page.evaluate("log.events.length") == 1)

    page.go_back(wait_until="commit")  # a restore from the cache fires no load event
    wait_until(lambda: page.evaluate("window.restoredFromCache") is True)  # else this test would prove nothing
    expect(page.locator("#status")).to_have_text("open", timeout=10_000)
    after_return = sites.call("sendEvent", {"clientId": "visitor", "action": "openCart"})["result"]["eventId"]
    wait_until(lambda: after_return in page.evaluate("log.events.map(function (e) { return e.eventId; })"))
    acted_on = page.evaluate("log.events.map(function (e) { return e.eventId; })")
    assert handled_on_second not in acted_on
    assert acted_on == [after_return]


def test_a_page_restored_after_its_token_expired_fetches_a_new_one_before_reconnecting(page, sites):
    """Review reproduction: back on a cached page whose 10-second token had expired,
    the widget reconnected with it, was refused (two 401s in the console) and backed
    off before asking getToken: the visitor was unreachable meanwhile."""
    refused: list[str] = []
    page.on("response", lambda response: refused.append(response.url) if response.status == 401 else None)
    page.goto(sites.shop_page("visitor", token="short"))  # starts with a 10-second token
    expect(page.locator("#status")).to_have_text("open", timeout=10_000)
    page.evaluate("window.addEventListener('pageshow', function (e) { window.restoredFromCache = e.persisted; })")
    open_shop(page, sites, "second")
    page.wait_for_timeout(12_000)  # the first page's token expires while it is cached
    page.go_back(wait_until="commit")
    wait_until(lambda: page.evaluate("window.restoredFromCache") is True)
    expect(page.locator("#status")).to_have_text("open", timeout=10_000)
    assert refused == []
    assert page.evaluate("log.tokensFetched") >= 1
