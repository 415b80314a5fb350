"""Headless Chromium (Debian's `chromium` package) driven by Playwright, plus the two servers
a browser test needs: channel-push itself and a customer's website on another port."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.browser.shop import shop_app
from tests.support.apps import make_app
from tests.support.channel import function_body, signed_headers
from tests.support.chromium import CHROMIUM_ARGS, chromium_path
from tests.support.server import RunningServer, free_socket, run_server

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="module")
def browser():
    # Module scope, not session: Playwright's sync API keeps an event loop marked as running on
    # this thread while it is open, which anyio's runner for later async tests refuses to share.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # launch() gives every run a fresh temporary profile (user data dir).
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 900, "height": 600}, locale="ko-KR")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@dataclass
class Sites:
    push: RunningServer
    shop: RunningServer
    push_port: int
    shop_port: int
    _push_running: AbstractContextManager[RunningServer]
    push_overrides: dict

    def restart_push(self, down_seconds: float = 1.0) -> None:
        """Stop channel-push as SIGTERM would (drain, then exit), stay down a moment,
        and start a fresh instance on the same port."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def start(self) -> None:
        self._push_running = run_server(push_app(self.shop_port, **self.push_overrides), port=self.push_port)
        self.push = self._push_running.__enter__()

    def stop(self) -> None:
        self.push.call_in_server_loop(self.push.app.state.lifecycle.begin_drain)
        self._push_running.__exit__(None, None, None)

    def shop_page(self, client_id: str, **query: str) -> str:
        params = httpx.QueryParams({"clientId": client_id, **query})
        return f"{self.shop.url}/shop?{params}"

    def call(self, method: str, input: dict) -> dict:
        body = function_body(method, input)
        response = httpx.put(f"{self.push.url}/functions", content=body, headers=signed_headers(body), timeout=15)
        assert response.status_code == 200, response.text
        return response.json()

    def connections(self) -> int:
        return httpx.get(f"{self.push.url}/sse/status").json()["connections"]


def push_app(shop_port: int, **overrides):
    """channel-push as a site owner configures it: the shop's origin and its http host allowed."""
    settings = {
        "cors_allowed_origins": [f"http://127.0.0.1:{shop_port}"],
        "redirect_allowed_hosts": [],
        "redirect_http_hosts": [f"127.0.0.1:{shop_port}"],
        "retry_ms": 300,
    }
    return make_app(**{**settings, **overrides})


@contextmanager
def running_sites(**push_overrides) -> Iterator[Sites]:
    push_socket, shop_socket = free_socket(), free_socket()  # held from now on, so nothing else takes them
    push_port, shop_port = push_socket.getsockname()[1], shop_socket.getsockname()[1]
    with run_server(shop_app(f"http://127.0.0.1:{push_port}"), sock=shop_socket) as shop:
        push_running = run_server(push_app(shop_port, **push_overrides), sock=push_socket)
        sites = Sites(push_running.__enter__(), shop, push_port, shop_port, push_running, push_overrides)
        try:
            yield sites
        finally:
            sites.stop()


@pytest.fixture
def sites() -> Iterator[Sites]:
    with running_sites() as sites:
        yield sites


@pytest.fixture
def redis_sites(redis_url: str) -> Iterator[Sites]:
    """The same, with channel-push on the real Redis broker."""
    with running_sites(redis_url=redis_url) as sites:
        yield sites
