# Two commands for a fresh machine: `make run` starts the app, `make test` runs every test.
# Each creates .venv and installs what it needs on first use (Ray included, which the tests start locally).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	# onnxruntime-web ships in the package; its pinned npm tarball, fetched into the cache, lets the tests compare
	# the two (a warning, and that test skipped, where npm is missing)
	$(PY) -m teachable.webexport --fetch
	touch $@

# Debian's Chromium drives the browser tests (Playwright is told to use it and never downloads a browser); strace
# watches the app and the CLI for outside requests (tests/test_offline.py).
browser:
	@{ command -v chromium && command -v strace; } >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver strace; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver strace; fi; }

run: $(STAMP)
	$(PY) app.py

test: $(STAMP) browser
	$(PY) -m pytest -q -rs

bench: $(STAMP) browser
	$(PY) benchmarks/bench_core.py
	$(PY) benchmarks/bench_views.py
	$(PY) benchmarks/bench_scale.py
	$(PY) benchmarks/bench_stream.py
	$(PY) benchmarks/bench_load.py
	$(PY) benchmarks/bench_stream_load.py

clean:
	rm -rf $(VENV) .pytest_cache
