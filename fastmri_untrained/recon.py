"""Un-trained network reconstruction of one fastMRI slice: sample in, fastMRI target out.

    recon = UntrainedReconstructor(UntrainedConfig(method="conv-decoder"))
    for sample in SliceDataset(root, "multicoil", transform=VarNetDataTransform(mask_func)):
        image = recon(sample_from_varnet(sample)).image     # (320, 320) for knee

Pipeline per slice: readout reduction (exact, halves the problem) -> network with 2C output
channels (coil-image model) or 2 channels (SENSE model with ESPIRiT maps) -> the fitting
engine (:func:`fit.fit`) on ||M F (...) - y||^2 -> data consistency (measured k-space put back)
-> coil combination (RSS) -> centre crop to the fastMRI target size. With ``ensemble = K`` the
network is fitted K times from seeds ``seed, seed+1, ...`` and the outputs are averaged before
data consistency (the deep decoder's default, see ``DEFAULT_ENSEMBLE``); the members' per-pixel
standard deviation is kept as an uncertainty map (``Reconstruction.info["image_std"]``).

With ``warm_start = N > 0`` a slice whose neighbour (``slice_num - 1`` of the same volume) was
fitted by the same reconstructor starts from that neighbour's fitted weights (and fixed input)
and is fitted for N iterations instead of the full budget. Off by default: at 20% of the
iterations a volume takes a third of the time but loses 0.03 SSIM, at 35% 0.37-0.43 of the time
at no measurable loss (docs/benchmarks.md).

With ``joint_slices = K > 1`` a volume's slices are fitted K at a time by ONE network
(:class:`JointProblem`): its layers are shared, its last 1x1 convolution gives each slice its own
output channels -- as the coil-image model already gives each coil its own -- so K slices cost
about one slice's fit; then each slice may take a few steps alone from its copy of the joint
network (``JOINT_BUDGET`` sets both, ``DEFAULT_JOINT_SLICES`` where it is the default;
docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from .baselines import sense_maps_for
from .edges import channels_to_complex
from .errors import InputError
from .fit import EarlyStopConfig, FitConfig, FitResult, fit, fit_batched
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


@dataclass(frozen=True)
class JointBudget:
    """The fit of a joint network (``UntrainedConfig.joint_slices``), relative to a method's
    per-slice fit: ``iterations`` and ``lr`` scale the per-slice ones; then each slice gets its own
    copy of the fitted network (:meth:`JointProblem.slice_net`) and ``refine`` x the per-slice
    iterations more, alone, at ``refine_lr`` x the per-slice learning rate under
    ``refine_schedule`` (0: none)."""

    iterations: float = 1.0
    lr: float = 1.0
    refine: float = 0.0
    refine_lr: float = 1.0
    refine_schedule: str = "constant"


# Measured with scripts/bench_volume.py and scripts/joint_refine_curve.py (docs/benchmarks.md).
# The ConvDecoder's joint network leaves its volume short of its fits per slice; 150 steps per
# slice from the joint network at a constant 1/10 of the learning rate close the gap (a full-rate
# Adam restart undoes the joint fit; a decaying rate stops short). The deep decoder gains from
# sharing at its per-slice budget. The DIP is not measured and takes the ConvDecoder's budget.
JOINT_BUDGET = {"conv-decoder": JointBudget(iterations=1.0, lr=1.5, refine=0.15, refine_lr=0.1),
                "deep-decoder": JointBudget(),
                "dip": JointBudget(iterations=1.0, lr=1.5, refine=0.15, refine_lr=0.1)}
# Slices one network fits by default (UntrainedConfig.joint_slices=None) where nothing per slice
# (warm starts, batches, held-out early stopping) is asked for. On an 8-slice volume the deep
# decoder's joint network takes 13-16% of the time of its fits per slice at higher SSIM; the
# ConvDecoder's, refined, about a third of the time at SSIM +0.001 on average over two draws at
# 4x (-0.006 and +0.008) and +0.08 at 8x. The DIP is not measured (docs/benchmarks.md).
DEFAULT_JOINT_SLICES = {"conv-decoder": 8, "deep-decoder": 8, "dip": 1}


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
    # Iterations of a slice started from its fitted neighbour's weights (0: every slice from scratch).
    warm_start: int = 0
    # Fits stepped together in one pass (fit.BatchedFitter): the ensemble members of a slice and,
    # for a volume (reconstruct_volume), its slices. 1: one fit after another (faster on CPU).
    batch: int = 1
    # Consecutive slices of a volume (of one shape) fitted by ONE network whose last 1x1
    # convolution gives each slice its own output channels (JointProblem): the layers are shared
    # along the slice direction, so a volume costs about one slice's fit of ``joint_iterations``.
    # 1: a network per slice. None: DEFAULT_JOINT_SLICES[method], or 1 where warm_start, batch or
    # held-out early stopping asks for fits per slice (see slices_per_network).
    joint_slices: Optional[int] = None
    joint_iterations: Optional[int] = None  # None: the per-slice budget x JOINT_BUDGET[method]
    joint_refine: Optional[int] = None  # per-slice steps after a joint fit; None: JOINT_BUDGET[method]
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
        if not (isinstance(self.warm_start, int) and self.warm_start >= 0):
            raise ValueError(f"warm_start must be an integer >= 0 (iterations; 0 = off), got {self.warm_start!r}")
        check_positive_int("batch", self.batch)
        if self.joint_slices is not None:
            check_positive_int("joint_slices", self.joint_slices)
        if self.joint_iterations is not None:
            check_positive_int("joint_iterations", self.joint_iterations)
        if self.joint_refine is not None and not (isinstance(self.joint_refine, int) and self.joint_refine >= 0):
            raise ValueError(f"joint_refine must be an integer >= 0 (iterations; 0 = none), got {self.joint_refine!r}")
        if self.joint_slices is not None and self.joint_slices > 1:
            for name, value, off in (("warm_start", self.warm_start, 0), ("batch", self.batch, 1),
                                     ("early_stop", self.early_stop, "none")):
                if value != off:
                    raise InputError("joint_slices", f"{self.joint_slices} fits a run of slices with one network; "
                                                     f"it cannot be combined with {name} = {value!r}")
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

    @property
    def per_slice_asked(self) -> bool:
        """Whether warm starts, batches or held-out early stopping ask for a fit per slice."""
        return self.warm_start > 0 or self.batch > 1 or self.early_stop != "none"

    @property
    def slices_per_network(self) -> int:
        """Consecutive slices one network fits: ``joint_slices``, else the method's default
        (``DEFAULT_JOINT_SLICES``) unless fits per slice are asked for."""
        if self.joint_slices is not None:
            return self.joint_slices
        return 1 if self.per_slice_asked else DEFAULT_JOINT_SLICES[self.method]

    def joint_fit_config(self) -> FitConfig:
        """The fit of one joint network: :meth:`fit_config` with its iterations and learning rate
        scaled by ``JOINT_BUDGET[method]`` (``joint_iterations``, when set, replaces the scaled
        iterations)."""
        fit_cfg, budget = self.fit_config(), JOINT_BUDGET[self.method]
        iterations = self.joint_iterations or max(1, round(budget.iterations * fit_cfg.iterations))
        return dataclasses.replace(fit_cfg, iterations=iterations, lr=budget.lr * fit_cfg.lr)

    def joint_refine_config(self) -> FitConfig:
        """Each slice's own fit after a joint fit, from its copy of the joint network:
        ``joint_refine`` (default ``JOINT_BUDGET[method].refine`` x the per-slice iterations)
        iterations at ``refine_lr`` x the per-slice learning rate, under ``refine_schedule``
        (0 iterations: none)."""
        fit_cfg, budget = self.fit_config(), JOINT_BUDGET[self.method]
        iterations = self.joint_refine if self.joint_refine is not None else round(budget.refine * fit_cfg.iterations)
        return dataclasses.replace(fit_cfg, iterations=iterations, lr=budget.refine_lr * fit_cfg.lr,
                                   lr_schedule=budget.refine_schedule)

    @property
    def slices_per_pass(self) -> int:
        """How many slices of a volume one fit takes: joint or batched."""
        return max(self.slices_per_network, self.batch)


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

    def net_key(self) -> tuple:
        """What a network's weights fit: method, output channels and size, network config (warm
        starts pass weights between slices with equal keys only)."""
        cfg = self.config
        return (cfg.method, self.out_channels, self.out_size, tuple(sorted(cfg.net_overrides(self.out_size).items())))

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


class JointProblem:
    """Consecutive slices of one shape fitted by one network: its output holds the slices'
    outputs side by side along the channels (each slice ``problems[0].out_channels``), and its
    forward model stacks each slice's own (operator, mask, maps) along a new first dimension."""

    def __init__(self, problems: Sequence[MRIProblem]):
        self.problems = list(problems)
        first = self.problems[0]
        if any(p.out_size != first.out_size or p.out_channels != first.out_channels for p in self.problems):
            raise ValueError("problems: a joint fit needs slices of one grid and forward model")
        self.channels = first.out_channels
        self.kspace = torch.stack([p.kspace for p in self.problems])

    def build_net(self, seed: int):
        first = self.problems[0]
        cfg = first.config
        return build_net(cfg.method, len(self.problems) * self.channels, first.out_size, seed=seed,
                         **cfg.net_overrides(first.out_size)).to(self.kspace.device)

    def slice_net(self, net: torch.nn.Module, index: int, seed: int) -> torch.nn.Module:
        """Slice ``index``'s own network: a copy of the joint network ``net`` (built with ``seed``)
        whose last convolution (``head``) keeps that slice's block of output channels only, so that
        it outputs ``split(net())[index]``."""
        single = self.problems[index].build_net(seed)
        rows = slice(index * self.channels, (index + 1) * self.channels)
        single.load_state_dict({name: value[rows] if name.startswith("head.") else value
                                for name, value in net.state_dict().items()})
        return single

    def split(self, output: torch.Tensor) -> list[torch.Tensor]:
        """The joint output (1, S x channels, H, W) as S per-slice outputs (1, channels, H, W)."""
        return list(torch.split(output, self.channels, dim=1))

    def forward_model(self):
        """Network output -> the slices' predicted k-space (S, C, H, W). With one mask for all
        slices (a fastMRI volume's), one Fourier transform of the stacked coil images: each
        slice's own operator applied to its channels, without S separate transforms."""
        shape = tuple(self.kspace.shape)
        first = self.problems[0]
        one_set = not first.use_sense or all(p.maps.ndim == 3 for p in self.problems)
        if one_set and all(torch.equal(p.mask, first.mask) for p in self.problems[1:]):
            fourier = SubsampledFourier(first.mask).to(self.kspace.device)
            maps = torch.stack([p.maps for p in self.problems]) if first.use_sense else None

            def stacked(output: torch.Tensor) -> torch.Tensor:
                x = channels_to_complex(output)  # (S x complex channels per slice, H, W), slice-major
                # SENSE: slice s's image times its own maps (Sense.expand of one set, per slice).
                coil_images = x[:, None] * maps if maps is not None else x.reshape(shape)
                return fourier(coil_images)
        else:
            models = [p.forward_model(p.mask) for p in self.problems]

            def stacked(output: torch.Tensor) -> torch.Tensor:
                return torch.stack([model(out) for model, out in zip(models, self.split(output))])

        def forward(output: torch.Tensor) -> torch.Tensor:
            predicted = stacked(output)
            if tuple(predicted.shape) != shape:  # the loss would broadcast silently
                raise ValueError(f"joint forward model: predicted {tuple(predicted.shape)}, measured {shape}")
            return predicted

        return forward


