"""Channel's function-call request and the answers we give, as Channel spells them.

See ../shared/docs/channel-protocol.md. Unknown fields are accepted and
ignored everywhere, because Channel may add fields at any time. Only a body
that is not a call at all (no `method` string, a field of the wrong shape) is
a 400: an unknown method, however spelled, is a function-level failure (200
METHOD_NOT_FOUND). Ids that arrive as numbers are taken as their text, and an
`input` of null (Go's empty map) as no arguments.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr

from channel_app.fields import ContextId


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, coerce_numbers_to_str=True)


class ChannelRef(_Lenient):
    id: ContextId


class Caller(_Lenient):
    type: str | None = None
    id: ContextId | None = None


class ChannelUser(_Lenient):
    id: ContextId | None = None
    member_id: ContextId | None = Field(None, alias="memberId")


class Chat(_Lenient):
    type: str | None = None
    id: ContextId | None = None


class CallContext(_Lenient):
    channel: ChannelRef | None = None
    caller: Caller | None = None
    user: ChannelUser | None = None
    user_chat: Chat | None = Field(None, alias="userChat")
    language: str | None = None


def _null_is_empty(value: Any) -> Any:
    return {} if value is None else value


class CallParams(_Lenient):
    chat: Chat | None = None
    input: Annotated[dict[str, Any], BeforeValidator(_null_is_empty)] = Field(default_factory=dict)
    language: str | None = None


class FunctionCall(_Lenient):
    method: StrictStr  # a number is no method name (the config would make 5 into "5")
    params: CallParams = Field(default_factory=CallParams)
    context: CallContext = Field(default_factory=CallContext)

    @property
    def channel_id(self) -> str | None:
        return self.context.channel.id if self.context.channel else None

    @property
    def language(self) -> str | None:
        return self.params.language or self.context.language

    @property
    def user_chat_id(self) -> str | None:
        """The user chat the call came from: `params.chat` when it is one, else `context.userChat`."""
        chat = self.params.chat
        if chat is not None:
            return chat.id if chat.type == "userChat" else None
        return self.context.user_chat.id if self.context.user_chat is not None else None

    @property
    def member_id(self) -> str | None:
        """The chat user's `memberId`: the site's own id for its user."""
        return self.context.user.member_id if self.context.user is not None else None

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
