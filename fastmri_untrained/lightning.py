"""PyTorch Lightning: dataset reconstruction on 1..N processes, and one fit as a training loop.

Two modules, in the style of fastMRI's ``pl_modules`` (but on Lightning 2.x hooks, so they do
not subclass fastMRI's ``MriModule``):

:class:`SliceReconstructionModule`
    ``test_step`` / ``predict_step`` take fastMRI batches (``VarNetSample`` from
    :class:`FastMRIDataModule`) and reconstruct each slice *inside the step*: un-trained
    networks are fitted with the project's engine (:func:`fit.fit`), classical methods run
    as they are. Whole volumes stay on one process (:class:`WholeVolumeSampler`); the process
    that finishes a volume writes it once, complete, with :func:`pipeline.save_volume`. Every
    slice is fitted from a seed derived from (seed, file, slice) (:func:`pipeline.slice_seed`),
    so 1 and N processes write the same files. With targets, per-volume NMSE / PSNR / SSIM (as
    ``fastmri.evaluate``) are gathered from all processes and logged to the Trainer's loggers.

        dm = FastMRIDataModule(DataConfig(data_path, "multicoil", MaskSpec(accelerations=(4,))))
        module = SliceReconstructionModule(ReconConfig(method="conv-decoder", out_dir=out))
        Trainer(accelerator="auto", devices=2, strategy="ddp", use_distributed_sampler=False).test(module, dm)

:class:`FitModule`
    The fit of one problem as ``Trainer.fit``: one optimizer step per iteration, the same
    loss (:func:`fit.network_step_loss`), optimizer and schedule (:func:`fit.make_optimizer`,
    :func:`fit.make_scheduler`) and data scaling (:func:`fit.data_scale`) as :func:`fit.fit`,
    so Lightning's callbacks (EarlyStopping on ``val_holdout``, ModelCheckpoint,
    LearningRateMonitor, gradient clipping, mixed precision) apply to it.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, SequentialSampler

from .data.slices import FileSliceDataset, slice_dataset
from .errors import InputError
from .evaluate import METRICS
from .fit import (FitConfig, FitResult, data_scale, input_noise_std, make_optimizer, make_scheduler,
                  network_step_loss, squared_norm, training_network)
from .mri import MRISample, holdout_split, kspace_nmse, sample_from_varnet
from .pipeline import (MaskSpec, check_output_dir, finished_rows, for_slice, h5_files, holdout_score,
                       make_reconstructor, save_volume, volume_row, write_reports)
from .recon import UNTRAINED_METHODS, MRIProblem, UntrainedConfig

# Trainer precision -> the fitting engine's autocast dtype (the engine autocasts the network
# only, and keeps the complex forward model in float32, which Lightning's autocast would not).
MIXED_PRECISION = {"16-mixed": "float16", "bf16-mixed": "bfloat16"}
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed")
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_notebook", "single_device")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------

@dataclass
class DataConfig:
    """Which slices to reconstruct and how to undersample them.

    data_path: a fastMRI directory (or one of its h5 files).
    files: volume names to keep (None: every h5 file); resume passes the unfinished ones.
    """

    data_path: Path
    challenge: str = "multicoil"
    mask: MaskSpec = field(default_factory=MaskSpec)
    files: Optional[Sequence[str]] = None
    num_workers: int = 0


PADDING = -1  # the index of "no slice": a process without a volume gets one


class PaddedSlices(torch.utils.data.Dataset):
    """A slice dataset that answers :data:`PADDING` with None (the module skips it)."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.raw_samples = dataset.raw_samples

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return None if i == PADDING else self.dataset[i]


