"""Shared fixtures: anyio backend, a real redis-server subprocess, broker backends.

``redis_server`` (session): a ``RedisServer`` with ``.url``, ``.port``,
``stop()`` and ``start()`` (restarts on the same port, so clients that were
created before can reconnect) and ``paused()`` (stalled while in it). ``redis_url`` (function): makes sure the
server is up, flushes it, and yields its URL. ``backend`` (function,
parametrized): the settings for the in-memory broker, then for a real Redis;
a test that takes it runs once against each.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

_START_TIMEOUT_SECONDS = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _send_inline(port: int, command: bytes) -> bytes:
    """Send one inline Redis command and return the first reply line."""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.sendall(command + b"\r\n")
        return sock.makefile("rb").readline().strip()


class RedisServer:
    """A throwaway redis-server without persistence, bound to localhost."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.unix_url = f"unix://{workdir / 'redis.sock'}?db=0"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server on its port (no-op if it is already up)."""
        if self.running:
            return
        log = open(self.workdir / "redis.log", "ab")
        with log:
            self._process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--unixsocket", str(self.workdir / "redis.sock"), "--unixsocketperm", "700",
                 "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_ready()

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Redis stalled (SIGSTOP): connections stay open, nothing is answered."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._process.send_signal(signal.SIGCONT)

    def ping(self) -> bool:
        try:
            return _send_inline(self.port, b"PING") == b"+PONG"
        except OSError:
            return False

    def flushall(self) -> None:
        reply = _send_inline(self.port, b"FLUSHALL")
        if reply != b"+OK":
            raise RuntimeError(f"FLUSHALL failed: {reply!r}")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.ping():
                return
            if not self.running:
                break
            time.sleep(0.05)
        self.stop()
        log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}:\n{log}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary not found on PATH (apt-get install redis-server)")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.start()  # an earlier test may have stopped it and failed before restarting
    redis_server.flushall()
    return redis_server.url


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    return {"redis_url": request.getfixturevalue("redis_url"), "redis_timeout_seconds": 5}
