#!/usr/bin/env bash
# Set up a virtualenv and run channel-push on the embedded defaults:
# in-memory broker, development secrets, http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/run.sh: python3-venv is missing; install it (apt-get install python3-venv)" >&2
        exit 1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e .
exec .venv/bin/python -m channel_app serve "$@"
