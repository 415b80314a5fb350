"""Threat: someone else's stream. An attacker who can open a visitor's event
stream sees where ALF sends them and what it tells them; one who can flood
connects starves real visitors.

Each test names the attack it stops on GET /sse/connect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import contextlib
import json
import logging
import re
import select
import socket
import time
from typing import Iterator

import anyio
import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from channel_app import header_limit
from channel_app.policies import InvalidConfiguration
from tests.support.apps import client_token, make_app
from tests.support.channel import function_body, signed_headers
from tests.support.asgi import asgi_client
from tests.support.server import run_server
from tests.support.sse_client import SseReader
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio

AUDIENCE = "https://push.shop.example.com"


def rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public_pem


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def claims(sub: str, **extra) -> dict:
    return {"sub": sub, "exp": int(time.time()) + 600, "iat": int(time.time()), **extra}


async def connect_status(http: httpx.AsyncClient, client_id: str, token: str | None, **headers) -> int:
    params = {"clientId": client_id, **({"token": token} if token else {})}
    return (await http.get("/sse/connect", params=params, headers=headers)).status_code


async def opens_stream(server_url: str, client_id: str, token: str) -> bool:
    async with httpx.AsyncClient(base_url=server_url, timeout=5) as http:
        async with http.stream("GET", "/sse/connect", params={"clientId": client_id, "token": token}) as response:
            if response.status_code != 200:
                return False
            return (await SseReader(response).next_event()).event == "connected"


async def test_stream_of_another_client_cannot_be_opened_with_own_token():
    async with asgi_client() as http:
        assert await connect_status(http, "victim", client_token("attacker")) == 403


async def test_unsigned_alg_none_token_is_refused():
    forged = jwt.encode(claims("victim"), key=None, algorithm="none")
    async with asgi_client() as http:
        assert await connect_status(http, "victim", forged) == 401


async def test_token_without_sub_is_refused():
    from tests.support.channel import CLIENT_JWT_SECRET

    token = jwt.encode({"exp": int(time.time()) + 600}, CLIENT_JWT_SECRET, algorithm="HS256")
    async with asgi_client() as http:
        assert await connect_status(http, "victim", token) == 401


async def test_hs256_token_made_with_the_rsa_public_key_is_refused_when_rs256_is_configured():
    _, public_pem = rsa_pair()
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header).encode()) + b"." + b64url(json.dumps(claims("victim")).encode())
    signature = hmac.new(public_pem.encode(), signing_input, hashlib.sha256).digest()
    confused = (signing_input + b"." + b64url(signature)).decode()
    async with asgi_client(client_jwt_public_key=public_pem, client_jwt_secret=None, client_jwt_audience=AUDIENCE) as http:
        assert await connect_status(http, "victim", confused) == 401


async def test_rs256_client_tokens_from_a_pem_key_open_streams():
    private, public_pem = rsa_pair()
    with run_server(make_app(client_jwt_public_key=public_pem, client_jwt_secret=None, client_jwt_audience=AUDIENCE)) as server:
        assert await opens_stream(server.url, "visitor", jwt.encode(claims("visitor", aud=AUDIENCE), private, algorithm="RS256"))
        other_private, _ = rsa_pair()
        assert not await opens_stream(server.url, "visitor", jwt.encode(claims("visitor", aud=AUDIENCE), other_private, algorithm="RS256"))
        meant_for_another_app = jwt.encode(claims("visitor", aud="https://api.example.com"), private, algorithm="RS256")
        assert not await opens_stream(server.url, "visitor", meant_for_another_app)


async def test_es256_tokens_from_a_jwks_url_open_streams_and_unknown_keys_are_refused():
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": "key-1", "use": "sig", "alg": "ES256"})
    jwks_url = "https://id.example.com/.well-known/jwks.json"
    settings = {"client_jwt_jwks_url": jwks_url, "client_jwt_secret": None, "client_jwt_algorithms": ["ES256"], "client_jwt_audience": AUDIENCE}
    with respx.mock(assert_all_mocked=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        route = mock.get(jwks_url).respond(json={"keys": [jwk]})
        with run_server(make_app(**settings)) as server:
            good = jwt.encode(claims("visitor", aud=AUDIENCE), private, algorithm="ES256", headers={"kid": "key-1"})
            assert await opens_stream(server.url, "visitor", good)
            stranger = jwt.encode(claims("visitor", aud=AUDIENCE), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "key-2"})
            assert not await opens_stream(server.url, "visitor", stranger)
        assert route.called


async def test_while_the_jwks_cannot_be_fetched_a_good_token_is_told_503_to_wait_not_401():
    """Review reproduction: a JWKS outage answered 401 INVALID_TOKEN, on which the
    widget stops for good (a fixed token) or every visitor fetches a new token at
    once (getToken); the token was fine, the key server was not."""
    private = ec.generate_private_key(ec.SECP256R1())
    jwks_url = "https://id.example.com/.well-known/jwks.json"
    settings = {
        "client_jwt_jwks_url": jwks_url, "client_jwt_secret": None, "client_jwt_algorithms": ["ES256"],
        "client_jwt_audience": AUDIENCE, "publish_jwt_scope": "publish",
    }
    token = jwt.encode(claims("visitor", aud=AUDIENCE), private, algorithm="ES256", headers={"kid": "key-1"})
    with respx.mock(assert_all_mocked=False) as mock:
        mock.get(jwks_url).respond(503)
        async with asgi_client(**settings) as http:
            answers = [
                await http.get("/sse/check", params={"clientId": "visitor", "token": token}),
                await http.get("/sse/connect", params={"clientId": "visitor", "token": token}),
                await http.post("/api/publish", json={"target": {"clientId": "v"}, "event": "e", "data": {}}, headers={"Authorization": f"Bearer {token}"}),
            ]
    for answer in answers:
        assert (answer.status_code, answer.json()["error"]["type"]) == (503, "UNAVAILABLE")
        assert 1 <= int(answer.headers["retry-after"]) <= 30


@pytest.mark.parametrize("key_source", ["public_key", "jwks_url"])
def test_production_refuses_a_public_key_or_jwks_without_an_audience(key_source):
    # An identity provider's key signs tokens for every app it serves; without an
    # audience, a visitor's token for any of them would open their streams here.
    source = {"client_jwt_public_key": rsa_pair()[1]} if key_source == "public_key" else {
        "client_jwt_jwks_url": "https://id.example.com/.well-known/jwks.json", "client_jwt_algorithms": ["RS256"]}
    with pytest.raises(InvalidConfiguration, match="CLIENT_JWT_AUDIENCE must be set"):
        make_app(client_jwt_secret=None, **source)
    make_app(client_jwt_secret=None, client_jwt_audience=AUDIENCE, **source)
    make_app(client_jwt_secret=None, app_env="development", **source)


async def test_token_for_another_audience_or_issuer_is_refused():
    from tests.support.channel import CLIENT_JWT_SECRET

    config = {"client_jwt_audience": "channel-push", "client_jwt_issuer": "https://shop.example.com"}
    async with asgi_client(**config) as http:
        wrong_aud = jwt.encode(claims("v", aud="other", iss="https://shop.example.com"), CLIENT_JWT_SECRET, "HS256")
        wrong_iss = jwt.encode(claims("v", aud="channel-push", iss="https://evil.example"), CLIENT_JWT_SECRET, "HS256")
        assert await connect_status(http, "v", wrong_aud) == 401
        assert await connect_status(http, "v", wrong_iss) == 401


async def test_connect_flood_from_one_ip_gets_429_with_retry_after():
    async with asgi_client(rate_limit_connect_per_ip="3/minute") as http:
        statuses = [await connect_status(http, "visitor", None) for _ in range(4)]
        response = await http.get("/sse/connect", params={"clientId": "visitor"})
    assert statuses == [401, 401, 401, 429]
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["type"] == "RATE_LIMITED"


async def test_reconnect_storm_for_one_client_gets_429():
    with run_server(make_app(rate_limit_connect_per_client="2/minute")) as server:
        token = client_token("visitor")
        assert await opens_stream(server.url, "visitor", token)
        assert await opens_stream(server.url, "visitor", token)
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert await connect_status(http, "visitor", token) == 429


async def test_instance_connection_cap_refuses_with_503():
    with run_server(make_app(max_connections=1)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            params = {"clientId": "first", "token": client_token("first")}
            async with http.stream("GET", "/sse/connect", params=params) as response:
                response_reader = SseReader(response)
                await response_reader.next_event()
                refused = await http.get("/sse/connect", params={"clientId": "second", "token": client_token("second")})
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "INSTANCE_FULL"


async def test_stream_ends_cleanly_at_maximum_lifetime():
    with run_server(make_app(max_stream_seconds=1)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            params = {"clientId": "visitor", "token": client_token("visitor")}
            started = time.monotonic()
            async with http.stream("GET", "/sse/connect", params=params) as response:
                reader = SseReader(response)
                await reader.until_end(timeout=4)
    assert time.monotonic() - started < 3.5
    assert reader.retries == [3000, 250]  # the browser comes straight back after a planned end


async def test_streams_opened_together_end_at_different_times_within_the_maximum_lifetime():
    """Every visitor reconnects at once after a restart; without jitter they all ended,
    and reconnected, in the same instant MAX_STREAM_SECONDS later."""
    app = make_app(max_stream_seconds=1000)
    with run_server(app) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http, contextlib.AsyncExitStack() as streams:
            readers = []
            for n in range(5):
                params = {"clientId": f"visitor-{n}", "token": client_token(f"visitor-{n}", 3600)}
                readers.append(SseReader(await streams.enter_async_context(http.stream("GET", "/sse/connect", params=params))))
                await readers[-1].next_event()
            now = server.loop.time()
            ends = [connection._expiry.when() - now for connection in app.state.services.broker.registry.connections()]
    assert len(ends) == 5 and all(895 < end <= 1000 for end in ends)
    assert max(ends) - min(ends) > 1  # opened within a second; five draws from 100 s of jitter


async def test_status_shows_counts_to_anyone_but_client_ids_only_to_operators():
    with run_server(make_app(ops_token="ops-secret-token")) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            params = {"clientId": "visitor-9", "token": client_token("visitor-9")}
            async with http.stream("GET", "/sse/connect", params=params) as response:
                response_reader = SseReader(response)
                await response_reader.next_event()
                public = (await http.get("/sse/status")).json()
                wrong = (await http.get("/sse/status", headers={"Authorization": "Bearer nope"})).json()
                operator = (await http.get("/sse/status", headers={"Authorization": "Bearer ops-secret-token"})).json()
    assert public["connections"] == 1
    assert "clients" not in public and "clients" not in wrong
    assert operator["clients"] == [{"clientId": "visitor-9", "connections": 1}]


ALLOWED_ORIGIN = "https://shop.example.com"


@pytest.mark.parametrize(("origin", "allowed"), [(ALLOWED_ORIGIN, True), ("https://evil.example", False)])
async def test_cors_preflight_and_simple_requests_follow_the_origin_list(origin, allowed):
    async with asgi_client(cors_allowed_origins=[ALLOWED_ORIGIN]) as http:
        preflight = await http.options(
            "/sse/connect",
            headers={"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"},
        )
        simple = await http.get("/sse/status", headers={"Origin": origin})
    if allowed:
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert simple.headers["access-control-allow-origin"] == origin
    else:
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers
        assert "access-control-allow-origin" not in simple.headers


async def test_wildcard_cors_never_allows_credentials():
    async with asgi_client(cors_allowed_origins=["*"]) as http:
        response = await http.get("/sse/status", headers={"Origin": "https://any.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


FOREIGN_ORIGIN = "https://evil.example"


async def _with_cookie(
    http: httpx.AsyncClient, method: str, path: str, origin: str | None, headers_extra: dict | None = None, **kwargs
) -> httpx.Response:
    headers = {"Cookie": f"channel_push_token={client_token('visitor')}", **(headers_extra or {})}
    if origin is not None:
        headers["Origin"] = origin
    return await http.request(method, path, headers=headers, **kwargs)


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/sse/connect", {"params": {"clientId": "visitor"}}),
        ("GET", "/sse/check", {"params": {"clientId": "visitor"}}),
        ("POST", "/sse/ack", {"content": json.dumps({"clientId": "visitor", "eventId": "1-0"})}),
    ],
)
async def test_a_cookie_token_sent_by_a_foreign_page_is_refused(method, path, kwargs):
    """Cross-site request forgery: a cookie with SameSite=None rides along on requests
    any page makes, so a hostile page could post acknowledgements or open streams
    (taking the visitor's connection slots) in the visitor's name."""
    async with asgi_client(cors_allowed_origins=[ALLOWED_ORIGIN]) as http:
        refused = await _with_cookie(http, method, path, FOREIGN_ORIGIN, **kwargs)
        assert (refused.status_code, refused.json()["error"]["type"]) == (403, "FORBIDDEN_ORIGIN")
        sandboxed = await _with_cookie(http, method, path, "null", **kwargs)
        assert sandboxed.status_code == 403


@pytest.mark.parametrize("origin", [ALLOWED_ORIGIN, "http://test", None], ids=["listed", "own", "none"])
async def test_a_cookie_token_counts_from_a_listed_origin_our_own_or_without_origin(origin):
    async with asgi_client(cors_allowed_origins=[ALLOWED_ORIGIN]) as http:
        check = await _with_cookie(http, "GET", "/sse/check", origin, params={"clientId": "visitor"})
        ack = await _with_cookie(http, "POST", "/sse/ack", origin, content=json.dumps({"clientId": "visitor", "eventId": "1-0"}))
    assert (check.status_code, ack.status_code) == (200, 204)


async def test_a_cookie_token_from_our_host_on_another_scheme_is_refused():
    """Review reproduction: only the host was compared, so a page a network attacker
    serves on plain http of our own host could use the visitor's cookie."""
    async with asgi_client(cors_allowed_origins=[ALLOWED_ORIGIN]) as http:
        refused = await _with_cookie(http, "GET", "/sse/check", "https://test", params={"clientId": "visitor"})
        http.base_url = "https://test"
        ours = await _with_cookie(http, "GET", "/sse/check", "https://test", params={"clientId": "visitor"})
        downgraded = await _with_cookie(http, "GET", "/sse/check", "http://test", params={"clientId": "visitor"})
    assert (refused.status_code, refused.json()["error"]["type"]) == (403, "FORBIDDEN_ORIGIN")
    assert (ours.status_code, downgraded.status_code) == (200, 403)


async def test_a_cookie_token_from_our_origin_counts_when_the_host_names_the_default_port():
    """Review reproduction: a proxy forwarding `Host: push.example.com:443` made the
    browser's `Origin: https://push.example.com` foreign (403)."""
    async with asgi_client() as http:
        http.base_url = "https://push.example.com"
        response = await _with_cookie(
            http, "GET", "/sse/check", "https://push.example.com", params={"clientId": "visitor"}, headers_extra={"Host": "push.example.com:443"}
        )
    assert response.status_code == 200


@pytest.mark.parametrize("fetch_site", ["cross-site", "same-site"])
@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/sse/connect", {"params": {"clientId": "visitor"}}),
        ("POST", "/sse/ack", {"content": json.dumps({"clientId": "visitor", "eventId": "1-0"})}),
    ],
)
async def test_a_cookie_token_on_a_request_another_site_made_without_origin_is_refused(method, path, kwargs, fetch_site):
    """An `<img>` or `<script>` tag on another site sends the cookie and no `Origin`.
    Before, such requests counted as trusted: five hidden tags held all of a
    visitor's stream slots and locked their real tab out (429)."""
    async with asgi_client(cors_allowed_origins=[ALLOWED_ORIGIN]) as http:
        headers = {"Cookie": f"channel_push_token={client_token('visitor')}", "Sec-Fetch-Site": fetch_site, "Sec-Fetch-Mode": "no-cors"}
        refused = await http.request(method, path, headers=headers, **kwargs)
    assert (refused.status_code, refused.json()["error"]["type"]) == (403, "FORBIDDEN_ORIGIN")


