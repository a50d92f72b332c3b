"""Process-wide settings: glibc's malloc keeps freed blocks where it can."""

from __future__ import annotations

import platform

import pytest

from sparsecode.runtime import keep_freed_memory


def test_keep_freed_memory():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("only glibc has mallopt")
    assert keep_freed_memory() is True
