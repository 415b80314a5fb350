"""The ops page in real headless Chromium: it draws live charts from the status
stream with nothing but its own files, and the token leaves the address bar
without ever being sent in a URL."""

from __future__ import annotations

import anyio
import httpx
import pytest

from tests.support.apps import client_token, make_app
from tests.support.channel import function_body, signed_headers
from tests.support.chromium import headless_chromium
from tests.support.server import run_server
from tests.support.sse_client import SseReader

pytestmark = [pytest.mark.anyio, pytest.mark.browser]

OPS_TOKEN = "ops-token-for-the-browser-test"
VISITORS = 3


async def test_ops_page_draws_live_connection_and_rate_charts(tmp_path):
    app = make_app(ops_token=OPS_TOKEN, status_stream_seconds=0.25)
    with run_server(app) as server:
        async with httpx.AsyncClient(base_url=server.url) as http, anyio.create_task_group() as traffic:
            readers = []
            streams = []
            for number in range(VISITORS):
                params = {"clientId": f"visitor-{number}", "token": client_token(f"visitor-{number}")}
                stream = http.stream("GET", "/sse/connect", params=params)
                response = await stream.__aenter__()
                streams.append(stream)
                readers.append(SseReader(response))
                await readers[-1].next_event()

            async def keep_calling() -> None:
                while True:
                    for number in range(VISITORS):
                        body = function_body("notify", {"clientId": f"visitor-{number}", "message": "hello"})
                        await http.put("/functions", content=body, headers=signed_headers(body))
                    await anyio.sleep(0.1)

            traffic.start_soon(keep_calling)
            try:
                screenshot, seen = await _load_page(server.url, tmp_path)
            finally:
                traffic.cancel_scope.cancel()
                for stream in reversed(streams):
                    await stream.__aexit__(None, None, None)

    assert seen["console_errors"] == []
    assert all(url.startswith(server.url) for url in seen["requests"]), seen["requests"]
    # Review reproduction: the token rode in /ops?token= and in every status stream's URL,
    # so a reverse proxy's access log held it. It comes in the fragment now, never sent.
    assert not any(OPS_TOKEN in url for url in seen["requests"]), seen["requests"]
    assert seen["connections"] == str(VISITORS)
    assert seen["location"].endswith("/ops")  # the token was taken out of the address bar
    assert seen["after_reload"] == str(VISITORS)
    assert seen["stranger_location"].endswith("/ops")
    assert seen["points"]["connections"] >= 4 and seen["points"]["delivered"] >= 4
    assert seen["peak_delivered"] > 0
    assert screenshot.stat().st_size > 10_000


async def _load_page(base_url: str, tmp_path):
    seen: dict = {"console_errors": [], "requests": []}
    async with headless_chromium() as browser:
        page = await browser.new_page(viewport={"width": 1100, "height": 860})
        page.on("console", lambda message: message.type == "error" and seen["console_errors"].append(message.text))
        page.on("pageerror", lambda error: seen["console_errors"].append(str(error)))
        page.on("request", lambda request: seen["requests"].append(request.url))
        await page.goto(f"{base_url}/ops#token={OPS_TOKEN}")
        await page.wait_for_function(
            """() => {
                const line = document.querySelector('#chart-rates polyline[data-series="delivered"]');
                const points = line ? line.getAttribute('points').trim().split(' ') : [];
                return points.length >= 6 && document.querySelector('#delivered-rate').textContent !== '0';
            }""",
            timeout=15_000,
        )
        seen["connections"] = await page.text_content("#connections")
        seen["location"] = await page.evaluate("window.location.href")
        seen["points"] = await page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('svg polyline')].map(
                line => [line.dataset.series, line.getAttribute('points').trim().split(' ').length]))"""
        )
        seen["peak_delivered"] = await page.evaluate(
            """() => Math.max(...document.querySelector('#chart-rates polyline[data-series="delivered"]')
                .getAttribute('points').trim().split(' ').map(p => 220 - Number(p.split(',')[1])))"""
        )
        screenshot = tmp_path / "ops-page.png"
        await page.screenshot(path=str(screenshot), full_page=True)
        # Review reproduction: a reload (the token gone from the URL) was a 401 page.
        await page.reload()
        await page.wait_for_function("() => document.querySelector('#connections').textContent !== '–'", timeout=15_000)
        seen["after_reload"] = await page.text_content("#connections")
        stranger = await browser.new_page()  # another tab: no token kept for it
        await stranger.goto(f"{base_url}/ops")
        await stranger.wait_for_function("() => document.querySelector('#state').dataset.state === 'refused'", timeout=15_000)
        # Review reproduction: following the refusal's advice in the same tab changed only
        # the fragment; the page stayed refused, the token left in the address bar.
        await stranger.goto(f"{base_url}/ops#token={OPS_TOKEN}")
        await stranger.wait_for_function("() => document.querySelector('#connections').textContent !== '–'", timeout=15_000)
        seen["stranger_location"] = await stranger.evaluate("window.location.href")
    return screenshot, seen
