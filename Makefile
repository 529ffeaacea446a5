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

# The demo: two backbones with the cpu recipe on synthetic faces (not FER2013), sized by epochs (4 passes
# over 3,171 training faces) rather than wall time, so a busy machine makes it slower but not worse.
demo: $(STAMP)
	$(BIN)/bench run --recipe cpu --data synthetic --backbone baseline_cnn --backbone mini_xception --experiment demo \
		--set run.budget_minutes=0 --set run.steps_per_epoch=0 --set phases.0.epochs=4
	$(BIN)/bench compare --experiment demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check bench tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
