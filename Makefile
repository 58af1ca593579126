# flowbus — `make demo` runs the main job, `make test` everything CI checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
QUICK ?=

.PHONY: install lint typecheck fetch postgres-server test demo bench clean

$(BIN)/flowbus: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres,webhooks,metrics]'
	touch $@

install: $(BIN)/flowbus

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Type checkers do not follow the package-dir renames: check the three roots.
typecheck: install
	$(BIN)/mypy flowbus producer consumer

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

test: lint typecheck fetch postgres-server
	$(BIN)/pytest

demo: fetch
	$(BIN)/flowbus demo

bench: fetch
	$(BIN)/python benchmarks/run.py $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
