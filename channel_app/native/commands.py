"""Our commands, as data: the one place where they are defined.

``command_definitions()`` builds the ``commands`` list of ``registerCommands``
(params ``{"appId", "commands"}``, sent with the app token). The fields are
those of Channel's app-store command model (``channel-io/ch-app-store``):
``name, scope, description, nameDescI18nMap, actionFunctionName, alfMode,
alfDescription, paramDefinitions`` (``autoCompleteFunctionName`` is optional
and unused here); :mod:`channel_app.native.command_limits` checks the limits.

Channel calls ``actionFunctionName`` on our ``PUT /functions``, so each
command's action is the function of the same name. ``clientId`` is never
required: without it the service targets the chat's user (``memberId``).
Scope defaults to ``desk``. A ``front`` command is run by the customer
(``caller.type`` "user"), whose calls act only on their own page
(channel_app/methods.py ``target_client``).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

from channel_app.native.calls import call_with_token
from channel_app.native.client import NativeApiClient
from channel_app.native.command_limits import SCOPES, definition_problems
from channel_app.native.tokens import TokenManager

_EMPTY_CLIENT = "Leave clientId empty to act on the customer in this chat."


@dataclass(frozen=True)
class _Param:
    name: str
    python_name: str
    type: str
    required: bool
    description: str
    alf_description: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Command:
    name: str
    description: str
    alf_description: str
    i18n: tuple[tuple[str, str, str], ...]  # (language, name, description)
    params: tuple[_Param, ...]


_CLIENT_ID = _Param(
    "clientId", "client_id", "string", False,
    "Visitor id; empty = the customer in this chat",
    "Leave empty: the customer in this chat is used. Set it only to a visitor id a manager gave you.",
)

_QUEUE_IF_OFFLINE = _Param(
    "queueIfOffline", "queue_if_offline", "bool", False,
    "Deliver when the visitor is back online",
    # No number of seconds: the wait is QUEUE_TTL_SECONDS, which ALF's copy of this text would not follow.
    "True only if it should still happen when the customer's page reconnects soon after (e.g. right after a page change); else false.",
)

_WAIT_FOR_ACK = _Param(
    "waitForAck", "wait_for_ack", "int", False,
    "Milliseconds to wait for the browser to confirm",
    "Usually leave empty. Milliseconds (up to 5000) to wait for the browser to confirm it acted.",
)

_COMMANDS: tuple[_Command, ...] = (
    _Command(
        "redirectClient",
        "Open a page of our website in the customer's browser.",
        "Use when the customer asks to see or go to a page of our website (a product page, their cart "
        "or checkout, an order or help page), or agrees when you offer to take them there. It opens the "
        "page in every tab of our website the customer has open, so use it only after they asked or "
        "agreed. Pass a full https URL of our own site taken from your knowledge or the customer's "
        "message; never invent one. " + _EMPTY_CLIENT,
        (("en", "redirectClient", "Open a page in the customer's browser"),
         ("ko", "페이지열기", "고객의 브라우저에서 페이지를 엽니다")),
        (
            _CLIENT_ID,
            _Param("url", "url", "string", True, "Full https URL of the page to open",
                   "Absolute https URL of a page on our own website. Never make one up."),
            _QUEUE_IF_OFFLINE,
            _WAIT_FOR_ACK,
        ),
    ),
    _Command(
        "notify",
        "Show a short notification in the customer's browser.",
        "Use to show a short on-screen notice in the customer's browser while they chat: to confirm "
        "that something worked (for example a coupon was applied), or to warn about the page they are "
        "on. Do not repeat what you already said in the chat, do not send long text or advertising. "
        "One or two sentences in the customer's language. " + _EMPTY_CLIENT,
        (("en", "notify", "Show a notification in the customer's browser"),
         ("ko", "알림표시", "고객의 브라우저에 알림을 표시합니다")),
        (
            _CLIENT_ID,
            _Param("message", "message", "string", True, "Text of the notification",
                   "One or two short sentences in the customer's language."),
            _Param("title", "title", "string", False, "Optional heading",
                   "Optional short heading; leave empty if the message says it all."),
            _Param("level", "level", "string", False, "info, success, warning or error",
                   "success to confirm something worked, warning or error for a problem, else info.",
                   ("info", "success", "warning", "error")),
            _QUEUE_IF_OFFLINE,
        ),
    ),
    _Command(
        "sendEvent",
        "Trigger an action of our website's own script in the customer's browser.",
        "Use only when your rules or instructions tell you to trigger a named website action (for "
        "example \"openCart\" or \"applyCoupon\") for the customer. The website's own code carries it "
        "out. Use only action names and payload values given in your instructions; never invent "
        "them. " + _EMPTY_CLIENT,
        (("en", "sendEvent", "Trigger a website action in the browser"),
         ("ko", "이벤트전송", "고객의 브라우저에서 웹사이트 동작을 실행합니다")),
        (
            _CLIENT_ID,
            _Param("action", "action", "string", True, "Action name the website handles",
                   "Exact action name from your instructions, e.g. openCart."),
            _Param("payload", "payload", "string", False, "JSON object as text, for the action",
                   "Optional JSON object as text, e.g. {\"couponCode\":\"WELCOME10\"}, from your instructions."),
            _QUEUE_IF_OFFLINE,
            _WAIT_FOR_ACK,
        ),
    ),
    _Command(
        "getClientStatus",
        "Check whether the customer's browser is connected right now.",
        "Use when you need to know whether the customer still has our website open, for example before "
        "opening a page or showing a notice, or when the customer says a page did not open. It reports "
        "whether their browser is connected right now and changes nothing for them. " + _EMPTY_CLIENT,
        (("en", "getClientStatus", "Is the customer's browser connected?"),
         ("ko", "접속상태확인", "고객의 브라우저 접속 여부를 확인합니다")),
        (_CLIENT_ID,),
    ),
)


def command_definitions(scope: str = "desk") -> list[dict[str, Any]]:
    """The ``commands`` list for ``registerCommands`` (fresh dicts on every call)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}")
    return [_command_dict(command, scope) for command in _COMMANDS]


