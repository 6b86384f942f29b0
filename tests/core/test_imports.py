"""Lazy wings: `import fanfold`, a run over plain functions and `fanfold --help` load no wing they
do not use (pydantic-ai, the HTTP clients, the CLI's libraries, the simulator), each checked in a
fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# What a run over plain functions must not load, module by module.
HEAVY = {
    "LLM": ["pydantic_ai", "fanfold._llm._agent"],
    "HTTP clients": ["httpx", "httpx2", "aiohttp", "openai", "anthropic"],
    "CLI": ["typer", "rich", "yaml", "fanfold._cli._app"],
    "simulator": ["fanfold._sim"],
    "teams": ["fanfold._teams._team"],
    "stores": ["fanfold._store._sqlite", "fanfold._store._postgres", "sqlite3", "psycopg"],
    "serialisation": ["pydantic", "pydantic_core"],
}
EVERY_HEAVY = sorted(name for names in HEAVY.values() for name in names)


def loaded_after(code: str) -> list[str]:
    """The heavy modules in ``sys.modules`` once ``code`` ran in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {EVERY_HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_import_fanfold_loads_no_wing() -> None:
    assert loaded_after("import fanfold") == []


def test_a_run_over_plain_functions_loads_no_wing() -> None:
    code = "import fanfold as ff\nassert ff.run_sync(ff.map(str.upper), ['a']).output == ['A']"
    assert loaded_after(code) == []


def test_a_journaled_run_loads_only_its_store() -> None:
    code = "import fanfold as ff\nassert ff.run_sync(ff.map(str.upper), ['a'], store='memory').output == ['A']"
    assert loaded_after(code) == ["pydantic_core"]  # the journal's JSON form of values


@pytest.mark.parametrize(
    ("name", "wing"),
    [("llm", "fanfold._llm._agent"), ("SQLiteStore", "fanfold._store._sqlite"), ("team", "fanfold._teams._team")],
)
def test_a_wing_loads_on_first_use(name: str, wing: str) -> None:
    assert wing in loaded_after(f"import fanfold\nfanfold.{name}")


def test_fanfold_testing_loads_the_simulator_on_first_use() -> None:
    assert "fanfold._sim" not in loaded_after("import fanfold.testing")
    assert "fanfold._sim" in loaded_after("import fanfold.testing\nfanfold.testing.SimulatedProvider")


def test_cli_help_loads_only_the_cli_libraries() -> None:
    code = (
        "import sys\nsys.argv = ['fanfold', '--help']\nfrom fanfold._cli._app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    loaded = loaded_after(code)
    assert "typer" in loaded  # the probe did run the CLI
    assert sorted(set(loaded) - {"typer", "rich", "fanfold._cli._app"}) == []
