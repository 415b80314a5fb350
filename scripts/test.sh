#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine (as root)
# and run the whole suite. Safe to run again: installed parts are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=()
command -v redis-server >/dev/null || apt_packages+=(redis-server)
command -v python3 >/dev/null || apt_packages+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_packages+=(python3-venv)
# Browser tests drive Debian's chromium through Playwright (never `playwright install`);
# a Korean font so toasts in Korean render as glyphs, not empty boxes.
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)
dpkg-query -W -f='${Status}' fonts-nanum 2>/dev/null | grep -q 'ok installed' || apt_packages+=(fonts-nanum)
if [ ${#apt_packages[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/test.sh: missing ${apt_packages[*]}; run as root or install them" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi
# redis-server is started by the test fixtures on free ports; the packaged
# system service is not needed. Deselect browser tests with `-m "not browser"`.

python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
exec .venv/bin/python -m pytest "$@"
