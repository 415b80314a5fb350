"""The development demo. None of these routes exist when APP_ENV=production,
nor with secrets of one's own: they serve only while CHANNEL_SIGNING_KEY and
CLIENT_JWT_SECRET are the public development values (config/secrets.py). Then
they let a visitor do nothing the published values do not already allow; with
real secrets, left in development mode by a deploy that forgot APP_ENV, they
would mint tokens and sign calls with those for anyone who can reach the port.

- `GET /`: the widget connected as a demo visitor, its state, and buttons.
- `GET /demo/landing`: where the demo's redirect sends the visitor (the
  development redirect allow-list admits this host and port).
- `GET /dev/token?clientId=`: a 10-minute client token minted with CLIENT_JWT_SECRET.
- `POST /dev/call` `{"method", "input"}`: builds the call Channel would send,
  signs it with CHANNEL_SIGNING_KEY and answers what `PUT /functions` answers
  to it, through the same code. It requires `Content-Type: application/json`,
  so another site's page cannot fire it with a plain form post.
- `GET /dev/calls`: the last calls made through `/dev/call`, newest first
  (a redirect's answer arrives after the page was left).
"""

from __future__ import annotations

from collections import deque
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, Field, SecretStr, ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from channel_app.body import UnreadableBody, read_limited_body
from channel_app.dev_tokens import mint_accepted_token
from channel_app.fields import check_payload
from channel_app.functions import answer_function_call
from channel_app.inputs import describe_validation_error
from channel_app.responses import JSONBody, NO_STORE, error_response
from channel_app.static_assets import StaticAsset
from config.secrets import REQUIRED_SECRETS, development_secret
from config.settings import Settings
from security.signature import decode_signing_key, sign
from sse.names import InvalidName, check_client_id

def mints_own_tokens(settings: Settings) -> bool:
    """Whether client tokens are HS256 with CLIENT_JWT_SECRET, which this service (and its CLI) can mint."""
    return settings.client_jwt_secret is not None and not (settings.client_jwt_public_key or settings.client_jwt_jwks_url)


def serves_demo(settings: Settings) -> bool:
    """Whether the demo routes exist: in development, with the public development secrets only."""
    return not settings.is_production and mints_own_tokens(settings) and all(
        _is_development_value(getattr(settings, name), name) for name in REQUIRED_SECRETS
    )


def _is_development_value(secret: SecretStr | None, name: str) -> bool:
    return secret is not None and secret.get_secret_value() == development_secret(name)


DEMO_TOKEN_SECONDS = 600
RECENT_CALLS = 20
PAGES = {
    "demo": "channel-push demo",
    "landing": "Landing page: redirectClient brought you here",
}


class DevCall(BaseModel):
    method: str = Field(min_length=1, max_length=128)
    # Nested at most as deep as a payload may be: the call is encoded again to be signed,
    # and orjson encodes far fewer levels than it parses (a 300-deep input was a 500).
    input: Annotated[dict[str, Any], AfterValidator(check_payload)] = Field(default_factory=dict)


def demo_routes(settings: Settings, widget: StaticAsset) -> list[Route]:
    if not serves_demo(settings):
        return []
    template = StaticAsset.load("demo.html", "text/html").body.decode()
    widget_src = f"/widget.js?v={widget.version}"
    pages = {
        name: template.replace("__WIDGET_SRC__", widget_src).replace("__PAGE__", name).replace("__HEADING__", heading)
        for name, heading in PAGES.items()
    }
    signing_key = decode_signing_key(settings.channel_signing_key.get_secret_value())
    recent_calls: deque[dict[str, Any]] = deque(maxlen=RECENT_CALLS)

    async def demo_page(request: Request) -> Response:
        return HTMLResponse(pages["demo"], headers=NO_STORE)

    async def landing_page(request: Request) -> Response:
        return HTMLResponse(pages["landing"], headers=NO_STORE)

    async def dev_token(request: Request) -> Response:
        try:
            client_id = check_client_id(request.query_params.get("clientId", ""))
        except InvalidName as invalid:
            return error_response(400, "INVALID_CLIENT_ID", str(invalid))
        try:
            token = mint_accepted_token(settings, client_id, DEMO_TOKEN_SECONDS)
        except ValueError as unmintable:  # tokens checked with a public key: the demo cannot make one
            return error_response(501, "NOT_IMPLEMENTED", str(unmintable))
        return JSONBody({"token": token, "expiresIn": DEMO_TOKEN_SECONDS}, headers=NO_STORE)

    async def dev_call(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error_response(415, "UNSUPPORTED_MEDIA_TYPE", "send the call as application/json")
        try:
            body = await read_limited_body(request, settings.max_body_bytes, request.app.state.services.body_deadlines)
            wanted = DevCall.model_validate(orjson.loads(body))
        except UnreadableBody as unread:
            return error_response(unread.status, unread.error_type, unread.message)
        except orjson.JSONDecodeError:
            return error_response(400, "INVALID_JSON", "the request body is not valid JSON")
        except ValidationError as error:
            return error_response(400, "INVALID_REQUEST", describe_validation_error(error))
        call = channel_call(wanted)
        body = orjson.dumps(call)
        answer = await answer_function_call(request.app.state.services, body, sign(body, signing_key))
        record = {"request": call, "status": answer.status_code, "response": orjson.loads(answer.body)}
        recent_calls.appendleft(record)
        return JSONBody(record, headers=NO_STORE)

    async def dev_calls(request: Request) -> Response:
        return JSONBody({"calls": list(recent_calls)}, headers=NO_STORE)

    return [
        Route("/", demo_page, methods=["GET"]),
        Route("/demo/landing", landing_page, methods=["GET"]),
        Route("/dev/token", dev_token, methods=["GET"]),
        Route("/dev/call", dev_call, methods=["POST"]),
        Route("/dev/calls", dev_calls, methods=["GET"]),
    ]


def channel_call(wanted: DevCall) -> dict[str, Any]:
    """The body Channel would send for this call, run by a manager in a user chat (a
    customer's own call may target only their own page: channel_app/methods.py)."""
    return {
        "method": wanted.method,
        "params": {"chat": {"type": "userChat", "id": "demo-chat"}, "input": wanted.input, "language": "ko"},
        "context": {"channel": {"id": "demo-channel"}, "caller": {"type": "manager", "id": "demo-manager"}},
    }
