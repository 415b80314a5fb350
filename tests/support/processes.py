"""Running `python -m channel_app` as a real process, as operators do."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping

import httpx

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
