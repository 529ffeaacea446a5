"""The fault suite for issue 33's run, store and disk faults, replayed the way they were found: real
``bench`` processes on the smoke recipe, real signals at chosen moments, two processes on one run, a
full disk (a tiny tmpfs where this machine lets root mount one, ``ulimit -f`` everywhere), a locked
SQLite store. The next regression of any of them is found here rather than by a user."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError, first_line, os_error_text

SMOKE = ["run", "--recipe", "smoke", "--data", "synthetic:600:1", "--backbone", "baseline_cnn", "--no-save-model"]
# The smoke recipe's data and model with one phase of one epoch, for the faults that land after the last
# epoch: the smoke recipe's four other phases only delay that moment (each one more graph to build).
SMOKE_TOML = Path(__file__).resolve().parents[1] / "experiments" / "smoke.toml"
ONE_PHASE_TOML = SMOKE_TOML.read_text().split("[[phases]]")[0] + '[[phases]]\nname = "all"\nepochs = 1\ntrain = "all"\n'
ONE_PHASE = ["run", "--recipe", "one_phase.toml", *SMOKE[3:]]
LAST_EPOCH = "epoch 1/1"


def bench(args, cwd, limit_bytes: int | None = None, **popen) -> subprocess.Popen:
    """``bench ARGS`` as its own process (stderr merged into stdout); ``limit_bytes`` caps the size of
    every file it writes (``ulimit -f``), with SIGXFSZ ignored so that a write past it fails (EFBIG)
    as a write to a full disk does, instead of killing the process."""

    def limit():
        os.setsid()  # its own process group: a signal sent to it reaches bench only
        if limit_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=limit,
        **popen,
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def read_until(proc: subprocess.Popen, pattern: str, timeout: float = 600) -> str:
    """The output up to the first line containing ``pattern`` (fails if the process ends first)."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail("bench ended before printing " + repr(pattern) + ":\n" + "".join(seen))
        seen.append(line)
        if pattern in line:
            return "".join(seen)
    pytest.fail(f"no {pattern!r} within {timeout} s")


def wait_for(condition, timeout: float = 300, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    pytest.fail("timed out waiting")


def runs(db: Path) -> list[tuple[str, str, str | None]]:
    """``(run id, status, failure_reason)`` of every run in a SQLite store, read with sqlite3 only."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        return con.execute(
            "SELECT r.run_uuid, r.status, t.value FROM runs r LEFT JOIN tags t "
            "ON t.run_uuid = r.run_uuid AND t.key = 'failure_reason'"
        ).fetchall()


def assert_one_line(out: str, code: int, pattern: str) -> str:
    """Exactly one ``error:``/``interrupted`` line matching ``pattern`` and no Python noise."""
    assert "Traceback" not in out and "Exception ignored" not in out, out
    lines = [line for line in out.splitlines() if re.search(pattern, line)]
    assert len(lines) == 1, out
    return lines[0]


@pytest.fixture
def tmpfs(tmp_path):
    """A 2.6 MB tmpfs (the size the fault was found with), or a skip where mounting is not permitted."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2600k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


# -- 1. a disk that fills during a checkpoint write


@pytest.mark.slow
def test_a_store_on_a_full_tmpfs_fails_in_one_line_and_marks_the_run(tmpfs, tmp_path):
    code, out = finish(bench([*SMOKE, "--tracking-uri", f"sqlite:///{tmpfs}/mlflow.db"], tmp_path))
    assert code == 2, out
    line = assert_one_line(out, code, r"^error: ")
    assert "No space left on device" in line and str(tmpfs / "checkpoints") in line
    (run_id, status, reason), *_ = runs(tmpfs / "mlflow.db")
    assert status == "FAILED" and "No space left on device" in reason
    # nothing to resume (no epoch checkpoint fitted): no folder, no partial file left taking the space
    assert not (tmpfs / "checkpoints" / run_id).exists()


@pytest.mark.slow
def test_a_checkpoint_past_ulimit_f_fails_in_one_line_and_marks_the_run(tmp_path):
    from bench.data import load_data

    load_data("synthetic:600:1")  # its cached files are larger than the limit: written here, before it
    # 1.2 MB: the store (under 1 MB) fits, the model's weights (1.7 MB) do not
    code, out = finish(bench([*SMOKE], tmp_path, limit_bytes=1_200_000))
    assert code == 2, out
    line = assert_one_line(out, code, r"^error: ")
    assert "weights.weights.h5': File too large" in line, line
    (_, status, reason), *_ = runs(tmp_path / "mlruns" / "mlflow.db")
    assert status == "FAILED" and "File too large" in reason
    assert not list((tmp_path / "mlruns" / "checkpoints").glob("*/partial-*"))


def test_a_failed_checkpoint_write_keeps_the_previous_file_whole(tmp_path):
    """The write that fails (past ``ulimit -f`` here, a full disk in use) leaves the last good file and
    no partial one, and says which file and why, whatever library wrote it."""
    import keras

    from bench.train.checkpoints import CheckpointFolder, ResumeState, write_weights

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(512), keras.layers.Dense(7)])
    weights = tmp_path / "weights.weights.h5"
    write_weights(model, weights)
    CheckpointFolder(tmp_path).write_state(ResumeState(0, 1, (3,)))
    good, good_state = weights.read_bytes(), (tmp_path / "state.json").read_text()
    model.layers[0].kernel.assign(np.ones((64, 512)))
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
    try:
        with pytest.raises(OSError) as caught:
            write_weights(model, weights)
        big = ResumeState(0, 2, (3,), monitors={"history": ["x" * 30_000]})
        with pytest.raises(OSError) as caught_state:
            CheckpointFolder(tmp_path).write_state(big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert os_error_text(caught.value) == f"'{weights}': File too large"
    assert os_error_text(caught_state.value) == f"'{tmp_path / 'state.json'}': File too large"
    assert weights.read_bytes() == good and (tmp_path / "state.json").read_text() == good_state
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "weights.weights.h5"]
    model.load_weights(weights)  # still a whole HDF5 file


