"""Speed ratios of issue 13 on CPU: steady-state training ms/step at batch 64, each case against its default.

- ``run.steps_per_execution`` 1 vs 4 vs 16, and TensorFlow's threads default vs (intra 2, inter 1) vs
  (intra 1, inter 1), for baseline_cnn+mlp, baseline_cnn+hybrid, mini_xception+conv_gap and
  mobilenet_v3_small+hybrid (one factor at a time: the default is steps 1, default threads);
- baseline_cnn+hybrid over baseline_cnn+mlp at each steps_per_execution (target: at most 1.5);
- baseline_cnn+hybrid with the hybrid head's ``formulation = "matmul"`` (the attention layers' same math as
  fewer ops, ``bench/heads/layers.py``) vs its default ``"keras"``, and over baseline_cnn+mlp;
- baseline_cnn+hybrid with smaller hybrid heads (``HEAD_SIZES``: FFN multiplier 2 or 1, projection width 128),
  each also with fused BatchNorm, vs the reference head (``REFERENCE_HEAD``: 256 wide, the cpu recipe's when
  issue 13 was filed; the speed-up: issue 13 asks 2x for this pair), and
  each over baseline_cnn+mlp with the same BatchNorm (target: at most 1.5). These change the model,
  so a size that meets the target still needs its own accuracy evidence before a recipe takes it;
- each pair with ``model.batchnorm = "fused"`` (TensorFlow's fused BatchNorm kernel, the same math), with
  ``model.precision = "mixed_bfloat16"``, and with both, against its default (Keras' BatchNorm, float32);
  and baseline_cnn+hybrid over baseline_cnn+mlp with fused BatchNorm on both;
- a bare Keras CNN (baseline_cnn's four conv blocks, GAP, softmax) with Keras' BatchNormalization vs the
  same with bench's fused BatchNorm (:class:`bench.batchnorm.FusedBatchNormalization`, what
  ``model.batchnorm = "fused"`` swaps in) vs no BatchNorm. (Session 5's figures, benchmarks/LOG.md#log-speed-ratios,
  came from a stand-alone fused layer this script held before that class existed: the same TensorFlow kernel.)

How: TensorFlow fixes its thread pools when its runtime starts, so each thread setting gets its own
worker process (bench's oneDNN default on). Workers stay alive and are driven over a pipe, only one
running at a time: every case is built and traced once (the ``prepare`` lines), then timed in rounds,
one block per case per round with the order rotated each round, so load drift hits every case alike;
ratios are taken within a round, then the median over rounds. A block is ``model.fit`` on the
Trainer's training stream (the cpu recipe, batch 64, on synthetic faces; ``run.steps_per_epoch`` 144,
which bench requires steps_per_execution to divide: ``--spe`` refuses non-divisors), compiled by
``bench.train.compile_phase`` (AdamW, cosine schedule) with the Trainer's per-batch callbacks (NanGuard,
StepTimer). Its ms/step is StepTimer's steady-state figure (input wait and callback time included) after
the block's warm-up steps, rounded up to whole calls.

    python benchmarks/speed_ratios.py [--rounds 3] [--steps 16] [--warmup 2] [--json FILE] [--quick]
        [--pair baseline_cnn+mlp ...] [--spe 1 --spe 4 ...] [--threads 2/1 ...] [--skip-bare] [--cases REGEX]

or, as before this moved out of cpu_speed.py, ``python benchmarks/cpu_speed.py --ratios ...``.

``--cases`` keeps only the cases whose name matches (``re.search``) and the cases they are divided by, e.g.
the formulation comparison alone (3 cases, about 2-3 minutes idle: 3 prepares of 5-16 s, then 3 rounds of
3 blocks of 18 steps at 130-210 ms), or the BatchNorm kernel and precision cases alone (16 cases):

    python benchmarks/speed_ratios.py --cases "formulation|mlp spe1$" --json benchmarks/formulation.json
    python benchmarks/speed_ratios.py --cases "fused|bf16" --skip-bare --json benchmarks/batchnorm.json
    python benchmarks/speed_ratios.py --cases "head |baseline_cnn.(mlp|hybrid) fused BN$" --skip-bare --json heads.json

Duration of the default run on an idle 2-core machine, estimated from step counts: 24 cases before the
BatchNorm/precision cases (36 with them: add about half again).
Preparing them (build, trace, the warm-up steps) took 2-40 s each, 350 s in all, in a ``--quick`` smoke
run at nice 19 beside a training job (mobilenet_v3_small+hybrid ~35 s each, the baseline and
mini_xception 5-16 s, the bare CNN 2-6 s): at most ~6 minutes idle. Then 3 rounds of ~106 steps per
model pair (18-32 per block) at 130-210 ms, plus 18 for baseline_cnn+hybrid's matmul formulation, plus the
bare CNN: ~85 s a round. About 10 minutes in all.
``--quick`` (2 warm-up + 3 timed steps, rounded up to whole calls, 1 round) is for smoke tests only; its
figures mean nothing.
"""

