"""The documentation site, built and looked at in a real browser: `mkdocs build --strict`, served
on loopback, the home page, a guide and a reference page opened in headless chromium (no request
may leave loopback: the site is offline), its search answering from the built index, and a
screenshot of each (kept in docs/images/site-*.png by `make images`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.docs.pages import ROOT
from tests.observe.conftest import keep_image, needs_browser, open_browser

MKDOCS = Path(sys.executable).parent / "mkdocs"
PAGES = {  # screenshot name: (path, a text the page must show)
    "site-home.png": ("index.html", "Run AI agents in parallel, governed."),
    "site-guide.png": ("guides/verify-claims.html", "claim"),
    "site-reference.png": ("reference/api.html", "run_sync"),
}


# Material's search says "Initializing search" until its worker has the index, and drops what is
# typed before that.
READY = """() => {
    const meta = document.querySelector('.md-search-result__meta');
    return meta !== null && meta.textContent.trim() !== '' && !/initializing/i.test(meta.textContent);
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not MKDOCS.exists():
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-4000:]}"
    return out


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve a folder over HTTP on a free loopback port, in a thread; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the test's output is not a log
        pass


def test_the_site_builds_with_every_page_and_no_remote_asset(site: Path) -> None:
    for path, _ in PAGES.values():
        assert (site / path).exists()
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for remote in ("fonts.googleapis.com", "unpkg.com", "cdn.jsdelivr.net"):
            assert remote not in html, f"{page.relative_to(site)} loads from {remote}"
    assert (site / "search" / "search_index.js").exists()  # the offline plugin inlined the index


@needs_browser
def test_home_guide_and_reference_render_offline_in_a_browser(site: Path, tmp_path: Path) -> None:
    with serve(site) as base:
        left, seen = asyncio.run(_look(base, tmp_path))
    assert left == [], f"requests left loopback: {left}"
    for name, (path, text) in PAGES.items():
        title, body, shot = seen[name]
        assert "fanfold" in title
        assert text in body, f"{path} does not show {text!r}"
        assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
        keep_image(shot, name)
    assert seen["search"][1], "the search found nothing for 'budget'"


async def _look(base: str, tmp_path: Path) -> tuple[list[str], dict[str, Any]]:
    left: list[str] = []
    seen: dict[str, Any] = {}

    async def only_loopback(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname not in ("127.0.0.1", None) and not url.startswith(("data:", "blob:")):
            left.append(url)
            await route.abort()
        else:
            await route.continue_()

    async with open_browser() as browser:
        page = await browser.page(width=1280, height=900)
        await page.route("**/*", only_loopback)
        for name, (path, _) in PAGES.items():
            await page.goto(base + path, wait_until="networkidle")
            await page.wait_for_selector("article h1")
            shot = tmp_path / name
            await page.screenshot(path=str(shot))
            seen[name] = (await page.title(), await page.inner_text("article"), shot)
        # The search runs in a worker over the inlined index: a query shows results.
        await page.goto(base + "index.html", wait_until="networkidle")
        query = page.locator("input[data-md-component='search-query']")
        await query.focus()
        await page.wait_for_function(READY)  # the worker has loaded the index
        await query.press_sequentially("budget")  # keystrokes: the search listens for keys, not input
        await page.wait_for_selector(".md-search-result__item")
        seen["search"] = ("", await page.locator(".md-search-result__item").count())
    return left, seen
