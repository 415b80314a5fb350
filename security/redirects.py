"""Allow-list policy for redirecting a visitor's browser.

Channel Talk's AI agent asks us to send a visitor's browser to a URL. If that
URL could point anywhere, anyone who can steer the agent (or forge its call)
could send the site's customers to a phishing page. ``RedirectPolicy.check``
lets a URL through only if it parses strictly (see ``urlparse_strict``) and its
scheme, host and port are on the allow list for the visitor's channel.

Allow-list entries:

* ``shop.example.com``: that host, on the scheme's default port only.
* ``*.example.com``: any subdomain at any depth, but never ``example.com``
  itself (list it too if wanted). The parent needs at least two labels.
* ``shop.example.com:8443``: that host on port 8443 only.
* ``127.0.0.1`` / ``[::1]``: IP literals, matched only as written (canonical form).

Entries are lowercased and IDNA-encoded (``한국.example`` is stored as
``xn--3e0b707e.example``); invalid entries raise ValueError naming the entry.
Hosts in ``http_hosts`` may use plain http *or* https; all others need https.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .urlparse_strict import (
    DEFAULT_PORTS,
    StrictUrl,
    UnsafeUrl,
    is_ip_literal,
    normalise_host,
    parse_strict_url,
    shorten,
    split_host_port,
)

_WILDCARD_PREFIX = "*."


class RedirectRefused(ValueError):
    """Raised with a short human-readable reason, e.g. 'host not allowed: evil.com'."""

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class HostPattern:
    """One parsed allow-list entry."""

    host: str  # normalised; for a wildcard, the parent domain after "*."
    port: int | None  # None means only the scheme's default port
    wildcard: bool = False

    @classmethod
    def parse(cls, entry: str) -> HostPattern:
        if not isinstance(entry, str):
            raise ValueError(f"invalid redirect allow-list entry {entry!r}: not a string")
        try:
            return cls._parse_text(entry.strip())
        except UnsafeUrl as problem:
            raise ValueError(
                f"invalid redirect allow-list entry {shorten(entry)!r}: {problem.reason}"
            ) from None

    @classmethod
    def _parse_text(cls, text: str) -> HostPattern:
        if any(char in text for char in "/@?#"):
            raise UnsafeUrl("expected host[:port], without scheme, userinfo or path")
        wildcard = text.startswith(_WILDCARD_PREFIX)
        raw_host, port = split_host_port(text.removeprefix(_WILDCARD_PREFIX))
        host = normalise_host(raw_host)
        if wildcard and (is_ip_literal(host) or "." not in host):
            raise UnsafeUrl("a wildcard needs a parent domain of two or more labels")
        return cls(host=host, port=port, wildcard=wildcard)

    def matches_host(self, host: str) -> bool:
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    def matches_port(self, port: int, scheme: str) -> bool:
        return port == (DEFAULT_PORTS[scheme] if self.port is None else self.port)


@dataclass(frozen=True)
class HostAllowList:
    https_hosts: frozenset[HostPattern] = frozenset()
    http_hosts: frozenset[HostPattern] = frozenset()  # plain http allowed as well as https

    @classmethod
    def parse(cls, https_hosts: Iterable[str], http_hosts: Iterable[str] = ()) -> HostAllowList:
        return cls(
            https_hosts=_parse_entries(https_hosts, "https_hosts"),
            http_hosts=_parse_entries(http_hosts, "http_hosts"),
        )

    def __post_init__(self) -> None:
        # What an https and a plain http target may match, as tuples: this runs on every redirect.
        object.__setattr__(self, "_https_patterns", tuple(self.https_hosts | self.http_hosts))
        object.__setattr__(self, "_http_patterns", tuple(self.http_hosts))

    def refusal_reason(self, target: StrictUrl) -> str | None:
        """None if the target is allowed, else a short reason for refusing it."""
        patterns = self._https_patterns if target.scheme == "https" else self._http_patterns
        for pattern in patterns:
            if pattern.matches_host(target.host) and pattern.matches_port(target.port, target.scheme):
                return None
        host = shorten(target.host)
        if any(pattern.matches_host(target.host) for pattern in patterns):
            return f"port not allowed: {host}:{target.port}"
        if target.scheme == "http" and any(p.matches_host(target.host) for p in self.https_hosts):
            return f"plain http not allowed (https required): {host}"
        return f"host not allowed: {host}"


@dataclass(frozen=True)
class RedirectPolicy:
    default: HostAllowList
    # Channel id -> that channel's own list, which REPLACES the default for it.
    per_channel: Mapping[str, HostAllowList] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_allow_list(self.default, "default")
        # A read-only copy, so later edits to the caller's dict cannot widen the policy.
        per_channel = MappingProxyType(dict(self.per_channel))
        for channel_id, allow_list in per_channel.items():
            if not isinstance(channel_id, str):
                raise TypeError(f"per_channel keys must be channel id strings, got {channel_id!r}")
            _require_allow_list(allow_list, f"per_channel[{channel_id!r}]")
        object.__setattr__(self, "per_channel", per_channel)

    def allow_list_for(self, channel_id: str | None) -> HostAllowList:
        if channel_id is None:
            return self.default
        return self.per_channel.get(channel_id, self.default)

    def check(self, url: str, channel_id: str | None = None) -> str:
        """Return the normalised URL if it may be redirected to, else raise RedirectRefused.

        The URL returned is re-serialised from the checked parts, so it is pure ASCII:
        scheme and host lowercased, host in IDNA (punycode) form, a port equal to the
        scheme's default (e.g. an explicit ``:443`` on https, which is allowed) dropped,
        non-ASCII text and characters RFC 3986 forbids in path, query and fragment
        percent-encoded as UTF-8 (existing ``%XX`` escapes kept), and an empty ``?`` or
        ``#`` dropped. Everything else is unchanged. ``check`` of the result returns it
        as is. Redirect to the returned value, not to the input.
        """
        if not isinstance(url, str):
            raise RedirectRefused("URL must be a string")
        try:
            target = parse_strict_url(url)
        except UnsafeUrl as problem:
            raise RedirectRefused(problem.reason) from None
        reason = self.allow_list_for(channel_id).refusal_reason(target)
        if reason is not None:
            raise RedirectRefused(reason)
        return target.unparse()


def _parse_entries(entries: Iterable[str], name: str) -> frozenset[HostPattern]:
    if isinstance(entries, (str, bytes)):
        # A bare string would be iterated character by character.
        raise TypeError(f"{name} must be an iterable of host entries, not a single string")
    return frozenset(HostPattern.parse(entry) for entry in entries)


def _require_allow_list(value: object, name: str) -> None:
    if not isinstance(value, HostAllowList):
        raise TypeError(f"{name} must be a HostAllowList, got {type(value).__name__}")
