# segvit: every entry point a user or CI needs. `make demo` and `make test` work on a fresh
# clone with only Python 3.11 and make: both create .venv and install the package first,
# within the versions constraints.txt pins (the ones the tests pass with).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints.txt
LATEST := .venv-latest
# uv (from PyPI, the version constraints.txt pins) creates the venvs and installs in seconds
# from its cache; it is bootstrapped once per machine by pip into UV_HOME, beside its cache.
# pip takes over where uv cannot be had; INSTALLER=pip forces pip.
INSTALLER ?= uv
UV_VERSION := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' $(CONSTRAINTS))
UV_HOME ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/segvit/uv-$(UV_VERSION)
UV := $(UV_HOME)/bin/uv

.PHONY: install demo test test-latest lock lint format flops-tables gpu-check all-tables \
	release-table clean

# $(call venv-install,VENV,EXTRAS,OPTIONS): create VENV, install segvit[EXTRAS] editable.
# A failed uv install fails; only a uv that cannot be had falls back to pip.
define venv-install
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	@if [ "$(INSTALLER)" = uv ] && { test -x $(UV) || { echo "bootstrapping uv $(UV_VERSION) into $(UV_HOME)"; \
		$(PYTHON) -m venv $(UV_HOME) && $(UV_HOME)/bin/python -m pip install --quiet uv==$(UV_VERSION); }; }; then \
		test -x $(1)/bin/python || $(UV) venv --quiet --python "$$(command -v $(PYTHON))" $(1) || exit 1; \
		echo "uv pip install -e '.[$(2)]' $(3)"; \
		$(UV) pip install --python $(1)/bin/python --quiet -e '.[$(2)]' $(3); \
	else \
		echo "installing with pip$(if $(filter uv,$(INSTALLER)), (uv could not be installed))"; \
		test -x $(1)/bin/python || $(PYTHON) -m venv $(1) || exit 1; \
		$(1)/bin/python -m pip --version >/dev/null 2>&1 || $(1)/bin/python -m ensurepip >/dev/null || exit 1; \
		$(1)/bin/python -m pip install --quiet -e '.[$(2)]' $(3); \
	fi
endef

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(call venv-install,$(VENV),dev,-c $(CONSTRAINTS))
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

# The suite on the newest releases pyproject.toml allows, in its own venv (.venv-latest), with
# the tensorboard extra: does a new torch, timm or numpy still pass? `make lock` then pins
# them in constraints.txt.
LATEST_EXTRAS := dev,tensorboard
PYTEST_ARGS ?=  # e.g. tests/modeling/test_timm_api.py for a first look
test-latest:
	$(call venv-install,$(LATEST),$(LATEST_EXTRAS),--upgrade)
	@$(LATEST)/bin/python -c 'import importlib.metadata as m; print("latest:", *(f"{p}=={m.version(p)}" for p in ("torch", "timm", "numpy", "opencv-python-headless", "scipy", "pandas")))'
	@$(LATEST)/bin/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# constraints.txt from .venv-latest, after `make test-latest` passed on it.
lock:
	@test -x $(LATEST)/bin/python || { echo "error: no $(LATEST); run make test-latest first"; exit 1; }
	{ grep -e '^#' -e '^uv==' $(CONSTRAINTS); \
	  if test -x $(UV); then $(UV) pip freeze --python $(LATEST)/bin/python --exclude-editable; \
	  else $(LATEST)/bin/python -m pip freeze --all --exclude-editable; fi | grep -v -e '^#' -e '^pip=='; \
	} > $(CONSTRAINTS).tmp && mv $(CONSTRAINTS).tmp $(CONSTRAINTS)

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
	rm -rf $(VENV) $(LATEST) .pytest_cache .ruff_cache *.egg-info