class WholeVolumeSampler(torch.utils.data.Sampler):
    """The slices of whole volumes for process ``rank`` of ``num_replicas``, volumes dealt in turn.

    fastMRI's ``VolumeSampler`` divides by the number of volumes per process, so it fails when a
    resumed or small job has fewer unfinished volumes than processes, and it pads a short share
    with repeated slices (each an expensive fit, for nothing). Here a process without a volume
    gets the one index :data:`PADDING`: every process still runs the loop and joins the final
    gather of the rows, and none fits a slice twice.
    """

    def __init__(self, dataset, num_replicas: int, rank: int):
        names = sorted({Path(s.fname).name for s in dataset.raw_samples})
        mine = set(names[rank::num_replicas])
        self.indices = [i for i, s in enumerate(dataset.raw_samples) if Path(s.fname).name in mine] or [PADDING]

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def first_item(batch):
    """Collate for batch_size=1 that keeps fastMRI's ``VarNetSample`` as it is."""
    return batch[0]


class FastMRIDataModule(pl.LightningDataModule):
    """fastMRI ``SliceDataset`` + ``VarNetDataTransform`` (mask seeded by file name, as in
    :func:`pipeline.iterate_volumes`), one slice per batch, whole volumes per process."""

    def __init__(self, config: DataConfig):
        super().__init__()
        self.config = config

    def dataset(self) -> FileSliceDataset:
        cfg = self.config
        files = h5_files(cfg.data_path)
        if cfg.files is not None:
            names = set(cfg.files)
            files = [f for f in files if f.name in names]
        return slice_dataset(files, cfg.challenge, cfg.mask.mask_func(), retrospective=cfg.mask.retrospective)

    def _loader(self) -> DataLoader:
        ds = PaddedSlices(self.dataset())
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            # Whole volumes per process: the process that owns a volume writes it.
            sampler = WholeVolumeSampler(ds, num_replicas=trainer.world_size, rank=trainer.global_rank)
        else:
            sampler = SequentialSampler(ds)
        return DataLoader(ds, batch_size=1, sampler=sampler, collate_fn=first_item,
                          num_workers=self.config.num_workers)

    def test_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()


# --------------------------------------------------------------------------------------------
# Reconstruction of a dataset
# --------------------------------------------------------------------------------------------

@dataclass
class ReconConfig:
    """What the reconstruction module does with each slice and volume.

    method: un-trained (deep-decoder, conv-decoder, dip) or classical (zero-filled, sense,
        l1-wavelet, tv).
    untrained: the un-trained configuration (None: the method's defaults).
    out_dir: where volumes are written (None: nothing is written).
    report_holdout: also score each slice's prediction of a held-out fraction of its samples.
    write_reports: the global-zero process writes ``out_dir/metrics.json`` (with targets) and
        ``out_dir/holdout.json`` (with ``report_holdout``) for the volumes of this run.
    log_images: per process, the number of volumes whose middle slice is saved as a PNG
        (target / reconstruction / error) in the logger's directory.
    data_path: with ``out_dir``, the rows and reports also cover the volumes of ``data_path``
        that an earlier, interrupted run already wrote to ``out_dir`` (resume).
    output_formats: besides the fastMRI h5 (always written: resume, metrics and ``evaluate``
        read it), "nifti" and/or "dicom" files per volume (:mod:`export`).
    """

    method: str = "conv-decoder"
    untrained: Optional[UntrainedConfig] = None
    lamda: Optional[float] = None
    out_dir: Optional[Path] = None
    challenge: str = "multicoil"
    report_holdout: Optional[float] = None
    seed: int = 0
    log_images: int = 1
    write_reports: bool = True  # OUT/metrics.json (with targets) and OUT/holdout.json, as the pipeline
    show_progress: bool = False
    data_path: Optional[Path] = None
    output_formats: tuple[str, ...] = ("fastmri",)


