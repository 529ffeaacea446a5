# `make demo` runs the main job on embedded synthetic data; `make test` runs the test suite.
# Both create .venv on first use and install bench into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The demo: the cpu recipe with a 1-minute training budget per backbone on synthetic faces (not FER2013).
demo: $(STAMP)
	$(BIN)/bench run --recipe cpu --set run.budget_minutes=1 --set run.steps_per_epoch=50 --data synthetic --backbone baseline_cnn \
		--backbone mobilenet_v3_small --experiment demo
	$(BIN)/bench compare --experiment demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bench tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
