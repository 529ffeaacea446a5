# `make demo` runs the main job on embedded synthetic data; `make test` runs the test suite.
# Both create .venv on first use and install bench into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test browser lint clean

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

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# The HTML report's browser test needs Chromium: installed from the Debian packages when it is missing and
# apt-get is there (as root, or through password-less sudo). Never fatal: without it that one test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	! command -v apt-get >/dev/null 2>&1 || \
	{ SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo -n); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	} >/dev/null 2>&1 || echo "chromium could not be installed: the HTML report's browser test will be skipped"

lint: $(STAMP)
	$(BIN)/ruff check bench tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
