"""Command definitions (data), their limits, registerCommands and the CLI listing."""

from __future__ import annotations

import copy
import json
import re

import httpx
import pytest
from tests.support.fake_channel import APP_SECRET, FakeChannel, FakeClock, ok, token_reply

from channel_app.native.client import NativeApiClient
from channel_app.native.command_limits import LEGACY_MAX_ALF_DESCRIPTION, definition_problems
from channel_app.native.commands import command_definitions, format_commands, input_names, register_commands
from channel_app.native.tokens import TokenManager

EXPECTED_PARAMS = {
    "redirectClient": {"clientId": "string", "url": "string", "queueIfOffline": "bool", "waitForAck": "int"},
    "notify": {"clientId": "string", "message": "string", "title": "string", "level": "string", "queueIfOffline": "bool"},
    "sendEvent": {
        "clientId": "string", "action": "string", "payload": "string", "queueIfOffline": "bool", "waitForAck": "int",
    },
    "getClientStatus": {"clientId": "string"},
}


def by_name() -> dict[str, dict]:
    return {cmd["name"]: cmd for cmd in command_definitions()}


def test_every_alf_description_fits_1500_chars_and_10_params() -> None:
    for cmd in command_definitions():
        assert 0 < len(cmd["alfDescription"]) <= 1500, cmd["name"]
        assert len(cmd["paramDefinitions"]) <= 10, cmd["name"]
        for param in cmd["paramDefinitions"]:
            assert len(param["alfDescription"]) <= 1500


def test_no_description_names_a_wait_that_a_setting_decides() -> None:
    """Review reproduction: queueIfOffline told ALF "within 30 seconds" whatever
    QUEUE_TTL_SECONDS was."""
    texts = json.dumps(command_definitions())
    assert not re.search(r"\d+ seconds", texts)


def test_the_redirect_description_says_it_moves_every_open_tab() -> None:
    """Review reproduction: ALF was told the page opens in the tab the customer chats
    from, while a redirect moves every open tab (README)."""
    assert "every tab" in by_name()["redirectClient"]["alfDescription"]


def test_alf_descriptions_also_fit_the_older_500_char_cap() -> None:
    for cmd in command_definitions():
        assert len(cmd["alfDescription"]) <= LEGACY_MAX_ALF_DESCRIPTION, cmd["name"]


def test_definitions_break_none_of_channels_limits() -> None:
    assert definition_problems(command_definitions()) == []
    assert definition_problems(command_definitions("front")) == []


def test_commands_and_params_are_the_agreed_ones() -> None:
    commands = by_name()

    assert {name: {p["name"]: p["type"] for p in cmd["paramDefinitions"]} for name, cmd in commands.items()} == (
        EXPECTED_PARAMS
    )
    required = {name: sorted(p["name"] for p in cmd["paramDefinitions"] if p["required"]) for name, cmd in commands.items()}
    assert required == {"redirectClient": ["url"], "notify": ["message"], "sendEvent": ["action"], "getClientStatus": []}


def test_every_command_is_recommended_to_alf_and_calls_its_own_function() -> None:
    for cmd in command_definitions():
        assert cmd["alfMode"] == "recommend"
        assert cmd["actionFunctionName"] == cmd["name"]
        assert cmd["scope"] == "desk"
        assert set(cmd) == {
            "name", "scope", "description", "nameDescI18nMap", "actionFunctionName",
            "alfMode", "alfDescription", "paramDefinitions",
        }
        for param in cmd["paramDefinitions"]:
            assert {"name", "type", "required", "description", "alfDescription"} <= set(param)


def test_client_id_is_never_required() -> None:
    for cmd in command_definitions():
        [client_id] = [p for p in cmd["paramDefinitions"] if p["name"] == "clientId"]
        assert client_id["required"] is False
        assert "empty" in cmd["alfDescription"]


def test_level_offers_the_four_levels() -> None:
    [level] = [p for p in by_name()["notify"]["paramDefinitions"] if p["name"] == "level"]

    assert [c["value"] for c in level["choices"]] == ["info", "success", "warning", "error"]


def test_alf_is_told_when_to_redirect() -> None:
    text = by_name()["redirectClient"]["alfDescription"].lower()

    assert "product page" in text and "checkout" in text and "never invent" in text


def test_definitions_are_fresh_data_on_each_call() -> None:
    first = command_definitions()
    pristine = copy.deepcopy(first)
    first[0]["paramDefinitions"].clear()

    assert command_definitions() == pristine


def test_unknown_scope_is_refused() -> None:
    with pytest.raises(ValueError):
        command_definitions("everywhere")


def test_input_names_map_wire_names_to_python() -> None:
    assert input_names("redirectClient") == {
        "clientId": "client_id", "url": "url", "queueIfOffline": "queue_if_offline", "waitForAck": "wait_for_ack",
    }
    with pytest.raises(KeyError):
        input_names("nope")


def test_limit_check_reports_broken_definitions() -> None:
    broken = command_definitions()[0]
    broken["alfDescription"] = "x" * 1501
    broken["paramDefinitions"] = broken["paramDefinitions"] * 3  # 12 params, duplicated names

    problems = definition_problems([broken])

    assert any("alfDescription too long" in p for p in problems)
    assert any("more than 10 params" in p for p in problems)
    assert any("duplicate" in p for p in problems)


def test_format_commands_lists_every_command_and_param() -> None:
    text = format_commands()

    for name, params in EXPECTED_PARAMS.items():
        assert name in text
        for param in params:
            assert param in text
    assert "ALF:" in text


@pytest.mark.anyio
async def test_register_commands_sends_app_id_and_commands_with_the_app_token(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel
) -> None:
    channel.on("issueToken", token_reply("app-token"))
    channel.on("registerCommands", ok({"commands": []}))

    result = await register_commands(client, tokens, "app-1")

    assert result == {"commands": []}
    issue, register = channel.calls
    assert issue.params == {"secret": APP_SECRET}  # app token: no channelId
    assert register.body == {
        "method": "registerCommands",
        "params": {"appId": "app-1", "commands": command_definitions()},
    }
    assert register.token == "app-token"


@pytest.mark.anyio
async def test_register_commands_can_enable_by_default(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel
) -> None:
    channel.on("issueToken", token_reply("app-token"))
    channel.on("registerCommands", ok({}))

    await register_commands(client, tokens, "app-1", enable_by_default=True)

    assert channel.calls_to("registerCommands")[0].params["enableByDefault"] is True


@pytest.mark.anyio
async def test_register_commands_retries_once_after_401(
    client: NativeApiClient, tokens: TokenManager, channel: FakeChannel, clock: FakeClock
) -> None:
    channel.on("issueToken", token_reply("old"), token_reply("new"))
    channel.on("registerCommands", httpx.Response(401), ok({}))
    await tokens.access_token(None)
    clock.advance(120)  # no longer a token Channel issued moments ago

    await register_commands(client, tokens, "app-1")

    assert [c.token for c in channel.calls_to("registerCommands")] == ["old", "new"]
