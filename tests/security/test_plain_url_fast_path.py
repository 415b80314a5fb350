"""Threat: a fast path that reads a URL differently from the checked one.

`parse_strict_url` takes URLs already in the form we hand out (lowercase
http(s), plain host, RFC 3986 characters, well-formed escapes) apart with one
regular expression instead of `urlsplit` and `quote`. It must give exactly
the parts the general path gives for every URL it accepts, or a crafted URL
could mean one host to the allow-list and another to the browser.
"""

from __future__ import annotations

import random
import string

import pytest

from security.urlparse_strict import UnsafeUrl, _checked_parts, _plain_parts, parse_strict_url
from tests.security.test_redirects import ATTACKS, LEGITIMATE

CORPUS = [case.values[0] for case in ATTACKS + LEGITIMATE if isinstance(case.values[0], str)]


def assert_same_parts(url: str) -> None:
    plain = _plain_parts(url)
    if plain is None:
        return
    try:
        checked = _checked_parts(url)
    except UnsafeUrl as refusal:
        pytest.fail(f"fast path accepted {url!r}, the general path refuses it: {refusal.reason}")
    assert plain == checked, url


@pytest.mark.parametrize("url", CORPUS)
def test_fast_path_agrees_with_the_general_path_on_the_attack_and_legitimate_corpus(url):
    assert_same_parts(url)


def random_url(rng: random.Random) -> str:
    scheme = rng.choice(["https://", "http://", "https://", "http://", "HTTPS://", "Https://", "hTTp://", "https:/", "https:", "ftp://", ""])
    tricky = "@[]:%\\/?#. \t\n-_~!$&'()*+,;=\x00\x7fé한"
    netloc = "".join(rng.choice(string.ascii_lowercase + string.digits + ".:-" + tricky[:6]) for _ in range(rng.randint(0, 14)))
    # Half the time mostly characters the fast path takes, so that it decides often.
    near_plain = string.ascii_letters + string.digits + "%%%%/?#&=@:;" + string.hexdigits * 2 + "\\ é"
    rest_alphabet = rng.choice([string.printable + tricky + "%%%%" + string.hexdigits * 2, near_plain])
    rest = "".join(rng.choice(rest_alphabet) for _ in range(rng.randint(0, 30)))
    return scheme + netloc + rng.choice(["", "/", "?", "#", "/%4"]) + rest


def test_fast_path_agrees_with_the_general_path_on_random_urls():
    rng = random.Random(20261130)
    urls = [random_url(rng) for _ in range(30_000)]
    accepted = [url for url in urls if _plain_parts(url) is not None]
    assert len(accepted) > 1_000  # the generator reaches the fast path often enough to mean something
    for url in urls:
        assert_same_parts(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.com/products/12?seq=12",
        "http://localhost:8000/",
        "https://shop.example.com/a%2Fb?q=%EA%B0%80&x=1#top",
        "https://shop.example.com",
    ],
)
def test_the_usual_redirect_takes_the_fast_path(url):
    assert _plain_parts(url) is not None
    assert parse_strict_url(url).unparse() == url


@pytest.mark.parametrize(
    "url",
    [
        "HTTPS://shop.example.com/",  # scheme to lowercase
        "https://Shop.example.com/",  # host to lowercase
        "https://shop.example.com/가",  # text to percent-encode
        "https://shop.example.com/a b",
        "https://shop.example.com/%zz",
        "https://user@shop.example.com/",
        "https://[2001:db8::1]/",
        "https://shop.example.com/a\\b",
    ],
)
def test_anything_needing_a_repair_or_a_refusal_takes_the_general_path(url):
    assert _plain_parts(url) is None
