"""channel-push instances as real subprocesses, as production runs them.

Each instance is `python -m channel_app serve --port P` with production
settings from its environment (never the developer's `.env`: it runs in an
empty working directory), so tests can SIGKILL one mid-stream.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from tests.support.channel import CLIENT_JWT_SECRET, SIGNING_KEY_HEX
from tests.support.server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30.0


@dataclass
class Instance:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye to Redis."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def instance_environment(name: str, redis_url: str, **overrides: str) -> dict[str, str]:
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if key in os.environ}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        APP_ENV="production",
        CHANNEL_SIGNING_KEY=SIGNING_KEY_HEX,
        CLIENT_JWT_SECRET=CLIENT_JWT_SECRET,
        REDIRECT_ALLOWED_HOSTS="shop.example.com",
        REDIS_URL=redis_url,
        INSTANCE_ID=name,
        HEARTBEAT_SECONDS="0.5",
        RATE_LIMITS_ENABLED="false",
        SHUTDOWN_GRACE_SECONDS="1",
        LOG_LEVEL="info",
    )
    env.update(overrides)
    return env


def launch(name: str, workdir: Path, env: dict[str, str], port: int | None = None, *extra_args: str) -> Instance:
    port = port or free_port()
    log_path = workdir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "channel_app", "serve", "--port", str(port), *extra_args],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Instance(name, port, process, log_path)


def wait_until_ready(instance: Instance) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if instance.process.poll() is not None:
            raise RuntimeError(f"instance {instance.name} exited:\n{instance.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{instance.url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    instance.kill()
    raise RuntimeError(f"instance {instance.name} not ready in {START_TIMEOUT_SECONDS}s:\n{instance.log_tail()}")


@contextlib.contextmanager
def running_instances(redis_url: str, workdir: Path, names: tuple[str, ...] = ("a", "b"), **env: str) -> Iterator[list[Instance]]:
    """Start the instances side by side, wait until each is ready, stop them all at the end."""
    instances: list[Instance] = []
    try:
        for name in names:
            instances.append(launch(name, workdir, instance_environment(name, redis_url, **env)))
        for instance in instances:
            wait_until_ready(instance)
        yield instances
    finally:
        for instance in instances:
            instance.stop()
