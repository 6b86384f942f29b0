"""A real browser for the observe tests: Debian's chromium, driven by Playwright (no browser is
downloaded; ``.ci/run`` installs chromium with apt). Tests that need it skip, saying why, where
either is missing."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("FANFOLD_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


class Browser:
    """One headless chromium for a test; ``page()`` opens a tab."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser

    async def page(self, width: int = 1280, height: int = 800) -> Any:
        return await self.browser.new_page(viewport={"width": width, "height": height})


needs_browser = pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))


@contextlib.asynccontextmanager
async def open_browser() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield Browser(browser)
        finally:
            await browser.close()


def keep_image(shot: Path, name: str) -> None:
    """Copy a screenshot to docs/images (for the README) when FANFOLD_WRITE_IMAGES=1
    (`make images`)."""
    if os.environ.get("FANFOLD_WRITE_IMAGES") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, IMAGES / name)