class SliceReconstructionModule(pl.LightningModule):
    """Reconstructs fastMRI slices in ``test_step`` / ``predict_step`` (see module docstring).

    After a run, ``rows`` holds the per-volume rows of *all* processes (file, method, seconds,
    NMSE/PSNR/SSIM with targets, holdout_nmse with ``report_holdout``), in file order.
    """

    def __init__(self, config: ReconConfig, reconstructor: Optional[Callable] = None):
        super().__init__()
        self.config = config
        # A custom reconstructor (any callable MRISample -> Reconstruction) replaces the method's.
        self.reconstructor = reconstructor
        self.rows: list[dict] = []
        self._pending: dict[str, dict] = {}
        self._volume_sizes: dict[str, int] = {}
        self._sources: dict[str, Path] = {}  # volume name -> its data file (geometry of the viewer formats)
        self._local_rows: list[dict] = []
        self._image_dir: Optional[Path] = None
        self._images_logged = 0

    # -- setup --------------------------------------------------------------------------------
    def _reconstructor_for(self, device: torch.device):
        if self.reconstructor is not None:
            return self.reconstructor
        cfg = self.config
        untrained = cfg.untrained
        if untrained is None and cfg.method in UNTRAINED_METHODS:
            untrained = UntrainedConfig(method=cfg.method, seed=cfg.seed)
        if untrained is not None:
            # Fit on this process's device (cuda:<local rank> under DDP).
            fit_cfg = untrained.fit_config()
            precision = str(self.trainer.precision) if self._trainer is not None else "32-true"
            fit_cfg = dataclasses.replace(fit_cfg, show_progress=cfg.show_progress,
                                          autocast_dtype=MIXED_PRECISION.get(precision, fit_cfg.autocast_dtype))
            untrained = dataclasses.replace(untrained, device=str(device), fit=fit_cfg)
        return make_reconstructor(cfg.method, lamda=cfg.lamda, untrained=untrained,
                                  show_progress=cfg.show_progress)

    def _start(self, dataloaders):
        loader = dataloaders[0] if isinstance(dataloaders, (list, tuple)) else dataloaders
        sizes: dict[str, int] = {}
        for raw in loader.dataset.raw_samples:
            name = Path(raw.fname).name
            sizes[name] = sizes.get(name, 0) + 1
            self._sources[name] = Path(raw.fname)
        self._volume_sizes = sizes
        self._pending, self._local_rows, self._images_logged = {}, [], 0
        self._recon = self._reconstructor_for(self.device)
        if self.config.out_dir is not None:
            check_output_dir(self.config.out_dir)
        # trainer.log_dir broadcasts from rank 0: every process asks at the same point.
        self._image_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir) / "images"

    def on_test_start(self):
        self._start(self.trainer.test_dataloaders)

    def on_predict_start(self):
        self._start(self.trainer.predict_dataloaders)

    # -- steps --------------------------------------------------------------------------------
    def reconstruct(self, batch) -> tuple[MRISample, np.ndarray]:
        """Reconstruct one slice (a fastMRI ``VarNetSample``); returns (sample, image)."""
        # Lightning runs test/predict under inference mode; the fit needs autograd, and tensors
        # made in inference mode cannot be saved for backward, so the sample is cloned out of it.
        start = time.perf_counter()
        with torch.inference_mode(False), torch.enable_grad():
            sample = sample_from_varnet(batch, self.config.challenge)
            sample = sample._replace(kspace=sample.kspace.clone(), mask=sample.mask.clone())
            # The engine autocasts the network itself (MIXED_PRECISION); Lightning's autocast
            # around the step would also cast the complex forward model.
            with torch.autocast(device_type=self.device.type, enabled=False):
                rec = for_slice(self._recon, sample)
                image = rec(sample).image
                holdout = None
                if self.config.report_holdout:
                    holdout = holdout_score(rec, sample, self.config.report_holdout, self.config.seed)
        self._add_slice(sample, image, holdout, time.perf_counter() - start)
        return sample, image

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> Optional[dict]:
        if batch is None:  # WholeVolumeSampler's padding: this process has no volume
            return None
        sample, image = self.reconstruct(batch)
        return {"fname": sample.fname, "slice_num": sample.slice_num, "image": image}

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch is not None:
            self.reconstruct(batch)

    # -- volumes ------------------------------------------------------------------------------
    def _add_slice(self, sample: MRISample, image: np.ndarray, holdout: Optional[float], seconds: float):
        fname = Path(sample.fname).name
        vol = self._pending.setdefault(fname, {"slices": {}, "seconds": 0.0})
        if sample.slice_num in vol["slices"] or vol.get("done"):
            return  # each slice counts once, whatever a sampler repeats
        vol["seconds"] += seconds
        # Keep the target etc. (for metrics) but not the k-space.
        vol["slices"][sample.slice_num] = (sample._replace(kspace=None, mask=None), image, holdout)
        if len(vol["slices"]) == self._volume_sizes.get(fname, -1):
            self._finish_volume(fname, vol)

    def _finish_volume(self, fname: str, vol: dict):
        order = sorted(vol["slices"])
        samples = [vol["slices"][k][0] for k in order]
        volume = np.stack([vol["slices"][k][1] for k in order])
        holdout = [vol["slices"][k][2] for k in order if vol["slices"][k][2] is not None]
        if self.config.out_dir is not None:
            save_volume(Path(self.config.out_dir), fname, volume, self.config.output_formats, self._sources.get(fname))
        row = volume_row(fname, self.config.method, volume, samples, vol["seconds"], holdout)
        self._local_rows.append(row)
        self._pending[fname] = {"slices": {}, "done": True}  # free the images
        if samples[0].target is not None and self._images_logged < self.config.log_images:
            self._log_image(fname, samples, volume, row)

    def _log_image(self, fname: str, samples, volume: np.ndarray, row: dict):
        from .figures import comparison_figure

        k = len(samples) // 2
        target = samples[k].target
        # File names stop at 255 bytes: a long volume name is shortened in the image's name.
        name = f"{Path(fname).stem[:200]}_slice{samples[k].slice_num}"
        comparison_figure(target, {self.config.method: volume[k]}, self._image_dir / f"{name}.png",
                          metrics={self.config.method: row}, title=name)
        self._images_logged += 1
        for logger in self.loggers:  # loggers that take images (e.g. TensorBoard) get them too
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):
                vmax = float(target.max()) or 1.0
                panel = np.concatenate([target, volume[k], np.abs(volume[k] - target) * 5], axis=-1) / vmax
                experiment.add_image(name, np.clip(panel, 0, 1)[None], self._images_logged)

    def _end(self) -> list[dict]:
        incomplete = [f for f, v in self._pending.items() if not v.get("done")]
        if incomplete:  # not raised: the other processes are about to gather
            warnings.warn(f"volumes not completed (not written) by this process: {incomplete}", RuntimeWarning)
        rows = self._local_rows
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
        cfg = self.config
        self.rows = sorted(rows, key=lambda r: r["file"])
        if cfg.out_dir is not None and cfg.data_path is not None:  # every finished volume, not only this run's
            self.rows = finished_rows(h5_files(cfg.data_path), cfg.out_dir, cfg.method, cfg.challenge, self.rows)
        if cfg.out_dir is not None and cfg.write_reports and self.trainer.is_global_zero:
            # Written here, not by the caller: under ddp_spawn the caller's module never sees the rows.
            write_reports(Path(cfg.out_dir), cfg.method, self.rows, cfg.report_holdout)
        return self.rows

    def on_test_epoch_end(self):
        rows = self._end()
        scored = [r for r in rows if "SSIM" in r]
        if scored:
            # Every process holds the gathered rows: the means are equal on all, sync_dist is a no-op mean.
            for metric in METRICS:
                self.log(f"test/{metric}", float(np.mean([r[metric] for r in scored])), sync_dist=True)
            if self.trainer.is_global_zero:
                for i, r in enumerate(scored):
                    for logger in self.loggers:
                        logger.log_metrics({f"volume/{m}": r[m] for m in METRICS}, step=i)

    def on_predict_epoch_end(self):
        self._end()