def test_h5py_messages_read_as_path_and_cause():
    exc = OSError(
        27,
        "Can't synchronously write data (file write failed: time = Mon Dec  7 16:11:35 2026\n, filename = "
        "'/ck/weights.weights.h5', file descriptor = 3, errno = 28, error message = 'No space left on device', "
        "buf = 0x55, total write size = 309160, bytes this sub-write = 309160, offset = 100000)",
    )
    assert os_error_text(exc) == "'/ck/weights.weights.h5': No space left on device"


# -- 2. one claim on a run; 3. signals at real moments


@pytest.mark.slow
def test_a_resume_of_a_run_still_training_is_refused_and_sigterm_marks_it_killed(tmp_path):
    first = bench(SMOKE, tmp_path)
    read_until(first, "epoch 1/5")  # its first epoch checkpoint is written: resumable, and still training
    (run_id, status, _), *_ = runs(tmp_path / "mlruns" / "mlflow.db")
    assert status == "RUNNING"
    code, out = finish(bench(["run", "--resume", run_id], tmp_path), timeout=120)
    assert code == 2, out
    line = assert_one_line(out, code, r"^error: ")
    assert re.search(
        rf"run {run_id} is being trained by another process \(pid {first.pid} on host \S+\); wait for it or stop it",
        line,
    ), line
    first.send_signal(signal.SIGTERM)
    code, out = finish(first)
    assert code == 143, out
    line = assert_one_line(out, code, r"^interrupted")
    assert line.startswith(f"interrupted (SIGTERM): run {run_id} is KILLED") and f"--resume {run_id}" in line
    assert runs(tmp_path / "mlruns" / "mlflow.db") == [(run_id, "KILLED", "interrupted (SIGTERM)")]


