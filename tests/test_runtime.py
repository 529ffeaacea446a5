"""TensorFlow start-up settings and the quiet import."""

import os
import subprocess
import sys

import pytest

QUIET = "from bench.runtime import import_tensorflow_quietly as q; q()"
PLAIN = "import bench, tensorflow"


def _import(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL")}
    code += "; import sys; print('tensorflow' in sys.modules)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


def test_quiet_tensorflow_import_prints_no_start_up_lines():
    loud = _import(PLAIN)  # the control: a plain import prints start-up lines on this project's machines
    assert loud.stdout.strip() == "True"
    if not loud.stderr.strip():
        pytest.skip("a plain TensorFlow import printed nothing here, so there is nothing to silence")
    quiet = _import(QUIET)
    assert quiet.stdout.strip() == "True" and quiet.stderr.strip() == "", quiet.stderr


def test_a_missing_distribution_is_tagged_not_installed():
    from bench.runtime import _installed_version

    assert _installed_version("no-such-distribution-bench") == "not installed"
    assert _installed_version("numpy")[0].isdigit()
