"""Classical reconstructions through SigPy: zero-filled RSS, SENSE, L1-wavelet and TV.

Each is a callable ``(MRISample) -> Reconstruction`` returning the fastMRI target (RSS
magnitude, centre-cropped). Regularisation weights are relative to k-space normalised so that
the zero-filled RSS image has maximum 1 (so one default serves data of any intensity scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sigpy
import sigpy.mri
import torch

from .edges import from_numpy, to_numpy
from .mri import (MRISample, Reconstruction, kspace_noise_std, reduced_problem, rss_image, to_target,
                  zero_filled_coils)
from .operators.fourier import fft2c
from .operators.espirit import espirit_maps
from .operators.mri import Sense

# Weights relative to k-space normalised so the zero-filled RSS image has maximum 1.
# L1-wavelet: L1_NOISE_FACTOR x the normalised noise level (mri.kspace_noise_std), so noisier data
# are regularised more: on simulated slices this matches the SSIM-best fixed weights, on the real
# brain k-space (three times noisier) it more than halves the gap to the held-out optimum; the
# measurements are in docs/tuning.md. A floor keeps noise-free (synthetic) data regularised.
# TV: a fixed weight, best on both (docs/tuning.md). SENSE needs a Tikhonov weight: unregularised
# CG fits the noise through maps that are non-zero in the background.
DEFAULT_LAMBDA = {"sense": 1e-2, "tv": 1e-2}
L1_NOISE_FACTOR = 0.1
L1_MIN_LAMBDA = 1e-5


def default_lamda(method: str, kspace: torch.Tensor, mask: torch.Tensor) -> float:
    """The package weight of a classical method on ``kspace`` (C, H, W), relative to
    :func:`normalisation`."""
    if method == "l1-wavelet":
        noise = kspace_noise_std(kspace, mask) * normalisation(kspace)
        return max(L1_NOISE_FACTOR * noise, L1_MIN_LAMBDA)
    return DEFAULT_LAMBDA[method]


def normalisation(kspace: torch.Tensor) -> float:
    """1 / max of the zero-filled RSS image: the scale classical weights are relative to."""
    peak = float(rss_image(zero_filled_coils(kspace)).max())
    if not peak > 0:
        raise ValueError("the k-space is all zero")
    return 1.0 / peak


# ESPIRiT's eigenvalue crop zeroes the maps outside the object. The fastMRI target is the RSS of
# noisy coil images, whose background is a noise floor, not zero; a zeroed background costs
# SSIM (measured on simulated data: L1-wavelet 0.79 with crop 0.95, 0.88 without).
MAPS_CROP = 0.0


def sense_maps_for(kspace: torch.Tensor, mask: torch.Tensor, challenge: str, num_sets: int = 1,
                   crop: float = MAPS_CROP) -> np.ndarray:
    """ESPIRiT maps (C, H, W) for multicoil data; all-ones for single-coil."""
    if challenge == "singlecoil" or kspace.shape[0] == 1:
        return np.ones(tuple(kspace.shape), dtype=np.complex64)
    return espirit_maps(to_numpy(kspace), mask, num_sets=num_sets, crop=crop)


@dataclass
class ZeroFilled:
    """RSS of the inverse FFT of the zero-filled k-space (the fastMRI baseline)."""

    reduce_readout: bool = True
    name: str = "zero-filled"

    def __call__(self, sample: MRISample) -> Reconstruction:
        kspace, rows = reduced_problem(sample, self.reduce_readout)
        image = rss_image(zero_filled_coils(kspace))
        # Predicts nothing where it did not measure: its k-space is the measured one.
        return Reconstruction(to_target(image, sample.target_size), kspace, {"grid_rows": rows})


class ShiftedWaveletL1(sigpy.prox.Prox):
    """The proximal operator of ``lamda ||W S x||_1`` with a new random circular shift S of the
    image at every call (cycle spinning, as BART's ``pics`` does unless told ``-n``). A fixed
    wavelet grid leaves blocky artefacts where edges fall on block borders; shifting the grid
    between iterations averages them out. Seeded: the same call sequence gives the same result."""

    def __init__(self, shape, lamda: float, wave_name: str = "db4", seed: int = 0):
        self.wavelet = sigpy.linop.Wavelet(shape, wave_name=wave_name)
        self.lamda = lamda
        self.rng = np.random.default_rng(seed)
        super().__init__(shape)

    def _prox(self, alpha, input):
        shift = [int(self.rng.integers(0, n)) for n in self.shape[-2:]]
        shifted = self.wavelet * sigpy.linop.Circshift(self.shape, shift, axes=(-2, -1))
        return sigpy.prox.UnitaryTransform(sigpy.prox.L1Reg(self.wavelet.oshape, self.lamda), shifted)(alpha, input)


@dataclass
class SigPyRecon:
    """SigPy SENSE (``lamda`` = Tikhonov weight), L1-wavelet or TV with ESPIRiT maps.

    ``cycle_spin=True`` (L1-wavelet only) shifts the wavelet grid at random every iteration
    (:class:`ShiftedWaveletL1` in SigPy's ``LinearLeastSquares``, the solver of its
    ``L1WaveletRecon``); the default runs SigPy's ``L1WaveletRecon`` as it is. Measured in
    docs/real_data.md: cycle spinning scores much higher on real and simulated data.
    """

    method: str = "l1-wavelet"  # sense | l1-wavelet | tv
    lamda: float | None = None  # None: default_lamda(method, ...)
    max_iter: int = 100
    reduce_readout: bool = True
    show_pbar: bool = False
    cycle_spin: bool = False  # l1-wavelet only

    def solve(self, ksp: np.ndarray, maps: np.ndarray, lamda: float, weights: np.ndarray):
        """The SigPy app of the method on normalised k-space; returns the image (H, W)."""
        if self.method == "l1-wavelet" and self.cycle_spin:
            sense = sigpy.mri.linop.Sense(maps, weights=weights)
            proxg = ShiftedWaveletL1(maps.shape[1:], lamda)
            # As L1WaveletRecon: the weighted data term ||sqrt(w) (A x - y)||^2 (w is a 0/1 mask).
            return sigpy.app.LinearLeastSquares(sense, ksp * weights ** 0.5, proxg=proxg, max_iter=self.max_iter,
                                                show_pbar=self.show_pbar).run()
        app_cls = {"sense": sigpy.mri.app.SenseRecon, "l1-wavelet": sigpy.mri.app.L1WaveletRecon,
                   "tv": sigpy.mri.app.TotalVariationRecon}[self.method]
        return app_cls(ksp, maps, lamda, weights=weights, max_iter=self.max_iter, show_pbar=self.show_pbar).run()

    @property
    def name(self) -> str:
        return self.method

    def __call__(self, sample: MRISample) -> Reconstruction:
        kspace, rows = reduced_problem(sample, self.reduce_readout)
        lamda = default_lamda(self.method, kspace, sample.mask) if self.lamda is None else self.lamda
        scale = normalisation(kspace)
        ksp = to_numpy(kspace * scale)
        maps = sense_maps_for(kspace, sample.mask, sample.challenge)
        weights = np.broadcast_to(sample.mask.numpy(), ksp.shape[-2:]).astype(np.float32)
        image = from_numpy(self.solve(ksp, maps, lamda, weights)) / scale
        coil_images = Sense(from_numpy(maps), torch.ones(1, ksp.shape[-1])).expand(image)
        predicted = fft2c(coil_images)  # the full (unmasked) coil k-space the image predicts
        # RSS of the coil images S x: on the scale of the fastMRI (RSS) target.
        return Reconstruction(to_target(rss_image(coil_images), sample.target_size), predicted,
                              {"grid_rows": rows, "lamda": lamda})


CLASSICAL_METHODS = ("zero-filled", "sense", "l1-wavelet", "tv")


def classical_reconstructor(method: str, lamda: float | None = None, **kwargs):
    if method == "zero-filled":
        return ZeroFilled(**kwargs)
    if method in ("sense", "l1-wavelet", "tv"):
        return SigPyRecon(method=method, lamda=lamda, **kwargs)
    raise ValueError(f"unknown classical method {method!r}; choose from {CLASSICAL_METHODS}")
