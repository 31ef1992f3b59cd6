# The two front-door commands: `make demo` and `make test`. Both create .venv and install the project first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The Dagster UI has no authentication: loopback unless told otherwise (`make ui UI_HOST=0.0.0.0` on a trusted net).
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000
DATA_DIR ?= $(or $(LEO_FLEET_DATA_DIR),$(or $(XDG_DATA_HOME),$(HOME)/.local/share)/leo-fleet)

.PHONY: install demo ui test lint format sample-data bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/leo-fleet demo

ui: $(STAMP)
	LEO_FLEET_DATA_DIR=$(DATA_DIR) DAGSTER_HOME=$(DATA_DIR)/dagster $(BIN)/dagster dev -h $(UI_HOST) -p $(UI_PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest -m "not slow"

sample-data: $(STAMP)
	$(BIN)/python -m ingest.sample_data

bench: $(STAMP)
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done