def test_a_stale_claim_is_taken_over_and_a_live_one_refused(tmp_path):
    """Two real processes: a claim held by a live one refuses this one, naming it; once that process
    is SIGKILLed (no chance to clean up) the claim is free."""
    from bench.claims import claim, release

    code = f"from bench.claims import claim; claim({str(tmp_path)!r}, 'run r'); print('held', flush=True); input()"
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = rf"^run r is being trained by another process \(pid {holder.pid} on host "
        with pytest.raises(BenchError, match=refused):
            claim(tmp_path, "run r")
    finally:
        holder.kill()
        holder.wait()
    claim(tmp_path, "run r")
    assert (tmp_path / "claim.lock").read_text().startswith(f"pid {os.getpid()} on host ")
    release(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "times", "code"), [(signal.SIGINT, 3, 130), (signal.SIGTERM, 1, 143)])
def test_a_stop_during_the_final_logging_is_not_lost(tmp_path, signum, times, code):
    """The signal lands after the last epoch, while the model is evaluated and logged (~3 s): before,
    it surfaced as "Exception ignored in: WeakKeyDictionary" and the run FINISHED with exit 0; three
    quick Ctrl-Cs were a traceback and exit -2."""
    (tmp_path / "one_phase.toml").write_text(ONE_PHASE_TOML)
    proc = bench(ONE_PHASE, tmp_path)
    read_until(proc, LAST_EPOCH)
    checkpoints = tmp_path / "mlruns" / "checkpoints"
    wait_for(lambda: next(checkpoints.glob("*/trained.json"), None), every=0.02)  # training over, logging begins
    for _ in range(times):
        proc.send_signal(signum)
        time.sleep(0.2)
    status, out = finish(proc)
    assert status == code, out
    name = signal.Signals(signum).name
    line = assert_one_line(out, status, r"^interrupted")
    (run_id, run_status, reason), *_ = runs(tmp_path / "mlruns" / "mlflow.db")
    assert line == f"interrupted ({name}): run {run_id} is KILLED; continue it with `bench run --resume {run_id}`"
    assert (run_status, reason) == ("KILLED", f"interrupted ({name})")
    if signum == signal.SIGTERM:  # the trained model was kept: the resume evaluates and logs it, no training
        status, out = finish(bench(["run", "--resume", run_id], tmp_path))
        assert status == 0 and "epoch" not in out, out
        assert runs(tmp_path / "mlruns" / "mlflow.db") == [(run_id, "FINISHED", None)]
        assert not (tmp_path / "mlruns" / "checkpoints" / run_id).exists()


@pytest.mark.slow
def test_a_run_stopped_before_its_first_epoch_leaves_no_checkpoint_folder(tmp_path):
    proc = bench(SMOKE, tmp_path)
    folders = tmp_path / "mlruns" / "checkpoints"
    folder = wait_for(lambda: next(folders.glob("*"), None) if folders.is_dir() else None)
    proc.send_signal(signal.SIGINT)
    code, out = finish(proc)
    assert code == 130, out
    assert assert_one_line(out, code, "^interrupted").endswith("before its first epoch ended; run the command again")
    assert not folder.exists()


# -- 4. a locked store


def _store(tmp_path) -> Path:
    from bench import tracking as trk

    uri = trk.connect(f"sqlite:///{tmp_path / 'store.db'}")
    trk.ensure_experiment("default", uri)
    return tmp_path / "store.db"


@pytest.mark.slow
def test_a_locked_store_is_told_it_is_locked(tmp_path):
    db = _store(tmp_path)
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")  # another process writing (a long migration, a sqlite3 shell)
        code, out = finish(bench([*SMOKE, "--tracking-uri", f"sqlite:///{db}"], tmp_path), timeout=120)
    assert code == 2, out
    line = assert_one_line(out, code, r"^error: ")
    assert "database is locked: another process holds it; retry" in line, line
    assert "restore the file" not in line and "free space" not in line


