# Two entry points: `make demo` and `make test`. Both build .venv from requirements.lock
# when it is missing or older than the lock (`make venv` does only that).
# `make check` is the fast tier for the edit-test loop (lint and the unit tests, about a
# minute on two cores, in CHECK_WORKERS processes); `make test`, which CI runs, is the whole
# suite, in one process: its workflow tests each run Snakemake on two cores already.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
STAMP := $(VENV)/.zsar-synced
# `make lock` takes the newest versions within pyproject's ranges; `make lock UPGRADE=`
# keeps every pin that still fits and resolves only what changed.
UPGRADE ?= 1
CHECK_WORKERS ?= 2
# No model hub anywhere in tests or the demo: fail fast instead of waiting on the network.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo report test check lint venv lock lock-check test-slurm bench-quick clean

# Before any use of .venv: stop with one line when pyproject.toml's requirements changed
# since the lock was made.
lock-check:
	@$(PYTHON) tools/lockfile.py check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uv at the lock's version, hash-checked, installed by the pip that venv ships.
$(BIN)/uv: $(LOCK) | $(BIN)/python
	$(PYTHON) tools/lockfile.py requirement uv > $(VENV)/uv-requirement.txt
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r $(VENV)/uv-requirement.txt
	touch $@

$(STAMP): $(LOCK) pyproject.toml | lock-check $(BIN)/uv
	tools/sync_venv.sh
	touch $(STAMP)
	@echo "make: .venv holds $(LOCK). To use snakemake and zsar in this shell: source .venv/bin/activate"

venv: $(STAMP)

lock: | $(BIN)/uv
	$(PYTHON) tools/lockfile.py lock --uv $(BIN)/uv $(if $(UPGRADE),--upgrade)

demo: $(STAMP)
	$(BIN)/snakemake --workflow-profile profiles/default
	$(BIN)/snakemake --workflow-profile profiles/default --report results/report.html

# The report of a finished run: `make report ARGS="--configfile config/config.yaml
# config/datasets/ucf101.yaml my.yaml"`, with the config arguments the run was given. It runs
# no job (on a cluster, nothing runs on the login node by mistake); its "Run summary" section
# names the runs it holds.
report: $(STAMP)
	$(BIN)/snakemake --workflow-profile profiles/default $(ARGS) --report results/report.html

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
