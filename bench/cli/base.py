"""What every command shares: quiet TensorFlow, one-line errors, SIGTERM as Ctrl-C, the progress line."""

from __future__ import annotations

import contextlib
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
    RUNNING. Both go through :mod:`bench.interrupts`, so a stop during logging is not lost."""
    from bench import interrupts

    interrupts.install()


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
    and Ctrl-C or SIGTERM into exit 130 or 143, never a traceback."""

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
            from bench import interrupts

            interrupts.acknowledge()
            interrupts.ignore_more()
            click.echo(str(exc) if str(exc) else interrupts.reason(), err=True)
            sys.exit(interrupts.exit_code())  # 130 for SIGINT, 143 for SIGTERM

    return wrapper


class OneLineUsageError(click.UsageError):
    """A usage error click found (a bad option value, an unknown option or command) shown as bench shows
    every bad input: one ``error:`` line with where to look, exit status 2 (click's own is four lines)."""

    def show(self, file=None) -> None:
        where = command_path(self.ctx) if self.ctx is not None else "bench"
        click.echo(f"error: {self.format_message().rstrip('.')} (see {where} --help)", err=True)


def command_path(ctx: click.Context) -> str:
    """``bench data check``: the command as the user typed it (click names the root after the program
    or, under a test runner, after the function)."""
    names = []
    while ctx is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["bench", *reversed(names[:-1])])


@contextlib.contextmanager
def one_line_usage_errors():
    """Re-raise click's usage errors as :class:`OneLineUsageError`; the bare ``bench`` / ``bench data``
    that shows the help (click's NoArgsIsHelpError) is left alone."""
    # NoArgsIsHelpError is click >= 8.2's; under 8.1 a bare group shows its help without raising
    shows_help = getattr(click.exceptions, "NoArgsIsHelpError", ())
    try:
        yield
    except click.UsageError as exc:
        if isinstance(exc, OneLineUsageError) or (shows_help and isinstance(exc, shows_help)):
            raise
        raise OneLineUsageError(exc.format_message(), exc.ctx) from exc


class BenchGroup(click.Group):
    """The ``bench`` group: click's usage errors, at any depth below it, are one ``error:`` line.

    Parsing the group's own options happens in :meth:`make_context`, every subcommand's (and its
    callbacks', which raise ``BadParameter``) inside :meth:`invoke`."""

    def make_context(self, info_name, args, parent=None, **extra):
        with one_line_usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        with one_line_usage_errors():
            return super().invoke(ctx)


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
