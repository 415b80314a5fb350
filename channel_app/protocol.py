"""Channel's function-call request and the answers we give, as Channel spells them.

See ../shared/docs/channel-protocol.md. Unknown fields are accepted and
ignored everywhere, because Channel may add fields at any time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ChannelRef(_Lenient):
    id: str


class Caller(_Lenient):
    type: str | None = None
    id: str | None = None


class ChannelUser(_Lenient):
    id: str | None = None
    member_id: str | None = Field(None, alias="memberId")


class CallContext(_Lenient):
    channel: ChannelRef | None = None
    caller: Caller | None = None
    user: ChannelUser | None = None


class Chat(_Lenient):
    type: str | None = None
    id: str | None = None


class CallParams(_Lenient):
    chat: Chat | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    language: str | None = None


class FunctionCall(_Lenient):
    method: str = Field(min_length=1, max_length=128)
    params: CallParams = Field(default_factory=CallParams)
    context: CallContext = Field(default_factory=CallContext)

    @property
    def channel_id(self) -> str | None:
        return self.context.channel.id if self.context.channel else None

    @property
    def caller_type(self) -> str | None:
        return self.context.caller.type if self.context.caller else None


# Channel's SDK error codes (docs/reference/error-model.md in cht-app-sdk).
ERROR_CODES: dict[str, int] = {
    "UNPROCESSABLE": 1,
    "INVALID_PARAMS": 2,
    "NOT_FOUND": 3,
    "CLIENT_NOT_CONNECTED": 3,
    "UNAUTHORIZED": 4,
    "METHOD_NOT_FOUND": -32601,
    "INTERNAL_ERROR": -32603,
    "UNAVAILABLE": -32603,
}
DEFAULT_ERROR_CODE = 1


def error_body(error_type: str, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": error_type,
        "message": message,
        "code": ERROR_CODES.get(error_type, DEFAULT_ERROR_CODE),
    }
    if data:
        error["data"] = data
    return {"error": error}


def result_body(message: str, **fields: Any) -> dict[str, Any]:
    return {"result": {"type": "string", "attributes": {"message": message}, **fields}}
