"""Calling Channel back: native functions, tokens, chat messages and our commands."""

from channel_app.native.calls import call_with_token
from channel_app.native.client import NativeApiClient, NativeApiError
from channel_app.native.commands import command_definitions, format_commands, register_commands
from channel_app.native.messages import write_user_chat_message
from channel_app.native.tokens import TokenManager

__all__ = [
    "NativeApiClient",
    "NativeApiError",
    "TokenManager",
    "call_with_token",
    "command_definitions",
    "format_commands",
    "register_commands",
    "write_user_chat_message",
]
