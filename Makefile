# Prism — `make demo` and `make test` are all a fresh clone needs (Python 3.11 on PATH).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha1sum | cut -c1-12)
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
# TimescaleDB's source for the build into the embedded server (prism.db.timescale_build): the
# shared copy beside the checkout when there is one, else the release is downloaded (checksummed).
TSDB_VENDOR := ../shared/vendor/timescaledb-2.29.2.tar.gz
ifneq ($(wildcard $(TSDB_VENDOR)),)
export PRISM_TIMESCALEDB_SOURCE ?= $(abspath $(TSDB_VENDOR))
endif

.PHONY: install install-deep demo test test-postgres-mode test-unit test-integration test-notebooks test-e2e lab dashboard bench lint lock clean

# After the pinned environment: TimescaleDB into the embedded server's pginstall, built once per
# machine and cached in ~/.cache/prism/timescaledb/ (a copy of a second when cached; a no-op when
# installed; a missing gcc/cmake prints what to install and Prism runs in PostgreSQL mode).
# Prism's own modules are byte-compiled too (compileall skips those already current): with
# PYTHONDONTWRITEBYTECODE set, as on this machine, nothing else would ever write their .pyc.
install: $(STAMP)
	@$(PY) -m compileall -q prism runner dashboards research >/dev/null
	@$(PY) -m prism.db.timescale_build

$(STAMP):
	@test -x $(PY) || python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check uv
	@echo "installing the pinned environment into $(VENV) (requirements.lock), byte-compiled"
	@$(VENV)/bin/uv pip install --python $(PY) -q --compile-bytecode -r requirements.lock -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

# The optional deep extra (PyTorch CPU, stable-baselines3, Gymnasium) through pip, not uv: pip
# takes the CPU wheel of torch 2.13.0 this machine keeps; uv would fetch a CUDA build. On other
# machines point pip at the CPU wheel index for torch first.
install-deep: install
	@$(PY) -c "import torch, stable_baselines3, gymnasium" 2>/dev/null || { \
		echo "installing the deep extra (torch==2.13.0 CPU, stable-baselines3, gymnasium)"; \
		$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0 \
			'stable-baselines3>=2.3' 'gymnasium>=1.0'; }

demo: install
	$(VENV)/bin/prism demo

# Both database modes on every run: the whole suite on TimescaleDB (the embedded default), then
# the tests whose outcome depends on the database's mode again in plain PostgreSQL mode
# (PG_MODE_TESTS: schema and migrations, ingest and rollups, retention, gaps, data health,
# monitoring reads, the reader role, the trade cycle's writes), without the tests marked
# `timescaledb`. The rest of the integration suite runs the same SQL through the same helpers.
PG_MODE_TESTS := tests/integration/db tests/integration/data \
	tests/integration/monitoring/test_monitoring.py tests/integration/monitoring/test_reader_role.py \
	tests/integration/live/test_runner_cycle.py tests/integration/live/test_high_water_mark.py \
	tests/integration/live/test_forming_bars.py

test: install install-deep
	$(PY) -m pytest tests
	PRISM_TIMESCALEDB=off $(PY) -m pytest -m "not timescaledb" $(PG_MODE_TESTS)
	$(PY) -m pytest --nbval-lax -p no:cacheprovider notebooks

test-postgres-mode: install
	PRISM_TIMESCALEDB=off $(PY) -m pytest -m "not timescaledb" tests/integration

test-unit: install install-deep
	$(PY) -m pytest tests/unit

test-integration: install install-deep
	$(PY) -m pytest tests/integration

test-notebooks: install install-deep
	$(PY) -m pytest --nbval-lax -p no:cacheprovider notebooks

test-e2e: install
	$(PY) -m pytest tests/e2e

lab: install
	$(VENV)/bin/jupyter lab --no-browser --ip 127.0.0.1 $(ROOT_FLAG) --notebook-dir .

dashboard: install
	$(VENV)/bin/prism dashboard

bench: install
	$(PY) -m tests.benchmarks

lint: install
	$(VENV)/bin/ruff check prism runner dashboards research tests notebooks
	$(VENV)/bin/mypy prism runner dashboards research

lock:
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	-$(VENV)/bin/prism db stop
	rm -rf .prism mlruns/mlflow.db mlruns/artifacts
