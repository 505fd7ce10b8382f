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
    The fit of one problem as ``Trainer.fit``: one optimizer step per iteration, driving the
    same :class:`fit.Fitter` that :func:`fit.fit` steps (loss, data scaling, optimizer and
    schedule, and the checks: non-finite loss, divergence, best iterate, early stopping), so
    Lightning's callbacks (EarlyStopping on ``val_holdout``, ModelCheckpoint,
    LearningRateMonitor, gradient clipping, mixed precision) apply to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, SequentialSampler

from .data.slices import FileSliceDataset, slice_dataset
from .errors import InputError, Terminated
from .evaluate import METRICS, VolumeTable
from .fit import FitConfig, Fitter, FitResult, validation_every
from .mri import MRISample, sample_from_varnet
from .pipeline import (MaskSpec, VolumeAssembler, check_output_dir, finished_rows, for_slice, h5_files,
                       holdout_score, holdout_scores_volume, make_reconstructor, save_volume, slice_seed,
                       volume_row, write_reports)
from .recon import UNTRAINED_METHODS, MRIProblem, UntrainedConfig, UntrainedReconstructor, holdout_validation

# The per-volume values gathered from all processes (besides the file name and method).
TABLE_COLUMNS = ("seconds", *METRICS, "holdout_nmse")
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
    save_uncertainty: un-trained ensembles: also write the members' per-pixel standard deviation.
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
    save_uncertainty: bool = False  # also write the ensemble's per-pixel std (pipeline.UNCERTAINTY_KEY)


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
        self._volumes = VolumeAssembler({})
        self._seconds: dict[str, float] = {}
        self._sources: dict[str, Path] = {}  # volume name -> its data file (geometry of the viewer formats)
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
        self._volumes, self._seconds = VolumeAssembler(sizes), {}
        self._table = VolumeTable(sorted(sizes), TABLE_COLUMNS).to(self.device)
        self._images_logged = 0
        self._recon = self._reconstructor_for(self.device)
        self._waiting: list[MRISample] = []  # slices held for a batched fit (config batch > 1)
        batch = getattr(getattr(self._recon, "config", None), "batch", 1)
        if batch > 1 and sizes and batch > max(sizes.values()):
            warnings.warn(f"batch of {batch} slices: the largest volume has {max(sizes.values())}; "
                          f"each volume is fitted in one pass", UserWarning)
        if self.config.out_dir is not None:
            check_output_dir(self.config.out_dir)
        # trainer.log_dir broadcasts from rank 0: every process asks at the same point.
        self._image_dir = Path(self.trainer.log_dir or self.trainer.default_root_dir) / "images"

    def on_test_start(self):
        self._start(self.trainer.test_dataloaders)

    def on_predict_start(self):
        self._start(self.trainer.predict_dataloaders)

    # -- steps --------------------------------------------------------------------------------
    def reconstruct(self, batch) -> list[tuple[MRISample, np.ndarray]]:
        """Take one slice (a fastMRI ``VarNetSample``); returns the (sample, image) pairs finished
        now: this slice, or -- when an un-trained configuration takes K > 1 slices per pass
        (``batch`` or ``slices_per_network``) -- nothing until K slices of its volume (or the volume's
        last) are waiting, then all of them (:meth:`recon.UntrainedReconstructor.reconstruct_volume`)."""
        # Lightning runs test/predict under inference mode; the fit needs autograd, and tensors
        # made in inference mode cannot be saved for backward, so the sample is cloned out of it.
        sample = sample_from_varnet(batch, self.config.challenge)
        with torch.inference_mode(False):
            sample = sample._replace(kspace=sample.kspace.clone(), mask=sample.mask.clone())
        batch_size = getattr(getattr(self._recon, "config", None), "slices_per_pass", 1)
        if not isinstance(self._recon, UntrainedReconstructor) or batch_size == 1:
            return self._reconstruct([sample])
        self._waiting.append(sample)
        fname = Path(sample.fname).name
        if len(self._waiting) < batch_size and len(self._waiting) < self._volumes.missing(fname):
            return []
        waiting, self._waiting = self._waiting, []
        return self._reconstruct(waiting)

    def _reconstruct(self, samples: list[MRISample]) -> list[tuple[MRISample, np.ndarray]]:
        start = time.perf_counter()
        with torch.inference_mode(False), torch.enable_grad():
            # The engine autocasts the network itself (MIXED_PRECISION); Lightning's autocast
            # around the step would also cast the complex forward model.
            with torch.autocast(device_type=self.device.type, enabled=False):
                if len(samples) == 1:
                    rec = for_slice(self._recon, samples[0])
                    results = [rec(samples[0])]
                else:
                    seeds = [slice_seed(self._recon.config.seed, s.fname, s.slice_num) for s in samples]
                    results = self._recon.reconstruct_volume(samples, seeds)
                holdout = [None] * len(samples)
                if self.config.report_holdout and len(samples) > 1 and self._recon.config.slices_per_network > 1:
                    # Joint networks: the score refits the run together, as it was reconstructed.
                    holdout = holdout_scores_volume(self._recon, samples, self.config.report_holdout,
                                                    self.config.seed, seeds)
                elif self.config.report_holdout:
                    holdout = [holdout_score(for_slice(self._recon, s), s, self.config.report_holdout,
                                             self.config.seed) for s in samples]
        seconds = (time.perf_counter() - start) / len(samples)
        for sample, result, score in zip(samples, results, holdout):
            self._add_slice(sample, result.image, score, seconds, result.info.get("image_std"))
        return [(sample, result.image) for sample, result in zip(samples, results)]

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> Optional[list[dict]]:
        if batch is None:  # WholeVolumeSampler's padding: this process has no volume
            return None
        return [{"fname": sample.fname, "slice_num": sample.slice_num, "image": image}
                for sample, image in self.reconstruct(batch)] or None

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch is not None:
            self.reconstruct(batch)

    # -- volumes ------------------------------------------------------------------------------
    def _add_slice(self, sample: MRISample, image: np.ndarray, holdout: Optional[float], seconds: float,
                   std: Optional[np.ndarray] = None):
        fname = Path(sample.fname).name
        self._seconds[fname] = self._seconds.get(fname, 0.0) + seconds
        # Keep the target etc. (for metrics) but not the k-space.
        item = (sample._replace(kspace=None, mask=None), image, holdout, std)
        volume = self._volumes.add(fname, sample.slice_num, item)
        if volume is not None:
            self._finish_volume(fname, volume)

    def _finish_volume(self, fname: str, slices: list):
        samples = [sample for sample, _, _, _ in slices]
        volume = np.stack([image for _, image, _, _ in slices])
        holdout = [h for _, _, h, _ in slices if h is not None]
        std = np.stack([s for _, _, _, s in slices]) if self.config.save_uncertainty else None
        if self.config.out_dir is not None:
            save_volume(Path(self.config.out_dir), fname, volume, self.config.output_formats, self._sources.get(fname),
                        std=std)
        row = volume_row(fname, self.config.method, volume, samples, self._seconds.pop(fname), holdout)
        self._table.update(row)
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
        incomplete = self._volumes.incomplete
        if incomplete:  # not raised: the other processes are about to gather
            warnings.warn(f"volumes not completed (not written) by this process: {incomplete}", RuntimeWarning)
        cfg = self.config
        with warnings.catch_warnings():  # a process without a volume never called update()
            warnings.filterwarnings("ignore", message=".*called before the ``update`` method.*")
            rows = self._table.compute()  # every process's volumes (torchmetrics reduces across them)
        self.rows = [{"file": r["file"], "method": cfg.method, **{k: v for k, v in r.items() if k != "file"}}
                     for r in rows]
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
        raise InputError("devices", f"expected 'auto', a count or a list of indices like 0,1; got {devices!r}")