@pytest.mark.parametrize("fetch_site", ["same-origin", "none"])
async def test_a_cookie_token_without_origin_counts_when_the_browser_says_no_other_site_made_it(fetch_site):
    async with asgi_client() as http:
        headers = {"Cookie": f"channel_push_token={client_token('visitor')}", "Sec-Fetch-Site": fetch_site}
        check = await http.get("/sse/check", params={"clientId": "visitor"}, headers=headers)
    assert check.status_code == 200


async def test_a_token_over_the_size_limit_is_called_invalid_not_missing():
    async with asgi_client() as http:
        response = await http.get("/sse/check", params={"clientId": "visitor", "token": "x" * 9000})
        # The ack's body took it as a malformed request (400) where every other route says 401.
        ack = await http.post("/sse/ack", content=json.dumps({"clientId": "visitor", "eventId": "1-0", "token": "x" * 9000}))
    for answer in (response, ack):
        assert (answer.status_code, answer.json()["error"]["type"]) == (401, "INVALID_TOKEN")
        assert "longer than" in answer.json()["error"]["message"]


@pytest.mark.parametrize("origin", ["http://[::1", "http://[", "no-scheme"])
@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/sse/check", {"params": {"clientId": "visitor"}}),
        ("GET", "/sse/connect", {"params": {"clientId": "visitor"}}),
        ("POST", "/sse/ack", {"content": json.dumps({"clientId": "visitor", "eventId": "1-0"})}),
    ],
)
async def test_a_cookie_token_with_a_malformed_origin_is_refused_not_a_500(method, path, kwargs, origin):
    """Review reproduction: `Origin: http://[::1` with any cookie was a 500 with two
    tracebacks in the log, before any rate limit, for anyone to send."""
    async with asgi_client(cors_allowed_origins=[ALLOWED_ORIGIN]) as http:
        refused = await _with_cookie(http, method, path, origin, **kwargs)
    assert (refused.status_code, refused.json()["error"]["type"]) == (403, "FORBIDDEN_ORIGIN")


