"""A trained bench model as a fast face classifier: loaded from a file or an MLflow run, checked to
take 48x48x1 raw faces, and called as one compiled function per batch of faces (``model.predict``
costs ~50 ms a call here, more than the model itself). A ``.onnx`` file from ``bench export --to onnx``
is run by ONNX Runtime instead (:mod:`bench.inference.onnx_model`), without TensorFlow or Keras."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench import CLASS_NAMES, INPUT_SHAPE
from bench.errors import BenchError, first_line
from bench.run_record import MODEL_ARTIFACT, RECIPE_PREFIX

EXPECTED_INPUT = INPUT_SHAPE


def load_keras_model(path: str | Path):
    """A ``.keras`` file as a Keras model, or a one-line error."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise BenchError(f"model file '{path}' does not exist; pass a .keras file saved by bench run, or --run RUN_ID")
    from bench.models import register_serializable_layers

    register_serializable_layers()

    import zipfile

    if path.suffix == ".keras" and not zipfile.is_zipfile(path):  # Keras itself says "File not found"
        raise BenchError(
            f"model file '{path}' is not a .keras archive (truncated or corrupt?); pass a .keras file saved "
            "by bench run, or --run RUN_ID"
        )
    try:
        # compile=False: inference needs no optimizer, and loading one warns "Skipping variable loading"
        return keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise BenchError(f"cannot load '{path}' as a Keras model: {first_line(exc)}") from exc


def load_model_file(path: str | Path):
    """A model file by its suffix: ``.onnx`` as an :class:`~bench.inference.onnx_model.OnnxModel` (ONNX
    Runtime), anything else as a Keras model. Both work in :class:`FaceClassifier`."""
    if Path(path).suffix.lower() == ".onnx":
        from bench.inference.onnx_model import load_onnx_model

        return load_onnx_model(path)
    return load_keras_model(path)


def is_onnx_model(model) -> bool:
    """Whether ``model`` came from a ``.onnx`` file (no Keras API: no layers to explain, nothing to export)."""
    from bench.inference.onnx_model import OnnxModel

    return isinstance(model, OnnxModel)


def model_from_run(run_id: str, tracking_uri: str | None = None):
    """The ``model.keras`` artifact of a bench run. The downloaded copy is deleted once loaded (the
    model lives in memory then); a store that does not exist is an error, never created."""
    from bench import tracking

    tracking.connect(tracking_uri, create=False)
    tracking.find_run(run_id)
    with tempfile.TemporaryDirectory(prefix="bench-model-") as folder:
        return load_keras_model(tracking.download_artifact(run_id, MODEL_ARTIFACT, Path(folder)))


def check_input_shape(model) -> None:
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if shape != EXPECTED_INPUT:
        raise BenchError(
            f"the model takes input of shape {shape}, not {EXPECTED_INPUT} (raw 48x48 grayscale faces); "
            "use a model saved by bench run"
        )


def model_class_names(model) -> tuple[str, ...]:
    """The classes of a model's output columns: the names saved with a bench model (8 for FER+, a folder
    data set's own), else FER2013's 7 for a model saved before bench kept them."""
    names = getattr(model, "class_names", None)
    width = int(model.outputs[0].shape[-1])
    if names is None and width == len(CLASS_NAMES):
        return CLASS_NAMES
    if names is None or len(names) != width:
        raise BenchError(f"the model has {width} outputs and no matching class names; use a model saved by bench run")
    return tuple(names)


def predict_probs(model, images: np.ndarray) -> np.ndarray:
    """Class probabilities of every image in one prediction pass (not a Python loop of predicts): how a
    run evaluates its trained model and a tune trial scores one, on any (n, 48, 48) array of faces."""
    from bench.data.batches import predict_all  # imports Keras: not before a command's names are checked

    if len(images) == 0:
        return np.zeros((0, model.output.shape[-1]), dtype=np.float32)
    return predict_all(model, images)


def run_tta_settings(run_id: str, tracking_uri: str | None = None) -> tuple[str, int]:
    """A run's ``recipe.eval.tta`` and ``recipe.data.augment.crop_padding``: ``("none", 0)`` for runs logged
    before those fields existed."""
    from bench import tracking

    tracking.connect(tracking_uri, create=False)
    params = tracking.find_run(run_id).data.params
    tta, padding = f"{RECIPE_PREFIX}eval.tta", f"{RECIPE_PREFIX}data.augment.crop_padding"
    return params.get(tta, "none"), int(params.get(padding, 0))


class FaceClassifier:
    """Probabilities over the model's classes (FER2013's 7, FER+'s 8) for a batch of uint8 48x48 faces.

    Args:
        model: a bench model (a calibrated one returns its tempered probabilities), Keras or a loaded
            ``.onnx`` file (:func:`load_model_file`); TTA works with both, its views going through the
            same call.
        tta: ``none``, ``flip`` or ``crops``: probabilities averaged over views of each face, as the run's
            evaluation averaged them (:mod:`bench.inference.tta`); all views go through one call.
        crop_padding: the corner crops' shift for ``crops`` (the run's ``data.augment.crop_padding``).
    """

    def __init__(self, model, tta: str = "none", crop_padding: int = 0):
        from bench.backend import inference_function
        from bench.inference.tta import check_mode

        check_mode(tta, crop_padding)
        self.model = model
        self.tta, self.crop_padding = tta, crop_padding
        if is_onnx_model(model):  # its input shape was checked when it was loaded
            self.class_names, self._call = model.class_names, model
            return
        check_input_shape(model)
        self.class_names = model_class_names(model)
        self._call = inference_function(model)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """``faces``: (n, 48, 48) or (n, 48, 48, 1) uint8; returns (n, len(self.class_names)) probabilities."""
        from bench.inference.tta import VIEW_COUNTS, views

        if len(faces) == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        x = np.asarray(faces, dtype=np.float32).reshape(len(faces), *EXPECTED_INPUT)
        if self.tta == "none":
            return np.asarray(self._call(x))
        stacked = np.concatenate(list(views(x, self.tta, self.crop_padding)))
        probs = np.asarray(self._call(stacked)).reshape(VIEW_COUNTS[self.tta], len(x), -1)
        return probs.mean(axis=0)