# --------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------

def parse_devices(devices) -> int | str | list[int]:
    """``--devices``: "auto", a count ("2", "-1" = all) or a list of indices ("0,1")."""
    if isinstance(devices, (int, list)):
        return devices
    text = str(devices).strip()
    if text == "auto":
        return "auto"
    try:
        if "," in text:
            return [int(d) for d in text.split(",") if d.strip()]
        return int(text)
    except ValueError:
        raise InputError("--devices", f"expected 'auto', a count or a list of indices like 0,1; got {devices!r}")


def check_trainer_args(accelerator: str = "auto", devices="auto", num_nodes: int = 1, strategy: str = "auto",
                       precision: str = "32-true") -> dict:
    """Validate the Trainer's device arguments before any work; returns them normalised.

    Raises:
        InputError: devices that do not exist here (e.g. ``gpu`` without CUDA, more GPUs than
            present), unknown strategies or precisions.
    """
    if accelerator not in ACCELERATORS:
        raise InputError("--accelerator", f"unknown accelerator {accelerator!r}; choose from {', '.join(ACCELERATORS)}")
    if strategy not in STRATEGIES:
        raise InputError("--strategy", f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if str(precision) not in PRECISIONS:
        raise InputError("--precision", f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if num_nodes < 1:
        raise InputError("--num-nodes", f"must be >= 1, got {num_nodes}")
    devices = parse_devices(devices)
    cuda = torch.cuda.is_available()
    kind = accelerator
    if kind == "auto":
        kind = "gpu" if cuda else "cpu"
    if kind in ("gpu", "cuda"):
        if not cuda:
            raise InputError("--accelerator", f"{accelerator} requested but no CUDA device is available here")
        count = torch.cuda.device_count()
        if isinstance(devices, int) and devices > count:
            raise InputError("--devices", f"{devices} GPUs requested but only {count} available")
        if isinstance(devices, list) and any(not 0 <= d < count for d in devices):
            raise InputError("--devices", f"GPU indices {devices} requested but only {count} GPUs (0..{count - 1})")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise InputError("--accelerator", "mps requested but MPS is not available here")
    elif kind == "cpu" and isinstance(devices, list):
        raise InputError("--devices", "CPU devices are a process count, not a list of indices")
    if isinstance(devices, int) and devices == 0 or (isinstance(devices, int) and devices < -1):
        raise InputError("--devices", f"must be >= 1, -1 (all) or 'auto'; got {devices}")
    if kind == "cpu" and devices == -1:
        raise InputError("--devices", "-1 (all) is for GPUs; give a process count on CPU")
    if str(precision) == "16-mixed" and kind == "cpu":
        raise InputError("--precision", "16-mixed needs a GPU; use bf16-mixed on CPU")
    return dict(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy,
                precision=str(precision))


def default_loggers(save_dir: Path, name: str = "reconstruct") -> list:
    """CSVLogger, plus TensorBoardLogger when tensorboard is importable."""
    from pytorch_lightning.loggers import CSVLogger

    loggers = [CSVLogger(save_dir, name=name)]
    try:
        import tensorboard  # noqa: F401
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir, name=name))
    except ImportError:
        pass
    return loggers


