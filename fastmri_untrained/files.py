"""Writing files safely: a temporary name beside the final one, then an atomic rename."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: os.PathLike | str):
    """Yield a temporary path beside ``final``; rename it onto ``final`` only on success.

    An interrupted or failed write never leaves a half-written ``final`` behind.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are private (0600); this one gets the umask's permissions,
    # as ``final`` written directly would. The name is cut so that a long ``final`` (up to 255
    # bytes) still has a valid temporary name.
    while True:
        tmp = final.parent / f".{final.name[:100]}.{secrets.token_hex(4)}.part"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
