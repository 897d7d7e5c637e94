# The README's commands. Each target does its own set-up: a fresh clone needs nothing else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_EVAL ?= ../shared/eval
EVAL_OUT ?= eval-results

.PHONY: install serve test test-fast lint eval bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

serve: install  ## Serve the bundled corpus at http://127.0.0.1:8000 (indexes it on first run)
	$(BIN)/moocsearch serve

lint: install  ## Format, lint, types and the import contracts (indexer never imports search_api; routes never the build pipeline)
	$(BIN)/ruff format --check indexer search_api tests scripts
	$(BIN)/ruff check indexer search_api tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint  ## Everything CI runs: lint, fast suite, then the slow (real model, real PDFs) and e2e suites
	$(BIN)/pytest -m "not slow and not e2e"
	$(BIN)/pytest -m "slow or e2e"

test-fast: install  ## The quick edit-test loop: fakes, tiny data, real SQLite/FAISS/FastAPI
	$(BIN)/pytest -m "not slow and not e2e" -q

eval: install  ## Retrieval quality on SciFact and XQuAD-R (needs ../shared/eval), JSON in eval-results/
	$(BIN)/moocsearch eval $(SHARED_EVAL)/scifact --output $(EVAL_OUT)/scifact.json
	$(BIN)/moocsearch eval $(SHARED_EVAL)/xquad_r --queries zh --corpus en --output $(EVAL_OUT)/xquad_r-zh-en.json
	$(BIN)/moocsearch eval $(SHARED_EVAL)/xquad_r --queries es --corpus en --output $(EVAL_OUT)/xquad_r-es-en.json
	$(BIN)/moocsearch eval $(SHARED_EVAL)/xquad_r --queries en --corpus zh --output $(EVAL_OUT)/xquad_r-en-zh.json
	$(BIN)/moocsearch eval $(SHARED_EVAL)/xquad_r --queries en --corpus en,zh,es --output $(EVAL_OUT)/xquad_r-en-pooled.json

bench: install  ## Indexing time of the bundled corpus and extraction throughput of the real PDFs
	$(BIN)/python scripts/benchmark_indexing.py
	$(BIN)/python scripts/benchmark_extraction.py $(SHARED_EVAL)/edu_pdfs/files

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
