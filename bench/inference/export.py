"""``bench export``: a trained model as TensorFlow Lite (the seed's future work: edge devices), a
TensorFlow SavedModel or ONNX (run by ONNX Runtime, :mod:`bench.inference.onnx_export`), checked after
export by running both on the same faces.

The check uses synthetic faces drawn by bench (no data needed) plus random pixels; tolerances are per
quantization mode because quantization changes the numbers on purpose:
- none: the same float32 graph (ONNX: the same operations in ONNX Runtime's kernels), so probabilities
  agree to 1e-4;
- float16: weights stored in float16, ~3 significant digits: 1e-2;
- dynamic: weights int8, activations quantized on the fly: 5e-2.
Then the predicted class must agree on at least 90 % of the faces where the Keras model is confident:
its top two probabilities differ by more than the tolerance. There a swap needs both classes to drift
by over half the tolerance in opposite directions, a systematic error the max-difference rule lets
through. On the other faces a drift within tolerance may swap the class harmlessly (a freshly trained
model's near-uniform outputs do), so counting them failed exports whose probabilities agreed.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench import INPUT_SHAPE
from bench.errors import BenchError, first_line, os_error_text, probe_folder

TOLERANCE = {"none": 1e-4, "float16": 1e-2, "dynamic": 5e-2}
MIN_ARGMAX_AGREEMENT = 0.9
FORMATS = ("tflite", "saved_model", "onnx")


@dataclass(frozen=True)
class ExportReport:
    format: str
    quantize: str
    path: str
    size_mb: float
    keras_size_mb: float
    max_abs_diff: float
    tolerance: float
    argmax_agreement: float
    agrees: bool
    latency_ms_keras: float  # one face per call, median
    latency_ms_exported: float
    samples: int
    faces_per_s_keras: float = 0.0  # all ``samples`` faces in one call (TFLite: one face per call, in a loop)
    faces_per_s_exported: float = 0.0
    confident_samples: int = 0
    confident_agreement: float | None = None  # None: no confident face
    failure: str | None = None  # which rule failed, in words
    class_names: tuple[str, ...] = ()  # what each output column means (the exported file does not say)

    def as_dict(self) -> dict:
        return asdict(self)


def sample_faces(n: int = 32, seed: int = 0) -> np.ndarray:
    """(n, 48, 48, 1) float32 raw faces: half synthetic faces, half random pixels."""
    from bench.data.synthetic import synthesize

    faces, _, _ = synthesize(n - n // 2, seed=seed)
    noise = np.random.default_rng(seed).integers(0, 256, (n // 2, *INPUT_SHAPE[:2]))
    return np.concatenate([faces, noise]).astype(np.float32)[..., None]


def _median_ms(fn, x, warmup: int = 3, repeats: int = 20) -> float:
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - tic) * 1000)
    return float(np.median(times))


def _faces_per_second(fn, x, warmup: int = 1, repeats: int = 5) -> float:
    return len(x) / (_median_ms(fn, x, warmup, repeats) / 1000)


def _size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _resize_matrix(size_in: int, size_out: int, interpolation: str) -> np.ndarray:
    """(size_out, size_in) matrix M with resize(x) == M @ x along one axis: Keras' resize is linear and
    separable, so resizing the identity gives its matrix exactly."""
    import keras

    eye = np.eye(size_in, dtype=np.float32)[None, :, :, None]  # column j is an impulse at row j
    out = keras.ops.image.resize(eye, (size_out, size_in), interpolation=interpolation, antialias=False)
    return np.asarray(keras.ops.convert_to_numpy(out))[0, :, :, 0]


def _matrix_resize_layer(resizing):
    """A layer computing ``resizing`` (a keras.layers.Resizing) as two matrix products: TFLite has no
    builtin bicubic resize, the interpreter in the TensorFlow wheel cannot run TensorFlow ops, and a
    SavedModel's ResizeBicubic did not reproduce Keras' (see :func:`to_saved_model`)."""
    import keras

    class MatrixResize(keras.layers.Layer):
        def build(self, input_shape):
            self.rows = _resize_matrix(input_shape[1], resizing.height, resizing.interpolation)
            self.cols = _resize_matrix(input_shape[2], resizing.width, resizing.interpolation)

        def call(self, x):
            # NumPy until here, so the matrices are constants of the traced graph: built as tensors, they
            # were captured tensors, which tf2onnx turns into extra inputs of the ONNX graph.
            x = keras.ops.einsum("oh,bhwc->bowc", keras.ops.convert_to_tensor(self.rows), x)
            return keras.ops.einsum("pw,bowc->bopc", keras.ops.convert_to_tensor(self.cols), x)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], resizing.height, resizing.width, input_shape[3])

    return MatrixResize(name=resizing.name)


def export_compatible(model):
    """The same model with its resize layers computed by matrix products; every other layer is shared
    (same weights), and a calibrated model's temperature (:class:`bench.models.FaceModel`) is kept. The
    export check compares the result with the original model."""
    import keras

    def swap(layer):
        if (
            isinstance(layer, keras.layers.Resizing)
            and not layer.crop_to_aspect_ratio
            and not layer.pad_to_aspect_ratio
        ):
            return _matrix_resize_layer(layer)
        return layer

    if not any(isinstance(layer, keras.layers.Resizing) for layer in model.layers):
        return model
    clone = keras.models.clone_model(model, clone_function=swap)  # a plain Functional: FaceModel.call is lost
    temperature = getattr(model, "temperature", 1.0)
    if temperature == 1.0:
        return clone
    return keras.Model(clone.inputs, _temperature_layer(temperature)(clone.outputs[0]), name=model.name)


def _temperature_layer(temperature: float):
    """A layer applying :func:`bench.models.temper` (export only: never saved, so never registered)."""
    import keras

    from bench.models import temper

    class Temperature(keras.layers.Layer):
        def call(self, probs):
            return temper(probs, temperature)

    return Temperature(name="temperature")


def to_saved_model(model, out: Path, batch: int | None = None) -> Path:
    """A SavedModel whose ``serve`` endpoint is the inference call (training=False) of
    :func:`export_compatible` ``(model)``, for ``batch`` faces (None = any number).

    Keras' own ``model.export`` kept ``ResizeBicubic``, and the reloaded SavedModel disagreed with the
    Keras model by up to 0.19 in probability on an upscaling model (TF 2.21, measured); the matrix form
    agrees to float rounding."""
    import keras
    import tensorflow as tf

    compatible = export_compatible(model)
    archive = keras.export.ExportArchive()
    archive.track(compatible)
    # The inference graph explicitly: a cloned model otherwise keeps dropout's random ops.
    archive.add_endpoint(
        "serve",
        lambda x: compatible(x, training=False),
        input_signature=[tf.TensorSpec((batch, *INPUT_SHAPE), tf.float32)],
    )
    archive.write_out(str(out), verbose=False)
    return out


def to_tflite(model, out: Path, quantize: str) -> Path:
    """Builtin ops only, so the file runs on any TFLite interpreter; one face per call (the edge use
    case; a dynamic batch made the converter emit invalid shapes for the resize matrices)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        saved = to_saved_model(model, Path(tmp) / "saved", batch=1)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        if quantize in ("dynamic", "float16"):
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        try:
            flat = converter.convert()
        except Exception as exc:
            raise BenchError(f"TFLite conversion failed: {first_line(exc)}") from exc
    out.write_bytes(flat)
    return out


