"""The one exception type the CLI turns into a single line of text, and how an ``OSError`` reads in it."""


class BenchError(ValueError):
    """A user-facing error: the message says what was wrong and how to fix it, on one line."""


def os_error_text(exc: OSError) -> str:
    """``'PATH': cause`` from an ``OSError`` (``[Errno 28] No space left on device: '/x'`` reads as
    ``'/x': No space left on device``), on one line; libraries that set no ``filename`` (h5py, zipfile)
    keep their own first line."""
    cause = exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    return f"'{exc.filename}': {cause}" if exc.filename else cause


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
