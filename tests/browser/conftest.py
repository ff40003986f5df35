"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, a fresh profile per test, and a folder
for screenshots (test-artifacts/, not in git).

Skips only when Chromium is absent and DELIVERY_GATEWAY_REQUIRE_BROWSER is unset (CI sets it). Never lets the
browser reach anything but 127.0.0.1: every other request is aborted and recorded, and a test fails on any.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("DELIVERY_GATEWAY_CHROMIUM", "/usr/bin/chromium")
REQUIRE_ENV = "DELIVERY_GATEWAY_REQUIRE_BROWSER"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
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
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def require_chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"Chromium not found at {CHROMIUM} and {REQUIRE_ENV} is set (apt-get install chromium)")
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")


@dataclass
class Browser:
    """One Chromium with a fresh profile. `external` lists every non-loopback request (all of them aborted);
    `problems` every console error and uncaught page error."""

    context: object
    external: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    async def new_page(self):
        page = await self.context.new_page()
        page.on("console", lambda message: message.type == "error" and self.problems.append(message.text))
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        return page


@pytest.fixture
async def browser(tmp_path) -> AsyncIterator[Browser]:
    executable = require_chromium()
    from playwright.async_api import async_playwright

    profile = tmp_path / "chromium-profile"
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
        )
        wrapped = Browser(context)

        async def local_only(route) -> None:
            host = urlsplit(route.request.url).hostname or ""
            if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                await route.continue_()
            else:
                wrapped.external.append(route.request.url)
                await route.abort()

        await context.route("**/*", local_only)
        try:
            yield wrapped
        finally:
            await context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
