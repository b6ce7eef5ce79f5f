# Two commands on a fresh machine with Python 3.11 and make:
#   make test   create .venv if missing, install, run the test suite
#   make demo   create .venv if missing, install, run the pipeline on the embedded default
PYTHON ?= python3
# extras to install, e.g. `make test EXTRAS=dev,ray` (CI) for the Ray executor's tests
EXTRAS ?= dev
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell (cat pyproject.toml; echo "$(EXTRAS)") | cksum | cut -d' ' -f1)

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export MLFLOW_EXPERIMENT_NAME ?= teachable
# `mlflow run --env-manager local` runs `python` from PATH: the project's
MLFLOW_RUN := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mlflow run . --env-manager local

.PHONY: test demo install lint clean ui

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU build of torch from local disk first; the project pins the same version.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check webshop_env teachable entry_points bench tests

# The whole pipeline on the embedded default, sized to finish in about half an hour on 2 cores;
# every size is a parameter of the `pipeline` entry point (the defaults are the full sizes). A second
# `make demo` reuses every finished phase run and starts none.
demo: $(STAMP)
	$(BIN)/python -m webshop_env generate
	$(BIN)/python -m webshop_env index
	$(BIN)/python bench/env_throughput.py --sizes 1000
	$(MLFLOW_RUN) -e pipeline -P rollouts_n_goals=200 -P mine_offsets=1,2,3,4 -P mine_include_search_steps=false \
		-P label_max_snapshots=96 -P label_n_max=16 -P micro_per_quadrant=3 -P micro_n_rollouts=8 \
		-P matrix_examples_per_cell=24 -P matrix_epochs=2 -P eval_heldout_goals=32 -P eval_failure_snapshots=48 \
		-P eval_retention_goals=32 -P eval_episodes_per_item=2 -P select_budgets=8,16 -P select_random_seeds=3
	@echo "runs are in $(CURDIR)/mlflow.db: make ui"

# The MLflow UI on the project's store, opened on the training runs (MLflow's UI starts a new
# browser on its GenAI view; the link's workflowType=machine_learning picks the runs instead).
ui: $(STAMP)
	@$(BIN)/python -c "from entry_points.runs import setup_tracking, ui_url; print('MLflow UI:', ui_url(setup_tracking()))"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf $(VENV) .pytest_cache
