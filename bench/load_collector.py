"""The load process's garbage collector stays off while a row is measured.

The load process holds every client's connection, parser and arrival log: at
10,000 clients a full collection of its heap took 28-60 ms (measured with
`gc.callbacks` in a quick run). During the fixed-rate row such a pause stops
calls from being sent on schedule, and since latency runs from when a call was
due, the load process's own pause was counted as the server's latency: it set
that row's p99 (46 ms, with the server's answers at 6.7 ms p99). So each row
starts from a collected heap and runs with the collector off; it is turned
back on between rows. A row makes garbage in the tens of megabytes at most.
"""

from __future__ import annotations

import gc
from typing import Awaitable


def _collections_so_far() -> int:
    return sum(generation["collections"] for generation in gc.get_stats())


class LoadCollectorPaused:
    """`with LoadCollectorPaused() as paused:` one row; `paused.collections` counts
    the collections that still ran inside it (0 unless something called gc.collect)."""

    def __init__(self) -> None:
        self.collections = 0
        self._was_enabled = False
        self._before = 0

    def __enter__(self) -> LoadCollectorPaused:
        gc.collect()
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._before = _collections_so_far()
        return self

    def __exit__(self, *exc_info) -> None:
        self.collections = _collections_so_far() - self._before
        if self._was_enabled:
            gc.enable()


async def measured(row: Awaitable[dict]) -> dict:
    """One row's figures, measured with the collector off, and how many collections still ran."""
    with LoadCollectorPaused() as paused:
        figures = await row
    return {**figures, "load_collections": paused.collections}
