"""The uvicorn settings the service runs with (checked in a child process: building
a uvicorn.Config configures logging process-wide)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from channel_app.app import create_app
from channel_app.run import uvicorn_config
from tests.support.apps import make_settings
settings = make_settings(log_level=sys.argv[1])
config = uvicorn_config(create_app(settings), settings)
print(config.access_log, config.loop, config.http.__name__, config.server_header)
"""


FORWARDED_PROBE = """
from channel_app.app import create_app
from channel_app.run import uvicorn_config
from config.settings import Settings
from tests.support.apps import make_settings
settings = make_settings()  # from the environment and .env, as the service reads it
config = uvicorn_config(create_app(settings), Settings())
print(config.forwarded_allow_ips)
"""


def test_forwarded_allow_ips_in_the_env_file_reaches_uvicorn(tmp_path):
    """uvicorn reads FORWARDED_ALLOW_IPS from the process environment only: in .env,
    like every other setting, it was ignored, and every visitor behind the load
    balancer shared its address's connect rate limit."""
    (tmp_path / ".env").write_text("FORWARDED_ALLOW_IPS=10.9.9.9\n")
    env = {name: value for name, value in os.environ.items() if name != "FORWARDED_ALLOW_IPS"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    probe = subprocess.run([sys.executable, "-c", FORWARDED_PROBE], capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path, env=env)
    assert probe.stdout.strip() in ("10.9.9.9", "['10.9.9.9']")


@pytest.mark.parametrize(("level", "access_log"), [("debug", "True"), ("info", "True"), ("warning", "False"), ("error", "False")])
def test_access_log_is_off_below_info_so_uvicorn_does_not_prepare_lines_nobody_prints(level, access_log):
    probe = subprocess.run([sys.executable, "-c", PROBE, level], capture_output=True, text=True, timeout=60, check=True)
    assert probe.stdout.split() == [access_log, "uvloop", "ServiceHttpProtocol", "False"]
