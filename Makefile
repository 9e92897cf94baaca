# segvit: every entry point a user or CI needs. `make demo` and `make test` work on a fresh
# clone with only Python 3.11 and make: both create .venv and install the package first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format flops-tables gpu-check all-tables release-table clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default: the demo dataset and the smoke preset.
demo: $(STAMP)
	$(BIN)/segvit demo

lint: $(STAMP)
	$(BIN)/ruff check segvit tests cli.py
	$(BIN)/ruff format --check segvit tests cli.py

format: $(STAMP)
	$(BIN)/ruff check --fix segvit tests cli.py
	$(BIN)/ruff format segvit tests cli.py

test: lint
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# Every GFLOPs column of the paper's tables (CPU, minutes), Figure 4's x axis, results/README.md.
flops-tables: $(STAMP)
	$(BIN)/segvit reproduce all --only flops

# The GPU path in under ten minutes on one GPU (tests/gpu, marker gpu): a bf16 step of every
# variant against float32, the fused attention kernels, GPU eval = CPU eval, NCCL on 2 GPUs,
# `segvit bench train` figures. Without CUDA every test skips and -rs prints why.
gpu-check: $(STAMP)
	$(BIN)/python -m pytest tests/gpu -m gpu -rs

# Every table and Figure 4 with the paper's recipe: GPU runners (set GPUS), days. DATA and
# RUNS point at the prepared datasets and at the sweep's state (resumable) on the runner.
GPUS ?= 8
DATA ?= data
RUNS ?= runs
all-tables: $(STAMP)
	$(BIN)/segvit reproduce all --preset paper --gpus $(GPUS) --data-root $(DATA) --runs $(RUNS)

# The authors' seven released checkpoints: fetch them (about 8.7 GB), then evaluate each ss
# and ms on its prepared dataset (one GPU, hours) into results/release.{csv,md}.
release-table: $(STAMP)
	$(BIN)/segvit weights fetch all
	$(BIN)/segvit reproduce release

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