def _tflite_runner(path: Path):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        # tf.lite.Interpreter warns that it moves to the ai-edge-litert package (not a dependency of
        # bench); it still runs builtin-op models in TensorFlow 2.21.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(x: np.ndarray) -> np.ndarray:
        rows = []
        for face in x:  # the converted graph has batch size 1: the edge use case
            interpreter.set_tensor(inp["index"], face[None].astype(inp["dtype"]))
            interpreter.invoke()
            rows.append(interpreter.get_tensor(outp["index"])[0])
        return np.asarray(rows, dtype=np.float32)

    return run


def _saved_model_runner(path: Path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return lambda x: np.asarray(loaded.serve(tf.constant(x, tf.float32)), dtype=np.float32)


def load_exported(fmt: str, path: Path):
    """An exported file (``fmt`` one of :data:`FORMATS`) as a ``faces (n, 48, 48, 1) float32 -> (n, classes)
    probabilities`` function: how the check runs it, and how benchmarks/export_speed.py times it."""
    if fmt == "tflite":
        return _tflite_runner(path)
    if fmt == "onnx":
        from bench.inference.onnx_model import load_onnx_model

        return load_onnx_model(path)
    return _saved_model_runner(path)


def op_error_text(exc) -> str:
    """A TensorFlow op's failure in the words of the OS when it is one (a SavedModel on a full disk
    fails in ``{{function_node __wrapped__SaveV2...}} PATH.tempstate...; No space left on device
    [Op:SaveV2]``): TensorFlow's internal function names say nothing to a user."""
    import errno
    import os
    import re

    text = re.sub(r"\{\{[^}]*\}\}\s*", "", str(getattr(exc, "message", exc)))
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EIO):
        if os.strerror(code) in text:
            return os.strerror(code)
    return first_line(re.sub(r"\s*\[Op:\w+\].*", "", text))


