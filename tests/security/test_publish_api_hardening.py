"""Attacks on POST /api/publish: each test opens with the threat it guards against."""

from __future__ import annotations

import time

import httpx
import pytest

from channel_app.policies import InvalidConfiguration
from security.api_keys import ApiKeys
from security.tokens import mint_client_token
from tests.support.apps import client_token, make_app
from tests.support.channel import CLIENT_JWT_SECRET
from tests.support.http import PUBLISH_KEY, open_stream, publish
from tests.support.server import run_server

pytestmark = pytest.mark.anyio

BODY = {"target": {"topic": "promo"}, "event": "sale", "data": {}}


@pytest.fixture(scope="module")
def server():
    app = make_app(publish_api_keys=f"other-backend-key-0123456789,{PUBLISH_KEY}", publish_jwt_scope="publish", rate_limit_publish_per_key="1000/minute")
    with run_server(app) as running:
        yield running


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["type"]


async def test_publishing_without_a_credential_is_401(server):
    """Anyone on the network pushing events into visitors' pages."""
    response = await publish(server.url, BODY, key=None)
    assert error_of(response) == (401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("key", ["wrong-key-0123456789abcdef", PUBLISH_KEY[:-1], PUBLISH_KEY + "x", "x" * 5000])
async def test_a_wrong_api_key_is_401(server, key):
    """Guessing or truncating a key."""
    assert error_of(await publish(server.url, BODY, key=key)) == (401, "UNAUTHORIZED")


async def test_every_configured_key_works_as_header_or_bearer(server):
    assert (await publish(server.url, BODY)).status_code == 200
    assert (await publish(server.url, BODY, key=None, Authorization=f"Bearer {PUBLISH_KEY}")).status_code == 200
    assert (await publish(server.url, BODY, key="other-backend-key-0123456789")).status_code == 200


async def test_a_jwt_with_the_publish_scope_may_publish(server):
    token = client_token("shop-backend", scope="publish events")
    response = await publish(server.url, BODY, key=None, Authorization=f"Bearer {token}")
    assert response.status_code == 200, response.text


async def test_a_browser_client_token_cannot_publish(server):
    """A visitor reusing the stream token their page was given."""
    token = client_token("visitor-1", topics=["promo"])
    assert error_of(await publish(server.url, BODY, key=None, Authorization=f"Bearer {token}")) == (403, "FORBIDDEN")


async def test_a_forged_or_expired_publish_token_is_401(server):
    forged = client_token("shop-backend", scope="publish")[:-4] + "AAAA"
    expired = mint_client_token(CLIENT_JWT_SECRET, "shop-backend", 60, scope="publish", now=time.time() - 600)
    for token in (forged, expired):
        assert error_of(await publish(server.url, BODY, key=None, Authorization=f"Bearer {token}")) == (401, "INVALID_TOKEN")


async def test_the_api_does_not_exist_unless_configured():
    """A deployment that never asked for the publish API must not expose one."""
    with run_server(make_app()) as bare:
        assert error_of(await publish(bare.url, BODY)) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"target": {"topic": "promo"}, "event": "sale\r\nevent: redirect"}, "CRLF in the event name"),
        ({"target": {"topic": "promo"}, "event": "a\x00b"}, "NUL in the event name"),
        ({"target": {"topic": "promo"}, "event": "e" * 65}, "event name over 64 characters"),
        ({"target": {"topic": "promo"}, "event": "connected"}, "the stream's own event"),
        ({"target": {"topic": "promo"}, "events": [{"event": "ok"}, {"event": "bad\nname"}]}, "CRLF inside a sequence"),
        ({"target": {"topic": "promo\r\n"}, "event": "sale"}, "CRLF in the topic"),
        ({"target": {"clientId": "a", "topic": "promo"}, "event": "sale"}, "two targets"),
        ({"target": {}, "event": "sale"}, "no target"),
        ({"target": {"all": False}, "event": "sale"}, "all: false"),
        ({"target": {"topic": "promo"}}, "no event"),
        ({"target": {"topic": "promo"}, "event": "a", "events": [{"event": "b"}]}, "event and events"),
        ({"target": {"topic": "promo"}, "events": []}, "empty sequence"),
        ({"target": {"topic": "promo"}, "events": [{"event": "c"}] * 101}, "sequence over 100"),
        ({"target": {"topic": "promo"}, "event": "sale", "queueIfOffline": True}, "queueIfOffline for a topic"),
        ({"target": {"topic": "promo"}, "event": "sale", "id": "bad id\n"}, "id with a newline"),
        ({"target": {"topic": "promo"}, "event": "sale", "sneaky": 1}, "unknown field"),
        (["not", "an", "object"], "not an object"),
    ],
)
async def test_invalid_requests_are_400_with_a_reason(server, body, reason):
    response = await publish(server.url, body)
    assert error_of(response) == (400, "INVALID_REQUEST"), reason
    assert response.json()["error"]["message"]


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


async def test_a_payload_nested_deeper_than_we_can_send_is_400_and_nothing_is_published(server):
    """A 600-byte payload nested 300 deep: JSON parses it, but it cannot be encoded
    for the browser; found at publish time it was a 500, half a sequence already sent
    and the request id held IN_PROGRESS."""
    async with open_stream(server.url, "deep-visitor") as (reader, _):
        body = {
            "target": {"clientId": "deep-visitor"},
            "events": [{"event": "first", "data": {}}, {"event": "deep", "data": nested(300)}],
            "id": "deep-1",
        }
        response = await publish(server.url, body)
        assert error_of(response) == (400, "INVALID_REQUEST")
        assert "nested more than 32 levels" in response.json()["error"]["message"]
        fixed = {**body, "events": [{"event": "first", "data": {}}, {"event": "deep", "data": nested(32)}]}
        assert (await publish(server.url, fixed)).json()["delivered"] == 1
        assert [(await reader.next_event()).event for _ in range(2)] == ["first", "deep"]


