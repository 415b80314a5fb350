"""What ops see of each connection and each function call: one metric update and
one structured log line apiece.

Log lines carry ids (client, connection, channel) and outcomes; never a token,
a signature, a request body or a query string.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from channel_app.metrics import Metrics
from channel_app.protocol import FunctionCall
from sse.registry import Connection

connection_log = logging.getLogger("channel_push.connections")
call_log = logging.getLogger("channel_push.calls")

MAX_LOGGED_ID = 128
NO_METHOD = "none"  # the call was refused before its method was known
UNKNOWN_METHOD = "unknown"  # a method we do not serve: kept out of metric labels


class ConnectionEvents:
    """The registry's observer: counts and logs every stream's start and end."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def connection_opened(self, connection: Connection) -> None:
        self._metrics.connection_opened()
        if connection_log.isEnabledFor(logging.INFO):
            connection_log.info(
                "sse connect",
                extra={"fields": {"client_id": connection.client_id, "connection_id": connection.id}},
            )

    def connection_closed(self, connection: Connection, reason: str) -> None:
        seconds = max(0.0, time.time() - connection.opened_at)
        self._metrics.connection_closed(reason, seconds)
        if connection_log.isEnabledFor(logging.INFO):
            fields = {
                "client_id": connection.client_id,
                "connection_id": connection.id,
                "reason": reason,
                "duration_ms": round(seconds * 1000, 1),
            }
            connection_log.info("sse disconnect", extra={"fields": fields})


def record_call(
    metrics: Metrics,
    known_methods: Any,
    call: FunctionCall | None,
    status: int,
    body: dict[str, Any],
    seconds: float,
) -> None:
    error = body.get("error")
    outcome = error.get("type", "error") if isinstance(error, dict) else "ok"
    if call is None:
        method = NO_METHOD
    else:
        method = call.method if call.method in known_methods else UNKNOWN_METHOD
    metrics.function_called(method, outcome, seconds)
    if not call_log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {
        "method": call.method[:64] if call is not None else None,
        "channel_id": _short(call.channel_id) if call is not None else None,
        "caller_type": _short(call.caller_type) if call is not None else None,
        "client_id": _target(call, body),
        "outcome": outcome,
        "http_status": status,
        "duration_ms": round(seconds * 1000, 2),
    }
    call_log.info("function call", extra={"fields": fields})


def _target(call: FunctionCall | None, body: dict[str, Any]) -> str | None:
    """The clientId the call acted on: from our answer when it names one, else from the input."""
    for part in (body.get("result"), (body.get("error") or {}).get("data")):
        if isinstance(part, dict) and isinstance(part.get("clientId"), str):
            return _short(part["clientId"])
    if call is None or call.params.input.get("topic"):
        return None
    requested = call.params.input.get("clientId")
    if isinstance(requested, str):
        return _short(requested)
    return _short(call.member_id)


def _short(value: str | None) -> str | None:
    return value[:MAX_LOGGED_ID] if isinstance(value, str) else None
