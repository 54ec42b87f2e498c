# The two commands of README.md:
#   make demo   set up, migrate, make sample data and run the pipeline on the embedded default
#   make test   set up and run the whole test suite (what .ci/run calls)
# Both create .venv and install the project on first use; nothing is installed by hand.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

export CONTIMG_DATA_DIR ?= $(CURDIR)/var
export DAGSTER_HOME ?= $(CONTIMG_DATA_DIR)/dagster_home
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000

.PHONY: demo test install lint ui clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "contimg needs Python 3.11 or newer (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/contimg demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest
	bash tests/check_fresh_migrations.sh $(BIN)

# `dg dev`: the webserver and the daemon, loading the project as the code location `contimg`
# ([tool.dg] in pyproject.toml), the location every documented command files its runs under.
ui: $(BIN)/.installed
	$(BIN)/contimg init-home
	$(BIN)/dg dev --host $(UI_HOST) --port $(UI_PORT)

clean:
	rm -rf var .pytest_cache .ruff_cache
