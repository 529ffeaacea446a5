"""Training speed on CPU: every backbone under each setting bench can choose, or the speed ratios of issue 13.

Table mode (the default): for each backbone + hybrid head, each oneDNN setting (``TF_ENABLE_ONEDNN_OPTS``
0 / 1, read by TensorFlow at import, hence one child process per setting) and each precision (float32,
mixed_bfloat16): steady-state training images/s at the cpu recipe's image size, batch 32 (median of timed
``train_on_batch`` steps after warm-up). Prints one table.

    python benchmarks/cpu_speed.py [--backbone NAME ...] [--steps 8] [--warmup 3]

Ratios mode (``--ratios``): steady-state training ms/step at batch 64, each case against its default:

- ``run.steps_per_execution`` 1 vs 4 vs 16, and TensorFlow's threads default vs (intra 2, inter 1) vs
  (intra 1, inter 1), for baseline_cnn+mlp, baseline_cnn+hybrid, mini_xception+conv_gap and
  mobilenet_v3_small+hybrid (one factor at a time: the default is steps 1, default threads);
- baseline_cnn+hybrid over baseline_cnn+mlp at each steps_per_execution (target: at most 1.5);
- baseline_cnn+hybrid with the hybrid head's ``formulation = "matmul"`` (the attention layers' same math as
  fewer ops, ``bench/heads/layers.py``) vs its default ``"keras"``, and over baseline_cnn+mlp;
- a bare Keras CNN (baseline_cnn's four conv blocks, GAP, softmax) with Keras' BatchNormalization vs the
  same with a fused BatchNorm (``tf.compat.v1.nn.fused_batch_norm`` in a small layer defined here only)
  vs no BatchNorm.

How: TensorFlow fixes its thread pools when its runtime starts, so each thread setting gets its own
worker process (bench's oneDNN default on). Workers stay alive and are driven over a pipe, only one
running at a time: every case is built and traced once (the ``prepare`` lines), then timed in rounds,
one block per case per round with the order rotated each round, so load drift hits every case alike;
ratios are taken within a round, then the median over rounds. A block is ``model.fit`` on the
Trainer's training stream (the cpu recipe, batch 64, on synthetic faces; ``run.steps_per_epoch`` 144 so
every steps_per_execution divides it), compiled by ``bench.train.compile_phase`` (AdamW, cosine
schedule) with the Trainer's per-batch callbacks (NanGuard, StepTimer). Its ms/step is StepTimer's
steady-state figure (input wait and callback time included) after one warm-up call.

    python benchmarks/cpu_speed.py --ratios [--rounds 3] [--steps 16] [--warmup 2] [--json FILE]
        [--pair baseline_cnn+mlp ...] [--spe 1 --spe 4 ...] [--threads 2/1 ...] [--skip-bare] [--quick]
        [--cases REGEX]

``--cases`` keeps only the cases whose name matches (``re.search``) and the cases they are divided by, e.g.
the formulation comparison alone (3 cases, about 2-3 minutes idle: 3 prepares of 5-16 s, then 3 rounds of
3 blocks of 18 steps at 130-210 ms):

    python benchmarks/cpu_speed.py --ratios --cases "formulation|mlp spe1$" --json benchmarks/formulation.json

Duration of the default ratios run on an idle 2-core machine, estimated from step counts: 24 cases.
Preparing them (build, trace, one warm-up call) took 2-40 s each, 350 s in all, in a ``--quick`` smoke
run at nice 19 beside a training job (mobilenet_v3_small+hybrid ~35 s each, the baseline and
mini_xception 5-16 s, the bare CNN 2-6 s): at most ~6 minutes idle. Then 3 rounds of ~106 steps per
model pair (18-32 per block) at 130-210 ms, plus 18 for baseline_cnn+hybrid's matmul formulation, plus the
bare CNN: ~85 s a round. About 10 minutes in all.
``--quick`` (2 warm-up + 3 timed steps, rounded up to whole calls, 1 round) is for smoke tests only; its
figures mean nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CHILD = """
import json, sys
import keras
from bench.config import load_recipe
from bench.models import build_model
from bench.profile import throughput
backbone, precision, warmup, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
recipe = load_recipe("cpu")
model, spec = build_model(backbone=backbone, head="hybrid", image_size=recipe.data.image_size,
                          head_options=recipe.model.head_options["hybrid"], precision=precision)
