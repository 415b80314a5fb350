"""Command line: `python -m channel_app [serve|token] ...`.

`serve` (the default) runs the service under uvicorn; every flag has an
environment variable (see README). `token` mints a development client token;
`commands --print` shows the commands ALF can use and `register-commands`
registers them with Channel.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError
from pydantic_settings import SettingsError

from config.secrets import SecretRefused, resolve_secrets
from config.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m channel_app", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the service (default)")
    serve.add_argument("--host", help="bind address (env HOST)")
    serve.add_argument("--port", type=int, help="port (env PORT)")
    serve.add_argument(
        "--reuse-port",
        action="store_true",
        default=None,
        help="share the port with other channel-push processes on this machine (env REUSE_PORT; needs REDIS_URL)",
    )
    token = commands.add_parser("token", help="mint a client token from CLIENT_JWT_SECRET")
    token.add_argument("--client-id", required=True)
    token.add_argument("--ttl", default="10m", help="lifetime: 30s, 10m, 2h, 1d (default 10m)")
    token.add_argument("--topic", action="append", default=[], help="topic (or prefix:*) the token may subscribe to")
    token.add_argument("--scope", default=None, help="scope claim, e.g. 'publish' for a backend's publish token")
    listing = commands.add_parser("commands", help="show the commands we register for ALF")
    listing.add_argument("--print", action="store_true", dest="print_commands", help="print them (default)")
    listing.add_argument("--scope", default="desk", choices=["desk", "front"])
    registering = commands.add_parser("register-commands", help="register our commands with Channel (registerCommands)")
    registering.add_argument("--scope", default="desk", choices=["desk", "front"])
    args = parser.parse_args(argv)

    if args.command == "commands":
        from channel_app.cli_commands import print_commands

        return print_commands(args.scope)

    overrides = {key: value for key in ("host", "port", "reuse_port") if (value := getattr(args, key, None)) is not None}
    try:
        resolved = resolve_secrets(Settings(**overrides))
    except (SecretRefused, ValidationError, SettingsError) as refused:
        print(f"channel-push: refusing to start: {configuration_problem(refused)}", file=sys.stderr)
        return 2
    if args.command == "register-commands":
        from channel_app.cli_commands import register

        return register(resolved.settings, args.scope)
    if args.command == "token":
        from channel_app.cli_token import print_token

        return print_token(resolved.settings, args.client_id, args.ttl, args.topic, args.scope)
    from channel_app.policies import InvalidConfiguration
    from channel_app.run import serve as run_server

    try:
        return run_server(resolved)
    except InvalidConfiguration as invalid:
        print(f"channel-push: refusing to start: {invalid}", file=sys.stderr)
        return 2


def configuration_problem(error: Exception) -> str:
    """One line naming the setting, whatever kind of error it was."""
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        # A list's entry is named by its position, not as a variable of its own (ALLOWED_CHANNEL_IDS_0).
        setting = "_".join(str(part) for part in first["loc"] if not isinstance(part, int)).upper() or "settings"
        entries = [part for part in first["loc"] if isinstance(part, int)]
        where = f"{setting} (entry {entries[0] + 1})" if entries else setting
        return f"{where}: {first['msg']} (and {error.error_count() - 1} more)" if error.error_count() > 1 else f"{where}: {first['msg']}"
    return str(error).splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
