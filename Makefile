# Two commands do everything: `make run` and `make test`. Both create the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint types unit proto dist bench clean node

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python scripts/run.py $(ARGS)

# One process, so Qt, X and the nodes' timing behave as in use; `make test-fast` spreads files over three workers.
test: $(STAMP) lint types
	scripts/with-keyring.sh $(BIN)/python -m pytest

test-fast: $(STAMP) lint types
	scripts/with-keyring.sh $(BIN)/python -m pytest -n 3 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

proto: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m grpc_tools.protoc -Iproto --python_out=noizylab_desktop/_proto --grpc_python_out=noizylab_desktop/_proto --mypy_out=noizylab_desktop/_proto --mypy_grpc_out=noizylab_desktop/_proto proto/*.proto
	sed -i 's/^import noizylab_\([a-z_]*\)_pb2/from noizylab_desktop._proto import noizylab_\1_pb2/' noizylab_desktop/_proto/*.py noizylab_desktop/_proto/*.pyi

dist: $(STAMP)
	$(BIN)/pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/noizylab.spec

# Every benchmark, or one: `make bench BENCH=bench/tasks.py`.
BENCH ?= $(sort $(wildcard bench/*.py))
bench: $(STAMP)
	for b in $(BENCH); do scripts/with-keyring.sh $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache
