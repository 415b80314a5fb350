"""The two log formats, and the access-log filter that drops query strings."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from channel_app.logs import JsonFormatter, TextFormatter, WithoutQuery, logging_config
from security.redaction import RedactCredentials
from tests.support.apps import make_settings


def record(message: str = "function call", args=(), fields=None, name: str = "channel_push.calls") -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)
    if fields is not None:
        made.fields = fields
    return made


def test_json_line_has_time_level_logger_message_and_fields():
    line = JsonFormatter().format(record(fields={"method": "notify", "duration_ms": 1.5}))
    parsed = json.loads(line)
    assert parsed["level"] == "info" and parsed["logger"] == "channel_push.calls"
    assert parsed["message"] == "function call"
    assert parsed["method"] == "notify" and parsed["duration_ms"] == 1.5
    assert parsed["time"].endswith("Z")


def test_json_lines_name_the_instance_they_come_from():
    """Review reproduction: INSTANCE_ID, documented as in the logs, was in none."""
    config = logging_config(make_settings(instance_id="inst-A", log_format="json"))
    formatter_settings = {key: value for key, value in config["formatters"]["json"].items() if key != "()"}
    line = JsonFormatter(**formatter_settings).format(record())
    assert json.loads(line)["instance"] == "inst-A"


def test_json_line_stays_one_line_with_an_exception():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        failing = logging.LogRecord("channel_push", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(failing)
    assert "\n" not in line
    assert "ValueError" in json.loads(line)["exception"]


def test_text_line_quotes_caller_text_so_it_cannot_forge_a_line():
    line = TextFormatter().format(record(fields={"method": "notify\nlevel=error fake", "client_id": "visitor-1"}))
    assert "\n" not in line
    assert 'method="notify\\nlevel=error fake"' in line
    assert "client_id=visitor-1" in line


def test_access_line_keeps_the_path_and_drops_the_query():
    access = record('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", "/sse/connect?clientId=a&token=abc.def", "1.1", 200), name="uvicorn.access")
    RedactCredentials().filter(access)
    WithoutQuery().filter(access)
    assert access.getMessage() == '127.0.0.1:5000 - "GET /sse/connect HTTP/1.1" 200'
    assert access.fields["path"] == "/sse/connect"


def test_log_format_defaults_to_json_in_production_and_text_in_development():
    assert make_settings(app_env="production").effective_log_format == "json"
    assert make_settings(app_env="development").effective_log_format == "text"
    assert make_settings(app_env="production", log_format="text").effective_log_format == "text"


@pytest.mark.parametrize(
    ("logged", "expected"),
    [
        ("/sse/connect?clientId=a&token=abc.def", "/sse/connect?clientId=a&token=[redacted]"),
        ("/sse/connect?clientId=a&%74oken=abc.def", "/sse/connect?clientId=a&%74oken=[redacted]"),
        ("/x?API_KEY=k1;signature=s1#frag", "/x?API_KEY=[redacted];signature=[redacted]#frag"),
        ("/x?tokens=kept&clientId=kept", "/x?tokens=kept&clientId=kept"),
    ],
)
def test_credentials_are_redacted_by_name_however_the_name_is_encoded(logged, expected):
    """The second guard behind dropping query strings: a token whose parameter name
    is percent-encoded is still read as `token` by the server, so it is a credential."""
    access = record('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", logged, "1.1", 200), name="uvicorn.access")
    RedactCredentials().filter(access)
    assert access.args[2] == expected


@pytest.mark.parametrize("level", ["error", "info"])
@pytest.mark.parametrize("module_logger", ["security.ratelimit_redis", "security.jwks", "channel_app.native.client", "channel_app.native.tokens"])
def test_log_level_governs_the_loggers_named_after_their_module_too(level, module_logger):
    """Review reproduction: these fell back to the root logger, pinned at WARNING, so
    LOG_LEVEL=error still printed their warnings and at info the rate limiter's
    "Redis reachable again" never appeared."""
    config = logging_config(make_settings(log_level=level))
    owner = next(name for name in config["loggers"] if module_logger == name or module_logger.startswith(name + "."))
    assert config["loggers"][owner]["level"] == level.upper()
    assert config["loggers"][owner]["handlers"] == ["default"]
