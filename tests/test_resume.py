"""What a stopped run leaves and how it goes on: the one-line messages, the checkpoint folder's place,
the notes of a resumed run."""

import errno
import json
from types import SimpleNamespace

from bench import resume
from bench.store import default_uri


def test_kept_message_says_what_survives_and_how_to_go_on(tmp_path):
    full = OSError(errno.ENOSPC, "No space left on device", "/data/x")
    uri = default_uri()
    assert resume.kept_message(None, full, None, uri) == (
        "run (not started) failed: '/data/x': No space left on device; free space or fix permissions, then run it again"
    )
    folder = tmp_path / "r1"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"phase": 0, "plan": [1], "next_epoch": 1}))
    assert "its last epoch checkpoint is kept" in resume.kept_message("r1", full, folder, uri)
    (folder / "trained.json").write_text("{}")
    message = resume.kept_message("r1", full, folder, uri)
    assert "the trained model is kept in" in message and message.endswith("then `bench run --resume r1`")
    other = resume.kept_message("r1", full, folder, "sqlite:////elsewhere/mlflow.db")
    assert other.endswith("`bench run --resume r1 --tracking-uri sqlite:////elsewhere/mlflow.db`")


def test_checkpoints_live_beside_a_sqlite_store_whatever_the_current_folder(tmp_path):
    assert resume.checkpoint_root(f"sqlite:///{tmp_path}/store/mlflow.db") == tmp_path / "store" / "checkpoints"
    assert resume.checkpoint_root("http://tracking:5000") == (tmp_path / "mlruns" / "checkpoints")


def test_interrupted_says_what_to_run_next(tmp_path):
    uri = default_uri()
    assert "nothing to resume" in str(resume.interrupted(None, None, uri))
    assert "run the command again" in str(resume.interrupted("r1", tmp_path, uri))
    (tmp_path / "state.json").write_text("{}")
    assert str(resume.interrupted("r1", tmp_path, uri)).endswith("continue it with `bench run --resume r1`")


def test_a_resumed_run_s_summary_says_what_it_could_not_measure_or_continue():
    fresh = SimpleNamespace(images_per_second=300.0, optimizer_restarted=False)
    assert resume.resume_notes(fresh) == []
    resumed = SimpleNamespace(images_per_second=float("nan"), optimizer_restarted=True)
    notes = resume.resume_notes(resumed)
    assert notes[0] == "training throughput not measured: this resume trained no epochs"
    assert notes[1].startswith("the checkpoint held no optimizer state for this epoch (older bench?)")
