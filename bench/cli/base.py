"""What every command shares: quiet TensorFlow, one-line errors, SIGTERM as Ctrl-C, the progress line."""

from __future__ import annotations

import functools
import os
import shutil
import sys

import click

from bench.errors import BenchError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (kill, a scheduler's stop) ends a command like Ctrl-C: runs are marked KILLED, not left
    RUNNING. Background jobs often ignore SIGINT, so SIGTERM is how they are stopped."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. under some test runners)
        pass


def load_tensorflow(verbose: int = 0) -> None:
    """Import TensorFlow without its C++ start-up lines (kept with -v or TF_CPP_MIN_LOG_LEVEL=0) and
    without Python-side notices (retracing after each recompile) a user cannot act on. Nothing under
    another Keras backend (KERAS_BACKEND=jax or torch), where TensorFlow need not be installed."""
    import logging

    from bench.backend import is_tensorflow
    from bench.runtime import import_tensorflow_quietly

    if not is_tensorflow():
        return
    import_tensorflow_quietly(verbose > 0 or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def friendly_errors(fn):
    """Turn BenchError and OSError (a full disk, a read-only folder) into one line on stderr (exit 2)
    and Ctrl-C into exit 130, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _terminate_like_ctrl_c()
        try:
            return fn(*args, **kwargs)
        except BenchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            from bench.errors import os_error_text

            click.echo(f"error: {os_error_text(exc)}; check the path, its permissions and free disk space", err=True)
            sys.exit(2)
        except KeyboardInterrupt as exc:
            click.echo(str(exc) if str(exc) else "interrupted", err=True)
            sys.exit(130)

    return wrapper


class ProgressLine:
    """Training progress on stderr: one line rewritten in place on a terminal; elsewhere (a log file, a
    pipe) one plain line per epoch, so logs stay readable."""

    def __init__(self, prefix: str, stream=None):
        self.prefix, self.stream = prefix, stream or sys.stderr
        self.live = self.stream.isatty()
        self.width = 0

    def __call__(self, status: dict) -> None:
        from bench.reports import format_progress

        text = f"{self.prefix} | {format_progress(status)}"
        if self.live:
            # Wider than the terminal, a line wraps and "\r" rewrites only its last row: keep it to one row.
            text = text[: shutil.get_terminal_size().columns - 1]
            self.stream.write("\r" + text.ljust(self.width))
            self.width = len(text)
        elif status["epoch_end"]:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line, so what is printed next starts on its own line."""
        if self.live and self.width:
            self.stream.write("\n")
            self.stream.flush()
        self.width = 0


def command_line(ctx: click.Context) -> str:
    """The command as it was called, rebuilt from its parsed options (defaults left out), to print as
    the command that continues an interrupted job."""
    import shlex

    parts = ["bench", ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if not isinstance(param, click.Option) or value in (None, (), False) or value == param.default:
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            parts.append(flag)
        else:
            parts += [item for v in (value if param.multiple else [value]) for item in (flag, str(v))]
    return shlex.join(parts)
