"""The benchmark's target checks judge what the figures mean, not only their values."""

from __future__ import annotations

from bench.report import targets

PARAMS = {"hold_max": 15000, "clients": 10000, "rate": 2000}


def verdict(results: dict, name_start: str) -> bool | None:
    return next(v["met"] for v in targets(results, PARAMS) if v["target"].startswith(name_start))


def test_a_low_p99_at_a_rate_never_reached_is_not_a_met_target():
    fell_behind = {"ours": {"unicast_fixed": {"p99_ms": 9, "achieved_per_s": 1000}}}
    kept_up = {"ours": {"unicast_fixed": {"p99_ms": 9, "achieved_per_s": 2000}}}
    assert verdict(fell_behind, "p99") is False
    assert verdict(kept_up, "p99") is True


def test_calls_the_server_refused_count_as_lost():
    refused = {"ours": {"unicast_fixed": {"lost": 0, "call_errors": 3}, "unicast_max": {"lost": 0, "call_errors": 0}}}
    clean = {"ours": {"unicast_fixed": {"lost": 0, "call_errors": 0}, "unicast_max": {"lost": 0, "call_errors": 0}}}
    assert verdict(refused, "zero loss") is False
    assert verdict(clean, "zero loss") is True
