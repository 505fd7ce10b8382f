"""Device names: the one reading of ``device`` for a plain torch fit and for Lightning's Trainer."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from .errors import InputError

DEVICES = ("auto", "cpu", "cuda", "gpu", "mps")
DEVICE_HELP = "auto (CUDA if available, else CPU), cpu, cuda (= gpu) or mps: Lightning's accelerator"


class Device(NamedTuple):
    """A validated device: ``torch`` for tensors ("cpu", "cuda", "cuda:1", "mps"), ``accelerator``
    for ``Trainer(accelerator=)`` ("cpu", "gpu", "mps") and the GPU ``index`` of a ``cuda:N``."""

    torch: str
    accelerator: str
    index: Optional[int] = None


def parse_device(device: str = "auto") -> Device:
    """Read a device name; raises InputError naming ``device`` when it is unknown or not present
    here, so that a run fails before any work rather than deep inside torch or Lightning.

    ``auto`` picks CUDA when available and the CPU otherwise (never MPS: ask for it by name).
    """
    name = str(device).strip().lower()
    index = None
    if name.startswith("cuda:"):
        try:
            index = int(name[5:])
        except ValueError:
            raise InputError("device", f"expected cuda:N with a GPU index N, got {device!r}") from None
        name = "cuda"
    if name not in DEVICES:
        raise InputError("device", f"unknown device {device!r}; choose from {', '.join(DEVICES)} (or cuda:N)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise InputError("device", f"{device} requested but no CUDA device is available here")
        if index is not None and not 0 <= index < torch.cuda.device_count():
            raise InputError("device", f"GPU {index} requested but only {torch.cuda.device_count()} available")
        return Device("cuda" if index is None else f"cuda:{index}", "gpu", index)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise InputError("device", "mps requested but MPS is not available here")
        return Device("mps", "mps")
    return Device("cpu", "cpu")
