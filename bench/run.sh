#!/usr/bin/env bash
# Benchmark channel-push against the naive baseline on this machine.
#   bash bench/run.sh                 # full size: 15,000 and 10,000 clients
#   bash bench/run.sh --clients 500   # any `python -m bench --help` option
# Uses ./.venv (created like scripts/run.sh) unless PYTHON names another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
        .venv/bin/pip install --quiet --upgrade pip
        .venv/bin/pip install --quiet -e .
    fi
    PYTHON=.venv/bin/python
fi
# Every held client is one socket in each process: lift the soft fd limit to the hard one.
ulimit -n "$(ulimit -Hn)"
exec "$PYTHON" -m bench "$@"
