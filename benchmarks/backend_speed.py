"""Training speed of one bench run per Keras backend on this machine: which backend bench trains fastest on.

Issue 17 keeps TensorFlow the CPU default "whatever is fastest here (measure)". This runs the same
``bench run`` (the cpu recipe on synthetic faces, fixed epochs, no wall-clock budget, so every backend does
the same steps) once per backend and round, each in the environment the Makefile builds for it
(TensorFlow: ``.venv``; JAX: ``.venv-jax``; PyTorch: ``.venv-torch``; a missing one is skipped with a line
saying so), one at a time, the order rotated each round so load drift hits every backend alike. Prints,
per run, bench's own steady-state training images/s (StepTimer's figure, the number a run logs as
``train_images_per_second``; compiling is outside it), the fit's wall time and the test macro-F1, then the
median images/s per backend and its ratio to TensorFlow's.

    python benchmarks/backend_speed.py [--backbone baseline_cnn] [--head hybrid] [--epochs 3]
        [--steps-per-epoch 40] [--rounds 2] [--set KEY=VALUE ...] [--json FILE]

Recipe against recipe: under the cpu recipe's ``model.batchnorm = "auto"`` TensorFlow runs its fused
BatchNorm kernel and JAX or PyTorch Keras' layer, as ``bench run`` would; ``--set model.batchnorm=keras``
compares the backends on the same layers. A run that fails or times out is one error row; the script
exits 1 if a backend never finished a run.

Run it on an idle machine: each run is a full process (imports, model build, compile, evaluation), about
1-2 minutes for baseline_cnn + hybrid at the defaults.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = {"tensorflow": ".venv", "jax": ".venv-jax", "torch": ".venv-torch"}
MAKES = {"tensorflow": "make test", "jax": "make test-jax", "torch": "make test-torch"}  # what builds each
SUMMARY = re.compile(r"macro_f1=(?P<f1>[0-9.]+).*fit=(?P<fit>[0-9]+)s\s+(?P<ips>[0-9]+) img/s")


def bench_command(python: str, args, store: str) -> list[str]:
    """The ``bench run`` every backend gets: same recipe, data, seed, epochs and steps."""
    command = [python, "-m", "bench.cli", "run", "--recipe", "cpu", "--data", args.data, "--quiet"]
    command += ["--backbone", args.backbone, "--head", args.head, "--experiment", "backend-speed"]
    command += ["--tracking-uri", f"sqlite:///{store}/mlflow.db", "--seed", "42"]
    overrides = [
        "run.budget_minutes=0",
        f"run.steps_per_epoch={args.steps_per_epoch}",
        f"phases.0.epochs={args.epochs}",
    ]
    for override in overrides + args.set:
        command += ["--set", override]
    return command


def parse_summary(output: str) -> dict:
    """Test macro-F1, fit seconds and images/s from bench's summary line (the last one that has them)."""
    matches = list(SUMMARY.finditer(output))
    if not matches:
        raise ValueError("no summary line in bench's output")
    m = matches[-1]
    return {"macro_f1": float(m["f1"]), "fit_seconds": float(m["fit"]), "images_per_second": float(m["ips"])}


def bench_figures(command_in, cwd: Path, env: dict, timeout: int) -> dict:
    """Run ``command_in(store)`` (a ``bench run`` logging to a fresh temporary store) in ``cwd``: the figures
    of its summary line, or ``{"error": one line}`` for a timeout, a failure or a run with no figures."""
    with tempfile.TemporaryDirectory() as store:
        try:
            done = subprocess.run(command_in(store), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"no result within --timeout {timeout} s"}
    output = done.stdout + done.stderr
    if done.returncode:
        tail = output.strip().splitlines()[-1:] or ["(no output)"]
        return {"error": f"exit {done.returncode}: {tail[0]}"}
    try:
        return parse_summary(output)
    except ValueError as exc:  # e.g. "img/s not measured": too few steps for a steady state
        return {"error": str(exc)}


def run_once(backend: str, python: str, args) -> dict:
    """One ``bench run`` under ``backend``: its figures, or ``{"error": one line}``."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    return {
        "backend": backend,
        **bench_figures(functools.partial(bench_command, python, args), ROOT, env, args.timeout),
    }


def medians(results: list[dict], key: str = "backend") -> dict[str, tuple[float, int]]:
    """Per value of ``key`` (the backend): (median images/s over its finished runs, how many finished)."""
    finished: dict[str, list[float]] = {}
    for r in results:
        if "error" not in r:
            finished.setdefault(r[key], []).append(r["images_per_second"])
    return {backend: (statistics.median(v), len(v)) for backend, v in finished.items()}


def rotated(backends: list[str], round_index: int) -> list[str]:
    """The run order of one round: each round starts one backend later, so drift hits them alike."""
    shift = round_index % len(backends) if backends else 0
    return backends[shift:] + backends[:shift]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="baseline_cnn")
    parser.add_argument("--head", default="hybrid")
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", action="append", choices=tuple(ENVIRONMENTS), help="default: every one found")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a recipe override")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one run may take")
    parser.add_argument("--json", default=None, help="also write every run to this file")
    args = parser.parse_args(argv)
    backends = {}
    for backend in args.backend or ENVIRONMENTS:
        python = ROOT / ENVIRONMENTS[backend] / "bin" / "python"
        if python.exists():
            backends[backend] = str(python)
        else:
            print(f"{backend}: skipped, no {ENVIRONMENTS[backend]} ({MAKES[backend]} builds it)", flush=True)
    results = []
    for round_index in range(args.rounds):
        for backend in rotated(list(backends), round_index):
            result = {"round": round_index + 1, **run_once(backend, backends[backend], args)}
            results.append(result)
            print(json.dumps(result), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2))
    speeds = medians(results)
    reference = speeds.get("tensorflow", (None, 0))[0]
    for backend, (ips, runs) in speeds.items():
        ratio = f"  {ips / reference:.2f}x TensorFlow's" if reference else ""
        print(f"{backend}: {ips:.0f} img/s (median of {runs} runs){ratio}", flush=True)
    failed = [b for b in backends if b not in speeds]
    if failed:
        print(f"no finished run for {', '.join(failed)}: see the error rows above", flush=True)
    return 1 if failed or not backends else 0


if __name__ == "__main__":
    sys.exit(main())
