"""Un-trained convolutional network reconstruction for fastMRI and linear inverse problems.

The names a user needs are importable from here (``import fastmri_untrained as fu``):

- reconstruction of fastMRI samples: :class:`UntrainedReconstructor`, :class:`UntrainedConfig`,
  :func:`sample_from_varnet`, :class:`MRISample`, :class:`Reconstruction`;
- whole datasets: :func:`reconstruct_dataset`, :class:`MaskSpec`, :func:`simulate_dataset`,
  :func:`fastmri_mask_func`;
- the forward operators: :class:`SubsampledFourier`, :class:`Sense`, :func:`espirit_maps`,
  :class:`GaussianMatrix`, :class:`SubsampledDCT`, :class:`Denoising`, :class:`Inpainting`;
- networks and fitting: :func:`build_net`, :func:`fit`, :class:`FitConfig`,
  :class:`EarlyStopConfig`;
- metrics: :func:`volume_metrics` (fastMRI's NMSE / PSNR / SSIM of one volume).

They are imported on first use, except the fitting engine: its function :func:`fit` shares its
name with the module ``fastmri_untrained.fit``, and only an import here keeps the name bound to
the function once the module is loaded.
"""

from importlib import import_module

from .fit import EarlyStopConfig, FitConfig, fit

__version__ = "0.1.0"

_PUBLIC = {
    "UntrainedReconstructor": "recon", "UntrainedConfig": "recon",
    "MRISample": "mri", "Reconstruction": "mri", "sample_from_varnet": "mri",
    "reconstruct_dataset": "lightning", "MaskSpec": "pipeline",
    "simulate_dataset": "data.simulate",
    "fastmri_mask_func": "operators.masks",
    "SubsampledFourier": "operators.mri", "Sense": "operators.mri",
    "espirit_maps": "operators.espirit",
    "GaussianMatrix": "operators.gaussian", "SubsampledDCT": "operators.gaussian",
    "Denoising": "operators.gaussian", "Inpainting": "operators.gaussian",
    "build_net": "nets",
    "volume_metrics": "evaluate",
}
__all__ = sorted([*_PUBLIC, "fit", "FitConfig", "EarlyStopConfig"])


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
