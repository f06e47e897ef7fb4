# Two commands set up a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
READY := $(VENV)/.ready
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# The demo's tiny model runs fastest on one thread per process; set it yourself to override.
export OMP_NUM_THREADS ?= 1

.PHONY: demo test check lint types fast bench bench-quick venv slurm clean

# The stack is large (torch with its CUDA libraries, ~6 min to install): built once, kept.
# It holds llm-foundry too (the foundry extra: its checkpoints are tested), and `pip check` proves
# the pins still sit beside it.
$(READY): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -c constraints.txt -e '.[dev,foundry]'
	$(VENV)/bin/python -m pip check
	touch $(READY)

venv: $(READY)

demo: $(READY)
	$(VENV)/bin/ablate demo

test: $(READY)
	$(VENV)/bin/python -m pytest -q

# What every change keeps green: lint and format, types, then the tests that train nothing (~1 min).
check: lint types fast

lint: $(READY)
	$(VENV)/bin/ruff check ablate
	$(VENV)/bin/ruff format --check ablate

types: $(READY)
	$(VENV)/bin/mypy

fast: $(READY)
	$(VENV)/bin/python -m pytest -q -m "not slow"

# A one-node Slurm for the cluster tests (tests/slurm_cluster.py starts it): Debian's packages, as root.
# Without them, or without root, those tests skip and say why.
slurm:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  command -v slurmctld >/dev/null || { apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null; }; \
	else echo "make slurm: needs root and apt-get; the Slurm tests will skip"; fi

bench: $(READY)
	$(VENV)/bin/python benchmarks/run_all.py

# Every benchmark at a few steps, so none can rot unseen (CI runs it; ratios printed, not asserted).
bench-quick: $(READY)
	$(VENV)/bin/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) data results/.current
