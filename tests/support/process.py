"""channel-push as a real process: `python -m channel_app serve` on a free port.

For what only a real process shows: signal handling, exit status, and the
exact log lines it writes (captured to a file, one per line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx

from tests.support.channel import CLIENT_JWT_SECRET, SIGNING_KEY_HEX
from tests.support.server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_ENV = {
    "APP_ENV": "production",
    "CHANNEL_SIGNING_KEY": SIGNING_KEY_HEX,
    "CLIENT_JWT_SECRET": CLIENT_JWT_SECRET,
    "REDIRECT_ALLOWED_HOSTS": "shop.example.com",
    "INSTANCE_ID": "process-under-test",
    "LOG_FORMAT": "json",
}


@dataclass
class ServiceProcess:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def log_records(self) -> list[dict[str, Any]]:
        """Every line parsed as JSON: a line that is not JSON fails the test."""
        return [json.loads(line) for line in self.log_text().splitlines() if line.strip()]


@contextmanager
def service_process(workdir: Path, **settings: str) -> Iterator[ServiceProcess]:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        **BASE_ENV,
        **settings,
    }
    log_path = workdir / "service.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "channel_app", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,  # no stray .env is read
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = ServiceProcess(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_until_ready(service)
        yield service
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _wait_until_ready(service: ServiceProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"service exited with {service.process.returncode}:\n{service.log_text()}")
        try:
            if httpx.get(service.url + "/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"service not ready after {timeout}s:\n{service.log_text()}")
