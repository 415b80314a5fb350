"""Start uvicorn on the configured address, with our logging and drain-on-signal.

Several processes on one machine: start this command once per core with
`--reuse-port` (SO_REUSEPORT: the kernel spreads new connections over them).
Each process is a complete instance with its own drain, and they share state
through Redis, so REUSE_PORT without REDIS_URL is refused. uvicorn's own
`--workers` supervisor is not used because it runs plain uvicorn servers,
which would skip the drain that ends streams on SIGTERM.

Exit status: 0 after a drained shutdown (SIGTERM or Ctrl-C), 3 when the
server could not start (port in use, lifespan failure).
"""

from __future__ import annotations

import signal
import socket
import sys

import uvicorn

from channel_app.app import create_app
from channel_app.demo import mints_own_tokens, serves_demo
from channel_app.garbage import GarbagePolicy, settle_garbage_collector
from channel_app.http_protocol import ServiceHttpProtocol
from channel_app.logs import logging_config
from channel_app.policies import InvalidConfiguration
from channel_app.server import DrainingServer
from config.secrets import ResolvedSettings

BANNER_RULE = "=" * 72
STARTUP_FAILED = 3


def serve(resolved: ResolvedSettings) -> int:
    settings = resolved.settings
    if settings.reuse_port and not settings.redis_url:
        raise InvalidConfiguration("REUSE_PORT needs REDIS_URL: processes sharing a port must share their state")
    if not settings.is_production:
        print_development_banner(resolved)
    app = create_app(settings)
    settle_garbage_collector()
    # After settling: its first thaw waits for twice what settling left.
    garbage = GarbagePolicy(open_streams=lambda: open_stream_count(app))
    server = DrainingServer(uvicorn_config(app, settings), app.state.lifecycle, upkeep=[garbage.run_forever])
    # uvicorn re-raises the exit signal once it has shut down, which would end
    # the process with "killed by SIGTERM" after a clean drain. Routing the
    # signals to the server beforehand makes that re-raise land here (a no-op
    # by then) and also covers a signal that arrives before uvicorn starts.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, server.handle_exit)
    server.run(sockets=[shared_port_socket(settings.host, settings.port)] if settings.reuse_port else None)
    return 0 if server.started else STARTUP_FAILED


def open_stream_count(app) -> int:
    """Streams open in this process; 0 before the app has started."""
    services = getattr(app.state, "services", None)
    return 0 if services is None else services.broker.registry.connection_total


def uvicorn_config(app, settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Below INFO no access line is printed, but uvicorn would still work out the
        # client address and quoted path of every response to offer one to the logger.
        access_log=settings.log_level in ("debug", "info"),
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,  # None: uvicorn's default, 127.0.0.1
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        log_config=logging_config(settings),  # JSON or text; access lines redacted and without query
        # uvicorn's "auto" would pick uvloop and httptools too when installed; naming
        # them makes a missing one fail at start instead of silently running the slower
        # pure-Python loop and parser (uvicorn[standard] installs both). The protocol is
        # httptools' with a cap on request heads and pipelined requests released (channel_app/http_protocol.py).
        loop="uvloop",
        http=ServiceHttpProtocol,
        # No WebSocket route exists. With "auto" (websockets installed by uvicorn[standard])
        # a request saying `Upgrade: websocket` with a body was never answered and kept its
        # socket for good, and one held at SIGTERM crashed the shutdown (review reproductions).
        # Without a WebSocket protocol, such a request is an ordinary HTTP request.
        ws="none",
    )


def shared_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def print_development_banner(resolved: ResolvedSettings) -> None:
    settings = resolved.settings
    if resolved.generated:
        secrets = [
            "  These secrets are public development values. Set APP_ENV=production",
            "  and real secrets before exposing this service.",
            "",
            *(f"  {name}={value}" for name, value in resolved.generated.items()),
        ]
    else:
        secrets = ["  APP_ENV is not production: set APP_ENV=production before exposing", "  this service."]
    if serves_demo(settings):
        helpers = "  Demo: / and /dev/* (they mint tokens and sign calls for anyone)"
    else:
        helpers = "  Demo and /dev/* off: they serve only with the public development secrets"
    lines = [
        BANNER_RULE,
        "  DEVELOPMENT MODE - NOT FOR PRODUCTION",
        *secrets,
        "",
        "  Broker: " + ("redis " if settings.redis_url else "in-memory (REDIS_URL unset)"),
        helpers,
        *(["  Client token: python -m channel_app token --client-id demo"] if mints_own_tokens(settings) else []),
        BANNER_RULE,
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
