"""Health, readiness and the public status summary."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from channel_app.ops_auth import is_operator
from channel_app.responses import JSONBody
from sse.broker import BrokerUnavailable, Totals

MAX_LISTED_CLIENTS = 1000


async def healthz(request: Request) -> JSONBody:
    return JSONBody({"status": "ok"})


async def readyz(request: Request) -> JSONBody:
    services = request.app.state.services
    broker_ok = await services.broker.is_healthy()
    services.metrics.broker_state(services.broker.name, broker_ok)
    ready = broker_ok and not services.lifecycle.draining
    body = {"ready": ready, "broker": broker_ok, "draining": services.lifecycle.draining}
    return JSONBody(body, 200 if ready else 503)


async def sse_status(request: Request) -> JSONBody:
    services = request.app.state.services
    body = await status_summary(services)
    if is_operator(request, services.settings):
        body["clients"] = local_client_detail(services.broker.registry)
    return JSONBody(body)


async def status_summary(services) -> dict[str, Any]:
    """Cluster-wide totals; while Redis is unreachable, this instance's own
    (`"totals": "local"`) rather than an error."""
    broker_ok = await services.broker.is_healthy()
    try:
        totals, scope = await services.broker.totals(), "cluster"
    except BrokerUnavailable:
        broker_ok, scope = False, "local"
        totals = Totals(services.broker.registry.client_total, services.broker.registry.connection_total)
    services.metrics.broker_state(services.broker.name, broker_ok)
    status = "draining" if services.lifecycle.draining else ("ok" if broker_ok else "degraded")
    return {
        "status": status,
        "instance": services.settings.instance_id,
        "uptime_s": round(services.lifecycle.uptime_seconds, 3),
        "connected_clients": totals.clients,
        "connections": totals.connections,
        "totals": scope,
        "broker": {"backend": services.broker.name, "healthy": broker_ok},
    }


def local_client_detail(registry) -> list[dict]:
    """Per-client connection counts on this instance (operators only: client ids are personal data)."""
    listed = []
    for client_id in registry.client_ids():
        if len(listed) == MAX_LISTED_CLIENTS:
            break
        listed.append({"clientId": client_id, "connections": registry.connection_count(client_id)})
    return listed
