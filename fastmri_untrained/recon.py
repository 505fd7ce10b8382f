"""Un-trained network reconstruction of one fastMRI slice: sample in, fastMRI target out.

    recon = UntrainedReconstructor(UntrainedConfig(method="conv-decoder"))
    for sample in SliceDataset(root, "multicoil", transform=VarNetDataTransform(mask_func)):
        image = recon(sample_from_varnet(sample)).image     # (320, 320) for knee

Pipeline per slice: readout reduction (exact, halves the problem) -> network with 2C output
channels (coil-image model) or 2 channels (SENSE model with ESPIRiT maps) -> the fitting
engine (:func:`fit.fit`) on ||M F (...) - y||^2 -> data consistency (measured k-space put back)
-> coil combination (RSS) -> centre crop to the fastMRI target size. With ``ensemble = K`` the
network is fitted K times from seeds ``seed, seed+1, ...`` and the outputs are averaged before
data consistency (the deep decoder's default, see ``DEFAULT_ENSEMBLE``).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from .baselines import sense_maps_for
from .edges import channels_to_complex
from .fit import EarlyStopConfig, FitConfig, FitResult, fit
from .mri import (MRISample, Reconstruction, data_consistency, holdout_split, kspace_nmse, reduced_problem,
                  rss_image, to_target)
from .nets import build_net
from .nets.common import check_positive_int
from .operators.espirit import min_calibration_width
from .operators.fourier import fft2c, ifft2c
from .operators.masks import calibration_width
from .operators.mri import Sense, SubsampledFourier

UNTRAINED_METHODS = ("deep-decoder", "conv-decoder", "dip")
FORWARD_MODELS = ("coil-images", "sense")

# Per-method defaults: network size and fitting schedule, chosen on simulated tuning slices that
# are never scored (scripts/tune_untrained.py); the measurements are in docs/tuning.md.
DEFAULT_NET = {
    "conv-decoder": dict(layers=6, channels=64, in_size=(8, 8)),
    "deep-decoder": dict(layers=6, channels=128, in_size=(8, 8)),
    "dip": dict(levels=4, channels_down=64, channels_up=64, channels_skip=4),
}
# The deep decoder (1x1 convolutions, few parameters) fits one image through ESPIRiT maps better
# than 2C coil images; the ConvDecoder the other way round.
DEFAULT_FORWARD_MODEL = {"conv-decoder": "coil-images", "deep-decoder": "sense", "dip": "coil-images"}
# The deep decoder's input size sets how much its fixed bilinear upsampling smooths: 8x8 is best
# on 256x256 grids, a larger input on smaller ones, so grids smaller than SMALL_GRID start from a
# quarter of the grid, at most SMALL_GRID_DD_IN_SIZE.
SMALL_GRID = 192
SMALL_GRID_DD_IN_SIZE = 32
# The deep decoder's result depends on its random start and it overfits at 8x; the mean of two
# short fits beats one fit of the same total length. ConvDecoder and DIP vary less and fit once.
DEFAULT_ENSEMBLE = {"conv-decoder": 1, "deep-decoder": 2, "dip": 1}
DEFAULT_FIT = {
    "conv-decoder": dict(iterations=1000, lr=0.008, lr_schedule="cosine", lr_min_factor=0.05),
    "deep-decoder": dict(iterations=500, lr=0.008, lr_schedule="cosine", lr_min_factor=0.05),
    "dip": dict(iterations=1000, lr=0.002, lr_schedule="cosine", lr_min_factor=0.05),
}


def default_net(method: str, out_size) -> dict:
    """The network configuration a method uses on an ``out_size`` grid when the user sets none."""
    net = dict(DEFAULT_NET[method])
    if method == "deep-decoder" and min(out_size) < SMALL_GRID:
        net["in_size"] = tuple(max(1, min(SMALL_GRID_DD_IN_SIZE, s // 4)) for s in out_size)
    return net


@dataclass
class UntrainedConfig:
    """Everything that defines an un-trained reconstruction."""

    method: str = "conv-decoder"
    forward_model: Optional[str] = None  # coil-images (RSS of coil images) | sense (ESPIRiT maps); None: per method
    net: dict = field(default_factory=dict)  # overrides of the network config (e.g. channels=64)
    fit: Optional[FitConfig] = None  # None: DEFAULT_FIT[method]
    ensemble: Optional[int] = None  # fits averaged (seeds seed, seed+1, ...); None: DEFAULT_ENSEMBLE[method]
    early_stop: str = "none"  # none | holdout
    holdout_fraction: float = 0.1
    holdout_patience: int = 200
    refit_on_all: bool = True  # after holdout stopping, refit on all samples for as many steps
    data_consistency: bool = True
    reduce_readout: bool = True
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self):
        if self.method not in UNTRAINED_METHODS:
            raise ValueError(f"unknown un-trained method {self.method!r}; choose from {UNTRAINED_METHODS}")
        # forward_model stays None when not chosen: the method's default, which may fall back
        # (see MRIProblem); a chosen one is kept or refused.
        if self.forward_model is not None and self.forward_model not in FORWARD_MODELS:
            raise ValueError(f"unknown forward model {self.forward_model!r}; choose from {FORWARD_MODELS}")
        if self.ensemble is None:
            self.ensemble = DEFAULT_ENSEMBLE[self.method]
        check_positive_int("ensemble", self.ensemble)
        if self.early_stop not in ("none", "holdout"):
            raise ValueError(f"early_stop must be 'none' or 'holdout', got {self.early_stop!r}")

    @property
    def model(self) -> str:
        """The forward model to use: the chosen one, else the method's default."""
        return self.forward_model or DEFAULT_FORWARD_MODEL[self.method]

    def net_overrides(self, out_size) -> dict:
        """The network configuration on an ``out_size`` grid: the method's default, then ``net``."""
        return {**default_net(self.method, out_size), **self.net}

    def fit_config(self) -> FitConfig:
        if self.fit is not None:
            return self.fit
        return FitConfig(seed=self.seed, **DEFAULT_FIT[self.method])


