# `make demo` runs the main job on embedded synthetic data; `make test` runs the test suite.
# Both create .venv on first use and install bench into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Environments without TensorFlow, where bench runs with KERAS_BACKEND=jax (on jax[cpu]) or =torch: what a
# GPU machine without TensorFlow has, so a stray TensorFlow import fails here first.
JAX_VENV := .venv-jax
JAX_STAMP := $(JAX_VENV)/.installed
TORCH_VENV := .venv-torch
TORCH_STAMP := $(TORCH_VENV)/.installed
# PyPI's default torch is a CUDA build of several GB; a CPU build is enough here, e.g.
# `make test-torch TORCH_SPEC=torch==2.13.0` where that wheel is on the machine.
TORCH_SPEC ?=
BACKEND_TESTS := tests/test_batches.py tests/test_backend.py tests/test_augment_affine.py tests/test_augment_crop.py \
	tests/test_mixing.py tests/test_ema.py tests/test_devices.py
JAX_TESTS := $(BACKEND_TESTS) tests/test_other_backends.py tests/test_explain_gradcam.py

.PHONY: demo test test-jax test-torch browser lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# $(call backend_venv,VENV,EXTRA[,SPEC]): pyproject's dependencies minus tensorflow, plus the named extra
# (or SPEC instead) and pytest; bench itself without deps.
define backend_venv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip
	$(1)/bin/python -c 'import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
		extra = sys.argv[2:] or p["optional-dependencies"][sys.argv[1]]; \
		print("\n".join([d for d in p["dependencies"] if not d.startswith("tensorflow")] + extra + ["pytest>=8.0"]))' \
		$(2) $(3) > $(1)/requirements.txt
	$(1)/bin/python -m pip install --quiet -r $(1)/requirements.txt
	$(1)/bin/python -m pip install --quiet --no-deps -e .
	touch $(1)/.installed
endef

$(JAX_STAMP): pyproject.toml
	$(call backend_venv,$(JAX_VENV),jax)

$(TORCH_STAMP): pyproject.toml
	$(call backend_venv,$(TORCH_VENV),torch,$(TORCH_SPEC))

# The demo: two backbones with the cpu recipe on synthetic faces (not FER2013), sized by epochs (4 passes
# over 3,171 training faces) rather than wall time, so a busy machine makes it slower but not worse.
demo: $(STAMP)
	$(BIN)/bench run --recipe cpu --data synthetic --backbone baseline_cnn --backbone mini_xception --experiment demo \
		--set run.budget_minutes=0 --set run.steps_per_epoch=0 --set phases.0.epochs=4
	$(BIN)/bench compare --experiment demo

# The whole suite under TensorFlow (its JAX smoke test runs in .venv-jax), then the backend-neutral
# modules' tests again under JAX.
test: $(STAMP) $(JAX_STAMP) browser
	BENCH_JAX_PYTHON=$(CURDIR)/$(JAX_VENV)/bin/python $(BIN)/python -m pytest -q
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -m pytest -q $(BACKEND_TESTS)

# Only the JAX checks: the smoke recipe end to end (run, compare, tune, profile, predict) and the tests
# of the backend-neutral modules, all in .venv-jax.
test-jax: $(JAX_STAMP)
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -m pytest -q $(JAX_TESTS)

# The same under PyTorch (not part of `make test`: torch is a large download): the smoke recipe end to end,
# the backend-neutral modules' tests, and divergence stopping (PyTorch's diverged loss stays finite), in .venv-torch.
test-torch: $(TORCH_STAMP)
	KERAS_BACKEND=torch $(TORCH_VENV)/bin/python -m pytest -q $(BACKEND_TESTS) tests/test_train.py::test_nan_loss_raises \
		"tests/test_other_backends.py::test_run_compare_tune_profile_predict_without_tensorflow[torch]"

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
	rm -rf $(VENV) $(JAX_VENV) $(TORCH_VENV) .pytest_cache