async def test_data_with_a_number_that_would_lose_digits_is_400(server):
    body = b'{"target": {"clientId": "bigint"}, "event": "x", "data": {"orderId": 18446744073709551617}}'
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/api/publish", content=body, headers={"X-API-Key": PUBLISH_KEY, "Content-Type": "application/json"})
    assert error_of(response) == (400, "INVALID_REQUEST")
    assert "64 bits" in response.json()["error"]["message"]


async def test_an_unexpected_failure_frees_the_request_id_for_a_retry(monkeypatch):
    """A backend locked out of retrying (409 IN_PROGRESS until the id expires)
    because one attempt failed in a way nobody foresaw."""
    app = make_app(publish_api_keys=PUBLISH_KEY)
    with run_server(app) as running:
        sse = app.state.services.sse
        real = sse.publish_topic
        monkeypatch.setattr(sse, "publish_topic", _raises_once(real))
        body = {**BODY, "id": "retry-me"}
        assert error_of(await publish(running.url, body)) == (500, "INTERNAL_ERROR")
        retried = await publish(running.url, body)
        assert retried.status_code == 200, retried.text


def _raises_once(real):
    calls = []

    async def publish_topic(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("unforeseen")
        return await real(*args, **kwargs)

    return publish_topic


async def test_malformed_json_is_400(server):
    assert error_of(await publish(server.url, b'{"target": ')) == (400, "INVALID_JSON")


async def test_an_oversized_body_is_413_before_it_is_read(server):
    """Memory exhaustion through one huge publish."""
    huge = {"target": {"topic": "promo"}, "event": "sale", "data": {"blob": "x" * 70_000}}
    assert error_of(await publish(server.url, huge)) == (413, "PAYLOAD_TOO_LARGE")


async def test_redirect_events_obey_the_redirect_allow_list(server):
    """An API caller navigating visitors to a phishing page."""
    evil = {"target": {"topic": "promo"}, "event": "redirect", "data": {"url": "https://evil.example.net/login"}}
    assert error_of(await publish(server.url, evil)) == (400, "URL_NOT_ALLOWED")
    no_url = {"target": {"topic": "promo"}, "event": "redirect", "data": "https://shop.example.com/"}
    assert error_of(await publish(server.url, no_url)) == (400, "URL_NOT_ALLOWED")
    fine = {"target": {"topic": "promo"}, "event": "redirect", "data": {"url": "https://shop.example.com/sale"}}
    assert (await publish(server.url, fine)).status_code == 200


async def test_a_publisher_over_its_rate_limit_gets_429_and_others_do_not():
    """One leaked or buggy backend flooding every visitor."""
    app = make_app(publish_api_keys=f"{PUBLISH_KEY},second-backend-key-0123456789", rate_limit_publish_per_key="2/minute")
    with run_server(app) as limited:
        assert [(await publish(limited.url, BODY)).status_code for _ in range(2)] == [200, 200]
        refused = await publish(limited.url, BODY)
        assert error_of(refused) == (429, "RATE_LIMITED") and int(refused.headers["retry-after"]) >= 1
        assert (await publish(limited.url, BODY, key="second-backend-key-0123456789")).status_code == 200


async def test_publishes_to_one_client_share_its_function_call_limit():
    app = make_app(publish_api_keys=PUBLISH_KEY, rate_limit_function_per_client="2/minute")
    with run_server(app) as limited:
        body = {"target": {"clientId": "victim"}, "event": "ping"}
        assert [(await publish(limited.url, body)).status_code for _ in range(3)] == [200, 200, 429]
        assert (await publish(limited.url, {**body, "target": {"clientId": "other"}})).status_code == 200


def test_api_keys_match_in_constant_time_against_every_key_and_refuse_short_ones():
    keys = ApiKeys.parse("first-key-0123456789abc, second-key-0123456789abc")
    assert keys.match("second-key-0123456789abc") == keys.match(" second-key-0123456789abc".strip())
    assert keys.match("first-key-0123456789abc") != keys.match("second-key-0123456789abc")
    assert keys.match("first-key-0123456789ab") is None and keys.match("") is None and keys.match(None) is None
    assert "0123456789" not in repr(keys)
    with pytest.raises(ValueError, match="#2"):
        ApiKeys.parse("long-enough-key-0123456789,short")


def test_api_keys_as_a_json_array_are_each_a_key_and_a_broken_array_names_no_key():
    """Review reproduction: the README says lists may be JSON arrays, but the array was
    split on commas, so `["first…"` became the key and every real one got 401."""
    keys = ApiKeys.parse('["first-key-0123456789abc", "second-key-0123456789abc"]')
    assert keys.match("first-key-0123456789abc") and keys.match("second-key-0123456789abc")
    for broken in ('["first-key-0123456789abc", ', '[1234567890123456789]'):
        with pytest.raises(ValueError) as refused:
            ApiKeys.parse(broken)
        assert "0123456789" not in str(refused.value)


def test_a_short_api_key_stops_the_app_before_it_listens():
    """A guessable key configured by mistake."""
    with pytest.raises(InvalidConfiguration, match="PUBLISH_API_KEYS: key #1 is shorter than 16"):
        make_app(publish_api_keys="hunter2")