@pytest.mark.parametrize("allowed", [[ALLOWED_ORIGIN], ["*"]], ids=["listed", "wildcard"])
async def test_a_token_the_page_put_in_the_url_works_from_an_allowed_origin(allowed):
    async with asgi_client(cors_allowed_origins=allowed) as http:
        params = {"clientId": "visitor", "token": client_token("visitor")}
        response = await http.get("/sse/check", params=params, headers={"Origin": ALLOWED_ORIGIN})
        head = await http.head("/sse/connect", params=params, headers={"Origin": ALLOWED_ORIGIN})
    assert (response.status_code, head.status_code) == (200, 200)


async def test_a_stream_from_an_origin_the_list_does_not_name_is_refused_before_it_counts():
    """Review reproduction: with a good token in the URL, a page on a misspelt or missing
    origin got a stream its browser hid from it (no CORS headers), while the stream
    counted as connected: calls answered `delivered` for a page that received nothing."""
    app = make_app(cors_allowed_origins=[ALLOWED_ORIGIN])
    with run_server(app) as server:
        params = {"clientId": "visitor", "token": client_token("visitor")}
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            stream = await http.get("/sse/connect", params=params, headers={"Origin": FOREIGN_ORIGIN})
            check = await http.get("/sse/check", params=params, headers={"Origin": "null"})
            body = function_body("getClientStatus", {"clientId": "visitor"})
            status = (await http.put("/functions", content=body, headers=signed_headers(body))).json()
            metrics = (await http.get("/metrics")).text
    assert (stream.status_code, stream.json()["error"]["type"]) == (403, "FORBIDDEN_ORIGIN")
    assert FOREIGN_ORIGIN in stream.json()["error"]["message"] and "CORS_ALLOWED_ORIGINS" in stream.json()["error"]["message"]
    assert (check.status_code, check.json()["error"]["type"]) == (403, "FORBIDDEN_ORIGIN")
    assert status["result"]["connected"] is False
    assert 'channel_push_connects_refused_total{reason="foreign_origin"} 1.0' in metrics


