"""Start uvicorn on the configured address, with our logging and drain-on-signal."""

from __future__ import annotations

import logging
import signal
import sys

import uvicorn

from channel_app.app import create_app
from channel_app.server import DrainingServer
from config.secrets import ResolvedSettings
from security.redaction import RedactCredentials

BANNER_RULE = "=" * 72


def serve(resolved: ResolvedSettings) -> int:
    settings = resolved.settings
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
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown, which
    # would end the process "killed by signal"; a completed drain is a clean exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server.run()
    return 0


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
