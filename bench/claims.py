"""The one claim on a run: a second process resuming a run that is still training is refused.

Kept apart from the checkpoint files (:mod:`bench.train.checkpoints`) because it is taken before
Keras loads: a resume that cannot start should say so in a second."""

from __future__ import annotations

import os
from pathlib import Path

from bench.errors import BenchError

CLAIM_FILE = "claim.lock"
"""In a run's checkpoint folder: locked (``flock``) by the process training the run, for its life."""

_claims: dict[Path, int] = {}  # folder -> the open, locked claim file of this process


class ClaimHeld(BenchError):
    """The run's folder is claimed by a live process: a caller that may wait for it (a queue's take-over
    of a run whose first worker is still finishing it) tells this apart from other errors."""


def claim(folder: Path, what: str) -> None:
    """Take the one claim on a run's checkpoint folder, or refuse in one line: two processes training
    one run would both write its checkpoints and log to it. The claim is an exclusive ``flock`` on
    ``claim.lock``, so the kernel drops it when its owner dies however it dies (SIGKILL, a crash): a
    stale claim never needs clearing by hand, the next process simply takes it. A folder this process
    already claimed is claimed again silently (a resume claims before it starts the run)."""
    import fcntl
    import socket

    folder = Path(folder).resolve()
    if folder in _claims:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / CLAIM_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 200).decode(errors="replace").strip() or "its pid unknown"
        os.close(fd)
        raise ClaimHeld(f"{what} is being trained by another process ({owner}); wait for it or stop it") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}".encode())
    _claims[folder] = fd


def holds(folder: Path) -> bool:
    """Whether this process holds the claim on ``folder`` (only its owner may remove the folder)."""
    return Path(folder).resolve() in _claims


def release(folder: Path) -> None:
    """Give up this process's claim on ``folder`` (nothing if it holds none)."""
    fd = _claims.pop(Path(folder).resolve(), None)
    if fd is not None:
        os.close(fd)