train, infer = throughput(model, warmup=warmup, steps=steps)
print(json.dumps({"train": train, "infer": infer, "size": spec.image_size}))
"""


def measure(backbone: str, onednn: str, precision: str, warmup: int, steps: int) -> dict:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, backbone, precision, str(warmup), str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def table_mode(args) -> None:
    backbones = args.backbone or ["baseline_cnn", "mobilenet_v3_small", "resnet50", "efficientnet_b3", "xception"]
    settings = [("0", "float32"), ("1", "float32"), ("0", "mixed_bfloat16"), ("1", "mixed_bfloat16")]
    header = ["backbone + hybrid", "px"] + [f"oneDNN {o} {p}" for o, p in settings]
    print(" | ".join(header), flush=True)
    for backbone in backbones:
        cells, size = [], ""
        for onednn, precision in settings:
            result = measure(backbone, onednn, precision, args.warmup or 3, args.steps or 8)
            cells.append(f"{result['train']:.1f}")
            size = str(result["size"])
        print(" | ".join([backbone, size, *cells]), flush=True)


# ----------------------------------------------------------------------------- ratios: the cases

PAIRS = ("baseline_cnn+mlp", "baseline_cnn+hybrid", "mini_xception+conv_gap", "mobilenet_v3_small+hybrid")
BARE = ("keras", "fused", "none")  # the bare CNN's BatchNorm: Keras' layer, fused, none
SYNTHETIC = "synthetic:1200:0"
STEPS_PER_EPOCH = 144  # the schedule's epoch length: a multiple of 1, 4 and 16 (the cpu recipe's 150 is not)
FORMULATION_PAIRS = ("baseline_cnn+hybrid",)  # also timed with the head's formulation = "matmul"


@dataclass(frozen=True)
class Case:
    name: str
    model: str  # "backbone+head", or "bare:keras" / "bare:fused" / "bare:none"
    spe: int  # steps_per_execution
    threads: tuple[int, int]  # (intra, inter); 0 = TensorFlow's default
    reference: str  # the case this one is divided by
    formulation: str = "keras"  # the hybrid head's formulation option ("keras" is its default)

    @property
    def threads_label(self) -> str:
        return "default" if self.threads == (0, 0) else "{}/{}".format(*self.threads)


def ratio_cases(pairs, spes, threads, bare: bool) -> list[Case]:
    """One factor at a time against each model's default (steps_per_execution 1, default threads)."""
    cases = []
    for pair in pairs:
        default = f"{pair} spe1"
        cases += [Case(f"{pair} spe{n}", pair, n, (0, 0), default) for n in sorted({1, *spes})]
        cases += [Case(f"{pair} threads {i}/{j}", pair, 1, (i, j), default) for i, j in threads]
        if pair in FORMULATION_PAIRS:
            cases.append(Case(f"{pair} formulation matmul", pair, 1, (0, 0), default, formulation="matmul"))
    if bare:
        cases += [
            Case(f"bare CNN, {bn} BatchNorm", f"bare:{bn}", 1, (0, 0), "bare CNN, keras BatchNorm") for bn in BARE
        ]
    return cases


def select(cases: list[Case], pattern: str) -> list[Case]:
    """The cases whose name matches ``pattern`` (``re.search``) and the cases they are divided by, in order."""
    keep = {c.name for c in cases if re.search(pattern, c.name)}
    keep |= {c.reference for c in cases if c.name in keep}
    return [c for c in cases if c.name in keep]