def check_trainer_args(accelerator: str = "auto", devices="auto", num_nodes: int = 1, strategy: str = "auto",
                       precision: str = "32-true") -> dict:
    """Validate the Trainer's device arguments before any work; returns them normalised.

    Raises:
        InputError: devices that do not exist here (e.g. ``gpu`` without CUDA, more GPUs than
            present), unknown strategies or precisions.
    """
    if accelerator not in ACCELERATORS:
        raise InputError("accelerator", f"unknown accelerator {accelerator!r}; choose from {', '.join(ACCELERATORS)}")
    if strategy not in STRATEGIES:
        raise InputError("strategy", f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if str(precision) not in PRECISIONS:
        raise InputError("precision", f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if num_nodes < 1:
        raise InputError("num_nodes", f"must be >= 1, got {num_nodes}")
    devices = parse_devices(devices)
    cuda = torch.cuda.is_available()
    kind = accelerator
    if kind == "auto":
        kind = "gpu" if cuda else "cpu"
    if kind in ("gpu", "cuda"):
        if not cuda:
            raise InputError("accelerator", f"{accelerator} requested but no CUDA device is available here")
        count = torch.cuda.device_count()
        if isinstance(devices, int) and devices > count:
            raise InputError("devices", f"{devices} GPUs requested but only {count} available")
        if isinstance(devices, list) and any(not 0 <= d < count for d in devices):
            raise InputError("devices", f"GPU indices {devices} requested but only {count} GPUs (0..{count - 1})")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise InputError("accelerator", "mps requested but MPS is not available here")
    elif kind == "cpu" and isinstance(devices, list):
        raise InputError("devices", "CPU devices are a process count, not a list of indices")
    if isinstance(devices, int) and devices == 0 or (isinstance(devices, int) and devices < -1):
        raise InputError("devices", f"must be >= 1, -1 (all) or 'auto'; got {devices}")
    if kind == "cpu" and devices == -1:
        raise InputError("devices", "-1 (all) is for GPUs; give a process count on CPU")
    if str(precision) == "16-mixed" and kind == "cpu":
        raise InputError("precision", "16-mixed needs a GPU; use bf16-mixed on CPU")
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
# The dataset-level driver
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM interrupts the run at once, as Ctrl-C does, and surfaces as
    :class:`Terminated`. Lightning's own handler (which runs first and still signals DDP
    children) only notes the signal and stops between batches, i.e. after the fit of the volume
    under way: minutes, longer than a scheduler waits before SIGKILL. Only the main thread can
    set signal handlers; elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    except KeyboardInterrupt:
        if received:
            raise Terminated from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def reconstruct_dataset(data_path: Path | str, out_dir: Path | str, method: str = "conv-decoder",
                        challenge: str = "multicoil", mask: Optional[MaskSpec] = None,
                        reconstructor: Optional[Callable] = None, report_holdout: Optional[float] = None,
                        seed: int = 0, *, lamda: Optional[float] = None, trainer: Optional[dict] = None,
                        output_formats: Sequence[str] = ("fastmri",), resume: bool = True,
                        log_dir: Optional[Path] = None, log_images: int = 1, progress: bool = True,
                        save_uncertainty: bool = False,
                        log: Callable[[str], None] = print) -> Optional[list[dict]]:
    """Reconstruct every fastMRI h5 file of ``data_path`` into ``out_dir``: the one driver of
    every dataset-level run (``reconstruct``, ``demo``, the leaderboard, the Python API), through
    :class:`SliceReconstructionModule` and ``Trainer.test`` on 1..N processes.

    Args:
        data_path: a directory of fastMRI h5 files (``kspace``: (slices, coils, H, W) complex64
            for multicoil, (slices, H, W) for singlecoil).
        out_dir: one h5 per volume is written there (``reconstruction``: (slices, h, w) float32 at
            fastMRI's target size), plus ``metrics.json`` when the files have targets and
            ``holdout.json`` with ``report_holdout``; Lightning's logs go to ``log_dir``
            (default ``out_dir/logs``).
        method: an un-trained or classical method (``pipeline.METHODS``).
        challenge: "multicoil" or "singlecoil".
        mask: retrospective undersampling of fully sampled files (default: equispaced_fraction,
            4x, centre 0.08); already undersampled files keep their own mask.
        reconstructor: an :class:`recon.UntrainedReconstructor` (its config is used, on the
            Trainer's device) or any callable ``(MRISample) -> Reconstruction``; default: the
            method's, with package defaults.
        report_holdout: also score each slice's prediction of this fraction of its samples.
        seed: every slice is fitted from a seed derived from (seed, file, slice).
        lamda: the weight of a classical method (None: its default).
        trainer: the Trainer's device arguments (``accelerator``, ``devices``, ``num_nodes``,
            ``strategy``, ``precision``; :func:`check_trainer_args`); default: CPU, one process.
        output_formats: besides "fastmri" (always written), "nifti" and/or "dicom".
        resume: skip volumes already in ``out_dir`` (False: reconstruct and overwrite them).
        save_uncertainty: un-trained ensembles (``ensemble >= 2``): also store the members'
            per-pixel standard deviation as ``reconstruction_std`` in each output h5.

    Returns:
        On the global-zero process, one dict per finished volume of ``data_path`` (file, method,
        seconds and, where targets exist, NMSE / PSNR / SSIM as ``fastmri.evaluate``); None on
        the other processes. Every process (DDP re-runs the calling program per rank) lists the
        unfinished volumes before the Trainer starts, so all ranks agree on the work.
    """
    from pytorch_lightning.utilities import rank_zero_only

    from .data.readers import validate_fastmri_file
    from .pipeline import check_inputs, check_uncertainty
    from .recon import UntrainedReconstructor

    rank0 = rank_zero_only.rank == 0
    log = log if rank0 else (lambda message: None)
    targs = check_trainer_args(**(trainer or {"accelerator": "cpu", "devices": 1}))
    data_path, out = Path(data_path), Path(out_dir)
    mask = mask or MaskSpec()
    if data_path.resolve() == out.resolve():
        raise InputError("out_dir", "must not be the input data directory (the run would read its own output)")
    files = h5_files(data_path, log=log)
    out = check_output_dir(out)
    infos = [validate_fastmri_file(f, challenge) for f in files]
    untrained = None
    if isinstance(reconstructor, UntrainedReconstructor):
        untrained, reconstructor = reconstructor.config, None
    if save_uncertainty:
        check_uncertainty(method, untrained)
    check_inputs(infos, mask, method, untrained, log=log)
    formats = tuple(dict.fromkeys(["fastmri", *output_formats]))
    pending = []
    for f in files:
        if resume and (out / f.name).exists():
            log(f"{f.name}: already reconstructed, skipped")
            if rank0:  # a rerun asking for more formats: written from the finished h5
                from .export import write_missing

                write_missing(out, f, formats)
        else:
            pending.append(f.name)
    if not pending:  # nothing to fit: the reports still cover every finished volume
        if not rank0:
            return None
        rows = finished_rows(files, out, method, challenge, [])
        write_reports(out, method, rows, report_holdout)
        return rows
    config = ReconConfig(method=method, untrained=untrained, lamda=lamda, out_dir=out, challenge=challenge,
                         report_holdout=report_holdout, seed=seed, log_images=log_images, show_progress=progress,
                         data_path=data_path, output_formats=formats, save_uncertainty=save_uncertainty)
    module = SliceReconstructionModule(config, reconstructor=reconstructor)
    data = FastMRIDataModule(DataConfig(data_path, challenge, mask, files=pending))
    runner = pl.Trainer(**targs, logger=default_loggers(Path(log_dir) if log_dir else out / "logs"),
                        default_root_dir=out, use_distributed_sampler=False, enable_checkpointing=False,
                        enable_model_summary=False, enable_progress_bar=progress)
    metrics_json = out / "metrics.json"
    stamp = metrics_json.stat().st_mtime_ns if metrics_json.exists() else None
    with sigterm_as_interrupt():
        try:
            runner.test(module, datamodule=data, verbose=False)
        except SystemExit:
            if runner.interrupted:  # Lightning turns Ctrl-C into exit(1) after its own teardown
                raise KeyboardInterrupt from None
            raise
    if not runner.is_global_zero:
        return None
    if not module.rows and metrics_json.exists() and metrics_json.stat().st_mtime_ns != stamp:
        # ddp_spawn ran the module in child processes: its rows come back through the report.
        return json.loads(metrics_json.read_text())["rows"]
    return module.rows


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
    """``min ||A G(theta) - s y||^2`` as ``Trainer.fit``: one optimizer step per batch, driving
    a :class:`fit.Fitter` -- the object :func:`fit.fit` steps -- so the loss, data scaling, input
    noise, optimizer and schedule, and every check (non-finite loss, divergence, best iterate,
    early stopping on ``config.early_stop``, history) are the fitting engine's. Lightning owns
    the backward pass and the optimizer and scheduler steps (so gradient clipping and mixed
    precision apply); the fitter is built in :meth:`configure_optimizers`, once the module is
    on its device.

    A Lightning epoch is ``check_every`` steps (``config.early_stop.check_every``, else 10), so
    the held-out loss ``val_holdout`` -- when a ``validation`` function is given -- is logged
    once per epoch, at the first step, on the output of the weights before that step (as
    :func:`fit.fit` does): ``EarlyStopping(monitor="val_holdout")`` and
    ``ModelCheckpoint(monitor="val_holdout")`` work as usual. Run it with
    ``max_steps=config.iterations`` (:meth:`trainer_kwargs`). When the fitter stops the fit, the
    step returns None (no optimizer step; Lightning warns once, and still counts it in
    ``trainer.global_step``) and the Trainer stops.

    After fitting: :meth:`result` (the :class:`fit.FitResult`, as :func:`fit.fit` returns it),
    ``losses`` (per step, scaled data as in ``fit``'s history), :meth:`output` (the final
    weights' output in the units of ``y``) and ``best_output`` (the output at the minimum of
    ``val_holdout``, up to ``early_stop.min_delta``).
    """

    def __init__(self, net: torch.nn.Module, forward_model: Callable, measurements: torch.Tensor,
                 config: Optional[FitConfig] = None, validation: Optional[Callable[[torch.Tensor], float]] = None):
        super().__init__()
        self.net = net
        self.forward_model = forward_model
        self.config = config or FitConfig()
        self.validation = validation
        self.register_buffer("measurements", measurements, persistent=False)
        # A plain object, not a submodule: its compiled network (config.compile) is no second
        # copy of the weights in the state_dict or under DDP.
        self.fitter: Optional[Fitter] = None

    @property
    def steps_per_epoch(self) -> int:
        return max(1, min(validation_every(self.config), self.config.iterations))

    def trainer_kwargs(self) -> dict:
        """``max_steps`` / ``max_epochs`` for exactly ``config.iterations`` optimizer steps, and
        per-step logging at most every epoch (Lightning's default of 50 can exceed an epoch)."""
        return dict(max_steps=self.config.iterations,
                    max_epochs=math.ceil(self.config.iterations / self.steps_per_epoch),
                    log_every_n_steps=min(50, self.steps_per_epoch))

    def forward(self, z: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.net(z)

    def _make_fitter(self) -> Fitter:
        # Once, from the initial weights (the data scale is fit.fit's); a second Trainer.fit
        # continues this fit.
        if self.fitter is None:
            precision = str(self.trainer.precision) if self._trainer is not None else "32-true"
            config = dataclasses.replace(self.config,
                                         autocast_dtype=MIXED_PRECISION.get(precision, self.config.autocast_dtype))
            self.fitter = Fitter(self.net, self.forward_model, self.measurements, config,
                                 validation=self.validation, description="FitModule")
        return self.fitter

    @property
    def scale(self) -> float:
        return self.fitter.scale if self.fitter is not None else 1.0

    @property
    def losses(self) -> list[float]:
        return self.fitter.history["loss"] if self.fitter is not None else []

    @property
    def val_history(self) -> list[tuple[int, float]]:
        """(step, val_holdout) per validation."""
        if self.fitter is None or self.validation is None:
            return []
        return list(zip(self.fitter.history["validation_iteration"], self.fitter.history["validation"]))

    @property
    def best_output(self) -> Optional[torch.Tensor]:
        return None if self.fitter is None else self.fitter.validation_output

    @property
    def _step_net(self) -> dict:
        """The network the training steps call (compiled with ``config.compile``)."""
        return {} if self.fitter is None else {"net": self.fitter.step_net}

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Steps(self.steps_per_epoch), batch_size=1)

    def configure_optimizers(self):
        fitter = self._make_fitter()
        if fitter.scheduler is None:
            return fitter.optimizer
        # fit.fit steps the schedule once per iteration.
        return {"optimizer": fitter.optimizer, "lr_scheduler": {"scheduler": fitter.scheduler, "interval": "step"}}

    def training_step(self, batch, batch_idx: int):
        fitter = self.fitter
        if fitter.done():  # a second Trainer.fit after the budget: nothing left
            self.trainer.should_stop = True
            return None
        # The engine autocasts the network only (complex forward model stays float32).
        with torch.autocast(device_type=self.device.type, enabled=False):
            loss, _ = fitter.loss_and_output()
        if fitter.last_validation is not None:
            self.log("val_holdout", fitter.last_validation, prog_bar=True, on_step=False, on_epoch=True, batch_size=1)
        if fitter.stopped:  # non-finite, diverged or early stop: no optimizer step follows
            self.trainer.should_stop = True
            return None
        self.log("loss", loss.detach(), prog_bar=True, on_step=True, on_epoch=False, batch_size=1)
        self.log("relative_residual", fitter.history["relative_residual"][-1], on_step=True, on_epoch=False,
                 batch_size=1)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int):
        # After Lightning's optimizer step (it steps the schedule next, as fit.fit does); a step
        # that the fitter stopped (done) took no optimizer step, so it is not counted.
        if self.fitter is not None and not self.fitter.done():
            self.fitter.after_step()

    def result(self) -> FitResult:
        """The fit's :class:`fit.FitResult` (:meth:`fit.Fitter.result`)."""
        return self._make_fitter().result()

    @torch.no_grad()
    def output(self) -> torch.Tensor:
        """The current weights' output, in the units of ``y`` (fit.fit's ``return_iterate="last"``)."""
        self.net.train()  # as fit.fit, which evaluates the final weights in train mode
        return self.net().detach() / self.scale


