# Two commands on a fresh machine:  `make app` (install + run the app)  and  `make test` (install + run all tests).
# Everything is installed into a local virtual environment (.venv) by these targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 8501

.PHONY: app test test-fast test-under-load lint bench audit browser redis screenshots clean truth truth-fit

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12)), "QuantLens needs Python 3.11 or 3.12"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt requirements-s3.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

app: $(VENV)/.runtime-installed
	$(BIN)/streamlit run app.py --server.port $(PORT)

# Debian's Chromium for the browser tests (never a downloaded browser). Installs only when running as root;
# otherwise the e2e tests skip with a reason (outside CI) or fail (in CI).
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi
	@[ -x /usr/bin/chromium ] && /usr/bin/chromium --version || echo "note: /usr/bin/chromium missing; browser tests will skip (install Debian's chromium)"

# Debian's redis-server for the shared-queue tests (tests/core/test_jobs_redis.py start their own on a free port).
# Installs only when running as root; otherwise those tests skip with a reason.
redis:
	@if ! command -v redis-server >/dev/null && [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	fi
	@command -v redis-server >/dev/null && redis-server --version || echo "note: redis-server missing; the shared-queue tests will skip (install Debian's redis-server)"

test: $(VENV)/.dev-installed browser redis
	$(BIN)/ruff check .
	$(BIN)/pytest

test-fast: $(VENV)/.dev-installed
	$(BIN)/pytest -m "not slow and not e2e"

# The whole suite (all markers) three times in a row with two CPU-bound processes beside it (run before you stop).
test-under-load: $(VENV)/.dev-installed browser
	bash scripts/under_load.sh 3

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/bench_calculator.py
	$(BIN)/python bench/bench_compare.py
	$(BIN)/python bench/bench_first_load.py

# llama.cpp as the judge (not part of `make test`): builds llama.cpp b11434's llama-quantize, llama-completion and
# llama-fit-params once (CPU only) into ~/.cache/quantlens/llama.cpp-b11434, writes a weight-free GGUF per config in
# bench/truth/configs and records llama.cpp's answers in tests/core/data/llamacpp_truth/. MODELS=a,b limits the set.
truth: $(VENV)/.dev-installed
	@command -v cmake >/dev/null && command -v c++ >/dev/null || { [ "$$(id -u)" = "0" ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ >/dev/null; }
	nice -n 10 $(BIN)/python bench/truth_llamacpp.py $(if $(MODELS),--models $(MODELS))

# llama.cpp's own offload plans (llama-fit-params, unchanged, with pretend GPUs of the catalog cards' usable memory)
# for the cases in bench/truth/fit_params.py, into tests/core/data/llamacpp_truth/fit_params/. CASES=a,b limits them.
truth-fit: $(VENV)/.dev-installed
	@command -v cmake >/dev/null && command -v c++ >/dev/null || { [ "$$(id -u)" = "0" ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ >/dev/null; }
	nice -n 10 $(BIN)/python bench/truth/fit_params.py $(if $(CASES),--cases $(CASES))

# Retake the README's screenshots in a real browser (the e2e tests save them to test-artifacts/screenshots/).
screenshots: $(VENV)/.dev-installed browser
	$(BIN)/pytest tests/e2e -k "real_model or demo_link" -p no:cacheprovider
	cp test-artifacts/screenshots/calculator-default.png docs/screenshot-calculator.png
	cp test-artifacts/screenshots/compare-demo.png docs/screenshot-compare.png

audit: $(VENV)/.dev-installed
	bash scripts/audit.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
