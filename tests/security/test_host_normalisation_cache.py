"""normalise_host keeps its answers for hosts it has seen: refusals stay refusals."""

from __future__ import annotations

import pytest

from security.urlparse_strict import UnsafeUrl, normalise_host


def test_refused_host_is_refused_every_time():
    for _ in range(3):
        with pytest.raises(UnsafeUrl):
            normalise_host("exa mple.com")


def test_answers_are_identical_whether_computed_or_remembered():
    first = normalise_host("SHOP.Example.com")
    assert normalise_host("SHOP.Example.com") == first == "shop.example.com"
    assert normalise_host("bücher.example") == "xn--bcher-kva.example"
