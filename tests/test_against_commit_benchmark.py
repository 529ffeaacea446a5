"""benchmarks/against_commit.py: today's bench against an earlier commit's, each side its own checkout."""

import json
import subprocess

import pytest

from tests.conftest import load_benchmark


@pytest.fixture(scope="module")
def script():
    return load_benchmark("against_commit")


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A repository of two commits whose Makefile builds ``.venv/.installed`` and counts the builds."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    (root / "Makefile").write_text(".venv/.installed:\n\tmkdir -p .venv && touch $@ && echo built >> ../builds\n")
    git(root, "add", "Makefile")
    git(root, "commit", "-q", "-m", "one")
    first = git(root, "rev-parse", "HEAD")
    (root / "later.txt").write_text("later\n")
    git(root, "add", "later.txt")
    git(root, "commit", "-q", "-m", "two")
    return root, first


def test_prepare_checkout_builds_the_commit_once_and_refuses_a_folder_at_another(script, repo, monkeypatch):
    root, first = repo
    monkeypatch.setattr(script, "ROOT", root)
    folder = root.parent / "at-first"
    python = script.prepare_checkout(first, folder)
    assert python == folder / ".venv" / "bin" / "python"
    assert git(folder, "rev-parse", "HEAD") == first and not (folder / "later.txt").exists()
    script.prepare_checkout(first, folder)  # the worktree and its environment are reused
    assert (root.parent / "builds").read_text() == "built\n"
    with pytest.raises(SystemExit, match="not HEAD; remove it or pick --checkout"):
        script.prepare_checkout("HEAD", folder)
    with pytest.raises(
        SystemExit, match=r"^error: `git rev-parse --verify nosuch\^\{commit\}` failed in .*\(exit 128\)"
    ):
        script.prepare_checkout("nosuch", root.parent / "never")
    assert not (root.parent / "never").exists()


def test_a_checkout_that_does_not_build_is_one_error_line(script, repo, monkeypatch):
    root, first = repo
    monkeypatch.setattr(script, "ROOT", root)
    (root / "Makefile").write_text(".venv/.installed:\n\t@echo no registry here >&2; exit 3\n")
    git(root, "commit", "-q", "-am", "broken build")
    with pytest.raises(SystemExit, match=r"`make .venv/.installed` failed in .*\(exit 2\): .*Error 3"):
        script.prepare_checkout("HEAD", root.parent / "at-broken")


def test_sides_alternate_on_the_same_run_and_the_variant_gets_only_its_overrides(script, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(script, "prepare_checkout", lambda commit, folder: folder / ".venv" / "bin" / "python")
    speeds = {"at abc": [150.0, 170.0], "today": [330.0, 310.0], "today with model.batchnorm=keras": [240.0, 240.0]}
    calls = []

    def fake_run(side, python, cwd, overrides, args):
        calls.append((side, overrides, cwd.name))
        command = script.run_command(python, args, "/store", overrides)
        assert command[command.index("--data") + 1] == str(tmp_path / "data.csv")  # both sides, any folder
        sets = [command[i + 1] for i, part in enumerate(command) if part == "--set"]
        assert sets == ["run.budget_minutes=0", "run.steps_per_epoch=5", "phases.0.epochs=2", *overrides]
        assert command[:2] == [str(python), "-m"] and "--no-save-model" in command
        return {"side": side, "macro_f1": 0.5, "fit_seconds": 9.0, "images_per_second": speeds[side].pop()}

    monkeypatch.setattr(script, "run_once", fake_run)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs.json"
    argv = ["--commit", "abc", "--checkout", str(tmp_path / "old"), "--data", "data.csv", "--epochs", "2"]
    argv += ["--steps-per-epoch", "5", "--variant", "model.batchnorm=keras", "--json", str(out)]
    assert script.main(argv) == 0
    assert [c[0] for c in calls] == ["at abc", "today", "today with model.batchnorm=keras"] + [
        "today",
        "today with model.batchnorm=keras",
        "at abc",
    ]
    assert {c[0]: (c[1], c[2]) for c in calls} == {
        "at abc": ([], "old"),
        "today": ([], script.ROOT.name),
        "today with model.batchnorm=keras": (["model.batchnorm=keras"], script.ROOT.name),
    }
    assert len(json.loads(out.read_text())) == 6
    lines = capsys.readouterr().out.strip().splitlines()
    assert "at abc: 160 img/s (median of 2 runs)  1.00x the code at abc" in lines
    assert "today: 320 img/s (median of 2 runs)  2.00x the code at abc" in lines
    assert "today with model.batchnorm=keras: 240 img/s (median of 2 runs)  1.50x the code at abc" in lines


def test_a_side_that_never_finishes_fails_the_script(script, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(script, "prepare_checkout", lambda commit, folder: folder / "python")

    def fake_run(side, python, cwd, overrides, args):
        if side == "today":
            return {"side": side, "error": "exit 2: error: bad recipe"}
        return {"side": side, "macro_f1": 0.5, "fit_seconds": 9.0, "images_per_second": 200.0}

    monkeypatch.setattr(script, "run_once", fake_run)
    assert script.main(["--commit", "abc", "--checkout", str(tmp_path), "--rounds", "1"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == "no finished run for today: see the error rows above"
