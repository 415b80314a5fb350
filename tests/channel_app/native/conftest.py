"""Fixtures for the native-API tests (see tests/support/fake_channel.py for the doubles)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from tests.support.fake_channel import APP_SECRET, BASE_URL, FakeChannel, FakeClock

from channel_app.native.client import NativeApiClient
from channel_app.native.tokens import TokenManager


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def channel() -> Iterator[FakeChannel]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False, assert_all_mocked=True) as router:
        yield FakeChannel(router)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> NativeApiClient:
    return NativeApiClient(http, base_url=BASE_URL, timeout_seconds=1.0, max_retries=2, backoff_seconds=0)


@pytest.fixture
def tokens(client: NativeApiClient, clock: FakeClock) -> TokenManager:
    return TokenManager(client, APP_SECRET, clock=clock)
