# moee-pipeline: every target sets up .venv first (make install is idempotent).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
MODEL  ?= allenai/OLMoE-1B-7B-0924
PROMPTS ?= none prompteol
TASKS  ?=
EXTRACT_ARGS ?=
SCORE_ARGS ?=
PAPER_ARGS ?=
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: help install test lint format demo extract score paper bench bench-gpu clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,ray]"
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with tested versions

lint: install ## ruff lint + format check, mypy (package, tests, benchmarks), import contracts
	$(VENV)/bin/ruff check moee_pipeline tests benchmarks
	$(VENV)/bin/ruff format --check moee_pipeline tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix moee_pipeline tests benchmarks
	$(VENV)/bin/ruff format moee_pipeline tests benchmarks

TEST_WORKERS ?= auto

test: lint ## Lint, then run the whole test suite (offline, CPU, one worker per core), naming the slowest tests
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15

demo: install ## Run the whole pipeline offline on a tiny bundled model and task
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m moee_pipeline.demo

extract: install ## Extract features on a GPU box: make extract MODEL=... PROMPTS="none prompteol" TASKS=STS12,...
	$(VENV)/bin/moee extract --model $(MODEL) $(foreach p,$(PROMPTS),--prompt $(p)) $(if $(TASKS),--tasks $(TASKS)) $(EXTRACT_ARGS)

score: install ## Score cached features on MTEB (CPU): make score MODEL=... PROMPTS="none prompteol"
	CUDA_VISIBLE_DEVICES="" $(VENV)/bin/moee score --model $(MODEL) $(foreach p,$(PROMPTS),--prompt $(p)) $(if $(TASKS),--tasks $(TASKS)) $(SCORE_ARGS)

paper: install ## The paper's Tables 3-5 for one model (GPU box): make paper MODEL=... -> results/paper-<model>/
	$(VENV)/bin/moee paper --model $(MODEL) $(PAPER_ARGS)

bench: install ## CPU speed/memory benchmarks vs the reference approach -> benchmarks/results/
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 CUDA_VISIBLE_DEVICES="" $(PY) -m benchmarks.run $(BENCH_ARGS)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 CUDA_VISIBLE_DEVICES="" $(PY) -m benchmarks.retrieval_scale

bench-gpu: install ## GPU benchmark: random full-size OLMoE-1B-7B, ours (nf4, bf16) vs the reference
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m benchmarks.gpu $(BENCH_ARGS)

clean: ## Remove build leftovers (keeps .venv and cache/)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
