"""Start uvicorn on the configured address, with our logging and drain-on-signal.

Several processes on one machine: start this command once per core with
`--reuse-port` (SO_REUSEPORT: the kernel spreads new connections over them).
Each process is a complete instance with its own drain, and they share state
through Redis, so REUSE_PORT without REDIS_URL is refused. uvicorn's own
`--workers` supervisor is not used because it runs plain uvicorn servers,
which would skip the drain that ends streams on SIGTERM.
"""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn

from channel_app.app import create_app
from channel_app.policies import InvalidConfiguration
from channel_app.server import DrainingServer
from config.secrets import ResolvedSettings
from security.redaction import RedactCredentials

BANNER_RULE = "=" * 72


def serve(resolved: ResolvedSettings) -> int:
    settings = resolved.settings
    if settings.reuse_port and not settings.redis_url:
        raise InvalidConfiguration("REUSE_PORT needs REDIS_URL: processes sharing a port must share their state")
    if resolved.generated:
        print_development_banner(resolved)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    # uvicorn.Config has configured its loggers by now; redact before anything is logged.
    logging.getLogger("uvicorn.access").addFilter(RedactCredentials())
    server = DrainingServer(config, app.state.lifecycle)
    server.run(sockets=[shared_port_socket(settings.host, settings.port)] if settings.reuse_port else None)
    return 0


def shared_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def print_development_banner(resolved: ResolvedSettings) -> None:
    lines = [
        BANNER_RULE,
        "  DEVELOPMENT MODE - NOT FOR PRODUCTION",
        "  These secrets are public development values. Set APP_ENV=production",
        "  and real secrets before exposing this service.",
        "",
        *(f"  {name}={value}" for name, value in resolved.generated.items()),
        "",
        "  Broker: " + ("redis " if resolved.settings.redis_url else "in-memory (REDIS_URL unset)"),
        "  Client token: python -m channel_app token --client-id demo",
        BANNER_RULE,
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
