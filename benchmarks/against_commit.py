"""Training speed of today's bench against an earlier commit's, each with its own cpu recipe, in one run.

Issue 13 asks for twice "today's" training images/s, today being the day it was filed, and for every
change "measured on an idle machine as a ratio against today in one run". Other scripts time today's
code under the filing day's recipe settings (``speed_ratios.py``); this one times the filing day's code
itself: it checks the commit out into a git worktree, builds that checkout's own environment (its
``make .venv/.installed``, once), and then alternates the same ``bench run`` in both checkouts, the order
rotated each round so load drift hits both alike. Each side trains with its own ``cpu`` recipe (whatever
that commit shipped: head width, BatchNorm kernel), on the same data, for the same fixed epochs and steps
(no wall-clock budget). Prints, per run, bench's own steady-state training images/s (StepTimer's figure,
logged as ``train_images_per_second``; the same timer in both), the fit's wall time and the test
macro-F1, then each side's median images/s and its ratio to the commit's.

    python benchmarks/against_commit.py [--commit 12d6716] [--data PATH] [--epochs 4]
        [--steps-per-epoch 150] [--rounds 2] [--variant KEY=VALUE ...] [--json FILE]

``--variant`` adds a third side: today's code with those overrides (``model.head_options.hybrid.
projection_dim=256`` and ``model.batchnorm=keras`` give the filing day's model on today's trainer), which
splits the ratio into what the code took back and what the recipe's model changed.

Run it with the Python bench is installed in (the Makefile's ``.venv``), which runs today's side, on an
idle machine: each run is a whole process (imports, data loading, compile, evaluation).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from backend_speed import bench_figures, medians, rotated

ROOT = Path(__file__).resolve().parents[1]
FILING_DAY = "12d6716"  # the last commit before issue 13's first work (2026-11-26 04:18 UTC)


def call(command: list[str], cwd: Path) -> str:
    """``command``'s standard output; a failure is one ``error:`` line naming the command and its own last line."""
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except OSError as exc:
        raise SystemExit(f"error: cannot run {command[0]} in {cwd}: {exc.strerror}") from None
    if done.returncode:
        last = (done.stderr.strip() or done.stdout.strip() or "(no output)").splitlines()[-1]
        raise SystemExit(f"error: `{' '.join(command)}` failed in {cwd} (exit {done.returncode}): {last}")
    return done.stdout.strip()


def prepare_checkout(commit: str, folder: Path) -> Path:
    """``folder`` holding ``commit`` with its own built environment; its Python. Reuses what is there."""
    wanted = call(["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], ROOT)
    if not folder.exists():
        print(f"checking {commit} out into {folder}", flush=True)
        call(["git", "worktree", "add", "--detach", str(folder), wanted], ROOT)
    held = call(["git", "rev-parse", "HEAD"], folder)
    if held != wanted:
        raise SystemExit(f"error: {folder} holds {held[:12]}, not {commit}; remove it or pick --checkout")
    if not (folder / ".venv" / ".installed").exists():
        print(f"building {folder}/.venv (make .venv/.installed, once)", flush=True)
        call(["make", ".venv/.installed"], folder)
    return folder / ".venv" / "bin" / "python"


def run_command(python: str, args, store: str, overrides: list[str]) -> list[str]:
    """The ``bench run`` every side gets: the cpu recipe, same data, seed, epochs and steps, no budget."""
    command = [python, "-m", "bench.cli", "run", "--recipe", "cpu", "--data", args.data, "--quiet"]
    command += ["--backbone", args.backbone, "--head", args.head, "--experiment", "against-commit"]
    command += ["--tracking-uri", f"sqlite:///{store}/mlflow.db", "--seed", "42", "--no-save-model"]
    fixed = ["run.budget_minutes=0", f"run.steps_per_epoch={args.steps_per_epoch}", f"phases.0.epochs={args.epochs}"]
    for override in fixed + overrides:
        command += ["--set", override]
    return command


def run_once(side: str, python: str, cwd: Path, overrides: list[str], args) -> dict:
    """One ``bench run`` of one side: its figures, or ``{"error": one line}``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    env.pop("KERAS_BACKEND", None)  # both sides on their default backend, TensorFlow
    command_in = lambda store: run_command(python, args, store, overrides)  # noqa: E731
    return {"side": side, **bench_figures(command_in, cwd, env, args.timeout)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default=FILING_DAY, help="the earlier code (default: issue 13's filing day)")
    parser.add_argument("--checkout", default=None, help="where its worktree goes (default: ../bench-at-COMMIT)")
    parser.add_argument("--backbone", default="baseline_cnn")
    parser.add_argument("--head", default="hybrid")
    parser.add_argument(
        "--data",
        default="synthetic:3000:0",
        help="an absolute path, read by both; synthetic faces are made by each side's own code",
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps-per-epoch", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE", help="adds today's code with it")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one run may take")
    parser.add_argument("--json", default=None, help="also write every run to this file")
    args = parser.parse_args(argv)
    if not args.data.startswith("synthetic"):  # the sides run in different folders
        args.data = str(Path(args.data).resolve())
    then = f"at {args.commit}"
    folder = Path(args.checkout) if args.checkout else ROOT.parent / f"bench-at-{args.commit}"
    sides = {then: (str(prepare_checkout(args.commit, folder)), folder, []), "today": (sys.executable, ROOT, [])}
    if args.variant:
        sides["today with " + " ".join(args.variant)] = (sys.executable, ROOT, args.variant)
    results = []
    for round_index in range(args.rounds):
        for side in rotated(list(sides), round_index):
            python, cwd, overrides = sides[side]
            result = {"round": round_index + 1, **run_once(side, python, cwd, overrides, args)}
            results.append(result)
            print(json.dumps(result), flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2))
    speeds = medians(results, key="side")
    reference = speeds.get(then, (None, 0))[0]
    for side, (ips, runs) in speeds.items():
        ratio = f"  {ips / reference:.2f}x the code {then}" if reference else ""
        print(f"{side}: {ips:.0f} img/s (median of {runs} runs){ratio}", flush=True)
    failed = [s for s in sides if s not in speeds]
    if failed:
        print(f"no finished run for {', '.join(failed)}: see the error rows above", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