async def test_head_answers_what_get_would_at_the_tab_cap_and_spends_no_connect_limit():
    """Review reproduction: HEAD answered 200 where GET answered 429 (the caps were
    never asked), and each HEAD spent both connect rate-limit hits."""
    app = make_app(max_connections_per_client=1, rate_limit_connect_per_client="2/minute")
    with run_server(app) as server:
        params = {"clientId": "visitor", "token": client_token("visitor")}
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            heads = [(await http.head("/sse/connect", params=params)).status_code for _ in range(3)]
            async with http.stream("GET", "/sse/connect", params=params) as first:
                assert (await SseReader(first).next_event()).event == "connected"
                capped = await http.head("/sse/connect", params=params)
    assert heads == [200, 200, 200]
    assert capped.status_code == 429 and "retry-after" in capped.headers


async def test_head_while_draining_answers_200_as_get_does_with_its_retry_stream():
    """Review reproduction: GET answers a draining instance (or an unreachable Redis)
    with 200 and a stream that only says when to retry; HEAD answered 503."""
    app = make_app()
    with run_server(app) as server:
        app.state.services.lifecycle.begin_drain()
        params = {"clientId": "visitor", "token": client_token("visitor")}
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
            get = await http.get("/sse/connect", params=params)
            head = await http.head("/sse/connect", params=params)
    assert get.status_code == head.status_code == 200
    assert get.headers["content-type"] == head.headers["content-type"]


