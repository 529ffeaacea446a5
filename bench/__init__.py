"""bench: a backbone benchmarking harness for facial emotion recognition."""

from bench.runtime import configure_tensorflow_environment as _configure_tensorflow_environment

_configure_tensorflow_environment()  # before anything imports TensorFlow; see bench/runtime.py

__version__ = "0.1.0"

CLASS_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013's seven classes in the canonical label order (label i is CLASS_NAMES[i])."""

NUM_CLASSES = len(CLASS_NAMES)

FACE_SIZE = 48
"""Side in pixels of every face bench stores and every model takes (FER2013's size)."""

INPUT_SHAPE: tuple[int, int, int] = (FACE_SIZE, FACE_SIZE, 1)
"""What every bench model takes: one raw 0-255 grayscale face; resizing and channels happen inside."""