from __future__ import annotations

import argparse
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

# ----------------------------------------------------------------------------- the cases

PAIRS = ("baseline_cnn+mlp", "baseline_cnn+hybrid", "mini_xception+conv_gap", "mobilenet_v3_small+hybrid")
BARE = ("keras", "fused", "none")  # the bare CNN's BatchNorm: Keras' layer, fused, none
SYNTHETIC = "synthetic:1200:0"
STEPS_PER_EPOCH = 144  # the schedule's epoch length: --spe must divide it (1, 4 and 16 do; the cpu recipe's 150 not)
FORMULATION_PAIRS = ("baseline_cnn+hybrid",)  # also timed with the head's formulation = "matmul"
# Smaller hybrid heads, timed on baseline_cnn (issue 13: the head's step at most 1.5x the mlp head's). The
# reference head is projection_dim 256, ffn_multiplier 4 (the cpu recipe's is 128 wide since session 13); the
# head's FLOPs are mostly its FFN and its attention projections, both quadratic in the projection width.
HEAD_SIZES = {
    "ffn 2": (("projection_dim", 256), ("ffn_multiplier", 2.0)),
    "ffn 1": (("projection_dim", 256), ("ffn_multiplier", 1.0)),
    "projection 128": (("projection_dim", 128),),
    "projection 128 ffn 2": (("projection_dim", 128), ("ffn_multiplier", 2.0)),
}
HEAD_SIZE_PAIR = "baseline_cnn+hybrid"
# The hybrid head every case is measured with unless the case sets its own: the cpu recipe's head when issue 13
# was filed (256 wide; the recipe's is 128 since session 13), so "vs default" stays a ratio against that day.
REFERENCE_HEAD = (("projection_dim", 256),)
KERNEL_PRECISION = (("fused", "float32"), ("keras", "mixed_bfloat16"), ("fused", "mixed_bfloat16"))  # per pair
PRECISION_LABELS = {"float32": "", "mixed_bfloat16": "bf16"}


@dataclass(frozen=True)
class Case:
    name: str
    model: str  # "backbone+head", or "bare:keras" / "bare:fused" / "bare:none"
    spe: int  # steps_per_execution
    threads: tuple[int, int]  # (intra, inter); 0 = TensorFlow's default
    reference: str  # the case this one is divided by
    formulation: str = "keras"  # the hybrid head's formulation option ("keras" is its default)
    batchnorm: str = "keras"  # model.batchnorm: Keras' layer (the default) or TensorFlow's fused kernel
    precision: str = "float32"  # model.precision: a Keras dtype policy (float32 = the CPU default)
    head_options: tuple = ()  # (name, value) pairs set on the head on top of the recipe's

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
        if pair == HEAD_SIZE_PAIR:
            for size, options in HEAD_SIZES.items():
                for bn, label in (("keras", ""), ("fused", " fused BN")):
                    name = f"{pair} head {size}{label}"
                    cases.append(Case(name, pair, 1, (0, 0), default, batchnorm=bn, head_options=options))
        for bn, precision in KERNEL_PRECISION:
            label = " ".join(p for p in ("fused BN" if bn == "fused" else "", PRECISION_LABELS[precision]) if p)
            cases.append(Case(f"{pair} {label}", pair, 1, (0, 0), default, batchnorm=bn, precision=precision))
    if bare:
        keras_bn = "bare CNN, keras BatchNorm"
        cases += [Case(f"bare CNN, {bn} BatchNorm", f"bare:{bn}", 1, (0, 0), keras_bn) for bn in BARE]
    return cases


