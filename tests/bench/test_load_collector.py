"""The load process does not collect garbage while a row is measured (bench/load_collector.py)."""

from __future__ import annotations

import gc

from bench.load_collector import LoadCollectorPaused
from bench.report import bottlenecks


def _make_cycles(count: int) -> None:
    for _ in range(count):
        node: dict = {}
        node["self"] = node


def test_no_automatic_collection_runs_inside_a_row_however_much_garbage_it_makes():
    assert gc.isenabled()
    with LoadCollectorPaused() as paused:
        _make_cycles(50 * gc.get_threshold()[0])  # fifty times what starts a young collection
    assert paused.collections == 0
    assert gc.isenabled()


def test_a_row_starts_from_a_collected_heap():
    _make_cycles(1_000)
    with LoadCollectorPaused():
        # Not the 1,000 cycles made before the row (another thread may add a few).
        assert gc.collect() < 1_000


def test_a_collection_forced_inside_a_row_is_counted():
    with LoadCollectorPaused() as paused:
        gc.collect()
    assert paused.collections >= 1


def test_the_collector_stays_off_after_a_row_if_it_was_off_before():
    gc.disable()
    try:
        with LoadCollectorPaused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_report_says_whether_the_load_process_collected_inside_a_row():
    clean = {"ours": {"unicast_fixed": {"load_cpu": 0.3, "load_collections": 0}}}
    assert "no garbage collection inside any row" in "\n".join(bottlenecks(clean, 0.9))
    collected = {"ours": {"unicast_fixed": {"load_cpu": 0.3, "load_collections": 2}}}
    assert "collected garbage inside ours/unicast_fixed" in "\n".join(bottlenecks(collected, 0.9))
