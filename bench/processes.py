"""Starting the server under test as its own process, and reading its RSS and CPU.

`ours` is exactly `python -m channel_app serve` with production settings; the
naive baseline is `uvicorn --factory bench.baseline_app:create_app`. Both run
one uvicorn worker with uvicorn's defaults otherwise, from an empty working
directory (so no developer `.env` leaks in), with the fd limit raised to the
hard limit and, when asked, pinned to one core.
"""

from __future__ import annotations

import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from security.tokens import mint_client_token

REPO_ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REDIRECT_HOST = "shop.example.com"
# The site whose pages hold the EventSource: a cross-origin request, as in production,
# so the CORS middleware does its full work on every stream.
SITE_ORIGIN = "https://shop.example.com"
# Variables of the developer's shell that would change what is measured.
SCRUBBED_ENV = ("REDIS_URL", "APP_ENV", "LOG_LEVEL", "ALLOWED_CHANNEL_IDS", "PORT", "HOST", "OPS_TOKEN")


@dataclass
class Secrets:
    signing_key_hex: str = field(default_factory=lambda: secrets.token_hex(32))
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))


def mint_tokens(keys: Secrets, count: int) -> list[tuple[str, str]]:
    """(client id, token) for clients c0, c1, ...: what the load process connects with."""
    return [(f"c{index}", mint_client_token(keys.jwt_secret, f"c{index}", 3600)) for index in range(count)]


@dataclass
class RunningServer:
    """A server process under test, known by its pid (a load process started apart from it sees only that)."""

    kind: str  # "ours" or "baseline"
    port: int
    pid: int

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("VmRSS missing")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


@dataclass
class Target(RunningServer):
    """A server process this harness started, and stops."""

    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def child_setup(cpu: int | None) -> Callable[[], None]:
    """For `Popen(preexec_fn=...)`: the child lifts its fd limit and, given `cpu`, runs on that core only."""

    def prepare_child() -> None:
        raise_fd_limit()
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return prepare_child


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; returns the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def split_cores() -> tuple[int | None, int | None]:
    """(server core, load core): the first two this process may run on, or
    (None, None) on a single core, where nothing is pinned."""
    cores = sorted(os.sched_getaffinity(0))
    return (cores[0], cores[1]) if len(cores) >= 2 else (None, None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ours_environment(port: int, keys: Secrets) -> dict[str, str]:
    """Production settings: real secrets, an allow-list, broadcast on, caps above the load."""
    return {
        "APP_ENV": "production",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "CHANNEL_SIGNING_KEY": keys.signing_key_hex,
        "CLIENT_JWT_SECRET": keys.jwt_secret,
        "REDIRECT_ALLOWED_HOSTS": REDIRECT_HOST,
        "CORS_ALLOWED_ORIGINS": SITE_ORIGIN,
        "ALLOW_BROADCAST": "true",
        "MAX_CONNECTIONS": "20000",
        # Rate limits stay on (their cost is part of every call and connect), set far above the load:
        # every bench client connects from 127.0.0.1, and all calls come from one channel.
        "RATE_LIMITS_ENABLED": "true",
        "RATE_LIMIT_FUNCTION_PER_CHANNEL": "10000000/minute",
        "RATE_LIMIT_FUNCTION_PER_CLIENT": "100000/minute",
        "RATE_LIMIT_CONNECT_PER_IP": "10000000/minute",
        "RATE_LIMIT_CONNECT_PER_CLIENT": "1000/minute",
        # Access logs off in both targets: one log line per call is I/O, not push work.
        "LOG_LEVEL": "warning",
        "INSTANCE_ID": "bench",
    }


def start_target(kind: str, results_dir: Path, keys: Secrets, cpu: int | None) -> Target:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in SCRUBBED_ENV}
    env["PYTHONPATH"] = str(REPO_ROOT)
    if kind == "ours":
        env.update(ours_environment(port, keys))
        command = [sys.executable, "-m", "channel_app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [
            sys.executable, "-m", "uvicorn", "--factory", "bench.baseline_app:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
        ]
    workdir = results_dir / f"cwd-{kind}"
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = results_dir / f"{kind}-server.log"

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=child_setup(cpu)
        )
    target = Target(kind, port, process.pid, process, log_path)
    wait_until_serving(target)
    return target


def wait_until_serving(target: Target, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.process.poll() is not None:
            raise RuntimeError(f"{target.kind} server exited; see {target.log_path}")
        try:
            with socket.create_connection(("127.0.0.1", target.port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 "):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    target.stop()
    raise RuntimeError(f"{target.kind} server did not start within {timeout}s; see {target.log_path}")