def fit_with_trainer(net: torch.nn.Module, forward_model: Callable, measurements: torch.Tensor,
                     config: Optional[FitConfig] = None, validation: Optional[Callable] = None,
                     callbacks: Sequence = (), **trainer_kwargs) -> tuple[FitResult, FitModule]:
    """:func:`fit.fit` through ``Trainer.fit`` (CPU, no logger unless given); returns
    (FitResult, module). The module's :class:`fit.Fitter` makes the checks, so the result --
    early stopping on ``validation`` with ``config.early_stop`` included -- is ``fit.fit``'s."""
    config = config or FitConfig()
    module = FitModule(net, forward_model, measurements, config, validation)
    kwargs = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                  enable_model_summary=False, enable_progress_bar=config.show_progress, num_sanity_val_steps=0)
    kwargs.update(module.trainer_kwargs())
    kwargs.update(trainer_kwargs)
    trainer = pl.Trainer(callbacks=list(callbacks), **kwargs)
    with warnings.catch_warnings():
        # A step that the fitter stops returns None on purpose (no optimizer step).
        warnings.filterwarnings("ignore", message="`training_step` returned `None`")
        trainer.fit(module)
    return module.result(), module


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
        fit_mask, validation = holdout_validation(problem, fraction, config.seed)
    module = FitModule(problem.build_net(), problem.forward_model(fit_mask), problem.kspace * fit_mask,
                       config.fit_config(), validation)
    return module, problem


__all__ = ["DataConfig", "FastMRIDataModule", "ReconConfig", "SliceReconstructionModule", "FitModule",
           "fit_with_trainer", "slice_fit_module", "check_trainer_args", "parse_devices", "default_loggers",
           "first_item"]
