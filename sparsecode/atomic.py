"""Outputs that appear complete or not at all.

Every file or directory the tool writes is first written under a temporary name in the same folder
(so the final rename stays on one file system), flushed, then renamed over the final name. An
error or an interrupt removes the temporary; the final name never holds a partial output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import SparsecodeError


def check_output(path: str | os.PathLike, force: bool) -> Path:
    """Check that ``path`` may be written: its folder exists and is writable, and it does not
    exist yet unless ``force``. Returns it as a :class:`Path`."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SparsecodeError(f"{path}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise SparsecodeError(f"{path}: folder {parent} is not writable; choose another output")
    if path.exists() and not force:
        raise SparsecodeError(f"{path}: already exists; pass --force to overwrite it")
    if path.is_dir() and path.suffix in (".h5", ".hdf5"):
        raise SparsecodeError(f"{path}: is a directory; choose a file name for the output")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; on success it is synced and renamed to ``path``.

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``path`` is
    left as it was.
    """
    path = check_output(path, force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path`` as a whole."""
    path = check_output(path, force)
    tmp_path = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or "."))
    try:
        yield tmp_path
        for child in tmp_path.iterdir():
            _fsync(child)
        os.chmod(tmp_path, 0o777 & ~_umask())  # mkdtemp makes 0700
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp_path, path)
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        else:
            os.replace(tmp_path, path)
    except BaseException:
        shutil.rmtree(tmp_path, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    if path.is_file():
        with open(path, "rb+") as fh:
            os.fsync(fh.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a small text file atomically, replacing any previous version."""
    with atomic_output(path, force=True) as tmp:
        tmp.write_text(text, encoding="utf-8")
