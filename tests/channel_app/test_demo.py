"""The development demo: present in development, absent (404) in production."""

from __future__ import annotations

import httpx
import pytest

from security.tokens import ClientTokenVerifier, TokenVerifierConfig
from tests.support.apps import DEVELOPMENT_SECRETS, make_app
from tests.support.channel import CLIENT_JWT_SECRET, SIGNING_KEY_HEX
from tests.support.asgi import asgi_client
from tests.support.server import free_port, run_server
from tests.support.sse_client import SseReader

pytestmark = pytest.mark.anyio

DEV_ROUTES = [("GET", "/"), ("GET", "/demo/landing"), ("GET", "/dev/token?clientId=x"), ("POST", "/dev/call"), ("GET", "/dev/calls")]


@pytest.fixture
def dev_server():
    port = free_port()
    app = make_app(app_env="development", port=port, redirect_allowed_hosts=[], redirect_http_hosts=[], **DEVELOPMENT_SECRETS)
    with run_server(app, port=port) as running:
        yield running


async def dev_call(server, method: str, input: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        return await http.post("/dev/call", json={"method": method, "input": input})


async def test_demo_page_loads_the_current_widget_in_development(dev_server):
    async with httpx.AsyncClient(base_url=dev_server.url) as http:
        page = await http.get("/")
        landing = await http.get("/demo/landing")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'src="/widget.js?v={dev_server.app.state.widget_version}"' in page.text
    assert "ChannelPush.connect" in page.text
    assert landing.status_code == 200
    assert 'data-page="landing"' in landing.text


async def test_dev_token_is_a_valid_client_token_for_the_asked_client(dev_server):
    async with httpx.AsyncClient(base_url=dev_server.url) as http:
        response = await http.get("/dev/token", params={"clientId": "demo-1"})
        bad = await http.get("/dev/token", params={"clientId": "bad id"})
    assert response.headers["cache-control"] == "no-store"
    verifier = ClientTokenVerifier(TokenVerifierConfig(hs256_secret=DEVELOPMENT_SECRETS["client_jwt_secret"]))
    assert (await verifier.verify(response.json()["token"])).subject == "demo-1"
    assert bad.status_code == 400


async def test_dev_call_signs_and_dispatches_a_real_function_call(dev_server):
    async with httpx.AsyncClient(base_url=dev_server.url, timeout=10) as http:
        token = (await http.get("/dev/token", params={"clientId": "demo-1"})).json()["token"]
        async with http.stream("GET", "/sse/connect", params={"clientId": "demo-1", "token": token}) as stream:
            reader = SseReader(stream)
            await reader.next_event()
            response = await dev_call(dev_server, "notify", {"clientId": "demo-1", "message": "안녕하세요"})
            event = await reader.next_event()
        recent = (await http.get("/dev/calls")).json()["calls"]
    record = response.json()
    assert record["status"] == 200
    assert record["response"]["result"]["eventId"] == event.id
    assert record["request"]["params"]["input"]["message"] == "안녕하세요"
    assert event.data["message"] == "안녕하세요"
    assert recent[0] == record


async def test_dev_call_redirect_to_the_local_landing_page_is_allowed(dev_server):
    async with httpx.AsyncClient(base_url=dev_server.url, timeout=10) as http:
        token = (await http.get("/dev/token", params={"clientId": "demo-1"})).json()["token"]
        async with http.stream("GET", "/sse/connect", params={"clientId": "demo-1", "token": token}) as stream:
            reader = SseReader(stream)  # kept referenced: a collected reader closes its stream
            await reader.next_event()
            response = await dev_call(dev_server, "redirectClient", {"clientId": "demo-1", "url": f"{dev_server.url}/demo/landing"})
    assert "result" in response.json()["response"]


async def test_dev_call_refuses_a_form_post(dev_server):
    async with httpx.AsyncClient(base_url=dev_server.url) as http:
        response = await http.post("/dev/call", data={"method": "notify"})
    assert response.status_code == 415
    assert response.json()["error"]["type"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize(("method", "path"), [("POST", "/dev/call"), ("GET", "/dev/token?clientId=x")])
async def test_dev_routes_are_same_origin_only_even_when_cors_allows_every_origin(method, path):
    # CORS_ALLOWED_ORIGINS=* in development must not let any visited page mint
    # tokens or fire signed calls through the demo's routes.
    stranger = "https://any-site.example"
    async with asgi_client(app_env="development", cors_allowed_origins=["*"], **DEVELOPMENT_SECRETS) as http:
        preflight = await http.options(
            path, headers={"Origin": stranger, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "content-type"}
        )
        simple = await http.request(method, path, headers={"Origin": stranger}, json={"method": "notify", "input": {}} if method == "POST" else None)
        stream_preflight = await http.options(
            "/sse/connect", headers={"Origin": stranger, "Access-Control-Request-Method": "GET"}
        )
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers
    assert stream_preflight.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "body",
    # The last, 300 levels deep, was a 500: orjson reads 1024 levels and writes 254.
    [b"{", b'{"input": {}}', b'{"method": "notify", "input": []}', b'{"method": "notify", "input": {"x": ' + b"[" * 300 + b"]" * 300 + b"}}"],
)
async def test_malformed_dev_call_is_400(dev_server, body):
    async with httpx.AsyncClient(base_url=dev_server.url) as http:
        response = await http.post("/dev/call", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize(("method", "path"), DEV_ROUTES)
async def test_demo_and_dev_routes_are_absent_in_production(method, path):
    app = make_app(app_env="production")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        response = await http.request(method, path, json={"method": "notify", "input": {}} if method == "POST" else None)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "NOT_FOUND"


@pytest.mark.parametrize("own", ["channel_signing_key", "client_jwt_secret"])
@pytest.mark.parametrize(("method", "path"), DEV_ROUTES)
async def test_demo_and_dev_routes_are_absent_in_development_with_a_secret_of_ones_own(method, path, own):
    """Review reproduction: a deploy with real secrets that left APP_ENV unset served
    /dev/token, minting valid tokens for any clientId with the real CLIENT_JWT_SECRET,
    and /dev/call, signing calls with the real key, to anyone who reached the port."""
    secrets = {**DEVELOPMENT_SECRETS, own: {"channel_signing_key": SIGNING_KEY_HEX, "client_jwt_secret": CLIENT_JWT_SECRET}[own]}
    async with asgi_client(app_env="development", **secrets) as http:
        response = await http.request(method, path, json={"method": "notify", "input": {}} if method == "POST" else None)
    assert response.status_code == 404
