"""Outputs that appear complete or not at all.

Every file or directory the tool writes is first written under a temporary name in the same folder
(so the final rename stays on one file system), flushed, then renamed over the final name. An
error or an interrupt removes the temporary; the final name never holds a partial output.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import SettingError, SparsecodeError, first_line


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
        raise SettingError("force", "{path}: already exists; pass {force} to overwrite it", path=path)
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
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        _raise_if_write_failure(exc, path)
        raise


#: errno values that mean "the output could not be written" (disk full, file too large, quota, read-only).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}
_WRITE_MESSAGES = ("No space left", "File too large", "Disk quota", "Read-only file system", "write failed",
                   "iostream error", "PytorchStreamWriter", "inline_container")


class OutputWriteError(SparsecodeError):
    """Writing an output failed (disk full, file too large); the partial output was removed.

    HDF5 can be left unable to close a file after a failed write and crash at interpreter exit,
    so the CLI ends the process at once (``os._exit``) after reporting this error.
    """


def check_space(path: str | os.PathLike, needed_bytes: int) -> None:
    """Refuse, before any work, an output that cannot fit: free disk space and the process's
    file-size limit (``ulimit -f``) are both checked against ``needed_bytes`` (an upper bound)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    while not parent.exists() and parent != parent.parent:  # a folder the run will create
        parent = parent.parent
    free = shutil.disk_usage(parent).free
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    mb = needed_bytes / 2**20
    if needed_bytes > free:
        raise SparsecodeError(
            f"{path}: the output needs up to {mb:,.1f} MB but only {free / 2**20:,.1f} MB are free in {parent}; "
            "free some disk space or choose another folder"
        )
    if limit != resource.RLIM_INFINITY and needed_bytes > limit:
        raise SparsecodeError(
            f"{path}: the output needs up to {mb:,.1f} MB but files are limited to {limit / 2**20:,.1f} MB "
            "here (ulimit -f); raise the limit or write a smaller output"
        )


def _is_write_failure(exc: BaseException) -> bool:
    return isinstance(exc, (OSError, RuntimeError)) and not isinstance(exc, SparsecodeError) and (
        getattr(exc, "errno", None) in _WRITE_ERRNOS or any(m in str(exc) for m in _WRITE_MESSAGES)
    )


def _raise_if_write_failure(exc: BaseException, path: Path) -> None:
    """Turn a failed write (a full disk, say) into one clear line; the temporary is already gone."""
    if _is_write_failure(exc):
        errno_ = getattr(exc, "errno", None)
        reason = os.strerror(errno_) if errno_ in _WRITE_ERRNOS else first_line(exc, 120)
        raise OutputWriteError(
            f"{path}: could not write the output ({reason}); nothing was written: "
            "free some disk space or choose another folder"
        ) from None


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
