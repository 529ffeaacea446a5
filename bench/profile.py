"""Cost of a model, measured the same way for every backbone: parameters, FLOPs, training and
inference throughput, batch-1 latency, peak memory, file size, and the fraction of this machine's
practical peak FLOP/s that training achieves. Returns dicts; the CLI renders them."""

from __future__ import annotations

import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import INPUT_SHAPE
from bench import run_record as rec
from bench.data.cache import cache_dir

_NO_FLOPS = "not measured: FLOPs are counted by TensorFlow's graph profiler (KERAS_BACKEND=tensorflow)"


def forward_flops(model, image_shape=INPUT_SHAPE) -> int | None:
    """Forward FLOPs for one image, counted from the TensorFlow graph of the inference call (the
    profiler counts 2 per multiply-add in convolutions and matmuls, plus elementwise ops it knows).
    None (not measured) under another Keras backend: the count needs TensorFlow's graph profiler."""
    from bench.backend import is_tensorflow

    if not is_tensorflow():
        return None
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec((1, *image_shape), tf.float32)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops)


def peak_matmul_flops(size: int = 2048, repeats: int = 10, refresh: bool = False) -> float:
    """Practical float32 peak of this machine under the Keras backend in use: a large matmul's FLOP/s,
    measured once per backend and cached."""
    import keras
    from keras import ops

    from bench.backend import backend_name
    from bench.runtime import onednn_enabled

    key = f"{platform.node()}-{platform.machine()}-{size}-onednn{int(onednn_enabled())}"
    if backend_name() != "tensorflow":  # keeps the keys TensorFlow runs cached before
        key += f"-{backend_name()}"
    path = cache_dir() / "peak_flops.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    if key in cached and not refresh:
        return float(cached[key])
    a = keras.random.normal((size, size))
    ops.convert_to_numpy(ops.matmul(a, a))
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        ops.convert_to_numpy(ops.matmul(a, a))
        times.append(time.perf_counter() - tic)
    peak = 2 * size**3 / float(np.median(times))
    path.write_text(json.dumps({**cached, key: peak}))
    return peak


def _median_step_seconds(step, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        tic = time.perf_counter()
        step()
        times.append(time.perf_counter() - tic)
    return float(np.median(times))


def latency_ms(model, warmup: int = 5, steps: int = 30) -> tuple[float, float]:
    """Batch-1 latency (p50, p95) of a compiled call — not ``model.predict``, which adds ~50 ms a call."""
    from bench.backend import inference_function

    fn = inference_function(model)
    x = np.random.default_rng(0).integers(0, 256, (1, *INPUT_SHAPE)).astype("float32")
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(steps):
        tic = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - tic) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def throughput(model, *, train_batch: int = 32, infer_batch: int = 64, warmup: int = 3, steps: int = 10):
    """(training images/s, inference images/s): medians of timed steps after warm-up."""
    import keras

    from bench.backend import inference_function

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (max(train_batch, infer_batch), *INPUT_SHAPE)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 7, len(x)), 7)
    model.compile(keras.optimizers.AdamW(1e-4), "categorical_crossentropy", jit_compile=_profile_jit())
    train = _median_step_seconds(lambda: model.train_on_batch(x[:train_batch], y[:train_batch]), warmup, steps)
    fn = inference_function(model)
    batch = x[:infer_batch]
    infer = _median_step_seconds(lambda: fn(batch), warmup, steps)
    return train_batch / train, infer_batch / infer


def _profile_jit() -> bool:
    """XLA off under TensorFlow (2-9x slower on the CPUs measured); on under JAX, which without jit runs
    every op eagerly."""
    from bench.backend import backend_name

    return backend_name() == "jax"


def file_size_mb(model) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.stat().st_size / 2**20


def trainable_per_phase(model, recipe, pretrained: bool) -> dict[str, int]:
    """Trainable parameters in each phase of a recipe."""
    from bench.freezing import apply_phase_trainability

    counts = {}
    for phase in recipe.phases:
        apply_phase_trainability(model, phase.train, phase.band, pretrained=pretrained)
        counts[phase.name] = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    apply_phase_trainability(model, "all", (0.0, 1.0), pretrained=pretrained)
    return counts


def profile(
    backbone: str,
    head: str = "hybrid",
    *,
    image_size: int = 48,
    recipe_name: str = "cpu",
    train_batch: int = 32,
    infer_batch: int = 64,
    warmup: int = 3,
    steps: int = 10,
    precision: str = "float32",
) -> dict:
    """Every cost figure of ``backbone + head`` at ``image_size`` (raised to the backbone's minimum),
    under the Keras dtype policy ``precision`` (float32, mixed_bfloat16 or mixed_float16), with the head
    and backbone options, BatchNorm kernel (``model.batchnorm``) and TensorFlow thread counts
    (``run.threads_intra`` / ``run.threads_inter``) of ``recipe_name``:
    the threads are set before the model's build runs TensorFlow's first op, as ``bench run`` sets them."""
    import keras

    from bench.backend import is_tensorflow
    from bench.models import build_model
    from bench.recipe_load import load_recipe
    from bench.runtime import onednn_enabled, set_threads
    from bench.train.known_faults import refuse_onednn_faults

    recipe = load_recipe(recipe_name)
    set_threads(recipe.run.threads_intra, recipe.run.threads_inter)
    model, spec = build_model(
        backbone=backbone,
        head=head,
        image_size=image_size,
        head_options=recipe.model.head_options.get(head, {}),
        backbone_options=recipe.model.backbone_options.get(backbone, {}),
        batchnorm=recipe.model.batchnorm,  # "fused" changes the step's cost, not its math
        precision=precision,
    )
    refuse_onednn_faults(model)  # its training steps would crash the process
    flops = forward_flops(model)
    train_ips, infer_ips = throughput(
        model, train_batch=train_batch, infer_batch=infer_batch, warmup=warmup, steps=steps
    )
    p50, p95 = latency_ms(model)
    peak = peak_matmul_flops()
    result = {
        "backbone": backbone,
        "head": head,
        "image_size": spec.image_size,
        "precision": precision,
        "batchnorm": spec.batchnorm,  # the kernel built ("auto" resolved): it changes the step's cost
        "onednn": onednn_enabled() and is_tensorflow(),  # TensorFlow's option: false under JAX or PyTorch
        rec.PARAMS_TOTAL: int(model.count_params()),
        "params_trainable_per_phase": trainable_per_phase(model, recipe, pretrained=False),
        rec.FLOPS_PER_IMAGE: flops,
        "flops_method": "TensorFlow graph profiler, forward pass" if flops is not None else _NO_FLOPS,
        rec.TRAIN_IMAGES_PER_SECOND: train_ips,
        "infer_images_per_second": infer_ips,
        rec.LATENCY_P50: p50,
        rec.LATENCY_P95: p95,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        rec.KERAS_FILE_MB: file_size_mb(model),
        "machine_peak_gflops": peak / 1e9,
        # Training costs ~3x the forward pass (forward + two backward matmuls per layer).
        "train_fraction_of_peak": 3 * flops * train_ips / peak if flops is not None else float("nan"),
    }
    keras.backend.clear_session()
    return result
