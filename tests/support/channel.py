"""Building signed Channel function calls, as Channel itself would."""

from __future__ import annotations

import json
from typing import Any

from security.signature import decode_signing_key, sign

SIGNING_KEY_HEX = "5f" * 32
CLIENT_JWT_SECRET = "test-client-secret-0123456789abcdef0123456789"


def function_body(method: str, input: dict[str, Any] | None = None, **context: Any) -> bytes:
    payload = {
        "method": method,
        "params": {"chat": {"type": "userChat", "id": "chat-1"}, "input": input or {}, "language": "ko"},
        "context": {"channel": {"id": "channel-1"}, "caller": {"type": "manager", "id": "manager-1"}, **context},
    }
    return json.dumps(payload, ensure_ascii=False).encode()


def signed_headers(body: bytes, key_hex: str = SIGNING_KEY_HEX) -> dict[str, str]:
    return {"X-Signature": sign(body, decode_signing_key(key_hex)), "Content-Type": "application/json"}
