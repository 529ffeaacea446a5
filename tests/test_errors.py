"""How an OSError reads in an error line, and the probe that tells whether a folder takes files."""

import errno
from pathlib import Path

import pytest

from bench.errors import os_error_text, probe_folder


def test_os_error_text_names_the_path_and_the_cause():
    exc = OSError(errno.ENOSPC, "No space left on device", "/data/model.keras")
    assert os_error_text(exc) == "'/data/model.keras': No space left on device"
    assert os_error_text(OSError("Unable to create file (errno 28)\ndetails")) == "Unable to create file (errno 28)"


def test_probe_folder_leaves_nothing_and_raises_where_files_cannot_go(tmp_path):
    probe_folder(tmp_path)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        probe_folder(tmp_path / "file")
    with pytest.raises(OSError):
        probe_folder(tmp_path / "missing")
    if Path("/proc").is_dir():
        with pytest.raises(OSError):
            probe_folder("/proc")  # refused even to root


def test_bench_s_own_error_is_not_a_value_error():
    """Code that wraps a library's ValueError in a one-line message must not catch and wrap bench's own."""
    from bench.errors import BenchError

    assert not issubclass(BenchError, ValueError)
