import random
import time
from datetime import datetime, timezone

import pytest

from sse.timestamps import utc_iso, utc_timestamp


def datetime_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


EDGES = [
    0.0,
    0.0005,
    0.9999994,  # rounds down to .999999 us: still .999
    0.9999996,  # rounds up to the next second
    1.0009999999,
    951_782_400.123,  # 2000-02-29
    1_767_225_599.9999996,  # the last instant of 2025 rounds into 2026
    1_767_225_600.0,
    4_102_444_800.5,
]


@pytest.mark.parametrize("seconds", EDGES)
def test_matches_datetime_at_the_edges(seconds):
    assert utc_iso(seconds) == datetime_iso(seconds)


def test_matches_datetime_on_random_instants():
    rng = random.Random(20261130)
    instants = [rng.uniform(0, 4e9) for _ in range(20_000)]
    instants += [rng.randint(0, 4_000_000_000) + rng.randint(0, 999_999) / 1e6 for _ in range(20_000)]
    assert [utc_iso(s) for s in instants] == [datetime_iso(s) for s in instants]


def test_now_is_javascripts_iso_form_of_the_current_time():
    before = datetime_iso(time.time())
    stamp = utc_timestamp()
    after = datetime_iso(time.time())
    assert before <= stamp <= after
    assert len(stamp) == 24 and stamp.endswith("Z")
