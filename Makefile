# A newcomer's commands: `make demo` and `make test` each create (or refresh) .venv and install
# what they need, so either works as the first command on a machine with Python >= 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
# CrewAI needs openai<3 and pydantic<2.13, so it cannot join .venv: its tests (tests/adapters/
# test_crewai.py) drive it in an environment of its own. If that cannot be built (no package
# index), the reason is kept in .venv-crewai/.unbuilt and those tests skip, saying so.
CREWAI := .venv-crewai

.PHONY: install crewai-env demo test lint bench images docs clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "fanfold needs Python >= 3.11; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

$(CREWAI)/.installed: pyproject.toml
	@rm -f $(CREWAI)/.unbuilt
	@test -x $(CREWAI)/bin/python || $(PYTHON) -m venv $(CREWAI)
	@$(CREWAI)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[crewai]' 2>$(CREWAI)/.pip.log \
		|| { grep -v 'is ignored' $(CREWAI)/.pip.log | tail -5 >$(CREWAI)/.unbuilt; echo "$(CREWAI) not built: see $(CREWAI)/.unbuilt"; }
	@touch $@

crewai-env: $(CREWAI)/.installed

demo: $(STAMP)  # a batch run through the CLI, offline on the simulated provider; or: make demo MODEL=openai:gpt-5-mini
	$(BIN)/fanfold demo $(if $(MODEL),--model $(MODEL))

test: $(STAMP) $(CREWAI)/.installed
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples docs/_hooks conftest.py
	$(BIN)/ruff format --check src tests benchmarks examples docs/_hooks conftest.py
	$(BIN)/mypy

images: $(STAMP)  # the dashboard, timeline and documentation site screenshots in docs/images (needs /usr/bin/chromium)
	FANFOLD_WRITE_IMAGES=1 $(BIN)/python -m pytest -q tests/observe -k "ten_tasks or another_process"
	FANFOLD_WRITE_IMAGES=1 $(BIN)/python -m pytest -q tests/docs/test_site.py

docs: $(STAMP)  # the documentation site, into site/ (open site/index.html); fails on any broken link or reference
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(CREWAI) .pytest_cache .mypy_cache .ruff_cache .hypothesis site
