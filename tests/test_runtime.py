"""TensorFlow start-up settings and the quiet import."""

import subprocess
import sys


def test_quiet_tensorflow_import_prints_no_start_up_lines():
    code = (
        "from bench.runtime import import_tensorflow_quietly as q; q(); import sys; print('tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "True" and "oneDNN" not in done.stderr and "absl" not in done.stderr, done.stderr