def whole_calls(steps: int, spe: int) -> int:
    """``steps`` rounded up to whole calls of ``spe`` steps: a ``fit`` on a repeating stream runs whole calls."""
    return -(-steps // spe) * spe


# ----------------------------------------------------------------------------- ratios: the worker


def bare_cnn(batch_norm: str):
    """baseline_cnn's four conv blocks (32-256 filters, pooling after three) + GAP + softmax, no bench head."""
    import keras
    from keras import layers

    inputs = keras.Input((48, 48, 1))
    x = layers.Rescaling(1 / 255)(inputs)
    for i, width in enumerate((32, 64, 128, 256)):
        x = layers.Conv2D(width, 3, padding="same", use_bias=batch_norm == "none")(x)
        if batch_norm == "keras":
            x = layers.BatchNormalization(momentum=0.9)(x)
        elif batch_norm == "fused":
            x = fused_batch_norm_layer()()(x)
        x = layers.Activation("relu")(x)
        if i < 3:
            x = layers.MaxPooling2D(2)(x)
    outputs = layers.Dense(7, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs, name=f"bare_cnn_{batch_norm}")


@functools.cache
def fused_batch_norm_layer():
    """The fused BatchNorm layer class, defined on first use: Keras and TensorFlow load in workers only."""
    import keras
    import tensorflow as tf

    class FusedBatchNorm(keras.layers.Layer):
        """BatchNorm over the channels of NHWC float32 input as TensorFlow's one fused kernel
        (``FusedBatchNormV3``) instead of Keras 3's separate mean/variance/normalise ops.
        Momentum 0.9 and epsilon 1e-3, as baseline_cnn's Keras layer. Benchmark only: a model holding
        ``tf.*`` calls does not load elsewhere."""

        def build(self, input_shape):
            channels = input_shape[-1]
            self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta")
            self.moving_mean = self.add_weight(shape=(channels,), initializer="zeros", trainable=False)
            self.moving_variance = self.add_weight(shape=(channels,), initializer="ones", trainable=False)

        def call(self, x, training=False):
            if not training:
                y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                    x, self.gamma, self.beta, self.moving_mean, self.moving_variance, 1e-3, is_training=False
                )
                return y
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, self.gamma, self.beta, epsilon=1e-3)
            self.moving_mean.assign(0.9 * self.moving_mean + 0.1 * mean)
            self.moving_variance.assign(0.9 * self.moving_variance + 0.1 * variance)
            return y

    return FusedBatchNorm


class Prepared:
    """One case in a worker: its model, compiled as bench compiles it, and the Trainer's training stream."""

    def __init__(self, case: dict, batch: int, data):
        from bench.config import load_recipe
        from bench.train import Trainer, build_for_recipe, compile_phase, prepare_splits, seed_everything

        self.spe, self.batch = case["spe"], batch
        bare = case["model"].startswith("bare:")
        backbone, _, head = ("baseline_cnn+mlp" if bare else case["model"]).partition("+")
        overrides = [f"data.batch_size={batch}", f"run.steps_per_epoch={STEPS_PER_EPOCH}"]
        overrides += [f"run.steps_per_execution={self.spe}", "run.budget_minutes=0"]
        overrides += [f"run.threads_intra={case['threads'][0]}", f"run.threads_inter={case['threads'][1]}"]
        if case["formulation"] != "keras":  # only then: the default leaves the recipe (and its hash) as it is
            overrides.append(f"model.head_options.{head}.formulation={case['formulation']}")
        values = {"model.backbone": backbone, "model.head": head, "data.source": SYNTHETIC}
        recipe = load_recipe("cpu", overrides, values)
        if bare:
            seed_everything(recipe.run.seed, deterministic=False)
            model = bare_cnn(case["model"].removeprefix("bare:"))
        else:
            model = build_for_recipe(recipe, data.class_names)[0]  # threads (already set), seed, the model
        trainer = Trainer(model, recipe, prepare_splits(data, recipe))  # for its stream: bench's tf.data pipeline
        phase = recipe.phases[0]
        compile_phase(
            model,
            phase,
            steps_per_epoch=trainer.steps_per_epoch,
            epochs=phase.epochs,
            jit_compile=trainer.jit,
            steps_per_execution=self.spe,
        )
        self.model, self.stream = model, trainer.train_plain

    def block(self, warmup: int, steps: int) -> dict:
        """Train ``warmup`` then ``steps`` steps (each rounded up to whole calls); StepTimer's figures."""
        from bench.callbacks import NanGuard, StepTimer

        skip, timed = whole_calls(warmup, self.spe), whole_calls(steps, self.spe)
        timer = StepTimer(self.batch, warmup=skip, steps_per_execution=self.spe)
        tic = time.perf_counter()
        self.model.fit(self.stream, steps_per_epoch=skip + timed, epochs=1, callbacks=[NanGuard(), timer], verbose=0)
        return {
            "ms_per_step": 1000 * timer.seconds_per_step,
            "input_wait": timer.input_wait_fraction,
            "wall_s": time.perf_counter() - tic,
        }


def worker(intra: int, inter: int) -> None:
    """Serve ``prepare`` / ``time`` requests, one JSON line each on stdin, one JSON line back each."""
    from bench.runtime import set_threads

    set_threads(intra, inter)  # before anything runs an op: TensorFlow reads them when it starts
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed goes to the worker's log, not into the replies
    from bench.data import load_data

    data, cases = load_data(SYNTHETIC), {}
    for line in sys.stdin:
        request = json.loads(line)
        tic = time.perf_counter()
        try:
            case = request["case"]
            if request["op"] == "prepare":
                cases[case["name"]] = Prepared(case, request["batch"], data)
                reply = cases[case["name"]].block(request["warmup"], 0)  # the trace, the first call
            else:
                reply = cases[case["name"]].block(request["warmup"], request["steps"])
        except Exception as exc:  # reported to the parent, which drops the case and goes on
            reply = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        reply["seconds"] = time.perf_counter() - tic
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


