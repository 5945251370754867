# The two commands of the README:  `make demo`  and  `make test`.
# Both create .venv with Python >= 3.12 (found on PATH or through pyenv) and install
# the pinned stack from constraints.txt before doing anything else.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip -q still lists every local index folder this image lacks; hide those lines only.
QUIET := 2>&1 | { grep -v '^WARNING: Location' || true; }
VENV  ?= .venv
BIN   := $(VENV)/bin
OUT   ?= demo-output
PYTHON312 := $(shell for p in python3.12 python3.13; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v $$p; exit 0; }; done; \
	command -v pyenv >/dev/null 2>&1 && for v in $$(pyenv versions --bare 2>/dev/null | grep -E "^3\.1[2-9]" | sort -V); do echo "$$(pyenv root)/versions/$$v/bin/python"; exit 0; done)

.PHONY: demo test bench env clean lint chromium

$(BIN)/.installed: pyproject.toml constraints.txt
	@test -n "$(PYTHON312)" || { echo "error: bayes-scaling needs Python >= 3.12 (jax 0.12 and arviz 1.x do); install it (e.g. pyenv install 3.12) and retry" >&2; exit 2; }
	@test -x $(BIN)/python || $(PYTHON312) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip $(QUIET)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,notebooks,dask]" $(QUIET)
	@touch $@

env: $(BIN)/.installed

demo: $(BIN)/.installed
	@mkdir -p $(OUT)
	$(BIN)/bayes-scaling simulate --out $(OUT)/runs.csv --seed 0
	$(BIN)/bayes-scaling fit $(OUT)/runs.csv --out $(OUT)/fit.nc --seed 0 --progress
	$(BIN)/bayes-scaling summary $(OUT)/fit.nc
	$(BIN)/bayes-scaling allocate $(OUT)/fit.nc --budget 1e21 --budget 1e22 --budget 1e23 --budget 5.76e23 --budget 1e24 --budget 1e25
	$(BIN)/bayes-scaling report $(OUT)/fit.nc --out $(OUT)/report.html

# The report's browser test needs Chromium: installed once with apt-get (as root), then a no-op.
chromium:
	@bash scripts/ensure-chromium.sh

# The type check first (about a minute; configured in pyproject.toml [tool.mypy]), then the suite.
test: $(BIN)/.installed chromium
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q --durations=15

# Performance figures of the README (issue 9); `make bench BENCH_FLAGS=--quick` checks the
# scripts end to end in a few minutes. Figures are also appended to $(BENCH_OUT) as JSON lines.
BENCH_FLAGS ?=
BENCH_OUT   ?= bench-results.jsonl
bench: $(BIN)/.installed
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[bench]"
	$(BIN)/python benchmarks/bench_fit.py $(BENCH_FLAGS) --out $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_sampler.py $(BENCH_FLAGS) --out $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_compile_cache.py $(BENCH_FLAGS) --out $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_cli.py $(BENCH_FLAGS) --out $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_growth.py $(BENCH_FLAGS) --out $(BENCH_OUT)
	$(BIN)/python benchmarks/bench_calibration_tables.py $(if $(findstring --quick,$(BENCH_FLAGS)),--quick) --out $(BENCH_OUT)

lint: $(BIN)/.installed
	$(BIN)/python -m pip install -q ruff && $(BIN)/ruff check bayes_scaling tests benchmarks
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) $(OUT) build dist *.egg-info
