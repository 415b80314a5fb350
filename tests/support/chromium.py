"""Headless Chromium for browser tests: Debian's `chromium`, driven by Playwright.

Playwright's own browser download is never used (`playwright install` is not
run anywhere); scripts/test.sh installs the distribution package instead.
"""

from __future__ import annotations

import os
import shutil
from contextlib import asynccontextmanager
from typing import AsyncIterator

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        raise RuntimeError("chromium is not installed: run scripts/test.sh (it installs the Debian package)")
    return path


@asynccontextmanager
async def headless_chromium() -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()
