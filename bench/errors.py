"""The one exception type the CLI turns into a single line of text, and how an ``OSError`` reads in it."""

import re


class BenchError(Exception):
    """A user-facing error: the message says what was wrong and how to fix it, on one line.

    Not a ``ValueError``: code that wraps a library's ``ValueError`` in a one-line message (a backbone or
    head factory's, :func:`bench.models.build_model`) must not catch bench's own, already one line, and
    wrap it again."""


def first_line(text: object, limit: int = 300) -> str:
    """The first line of a library's message, at most ``limit`` characters, cut between words (with
    "...") rather than mid-word: the one-line errors quote Keras and MLflow messages."""
    line = (str(text).strip().splitlines() or [""])[0]
    if len(line) <= limit:
        return line
    cut = line[: limit - 3]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:") + "..."


# h5py (HDF5) puts the file and the C library's cause inside a long message, often without errno
_HDF5_NAME = re.compile(r"\b(?:file)?name = '([^']*)'")
_HDF5_CAUSE = re.compile(r"error message = '([^']*)'")


def os_error_text(exc: OSError) -> str:
    """``'PATH': cause`` from an ``OSError`` (``[Errno 28] No space left on device: '/x'`` reads as
    ``'/x': No space left on device``), on one line. h5py's messages ("Can't synchronously write data
    (file write failed: ..., filename = '/x', errno = 28, error message = 'No space left on device'
    ...)") read the same; other libraries that set no ``filename`` (zipfile) keep their own first line."""
    text = str(exc)
    hdf5_cause, hdf5_name = _HDF5_CAUSE.search(text), _HDF5_NAME.search(text)
    if hdf5_cause:
        cause = hdf5_cause.group(1)
    elif exc.strerror and len(exc.strerror) < 100:
        cause = exc.strerror
    else:
        cause = first_line(text or type(exc).__name__, 200)
    filename = exc.filename or (hdf5_name.group(1) if hdf5_name else None)
    return f"'{filename}': {cause}" if filename else cause


def probe_folder(folder) -> None:
    """Create and remove a file in ``folder``, raising the ``OSError`` that doing so raises: permission
    bits alone do not tell whether a write will work (root ignores them; /proc refuses root)."""
    import os
    import tempfile

    fd, probe = tempfile.mkstemp(dir=folder, prefix=".bench-probe-")
    os.close(fd)
    os.unlink(probe)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM that stopped a run or study, with one line saying what was kept and the exact
    command that continues it: the CLI prints the message instead of a bare ``interrupted``."""
