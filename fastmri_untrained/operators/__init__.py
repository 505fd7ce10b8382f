"""Forward operators (physics): MRI Fourier/SENSE models and generic synthetic operators."""

from .base import Identity, LinearOperator, adjoint_test
from .gaussian import Denoising, GaussianMatrix, Inpainting, SubsampledDCT
from .masks import MASK_TYPES, calibration_width, make_mask
from .mri import ReadoutReduction, Sense, SubsampledFourier, expand_readout, reduce_readout

__all__ = ["LinearOperator", "Identity", "adjoint_test", "GaussianMatrix", "SubsampledDCT", "Denoising",
           "Inpainting", "SubsampledFourier", "Sense", "ReadoutReduction", "reduce_readout",
           "expand_readout", "MASK_TYPES", "make_mask", "calibration_width"]