@pytest.mark.parametrize(("pipelined_later", "requests"), [(False, 1), (True, 1), (True, 2), (True, 4)], ids=["same-read", "while-streaming", "two", "four"])
def test_a_client_that_pipelines_a_request_behind_its_stream_and_leaves_frees_its_slot_at_once(uvicorn_errors, pipelined_later, requests):
    """uvicorn tells only the newest request on a connection that the connection
    is gone. A client that sent a second request behind its stream and then left
    kept the stream registered (a connection slot, an entry under its clientId)
    until its token expired: a cheap way to fill MAX_CONNECTIONS. Under uvloop the
    stream's next write then raised, and uvicorn logged a traceback. Later, until
    its next heartbeat (review reproduction: getClientStatus said connected for 17 s);
    now at once, with no heartbeat due. A request pipelined once the stream had
    started paused reading again, so the client's close went unseen until a
    heartbeat (review reproduction: 15-38 s)."""
    app = make_app(heartbeat_seconds=600)
    with run_server(app) as server:
        registry = app.state.services.broker.registry
        with _pipelined_stream(server, "visitor", later=pipelined_later, requests=requests):
            wait_until(lambda: registry.connection_total == 1)
        wait_until(lambda: registry.connection_total == 0, timeout=2)
    assert uvicorn_errors == []


async def test_an_event_for_a_pipelined_stream_whose_client_left_counts_as_undelivered(uvicorn_errors):
    app = make_app(heartbeat_seconds=600)
    with run_server(app) as server:
        registry = app.state.services.broker.registry
        with _pipelined_stream(server, "visitor"):
            wait_until(lambda: registry.connection_total == 1)
        await anyio.sleep(0.2)  # the server has seen the close; uvicorn told only the pipelined request
        body = function_body("notify", {"clientId": "visitor", "message": "hi", "queueIfOffline": True})
        async with httpx.AsyncClient(base_url=server.url) as http:
            answer = (await http.put("/functions", content=body, headers=signed_headers(body))).json()
        wait_until(lambda: registry.connection_total == 0, timeout=5)
    assert answer["result"]["delivered"] == 0 and answer["result"]["queued"] is True
    assert uvicorn_errors == []


