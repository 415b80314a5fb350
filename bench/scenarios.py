"""The scenarios: hold, unicast at full speed, unicast at a fixed rate, broadcast.

Each returns a flat dict of figures, including how busy the load process and
the server were (fraction of one core), so a row whose load generator was
saturated says so.

(Over 200 lines: the four scenarios share the CPU meter and the latency and
loss figures, and read best side by side.)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from collections import deque
from dataclasses import dataclass

from bench.calls import CallConnection, CallFactory, accepted
from bench.processes import Target
from bench.sse_clients import ArrivalLog, ClientFleet

LOAD_SATURATED = 0.9  # fraction of one core above which the load process is the bottleneck


class CpuMeter:
    def __init__(self, target: Target) -> None:
        self._target = target
        self._wall = time.perf_counter()
        self._load = _own_cpu_seconds()
        self._server = target.cpu_seconds()

    def read(self) -> dict[str, float]:
        wall = time.perf_counter() - self._wall
        return {
            "wall_s": round(wall, 3),
            "load_cpu": round((_own_cpu_seconds() - self._load) / wall, 3),
            "server_cpu": round((self._target.cpu_seconds() - self._server) / wall, 3),
        }


def server_us_per(figures: dict[str, float], operations: int) -> float:
    """Server CPU time per operation: steadier than rates when other work shares the machine."""
    return round(figures["server_cpu"] * figures["wall_s"] / max(operations, 1) * 1e6, 1)


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def latency_figures(latencies_s: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(latencies_s, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies_s, 0.99) * 1000, 2),
        "max_ms": round(max(latencies_s, default=float("nan")) * 1000, 2),
    }


@dataclass
class Bench:
    """What every scenario of one target works with."""

    target: Target
    fleet: ClientFleet
    arrivals: ArrivalLog
    calls: CallFactory
    callers: list[CallConnection]
    sequence: itertools.count

    def client_ids(self) -> list[str]:
        return [client.client_id for client in self.fleet.open_clients]


async def hold(target: Target, fleet: ClientFleet, tokens: list[tuple[str, str]], concurrency: int) -> dict:
    rss_before = target.rss_kb()
    meter = CpuMeter(target)
    elapsed = await fleet.connect(tokens, concurrency)
    figures = meter.read()
    await asyncio.sleep(1.0)  # let the server finish the last handshakes before reading RSS
    rss_after = target.rss_kb()
    connected = len(fleet.open_clients)
    return {
        "clients": len(tokens),
        "connected": connected,
        "failures": fleet.failures,
        "failure_reasons": dict(fleet.failure_reasons),
        "connect_per_s": round(connected / elapsed, 1),
        "rss_before_mb": round(rss_before / 1024, 1),
        "rss_mb": round(rss_after / 1024, 1),
        "kb_per_connection": round((rss_after - rss_before) / max(connected, 1), 2),
        "server_us_per_connect": server_us_per(figures, connected),
        **{f"connect_{key}": value for key, value in latency_figures(fleet.connect_seconds).items()},
        **figures,
    }


def collections(target: Target) -> list[dict]:
    """Every full collection our server's garbage policy logged so far (channel_app/garbage.py)."""
    found = []
    for line in target.log_path.read_text(errors="replace").splitlines():
        if "garbage collector thawed" in line:
            try:
                record = json.loads(line)
            except ValueError:  # LOG_FORMAT=text
                record = {}
            found.append({"pause_ms": record.get("pause_ms"), "unreachable_freed": record.get("unreachable_freed")})
    return found


async def post_storm_collection(target: Target, window: float = 25.0) -> dict:
    """A full collection would pause every stream. The garbage policy leaves open streams
    out of the heap it watches, so a storm of them should cause none; if one comes, it
    comes within about two of the policy's ten-second checks after the storm. Watch for
    it that long, so it is reported here rather than landing inside the next row."""
    started = time.perf_counter()
    while time.perf_counter() - started < window:
        if found := collections(target):
            return {"waited_s": round(time.perf_counter() - started, 1), **found[0]}
        await asyncio.sleep(0.5)
    return {"waited_s": round(window, 1), "pause_ms": None, "unreachable_freed": None}


