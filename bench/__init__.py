"""bench: a backbone benchmarking harness for facial emotion recognition."""

__version__ = "0.1.0"

CLASS_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013's seven classes in the canonical label order (label i is CLASS_NAMES[i])."""

NUM_CLASSES = len(CLASS_NAMES)