def select(cases: list[Case], pattern: str) -> list[Case]:
    """The cases whose name matches ``pattern`` (``re.search``) and the cases they are divided by, in order."""
    keep = {c.name for c in cases if re.search(pattern, c.name)}
    keep |= {c.reference for c in cases if c.name in keep}
    return [c for c in cases if c.name in keep]


def whole_calls(steps: int, spe: int) -> int:
    """``steps`` rounded up to whole calls of ``spe`` steps: a ``fit`` on a repeating stream runs whole calls."""
    return -(-steps // spe) * spe


# ----------------------------------------------------------------------------- the worker


def bare_cnn(batch_norm: str):
    """baseline_cnn's four conv blocks (32-256 filters, pooling after three) + GAP + softmax, no bench head."""
    import keras
    from keras import layers

    from bench.batchnorm import FusedBatchNormalization

    inputs = keras.Input((48, 48, 1))
    x = layers.Rescaling(1 / 255)(inputs)
    for i, width in enumerate((32, 64, 128, 256)):
        x = layers.Conv2D(width, 3, padding="same", use_bias=batch_norm == "none")(x)
        if batch_norm == "keras":
            x = layers.BatchNormalization(momentum=0.9)(x)
        elif batch_norm == "fused":
            x = FusedBatchNormalization(momentum=0.9)(x)  # bench's, as model.batchnorm = "fused"
        x = layers.Activation("relu")(x)
        if i < 3:
            x = layers.MaxPooling2D(2)(x)
    outputs = layers.Dense(7, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs, name=f"bare_cnn_{batch_norm}")


class Prepared:
    """One case in a worker: its model, compiled as bench compiles it, and the Trainer's training stream."""

    def __init__(self, case: dict, batch: int, data):
        from bench.recipe_load import load_recipe
        from bench.train import Trainer, build_for_recipe, compile_phase, prepare_splits, seed_everything

        self.spe, self.batch = case["spe"], batch
        bare = case["model"].startswith("bare:")
        backbone, _, head = ("baseline_cnn+mlp" if bare else case["model"]).partition("+")
        overrides = [f"data.batch_size={batch}", f"run.steps_per_epoch={STEPS_PER_EPOCH}"]
        overrides += [f"run.steps_per_execution={self.spe}", "run.budget_minutes=0"]
        overrides += [f"run.threads_intra={case['threads'][0]}", f"run.threads_inter={case['threads'][1]}"]
        if case["formulation"] != "keras":  # only then: the default leaves the recipe (and its hash) as it is
            overrides.append(f"model.head_options.{head}.formulation={case['formulation']}")
        overrides += [f"model.batchnorm={case['batchnorm']}", f"model.precision={case['precision']}"]
        options = dict(REFERENCE_HEAD if head == "hybrid" else ()) | dict(case["head_options"])
        overrides += [f"model.head_options.{head}.{name}={value}" for name, value in options.items()]
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
        tic, callbacks = time.perf_counter(), [NanGuard(self.spe), timer]
        self.model.fit(self.stream, steps_per_epoch=skip + timed, epochs=1, callbacks=callbacks, verbose=0)
        figures = {"ms_per_step": 1000 * timer.seconds_per_step, "input_wait": timer.input_wait_fraction}
        return {**figures, "wall_s": time.perf_counter() - tic}


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


# ----------------------------------------------------------------------------- the parent


class Workers:
    """One worker process per thread setting, started on first use, each logging to its own file."""

    def __init__(self, folder: Path):
        self.folder, self.procs, self.logs = folder, {}, {}

    def ask(self, threads: tuple[int, int], request: dict) -> dict:
        proc = self.procs.get(threads)
        if proc is None:
            self.logs[threads] = log = self.folder / "worker_{}_{}.log".format(*threads)
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
                    print(f"prepare {case.name}: FAILED {reply['error']}")
                    continue
                print(f"prepare {case.name} (threads {case.threads_label}): {reply['seconds']:.1f} s")
                live.append(case)
            for r in range(rounds):
                shift = r % max(1, len(live))
                for case in live[shift:] + live[:shift]:
                    request = {"op": "time", "case": asdict(case), "warmup": warmup, "steps": steps}
                    reply = workers.ask(case.threads, request)
                    if "error" in reply:
                        print(f"round {r + 1}/{rounds} {case.name}: FAILED {reply['error']}")
                        continue
                    results[case.name].append({"round": r, **reply})
                    print(f"round {r + 1}/{rounds} {case.name}: {reply['ms_per_step']:.1f} ms/step")
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
        row = {**asdict(case), "ms_per_step": values, "median_ms": median}
        row["spread"] = (max(values) - min(values)) / median if values else math.nan
        row["input_wait"] = statistics.median(waits) if waits else math.nan
        rows.append({**row, "ratio": same_round_ratio(results, case.name, case.reference)})
    return rows


def timed_ratios(results: dict[str, list[dict]], pairs: dict) -> dict:
    """``{label: (case, reference)}`` -> ``{label: same-round ratio}``, for the pairs that were both timed."""
    ratios = {label: same_round_ratio(results, *names) for label, names in pairs.items()}
    return {label: ratio for label, ratio in ratios.items() if not math.isnan(ratio)}


def hybrid_over_mlp(results: dict[str, list[dict]], spes) -> dict[int, float]:
    """baseline_cnn+hybrid's step over baseline_cnn+mlp's, same round, median over rounds, per spe."""
    pairs = {n: (f"baseline_cnn+hybrid spe{n}", f"baseline_cnn+mlp spe{n}") for n in sorted({1, *spes})}
    return timed_ratios(results, pairs)


def formulations_over_mlp(results: dict[str, list[dict]]) -> dict[str, float]:
    """baseline_cnn+hybrid's step over baseline_cnn+mlp's at steps_per_execution 1, per formulation."""
    cases = {"keras": "baseline_cnn+hybrid spe1", "matmul": "baseline_cnn+hybrid formulation matmul"}
    return timed_ratios(results, {f: (name, "baseline_cnn+mlp spe1") for f, name in cases.items()})


def head_sizes_over_mlp(results: dict[str, list[dict]]) -> dict[str, float]:
    """baseline_cnn+hybrid's step over baseline_cnn+mlp's at steps_per_execution 1, per head size
    (``"recipe"`` = the reference head, :data:`REFERENCE_HEAD`), with Keras' BatchNorm on both and, as
    ``"<size> fused BN"``, with the fused kernel on both; for the cases that were timed."""
    mlp, mlp_fused = "baseline_cnn+mlp spe1", "baseline_cnn+mlp fused BN"
    pairs = {"recipe": (f"{HEAD_SIZE_PAIR} spe1", mlp), "recipe fused BN": (f"{HEAD_SIZE_PAIR} fused BN", mlp_fused)}
    for size in HEAD_SIZES:
        pairs[size] = (f"{HEAD_SIZE_PAIR} head {size}", mlp)
        pairs[f"{size} fused BN"] = (f"{HEAD_SIZE_PAIR} head {size} fused BN", mlp_fused)
    return timed_ratios(results, pairs)


def fused_hybrid_over_mlp(results: dict[str, list[dict]]) -> float:
    """baseline_cnn+hybrid's step over baseline_cnn+mlp's, both with fused BatchNorm, float32 (NaN if missing)."""
    return same_round_ratio(results, "baseline_cnn+hybrid fused BN", "baseline_cnn+mlp fused BN")


def print_table(cases: list[Case], rows: list[dict], hybrid: dict[int, float], formulations: dict[str, float]):
    """One line per case (``rows`` as :func:`summarize` returns them, in the order of ``cases``), then the
    hybrid / mlp ratios."""
    print("\ncase | threads | ms/step (median) | spread | input wait | ratio vs default")
    for case, row in zip(cases, rows, strict=True):
        print(
            f"{case.name} | {case.threads_label} | {row['median_ms']:.1f} | {100 * row['spread']:.0f} % | "
            f"{100 * row['input_wait']:.0f} % | {row['ratio']:.3f}",
        )
    for n, ratio in hybrid.items():
        print(f"baseline_cnn hybrid / mlp step, steps_per_execution {n}: {ratio:.3f} (target <= 1.5)")
    for formulation, ratio in formulations.items():
        print(f"baseline_cnn hybrid ({formulation}) / mlp step, steps_per_execution 1: {ratio:.3f}")


def ratios_mode(args, spes: list[int]) -> None:
    """Choose the cases, time them, print the table and write ``--json``."""
    steps = args.steps if args.steps is not None else (3 if args.quick else 16)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    threads = [tuple(int(v) for v in t.split("/")) for t in (args.threads or ["2/1", "1/1"])]
    cases = ratio_cases(args.pair or list(PAIRS), spes, threads, bare=not args.skip_bare)
    if args.cases:
        cases = select(cases, args.cases)
    print(f"{len(cases)} cases, batch {args.batch}, {rounds} round(s) of {args.warmup} warm-up + {steps} timed steps")
    tic = time.perf_counter()
    results = run_ratios(cases, batch=args.batch, warmup=args.warmup, steps=steps, rounds=rounds)
    rows, hybrid = summarize(cases, results), hybrid_over_mlp(results, spes)
    formulations = formulations_over_mlp(results)
    print_table(cases, rows, hybrid, formulations)
    sizes = head_sizes_over_mlp(results)
    for size, ratio in sizes.items():
        print(f"baseline_cnn hybrid head ({size}) / mlp step, steps_per_execution 1: {ratio:.3f} (target <= 1.5)")
    fused = fused_hybrid_over_mlp(results)
    if not math.isnan(fused):
        print(f"baseline_cnn hybrid / mlp step, both with fused BatchNorm: {fused:.3f} (target <= 1.5)")
    print(f"total {time.perf_counter() - tic:.0f} s")
    if args.json:
        settings = {"batch": args.batch, "warmup": args.warmup, "steps": steps, "rounds": rounds, "quick": args.quick}
        payload = {"settings": settings, "cases": rows, "hybrid_over_mlp": hybrid, "cpu_count": os.cpu_count()}
        payload["hybrid_over_mlp_by_formulation"] = formulations
        payload["hybrid_over_mlp_fused_batchnorm"] = fused
        payload["hybrid_over_mlp_by_head_size"] = sizes
        Path(args.json).write_text(json.dumps(payload, indent=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=2, help="warm-up steps per block (default 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per block (default 16)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    parser.add_argument("--pair", action="append", default=None, help="backbone+head (default: four)")
    parser.add_argument("--spe", action="append", type=int, default=None, help="steps_per_execution, dividing 144")
    parser.add_argument("--threads", action="append", default=None, help="INTRA/INTER (default 2/1, 1/1)")
    parser.add_argument("--skip-bare", action="store_true", help="leave out the bare CNN cases")
    parser.add_argument("--cases", default=None, help="only cases matching this regex (+ their references)")
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    parser.add_argument("--quick", action="store_true", help="2 warm-up + 3 timed steps, 1 round: smoke tests only")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--worker", nargs=2, type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        return worker(*args.worker)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines show as they come, also into a pipe
    spes = args.spe or [1, 4, 16]
    if refused := [n for n in spes if n < 1 or STEPS_PER_EPOCH % n]:
        divisors = ", ".join(str(n) for n in range(1, STEPS_PER_EPOCH + 1) if STEPS_PER_EPOCH % n == 0)
        parser.error(f"--spe {refused[0]}: the epoch's {STEPS_PER_EPOCH} steps must be whole calls; use {divisors}")
    ratios_mode(args, spes)


if __name__ == "__main__":
    main()
