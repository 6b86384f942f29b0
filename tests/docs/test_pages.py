"""Every ```python and ```bash block of the README and of the documentation site runs, and its
assertions hold: the blocks of a page in order, in one namespace, in a fresh temporary folder
(the convention is in tests/docs/pages.py)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.docs.pages import ROOT, Page, pages, parse

VENV_BIN = str(Path(sys.executable).parent)
REDIS_URL = os.environ.get("FANFOLD_TEST_REDIS", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("FANFOLD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PAGES = [parse(path) for path in pages()]
RUNNABLE = [page for page in PAGES if any(block.runs for block in page.blocks)]


def _listening(url: str, default_port: int) -> str | None:
    """None if something accepts connections at the URL's host and port, else why not."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc})"
    return None


def _missing(need: str) -> str | None:
    """Why a page's need cannot be met here, or None."""
    if need == "redis":
        why = _listening(REDIS_URL, 6379)
        return why and f"needs Redis: {why}; start one: redis-server, or docker run -p 6379:6379 redis"
    if need == "postgres":
        why = _listening(POSTGRES_URL, 5432)
        return why and f"needs Postgres at {POSTGRES_URL}: {why}"
    if need == "ray":
        ray = Path(VENV_BIN) / "ray"
        return None if ray.exists() else "needs Ray: pip install 'fanfold[ray]'"
    return f"unknown need {need!r}: a page may need redis, postgres or ray"


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """One local Ray cluster for every page that needs one (a head node of 1 CPU)."""
    from fanfold.testing import LocalRayCluster

    with LocalRayCluster(num_cpus=1) as cluster:
        yield cluster.address


def test_the_readme_and_the_site_have_examples_that_run() -> None:
    runnable = {page.name: sum(block.runs for block in page.blocks) for page in PAGES}
    assert runnable["README.md"] >= 6
    assert runnable["docs/getting-started.md"] >= 3
    assert sum(runnable.values()) >= 40


@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", RUNNABLE, ids=[page.name for page in RUNNABLE])
def test_page_examples_run(page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           request: pytest.FixtureRequest) -> None:  # fmt: skip
    blocks = [block for block in page.blocks if block.runs]
    for need in page.needs:
        why = _missing(need)
        if why is not None:
            pytest.skip(f"{page.name}: {why}")
        if need == "ray":
            monkeypatch.setenv("RAY_ADDRESS", request.getfixturevalue("ray_address"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # a module a block writes can be imported by the next
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    module = types.ModuleType(f"docs_page_{abs(hash(page.name))}")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # so pydantic and pickle find its classes
    for block in blocks:
        if block.language == "python":
            # Blank lines first, so a traceback's line numbers are the page's own.
            code = compile("\n" * (block.line - 1) + block.code, str(page.path), "exec")
            exec(code, module.__dict__)
        else:
            _run_bash(page, block.code, block.line, tmp_path)


def _run_bash(page: Page, code: str, line: int, cwd: Path) -> None:
    done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + code], cwd=cwd, env=dict(os.environ),
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(
            f"{page.name}:{line}: the bash block exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}",
            pytrace=False,
        )


def test_every_site_page_is_parsed() -> None:
    names = {page.name for page in PAGES}
    assert "README.md" in names
    assert {"docs/index.md", "docs/getting-started.md", "docs/reference/errors.md"} <= names
    assert not any("_hooks" in name for name in names)
    assert ROOT.joinpath("mkdocs.yml").exists()


def test_the_readmes_links_into_the_repository_resolve() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [target for target in targets if "://" not in target]
    assert local, "the README links into the site"
    missing = [target for target in local if not (ROOT / target).exists()]
    assert missing == []
