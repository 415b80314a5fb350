"""Transport for Channel's native functions (``PUT /general/v1/native/functions``).

One method, :meth:`NativeApiClient.call`, with bounded retries: 5xx answers,
timeouts and connection errors are retried with exponential backoff and
jitter; 4xx answers are final. Every failure becomes a :class:`NativeApiError`
whose ``kind`` tells the caller what to do about it. Every attempt runs under
a hard deadline of ``timeout_seconds``, so a call never takes longer than
``timeout_seconds * (max_retries + 1)`` plus the backoff sleeps.

Secrets (the access token, an app secret or a refresh token passed in
``params``) are never logged, and are scrubbed from error messages built from
Channel's answers.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

import anyio
import httpx

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://app-store-api.channel.io"
NATIVE_FUNCTIONS_PATH = "/general/v1/native/functions"
ACCESS_TOKEN_HEADER = "x-access-token"

ErrorKind = Literal["unauthorized", "rate_limited", "bad_request", "unavailable", "protocol"]

_SECRET_PARAM_NAMES = ("secret", "refreshToken", "accessToken")
_MAX_MESSAGE_CHARS = 300
MAX_ANSWER_BYTES = 1024 * 1024  # Channel's answers are a few KB
_MAX_BACKOFF_SECONDS = 5.0
_KIND_BY_STATUS: Mapping[int, ErrorKind] = MappingProxyType(
    {401: "unauthorized", 403: "unauthorized", 429: "rate_limited"}
)


class UnreadableAnswer(Exception):
    """An answer refused before reading it all (its text says why)."""


class NativeApiError(Exception):
    """A native-function call failed.

    ``kind`` is one of ``unauthorized`` (401/403), ``rate_limited`` (429, or
    the local token budget is spent), ``bad_request`` (other 4xx),
    ``unavailable`` (5xx, timeout or connection error after the retries) and
    ``protocol`` (a non-JSON answer, or a body carrying an ``error``).
    ``status`` is the HTTP status when there was one.
    """

    def __init__(self, kind: ErrorKind, message: str, status: int | None = None, *, reached: bool = True) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status
        # False when no attempt can have reached Channel (the connection was never
        # made): such a call spent nothing of Channel's token limit.
        self.reached = reached

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.kind}{status}: {self.message}"

    def __repr__(self) -> str:
        return f"NativeApiError({self.kind!r}, {self.message!r}, {self.status!r})"


class NativeApiClient:
    """Calls Channel's native functions over an injected ``httpx.AsyncClient``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str = DEFAULT_BASE_URL,
        timeout_seconds: float = 5.0,
        max_retries: int = 2,
        backoff_seconds: float = 0.2,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if max_retries < 0 or backoff_seconds < 0:
            raise ValueError("max_retries and backoff_seconds must not be negative")
        self._http = http
        self._url = base_url.rstrip("/") + NATIVE_FUNCTIONS_PATH
        self._timeout = timeout_seconds
        self._max_retries = max_retries
        self._backoff = backoff_seconds

    @property
    def url(self) -> str:
        return self._url

    @property
    def timeout_seconds(self) -> float:
        """How long one attempt may take."""
        return self._timeout

    async def call(
        self, method: str, params: dict[str, Any], access_token: str | None = None, max_retries: int | None = None
    ) -> dict[str, Any]:
        """Call native function ``method`` and return its ``result`` object.

        Channel wraps answers as ``{"result": {...}}``; the inner object is
        returned. A body without ``result`` (and without ``error``) is
        returned as it is. ``max_retries`` overrides the client's own (token
        calls pass 0: each request Channel receives counts against its limit).
        """
        headers = {"accept": "application/json", "accept-encoding": "identity"}
        if access_token:
            headers[ACCESS_TOKEN_HEADER] = access_token
        body = {"method": method, "params": params}
        secrets = _secrets_in(params, access_token)
        retries = self._max_retries if max_retries is None else max_retries
        attempts = retries + 1
        failure = NativeApiError("unavailable", f"{method}: not attempted", reached=False)
        reached = False
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                delay = self._delay(attempt - 1)
                logger.warning(
                    "native call failed (%s); retry %d/%d in %.2fs",
                    failure.message, attempt - 1, retries, delay,
                )
                await anyio.sleep(delay)
            try:
                with anyio.fail_after(self._timeout):
                    response = await self._exchange(body, headers)
            except UnreadableAnswer as refused:
                raise NativeApiError("protocol", f"{method}: {refused}") from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # no connection: nothing was sent
                failure = NativeApiError("unavailable", f"{method}: {type(exc).__name__}", reached=reached)
                continue
            except (TimeoutError, httpx.TimeoutException):
                reached = True
                failure = NativeApiError("unavailable", f"{method}: timed out after {self._timeout}s")
                continue
            except httpx.RequestError as exc:  # transport failures, and bodies that fail to decode
                reached = True
                failure = NativeApiError("unavailable", f"{method}: {type(exc).__name__}")
                continue
            reached = True
            if response.status_code >= 500:
                detail = _redact(_describe(response), secrets)
                failure = NativeApiError("unavailable", f"{method}: {detail}", response.status_code)
                continue
            return _result(method, response, secrets)
        logger.warning("native call gave up after %d attempt(s): %s", attempts, failure.message)
        raise failure

    async def _exchange(self, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        """The answer, read as it arrives and refused past MAX_ANSWER_BYTES: read whole by
        httpx, 250 MB took 11.7 s (past the deadline, which cannot cut a synchronous JSON
        parse), 788 MB of memory, and held the event loop for seconds (review reproduction)."""
        # The connect timeout falls before the attempt's deadline, so a connection that is
        # never made (a dropped SYN) ends as ConnectTimeout: the request never reached Channel.
        timeout = httpx.Timeout(self._timeout, connect=self._timeout * 0.8)
        async with self._http.stream("PUT", self._url, json=body, headers=headers, timeout=timeout) as response:
            if response.headers.get("content-encoding", "identity") != "identity":
                # Asked for identity: compressed, a small answer could expand past any cap while decoded.
                raise UnreadableAnswer(f"answer is {response.headers['content-encoding']}-encoded")
            content = bytearray()
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > MAX_ANSWER_BYTES:
                    raise UnreadableAnswer(f"answer is over {MAX_ANSWER_BYTES} bytes")
        return httpx.Response(response.status_code, content=bytes(content))

    def _delay(self, retry: int) -> float:
        """Backoff before retry number ``retry`` (1-based): exponential, half jittered."""
        ceiling = min(self._backoff * (2 ** (retry - 1)), _MAX_BACKOFF_SECONDS)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _result(method: str, response: httpx.Response, secrets: list[str]) -> dict[str, Any]:
    status = response.status_code
    if status >= 400:
        kind = _KIND_BY_STATUS.get(status, "bad_request")
        raise NativeApiError(kind, f"{method}: {_redact(_describe(response), secrets)}", status)
    if not 200 <= status < 300:
        raise NativeApiError("protocol", f"{method}: unexpected HTTP {status}", status)
    try:
        payload = response.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser
        raise NativeApiError("protocol", f"{method}: answer is not JSON", status) from None
    if not isinstance(payload, dict):
        raise NativeApiError("protocol", f"{method}: answer is not a JSON object", status)
    if payload.get("error") is not None:
        detail = _redact(_error_text(payload) or "error without a message", secrets)
        raise NativeApiError("protocol", f"{method}: Channel answered an error: {detail}", status)
    if "result" not in payload:
        return payload
    result = payload["result"]
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise NativeApiError("protocol", f"{method}: result is not a JSON object", status)
    return result


def _describe(response: httpx.Response) -> str:
    """A short, human description of a failed answer."""
    try:
        text = _error_text(response.json())
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser
        text = None
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")


def _error_text(payload: Any) -> str | None:
    """Best-effort message from ``{"error": {...}}``, ``{"message"}`` or ``{"errors": [...]}``."""
    if not isinstance(payload, dict):
        return None
    candidates = [payload.get("error"), payload]
    errors = payload.get("errors")
    if isinstance(errors, list) and errors:
        candidates.insert(1, errors[0])
    for item in candidates:
        if isinstance(item, str) and item:
            return item
        if isinstance(item, dict):
            for key in ("message", "type"):
                value = item.get(key)
                if isinstance(value, str) and value:
                    return value
    return None


def _secrets_in(params: dict[str, Any], access_token: str | None) -> list[str]:
    found = [access_token] if access_token else []
    for name in _SECRET_PARAM_NAMES:
        value = params.get(name)
        if isinstance(value, str) and value:
            found.append(value)
    return found


def _redact(text: str, secrets: list[str]) -> str:
    """`text` without the secrets, then cut short: cut first, a secret split at the cut
    would be left half in the log."""
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text[:_MAX_MESSAGE_CHARS]
