# govdata — run `make help` for the targets. Needs only python3 (3.11) with pip and venv.
PYTHON ?= python3
UV_VERSION ?= 0.13.9
UV := .uv/bin/uv
BIN := .venv/bin

.DEFAULT_GOAL := help
.PHONY: help demo test lint format airflow bench bench-quality bench-exchange bench-exchange-incremental bench-dag-parse bench-airflow clean

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-8s\033[0m %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet "uv==$(UV_VERSION)"

demo: $(UV) ## Set up (runtime only) and run the bundled departments end to end, no server needed
	$(UV) sync --frozen --no-dev --quiet
	$(BIN)/govdata demo

test: $(UV) ## Set up (with dev tools) and run the whole test suite
	$(UV) sync --frozen --quiet
	$(BIN)/pytest

lint: $(UV) ## ruff (lint + format check) and mypy
	$(UV) sync --frozen --quiet
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(UV) ## Apply ruff's formatting and safe fixes
	$(UV) sync --frozen --quiet
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

airflow: $(UV) ## Start Airflow standalone on 127.0.0.1:8080 (GOVDATA_AIRFLOW_PORT) for the dataset DAGs; Ctrl-C stops it
	$(UV) sync --frozen --quiet
	$(BIN)/python tools/airflow_standalone.py

bench: $(UV) ## Run the benchmarks (several minutes; writes bench/results/)
	$(UV) sync --frozen --quiet
	$(BIN)/python bench/run.py

bench-quality: $(UV) ## Benchmark the quality step on 10M rows against one SQL pass and GX on pandas (~15 min)
	$(UV) sync --frozen --quiet
	$(BIN)/python bench/quality_run.py

bench-exchange: $(UV) ## Load-test the exchange service with wrk on SQLite and PostgreSQL (~9 min; needs wrk)
	$(UV) sync --frozen --quiet
	$(BIN)/python bench/exchange_load.py

bench-exchange-incremental: $(UV) ## Benchmark delivering a 5M-row version with 1% changed against a full re-delivery (~10 min; PostgreSQL if up)
	$(UV) sync --frozen --quiet
	$(BIN)/python bench/exchange_incremental.py

bench-dag-parse: $(UV) ## Benchmark parsing the DAG file with 500 dataset specs against an empty datasets folder (~3 min)
	$(UV) sync --frozen --quiet
	$(BIN)/python bench/dag_parse.py

bench-airflow: $(UV) ## Benchmark 50 small datasets through Airflow on LocalExecutor and on Celery with two workers (~25 min; PostgreSQL, Redis)
	$(UV) sync --frozen --quiet
	$(BIN)/python bench/airflow_throughput.py

clean: ## Remove the workspace (var/) and caches
	rm -rf var .pytest_cache .ruff_cache .mypy_cache
