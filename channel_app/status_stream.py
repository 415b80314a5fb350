"""`GET /sse/status/stream`: the status summary as SSE, every STATUS_STREAM_SECONDS.

Each event adds to the `/sse/status` summary what only a running view can
show: resident memory, CPU use and event rates since the previous event
(computed per stream from the metrics' running totals, sent as `counters`:
the summary's own `totals` says whether its counts are cluster-wide, so
several viewers never disturb each other). The stream opens with a `retry:`
hint and ends when the instance drains, after an event whose status is
`draining`.
"""

from __future__ import annotations

import time
from typing import Any, AsyncIterator, Callable

import orjson
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from channel_app.metrics import Metrics
from channel_app.ops_auth import ops_refusal
from channel_app.responses import STREAM_HEADERS
from channel_app.status import status_summary
from sse.events import encode_retry
from sse.timestamps import utc_timestamp

MIN_RATE_WINDOW_SECONDS = 0.05


class RateSampler:
    """Memory, CPU and per-second rates between one sample and the next."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._at = clock()
        self._totals = metrics.totals()
        self._cpu = metrics.process_sample()[1]

    def sample(self) -> dict[str, Any]:
        now, totals = self._clock(), self._metrics.totals()
        rss, cpu = self._metrics.process_sample()
        elapsed = now - self._at
        measured = elapsed >= MIN_RATE_WINDOW_SECONDS
        rates = {
            f"{name}_per_s": round((value - self._totals.get(name, 0.0)) / elapsed, 3) if measured else 0.0
            for name, value in totals.items()
        }
        cpu_percent = None
        if measured and cpu is not None and self._cpu is not None:
            cpu_percent = round(100 * (cpu - self._cpu) / elapsed, 1)
        if measured:
            self._at, self._totals, self._cpu = now, totals, cpu
        return {
            "memory": {"rss_bytes": int(rss) if rss is not None else None},
            "cpu": {"percent": cpu_percent},
            "rates": rates,
            "counters": totals,  # not "totals": the summary's "totals" says "cluster" or "local"
        }


def status_frame(data: dict[str, Any]) -> bytes:
    return b"event: status\ndata: " + orjson.dumps(data) + b"\n\n"


async def status_stream(request: Request) -> ASGIApp:
    services = request.app.state.services
    refusal = ops_refusal(request, services.settings, open_when_unset=False)
    return refusal if refusal is not None else StatusStream(services)


class StatusStream:
    def __init__(self, services) -> None:
        self._services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = EventSourceResponse(
            self._frames(),
            ping=0,
            send_timeout=self._services.settings.send_timeout_seconds,
            headers=STREAM_HEADERS,
        )
        # sse-starlette adds `Connection: keep-alive`, which uvicorn contradicts with its
        # own `Connection: close` for HTTP/1.0 or a client that asked to close (review).
        del response.headers["connection"]
        try:
            await response(scope, receive, send)
        except SendTimeoutError:
            pass  # a stalled viewer: its stream is over, nothing else to do

    async def _frames(self) -> AsyncIterator[bytes]:
        services = self._services
        sampler = RateSampler(services.metrics)
        yield encode_retry(services.settings.retry_ms)
        while True:
            data = await status_summary(services)
            data.update(sampler.sample())
            data["timestamp"] = utc_timestamp()
            yield status_frame(data)
            if data["status"] == "draining":
                return
            await services.lifecycle.sleep_unless_draining(services.settings.status_stream_seconds)
