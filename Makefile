# Two entry points: `make demo` and `make test`. Both create .venv when it is missing.
# `make check` is the fast tier for the edit-test loop (lint and the unit tests, about a
# minute on two cores, in CHECK_WORKERS processes); `make test`, which CI runs, is the whole
# suite, in one process: its workflow tests each run Snakemake on two cores already.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.zsar-installed
CHECK_WORKERS ?= 2
# No model hub anywhere in tests or the demo: fail fast instead of waiting on the network.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test check lint test-slurm bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[workflow,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --workflow-profile profiles/default
	$(BIN)/snakemake --workflow-profile profiles/default --report results/report.html

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

check: lint
	$(BIN)/pytest -q -n $(CHECK_WORKERS) -m "not slow"

test: lint
	$(BIN)/pytest -q

test-slurm: $(STAMP)
	timeout -s KILL 900 bash tests/slurm/run_slurm_demo.sh

# The GPU suite's code paths at toy sizes on the CPU (about 1-2 min; on a GPU node run
# `bash benchmarks/gpu_suite.sh` itself). Not part of pytest: it would double its time.
bench-quick: $(STAMP)
	PYTHON=$(abspath $(BIN))/python timeout -s KILL 300 bash benchmarks/gpu_suite.sh \
		--device cpu --quick --out results/gpu-suite-cpu-quick

clean:
	rm -rf results .snakemake
