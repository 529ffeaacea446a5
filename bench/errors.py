"""The one exception type the CLI turns into a single line of text."""


class BenchError(ValueError):
    """A user-facing error: the message says what was wrong and how to fix it, on one line."""
