# Two commands do everything: `make run` and `make test`. Both create the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint types unit proto dist bench clean node

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python scripts/run.py $(ARGS)

test: $(STAMP) lint types
	scripts/with-keyring.sh $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

proto: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m grpc_tools.protoc -Iproto --python_out=noizylab_desktop/_proto --grpc_python_out=noizylab_desktop/_proto --mypy_out=noizylab_desktop/_proto --mypy_grpc_out=noizylab_desktop/_proto proto/noizylab_grid.proto
	sed -i 's/^import noizylab_grid_pb2/from noizylab_desktop._proto import noizylab_grid_pb2/' noizylab_desktop/_proto/noizylab_grid_pb2_grpc.py

dist: $(STAMP)
	$(BIN)/pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/noizylab.spec

bench: $(STAMP)
	scripts/with-keyring.sh $(BIN)/python bench/rpc.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache
