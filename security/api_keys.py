"""API keys for the publish API (`PUBLISH_API_KEYS`), checked in constant time.

Several keys may be configured at once (one per backend, or old and new while
rotating). A presented key is hashed and its SHA-256 compared with each
configured key's SHA-256 by `hmac.compare_digest`, always against every key,
so neither the position of a match nor a key's length shows in the timing.
A match is named by a short fingerprint of the key (never the key itself):
rate limits, idempotency records and logs use that.
"""

from __future__ import annotations

import hashlib
import json
import hmac
from dataclasses import dataclass, field

MIN_KEY_CHARS = 16
MAX_PRESENTED_CHARS = 1024


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ApiKeys:
    _digests: tuple[tuple[bytes, str], ...] = field(default=(), repr=False)

    @classmethod
    def parse(cls, text: str | None) -> "ApiKeys":
        """Comma-separated keys, or a JSON array of them (as every list setting takes);
        ValueError (naming no key) for one that is too short, or a malformed array."""
        keys = [key.strip() for key in _listed(text or "") if key.strip()]
        for position, key in enumerate(keys, start=1):
            if len(key) < MIN_KEY_CHARS:
                raise ValueError(f"key #{position} is shorter than {MIN_KEY_CHARS} characters")
        return cls(tuple((hashlib.sha256(key.encode()).digest(), fingerprint(key)) for key in dict.fromkeys(keys)))

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def match(self, presented: str | None) -> str | None:
        """The fingerprint of the configured key equal to `presented`, else None."""
        if not presented or len(presented) > MAX_PRESENTED_CHARS:
            return None
        digest = hashlib.sha256(presented.encode(errors="surrogatepass")).digest()
        matched = None
        for configured, name in self._digests:
            if hmac.compare_digest(digest, configured):
                matched = name
        return matched


def _listed(text: str) -> list[str]:
    if not text.strip().startswith("["):
        return text.split(",")
    try:
        keys = json.loads(text)
    except ValueError:
        raise ValueError("not a valid JSON array of keys") from None  # its text would show the keys
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise ValueError("a JSON array of keys must hold only strings")
    return keys
