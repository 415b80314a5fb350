"""Which topics a verified client token lets its stream subscribe to.

The token's `topics` claim is a list of patterns: an exact topic name
(`promo`), or a prefix ending in `*` (`orders:*` matches `orders:42` and
`orders:eu:7`; a lone `*` matches every topic, so mint it with care). Patterns
that are not strings are ignored, so a malformed claim grants nothing.
Authorization is data, as in Mercure's topic matcher: the claim becomes a
`TopicAccess`, and `allows(topic)` decides. Pure: no I/O, no imports from
`sse` or `channel_app`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

PREFIX_MARK = "*"


@dataclass(frozen=True)
class TopicAccess:
    exact: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def from_claim(cls, patterns: Iterable[object]) -> "TopicAccess":
        exact: set[str] = set()
        prefixes: list[str] = []
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern:
                continue
            if pattern.endswith(PREFIX_MARK):
                prefixes.append(pattern[: -len(PREFIX_MARK)])
            else:
                exact.add(pattern)
        return cls(frozenset(exact), tuple(prefixes))

    def allows(self, topic: str) -> bool:
        return topic in self.exact or any(topic.startswith(prefix) for prefix in self.prefixes)

    def refused(self, topics: Iterable[str]) -> list[str]:
        """The requested topics this access does not cover, in request order."""
        return [topic for topic in topics if not self.allows(topic)]
