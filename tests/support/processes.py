"""Running `python -m channel_app` as a real process, as operators do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import httpx

from tests.support.channel import CLIENT_JWT_SECRET, SIGNING_KEY_HEX
from tests.support.server import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def service_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("APP_", "CHANNEL_", "CLIENT_", "REDIS_"))}
    env.update({"PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "channel_app", *args],
        cwd=PROJECT_ROOT,
        env=dict(env or service_env()),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_service(port: int, env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "channel_app", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    wait_until_healthy(f"http://127.0.0.1:{port}", process, log_path)
    return process


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"service did not become healthy:\n{log_path.read_text()}")


def stop_service(process: subprocess.Popen[bytes], timeout: float = 10) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


PRODUCTION_ENV = {
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
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def log_records(self) -> list[dict[str, Any]]:
        """Every line parsed as JSON: a line that is not JSON fails the test."""
        return [json.loads(line) for line in self.log_text().splitlines() if line.strip()]


@contextmanager
def production_service(log_dir: Path, **settings: str) -> Iterator[ServiceProcess]:
    """A production-mode process with JSON logs on a free port; killed if a test leaves it running."""
    port = free_port()
    log_path = log_dir / "service.log"
    process = start_service(port, service_env(**PRODUCTION_ENV, **settings), log_path)
    try:
        yield ServiceProcess(f"http://127.0.0.1:{port}", process, log_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