# --------------------------------------------------------------------------------------------
# One fit as a Lightning training loop
# --------------------------------------------------------------------------------------------

class _Steps(torch.utils.data.Dataset):
    """A dummy dataset: one item per optimizer step of a Lightning "epoch"."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


class FitModule(pl.LightningModule):
    """``min ||A G(theta) - s y||^2`` as ``Trainer.fit``: one optimizer step per batch.

    A Lightning epoch is ``check_every`` steps (``config.early_stop.check_every``, else 10), so
    the held-out loss ``val_holdout`` -- when a ``validation`` function is given -- is logged
    once per epoch, at the first step, on the output of the weights before that step (as
    :func:`fit.fit` does): ``EarlyStopping(monitor="val_holdout")`` and
    ``ModelCheckpoint(monitor="val_holdout")`` work as usual. Run it with
    ``max_steps=config.iterations`` (:meth:`trainer_kwargs`).

    After fitting: ``losses`` (per step, scaled data as in ``fit``'s history), :meth:`output`
    (the final weights' output in the units of ``y``) and ``best_output`` (the output at the
    minimum of ``val_holdout``).
    """

    def __init__(self, net: torch.nn.Module, forward_model: Callable, measurements: torch.Tensor,
                 config: Optional[FitConfig] = None, validation: Optional[Callable[[torch.Tensor], float]] = None):
        super().__init__()
        self.net = net
        self.forward_model = forward_model
        self.config = config or FitConfig()
        self.validation = validation
        self.register_buffer("measurements", measurements, persistent=False)
        self.register_buffer("y", measurements.clone(), persistent=False)
        self.scale = 1.0
        self.losses: list[float] = []
        self.val_history: list[tuple[int, float]] = []
        self.best_output: Optional[torch.Tensor] = None
        self._best_val = math.inf
        self._noise_gen: Optional[torch.Generator] = None
        self._scaled = False
        # config.compile: the compiled network for the training steps, kept in a dict so that it
        # is not registered as a second copy of the submodule (state_dict, DDP).
        self._step_net: dict = {}

    @property
    def steps_per_epoch(self) -> int:
        every = self.config.early_stop.check_every if self.config.early_stop is not None else 10
        return max(1, min(every, self.config.iterations))

    def trainer_kwargs(self) -> dict:
        """``max_steps`` / ``max_epochs`` for exactly ``config.iterations`` optimizer steps, and
        per-step logging at most every epoch (Lightning's default of 50 can exceed an epoch)."""
        return dict(max_steps=self.config.iterations,
                    max_epochs=math.ceil(self.config.iterations / self.steps_per_epoch),
                    log_every_n_steps=min(50, self.steps_per_epoch))

    def forward(self, z: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.net(z)

    def on_fit_start(self):
        if not self._scaled:  # as fit.fit: once, from the initial weights, in train mode
            self.net.train()
            self.scale = data_scale(self.net, self.forward_model, self.measurements) if self.config.scale_data else 1.0
            self.y = self.measurements * self.scale
            self._scaled = True
        self._noise_gen = torch.Generator(device="cpu").manual_seed(self.config.seed)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Steps(self.steps_per_epoch), batch_size=1)

    def configure_optimizers(self):
        optimizer = make_optimizer([p for p in self.net.parameters() if p.requires_grad], self.config)
        scheduler = make_scheduler(optimizer, self.config)
        if scheduler is None:
            return optimizer
        # fit.fit steps the schedule once per iteration.
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def training_step(self, batch, batch_idx: int):
        cfg = self.config
        noise = None
        noise_std = input_noise_std(self.net, cfg)
        if noise_std > 0:
            noise = noise_std * torch.randn(self.net.net_input.shape, generator=self._noise_gen).to(self.device)
        autocast = MIXED_PRECISION.get(str(self.trainer.precision), cfg.autocast_dtype)
        # The engine autocasts the network only (complex forward model stays float32).
        with torch.autocast(device_type=self.device.type, enabled=False):
            if "net" not in self._step_net:
                self._step_net["net"] = training_network(self.net, cfg)
            loss, output = network_step_loss(self._step_net["net"], self.forward_model, self.y, noise, autocast)
        value = float(loss.detach())
        self.losses.append(value)
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=1)
        self.log("relative_residual", math.sqrt(value / float(squared_norm(self.y))), on_step=True,
                 on_epoch=False, batch_size=1)
        if self.validation is not None and batch_idx == 0:
            unscaled = output.detach().float() / self.scale
            val = float(self.validation(unscaled))
            self.val_history.append((self.global_step, val))
            if val < self._best_val:
                self._best_val, self.best_output = val, unscaled.clone()
            self.log("val_holdout", val, prog_bar=True, on_step=False, on_epoch=True, batch_size=1)
        return loss

    @torch.no_grad()
    def output(self) -> torch.Tensor:
        """The current weights' output, in the units of ``y`` (fit.fit's ``return_iterate="last"``)."""
        self.net.train()  # as fit.fit, which evaluates the final weights in train mode
        return self.net().detach() / self.scale


def fit_with_trainer(net: torch.nn.Module, forward_model: Callable, measurements: torch.Tensor,
                     config: Optional[FitConfig] = None, validation: Optional[Callable] = None,
                     callbacks: Sequence = (), **trainer_kwargs) -> tuple[FitResult, FitModule]:
    """:func:`fit.fit` through ``Trainer.fit`` (CPU, no logger unless given); returns
    (FitResult, module). With ``validation`` and ``config.early_stop``, an ``EarlyStopping`` on
    ``val_holdout`` is added and the output at its minimum is returned, as ``fit.fit`` does."""
    from pytorch_lightning.callbacks import EarlyStopping

    config = config or FitConfig()
    module = FitModule(net, forward_model, measurements, config, validation)
    callbacks = list(callbacks)
    early = validation is not None and config.early_stop is not None
    if early:
        es = config.early_stop
        callbacks.append(EarlyStopping("val_holdout", min_delta=0.0, check_on_train_epoch_end=True,
                                       patience=max(1, es.patience // module.steps_per_epoch)))
    kwargs = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                  enable_model_summary=False, enable_progress_bar=config.show_progress, num_sanity_val_steps=0)
    kwargs.update(module.trainer_kwargs())
    kwargs.update(trainer_kwargs)
    trainer = pl.Trainer(callbacks=callbacks, **kwargs)
    start = time.perf_counter()
    trainer.fit(module)
    steps = trainer.global_step
    stopped = early and steps < config.iterations
    returned = steps
    if stopped and module.best_output is not None:
        output = module.best_output
        returned = min(module.val_history, key=lambda sv: sv[1])[0]
    else:
        output = module.output()
    history = {"loss": list(module.losses)}
    if module.val_history:
        history["validation_iteration"] = [i for i, _ in module.val_history]
        history["validation"] = [v for _, v in module.val_history]
    return FitResult(output=output, history=history, iterations=steps, returned_iteration=returned,
                     stop_reason="early-stop" if stopped else "budget", scale=module.scale,
                     seconds=time.perf_counter() - start), module


def slice_fit_module(sample: MRISample, config: UntrainedConfig, holdout_fraction: Optional[float] = None
                     ) -> tuple[FitModule, MRIProblem]:
    """A :class:`FitModule` for one fastMRI slice. With ``holdout_fraction`` (default: the
    config's when ``early_stop == "holdout"``), that fraction of the acquired samples is held
    out of the fit and ``val_holdout`` is their k-space NMSE. Finish with
    ``problem.finish(module.output())[0]`` for the fastMRI target image."""
    problem = MRIProblem(sample, config)
    fraction = holdout_fraction or (config.holdout_fraction if config.early_stop == "holdout" else None)
    validation, fit_mask = None, problem.mask
    if fraction:
        fit_mask, held = holdout_split(problem.mask.cpu(), fraction, seed=config.seed)
        fit_mask, held = fit_mask.to(problem.mask.device), held.to(problem.mask.device)
        full_op = problem.operator(torch.ones_like(problem.mask)).to(problem.kspace.device)

        def validation(output):
            return kspace_nmse(full_op(problem.to_operator_input(output)), problem.kspace, held)

    module = FitModule(problem.build_net(), problem.forward_model(fit_mask), problem.kspace * fit_mask,
                       config.fit_config(), validation)
    return module, problem


__all__ = ["DataConfig", "FastMRIDataModule", "ReconConfig", "SliceReconstructionModule", "FitModule",
           "fit_with_trainer", "slice_fit_module", "check_trainer_args", "parse_devices", "default_loggers",
           "first_item"]
