"""Writing a message into a user chat (``writeUserChatMessage``).

``writeUserChatMessage`` params, as in Channel's SDK and tutorial
(``channel-io/cht-app-sdk`` ``NativeWriteUserChatMessageParams`` /
``NativeWriteMessageDto``; ``channel-io/app-tutorial`` ``WriteUserChatMessageParams``)::

    {"channelId": "...", "userChatId": "...",
     "dto": {"plainText": "...", "requestId": "...",
             "buttons": [{"title": "...", "action": {"type": "web", "url": "https://..."}}]}}

The current SDK types a button as ``{title, colorVariant?, action: object}``
and leaves ``action`` open; the ``{"type": "web", "url"}`` form comes from a
Channel TypeScript message-builder test, not from a published schema. So the
URL is always in the text as well, and if Channel refuses the message with a
4xx ``bad_request`` it is sent once more without the button. ``requestId``
(a field of the SDK's dto) is one id per message, kept across retries.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from channel_app.native.calls import call_with_token
from channel_app.native.client import NativeApiClient, NativeApiError
from channel_app.native.tokens import TokenManager

DEFAULT_LINK_LABEL = "Open link"


def message_dto(
    text: str,
    link: str | None = None,
    link_label: str | None = None,
    *,
    request_id: str | None = None,
    with_button: bool = True,
) -> dict[str, Any]:
    """The ``dto`` for a plain-text message, with an optional link button."""
    if not text or not text.strip():
        raise ValueError("message text must not be empty")
    body = text
    dto: dict[str, Any] = {}
    if link is not None:
        _check_link(link)
        if link not in text:
            body = f"{text}\n{link}"
    dto["plainText"] = body
    if request_id is not None:
        dto["requestId"] = request_id
    if link is not None and with_button:
        label = (link_label or "").strip() or DEFAULT_LINK_LABEL
        dto["buttons"] = [{"title": label, "action": {"type": "web", "url": link}}]
    return dto


async def write_user_chat_message(
    client: NativeApiClient,
    tokens: TokenManager,
    channel_id: str,
    user_chat_id: str,
    text: str,
    link: str | None = None,
    link_label: str | None = None,
    *,
    request_id: str | None = None,
) -> None:
    """Post ``text`` (and an optional link button) into a user chat as the app's bot."""
    if not channel_id or not user_chat_id:
        raise ValueError("channel_id and user_chat_id are required")
    request_id = request_id or uuid.uuid4().hex
    params = {
        "channelId": channel_id,
        "userChatId": user_chat_id,
        "dto": message_dto(text, link, link_label, request_id=request_id),
    }
    try:
        await call_with_token(client, tokens, channel_id, "writeUserChatMessage", params)
    except NativeApiError as exc:
        if exc.kind != "bad_request" or link is None:
            raise
        params["dto"] = message_dto(text, link, request_id=request_id, with_button=False)
        await call_with_token(client, tokens, channel_id, "writeUserChatMessage", params)


def _check_link(link: str) -> None:
    parts = urlsplit(link)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("link must be an absolute http(s) URL")
    if any(ch in link for ch in "\r\n\t "):
        raise ValueError("link must not contain whitespace")
