"""Several processes on one machine: `serve --reuse-port` (SO_REUSEPORT) plus Redis.

Each process is a full instance; the kernel hands each new TCP connection to
one of them, so a visitor's stream and Channel's calls land on different
processes and must still meet through Redis.
"""

from __future__ import annotations

import subprocess
import sys
import time

import anyio
import httpx
import pytest

from tests.support.http import call_function, open_stream
from tests.support.instances import REPO_ROOT, instance_environment, launch
from tests.support.server import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.redis, pytest.mark.timeout(120)]


async def test_processes_sharing_a_port_serve_as_one_service(redis_url, tmp_path):
    port = free_port()
    processes = [
        launch(name, tmp_path, instance_environment(name, redis_url), port, "--reuse-port") for name in ("p1", "p2")
    ]
    try:
        url = f"http://127.0.0.1:{port}"
        answered_by: set[str] = set()
        deadline = time.monotonic() + 60
        while answered_by != {"p1", "p2"}:
            assert time.monotonic() < deadline, f"only {answered_by} answered:\n{processes[0].log_tail()}"
            assert all(p.process.poll() is None for p in processes)
            try:
                async with httpx.AsyncClient(timeout=2) as fresh_connection:
                    answered_by.add((await fresh_connection.get(f"{url}/sse/status")).json()["instance"])
            except httpx.HTTPError:
                await anyio.sleep(0.1)

        async with open_stream(url, "visitor") as (stream, _):
            for n in range(10):
                result = (await call_function(url, "notify", {"clientId": "visitor", "message": str(n)}))["result"]
                assert result["delivered"] == 1
                assert (await stream.next_event()).id == result["eventId"]
    finally:
        for process in processes:
            process.stop()


def test_reuse_port_without_redis_is_refused(tmp_path):
    env = instance_environment("alone", redis_url="")
    finished = subprocess.run(
        [sys.executable, "-m", "channel_app", "serve", "--port", str(free_port()), "--reuse-port"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert finished.returncode == 2
    assert "REUSE_PORT needs REDIS_URL" in finished.stderr
    assert str(REPO_ROOT) not in finished.stderr  # one line, no traceback
