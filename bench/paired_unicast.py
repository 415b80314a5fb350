"""`python -m bench.paired_unicast`: the unicast ratio with both servers measured in the same spells.

`python -m bench` runs ours, then the baseline, minutes apart; this host's
speed drifts by half in that time, so the unicast ratio of one run moves with
whichever target got the faster spell. Here both servers hold their clients at
once and take unicast calls at full speed in short alternating slices (ours,
baseline, baseline, ours, ...), so each pair of slices sees nearly the same
host. The server not being measured is stopped (SIGSTOP) for the other's
slice: its heartbeats or pings would otherwise land on the shared core.

One load process cannot hold both fleets (20,032 descriptors against this
machine's hard limit of 20,000), so each target gets its own load process
(`--worker`, driven over stdin/stdout), both pinned to the load core and only
one busy at a time. Each slice is `bench.scenarios.unicast_max`, as in the
main harness: the same calls, settings and figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import uvloop

from bench import scenarios
from bench.calls import CallFactory, open_callers
from bench.load_collector import measured
from bench.processes import (
    REPO_ROOT, RunningServer, Secrets, Target, child_setup, mint_tokens, raise_fd_limit, split_cores, start_target,
)
from bench.sse_clients import LOOPBACK_SOURCES, ArrivalLog, ClientFleet
from bench.write_floor import host_write_us

HOST = "127.0.0.1"
KINDS = ("ours", "baseline")
WARM_UP_SECONDS = 1.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.paired_unicast", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10_000, help="clients each server holds")
    parser.add_argument("--pairs", type=int, default=6, help="slices per target")
    parser.add_argument("--slice-seconds", type=float, default=3.0)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--connect-concurrency", type=int, default=256)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# The load process of one target: holds its clients, then runs a slice per line on stdin.

async def serve_slices(args: argparse.Namespace) -> None:
    keys = Secrets(os.environ["BENCH_SIGNING_KEY_HEX"], os.environ["BENCH_JWT_SECRET"])
    server = RunningServer(args.worker, args.port, args.server_pid)
    arrivals = ArrivalLog()
    fleet = ClientFleet(HOST, args.port, arrivals, LOOPBACK_SOURCES)
    hold = await measured(scenarios.hold(server, fleet, mint_tokens(keys, args.clients), args.connect_concurrency))
    signing_key = bytes.fromhex(keys.signing_key_hex) if args.worker == "ours" else None
    calls, sequence = CallFactory(HOST, args.port, signing_key), itertools.count(1)
    _reply({"connected": hold["connected"], "failures": hold["failures"]})
    loop = asyncio.get_running_loop()
    while command := (await loop.run_in_executor(None, sys.stdin.readline)).split():
        # Fresh callers for each slice: uvicorn closes a keep-alive connection idle for 5 s,
        # and one target may wait longer than that while the other holds its clients.
        callers = await open_callers(HOST, args.port, args.callers)
        bench = scenarios.Bench(server, fleet, arrivals, calls, callers, sequence)
        _reply(await measured(scenarios.unicast_max(bench, float(command[1]))))
        for caller in callers:
            caller.close()
    fleet.close_all()


def _reply(figures: dict) -> None:
    print(json.dumps(figures), flush=True)


# The driver: both servers, both load processes, alternating slices.

class LoadWorker:
    def __init__(self, target: Target, keys: Secrets, args: argparse.Namespace, cpu: int | None) -> None:
        self.target = target
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT),
               "BENCH_SIGNING_KEY_HEX": keys.signing_key_hex, "BENCH_JWT_SECRET": keys.jwt_secret}
        command = [sys.executable, "-m", "bench.paired_unicast", "--worker", target.kind, "--port", str(target.port),
                   "--server-pid", str(target.pid), "--clients", str(args.clients), "--callers", str(args.callers),
                   "--connect-concurrency", str(args.connect_concurrency)]
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, preexec_fn=child_setup(cpu))

    def answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.target.kind} load process ended (exit {self.process.wait()})")
        return json.loads(line)

    def run_slice(self, seconds: float) -> dict:
        self.process.stdin.write(f"slice {seconds}\n")
        self.process.stdin.flush()
        return self.answer()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def slice_order(pairs: int) -> list[str]:
    """ours, baseline, baseline, ours, ...: neither target always goes first after a switch."""
    return [kind for index in range(pairs) for kind in (KINDS if index % 2 == 0 else KINDS[::-1])]


def summary(slices: list[dict], pairs: int) -> dict:
    by_kind = {kind: [row for row in slices if row["kind"] == kind] for kind in KINDS}
    pair_ratios = [
        round(ours["calls_per_s"] / baseline["calls_per_s"], 3)
        for ours, baseline in zip(by_kind["ours"], by_kind["baseline"]) if baseline["calls_per_s"]
    ]
    return {
        "pairs": pairs,
        "pair_ratios": pair_ratios,
        "median_ratio": round(statistics.median(pair_ratios), 3) if pair_ratios else None,
        **{f"{kind}_calls_per_s_median": statistics.median(row["calls_per_s"] for row in rows) for kind, rows in by_kind.items()},
        **{f"{kind}_server_us_per_call_median": statistics.median(row["server_us_per_call"] for row in rows)
           for kind, rows in by_kind.items()},
        "lost": sum(row["lost"] for row in slices),
        "call_errors": sum(row["call_errors"] for row in slices),
        "load_collections": sum(row["load_collections"] for row in slices),
    }


def _pause_other(targets: dict[str, Target], kind: str, run_slice: Callable[[], dict]) -> dict:
    """`run_slice()` with every server but `kind`'s stopped."""
    others = [target for other, target in targets.items() if other != kind]
    for target in others:
        target.process.send_signal(signal.SIGSTOP)
    try:
        return run_slice()
    finally:
        for target in others:
            target.process.send_signal(signal.SIGCONT)


