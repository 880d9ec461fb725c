# Entry points for people and CI alike.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
RUNTIME ?= local
# the oldest Python that requires-python admits, for `make test-oldest` (Debian 12's 3.11.2)
OLDEST_PYTHON ?= /usr/bin/python3.11
OLDEST_VENV ?= .venv-oldest
# the interpreter of .venv (or the one that will create it)
MAIN_PYTHON = $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))

.PHONY: demo test fresh-machine test-oldest test-real-node lint bench install dev clean check-python cluster cluster-down

## the one line to read when the interpreter is too old, before anything is installed
check-python:
	@$(MAIN_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "Dockyard needs Python 3.11 or newer, $(MAIN_PYTHON) is" \
	    "$$($(MAIN_PYTHON) -V 2>/dev/null || echo missing): install python3.11 and run" \
	    "make $(or $(MAKECMDGOALS),demo) PYTHON=python3.11$(if $(wildcard $(BIN)/python), after rm -rf $(VENV))"; \
	  exit 1; }

$(BIN)/python: | check-python
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
## make demo RUNTIME=kubernetes: the same on the test cluster's real node (make cluster-down after)
demo: check-python $(VENV)/.installed
ifeq ($(RUNTIME),local)
	@DOCKYARD="$(BIN)/dockyard" scripts/demo.sh
else ifeq ($(RUNTIME),kubernetes)
	@CONTAINERS_CONF=$(CURDIR)/deploy/podman/containers.conf deploy/podman/base-image.sh
	@# the real node alone: a cluster up with kwok nodes (they would take the pods) goes first
	@$(PYTHON) deploy/testbed/cluster.py status 2>/dev/null | grep -Eq "kubelet +running" || \
	  $(PYTHON) deploy/testbed/cluster.py down >/dev/null 2>&1 || true
	@$(PYTHON) deploy/testbed/cluster.py up --real-node --nodes 0
	@$(BIN)/pip install --quiet --disable-pip-version-check -e '.[kubernetes]' 2>&1 | grep -v "^WARNING: Location" || true
	@DOCKYARD="$(BIN)/dockyard" DOCKYARD_RUNTIME=kubernetes \
	  DOCKYARD_HOME=$${DOCKYARD_HOME:-$$HOME/.dockyard-kubernetes} \
	  DOCKYARD_KUBECONFIG=$(CURDIR)/.cluster/kubeconfig \
	  DOCKYARD_KUBE_STORAGE_CLASSES=fast=dockyard-fast \
	  DOCKYARD_KUBE_IMAGE_LOADER="$(PYTHON) $(CURDIR)/deploy/testbed/cluster.py load-image" \
	  DOCKYARD_CONTAINERS_CONF=$(CURDIR)/deploy/podman/containers.conf \
	  DOCKYARD_BASE_IMAGE=$${DOCKYARD_BASE_IMAGE:-localhost/dockyard/base:bookworm} \
	  scripts/demo.sh
else
	@CONTAINERS_CONF=$(CURDIR)/deploy/podman/containers.conf deploy/podman/base-image.sh
	@DOCKYARD="$(BIN)/dockyard" DOCKYARD_RUNTIME=$(RUNTIME) \
	  DOCKYARD_HOME=$${DOCKYARD_HOME:-$$HOME/.dockyard-$(RUNTIME)} \
	  DOCKYARD_CONTAINERS_CONF=$(CURDIR)/deploy/podman/containers.conf \
	  DOCKYARD_BASE_IMAGE=$${DOCKYARD_BASE_IMAGE:-localhost/dockyard/base:bookworm} \
	  scripts/demo.sh
endif

## make test: the whole test suite (unit, integration with SQLite and PostgreSQL, end to end);
## as root with apt-get it first installs the Debian libraries the test dependencies load
## (scripts/test-packages.sh); lanes whose part is missing are skipped with one line each
test: $(VENV)/.dev-installed
	@scripts/test-packages.sh $(BIN)/python
	$(BIN)/pytest $(PYTEST_ARGS)

## make test-oldest: the unit tests and the digits example (tests/e2e/test_cli.py) on
## OLDEST_PYTHON in $(OLDEST_VENV), when it is older than .venv's Python (about a minute)
test-oldest:
	@old=$$($(OLDEST_PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null) \
	  || { echo "make test-oldest: OLDEST_PYTHON=$(OLDEST_PYTHON) is not a Python"; exit 1; }; \
	main=$$($(MAIN_PYTHON) -c 'import platform; print(platform.python_version())'); \
	case $$old in 3.11.*) ;; *) echo "make test-oldest: OLDEST_PYTHON is $$old, not 3.11.x"; exit 1;; esac; \
	if [ "$$(printf '%s\n' "$$old" "$$main" | sort -V | head -n1)" != "$$old" ] || [ "$$old" = "$$main" ]; then \
	  echo "make test-oldest: nothing older than $(MAIN_PYTHON) ($$main) to test"; exit 0; fi; \
	echo "==> Python $$old ($(OLDEST_PYTHON)) in $(OLDEST_VENV)"; \
	$(MAKE) --no-print-directory $(OLDEST_VENV)/.installed && \
	$(OLDEST_VENV)/bin/pytest -q -m "not containers" tests/unit tests/e2e/test_cli.py $(PYTEST_ARGS)

# scikit-learn for the digits example and PostgreSQL for the store: the rest is in .venv's lane
$(OLDEST_VENV)/.installed: pyproject.toml
	$(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[postgres,sklearn]' \
	  'pytest>=8,<10' 'pytest-timeout>=2.3,<3' 'hypothesis>=6.100,<7' \
	  'kubernetes-validate>=1.34,<2' 2>&1 | grep -v "^WARNING: Location" || true
	$(OLDEST_VENV)/bin/python -c "import dockyard, pytest, sklearn, hypothesis" && touch $@

## make test-real-node: the digits example on the test cluster's real node (after
## make cluster CLUSTER_ARGS="--real-node --nodes 0"; .ci/run does both)
test-real-node: $(VENV)/.dev-installed
	DOCKYARD_REQUIRE_REAL_NODE=1 $(BIN)/pytest tests/kubernetes/test_real_node.py $(PYTEST_ARGS)

## make fresh-machine: the README's two commands on a clean clone of HEAD in a bare Debian 12
## root file system (a Podman container; scripts/fresh-machine.sh), as CI runs them
fresh-machine:
	scripts/fresh-machine.sh

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench examples scripts
	$(BIN)/ruff format --check src tests bench examples scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

## make cluster: a Kubernetes test cluster on 127.0.0.1 built from Go modules (etcd, apiserver,
## controller-manager, scheduler, 3 kwok nodes); KUBECONFIG=.cluster/kubeconfig (docs/kubernetes-testbed.md)
## make cluster CLUSTER_ARGS="--real-node --nodes 0": one real node (containerd + kubelet) instead
CLUSTER_ARGS ?=
cluster:
	$(PYTHON) deploy/testbed/cluster.py up $(CLUSTER_ARGS)

## make cluster-down: stop every process of the test cluster (certificates stay, etcd data goes)
cluster-down:
	$(PYTHON) deploy/testbed/cluster.py down

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/control_plane.py

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .pytest_cache .mypy_cache .ruff_cache
