"""`POST /sse/ack`: the widget confirms it acted on an event (see sse/acks.py).

Body: `{"clientId", "eventId", "outcome", "token"?}`. The token may also come
as `Authorization: Bearer`, the `token` query parameter or the cookie, and
must belong to `clientId`. The widget sends the body as `text/plain` with the
token inside it: that keeps the request CORS-simple (no preflight), so it can
go out with `keepalive` in the same moment the page navigates away.

Every well-formed, authenticated ack is answered 204, whether or not a call
is waiting for it: the answer reveals nothing about other calls.
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import Response

from channel_app.body import UnreadableBody, read_limited_body
from channel_app.fields import ClientId
from channel_app.client_auth import ClientAuthFailed, authenticate_client, presented_token
from channel_app.inputs import describe_validation_error
from channel_app.responses import error_response
from sse.names import is_event_id

MAX_ACK_BODY_BYTES = 16 * 1024


class AckInput(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    client_id: ClientId = Field(alias="clientId")
    event_id: str = Field(alias="eventId")
    outcome: Literal["done", "refused", "declined", "failed"] = "done"
    token: str | None = None  # its length is authenticate_client's to judge: 401, as on every route

    @field_validator("event_id")
    @classmethod
    def _valid_event_id(cls, value: str) -> str:
        if not is_event_id(value):
            raise ValueError("eventId is the id of an event this service sent, like 1732380000000-0")
        return value


async def acknowledge_event(request: Request) -> Response:
    services = request.app.state.services
    try:
        body = await read_limited_body(request, MAX_ACK_BODY_BYTES, services.body_deadlines)
        ack = AckInput.model_validate(orjson.loads(body))
    except UnreadableBody as unread:
        return error_response(unread.status, unread.error_type, unread.message)
    except orjson.JSONDecodeError:
        return error_response(400, "INVALID_JSON", "the request body is not valid JSON")
    except ValidationError as error:
        return error_response(400, "INVALID_REQUEST", describe_validation_error(error))
    try:
        token = (ack.token or "").strip() or presented_token(request, services.settings.client_token_cookie, services.settings.cors_allowed_origins)
        await authenticate_client(services, ack.client_id, token)
    except ClientAuthFailed as failed:
        return failed.response
    await services.acks.acknowledge(ack.client_id, ack.event_id, ack.outcome)
    return Response(status_code=204)
