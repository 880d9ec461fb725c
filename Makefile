# Entry points for people and CI alike.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
RUNTIME ?= local

.PHONY: demo test lint bench install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import dockyard" && touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import dockyard, pytest, sklearn" && touch $@ $(VENV)/.installed

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

## make demo: install, start the embedded control plane, train and serve the digits example
## make demo RUNTIME=podman: the same in Podman containers (DOCKYARD_HOME ~/.dockyard-podman)
demo: $(VENV)/.installed
ifeq ($(RUNTIME),local)
	@DOCKYARD="$(BIN)/dockyard" scripts/demo.sh
else
	@CONTAINERS_CONF=$(CURDIR)/deploy/podman/containers.conf deploy/podman/base-image.sh
	@DOCKYARD="$(BIN)/dockyard" DOCKYARD_RUNTIME=$(RUNTIME) \
	  DOCKYARD_HOME=$${DOCKYARD_HOME:-$$HOME/.dockyard-$(RUNTIME)} \
	  DOCKYARD_CONTAINERS_CONF=$(CURDIR)/deploy/podman/containers.conf \
	  DOCKYARD_BASE_IMAGE=$${DOCKYARD_BASE_IMAGE:-localhost/dockyard/base:bookworm} \
	  scripts/demo.sh
endif

## make test: the whole test suite (unit, integration with SQLite and PostgreSQL, end to end)
test: $(VENV)/.dev-installed
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench examples scripts
	$(BIN)/ruff format --check src tests bench examples scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/control_plane.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