class WarmStarts:
    """The fitted weights of the last slices of one volume, for warm starts of their neighbours.

    Holds one volume at a time (a volume's slices arrive in order on one process; a new volume
    clears the store) and its last two slices: when slice s is also reconstructed a second time
    (the held-out score refits it on fewer samples) it still finds slice s-1. The first fit of a
    slice is the one kept, so what initialises slice s+1 never depends on such extra fits.
    """

    def __init__(self):
        self.volume: Optional[str] = None
        self.slices: dict[int, tuple] = {}  # slice_num -> (shape key, [state_dict per ensemble member])

    def get(self, sample: MRISample, key: tuple) -> Optional[list]:
        """The states fitted on ``sample``'s neighbour (``slice_num - 1``), or None."""
        if self.volume != sample.fname or sample.slice_num - 1 not in self.slices:
            return None
        neighbour_key, states = self.slices[sample.slice_num - 1]
        if neighbour_key != key:
            warnings.warn(f"{sample.fname}:{sample.slice_num}: the network of slice {sample.slice_num - 1} has "
                          f"another shape ({neighbour_key} vs {key}); fitting from scratch", UserWarning)
            return None
        return states

    def put(self, sample: MRISample, key: tuple, nets: list) -> None:
        if self.volume != sample.fname:
            self.volume, self.slices = sample.fname, {}
        if sample.slice_num in self.slices:
            return
        self.slices[sample.slice_num] = (key, [{k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                                               for net in nets])
        for old in sorted(self.slices)[:-2]:
            del self.slices[old]


class UntrainedReconstructor:
    """Callable ``(MRISample) -> Reconstruction`` fitting an un-trained network per slice.

    ``warm_starts`` is shared by the per-slice copies a driver makes (:func:`pipeline.for_slice`)
    so that ``config.warm_start`` can pass weights from one slice to the next."""

    def __init__(self, config: Optional[UntrainedConfig] = None, show_progress: bool = True,
                 warm_starts: Optional[WarmStarts] = None):
        self.config = config or UntrainedConfig()
        self.show_progress = show_progress
        self.last_fit: Optional[FitResult] = None
        self.warm_starts = warm_starts if warm_starts is not None else WarmStarts()

    @property
    def name(self) -> str:
        return self.config.method

    def with_seed(self, seed: int) -> "UntrainedReconstructor":
        """This reconstructor with every fit seeded from ``seed`` (network, input noise, held-out
        split), sharing its warm-start store."""
        cfg = self.config
        config = dataclasses.replace(cfg, seed=seed, fit=dataclasses.replace(cfg.fit_config(), seed=seed))
        return UntrainedReconstructor(config, show_progress=self.show_progress, warm_starts=self.warm_starts)

    def __call__(self, sample: MRISample | Sequence[MRISample], monitor=None):
        """Fit (``config.ensemble`` times, averaging the outputs) and finish one slice; a list of
        slices (a volume) is :meth:`reconstruct_volume`'s and returns a list.

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
        if not isinstance(sample, MRISample):  # a volume: a list of slices
            return self.reconstruct_volume(sample)
        cfg = self.config
        if self._batched() and cfg.ensemble > 1 and monitor is None:
            return self._fit_together([sample], [cfg.seed])[0]
        problem = MRIProblem(sample, cfg)
        key = problem.net_key()
        fit_cfg, warm = self._fit_start(sample, key)
        track = None if monitor is None else (lambda out: monitor(problem.finish(out)[0]))
        info = {"grid_rows": problem.rows, "ensemble": cfg.ensemble, "warm_start": warm is not None}
        outputs, nets, seconds = [], [], 0.0
        for member in range(cfg.ensemble):
            desc = f"{cfg.method} {sample.fname}:{sample.slice_num}"
            if cfg.ensemble > 1:
                desc += f" [{member + 1}/{cfg.ensemble}]"
            member_fit = dataclasses.replace(fit_cfg, seed=fit_cfg.seed + member)
            result, holdout_info, net = self._fit_one(problem, cfg.seed + member, member_fit,
                                                      track if member == 0 else None, desc,
                                                      None if warm is None else warm[member])
            info.update(holdout_info)
            outputs.append(result.output)
            nets.append(net)
            seconds += result.seconds
            if member == 0:
                self.last_fit = result
        if cfg.warm_start > 0:
            self.warm_starts.put(sample, key, nets)
        info.update(iterations=result.iterations, returned_iteration=result.returned_iteration,
                    stop_reason=result.stop_reason, seconds=seconds)
        return finish_members(problem, outputs, info)

    def _fit_start(self, sample: MRISample, key: tuple) -> tuple[FitConfig, Optional[list]]:
        """The fit configuration for ``sample`` and the neighbour's weights it starts from (or
        None): with a warm start, ``config.warm_start`` iterations instead of the full budget."""
        cfg = self.config
        fit_cfg = dataclasses.replace(cfg.fit_config(), show_progress=self.show_progress)
        warm = self.warm_starts.get(sample, key) if cfg.warm_start > 0 else None
        if warm is not None:
            fit_cfg = dataclasses.replace(fit_cfg, iterations=cfg.warm_start)
        return fit_cfg, warm

    def _batched(self) -> bool:
        # Held-out early stopping refits each member for its own number of steps: one at a time.
        return self.config.batch > 1 and self.config.early_stop == "none"

    def reconstruct_volume(self, samples: Sequence[MRISample], seeds: Optional[Sequence[int]] = None
                           ) -> list[Reconstruction]:
        """Reconstruct the slices of one volume, in order; ``seeds`` (one per slice; default
        ``config.seed``) seed each slice's fits, as :func:`pipeline.for_slice` does.

        With ``config.batch = K > 1`` runs of up to K consecutive slices of one shape are fitted
        in one pass (:func:`fit.fit_batched`, every ensemble member of each slice included); a
        slice of another shape starts a new run, nothing is broadcast. Each fit equals its fit
        alone (tests/test_fit.py) except for warm starts: the slices of a run all start from the
        slice before the run (they cannot start from each other). With ``batch = 1`` or held-out
        early stopping the slices are fitted one after another (:meth:`__call__`). With
        ``config.slices_per_network = K > 1`` (the deep decoder's and ConvDecoder's default) runs
        of up to K slices of one shape are each fitted by one network (:meth:`_fit_joint`).
        """
        cfg = self.config
        seeds = [cfg.seed] * len(samples) if seeds is None else list(seeds)
        if len(seeds) != len(samples):
            raise ValueError(f"seeds: one per sample, got {len(seeds)} for {len(samples)} samples")
        if cfg.slices_per_network > 1:
            return [rec for run in _shape_runs(samples, cfg.slices_per_network)
                    for rec in self._fit_joint([samples[i] for i in run], [seeds[i] for i in run])]
        if not self._batched():
            return [self.with_seed(seed)(sample) for sample, seed in zip(samples, seeds)]
        return [rec for run in _shape_runs(samples, cfg.batch)
                for rec in self._fit_fitting_memory([samples[i] for i in run], [seeds[i] for i in run])]

    def _fit_joint(self, samples: Sequence[MRISample], seeds: Sequence[int]) -> list[Reconstruction]:
        """The slices ``samples`` (one shape) fitted by one network per ensemble member
        (:class:`JointProblem`), seeded by the first slice's seed, then each slice alone from its
        copy of that network for ``joint_refine_config().iterations``; a run of one slice is an
        ordinary fit."""
        if len(samples) == 1:
            return [self.with_seed(seeds[0])(samples[0])]
        cfg = self.config
        problems = [MRIProblem(sample, cfg) for sample in samples]
        joint = JointProblem(problems)
        fit_cfg = dataclasses.replace(cfg.joint_fit_config(), show_progress=self.show_progress)
        refine_cfg = dataclasses.replace(cfg.joint_refine_config(), show_progress=self.show_progress)
        outputs: list[list[torch.Tensor]] = [[] for _ in problems]
        seconds = 0.0
        run = f"{samples[0].fname}:{samples[0].slice_num}-{samples[-1].slice_num}"
        for member in range(cfg.ensemble):
            seed = seeds[0] + member
            suffix = f" [{member + 1}/{cfg.ensemble}]" if cfg.ensemble > 1 else ""
            net = joint.build_net(seed)
            result = fit(net, joint.forward_model(), joint.kspace, dataclasses.replace(fit_cfg, seed=seed),
                         description=f"{cfg.method} {run} (joint){suffix}")
            seconds += result.seconds
            if member == 0:
                self.last_fit = result
            for index, (problem, output) in enumerate(zip(problems, joint.split(result.output))):
                if refine_cfg.iterations > 0:
                    refined = fit(joint.slice_net(net, index, seed), problem.forward_model(problem.mask),
                                  problem.kspace, dataclasses.replace(refine_cfg, seed=seed),
                                  description=f"{cfg.method} {problem.sample.fname}:{problem.sample.slice_num} "
                                              f"(refine){suffix}")
                    output, seconds = refined.output, seconds + refined.seconds
                outputs[index].append(output)
        info = {"ensemble": cfg.ensemble, "warm_start": False, "joint": len(problems),
                "iterations": result.iterations, "refine_iterations": refine_cfg.iterations,
                "returned_iteration": result.returned_iteration, "stop_reason": result.stop_reason,
                "seconds": seconds / len(problems)}
        return [finish_members(problem, slice_outputs, {**info, "grid_rows": problem.rows})
                for problem, slice_outputs in zip(problems, outputs)]

    def _fit_fitting_memory(self, samples: Sequence[MRISample], seeds: Sequence[int]) -> list[Reconstruction]:
        """:meth:`_fit_together`, halving the run while the device runs out of memory (one line
        each time; a single slice that does not fit raises, as it would alone)."""
        try:
            return self._fit_together(samples, seeds)
        except torch.OutOfMemoryError:
            if len(samples) == 1:
                raise
            half = len(samples) // 2
            warnings.warn(f"{self.config.method}: {len(samples)} slices in one pass ran out of device memory; "
                          f"fitting {half} and {len(samples) - half}", RuntimeWarning)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return (self._fit_fitting_memory(samples[:half], seeds[:half])
                    + self._fit_fitting_memory(samples[half:], seeds[half:]))

    def _fit_together(self, samples: Sequence[MRISample], seeds: Sequence[int]) -> list[Reconstruction]:
        """The slices ``samples`` (one shape), every ensemble member of each, fitted in one pass."""
        cfg = self.config
        problems = [MRIProblem(sample, cfg) for sample in samples]
        key = problems[0].net_key()
        fit_cfg, warm = self._fit_start(samples[0], key)
        nets, forward_models, measurements, configs, descriptions = [], [], [], [], []
        for sample, problem, seed in zip(samples, problems, seeds):
            for member in range(cfg.ensemble):
                net = problem.build_net(seed + member)
                if warm is not None:
                    net.load_state_dict(warm[member])
                nets.append(net)
                forward_models.append(problem.forward_model(problem.mask))
                measurements.append(problem.kspace)
                configs.append(dataclasses.replace(fit_cfg, seed=seed + member))
                descriptions.append(f"{cfg.method} {sample.fname}:{sample.slice_num} [{member + 1}/{cfg.ensemble}]")
        results = fit_batched(nets, forward_models, measurements, configs, descriptions=descriptions,
                              description=f"{cfg.method} {samples[0].fname}:{samples[0].slice_num}-"
                                          f"{samples[-1].slice_num}")
        if cfg.warm_start > 0:
            self.warm_starts.put(samples[-1], key, nets[-cfg.ensemble:])
        out = []
        for i, problem in enumerate(problems):
            members = results[i * cfg.ensemble:(i + 1) * cfg.ensemble]
            self.last_fit = members[0]
            info = {"grid_rows": problem.rows, "ensemble": cfg.ensemble, "warm_start": warm is not None,
                    "batched": len(nets), "iterations": members[-1].iterations,
                    "returned_iteration": members[-1].returned_iteration, "stop_reason": members[-1].stop_reason,
                    "seconds": max(r.seconds for r in members)}
            out.append(finish_members(problem, [r.output for r in members], info))
        return out

    def _fit_one(self, problem: MRIProblem, seed: int, fit_cfg: FitConfig, track, desc: str,
                 init: Optional[dict] = None) -> tuple[FitResult, dict, torch.nn.Module]:
        """One fit from ``seed`` (or from the weights ``init``): on all samples, or with held-out
        early stopping (and refit). Returns the result, where held-out stopping stopped (else
        ``{}``) and the fitted network."""
        cfg = self.config

        def network():
            net = problem.build_net(seed)
            if init is not None:
                net.load_state_dict(init)
            return net

        if cfg.early_stop != "holdout":
            net = network()
            return fit(net, problem.forward_model(problem.mask), problem.kspace, fit_cfg,
                       monitor=track, description=desc), {}, net
        fit_mask, validation = holdout_validation(problem, cfg.holdout_fraction, seed)
        es_cfg = dataclasses.replace(fit_cfg, early_stop=EarlyStopConfig(patience=cfg.holdout_patience))
        net = network()
        result = fit(net, problem.forward_model(fit_mask), problem.kspace * fit_mask, es_cfg,
                     validation=validation, description=desc + " (holdout)")
        holdout_info = dict(holdout_stop_iteration=result.returned_iteration, holdout_stop_reason=result.stop_reason,
                            holdout_history=result.history)
        if cfg.refit_on_all and result.returned_iteration > 0:
            refit_cfg = dataclasses.replace(fit_cfg, iterations=result.returned_iteration)
            net = network()
            result = fit(net, problem.forward_model(problem.mask), problem.kspace, refit_cfg,
                         monitor=track, description=desc)
        return result, holdout_info, net


def _shape_runs(samples: Sequence[MRISample], size: int) -> list[range]:
    """Indices of ``samples`` in runs of up to ``size`` consecutive slices of one shape (a slice
    of another shape starts a new run: nothing is broadcast)."""
    runs, start, n = [], 0, len(samples)
    while start < n:
        stop = start + 1
        while stop < n and stop - start < size and _shape(samples[stop]) == _shape(samples[start]):
            stop += 1
        runs.append(range(start, stop))
        start = stop
    return runs


def _shape(sample: MRISample) -> tuple:
    return tuple(sample.kspace.shape), tuple(sample.mask.shape), tuple(sample.target_size), sample.challenge


def finish_members(problem: MRIProblem, outputs: list[torch.Tensor], info: dict) -> Reconstruction:
    """The reconstruction of one slice from its ensemble members' network outputs: their mean
    (linear in the coil images or the SENSE image) finished by :meth:`MRIProblem.finish`; with 2
    or more members their finished images' per-pixel standard deviation (ddof=1) is the
    uncertainty map ``info["image_std"]``."""
    output = outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(dim=0)
    image, predicted = problem.finish(output)
    if len(outputs) > 1:
        members = np.stack([problem.finish(out)[0] for out in outputs])
        info["image_std"] = members.std(axis=0, ddof=1).astype(np.float32)
    return Reconstruction(image, predicted, info)


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
