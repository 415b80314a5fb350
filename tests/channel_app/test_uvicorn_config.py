"""The uvicorn settings the service runs with (checked in a child process: building
a uvicorn.Config configures logging process-wide)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from channel_app.app import create_app
from channel_app.run import uvicorn_config
from tests.support.apps import make_settings
settings = make_settings(log_level=sys.argv[1])
config = uvicorn_config(create_app(settings), settings)
print(config.access_log, config.loop, config.http.__name__, config.server_header)
"""


@pytest.mark.parametrize(("level", "access_log"), [("debug", "True"), ("info", "True"), ("warning", "False"), ("error", "False")])
def test_access_log_is_off_below_info_so_uvicorn_does_not_prepare_lines_nobody_prints(level, access_log):
    probe = subprocess.run([sys.executable, "-c", PROBE, level], capture_output=True, text=True, timeout=60, check=True)
    assert probe.stdout.split() == [access_log, "uvloop", "ServiceHttpProtocol", "False"]
