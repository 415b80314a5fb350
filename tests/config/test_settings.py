"""Settings refuse values that would only fail later, or silently, with one line naming the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from channel_app.__main__ import configuration_problem
from config.settings import Settings


def problem(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)
    return configuration_problem(caught.value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # Review reproductions: each of these started, then failed without a word (or later, with a traceback).
        ({"cors_allowed_origins": "https://shop.example.com/"}, "CORS_ALLOWED_ORIGINS: "),
        ({"cors_allowed_origins": "shop.example.com"}, "CORS_ALLOWED_ORIGINS: "),
        ({"forwarded_allow_ips": "not-an-ip"}, "FORWARDED_ALLOW_IPS: "),
        ({"forwarded_allow_ips": "127.0.0.1/8"}, "FORWARDED_ALLOW_IPS: "),  # host bits: uvicorn would match nothing
        ({"client_token_cookie": "bad cookie;name"}, "CLIENT_TOKEN_COOKIE: "),
        ({"channel_api_base_url": "ftp://x"}, "CHANNEL_API_BASE_URL: "),
        ({"channel_api_base_url": "http://127.0.0.1:99999"}, "CHANNEL_API_BASE_URL: "),
        ({"redis_url": "redis://:pw@127.0.0.1:notaport/0"}, "REDIS_URL: "),
        ({"redis_url": "redis://127.0.0.1:6379/abc"}, "REDIS_URL: "),
        ({"redirect_allowed_hosts_by_channel": "notjson"}, "REDIRECT_ALLOWED_HOSTS_BY_CHANNEL: "),
        ({"app_env": "production", "channel_api_base_url": "http://channel.internal"}, "CHANNEL_API_BASE_URL must be https://"),
        ({"heartbeat_seconds": "inf"}, "HEARTBEAT_SECONDS: "),  # started, and never sent a heartbeat
        ({"max_stream_seconds": "inf"}, "MAX_STREAM_SECONDS: "),
        # Review reproductions: 1e9 s heartbeats made each round allocate millions of slices;
        # TTLs of 1e20 s started and then every queued call failed in Redis.
        ({"heartbeat_seconds": "1000000000"}, "HEARTBEAT_SECONDS: "),
        ({"allowed_channel_ids": "[true]"}, "ALLOWED_CHANNEL_IDS (entry 1): "),  # was named ALLOWED_CHANNEL_IDS_0
        ({"history_size": "100000000000000000000"}, "HISTORY_SIZE: "),  # started; then every Redis delivery failed
        ({"history_ttl_seconds": "1e20"}, "HISTORY_TTL_SECONDS: "),
        ({"queue_ttl_seconds": "1e20"}, "QUEUE_TTL_SECONDS: "),
        ({"forwarded_allow_ips": '["10.0.0.1", 2]'}, "FORWARDED_ALLOW_IPS: "),
        ({"ops_token": "t" * 1025}, "OPS_TOKEN: "),  # review reproduction: started, then refused every presented token
    ],
)
def test_a_value_that_cannot_work_is_refused_naming_its_variable(values, expected):
    line = problem(**values)
    assert expected in line and "\n" not in line
    assert "pw" not in line  # a password in REDIS_URL is never repeated
    assert "ttttt" not in line  # nor a secret


@pytest.mark.parametrize(
    "values",
    [
        {"cors_allowed_origins": "https://shop.example.com,http://127.0.0.1:8080,*"},
        {"forwarded_allow_ips": "10.0.0.0/8, 127.0.0.1,::1,*"},
        {"redis_url": "redis://:pw@127.0.0.1:6379/4"},
        {"redis_url": "unix:///run/redis.sock?db=2"},
        {"redirect_allowed_hosts_by_channel": '{"123": ["shop.example.com"]}'},
        {"channel_api_base_url": "http://127.0.0.1:18219"},  # development may use a local double
    ],
)
def test_good_values_pass(values):
    Settings(_env_file=None, **values)


def test_a_blank_instance_id_is_the_default_not_an_empty_name():
    assert Settings(_env_file=None, instance_id="  ").instance_id.strip()


@pytest.mark.parametrize(
    ("values", "prefix"),
    [
        ({}, "cp:"),
        ({"redis_url": "redis://127.0.0.1:6379/0"}, "cp:"),
        ({"redis_url": "redis://127.0.0.1:6379/5"}, "cp:5:"),
        ({"redis_url": "unix:///run/redis.sock?db=2"}, "cp:2:"),
        ({"redis_url": "redis://127.0.0.1:6379/5", "redis_key_prefix": "staging:"}, "staging:"),
    ],
)
def test_the_redis_key_prefix_holds_the_database_unless_set(values, prefix):
    assert Settings(_env_file=None, **values).effective_redis_key_prefix == prefix


def test_list_settings_take_json_arrays_and_origins_in_any_case():
    """Review reproductions: '["10.0.0.1","10.0.0.2"]' was refused as one address,
    ALLOWED_CHANNEL_IDS=[1,2] as two non-strings, and https://Shop.Example.com was
    accepted but never matched the lower-case Origin browsers send."""
    settings = Settings(
        _env_file=None,
        forwarded_allow_ips='["10.0.0.1", "10.0.0.2"]',
        allowed_channel_ids="[1, 2]",
        cors_allowed_origins="https://Shop.Example.com",
    )
    assert settings.forwarded_allow_ips == "10.0.0.1,10.0.0.2"
    assert settings.allowed_channel_ids == ["1", "2"]
    assert settings.cors_allowed_origins == ["https://shop.example.com"]



def test_origins_are_kept_as_browsers_send_them():
    """Review reproduction: https://shop.example.com:443 was accepted and never matched
    the Origin browsers send (no default port), nor did a Unicode host (sent in punycode)."""
    settings = Settings(
        _env_file=None,
        cors_allowed_origins="https://shop.example.com:443,http://[0:0:0:0:0:0:0:1]:80,http://localhost:08080,https://bücher.example,https://faß.example",
    )
    assert settings.cors_allowed_origins == [
        "https://shop.example.com", "http://[::1]", "http://localhost:8080", "https://xn--bcher-kva.example",
        "https://xn--fa-hia.example",  # as Chromium sends it (UTS #46); Python's idna codec would write fass.example
    ]
