"""Ctrl-C and SIGTERM, handled in one place, so that a stop is never lost and never a traceback.

Python's own SIGINT handling raises ``KeyboardInterrupt`` at whatever bytecode runs when the signal
lands. Inside a weakref callback or a ``__del__`` (TensorFlow and MLflow run many while a run's results
are logged) the exception is printed as "Exception ignored in: ..." and dropped, and the run finishes as
if nothing had happened; a second Ctrl-C landing in the handler of the first is a traceback. Here:

- the first SIGINT or SIGTERM is recorded; outside a :func:`held` block it raises :class:`Interrupted`
  at once (training stops within a batch), inside one it waits for the next :func:`check` (the logging
  helpers of :mod:`bench.tracking` are such safe points) or the end of the block;
- a stop whose exception was dropped is raised again at the next :func:`check`, until
  :func:`acknowledge` says someone handled it;
- later signals are only recorded: the first one's handling (marking the run KILLED) finishes.
"""

from __future__ import annotations

import contextlib
import signal

from bench.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received: int | None = None  # the first stop signal since install()
_handled = False  # an Interrupted for it reached code that acts on it
_holds = 0


def install() -> None:
    """Route SIGINT and SIGTERM here (a command calls this first) and forget earlier stops. SIGTERM (kill,
    a scheduler's stop) ends a command like Ctrl-C: background jobs often ignore SIGINT."""
    reset()
    for signum in STOP_SIGNALS:
        try:
            signal.signal(signum, _handler)
        except ValueError:  # not the main thread (e.g. under some test runners)
            return


def reset() -> None:
    """Forget any stop received (a new command in the same process, e.g. under a test runner)."""
    global _received, _handled, _holds
    _received, _handled, _holds = None, False, 0


def _handler(signum, frame) -> None:
    global _received
    if _received is not None:
        return  # a repeat: the first stop is being handled
    _received = signum
    if not _holds:
        raise Interrupted(reason())


def received() -> int | None:
    """The signal number of the stop this command received, if any."""
    return _received


def reason() -> str:
    """What stopped the run, as its ``failure_reason`` says: the signal actually received."""
    return f"interrupted ({signal.Signals(_received).name})" if _received is not None else "interrupted (Ctrl-C)"


def exit_code() -> int:
    """The shell's convention: 128 + the signal (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + (_received or signal.SIGINT)


def ignore_more() -> None:
    """Ignore stop signals from now on (a command that is exiting because of one): Python restores the
    default handlers as it shuts down, and a repeated Ctrl-C landing then would kill the process by
    SIGINT (exit status -2) after its one line was printed."""
    for signum in STOP_SIGNALS:
        try:
            signal.signal(signum, signal.SIG_IGN)
        except ValueError:  # not the main thread
            return


def check() -> None:
    """A safe point: raise the stop received since the last one, unless it was already handled."""
    if _received is not None and not _handled:
        raise Interrupted(reason())


def acknowledge() -> None:
    """The stop reached code that acts on it (the run is being marked KILLED): do not raise it again."""
    global _handled
    _handled = True


@contextlib.contextmanager
def held(*, check_after: bool = True):
    """Within the block a stop signal is recorded, not raised; it is raised at the block's safe points
    (:func:`check`) or, with ``check_after``, as the block ends."""
    global _holds
    _holds += 1
    try:
        yield
    finally:
        _holds -= 1
    if check_after:
        check()
