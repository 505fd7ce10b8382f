"""Errors raised for bad input: each names the file (or argument) and the problem."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class InputError(ValueError):
    """Bad user input: a file or argument that cannot be used, with the reason."""

    def __init__(self, source, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


@contextlib.contextmanager
def atomic_path(final: os.PathLike | str):
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success.

    An interrupted or failed write never leaves a half-written ``final`` behind.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