class MRIProblem:
    """The fitting problem of one slice: operator, measurements, network factory, finishing."""

    def __init__(self, sample: MRISample, config: UntrainedConfig):
        self.sample, self.config = sample, config
        device = torch.device(config.device)
        kspace, self.rows = reduced_problem(sample, config.reduce_readout)
        self.kspace = kspace.to(device)
        self.mask = sample.mask.to(device)
        coils = kspace.shape[0]
        self.use_sense = config.model == "sense" and sample.challenge == "multicoil" and coils > 1
        if self.use_sense and config.forward_model is None and calibration_width(sample.mask) < min_calibration_width():
            # The default SENSE model of a method, on a centre too narrow for ESPIRiT (small
            # matrices): fit coil images instead, as a user who chose nothing would want.
            warnings.warn(f"{config.method}: the fully sampled centre is {calibration_width(sample.mask)} lines "
                          f"wide, too narrow for ESPIRiT maps (at least {min_calibration_width()}); fitting coil "
                          "images instead (--forward-model coil-images)", UserWarning)
            self.use_sense = False
        if self.use_sense:
            self.maps = torch.from_numpy(sense_maps_for(kspace, sample.mask, sample.challenge)).to(device)
            self.out_channels = 2
        else:
            self.maps = None
            self.out_channels = 2 * coils
        self.out_size = tuple(kspace.shape[-2:])

    def operator(self, mask: torch.Tensor):
        return Sense(self.maps, mask) if self.use_sense else SubsampledFourier(mask)

    def to_operator_input(self, output: torch.Tensor) -> torch.Tensor:
        x = channels_to_complex(output)
        return x[0] if self.use_sense else x

    def coil_images(self, output: torch.Tensor) -> torch.Tensor:
        x = self.to_operator_input(output)
        return Sense(self.maps, torch.ones_like(self.mask)).expand(x) if self.use_sense else x

    def build_net(self, seed: Optional[int] = None):
        seed = self.config.seed if seed is None else seed
        return build_net(self.config.method, self.out_channels, self.out_size, seed=seed,
                         **self.config.net_overrides(self.out_size)).to(self.kspace.device)

    def forward_model(self, mask: torch.Tensor):
        op = self.operator(mask).to(self.kspace.device)
        return lambda output: op(self.to_operator_input(output))

    def finish(self, output: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """Data consistency, RSS, crop: (fastMRI target image, predicted coil k-space)."""
        predicted = fft2c(self.coil_images(output))
        kspace = data_consistency(predicted, self.kspace, self.mask) if self.config.data_consistency else predicted
        image = rss_image(ifft2c(kspace))
        return to_target(image, self.sample.target_size), predicted


class UntrainedReconstructor:
    """Callable ``(MRISample) -> Reconstruction`` fitting an un-trained network per slice."""

    def __init__(self, config: Optional[UntrainedConfig] = None, show_progress: bool = True):
        self.config = config or UntrainedConfig()
        self.show_progress = show_progress
        self.last_fit: Optional[FitResult] = None

    @property
    def name(self) -> str:
        return self.config.method

    def __call__(self, sample: MRISample, monitor=None) -> Reconstruction:
        """Fit (``config.ensemble`` times, averaging the outputs) and finish one slice.

        Args:
            sample: complex64 k-space (C, H, W), zeros where unsampled, and its mask.
            monitor: called with the finished image of the first fit every ``track_every``
                iterations; its values land in ``last_fit.history`` (``last_fit`` is the
                first, monitored, fit of the ensemble).

        Returns:
            ``Reconstruction``: ``image`` float32 (h, w) at ``sample.target_size`` (RSS
            magnitude, as fastMRI's target); ``kspace`` the predicted complex64 coil k-space
            (C, rows, W) on the fitted grid; ``info`` the fit's iterations, stop reason, seconds.
        """
        cfg = self.config
        problem = MRIProblem(sample, cfg)
        fit_cfg = dataclasses.replace(cfg.fit_config(), show_progress=self.show_progress)
        track = None if monitor is None else (lambda out: monitor(problem.finish(out)[0]))
        info = {"grid_rows": problem.rows, "ensemble": cfg.ensemble}
        outputs, seconds = [], 0.0
        for member in range(cfg.ensemble):
            desc = f"{cfg.method} {sample.fname}:{sample.slice_num}"
            if cfg.ensemble > 1:
                desc += f" [{member + 1}/{cfg.ensemble}]"
            member_fit = dataclasses.replace(fit_cfg, seed=fit_cfg.seed + member)
            result, holdout_info = self._fit_one(problem, cfg.seed + member, member_fit,
                                                 track if member == 0 else None, desc)
            info.update(holdout_info)
            outputs.append(result.output)
            seconds += result.seconds
            if member == 0:
                self.last_fit = result
        # The mean of the network outputs: linear in the coil images (or the SENSE image).
        output = outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(dim=0)
        image, predicted = problem.finish(output)
        info.update(iterations=result.iterations, returned_iteration=result.returned_iteration,
                    stop_reason=result.stop_reason, seconds=seconds)
        return Reconstruction(image, predicted, info)

    def _fit_one(self, problem: MRIProblem, seed: int, fit_cfg: FitConfig, track, desc: str
                 ) -> tuple[FitResult, dict]:
        """One fit from ``seed``: on all samples, or with held-out early stopping (and refit).
        Returns the result and, for held-out stopping, where it stopped (else ``{}``)."""
        cfg = self.config
        if cfg.early_stop != "holdout":
            return fit(problem.build_net(seed), problem.forward_model(problem.mask), problem.kspace, fit_cfg,
                       monitor=track, description=desc), {}
        fit_mask, validation = holdout_validation(problem, cfg.holdout_fraction, seed)
        es_cfg = dataclasses.replace(fit_cfg, early_stop=EarlyStopConfig(patience=cfg.holdout_patience))
        result = fit(problem.build_net(seed), problem.forward_model(fit_mask), problem.kspace * fit_mask, es_cfg,
                     validation=validation, description=desc + " (holdout)")
        holdout_info = dict(holdout_stop_iteration=result.returned_iteration, holdout_stop_reason=result.stop_reason,
                            holdout_history=result.history)
        if cfg.refit_on_all and result.returned_iteration > 0:
            refit_cfg = dataclasses.replace(fit_cfg, iterations=result.returned_iteration)
            result = fit(problem.build_net(seed), problem.forward_model(problem.mask), problem.kspace, refit_cfg,
                         monitor=track, description=desc)
        return result, holdout_info


def holdout_validation(problem: MRIProblem, fraction: float, seed: int):
    """Hold out ``fraction`` of the acquired samples of ``problem`` (drawn from ``seed``,
    :func:`mri.holdout_split`) for early stopping: returns ``(fit_mask, validation)``, where
    ``validation(output)`` is the k-space NMSE of the network output's prediction of the held-out
    samples (the fit sees ``problem.kspace * fit_mask`` only). Used by :class:`UntrainedReconstructor`
    and :func:`lightning.slice_fit_module`."""
    fit_mask, held = holdout_split(problem.mask.cpu(), fraction, seed=seed)
    fit_mask, held = fit_mask.to(problem.mask.device), held.to(problem.mask.device)
    full_op = problem.operator(torch.ones_like(problem.mask)).to(problem.kspace.device)

    def validation(output: torch.Tensor) -> float:
        return kspace_nmse(full_op(problem.to_operator_input(output)), problem.kspace, held)

    return fit_mask, validation