def input_names(command_name: str) -> dict[str, str]:
    """Wire name -> Python name of a command's inputs, e.g. ``{"clientId": "client_id"}``."""
    for command in _COMMANDS:
        if command.name == command_name:
            return {param.name: param.python_name for param in command.params}
    raise KeyError(command_name)


async def register_commands(
    client: NativeApiClient,
    tokens: TokenManager,
    app_id: str,
    *,
    scope: str = "desk",
    enable_by_default: bool | None = None,
) -> dict[str, Any]:
    """Register our commands with ``registerCommands`` using the app token."""
    if not app_id:
        raise ValueError("app_id is required")
    commands = command_definitions(scope)
    problems = definition_problems(commands)
    if problems:
        raise ValueError("invalid command definitions: " + "; ".join(problems))
    params: dict[str, Any] = {"appId": app_id, "commands": commands}
    if enable_by_default is not None:
        params["enableByDefault"] = enable_by_default
    return await call_with_token(client, tokens, None, "registerCommands", params)


def format_commands(scope: str = "desk") -> str:
    """A human-readable listing, for ``commands --print``."""
    lines: list[str] = []
    for cmd in command_definitions(scope):
        lines.append(f"{cmd['name']}  (scope {cmd['scope']}, ALF {cmd['alfMode']}, "
                     f"calls {cmd['actionFunctionName']})")
        lines.append(f"  {cmd['description']}")
        for param in cmd["paramDefinitions"]:
            need = "required" if param["required"] else "optional"
            choices = f" [{'|'.join(c['value'] for c in param['choices'])}]" if "choices" in param else ""
            lines.append(f"    {param['name']:<15} {param['type']:<6} {need:<8} {param['description']}{choices}")
        wrapped = textwrap.wrap(cmd["alfDescription"], width=88)
        lines.extend(["  ALF: " + wrapped[0], *("       " + line for line in wrapped[1:])])
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _command_dict(command: _Command, scope: str) -> dict[str, Any]:
    return {
        "name": command.name,
        "scope": scope,
        "description": command.description,
        "nameDescI18nMap": {lang: {"name": name, "description": desc} for lang, name, desc in command.i18n},
        "actionFunctionName": command.name,
        "alfMode": "recommend",
        "alfDescription": command.alf_description,
        "paramDefinitions": [_param_dict(param) for param in command.params],
    }


def _param_dict(param: _Param) -> dict[str, Any]:
    result: dict[str, Any] = {
        "name": param.name,
        "type": param.type,
        "required": param.required,
        "description": param.description,
        "alfDescription": param.alf_description,
    }
    if param.choices:
        result["choices"] = [{"name": choice, "value": choice} for choice in param.choices]
    return result
