# Two commands do everything: `make run` and `make test`. On first use both install the system packages they need
# (scripts/system-packages.sh: apt-get, through sudo when not root) and create the virtual environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Remembers that a package set was checked; the script itself asks dpkg first, so a set re-checked costs nothing.
SYSTEM := build/system-packages

# What `make test` runs: everything, or `make test TESTS="tests/unit/test_x.py ..."`, or `make test TESTS=smoke`.
TESTS ?=
# The smoke selection the fresh-machine check runs (scripts/fresh-machine.sh): the sampler's first walk on a young
# machine, the keychain, real node pairs and the launcher, `make run`'s private keyring, the tray and its monospace
# diff under Xvfb and trayer.
SMOKE_TESTS := tests/unit/test_metrics_demand.py tests/integration/test_keychain.py \
	tests/integration/test_pairing.py tests/integration/test_launcher.py tests/integration/test_make_run.py \
	tests/ui/test_sync_merge_tray.py tests/ui/test_tray.py
PYTEST_SELECTION := $(if $(filter smoke,$(TESTS)),$(SMOKE_TESTS) $(filter-out smoke,$(TESTS)),$(TESTS))

.PHONY: run test test-fast lint types unit proto dist deb deb-check bench clean node busy fresh-machine windows windows-smoke

$(SYSTEM)-%: scripts/system-packages.sh
	scripts/timed.sh "system packages ($*)" scripts/system-packages.sh $*
	@mkdir -p $(dir $@) && touch $@

