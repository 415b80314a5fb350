"""`PUT /functions`: verify, parse, dispatch. The methods themselves live in methods.py.

Order matters: the signature is checked over the raw bytes before anything is
parsed, so an unsigned caller learns nothing about our parser. Every call,
answered or refused, is timed, counted and logged once (observers.record_call).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from channel_app.body import UnreadableBody, read_limited_body
from channel_app.errors import CUT_BEFORE_READ, CUT_BY_SHUTDOWN, FunctionError, broker_failure
from channel_app.inputs import describe_validation_error
from channel_app.methods import METHODS, MethodDeps
from channel_app.observers import record_call
from channel_app.protocol import FunctionCall, error_body
from channel_app.responses import JSONBody
from sse.broker import BrokerUnavailable

logger = logging.getLogger("channel_push.functions")


async def handle_function_call(request: Request) -> Response:
    services = request.app.state.services
    started = time.perf_counter()
    parsed: list[FunctionCall] = []  # the call, once read: its log line names it even if cut short
    try:
        answer = await _answer(request, services, parsed)
    except asyncio.CancelledError:
        # uvicorn cancels what still runs when SHUTDOWN_GRACE_SECONDS ends (a waitForAck
        # or a chat fallback can outlast it); it would answer a plain-text 500 and log a
        # traceback. The call gets its error object instead.
        if not services.lifecycle.draining:
            raise
        asyncio.current_task().uncancel()
        if parsed:
            answer = parsed[0], 200, error_body("UNAVAILABLE", CUT_BY_SHUTDOWN)
        else:  # cut while its body was arriving: nothing was read, so nothing was sent
            answer = None, 200, error_body("UNAVAILABLE", CUT_BEFORE_READ)
    return _recorded(services, answer, started)


Answer = tuple[FunctionCall | None, int, dict[str, Any]]


async def _answer(request: Request, services, parsed: list[FunctionCall]) -> Answer:
    try:
        body = await read_limited_body(request, services.settings.max_body_bytes, services.body_deadlines)
    except UnreadableBody as unread:
        return _refused(unread.status, unread.error_type, unread.message)
    return await _answer_body(services, body, request.headers.get("x-signature"), parsed)


async def answer_function_call(services, body: bytes, signature: str | None) -> JSONBody:
    """The answer to one call, from its raw body and X-Signature (also used by the dev demo)."""
    started = time.perf_counter()
    return _recorded(services, await _answer_body(services, body, signature), started)


async def _answer_body(services, body: bytes, signature: str | None, parsed: list[FunctionCall] | None = None) -> Answer:
    if not services.signatures.is_valid(body, signature):
        return _refused(401, "UNAUTHORIZED", "missing or invalid X-Signature")
    try:
        call = FunctionCall.model_validate(orjson.loads(body))
    except orjson.JSONDecodeError:
        return _refused(400, "INVALID_JSON", "the request body is not valid JSON")
    except ValidationError as error:
        return _refused(400, "INVALID_REQUEST", describe_validation_error(error))
    if parsed is not None:
        parsed.append(call)
    return call, 200, await dispatch(call, services.method_deps, services.settings.allowed_channel_ids)


def _recorded(services, answer: Answer, started: float) -> JSONBody:
    call, status, body = answer
    record_call(services.metrics, METHODS, call, status, body, time.perf_counter() - started)
    return JSONBody(body, status)


def _refused(status: int, error_type: str, message: str) -> Answer:
    return None, status, {"error": {"type": error_type, "message": message}}


async def dispatch(call: FunctionCall, deps: MethodDeps, allowed_channel_ids: list[str]) -> dict[str, Any]:
    if allowed_channel_ids and call.channel_id not in allowed_channel_ids:
        return error_body("UNAUTHORIZED", "this channel may not call this app")
    decision = await deps.limits.hit("function_channel", call.channel_id or "-")
    if not decision.allowed:
        return error_body(
            "RATE_LIMITED",
            f"too many calls from this channel; retry in {decision.retry_after_seconds:.1f}s",
            {"retryAfterSeconds": round(decision.retry_after_seconds, 3)},
        )
    spec = METHODS.get(call.method)
    if spec is None:
        return error_body("METHOD_NOT_FOUND", f"unknown method '{call.method[:64]}'")
    try:
        args = spec.input_model.model_validate(call.params.input)
        return await spec.handler(args, call, deps)
    except ValidationError as error:
        return error_body("INVALID_PARAMS", describe_validation_error(error))
    except FunctionError as error:
        return error_body(error.error_type, error.message, error.data)
    except BrokerUnavailable as failure:
        logger.warning("function %s: broker unavailable", call.method)
        return error_body("UNAVAILABLE", broker_failure(failure, spec.publishes))
    except Exception:
        logger.exception("function %s failed", call.method)
        return error_body("INTERNAL_ERROR", "an internal error occurred; it has been logged")
