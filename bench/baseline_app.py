"""The naive baseline: the obvious sse-starlette push app, for comparison only.

A dict of `asyncio.Queue` per client, no signatures, no tokens, no allow-list,
no history, no caps; sse-starlette with its defaults (ping task, shutdown
watcher, per-connection task group). It serves the same URL shapes as
channel-push, so the same load generator drives both:

    uvicorn --factory bench.baseline_app:create_app

Never deploy this: it trusts every caller.
"""

from __future__ import annotations

import asyncio
import json

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def connect(request: Request) -> EventSourceResponse:
    client_id = request.query_params["clientId"]
    queues: dict[str, asyncio.Queue] = request.app.state.queues
    queue: asyncio.Queue = asyncio.Queue()
    queues[client_id] = queue

    async def events():
        try:
            while True:
                yield await queue.get()
        finally:
            queues.pop(client_id, None)

    return EventSourceResponse(events())


async def functions(request: Request) -> JSONResponse:
    call = json.loads(await request.body())
    inputs = call["params"]["input"]
    queues: dict[str, asyncio.Queue] = request.app.state.queues
    if call["method"] == "redirectClient":
        queue = queues.get(inputs["clientId"])
        if queue is None:
            return JSONResponse({"error": {"type": "CLIENT_NOT_CONNECTED", "message": "not connected"}})
        await queue.put({"event": "redirect", "data": json.dumps({"type": "redirect", "url": inputs["url"]})})
        return JSONResponse({"result": {"delivered": 1}})
    if call["method"] == "broadcast":
        event = {"event": "notification", "data": json.dumps({"type": "notification", "message": inputs["message"]})}
        for queue in list(queues.values()):
            await queue.put(event)
        return JSONResponse({"result": {"delivered": len(queues)}})
    return JSONResponse({"error": {"type": "METHOD_NOT_FOUND", "message": call["method"]}})


def create_app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/sse/connect", connect, methods=["GET"]),
            Route("/functions", functions, methods=["PUT"]),
        ]
    )
    app.state.queues = {}
    return app

