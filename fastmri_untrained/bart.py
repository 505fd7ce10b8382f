"""BART (the Berkeley Advanced Reconstruction Toolbox) as an optional peer, through its command
line (``apt-get install bart``): ESPIRiT maps and ``pics`` on the project's (coils, H, W) arrays.

Used by the real-data benchmark and diagnostics (``scripts/bench_real.py``,
``scripts/real_data_diagnosis.py``); nothing in the reconstruction path depends on it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from .data.readers import read_cfl, write_cfl


def available() -> bool:
    return shutil.which("bart") is not None


def _to_bart(kspace: np.ndarray) -> np.ndarray:
    # Our C-order (coils, H, W) is BART's (1, W, H, coils) read column-major, as the shared .cfl is.
    return np.transpose(kspace, (2, 1, 0))[None]


def _coils_from_bart(array: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.transpose(np.asarray(array).reshape(w, h, -1), (2, 1, 0))


def espirit(kspace: np.ndarray, args: Sequence[str] = ("-m1",)) -> np.ndarray:
    """``bart ecalib ARGS`` on masked k-space (coils, H, W); maps (coils, H, W)."""
    _, h, w = kspace.shape
    with tempfile.TemporaryDirectory() as tmp:
        write_cfl(Path(tmp) / "ksp", _to_bart(kspace))
        subprocess.run(["bart", "ecalib", *args, f"{tmp}/ksp", f"{tmp}/maps"], check=True, capture_output=True)
        return _coils_from_bart(read_cfl(Path(tmp) / "maps"), h, w)


def pics(kspace: np.ndarray, maps: np.ndarray, regularizer: Sequence[str]) -> np.ndarray:
    """``bart pics -S REGULARIZER`` (e.g. ``-l1 -r 0.005``) on masked k-space and maps (coils, H, W);
    the image (H, W). BART's image and our centred unitary FFT may differ by a sign: see
    :func:`sign_fitting`."""
    _, h, w = kspace.shape
    with tempfile.TemporaryDirectory() as tmp:
        write_cfl(Path(tmp) / "ksp", _to_bart(kspace))
        write_cfl(Path(tmp) / "maps", _to_bart(maps))
        subprocess.run(["bart", "pics", "-S", *regularizer, f"{tmp}/ksp", f"{tmp}/maps", f"{tmp}/img"],
                       check=True, capture_output=True)
        return np.asarray(read_cfl(Path(tmp) / "img")).reshape(w, h).T
