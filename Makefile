# flowbus — `make demo` runs the main job, `make test` everything CI checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
QUICK ?=

.PHONY: install lint typecheck fetch test demo bench clean

$(BIN)/flowbus: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
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

test: lint typecheck fetch
	$(BIN)/pytest

demo: fetch
	$(BIN)/flowbus demo

bench: fetch
	$(BIN)/python benchmarks/run.py $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
