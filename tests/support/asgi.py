"""In-process clients for non-streaming endpoints (ASGITransport buffers bodies,
so streams go through tests/support/server.py instead)."""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

import httpx

from channel_app.app import create_app
from tests.support.apps import make_settings


@contextlib.asynccontextmanager
async def asgi_client(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(**overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
