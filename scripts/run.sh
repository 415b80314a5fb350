#!/usr/bin/env bash
# Set up a virtualenv and run channel-push on the embedded defaults:
# in-memory broker, development secrets, http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e .
exec .venv/bin/python -m channel_app serve "$@"
