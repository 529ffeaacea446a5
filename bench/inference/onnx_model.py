"""A ``.onnx`` file written by ``bench export --to onnx``, run with ONNX Runtime: what ``bench predict`` and
``bench live`` use for ``--model M.onnx``, with neither TensorFlow nor Keras imported.

ONNX Runtime (``onnxruntime``) is how ONNX models are commonly deployed, from servers to phones; bench
only wraps its ``InferenceSession``. An ONNX graph says nothing of what its output columns mean, so the
export writes bench's facts into the file's ``metadata_props`` (string keys and values, kept by every
ONNX tool) and loading reads them back:

- ``bench.class_names``: JSON list, one name per output column (FER2013's 7, FER+'s 8, a folder's own);
- ``bench.input_shape``: JSON list ``[48, 48, 1]``, the raw grayscale face the graph takes;
- ``bench.temperature``: the calibration temperature, already applied inside the graph (for the record).

A file without the first two is refused in one line: guessing FER2013's labels would silently mislabel
a FER+ model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench import INPUT_SHAPE
from bench.errors import BenchError, first_line

CLASS_NAMES_KEY = "bench.class_names"
INPUT_SHAPE_KEY = "bench.input_shape"
TEMPERATURE_KEY = "bench.temperature"
INSTALL_RUNTIME = "pip install onnxruntime"
_EXPORT_HINT = "export it with bench export --to onnx"


def model_metadata(class_names, temperature: float = 1.0) -> dict[str, str]:
    """The ``metadata_props`` an exported file carries (see the module docstring)."""
    return {
        CLASS_NAMES_KEY: json.dumps(list(class_names)),
        INPUT_SHAPE_KEY: json.dumps(list(INPUT_SHAPE)),
        TEMPERATURE_KEY: repr(float(temperature)),
    }


def read_metadata(props: Mapping[str, str], path: Path) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``(class names, input shape)`` from a file's metadata, or a one-line error naming what is missing."""
    missing = [key for key in (CLASS_NAMES_KEY, INPUT_SHAPE_KEY) if key not in props]
    if missing:
        raise BenchError(
            f"'{path}' has no {' or '.join(missing)} metadata, so bench cannot tell which class each output is; "
            f"{_EXPORT_HINT}"
        )
    try:
        names = tuple(str(n) for n in json.loads(props[CLASS_NAMES_KEY]))
        shape = tuple(int(d) for d in json.loads(props[INPUT_SHAPE_KEY]))
    except (ValueError, TypeError) as exc:
        raise BenchError(f"'{path}' has malformed bench metadata ({first_line(exc)}); {_EXPORT_HINT}") from exc
    return names, shape


class OnnxModel:
    """A loaded ``.onnx`` face classifier: ``model(x)`` maps (n, 48, 48, 1) float32 raw faces to
    (n, classes) probabilities (calibrated when the Keras model was), any n.

    Attributes:
        class_names: what each output column means (from the file's metadata).
        input_shape: one face's shape, ``(48, 48, 1)``.
        path: the file it was loaded from.
    """

    def __init__(self, session, class_names: tuple[str, ...], input_shape: tuple[int, ...], path: Path):
        self.session, self.class_names, self.input_shape, self.path = session, class_names, input_shape, path
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run([self._output], {self._input: x})[0]


def _session(path: Path):
    try:
        import onnxruntime
    except ImportError as exc:
        raise BenchError(f"a .onnx model runs on ONNX Runtime, which is not installed: {INSTALL_RUNTIME}") from exc
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its graph-optimizer notes say nothing a user can act on
    # Its worker threads otherwise spin between calls: with a frame every 33 ms (bench live) that doubled the
    # server's CPU per frame (42.7 ms against Keras' 20.3; benchmarks/RESULTS.md#speed-deploy) for no speed.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind classes (InvalidProtobuf, Fail, ...)
        raise BenchError(f"cannot load '{path}' as an ONNX model ({first_line(exc, 200)}); {_EXPORT_HINT}") from exc


def load_onnx_model(path: str | Path) -> OnnxModel:
    """A ``.onnx`` file from ``bench export --to onnx`` as an :class:`OnnxModel`, or a one-line error (no
    such file, not ONNX, no bench metadata, a graph that does not take one 48x48 grayscale face)."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"model file '{path}' does not exist; pass a .onnx file written by bench export --to onnx")
    session = _session(path)
    names, shape = read_metadata(session.get_modelmeta().custom_metadata_map, path)
    graph_shape = tuple(session.get_inputs()[0].shape[1:])
    if shape != INPUT_SHAPE or graph_shape != INPUT_SHAPE:
        raise BenchError(
            f"'{path}' takes input of shape {graph_shape}, not {INPUT_SHAPE} (raw 48x48 grayscale faces); "
            f"{_EXPORT_HINT}"
        )
    width = session.get_outputs()[0].shape[-1]
    if isinstance(width, int) and width != len(names):
        raise BenchError(f"'{path}' has {width} outputs but {len(names)} class names in its metadata; {_EXPORT_HINT}")
    return OnnxModel(session, names, shape, path)
