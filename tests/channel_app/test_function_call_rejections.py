"""Requests that never reach a method: unsigned, malformed or oversized calls."""

from __future__ import annotations

import json

import pytest

from tests.support.asgi import asgi_client
from tests.support.channel import function_body, signed_headers

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http():
    async with asgi_client(max_body_bytes=1024) as client:
        yield client


async def test_missing_signature_is_401(http):
    body = function_body("getClientStatus", {"clientId": "x"})
    response = await http.put("/functions", content=body)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "UNAUTHORIZED"


async def test_forged_signature_is_401(http):
    body = function_body("getClientStatus", {"clientId": "x"})
    response = await http.put("/functions", content=body, headers=signed_headers(body, key_hex="aa" * 32))
    assert response.status_code == 401


async def test_signature_over_a_different_body_is_401(http):
    signed = function_body("getClientStatus", {"clientId": "x"})
    tampered = function_body("getClientStatus", {"clientId": "y"})
    response = await http.put("/functions", content=tampered, headers=signed_headers(signed))
    assert response.status_code == 401


async def test_garbage_signature_header_is_401_not_500(http):
    body = function_body("getClientStatus", {"clientId": "x"})
    response = await http.put("/functions", content=body, headers={"X-Signature": "%%%not base64"})
    assert response.status_code == 401


async def test_signature_header_name_is_case_insensitive(http):
    body = function_body("getClientStatus", {"clientId": "x"})
    headers = {"x-SIGNATURE": signed_headers(body)["X-Signature"]}
    response = await http.put("/functions", content=body, headers=headers)
    assert response.status_code == 200


async def test_malformed_json_is_400(http):
    body = b'{"method": "notify", '
    response = await http.put("/functions", content=body, headers=signed_headers(body))
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "INVALID_JSON"


async def test_json_without_method_is_400(http):
    body = b'{"params": {}}'
    response = await http.put("/functions", content=body, headers=signed_headers(body))
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "INVALID_REQUEST"


@pytest.mark.parametrize("method", [5, 1.5, True])
async def test_a_method_that_is_not_a_string_is_400(http, method):
    """Review reproduction: 5 was taken as the method name "5" (200 METHOD_NOT_FOUND)."""
    body = json.dumps({"method": method}).encode()
    response = await http.put("/functions", content=body, headers=signed_headers(body))
    assert (response.status_code, response.json()["error"]["type"]) == (400, "INVALID_REQUEST")


async def test_oversize_body_is_413_before_signature_check(http):
    body = function_body("notify", {"clientId": "x", "message": "a" * 2000})
    response = await http.put("/functions", content=body, headers=signed_headers(body))
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "PAYLOAD_TOO_LARGE"


async def test_oversize_streamed_body_without_content_length_is_413(http):
    async def chunks():
        for _ in range(10):
            yield b"x" * 200

    response = await http.put("/functions", content=chunks())
    assert response.status_code == 413


async def test_unknown_fields_are_ignored(http):
    body = b'{"method": "getClientStatus", "params": {"input": {"clientId": "x", "extra": 1}, "new": {}}, "context": {"channel": {"id": "c", "x": 1}}, "systemVersion": "v9"}'
    response = await http.put("/functions", content=body, headers=signed_headers(body))
    assert response.json()["result"]["connected"] is False


async def test_get_on_functions_is_405_with_error_object(http):
    response = await http.get("/functions")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "METHOD_NOT_ALLOWED"


async def test_unknown_path_is_404_with_error_object(http):
    response = await http.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "NOT_FOUND"
