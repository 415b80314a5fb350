"""Reaching the server's connection behind an ASGI request, which ASGI does not offer.

uvicorn's `send` is a bound method of its request cycle, and the cycle holds
the connection's transport and flow control. `PushApp` keeps the server's own
`send` in the scope of its hot routes (before any wrapper), so the stream can
find the cycle again: to reset a stalled socket (`socket_abort`) and to write
frames at publish time (`immediate_writes`). Under another server there is no
such cycle and both fall back to plain ASGI.
"""

from __future__ import annotations

from starlette.types import Scope, Send

SERVER_SEND = "channel_push.server_send"  # scope key: the server's own `send`, set by PushApp


def remember_server_send(scope: Scope, send: Send) -> None:
    scope[SERVER_SEND] = send


def request_cycle(scope: Scope) -> object | None:
    """The object whose method the server's `send` is (uvicorn's RequestResponseCycle), if any."""
    return getattr(scope.get(SERVER_SEND), "__self__", None)
