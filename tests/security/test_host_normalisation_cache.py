"""normalise_host keeps its answers for hosts it has seen (refusals stay refusals), and
the cheap paths refuse what the slow ones do."""

from __future__ import annotations

import pytest

from security.urlparse_strict import UnsafeUrl, normalise_host, parse_strict_url


def test_refused_host_is_refused_every_time():
    for _ in range(3):
        with pytest.raises(UnsafeUrl):
            normalise_host("exa mple.com")


def test_answers_are_identical_whether_computed_or_remembered():
    first = normalise_host("SHOP.Example.com")
    assert normalise_host("SHOP.Example.com") == first == "shop.example.com"
    assert normalise_host("bücher.example") == "xn--bcher-kva.example"


def test_second_opinion_refuses_a_host_our_own_parser_accepts_every_time():
    # Threat: a host one parser accepts and another reads differently. A one-letter
    # top-level label passes our LDH checks; the `validators` package refuses it.
    for _ in range(2):
        with pytest.raises(UnsafeUrl) as refused:
            normalise_host("shop.example.c")
        assert refused.value.reason == "host failed validation"


def test_ascii_fast_path_still_refuses_space_control_and_backslash():
    for url in ("https://shop.example.com/a b", "https://shop.example.com/\x7f", "https://shop.example.com/\\x", "https://shop.example.com/\t"):
        with pytest.raises(UnsafeUrl):
            parse_strict_url(url)