def _write(model, fmt: str, out: Path, quantize: str):
    """Export to ``out`` and return a runner of the exported model. A write that fails (disk full)
    removes what it left, so the next try does not stop at "already exists"."""
    import shutil

    import tensorflow as tf

    try:
        if fmt == "tflite":
            to_tflite(model, out, quantize)
        elif fmt == "onnx":
            from bench.inference.classifier import model_class_names
            from bench.inference.onnx_export import to_onnx

            to_onnx(model, out, model_class_names(model), getattr(model, "temperature", 1.0))
        else:
            to_saved_model(model, out)
        return load_exported(fmt, out)
    except (OSError, tf.errors.OpError) as exc:
        cause = os_error_text(exc) if isinstance(exc, OSError) else op_error_text(exc)
        if out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        else:
            out.unlink(missing_ok=True)
        raise BenchError(f"cannot write --out {out}: {cause}; free disk space or choose another folder") from exc


def judge(reference: np.ndarray, exported: np.ndarray, tolerance: float) -> tuple[int, float | None, str | None]:
    """Compare two ``(n, classes)`` probability arrays: ``(confident faces, their class agreement,
    the rule that failed or None)``. Confident: the reference's top-two margin exceeds the tolerance
    (see the module docstring for why)."""
    diff = float(np.max(np.abs(reference - exported))) if reference.size else 0.0
    top2 = np.sort(reference, axis=1)[:, -2:]
    confident = (top2[:, 1] - top2[:, 0]) > tolerance
    n = int(confident.sum())
    same = reference.argmax(1)[confident] == exported.argmax(1)[confident]
    agreement = float(same.mean()) if n else None
    if diff > tolerance:
        return n, agreement, f"probabilities differ by up to {diff:.2e}, over the tolerance {tolerance:g}"
    if agreement is not None and agreement < MIN_ARGMAX_AGREEMENT:
        return (
            n,
            agreement,
            (
                f"the class differs on {1 - agreement:.0%} of the {n} faces the Keras model is confident about "
                f"(top-two margin > {tolerance:g}); at most {1 - MIN_ARGMAX_AGREEMENT:.0%} may"
            ),
        )
    return n, agreement, None


def export_model(model, fmt: str, out: Path, quantize: str = "none", samples: int = 32) -> ExportReport:
    """Export ``model`` and check the exported file against it; raises BenchError on a bad request.

    Needs the TensorFlow backend: TFLite and SavedModel are written by TensorFlow's converters, ONNX by
    tf2onnx from a TensorFlow graph."""
    from bench.backend import backend_name, is_tensorflow

    if not is_tensorflow():
        raise BenchError(
            f"bench export needs the TensorFlow backend (KERAS_BACKEND={backend_name()} cannot write TFLite, "
            "SavedModel or ONNX); rerun it with KERAS_BACKEND=tensorflow, which loads the same .keras model"
        )
    import tensorflow as tf

    from bench.inference.classifier import check_input_shape, model_class_names

    if fmt not in FORMATS:
        raise BenchError(f"--to must be one of {', '.join(FORMATS)}; received {fmt!r}")
    if quantize not in TOLERANCE:
        raise BenchError(f"--quantize must be one of {', '.join(TOLERANCE)}; received {quantize!r}")
    if fmt != "tflite" and quantize != "none":
        raise BenchError(f"--quantize applies to --to tflite only; drop it for {fmt}")
    check_input_shape(model)
    class_names = model_class_names(model)
    out = Path(out)
    if out.exists():
        raise BenchError(f"{out} already exists; choose another --out or remove it (bench does not overwrite)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe_folder(out.parent)
    except OSError as exc:
        raise BenchError(f"cannot write --out {out}: {os_error_text(exc)}; choose a writable folder") from exc
    run = _write(model, fmt, out, quantize)

    x = sample_faces(samples)
    call = tf.function(lambda t: model(t, training=False))
    reference = np.asarray(call(tf.constant(x)))
    exported = run(x)
    diff = float(np.max(np.abs(reference - exported)))
    agreement = float(np.mean(reference.argmax(1) == exported.argmax(1)))
    n_confident, confident_agreement, failure = judge(reference, exported, TOLERANCE[quantize])
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model.keras")
        keras_mb = _size_mb(Path(tmp) / "model.keras")
    one = x[:1]
    tolerance = TOLERANCE[quantize]
    return ExportReport(
        format=fmt,
        quantize=quantize,
        path=str(out),
        size_mb=_size_mb(out),
        keras_size_mb=keras_mb,
        max_abs_diff=diff,
        tolerance=tolerance,
        argmax_agreement=agreement,
        agrees=failure is None,
        latency_ms_keras=_median_ms(lambda t: np.asarray(call(tf.constant(t))), one),
        latency_ms_exported=_median_ms(run, one),
        samples=len(x),
        faces_per_s_keras=_faces_per_second(lambda t: np.asarray(call(tf.constant(t))), x),
        faces_per_s_exported=_faces_per_second(run, x),
        confident_samples=n_confident,
        confident_agreement=confident_agreement,
        failure=failure,
        class_names=class_names,
    )
