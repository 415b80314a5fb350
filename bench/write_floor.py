"""`python -m bench.write_floor`: the kernel's share of one SSE delivery on this machine.

Every delivery is one write() on its own socket, and on loopback that write
also runs the receiving side of TCP. This writes one 120-byte frame to each of
N loopback sockets, round after round, from plain blocking Python (no event
loop, no HTTP) while a child process reads them all, and prints the CPU time
per write: the floor under any server's per-delivery cost here.

`python -m bench` runs a small one (`host_write_us`) before each target: this
host's speed drifts by half from one run to the next, and the figure shows
which way it stood while the target ran.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import subprocess
import sys
import time

from bench.processes import raise_fd_limit, split_cores

FRAME = b"x" * 120


def read_everything(port: int, count: int, total_bytes: int, cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    selector = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    received = 0
    while received < total_bytes:
        for key, _ in selector.select(5):
            data = key.fileobj.recv(65536)
            if not data:
                return
            received += len(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.write_floor", description=__doc__)
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--json", action="store_true", help="print only {\"us_per_write\": ...}")
    args = parser.parse_args(argv)
    raise_fd_limit()
    server_cpu, reader_cpu = split_cores()
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    port = listener.getsockname()[1]
    child = os.fork()
    if child == 0:
        read_everything(port, args.sockets, args.sockets * args.rounds * len(FRAME), reader_cpu)
        os._exit(0)
    if server_cpu is not None:
        os.sched_setaffinity(0, {server_cpu})
    connections = [listener.accept()[0] for _ in range(args.sockets)]
    for connection in connections:
        # As uvloop sets it on every TCP transport: each write leaves as its own segment.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.rounds):
        for connection in connections:
            connection.send(FRAME)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    writes = args.sockets * args.rounds
    if args.json:
        print(json.dumps({"us_per_write": round(cpu / writes * 1e6, 2)}))
    else:
        print(f"{args.sockets} sockets: {writes / wall:,.0f} writes/s, {cpu / writes * 1e6:.1f} us CPU per write "
              f"(load average {os.getloadavg()[0]:.2f})")
    for connection in connections:
        connection.close()
    os.waitpid(child, 0)


def host_write_us(sockets: int = 2_000, rounds: int = 20) -> float | None:
    """A small run in a child process (it pins its own cores): CPU us per loopback write."""
    run = subprocess.run([sys.executable, "-m", "bench.write_floor", "--sockets", str(sockets), "--rounds", str(rounds),
                          "--json"], capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        return None
    return json.loads(run.stdout.strip().splitlines()[-1])["us_per_write"]


if __name__ == "__main__":
    main()
