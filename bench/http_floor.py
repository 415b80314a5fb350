"""`python -m bench.http_floor`: what a call and a held stream cost uvicorn alone here.

An ASGI app that does no work, served by uvicorn with the settings both bench
targets use (one worker, uvloop, httptools, no access log) and pinned to its
own core like them, takes the same load as the bench rows:

- calls: the unicast rows' `PUT /functions` requests over 16 keep-alive
  connections, closed loop; the app reads the body and answers fixed bytes
  (no routing, parsing, checking or push);
- holds: the hold rows' `GET /sse/connect` requests, 256 in flight; the app
  answers the stream's headers and one `retry:` frame, then waits for the
  client to leave (no token, no registry, no replay).

The server CPU per call and per connect printed are floors under any uvicorn
app's cost here: a target rate is out of reach for a service whose own work
per operation does not fit in the CPU the floor leaves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

from bench.calls import CallFactory, open_callers
from bench.processes import REPO_ROOT, Target, child_setup, free_port, raise_fd_limit, split_cores, wait_until_serving
from bench.sse_clients import ArrivalLog, ClientFleet

ANSWER = b'{"result":{"type":"string","attributes":{"message":"ok"}}}'
ANSWER_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]
STREAM_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


async def answer_everything(scope, receive, send) -> None:
    """The app under test: a GET is held as an event stream until the client leaves;
    anything else has its body drained and gets the same answer."""
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
        await send({"type": "http.response.body", "body": b"retry: 3000\n\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": ANSWER_HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


def start_floor_server(cpu: int | None) -> Target:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "bench.http_floor:answer_everything", "--host", "127.0.0.1", "--port",
        str(port), "--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools",
    ]
    log_path = REPO_ROOT / "bench" / "results" / "floor-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=child_setup(cpu))
    target = Target("floor", port, process.pid, process, log_path)
    wait_until_serving(target)
    return target


async def call_for(target: Target, callers: int, seconds: float) -> tuple[int, float, float]:
    """(calls answered, wall seconds, server CPU seconds) of a closed loop over `callers` connections."""
    connections = await open_callers("127.0.0.1", target.port, callers)
    factory = CallFactory("127.0.0.1", target.port, signing_key=None)
    request = factory.redirect("visitor-0", 1)
    answered = 0
    deadline = time.perf_counter() + seconds

    async def keep_calling(connection) -> None:
        nonlocal answered
        while time.perf_counter() < deadline:
            status, _ = await connection.call(request)
            answered += status == 200

    await asyncio.gather(*(keep_calling(connection) for connection in connections[:1]))  # warm-up
    deadline = time.perf_counter() + seconds
    answered = 0
    wall, cpu = time.perf_counter(), target.cpu_seconds()
    await asyncio.gather(*(keep_calling(connection) for connection in connections))
    wall, cpu = time.perf_counter() - wall, target.cpu_seconds() - cpu
    for connection in connections:
        connection.close()
    return answered, wall, cpu


async def hold(target: Target, clients: int, concurrency: int) -> tuple[int, float, float, float]:
    """(streams opened, wall seconds, server and load CPU seconds) for `clients` held streams."""
    fleet = ClientFleet("127.0.0.1", target.port, ArrivalLog())
    tokens = [(f"c{index}", "unchecked") for index in range(clients)]
    cpu, own = target.cpu_seconds(), _own_cpu_seconds()
    wall = await fleet.connect(tokens, concurrency)
    cpu, own = target.cpu_seconds() - cpu, _own_cpu_seconds() - own
    opened = len(fleet.open_clients)
    fleet.close_all()
    return opened, wall, cpu, own


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_floor", description=__doc__)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--connect-concurrency", type=int, default=256)
    args = parser.parse_args()
    raise_fd_limit()
    server_cpu, load_cpu = split_cores()
    target = start_floor_server(server_cpu)
    try:
        if load_cpu is not None:
            os.sched_setaffinity(0, {load_cpu})
        answered, call_wall, call_cpu = asyncio.run(call_for(target, args.callers, args.duration))
        opened, hold_wall, hold_cpu, load_cpu = asyncio.run(hold(target, args.clients, args.connect_concurrency))
    finally:
        target.stop()
    print(f"uvicorn answering a fixed body: {answered / call_wall:,.0f} calls/s, "
          f"{call_cpu / max(answered, 1) * 1e6:.0f} us server CPU per call, server at {call_cpu / call_wall:.0%} of a core")
    print(f"uvicorn holding bare streams: {opened:,} of {args.clients:,} opened, {opened / hold_wall:,.0f} connects/s, "
          f"{hold_cpu / max(opened, 1) * 1e6:.0f} us server CPU per connect, server at {hold_cpu / hold_wall:.0%} of a core, "
          f"this load process at {load_cpu / hold_wall:.0%}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
