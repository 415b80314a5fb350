"""GET /widget.js: plain JavaScript, cacheable, versioned by its content."""

from __future__ import annotations

import hashlib
from importlib.resources import files

import httpx
import pytest

from tests.support.apps import make_app

pytestmark = pytest.mark.anyio

WIDGET_BYTES = (files("channel_app") / "static" / "widget.js").read_bytes()
VERSION = hashlib.sha256(WIDGET_BYTES).hexdigest()[:16]


@pytest.fixture
async def http():
    app = make_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


async def test_widget_is_served_as_javascript_with_etag_and_short_cache(http):
    response = await http.get("/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["etag"] == f'"{VERSION}"'
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == WIDGET_BYTES
    assert b"ChannelPush" in response.content


async def test_matching_if_none_match_is_304_without_body(http):
    for value in (f'"{VERSION}"', f'W/"{VERSION}"', f'"other", "{VERSION}"', "*"):
        response = await http.get("/widget.js", headers={"If-None-Match": value})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == f'"{VERSION}"'


async def test_stale_if_none_match_gets_the_current_file(http):
    response = await http.get("/widget.js", headers={"If-None-Match": '"0123456789abcdef"'})
    assert response.status_code == 200
    assert response.content == WIDGET_BYTES


async def test_current_version_query_is_cached_as_immutable(http):
    response = await http.get("/widget.js", params={"v": VERSION})
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


async def test_unknown_version_query_never_gets_the_long_cache(http):
    response = await http.get("/widget.js", params={"v": "0123456789abcdef"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"


async def test_widget_is_served_in_production_too(http):
    assert (await http.head("/widget.js")).status_code == 200
