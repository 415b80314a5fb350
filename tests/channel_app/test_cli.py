"""The command line as operators use it: start-up refusals, dev tokens, log hygiene."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from channel_app.app import create_app
from channel_app.policies import InvalidConfiguration, SecurityPolicies
from config.secrets import development_secret
from channel_app.dev_tokens import mint_accepted_token
from tests.support.apps import make_settings
from tests.support.asgi import asgi_client
from tests.support.channel import CLIENT_JWT_SECRET, SIGNING_KEY_HEX
from tests.support.processes import PROJECT_ROOT, run_cli, service_env, start_service, stop_service, wait_until_healthy
from tests.support.server import free_port


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CLIENT_JWT_SECRET": CLIENT_JWT_SECRET}, "CHANNEL_SIGNING_KEY"),
        ({"CHANNEL_SIGNING_KEY": SIGNING_KEY_HEX}, "CLIENT_JWT_SECRET"),
    ],
)
def test_production_without_a_required_secret_refuses_to_start_with_one_line(env, variable):
    result = run_cli("serve", "--port", "0", env=service_env(APP_ENV="production", **env))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert variable in lines[0]


def test_invalid_signing_key_refuses_to_start_naming_the_setting():
    env = service_env(APP_ENV="production", CHANNEL_SIGNING_KEY="not-hex", CLIENT_JWT_SECRET=CLIENT_JWT_SECRET)
    result = run_cli("serve", "--port", "0", env=env)
    assert result.returncode == 2
    assert "CHANNEL_SIGNING_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_previous_signing_key_is_named_as_itself():
    """Review reproduction: a non-hex CHANNEL_SIGNING_KEY_PREVIOUS was reported as
    CHANNEL_SIGNING_KEY, the key that was fine."""
    with pytest.raises(InvalidConfiguration) as refused:
        SecurityPolicies.from_settings(make_settings(channel_signing_key_previous="zz" + SIGNING_KEY_HEX[2:]))
    assert str(refused.value).startswith("CHANNEL_SIGNING_KEY_PREVIOUS: ")


PUBLIC_SIGNING_KEY = development_secret("channel_signing_key")


@pytest.mark.parametrize(
    ("env", "variable", "reason"),
    [
        ({"CHANNEL_SIGNING_KEY": PUBLIC_SIGNING_KEY}, "CHANNEL_SIGNING_KEY", "public development value"),
        ({"CLIENT_JWT_SECRET": development_secret("client_jwt_secret")}, "CLIENT_JWT_SECRET", "public development value"),
        ({"CHANNEL_SIGNING_KEY_PREVIOUS": PUBLIC_SIGNING_KEY}, "CHANNEL_SIGNING_KEY_PREVIOUS", "public development value"),
        ({"CHANNEL_SIGNING_KEY": PUBLIC_SIGNING_KEY.upper()}, "CHANNEL_SIGNING_KEY", "public development value"),
        ({"CHANNEL_SIGNING_KEY": " ".join(PUBLIC_SIGNING_KEY[i : i + 2] for i in range(0, 64, 2))}, "CHANNEL_SIGNING_KEY", "public development value"),
        ({"CHANNEL_SIGNING_KEY": "00"}, "CHANNEL_SIGNING_KEY", "too short"),
        ({"CLIENT_JWT_SECRET": "short-secret"}, "CLIENT_JWT_SECRET", "too short"),
        ({"CLIENT_JWT_SECRET": " " * 40}, "CLIENT_JWT_SECRET", "must be set"),
    ],
)
def test_production_refuses_public_development_or_weak_secrets(env, variable, reason):
    """Forged calls and client tokens: the development values are printed on every
    development banner, and a one-byte key is guessed at once."""
    settings = {"APP_ENV": "production", "CHANNEL_SIGNING_KEY": SIGNING_KEY_HEX, "CLIENT_JWT_SECRET": CLIENT_JWT_SECRET, **env}
    result = run_cli("serve", "--port", "0", env=service_env(**settings))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert variable in result.stderr and reason in result.stderr


def test_blank_secrets_count_as_unset_in_development():
    env = service_env(CHANNEL_SIGNING_KEY="", CHANNEL_SIGNING_KEY_PREVIOUS=" ", CLIENT_JWT_SECRET="")
    result = run_cli("token", "--client-id", "visitor-1", env=env)
    assert result.returncode == 0
    assert jwt.decode(result.stdout.strip(), development_secret("client_jwt_secret"), algorithms=["HS256"])["sub"] == "visitor-1"


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("serve",), {"APP_ENV": "staging"}, "APP_ENV"),
        (("serve",), {"PORT": "abc"}, "PORT"),
        (("serve",), {"CHANNEL_API_TIMEOUT_SECONDS": "0"}, "CHANNEL_API_TIMEOUT_SECONDS"),
        (("serve",), {"REDIRECT_ALLOWED_HOSTS_BY_CHANNEL": "{bad"}, "REDIRECT_ALLOWED_HOSTS_BY_CHANNEL: "),  # was named in lower case, "from source EnvSettingsSource"
        (
            ("serve",),
            {"APP_ENV": "production", "CHANNEL_SIGNING_KEY": SIGNING_KEY_HEX, "CLIENT_JWT_ALGORITHMS": "RS256",
             "CLIENT_JWT_JWKS_URL": "https://id.example.com/.well-known/jwks.json"},
            "CLIENT_JWT_AUDIENCE must be set",
        ),
        (("serve",), {"REDIS_URL": "localhost:6379"}, "REDIS_URL"),  # was a traceback at startup, exit 3
        (
            ("serve",),
            {"CLIENT_JWT_SECRET": CLIENT_JWT_SECRET, "CLIENT_JWT_JWKS_URL": "https://id.example.com/.well-known/jwks.json"},
            "set only one of CLIENT_JWT_SECRET and CLIENT_JWT_JWKS_URL",  # the secret was ignored without a word
        ),
        (("token", "--client-id", ""), {"CLIENT_JWT_SECRET": CLIENT_JWT_SECRET}, "--client-id"),
        # Review reproduction: a token for an id every route refuses (400 INVALID_CLIENT_ID).
        (("token", "--client-id", "bad id"), {"CLIENT_JWT_SECRET": CLIENT_JWT_SECRET}, "--client-id"),
        (("token", "--client-id", "x", "--ttl", "0"), {"CLIENT_JWT_SECRET": CLIENT_JWT_SECRET}, "positive"),
    ],
)
def test_bad_configuration_or_arguments_get_one_line_not_a_traceback(args, env, named):
    result = run_cli(*args, env=service_env(**env))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert named in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"redirect_http_hosts": "local host"}, "REDIRECT_HTTP_HOSTS: "),
        ({"redirect_allowed_hosts_by_channel": '{"1": ["http://x"]}'}, "REDIRECT_ALLOWED_HOSTS_BY_CHANNEL: "),
        ({"redirect_allowed_hosts": "bad host"}, "REDIRECT_ALLOWED_HOSTS: "),
        ({"client_jwt_secret": "short"}, "CLIENT_JWT_SECRET must be at least 32 bytes"),
        ({"client_jwt_secret": None, "client_jwt_public_key": "notapem", "client_jwt_audience": "push"}, "CLIENT_JWT_PUBLIC_KEY is not a PEM"),
        ({"client_jwt_secret": None, "client_jwt_jwks_url": "notaurl", "client_jwt_audience": "push"}, "CLIENT_JWT_JWKS_URL must be an https:// URL"),
        ({"client_jwt_algorithms": "RS256"}, "CLIENT_JWT_ALGORITHMS ['RS256'] cannot be used with CLIENT_JWT_SECRET"),
    ],
)
def test_a_bad_list_or_key_is_named_as_its_own_variable(overrides, named):
    """Review reproductions: REDIRECT_HTTP_HOSTS and the per-channel lists were named
    REDIRECT_ALLOWED_HOSTS, and the token settings by the verifier's field names
    (`CLIENT_JWT_*: hs256_secret must be ...`)."""
    with pytest.raises(InvalidConfiguration) as refused:
        SecurityPolicies.from_settings(make_settings(**overrides))
    assert str(refused.value).startswith(named), str(refused.value)


def test_token_command_mints_a_token_for_the_configured_secret():
    result = run_cli("token", "--client-id", "visitor-1", "--ttl", "10m", env=service_env(CLIENT_JWT_SECRET=CLIENT_JWT_SECRET))
    assert result.returncode == 0
    claims = jwt.decode(result.stdout.strip(), CLIENT_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "visitor-1"
    assert 590 <= claims["exp"] - claims["iat"] <= 601


def test_token_command_mints_topic_and_publish_tokens():
    args = ("token", "--client-id", "shop-backend", "--topic", "promo", "--topic", "orders:*", "--scope", "publish")
    result = run_cli(*args, env=service_env(CLIENT_JWT_SECRET=CLIENT_JWT_SECRET))
    assert result.returncode == 0
    claims = jwt.decode(result.stdout.strip(), CLIENT_JWT_SECRET, algorithms=["HS256"])
    assert (claims["topics"], claims["scope"]) == (["promo", "orders:*"], "publish")


@pytest.mark.anyio
async def test_development_tokens_follow_the_services_own_token_settings():
    """Review reproduction: the token CLI and /dev/token minted plain HS256 tokens without
    aud or iss, which the same service refused when CLIENT_JWT_AUDIENCE/ISSUER were set
    or CLIENT_JWT_ALGORITHMS did not include HS256."""
    secret = "s" * 64
    overrides = {"client_jwt_secret": secret, "client_jwt_audience": "push", "client_jwt_issuer": "https://shop.example", "client_jwt_algorithms": "HS512"}
    token = mint_accepted_token(make_settings(**overrides), "au1", 60)
    assert jwt.get_unverified_header(token)["alg"] == "HS512"
    async with asgi_client(**overrides) as http:
        check = await http.get("/sse/check", params={"clientId": "au1", "token": token})
    assert check.status_code == 200, check.text


def test_token_command_rejects_a_bad_ttl():
    result = run_cli("token", "--client-id", "x", "--ttl", "soon", env=service_env(CLIENT_JWT_SECRET=CLIENT_JWT_SECRET))
    assert result.returncode == 2
    assert "--ttl" in result.stderr


def test_development_mode_starts_with_a_loud_banner_and_serves(tmp_path):
    port = free_port()
    log = tmp_path / "service.log"
    process = start_service(port, service_env(APP_ENV="development"), log)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/sse/status").json()["broker"]["backend"] == "memory"
    finally:
        assert stop_service(process) == 0
    output = log.read_text()
    assert "DEVELOPMENT MODE" in output
    assert "CHANNEL_SIGNING_KEY=" in output


def test_access_log_never_contains_the_client_token(tmp_path):
    port = free_port()
    log = tmp_path / "service.log"
    env = service_env(
        APP_ENV="production", CHANNEL_SIGNING_KEY=SIGNING_KEY_HEX, CLIENT_JWT_SECRET=CLIENT_JWT_SECRET, LOG_LEVEL="info"
    )
    process = start_service(port, env, log)
    secret_looking = "eyJhbGciOiJIUzI1NiJ9.bogus-token-value.signature-part"
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/sse/connect", params={"clientId": "v", "token": secret_looking})
        assert response.status_code == 401
    finally:
        stop_service(process)
    output = log.read_text()
    assert "/sse/connect" in output
    assert "bogus-token-value" not in output
    assert "token=" not in output  # access lines carry the path only, never the query string


def test_commands_print_lists_every_command_with_its_alf_description():
    result = run_cli("commands", "--print")
    assert result.returncode == 0
    for name in ("redirectClient", "notify", "sendEvent", "getClientStatus"):
        assert name in result.stdout
    assert "ALF:" in result.stdout


def test_register_commands_sends_our_definitions_with_an_app_token(monkeypatch, capsys):
    import respx

    from channel_app.__main__ import main
    from channel_app.native.commands import command_definitions
    from tests.support.fake_channel import APP_SECRET, BASE_URL, FakeChannel, ok, token_reply

    for key, value in {
        "CHANNEL_APP_ID": "app-42",
        "CHANNEL_APP_SECRET": APP_SECRET,
        "CHANNEL_API_BASE_URL": BASE_URL,
        "CLIENT_JWT_SECRET": CLIENT_JWT_SECRET,
    }.items():
        monkeypatch.setenv(key, value)
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        channel = FakeChannel(router)
        channel.on("issueToken", token_reply("app-token"))
        channel.on("registerCommands", ok({}))
        assert main(["register-commands"]) == 0
    [issue] = channel.calls_to("issueToken")
    assert issue.params == {"secret": APP_SECRET}
    [registered] = channel.calls_to("registerCommands")
    assert registered.token == "app-token"
    assert registered.params == {"appId": "app-42", "commands": command_definitions("desk")}
    assert "app-42" in capsys.readouterr().out


@pytest.mark.redis
def test_register_commands_with_redis_uses_the_app_token_the_instances_share(monkeypatch, redis_url):
    import orjson
    import redis
    import respx

    from channel_app.__main__ import main
    from tests.support.fake_channel import APP_SECRET, BASE_URL, FakeChannel, ok

    now = time.time()
    shared = {"access": "shared-app-token", "refresh": "r", "renew_at": now + 600, "expires_at": now + 900}
    with redis.Redis.from_url(redis_url) as admin:
        admin.set("cp:native:token:-", orjson.dumps(shared), px=900_000)
    for key, value in {"CHANNEL_APP_ID": "app-42", "CHANNEL_APP_SECRET": APP_SECRET, "CHANNEL_API_BASE_URL": BASE_URL,
                       "CLIENT_JWT_SECRET": CLIENT_JWT_SECRET, "REDIS_URL": redis_url}.items():
        monkeypatch.setenv(key, value)
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        channel = FakeChannel(router)
        channel.on("registerCommands", ok({}))
        assert main(["register-commands"]) == 0
    [registered] = channel.calls
    assert (registered.method, registered.token) == ("registerCommands", "shared-app-token")


def test_development_on_any_free_port_starts_rather_than_refusing_its_own_allow_list():
    """--port 0 used to build the development redirect entry `localhost:0` and refuse it."""
    create_app(make_settings(app_env="development", port=0, redirect_allowed_hosts=[], redirect_http_hosts=[]))


def test_development_with_secrets_of_ones_own_still_has_its_banner_and_no_demo(tmp_path):
    """Before, the banner came only when a secret was generated: a deploy with real
    secrets that left APP_ENV unset ran development mode without a word."""
    port = free_port()
    log = tmp_path / "service.log"
    env = service_env(CHANNEL_SIGNING_KEY=SIGNING_KEY_HEX, CLIENT_JWT_SECRET=CLIENT_JWT_SECRET)
    process = start_service(port, env, log)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/dev/token", params={"clientId": "x"}).status_code == 404
    finally:
        assert stop_service(process) == 0
    output = log.read_text()
    assert "DEVELOPMENT MODE" in output and "Demo and /dev/* off" in output
    assert CLIENT_JWT_SECRET not in output


def test_the_procfile_runs_in_production_unless_told_otherwise(tmp_path):
    port = free_port()
    log_path = tmp_path / "service.log"
    command = (PROJECT_ROOT / "Procfile").read_text().split("web:", 1)[1].strip()
    env = service_env(PORT=str(port), CHANNEL_SIGNING_KEY=SIGNING_KEY_HEX, CLIENT_JWT_SECRET=CLIENT_JWT_SECRET)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["sh", "-c", command], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process, log_path)
        assert httpx.get(f"http://127.0.0.1:{port}/dev/token", params={"clientId": "x"}).status_code == 404
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the shell and the service under it, as a platform stops a dyno
        process.wait(10)
    assert "DEVELOPMENT MODE" not in log_path.read_text()