# ----------------------------------------------------------------------------- ratios: the parent


class Workers:
    """One worker process per thread setting, started on first use, each logging to its own file."""

    def __init__(self, folder: Path):
        self.folder, self.procs, self.logs = folder, {}, {}

    def ask(self, threads: tuple[int, int], request: dict) -> dict:
        proc = self.procs.get(threads)
        if proc is None:
            log = self.folder / "worker_{}_{}.log".format(*threads)
            self.logs[threads] = log
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
            cmd = [sys.executable, __file__, "--worker", str(threads[0]), str(threads[1])]
            with log.open("w") as err:
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env
                )
            self.procs[threads] = proc
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            tail = self.logs[threads].read_text()[-2000:]
            raise RuntimeError(f"worker {threads} died (exit {proc.wait()}); its log ends:\n{tail}")
        return json.loads(line)

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stdin.close()
        for proc in self.procs.values():
            proc.wait(timeout=60)


def run_ratios(cases: list[Case], *, batch: int, warmup: int, steps: int, rounds: int) -> dict[str, list[dict]]:
    """Prepare every case, then time them in ``rounds`` interleaved rounds: case name -> one dict per round."""
    results: dict[str, list[dict]] = {c.name: [] for c in cases}
    with tempfile.TemporaryDirectory(prefix="cpu_speed_") as tmp:
        workers = Workers(Path(tmp))
        try:
            live = []
            for case in cases:
                request = {"op": "prepare", "case": asdict(case), "batch": batch, "warmup": warmup}
                reply = workers.ask(case.threads, request)
                if "error" in reply:
                    print(f"prepare {case.name}: FAILED {reply['error']}", flush=True)
                    continue
                print(f"prepare {case.name} (threads {case.threads_label}): {reply['seconds']:.1f} s", flush=True)
                live.append(case)
            for r in range(rounds):
                shift = r % max(1, len(live))
                for case in live[shift:] + live[:shift]:
                    request = {"op": "time", "case": asdict(case), "warmup": warmup, "steps": steps}
                    reply = workers.ask(case.threads, request)
                    if "error" in reply:
                        print(f"round {r + 1}/{rounds} {case.name}: FAILED {reply['error']}", flush=True)
                        continue
                    results[case.name].append({"round": r, **reply})
                    print(f"round {r + 1}/{rounds} {case.name}: {reply['ms_per_step']:.1f} ms/step", flush=True)
        finally:
            workers.close()
    return results


def same_round_ratio(results: dict[str, list[dict]], case: str, reference: str) -> float:
    """Median over rounds of ``case``'s ms/step over ``reference``'s in the same round (NaN if none)."""
    mine = {m["round"]: m["ms_per_step"] for m in results.get(case, [])}
    ref = {m["round"]: m["ms_per_step"] for m in results.get(reference, [])}
    ratios = [mine[r] / ref[r] for r in mine if r in ref]
    return statistics.median(ratios) if ratios else math.nan


def summarize(cases: list[Case], results: dict[str, list[dict]]) -> list[dict]:
    """Per case: median ms/step over rounds, its spread, and the median over rounds of the same-round
    ratio to its reference (NaN where either is missing)."""
    rows = []
    for case in cases:
        values = [m["ms_per_step"] for m in results[case.name]]
        waits = [m["input_wait"] for m in results[case.name]]
        median = statistics.median(values) if values else math.nan
        rows.append(
            {
                **asdict(case),
                "ms_per_step": values,
                "median_ms": median,
                "spread": (max(values) - min(values)) / median if values else math.nan,
                "input_wait": statistics.median(waits) if waits else math.nan,
                "ratio": same_round_ratio(results, case.name, case.reference),
            }
        )
    return rows


def hybrid_over_mlp(results: dict[str, list[dict]], spes) -> dict[int, float]:
    """baseline_cnn+hybrid's step over baseline_cnn+mlp's, same round, median over rounds, per spe."""
    out = {}
    for n in sorted({1, *spes}):
        ratio = same_round_ratio(results, f"baseline_cnn+hybrid spe{n}", f"baseline_cnn+mlp spe{n}")
        if not math.isnan(ratio):
            out[n] = ratio
    return out


