"""Sensitivity maps with SigPy's ESPIRiT, calibrated on the fully sampled centre of the mask."""

from __future__ import annotations

import numpy as np
import sigpy as sp
import sigpy.mri

from .masks import calibration_width


KERNEL_WIDTH = 6


def min_calibration_width(kernel_width: int = KERNEL_WIDTH) -> int:
    """The narrowest fully sampled centre ESPIRiT calibrates on: a kernel plus a line each side."""
    return kernel_width + 2


def espirit_maps(kspace: np.ndarray, mask, num_sets: int = 1, thresh: float = 0.02,
                 kernel_width: int = KERNEL_WIDTH, crop: float = 0.95, max_iter: int = 100,
                 show_pbar: bool = False) -> np.ndarray:
    """ESPIRiT maps (C, H, W) for one set, (S, C, H, W) for ``num_sets`` > 1.

    ``calib_width`` comes from the mask: SigPy's default of 24 exceeds the ~15 centre lines of a
    fastMRI 8x mask and would calibrate on unsampled (zero) k-space. Further sets are the next
    eigenvectors of the same ESPIRiT operator, found by deflating SigPy's power iteration.
    """
    kspace = np.asarray(kspace)
    calib = calibration_width(mask)
    if calib < min_calibration_width(kernel_width):
        raise ValueError(f"the fully sampled centre is {calib} lines wide; ESPIRiT needs at least "
                         f"{min_calibration_width(kernel_width)}")
    app = sigpy.mri.app.EspiritCalib(kspace, calib_width=calib, thresh=thresh, kernel_width=kernel_width,
                                     crop=crop, max_iter=max_iter, output_eigenvalue=True, show_pbar=show_pbar)
    first, eig = app.run()
    if num_sets == 1:
        return first.astype(np.complex64)
    sets = [first]
    # Eigenvectors already found, in sigpy's (W, H, C, 1) layout, normalised per pixel.
    found = [app.mps.copy()]
    for _ in range(num_sets - 1):
        vecs, vals = list(found), []
        for v in found:
            vals.append(np.sum(np.conj(v) * app.alg.A(v), axis=-2, keepdims=True))
        aha = app.alg.A

        def deflated(x, vecs=vecs, vals=vals):
            y = aha(x)
            for v, lam in zip(vecs, vals):
                y = y - lam * v * np.sum(np.conj(v) * x, axis=-2, keepdims=True)
            return y

        x = np.random.default_rng(len(found)).standard_normal(app.mps.shape).astype(kspace.dtype)
        alg = sp.alg.PowerMethod(deflated, x, norm_func=lambda y: np.sum(np.abs(y) ** 2, axis=-2, keepdims=True) ** 0.5,
                                 max_iter=max_iter)
        while not alg.done():
            alg.update()
        found.append(x.copy())
        mps = x.T[0]
        mps = mps * np.conj(mps[0] / np.maximum(np.abs(mps[0]), 1e-12))
        mps = mps * (alg.max_eig.T[0] > crop)
        sets.append(mps)
    return np.stack(sets).astype(np.complex64)