def test_a_store_write_refused_by_a_lock_says_so(tmp_path, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException

    from bench import tracking as trk
    from bench.resume import kept_message

    _store(tmp_path)
    locked = MlflowException("(sqlite3.OperationalError) database is locked\n[SQL: INSERT ...]")
    monkeypatch.setattr(mlflow, "log_metrics", lambda *a, **k: (_ for _ in ()).throw(locked))
    with pytest.raises(trk.StoreError) as caught, trk.TrackedRun("0") as run:
        run.metrics({"x": 1.0})
    message = kept_message(run.run_id, caught.value, None, "sqlite:///x")
    assert "database is locked: another process holds it" in message
    assert "retry when that process is done, or use a tracking server" in message and "free space" not in message


# -- 14. messages with the right cause


def test_library_messages_are_cut_between_words():
    text = "Layer 'dense' expected 2 variables, but received 0 variables during loading. " * 10
    cut = first_line(text, 200)
    assert len(cut) <= 200 and cut.endswith("...") and text.startswith(cut[:-3])
    assert text[len(cut) - 3] == " "  # the cut falls between two words


def test_a_corrupt_keras_file_is_not_file_not_found(tmp_path):
    from bench.inference.classifier import load_keras_model

    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(BenchError, match="is not a .keras archive \\(truncated or corrupt\\?\\)") as caught:
        load_keras_model(path)
    assert "not found" not in str(caught.value)


def test_a_run_on_an_unreachable_server_is_not_a_missing_run(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    from bench import tracking as trk

    trk.connect("http://127.0.0.1:9")
    with pytest.raises(BenchError) as caught:
        trk.find_run("0123456789abcdef0123456789abcdef")
    assert str(caught.value).startswith("cannot reach the MLflow tracking store http://127.0.0.1:9")
    assert "no MLflow run" not in str(caught.value)


def test_a_saved_model_on_a_full_disk_says_no_space_left():
    from bench.inference.export import op_error_text

    class OpError(Exception):
        message = (
            "{{function_node __wrapped__SaveV2_dtypes_10_device_/job:localhost/replica:0/task:0/device:CPU:0}} "
            "/out/variables/variables_temp/part-00000-of-00001.data-00000-of-00001.tempstate1; No space left on "
            "device [Op:SaveV2]"
        )

    assert op_error_text(OpError()) == "No space left on device"


# -- 5. an annotated video cut short


def test_an_annotated_video_cut_short_is_an_error_not_written(tmp_path):
    """``ulimit -f`` stops the annotated copy part way (as a full disk does): the copy is read back, and
    the input's error says so; before, it said "wrote" and exited 0."""
    import cv2
    import keras

    from bench.models import build_model

    keras.utils.set_random_seed(0)
    model, _ = build_model(backbone="baseline_cnn", head="linear")
    model.save(tmp_path / "tiny.keras")
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(30):
        writer.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))  # noise: frames that do not compress
    writer.release()
    args = ["predict", "--model", tmp_path / "tiny.keras", "--out", tmp_path / "out", video]
    code, out = finish(bench(args, tmp_path, limit_bytes=video.stat().st_size // 3), timeout=300)
    assert code == 1, out
    assert "Traceback" not in out
    assert re.search(
        r"annotated copy not written: '.*clip\.mp4\.annotated\.mp4' (holds \d+ of its 30 frames|is empty)", out
    ), out


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the drop it replays
def test_a_stop_is_raised_at_a_safe_point_once_and_repeats_are_ignored():
    """Held (the final logging), a signal waits for the next safe point; one raised where Python drops
    it (a weakref callback) is raised again there; a second signal never interrupts the first's handling."""
    import weakref

    from bench import interrupts
    from bench.errors import Interrupted

    previous = {signum: signal.getsignal(signum) for signum in interrupts.STOP_SIGNALS}
    try:
        interrupts.install()
        with pytest.raises(Interrupted, match=r"^interrupted \(SIGINT\)$"), interrupts.held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # not raised here, inside the held block
        interrupts.acknowledge()
        interrupts.check()  # handled: not raised again
        os.kill(os.getpid(), signal.SIGTERM)  # a repeat: ignored
        time.sleep(0.05)
        assert interrupts.exit_code() == 130

        interrupts.install()

        class Thing:
            pass

        thing = Thing()
        weakref.finalize(thing, lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(0.05)))
        del thing  # the handler raises inside the finalizer, where Python prints and drops it
        with pytest.raises(Interrupted, match=r"^interrupted \(SIGTERM\)$"):
            interrupts.check()
    finally:
        interrupts.reset()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
