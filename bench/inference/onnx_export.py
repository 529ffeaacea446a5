"""``bench export --to onnx``: a trained model as an ONNX file that ONNX Runtime runs without TensorFlow.

The graph is the inference call (training=False) of :func:`bench.inference.export.export_compatible`
``(model)`` (bicubic resizes as matrix products, the calibration temperature kept), traced by TensorFlow
for any number of faces and converted by ``tf2onnx.convert.from_function``: tf2onnx is the converter
Keras itself uses for ``model.export(format="onnx")`` under TensorFlow, the maintained one for
TensorFlow graphs (onnx/tensorflow-onnx). bench calls it directly rather than through ``model.export``:
the endpoint is the explicit inference graph (as for the SavedModel, see
:func:`bench.inference.export.to_saved_model`); the class names and input shape go into the file's
metadata before it is written (:mod:`bench.inference.onnx_model`), so no half-described file exists; and
the hybrid head needs a handler ``model.export`` cannot pass (below). Measured 2026-12-07 with Keras
3.15.1 / TensorFlow 2.21: ``model.export(format="onnx")`` reproduces a baseline_cnn + linear model to
3e-8, but writes a baseline_cnn + hybrid file that ONNX Runtime refuses ("No Op registered for Erfc").

tf2onnx 1.17 and onnx 1.23 work with TensorFlow 2.21, protobuf 7 and numpy 2 for models under 2 GB
(measured 2026-12-07; its one numpy-1-only call, ``np.product``, is on the >2 GB external-data path,
which bench's models never take). One gap: TensorFlow 2.21 computes the exact GELU of the hybrid head's
transformer as ``0.5 * x * erfc(-x / sqrt(2))``, and tf2onnx has no handler for ``Erfc`` (ONNX has
``Erf`` only), so it left the TensorFlow op in the graph and ONNX Runtime refused the file. bench gives
tf2onnx the handler through its public ``custom_op_handlers``: ``erfc(x) = 1 - erf(x)``. Its float32
cancellation (what erfc exists to avoid) moves GELU by at most 8e-8 for inputs below 0 (3e-8 with erfc;
computed against float64 over [-30, 0]): far inside the export check's 1e-4.
Any op tf2onnx still leaves behind is caught by ``onnx.checker`` before a file is written.

They are the optional ``onnx`` extra: running an exported file needs only onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import INPUT_SHAPE
from bench.errors import BenchError, first_line
from bench.inference.onnx_model import model_metadata

INSTALL_EXPORTER = 'pip install "tf2onnx>=1.17" "onnx>=1.23"'
OPSET = 17  # ONNX Runtime 1.16+ runs it; tf2onnx 1.17's newest tested opset is 18


def _converter():
    try:
        import onnx
        import tf2onnx
    except ImportError as exc:
        raise BenchError(
            f"bench export --to onnx needs tf2onnx and onnx, which are not installed: {INSTALL_EXPORTER}"
        ) from exc
    return onnx, tf2onnx


def _erfc_as_one_minus_erf(ctx, node, name, args):
    """tf2onnx's old-style op handler (``custom_op_handlers={"Erfc": (this, [])}``): the node becomes
    ONNX ``Erf`` and a ``Sub(1, erf)`` takes over its consumers (tf2onnx's own ``Rsqrt`` handler's pattern)."""
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    node.type = "Erf"
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype=dtype))
    sub = ctx.insert_new_node_on_output(
        "Sub", node.output[0], inputs=[one.output[0], node.output[0]], name=utils.make_name(name)
    )
    ctx.copy_shape(node.output[0], sub.output[0])
    return node


def to_onnx(model, out: Path, class_names, temperature: float = 1.0) -> Path:
    """Write ``model`` to ``out`` as ONNX (any batch size) with bench's metadata; raises BenchError when
    tf2onnx cannot convert the graph."""
    import tensorflow as tf

    from bench.inference.export import export_compatible

    onnx, tf2onnx = _converter()
    compatible = export_compatible(model)
    spec = tf.TensorSpec((None, *INPUT_SHAPE), tf.float32, name="faces")
    serve = tf.function(lambda faces: compatible(faces, training=False), input_signature=[spec])
    handlers = {"Erfc": (_erfc_as_one_minus_erf, [])}
    try:
        proto, _ = tf2onnx.convert.from_function(
            serve, input_signature=[spec], opset=OPSET, custom_op_handlers=handlers
        )
        onnx.checker.check_model(proto)  # tf2onnx keeps ops it cannot convert: ONNX Runtime would refuse them
    except Exception as exc:
        raise BenchError(f"ONNX conversion failed: {first_line(exc)}") from exc
    onnx.helper.set_model_props(proto, model_metadata(class_names, temperature))
    onnx.save(proto, str(out))
    return out