def formulations_over_mlp(results: dict[str, list[dict]]) -> dict[str, float]:
    """baseline_cnn+hybrid's step over baseline_cnn+mlp's at steps_per_execution 1, per formulation."""
    cases = {"keras": "baseline_cnn+hybrid spe1", "matmul": "baseline_cnn+hybrid formulation matmul"}
    ratios = {f: same_round_ratio(results, name, "baseline_cnn+mlp spe1") for f, name in cases.items()}
    return {f: ratio for f, ratio in ratios.items() if not math.isnan(ratio)}


def print_table(rows: list[dict], hybrid: dict[int, float], formulations: dict[str, float]) -> None:
    print("\ncase | threads | ms/step (median) | spread | input wait | ratio vs default", flush=True)
    for row in rows:
        threads = "default" if tuple(row["threads"]) == (0, 0) else "{}/{}".format(*row["threads"])
        print(
            f"{row['name']} | {threads} | {row['median_ms']:.1f} | {100 * row['spread']:.0f} % | "
            f"{100 * row['input_wait']:.0f} % | {row['ratio']:.3f}",
            flush=True,
        )
    for n, ratio in hybrid.items():
        print(f"baseline_cnn hybrid / mlp step, steps_per_execution {n}: {ratio:.3f} (target <= 1.5)", flush=True)
    for formulation, ratio in formulations.items():
        print(f"baseline_cnn hybrid ({formulation}) / mlp step, steps_per_execution 1: {ratio:.3f}", flush=True)


def ratios_mode(args) -> None:
    quick = args.quick
    warmup = args.warmup if args.warmup is not None else 2
    steps = args.steps if args.steps is not None else (3 if quick else 16)
    rounds = args.rounds if args.rounds is not None else (1 if quick else 3)
    spes = args.spe or [1, 4, 16]
    threads = [tuple(int(v) for v in t.split("/")) for t in (args.threads or ["2/1", "1/1"])]
    cases = ratio_cases(args.pair or list(PAIRS), spes, threads, bare=not args.skip_bare)
    if args.cases:
        cases = select(cases, args.cases)
    print(
        f"{len(cases)} cases, batch {args.batch}, {rounds} round(s) of {warmup} warm-up + {steps} timed steps "
        "(whole calls)",
        flush=True,
    )
    tic = time.perf_counter()
    results = run_ratios(cases, batch=args.batch, warmup=warmup, steps=steps, rounds=rounds)
    rows, hybrid = summarize(cases, results), hybrid_over_mlp(results, spes)
    formulations = formulations_over_mlp(results)
    print_table(rows, hybrid, formulations)
    print(f"total {time.perf_counter() - tic:.0f} s", flush=True)
    if args.json:
        settings = {"batch": args.batch, "warmup": warmup, "steps": steps, "rounds": rounds, "quick": quick}
        payload = {"settings": settings, "cases": rows, "hybrid_over_mlp": hybrid, "cpu_count": os.cpu_count()}
        payload["hybrid_over_mlp_by_formulation"] = formulations
        Path(args.json).write_text(json.dumps(payload, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", action="append", default=None, help="table mode: backbones to measure")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (table 3, ratios 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (table 8, ratios 16 per round)")
    parser.add_argument("--ratios", action="store_true", help="the speed ratios of issue 13 (see above)")
    parser.add_argument("--pair", action="append", default=None, help="ratios: backbone+head (default: four)")
    parser.add_argument("--spe", action="append", type=int, default=None, help="ratios: steps_per_execution")
    parser.add_argument("--threads", action="append", default=None, help="ratios: INTRA/INTER (default 2/1, 1/1)")
    parser.add_argument("--skip-bare", action="store_true", help="ratios: leave out the bare CNN cases")
    parser.add_argument("--cases", default=None, help="ratios: only cases matching this regex (+ their references)")
    parser.add_argument("--rounds", type=int, default=None, help="ratios: interleaved rounds (default 3)")
    parser.add_argument("--batch", type=int, default=64, help="ratios: batch size")
    parser.add_argument("--quick", action="store_true", help="ratios: 2 warm-up + 3 timed steps, 1 round")
    parser.add_argument("--json", default=None, help="ratios: also write the figures to this file")
    parser.add_argument("--worker", nargs=2, type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(*args.worker)
    elif args.ratios:
        ratios_mode(args)
    else:
        table_mode(args)


if __name__ == "__main__":
    main()
