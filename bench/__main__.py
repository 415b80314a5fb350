"""`python -m bench`: measure channel-push against the naive baseline.

For each target (ours, then the baseline) the harness starts the server as a
separate process and drives it from this process over loopback:

1. a fresh server holds `--hold-max` clients (connect rate, RSS, KB/conn);
2. a fresh server holds `--clients` clients, then takes unicast calls at full
   speed, unicast calls at `--rate`/s, and `--broadcasts` broadcasts.

Then, with both targets, both servers hold `--clients` clients at once and
take unicast calls at full speed in alternating slices, which compares the two
in the same spells of the host (bench/paired_unicast.py).

With two or more cores the server is pinned to core 0 and this load process to
core 1, so the two never compete for one core (`--no-pin` turns that off).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import uvloop

from bench import paired_unicast, report, scenarios
from bench.calls import CallFactory, open_callers
from bench.load_collector import measured
from bench.processes import REPO_ROOT, Secrets, Target, mint_tokens, raise_fd_limit, split_cores, start_target
from bench.sse_clients import LOOPBACK_SOURCES, ArrivalLog, ClientFleet
from bench.write_floor import host_write_us

HOST = "127.0.0.1"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10_000, help="clients held during unicast and broadcast")
    parser.add_argument("--hold-max", type=int, default=15_000, help="clients for the largest hold")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each unicast scenario")
    parser.add_argument("--rate", type=int, default=2000, help="calls per second of the fixed-rate unicast")
    parser.add_argument("--broadcasts", type=int, default=20)
    parser.add_argument("--callers", type=int, default=16, help="parallel keep-alive connections for calls")
    parser.add_argument("--connect-concurrency", type=int, default=256, help="stream connects in flight")
    parser.add_argument("--loopback-sources", type=int, default=LOOPBACK_SOURCES,
                        help="127.0.0.x addresses the streams connect from (1: all from 127.0.0.1)")
    parser.add_argument("--targets", default="ours,baseline", help="comma-separated: ours, baseline")
    parser.add_argument("--pairs", type=int, default=6,
                        help="with both targets: pairs of alternating unicast slices (bench/paired_unicast.py); 0 skips them")
    parser.add_argument("--slice-seconds", type=float, default=3.0, help="length of each alternating slice")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and load to separate cores")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    return parser.parse_args(argv)


async def measure_hold_max(kind: str, args, keys: Secrets, tokens, server_cpu: int | None) -> dict:
    target = start_target(kind, args.out, keys, server_cpu)
    try:
        fleet = ClientFleet(HOST, target.port, ArrivalLog(), args.loopback_sources)
        figures = await measured(scenarios.hold(target, fleet, tokens[: args.hold_max], args.connect_concurrency))
        fleet.close_all()
        return figures
    finally:
        target.stop()


POST_STORM_COLLECTION_CLIENTS = 5_000  # smaller storms grew the heap too little to matter (channel_app/garbage.py)


async def measure_traffic(kind: str, args, keys: Secrets, tokens, server_cpu: int | None) -> dict:
    target: Target = start_target(kind, args.out, keys, server_cpu)
    arrivals = ArrivalLog()
    fleet = ClientFleet(HOST, target.port, arrivals, args.loopback_sources)
    try:
        figures = {"hold": await measured(scenarios.hold(target, fleet, tokens[: args.clients], args.connect_concurrency))}
        if kind == "ours" and args.clients >= POST_STORM_COLLECTION_CLIENTS:
            print(f"  {kind}: watching for a full collection after the connection storm", flush=True)
            collection = figures["post_storm_collection"] = await scenarios.post_storm_collection(target)
            if collection["pause_ms"] is None:
                print(f"  {kind}: none within {collection['waited_s']}s", flush=True)
            else:
                print(f"  {kind}: collected {collection['waited_s']}s after the storm, pausing {collection['pause_ms']} ms", flush=True)
        collected_before_rows = len(scenarios.collections(target)) if kind == "ours" else 0
        signing_key = bytes.fromhex(keys.signing_key_hex) if kind == "ours" else None
        callers = await open_callers(HOST, target.port, args.callers)
        bench = scenarios.Bench(target, fleet, arrivals, CallFactory(HOST, target.port, signing_key), callers,
                                itertools.count(1))
        print(f"  {kind}: unicast at full speed for {args.duration}s", flush=True)
        figures["unicast_max"] = await measured(scenarios.unicast_max(bench, args.duration))
        await asyncio.sleep(1.0)
        print(f"  {kind}: unicast at {args.rate}/s for {args.duration}s", flush=True)
        figures["unicast_fixed"] = await measured(scenarios.unicast_fixed(bench, args.rate, args.duration))
        print(f"  {kind}: {args.broadcasts} broadcasts", flush=True)
        figures["broadcast"] = await measured(scenarios.broadcast(bench, args.broadcasts))
        if kind == "ours":
            rows_collections = figures["collections_during_rows"] = scenarios.collections(target)[collected_before_rows:]
            for collection in rows_collections:
                print(f"  {kind}: a full collection inside the rows paused the server {collection['pause_ms']} ms", flush=True)
        for caller in callers:
            caller.close()
        return figures
    finally:
        fleet.close_all()
        target.stop()


def machine_facts(args, pinned: bool) -> dict:
    versions = {name: metadata.version(name) for name in ("uvicorn", "sse-starlette", "starlette", "uvloop", "httptools")}
    return {
        "cores": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "pinned": pinned,
        "fd_limit": raise_fd_limit(),
    }


async def run(args: argparse.Namespace, server_cpu: int | None, load_cpu: int | None) -> dict:
    pinned = load_cpu is not None
    if pinned:
        os.sched_setaffinity(0, {load_cpu})
    machine = machine_facts(args, pinned)
    needed = max(args.hold_max, args.clients) + args.callers + 100
    if machine["fd_limit"] < needed:
        sys.exit(f"bench: the fd limit is {machine['fd_limit']}, {needed} needed; raise it (ulimit -n) first")
    results: dict = {}
    machine["load_average_by_target"] = {}
    machine["host_write_us_by_target"] = {}
    for kind in args.targets.split(","):
        load_before = os.getloadavg()[0]
        write_us_before = host_write_us()
        keys = Secrets()
        tokens = mint_tokens(keys, max(args.hold_max, args.clients))
        print(f"{kind}: holding {args.hold_max} clients", flush=True)
        results[kind] = {"hold_max": await measure_hold_max(kind, args, keys, tokens, server_cpu)}
        print(f"{kind}: holding {args.clients} clients with traffic", flush=True)
        results[kind].update(await measure_traffic(kind, args, keys, tokens, server_cpu))
        machine["load_average_by_target"][kind] = [load_before, os.getloadavg()[0]]
        machine["host_write_us_by_target"][kind] = [write_us_before, host_write_us()]
    machine["load_average_after"] = os.getloadavg()
    return {"machine": machine, "params": vars(args) | {"out": str(args.out)}, "results": results}


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def pinned_cores(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """(server core, load core), or (None, None) with --no-pin or on one core."""
    server_core, load_core = split_cores()
    return (None, None) if args.no_pin or load_core is None else (server_core, load_core)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    server_cpu, load_cpu = pinned_cores(args)
    outcome = uvloop.run(run(args, server_cpu, load_cpu))
    if args.pairs and set(paired_unicast.KINDS) <= set(args.targets.split(",")):
        print(f"both: unicast in {args.pairs} pairs of alternating slices", flush=True)
        outcome["paired_unicast"] = paired_unicast.run(args, server_cpu, load_cpu)
    params = {"hold_max": args.hold_max, "clients": args.clients, "rate": args.rate, "broadcasts": args.broadcasts}
    results = outcome["results"]
    outcome["ratios"] = {
        f"{scenario}.{key}": report.ratio(results.get("ours", {}).get(scenario, {}).get(key),
                                          results.get("baseline", {}).get(scenario, {}).get(key))
        for _, scenario, key, _ in report.FIGURES
    }
    outcome["targets"] = report.targets(results, params, outcome.get("paired_unicast"))
    outcome["bottlenecks"] = report.bottlenecks(results, scenarios.LOAD_SATURATED)
    machine = outcome["machine"]
    print()
    loads = ", ".join(f"{kind} {start:.2f} -> {end:.2f}" for kind, (start, end) in machine["load_average_by_target"].items())
    print(f"machine: {machine['cores']} cores; 1-minute load average during the run: {loads} "
          f"(above ~2 other work shared the cores: rates and latencies suffer, 'srv us' figures much less); "
          f"server and load pinned to separate cores: {machine['pinned']}")
    speeds = ", ".join(f"{kind} {_us(start)} -> {_us(end)}" for kind, (start, end) in machine["host_write_us_by_target"].items())
    print(f"host speed, CPU us per loopback write before and after each target (bench/write_floor.py; "
          f"it drifts between runs, and every figure with it): {speeds}")
    print(report.table(results, params))
    if "paired_unicast" in outcome:
        print()
        print(paired_unicast.summary_text(outcome["paired_unicast"]))
    print()
    print("\n".join(outcome["bottlenecks"]))
    print("targets (ours):")
    print(report.targets_text(outcome["targets"]))
    path = report.write_json(args.out, outcome)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
