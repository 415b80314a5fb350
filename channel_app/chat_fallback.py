"""When the visitor has no open page, say it in the chat instead.

If a call's target is not connected and the call came from a user chat, the
link or message is posted into that chat with Channel's
`writeUserChatMessage`, so the customer still gets it. Custom `sendEvent`
actions have no chat equivalent and never fall back.

Only when the target is that chat's own user: the call's clientId is the chat
user's `memberId` (the site's own user id, which it also uses as its widget
clientId), or the call named no clientId and targeted the memberId. A call for
some other client, or from the chat of a visitor with no memberId, proves no
link between that client and the chat, and posting there would show one
customer's message to another: it is answered CLIENT_NOT_CONNECTED instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio

from channel_app.errors import FunctionError
from channel_app.native.client import NativeApiClient, NativeApiError
from channel_app.native.messages import write_user_chat_message
from channel_app.native.tokens import TokenManager
from channel_app.protocol import FunctionCall

fallback_log = logging.getLogger("channel_push.chat_fallback")

LINK_TEXT = {"ko": "요청하신 페이지입니다.", "ja": "ご依頼のページです。"}
DEFAULT_LINK_TEXT = "Here is the page you asked for."
LINK_LABEL = {"ko": "페이지 열기", "ja": "ページを開く"}
DEFAULT_LINK_LABEL = "Open page"


@dataclass(frozen=True)
class ChatMessage:
    text: str
    link: str | None = None
    link_label: str | None = None


def link_message(url: str, language: str | None) -> ChatMessage:
    language = (language or "").split("-")[0]
    return ChatMessage(LINK_TEXT.get(language, DEFAULT_LINK_TEXT), url, LINK_LABEL.get(language, DEFAULT_LINK_LABEL))


def notice_message(message: str, title: str | None) -> ChatMessage:
    return ChatMessage(f"{title}\n{message}" if title else message)


@dataclass(frozen=True)
class ChatFallback:
    client: NativeApiClient
    tokens: TokenManager
    # The whole fallback (token renewal and the post, retries included) answers within
    # this; each Channel request has its own timeout, but a call waits for all of them.
    deadline_seconds: float

    async def post(self, call: FunctionCall, client_id: str, message: ChatMessage) -> bool:
        """True when posted; False when the call did not come from the user chat of `client_id`."""
        chat_id = call.user_chat_id
        if not chat_id or not call.channel_id or (call.member_id or "").strip() != client_id:
            return False
        try:
            with anyio.fail_after(self.deadline_seconds):
                await write_user_chat_message(
                    self.client, self.tokens, call.channel_id, chat_id, message.text, message.link, message.link_label
                )
        except NativeApiError as failure:
            _log_failure(call, failure.kind, failure.status, failure.message)
            raise _failed(failure.kind, failure.status) from None
        except TimeoutError:
            _log_failure(call, "unavailable", None, f"no answer within {self.deadline_seconds:g}s")
            raise _failed("unavailable", None) from None
        fallback_log.info("posted to the user chat", extra={"fields": {"channel_id": call.channel_id, "client_id": client_id}})
        return True


def _log_failure(call: FunctionCall, kind: str, status: int | None, detail: str) -> None:
    """Why Channel refused the post, for the operator: the most likely setup mistake (the
    app lacks the writeUserChatMessage permission, a 403) showed only as the call's outcome."""
    fields = {"channel_id": call.channel_id, "kind": kind, "status": status, "detail": detail}
    fallback_log.warning("chat fallback failed", extra={"fields": fields})


def _failed(kind: str, status: int | None) -> FunctionError:
    return FunctionError(
        "CHAT_FALLBACK_FAILED",
        f"The visitor is not connected and posting to the chat failed ({kind})",
        {"kind": kind, "status": status},
    )