@contextlib.contextmanager
def _pipelined_stream(server, client_id: str, later: bool = False, requests: int = 1) -> Iterator[socket.socket]:
    """A stream with a request pipelined behind it: in the same read, or `later`, once it streams."""
    port = int(server.url.rsplit(":", 1)[1])
    stream = f"GET /sse/connect?clientId={client_id}&token={client_token(client_id)} HTTP/1.1\r\nHost: x\r\n\r\n"
    pipelined = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * requests
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall((stream + ("" if later else pipelined)).encode())
        received = b""
        while b"event: connected" not in received:
            received += sock.recv(65536)
        if later:
            sock.sendall(pipelined.encode())
            time.sleep(0.2)
        yield sock


@pytest.fixture
def uvicorn_errors() -> Iterator[list[str]]:
    """ERROR records from uvicorn (its loggers do not propagate to pytest's capture)."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect(level=logging.ERROR)
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_a_call_or_status_stream_left_with_a_request_pipelined_behind_it_ends_without_an_error(uvicorn_errors):
    """The same uvicorn gap on the other routes: the answer to a call still waiting
    for an ack, and the next status frame, were written to the closed transport,
    which under uvloop raised and logged a traceback for a client that only left."""
    ops_token = "ops-token-for-this-test-0123456789abcdef"
    app = make_app(ops_token=ops_token, status_stream_seconds=0.1)
    with run_server(app) as server:
        port = int(server.url.rsplit(":", 1)[1])
        pipelined = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        with _pipelined_stream(server, "target"):
            waiting = function_body("sendEvent", {"clientId": "target", "action": "a", "payload": {}, "waitForAck": 500})
            headers = "".join(f"{name}: {value}\r\n" for name, value in signed_headers(waiting).items())
            call = f"PUT /functions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(waiting)}\r\n{headers}\r\n".encode() + waiting
            with socket.create_connection(("127.0.0.1", port)) as caller:
                caller.sendall(call + pipelined)
                time.sleep(0.1)
            with socket.create_connection(("127.0.0.1", port)) as viewer:
                viewer.sendall(f"GET /sse/status/stream?token={ops_token} HTTP/1.1\r\nHost: x\r\n\r\n".encode() + pipelined)
                assert viewer.recv(1024).startswith(b"HTTP/1.1 200")
            time.sleep(0.8)  # past the ack wait and several status frames
    assert uvicorn_errors == []


def test_an_oversized_request_head_gets_431_and_the_connection_closes_before_it_is_buffered():
    """uvicorn under httptools buffers a header of any size: 16 MB was answered 200,
    and ten unfinished 20 MB headers took the server from 67 to 310 MB."""
    with run_server(make_app()) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ")
            answer = b""
            with contextlib.suppress(ConnectionError):
                for _ in range(64):  # up to 4 MB, never finishing the header
                    sock.sendall(b"a" * 65536)
            sock.settimeout(5)
            with contextlib.suppress(ConnectionError):
                while chunk := sock.recv(65536):
                    answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431") and b"connection: close" in head
        assert json.loads(body)["error"]["type"] == "HEADERS_TOO_LARGE"
        large_but_allowed = httpx.get(server.url + "/healthz", headers={"X-Large": "b" * 30_000})
        assert large_but_allowed.status_code == 200


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"trickle"])
def test_a_connection_whose_head_does_not_arrive_in_time_is_closed(monkeypatch, sent):
    """Review reproduction (slowloris): connections that sent nothing, or part of a
    head, or a head one byte at a time, stayed open for good: 200 of them held 200
    descriptors and 12.5 MB for over a minute, and MAX_CONNECTIONS counts streams."""
    monkeypatch.setattr(header_limit, "HEAD_TIMEOUT_SECONDS", 0.5, raising=False)
    with run_server(make_app()) as server:
        port = int(server.url.rsplit(":", 1)[1])
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(5)
            answer = b""
            with contextlib.suppress(ConnectionError):
                if sent == b"trickle":
                    for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n" * 4:
                        sock.sendall(bytes([byte]))
                        if select.select([sock], [], [], 0.05)[0]:
                            break  # answered: sending on would reset the connection and lose the answer
                else:
                    sock.sendall(sent)
                while chunk := sock.recv(65536):
                    answer += chunk
        assert time.monotonic() - started < 4
        if sent:
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408") and json.loads(body)["error"]["type"] == "REQUEST_TIMEOUT"
        else:
            assert answer == b""


def test_the_rest_of_an_answered_requests_body_may_not_trickle_in_for_good():
    """Review reproduction: GET /healthz with Content-Length 100 MB was answered, and
    the connection stayed open for good while its body trickled in a byte at a time
    (uvicorn cancels its keep-alive timer on every read)."""
    with _socket_to_a_fresh_server(timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        answer = sock.recv(65536)
        answered = time.monotonic()
        with contextlib.suppress(ConnectionError):
            while not select.select([sock], [], [], 0.5)[0]:  # a byte every half second until closed
                sock.sendall(b"a")
            while sock.recv(65536):
                pass
    assert answer.startswith(b"HTTP/1.1 200")
    assert time.monotonic() - answered < 8  # uvicorn's keep-alive deadline (5 s), not never


def test_a_body_that_arrives_just_after_its_answer_keeps_the_connection_for_the_next_request():
    """The first fix closed the connection at the first body byte after the answer:
    a client whose small body simply arrived after a quick 404 lost its next request
    on the keep-alive connection (a clean-clone CI run caught it)."""
    with _socket_to_a_fresh_server(timeout=5) as sock:
        sock.sendall(b"PUT /functions/v1/extra HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
        first = sock.recv(65536)
        sock.sendall(b"{}")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        second = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 404")
    assert second.startswith(b"HTTP/1.1 200")


@contextlib.contextmanager
def _socket_to_a_fresh_server(timeout: float) -> Iterator[socket.socket]:
    with run_server(make_app()) as server:
        with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1]))) as sock:
            sock.settimeout(timeout)
            yield sock


async def test_a_stream_outlives_the_head_timeout(monkeypatch):
    monkeypatch.setattr(header_limit, "HEAD_TIMEOUT_SECONDS", 0.3, raising=False)
    with run_server(make_app()) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            params = {"clientId": "visitor", "token": client_token("visitor")}
            async with http.stream("GET", "/sse/connect", params=params) as response:
                reader = SseReader(response)
                assert (await reader.next_event()).event == "connected"
                await anyio.sleep(1)
                body = function_body("notify", {"clientId": "visitor", "message": "still here"})
                await http.put("/functions", content=body, headers=signed_headers(body))
                assert (await reader.next_event()).data["message"] == "still here"


@pytest.mark.parametrize("head_bytes", [65_537, 200_000])
def test_an_oversized_head_arriving_whole_in_one_read_gets_431_too(head_bytes):
    """The limit used to be judged only on heads still incomplete after a read:
    a whole 70 KB head in one read was parsed and answered 200."""
    with run_server(make_app()) as server:
        port = int(server.url.rsplit(":", 1)[1])
        start = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: "
        answer = _raw_exchange(port, start + b"a" * (head_bytes - len(start) - 4) + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 431")


def test_a_head_of_exactly_the_limit_with_its_body_in_the_same_read_is_served():
    with run_server(make_app()) as server:
        port = int(server.url.rsplit(":", 1)[1])
        body = b"x" * 40_000
        start = f"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nX-Filler: ".encode()
        head = start + b"a" * (65_536 - len(start) - 4) + b"\r\n\r\n"
        assert len(head) == 65_536
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head + body)
            sock.settimeout(5)
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 404")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PUT /functions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"PUT /functions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        # Review reproductions: these three were answered 200.
        b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET /healthz\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ],
    ids=["unknown-method", "negative-length", "length-and-chunked", "no-host", "version-2", "version-0.9", "two-hosts"],
)
def test_a_request_the_http_parser_refuses_gets_the_json_error_object(request_bytes):
    """uvicorn answered these in plain text ("Invalid HTTP request received.")."""
    with run_server(make_app()) as server:
        answer = _raw_exchange(int(server.url.rsplit(":", 1)[1]), request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head
    assert json.loads(body)["error"]["type"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "upgrade", [b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA", b"Upgrade: websocket\r\nConnection: Upgrade"], ids=["h2c", "websocket"]
)
def test_a_signed_call_asking_for_an_upgrade_is_refused_saying_why_not_answered_401(upgrade):
    """Review reproduction: `curl --http2` on http sends `Upgrade: h2c`; the parser handed
    everything after the head to the upgrade, so the signed call's body was dropped and
    it was answered 401 (the signature over an empty body), with nothing in the log."""
    body = function_body("getClientStatus", {"clientId": "visitor"})
    headers = "".join(f"{name}: {value}\r\n" for name, value in signed_headers(body).items())
    request = f"PUT /functions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{headers}".encode() + upgrade + b"\r\n\r\n" + body
    with run_server(make_app()) as server:
        answer = _raw_exchange(int(server.url.rsplit(":", 1)[1]), request)
    head, _, answer_body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    error = json.loads(answer_body)["error"]
    assert error["type"] == "BAD_REQUEST" and "without Upgrade" in error["message"]


def test_a_refused_request_pipelined_behind_calls_is_answered_after_them_in_order():
    """uvicorn wrote the 400 at once and closed: the call ahead of it, its event
    already sent, lost its answer."""
    body = function_body("notify", {"clientId": "nobody-here", "message": "hello"})
    headers = "".join(f"{name}: {value}\r\n" for name, value in signed_headers(body).items())
    call = f"PUT /functions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body
    healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with run_server(make_app()) as server:
        answer = _raw_exchange(int(server.url.rsplit(":", 1)[1]), call + healthz + b"FOO / HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz")
    assert re.findall(rb"HTTP/1\.1 \d{3}", answer) == [b"HTTP/1.1 200", b"HTTP/1.1 200", b"HTTP/1.1 400"]
    assert b"CLIENT_NOT_CONNECTED" in answer and b'{"status":"ok"}' in answer
    assert json.loads(answer.rpartition(b"\r\n\r\n")[2])["error"]["type"] == "BAD_REQUEST"


BAD_CHUNKED_BODY = b"PUT /functions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n"


def test_a_request_refused_for_its_body_pipelined_behind_a_call_is_answered_after_it():
    """Review reproduction: a bad chunk size in a pipelined request was still answered
    400 at once, and the call ahead of it, its event sent, lost its answer."""
    body = function_body("notify", {"clientId": "nobody-here", "message": "hello"})
    headers = "".join(f"{name}: {value}\r\n" for name, value in signed_headers(body).items())
    call = f"PUT /functions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body
    with run_server(make_app()) as server:
        answer = _raw_exchange(int(server.url.rsplit(":", 1)[1]), call + BAD_CHUNKED_BODY)
    assert re.findall(rb"HTTP/1\.1 \d{3}", answer) == [b"HTTP/1.1 200", b"HTTP/1.1 400"]
    assert b"CLIENT_NOT_CONNECTED" in answer


@pytest.mark.parametrize("together", [True, False], ids=["same-read", "while-streaming"])
@pytest.mark.parametrize("refused", [b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", BAD_CHUNKED_BODY], ids=["method", "chunk-size"])
def test_a_refused_request_pipelined_behind_a_stream_leaves_the_stream_running(uvicorn_errors, refused, together):
    with run_server(make_app()) as server:
        port = int(server.url.rsplit(":", 1)[1])
        stream = f"GET /sse/connect?clientId=visitor&token={client_token('visitor')} HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(stream.encode() + (refused if together else b""))
            sock.settimeout(5)
            received = b""
            while b"event: connected" not in received:
                received += sock.recv(65536)
            sock.sendall((b"" if together else refused) + b"more bytes after the refused request")
            body = function_body("notify", {"clientId": "visitor", "message": "still here"})
            assert httpx.put(server.url + "/functions", content=body, headers=signed_headers(body)).json()["result"]["delivered"] == 1
            while b"still here" not in received:
                received += sock.recv(65536)
        assert b"400 Bad Request" not in received
    assert uvicorn_errors == []


async def test_a_refused_cors_preflight_gets_the_json_error_object():
    async with asgi_client(cors_allowed_origins=[ALLOWED_ORIGIN]) as http:
        headers = {"Origin": FOREIGN_ORIGIN, "Access-Control-Request-Method": "GET"}
        response = await http.options("/sse/check", headers=headers)
    assert (response.status_code, response.json()["error"]["type"]) == (400, "CORS_REFUSED")
    assert "origin" in response.json()["error"]["message"]
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("path", ["/sse/connect/", "/sse/check/", "/api/publish/", "/metrics/"])
async def test_a_path_with_a_stray_slash_is_404_never_a_redirect_carrying_the_query(path):
    """Starlette redirected these (307) to `http://<the request's Host>/...?token=...`."""
    async with asgi_client() as http:
        response = await http.get(path, params={"clientId": "visitor", "token": "secret-looking"}, headers={"Host": "evil.example"})
    assert (response.status_code, response.json()["error"]["type"]) == (404, "NOT_FOUND")
    assert "location" not in response.headers


def _raw_exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes and read the answer until the server closes (or 5 s pass)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        sock.settimeout(5)
        answer = b""
        with contextlib.suppress(ConnectionError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


@pytest.mark.parametrize(
    "params", [{"clientId": "+"}, {"clientId": "visitor", "topics": "*"}, {"clientId": "visitor", "token": "bad"}], ids=["client-id", "topic", "token"]
)
async def test_check_head_and_get_name_the_same_problem_from_a_foreign_origin(params):
    """Review reproduction (fuzzing): a bad clientId or topic from a foreign origin was
    403 FORBIDDEN_ORIGIN for /sse/check and HEAD but 400 for GET, which asked in
    another order."""
    async with asgi_client(cors_allowed_origins=[ALLOWED_ORIGIN]) as http:
        headers = {"Origin": FOREIGN_ORIGIN}
        answers = [await http.request(method, path, params=params, headers=headers) for method, path in [("GET", "/sse/connect"), ("GET", "/sse/check"), ("HEAD", "/sse/connect")]]
    assert [answer.status_code for answer in answers] == [403, 403, 403]
