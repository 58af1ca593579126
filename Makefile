# flowbus — `make demo` runs the main job, `make test` everything CI checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
QUICK ?=
# The extras the tests need, in both venvs.
EXTRAS := test,postgres,webhooks,metrics

.PHONY: install dist-venv lint typecheck imports fetch postgres-server test demo bench clean

$(BIN)/flowbus: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

install: $(BIN)/flowbus

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The package as users import it: a venv with a non-editable install, for the tools that
# walk the package (mypy, import-linter) and do not follow the editable install's
# package-dir renames (producer/ -> flowbus.producer...). The dependencies are installed
# once (again when pyproject.toml changes), the package again whenever a source changes.
DIST_VENV ?= .venv-dist
DIST_BIN := $(abspath $(DIST_VENV))/bin
PACKAGE_FILES := pyproject.toml $(shell find flowbus producer consumer dev schemas -type f \
	-not -path '*/__pycache__/*' -not -name '*.pyc')

$(DIST_VENV)/deps: pyproject.toml
	$(PYTHON) -m venv $(DIST_VENV)
	$(DIST_BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(DIST_BIN)/pip install --quiet '.[$(EXTRAS)]'
	touch $@

# setuptools builds in ./build and copies what it finds there: a file moved or deleted
# since an earlier build would be installed again, so the build starts from nothing.
$(DIST_VENV)/installed: $(DIST_VENV)/deps $(PACKAGE_FILES)
	rm -rf build
	$(DIST_BIN)/pip install --quiet --no-deps --force-reinstall --no-build-isolation . \
		2> $(DIST_VENV)/install.log || { cat $(DIST_VENV)/install.log; exit 1; }
	rm -rf build
	touch $@

dist-venv: $(DIST_VENV)/installed

# Run from the dist venv's directory, where `flowbus` is not importable from the sources.
typecheck: dist-venv
	cd $(DIST_VENV) && $(DIST_BIN)/mypy --config-file $(CURDIR)/pyproject.toml \
		--cache-dir $(CURDIR)/.mypy_cache -p flowbus

# The import contracts of [tool.importlinter] in pyproject.toml.
imports: dist-venv
	cd $(DIST_VENV) && $(DIST_BIN)/lint-imports --no-cache --no-logo $(CURDIR)/pyproject.toml

# Kafka and the schema registry from Maven Central (cached after the first time).
fetch: install
	$(BIN)/flowbus dev fetch

# The webhook store's PostgreSQL tests start a throwaway server from the machine's
# binaries; on Debian as root, install them when missing (otherwise those tests skip).
postgres-server:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's postgresql for the webhook-store tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends postgresql >/dev/null; \
	else \
		echo "no PostgreSQL server binaries: the PostgreSQL webhook-store tests will skip"; \
	fi

test: lint typecheck imports fetch postgres-server
	$(BIN)/pytest

demo: fetch
	$(BIN)/flowbus demo

bench: fetch
	$(BIN)/python benchmarks/run.py $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) $(DIST_VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