async def _settle(arrivals: ArrivalLog, sent: dict[int, float], timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and any(arrivals.count(seq) == 0 for seq in sent):
        await asyncio.sleep(0.05)


def _delivery_figures(arrivals: ArrivalLog, sent: dict[int, float]) -> dict:
    latencies = [arrivals.times[seq][0] - at for seq, at in sent.items() if arrivals.count(seq)]
    return {
        "lost": sum(1 for seq in sent if arrivals.count(seq) == 0),
        "duplicated": sum(1 for seq in sent if arrivals.count(seq) > 1),
        **latency_figures(latencies),
    }


async def unicast_max(bench: Bench, duration: float) -> dict:
    """Closed loop: every caller connection sends its next call as soon as the last one is answered."""
    client_ids = bench.client_ids()
    sent: dict[int, float] = {}
    errors = 0
    deadline = time.perf_counter() + duration

    async def keep_calling(connection: CallConnection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            seq = next(bench.sequence)
            status, body = await connection.call(bench.calls.redirect(random.choice(client_ids), seq))
            if accepted(status, body):
                sent[seq] = connection.sent_at
            else:
                errors += 1

    meter = CpuMeter(bench.target)
    await asyncio.gather(*(keep_calling(connection) for connection in bench.callers))
    figures = meter.read()
    await _settle(bench.arrivals, sent, timeout=5.0)
    return {
        "calls": len(sent),
        "call_errors": errors,
        "calls_per_s": round(len(sent) / figures["wall_s"], 1),
        "server_us_per_call": server_us_per(figures, len(sent) + errors),
        **_delivery_figures(bench.arrivals, sent),
        **figures,
    }


async def unicast_fixed(bench: Bench, rate: float, duration: float) -> dict:
    """Open loop: call i is due at start + i/rate whether or not earlier calls were answered.

    Latency runs from when a call was due, not from when it could be sent: a server
    slower than the rate makes calls wait for a free caller connection, and timing
    them from the late send would hide that wait (coordinated omission)."""
    client_ids = bench.client_ids()
    planned = [(seq, bench.calls.redirect(random.choice(client_ids), seq)) for seq in
               itertools.islice(bench.sequence, int(rate * duration))]
    idle: deque[CallConnection] = deque(bench.callers)
    freed = asyncio.Event()
    sent: dict[int, float] = {}
    answer_times: list[float] = []
    errors = 0

    def answered(connection: CallConnection, seq: int, due: float, sent_at: float, future: asyncio.Future) -> None:
        nonlocal errors
        idle.append(connection)
        freed.set()
        if not future.exception() and accepted(*future.result()):
            sent[seq] = due
            answer_times.append(time.perf_counter() - sent_at)
        else:
            errors += 1

    meter = CpuMeter(bench.target)
    start = time.perf_counter()
    max_lag = 0.0
    for index, (seq, request) in enumerate(planned):
        due = start + index / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        while not idle:
            freed.clear()
            await freed.wait()
        max_lag = max(max_lag, time.perf_counter() - due)
        connection = idle.popleft()
        future = connection.call(request)
        future.add_done_callback(lambda f, c=connection, s=seq, d=due, t=connection.sent_at: answered(c, s, d, t, f))
    while len(idle) < len(bench.callers):
        freed.clear()
        await freed.wait()
    figures = meter.read()
    await _settle(bench.arrivals, sent, timeout=5.0)
    return {
        "rate": rate,
        "calls": len(sent),
        "call_errors": errors,
        "achieved_per_s": round(len(planned) / figures["wall_s"], 1),
        "schedule_max_lag_ms": round(max_lag * 1000, 2),
        "answer_p99_ms": round(percentile(answer_times, 0.99) * 1000, 2),
        **_delivery_figures(bench.arrivals, sent),
        **figures,
    }


async def broadcast(bench: Bench, count: int, timeout: float = 30.0) -> dict:
    """One broadcast at a time; each waits until every client has it (or the timeout)."""
    expected = len(bench.fleet.open_clients)
    connection = bench.callers[0]
    latencies: list[float] = []
    completion_ms: list[float] = []
    busy_seconds = 0.0
    errors = 0
    meter = CpuMeter(bench.target)
    for _ in range(count):
        seq = next(bench.sequence)
        status, body = await connection.call(bench.calls.broadcast(seq))
        sent_at = connection.sent_at
        if not accepted(status, body):
            errors += 1
            continue
        await bench.arrivals.wait_for(seq, expected, timeout)
        arrived = bench.arrivals.times.get(seq, [])
        latencies += [at - sent_at for at in arrived]
        busy_seconds += max(arrived, default=sent_at) - sent_at
        completion_ms.append(round((max(arrived, default=sent_at) - sent_at) * 1000, 1))
    figures = meter.read()
    return {
        "broadcasts": count,
        "clients": expected,
        "call_errors": errors,
        "deliveries": len(latencies),
        "missing": count * expected - len(latencies),
        "deliveries_per_s": round(len(latencies) / busy_seconds, 1) if busy_seconds else 0.0,
        "server_us_per_delivery": server_us_per(figures, len(latencies)),
        **latency_figures(latencies),
        "completion_ms": completion_ms,  # per broadcast: from sending it to its arrival at the last client
        **figures,
    }