def run(args: argparse.Namespace, server_core: int | None, load_core: int | None) -> dict:
    """Both targets, alternating slices; the servers run on `server_core`, the load processes on `load_core`."""
    targets: dict[str, Target] = {}
    workers: dict[str, LoadWorker] = {}
    try:
        for kind in KINDS:
            keys = Secrets()
            targets[kind] = start_target(kind, args.out, keys, server_core)
            workers[kind] = LoadWorker(targets[kind], keys, args, load_core)
            held = workers[kind].answer()
            print(f"{kind}: {held['connected']} of {args.clients} clients held, {held['failures']} failures", flush=True)
            if held["failures"]:
                raise RuntimeError(f"{kind}: {held['failures']} clients failed to connect")
        for kind in KINDS:  # one unmeasured slice each: the first calls after a hold are not what is compared
            _pause_other(targets, kind, lambda: workers[kind].run_slice(WARM_UP_SECONDS))
        write_us_before = host_write_us()
        slices = []
        for number, kind in enumerate(slice_order(args.pairs), start=1):
            figures = _pause_other(targets, kind, lambda: workers[kind].run_slice(args.slice_seconds))
            slices.append({"kind": kind, **figures})
            print(f"  slice {number:>2} {kind:<9} {figures['calls_per_s']:>9,.0f} calls/s "
                  f"{figures['server_us_per_call']:>7,.1f} srv us/call  lost {figures['lost']}", flush=True)
        host_write = [write_us_before, host_write_us()]
    finally:
        for worker in workers.values():
            worker.stop()
        for target in targets.values():
            target.process.send_signal(signal.SIGCONT)
            target.stop()
    return {"params": vars(args) | {"out": str(args.out)}, "host_write_us": host_write, "slices": slices,
            "summary": summary(slices, args.pairs)}


def summary_text(outcome: dict) -> str:
    params, result = outcome["params"], outcome["summary"]
    lines = [
        f"unicast at full speed in alternating slices, both servers holding {params['clients']:,} clients "
        f"({params['pairs']} pairs of {params['slice_seconds']}s; bench/paired_unicast.py):",
        f"  host speed, CPU us per loopback write before and after the slices: "
        f"{outcome['host_write_us'][0]:.1f} -> {outcome['host_write_us'][1]:.1f}",
        *(f"  {kind:<9} median {result[f'{kind}_calls_per_s_median']:,.0f} calls/s, "
          f"{result[f'{kind}_server_us_per_call_median']:,.1f} srv us/call" for kind in KINDS),
        f"  ours/baseline per pair: {', '.join(f'{r:.2f}' for r in result['pair_ratios'])}; "
        f"median {result['median_ratio']:.2f}x",
        f"  lost {result['lost']}, call errors {result['call_errors']}, load collections {result['load_collections']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    if args.worker:
        uvloop.run(serve_slices(args))
        return 0
    server_core, load_core = split_cores()
    if load_core is not None:
        os.sched_setaffinity(0, {load_core})
    outcome = run(args, server_core, load_core)
    print(summary_text(outcome))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"paired-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(outcome, indent=2))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