# Order-only: installing the test packages later must not rebuild the venv.
$(STAMP): pyproject.toml constraints.txt | $(SYSTEM)-run
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	scripts/timed.sh "venv packages" $(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(SYSTEM)-run $(STAMP)
	$(BIN)/python scripts/run.py $(ARGS)

# Test files spread over JOBS workers (each one process with its own Qt, X display and nodes; a file stays in one,
# so module fixtures are built once): 2 workers took 6.6 min on 2 shared cores where one took 19. JOBS=0: serial.
# Files go out slowest first (tests/durations.json, read by tests/conftest.py; xdist's own reordering, most tests
# first, is off): the frozen app's build used to start last and end the run alone.
# A worker that crashes ends the run (--max-worker-restart=0): xdist's replacement worker waited forever for work.
JOBS ?= 2
# The whole suite's limit: a hung run fails in its own words instead of running into CI's 90 minutes.
TEST_LIMIT ?= 45m
# Bytecode is written even where the caller's environment says PYTHONDONTWRITEBYTECODE (CI's did): every test spawns
# `noizylab` commands and nodes, hundreds of processes a minute, and each one compiled the package's modules afresh
# (a fifth of a command's CPU time, a quarter of a node start's).
PYTEST_RUN := env -u PYTHONDONTWRITEBYTECODE scripts/with-keyring.sh $(BIN)/python -m pytest \
	$(if $(filter 0,$(JOBS)),,-n $(JOBS) --dist loadfile --no-loadscope-reorder --max-worker-restart=0) $(PYTEST_SELECTION)
# mypy runs beside the suite, not before it: a cold run is a minute of one core, and the suite leaves cores idle
# while it waits on nodes. So does the Windows tier's smoke selection (`make windows-smoke`, below) when the whole
# suite runs: most of its time is building its Wine chroot (once; then cached outside the checkout) and waiting on
# Wine. Their verdicts come after the suite's, and any failing fails `make test`. WINDOWS=0 leaves the Windows tier
# out; a selection (TESTS=...) never runs it.
WINDOWS ?= 1
WINDOWS_BESIDE := $(if $(TESTS),,$(filter 1,$(WINDOWS)))
test: $(SYSTEM)-test $(STAMP) lint
	@mkdir -p build/artefacts
	@scripts/timed.sh types $(BIN)/mypy >build/artefacts/mypy.log 2>&1 & types=$$!; windows=; \
	if [ -n "$(WINDOWS_BESIDE)" ]; then \
		echo "make windows-smoke runs beside the suite (its log: build/artefacts/windows-smoke.log, shown when it ends)"; \
		$(MAKE) --no-print-directory windows-smoke >build/artefacts/windows-smoke.log 2>&1 & windows=$$!; \
	fi; \
	echo "timeout -k 60 $(TEST_LIMIT) $(PYTEST_RUN)"; \
	scripts/timed.sh suite timeout -k 60 $(TEST_LIMIT) $(PYTEST_RUN); code=$$?; \
	[ $$code != 124 ] || echo "make test: the suite ran past $(TEST_LIMIT) and was stopped" >&2; \
	wait $$types; checked=$$?; echo "$(BIN)/mypy"; cat build/artefacts/mypy.log; smoked=0; \
	if [ -n "$$windows" ]; then \
		wait $$windows; smoked=$$?; echo "---- make windows-smoke (exit $$smoked) ----"; \
		cat build/artefacts/windows-smoke.log; echo "---- end of make windows-smoke ----"; \
	fi; \
	[ $$code = 0 ] || exit $$code; [ $$checked = 0 ] || exit $$checked; exit $$smoked

test-fast: $(SYSTEM)-test $(STAMP) lint types
	scripts/with-keyring.sh $(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder $(PYTEST_SELECTION)

# `make test` with two CPU-bound processes beside it, timed: the suite must stay green on a busy machine.
busy:
	scripts/busy.sh $(MAKE) test TESTS="$(TESTS)"

# `make test TESTS=smoke` (and `make run ARGS=--version`) from scratch in a minimal Debian chroot (needs root).
fresh-machine:
	scripts/fresh-machine.sh

# The Windows tier: tests/windows/ on python.org's Windows CPython 3.12.8 under Wine 10, in a Debian 13 chroot kept
# in a build cache outside the checkout (/var/cache/noizylab/windows, or WINDOWS_TIER_DIR; about 3 GB, 6-7 min from
# scratch, then reused while its key matches). Needs root and Debian's archive, else it skips in one line.
# `make windows WINDOWS_TESTS=tests/windows/test_node.py` runs one file. `make windows-smoke` runs the tests marked
# windows_smoke: a node's start and stop with the msvcrt lock and the Credential Manager, a Linux peer over mTLS, a
# task's job-object cancel, a sync of Windows-unsafe names (7 tests: 227 s with the build cached, 92 CPU-seconds in
# all, at a load of 7 on 2 cores). `make test` runs the smoke selection beside the whole suite (so .ci/run does).
windows: $(SYSTEM)-test $(STAMP)
	WINDOWS_TIER_PYTHON=$(abspath $(BIN))/python scripts/windows-tier.sh

windows-smoke: $(SYSTEM)-test $(STAMP)
	WINDOWS_TIER_PYTHON=$(abspath $(BIN))/python WINDOWS_TESTS="-m windows_smoke tests/windows" \
		scripts/timed.sh "windows smoke" scripts/windows-tier.sh

lint: $(STAMP)
	scripts/timed.sh "ruff check" $(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

proto: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m grpc_tools.protoc -Iproto --python_out=noizylab_desktop/_proto --grpc_python_out=noizylab_desktop/_proto --mypy_out=noizylab_desktop/_proto --mypy_grpc_out=noizylab_desktop/_proto proto/*.proto
	sed -i 's/^import noizylab_\([a-z_]*\)_pb2/from noizylab_desktop._proto import noizylab_\1_pb2/' noizylab_desktop/_proto/*.py noizylab_desktop/_proto/*.pyi

dist: $(SYSTEM)-test $(STAMP)
	$(BIN)/pyinstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/noizylab.spec

# The Linux installer from the onedir build: dist/noizylab_<version>_<arch>.deb, its size printed (packaging/deb.py).
deb: dist
	$(BIN)/python packaging/deb.py

# That .deb installed with apt-get in a fresh chroot, run by an ordinary user, removed (scripts/deb-check.sh: needs
# root and the archive; keeps its base chroot in ~/.cache/noizylab-tests/deb-check). tests/integration/test_deb.py
# does the same.
deb-check: deb
	scripts/deb-check.sh "$$(ls -t dist/noizylab_*.deb | head -1)" build/deb-check/report

# Every benchmark, or one: `make bench BENCH=bench/tasks.py`.
BENCH ?= $(sort $(wildcard bench/*.py))
bench: $(SYSTEM)-test $(STAMP)
	for b in $(BENCH); do scripts/with-keyring.sh $(BIN)/python $$b || exit 1; done

# --one-file-system: a Windows tier stopped by force may have left /dev or /proc mounted in a WINDOWS_TIER_DIR under
# build/ (the default cache, /var/cache/noizylab/windows, is left alone).
clean:
	rm -rf --one-file-system $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache
