"""Trained fastMRI baselines (U-Net, end-to-end VarNet) on PyTorch Lightning 2.x.

fastmri 0.3.0's ``MriModule`` aggregates validation in ``validation_epoch_end``, which
Lightning 2.x removed (``Trainer.validate`` raises NotImplementedError with it). These
modules keep fastMRI's models, data transforms, losses and optimisers (as in
``fastmri.pl_modules.UnetModule`` / ``VarNetModule``) but aggregate validation in
``on_validation_epoch_end``, with the same per-volume metrics as ``MriModule``:

- NMSE = mean slice MSE / mean slice target energy, per volume;
- PSNR = 20 log10(max) - 10 log10(volume MSE), max = the file's ``max`` attribute;
- SSIM = mean over slices of fastmri.evaluate.ssim with maxval = ``max``;

each averaged over volumes and logged as ``val_metrics/{nmse,psnr,ssim}``. These equal
``fastmri.evaluate``'s volume metrics with maxval = ``max`` (``leaderboard --maxval attr``).
Aggregation is per process: validate on one device.

``predict_step`` returns target-size images; ``predict_baseline`` writes them, one h5 per
volume (key ``reconstruction``) through ``pipeline.save_volume`` (atomic), the same files the
un-trained methods write, so ``leaderboard.evaluate_predictions`` ranks them together.
"""

from __future__ import annotations

import argparse
import collections
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence, Union

import fastmri
import numpy as np
import pytorch_lightning as pl
import torch
from fastmri import evaluate as fm_eval
from fastmri.data.transforms import (UnetDataTransform, UnetSample, VarNetDataTransform, center_crop,
                                     center_crop_to_smallest, to_tensor)
from fastmri.models import Unet, VarNet
from torch.nn import functional as F

from .data.slices import FileSliceDataset
from .devices import DEVICE_HELP, parse_device
from .errors import InputError
from .pipeline import MaskSpec, VolumeAssembler, check_output_dir, h5_files, save_volume

KINDS = ("unet", "varnet")


# ---------------------------------------------------------------------------------------
# Data


class UnetBatch(NamedTuple):
    """fastMRI's UnetSample plus the un-normalised, un-clamped target (for exact metrics).

    UnetDataTransform clamps the normalised target to [-6, 6]; de-normalising that would
    change bright pixels, so validation compares against ``raw_target`` instead.
    """

    image: torch.Tensor
    target: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    fname: str
    slice_num: int
    max_value: float
    raw_target: torch.Tensor


class UnetTransform:
    """UnetDataTransform, adding the raw target cropped like the image."""

    def __init__(self, challenge: str, mask_func=None, use_seed: bool = True):
        self.inner = UnetDataTransform(challenge, mask_func=mask_func, use_seed=use_seed)

    def __call__(self, kspace, mask, target, attrs, fname, slice_num) -> UnetBatch:
        sample: UnetSample = self.inner(kspace, mask, target, attrs, fname, slice_num)
        raw = center_crop(to_tensor(target), tuple(sample.image.shape[-2:])) if target is not None \
            else torch.zeros(0)
        return UnetBatch(*sample, raw_target=raw)


def make_transform(kind: str, challenge: str, mask: Optional[MaskSpec], train: bool):
    """fastMRI's transform for ``kind``; random masks for training, per-file fixed masks
    (seeded by the file name, as the un-trained pipeline) otherwise. ``mask=None`` uses the
    file's own mask (test-set files are already undersampled)."""
    mask_func = mask.mask_func() if mask is not None else None
    if kind == "unet":
        return UnetTransform(challenge, mask_func=mask_func, use_seed=not train)
    return VarNetDataTransform(mask_func=mask_func, use_seed=not train)


def _check_kind(kind: str, challenge: str) -> None:
    if kind not in KINDS:
        raise InputError("--kind", f"unknown baseline {kind!r}; choose from {', '.join(KINDS)}")
    if challenge not in ("multicoil", "singlecoil"):
        raise InputError("--challenge", f"must be multicoil or singlecoil, got {challenge!r}")
    if kind == "varnet" and challenge != "multicoil":
        raise InputError("--kind", "the VarNet estimates coil sensitivities: it needs multicoil data")


def make_dataset(data_dir: Path, kind: str, challenge: str, mask: Optional[MaskSpec], train: bool = False,
                 need_targets: bool = False) -> FileSliceDataset:
    """A SliceDataset over ``data_dir`` with the baseline's transform; InputError for a
    directory without h5 files or (``need_targets``) files without ground truth."""
    from .leaderboard import read_targets

    _check_kind(kind, challenge)
    files = h5_files(Path(data_dir))
    if need_targets:
        read_targets(Path(data_dir), challenge)  # names every file lacking the target key
    if mask is None and need_targets:
        raise InputError("--mask-type", "fully sampled training/validation data needs a mask specification")
    # Only the directory's h5 files: fastMRI's SliceDataset would open every entry of it.
    ds = FileSliceDataset(files, challenge, transform=make_transform(kind, challenge, mask, train))
    if not ds.raw_samples:
        raise InputError(data_dir, f"no slices found in {len(files)} file(s)")
    return ds


def _loader(ds, batch_size: int, shuffle: bool, num_workers: int = 0):
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers)


# ---------------------------------------------------------------------------------------
# Modules


class BaselineModule(pl.LightningModule):
    """Validation (fastMRI per-volume metrics) and prediction shared by the baselines.

    Subclasses implement ``reconstruct(batch) -> (output, target)``: images in the target's
    units and size (B, h, w); ``target`` is None for files without ground truth.
    """

    kind: str = ""

    def __init__(self):
        super().__init__()
        self._val: dict = {}
        self.val_volume_metrics: dict = {}  # fname -> {NMSE, PSNR, SSIM}, from the last validation

    def reconstruct(self, batch) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        raise NotImplementedError

    def on_validation_epoch_start(self) -> None:
        self._val = {"slices": collections.defaultdict(dict), "max": {}, "loss": []}

    def validation_step(self, batch, batch_idx):
        output, target = self.reconstruct(batch)
        loss = self.loss_on(batch, output, target)
        self._val["loss"].append(float(loss))
        out_np, tgt_np = output.detach().float().cpu().numpy(), target.detach().float().cpu().numpy()
        for i, fname in enumerate(batch.fname):
            slice_num = int(batch.slice_num[i])
            maxval = float(batch.max_value[i])
            # Per slice, as MriModule: squared error, target energy, SSIM (maxval = max attr).
            self._val["slices"][fname][slice_num] = (
                float(fm_eval.mse(tgt_np[i], out_np[i])),
                float(fm_eval.mse(tgt_np[i], np.zeros_like(tgt_np[i]))),
                float(fm_eval.ssim(tgt_np[i][None], out_np[i][None], maxval=maxval)[0]),
            )
            self._val["max"][fname] = maxval
        self.log("validation_loss", loss, batch_size=len(batch.fname), prog_bar=True)
        return loss

    def on_validation_epoch_end(self) -> None:
        # One process: the baselines train on one device (_trainer), so every validation slice
        # of a volume is here and the per-volume metrics need no reduction across processes.
        volumes = {}
        for fname, slices in self._val["slices"].items():
            mse, norm, ssim = (np.array(v) for v in zip(*slices.values()))
            volumes[fname] = {
                "NMSE": float(mse.mean() / norm.mean()),
                "PSNR": float(20 * np.log10(self._val["max"][fname]) - 10 * np.log10(mse.mean())),
                "SSIM": float(ssim.mean()),
            }
        self.val_volume_metrics = volumes
        if volumes:
            for metric in ("NMSE", "PSNR", "SSIM"):
                value = float(np.mean([v[metric] for v in volumes.values()]))
                self.log(f"val_metrics/{metric.lower()}", value, prog_bar=metric == "SSIM")

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0) -> dict:
        output, _ = self.reconstruct(batch)
        return {"fname": list(batch.fname), "slice_num": [int(s) for s in batch.slice_num],
                "output": output.detach().float().cpu().numpy()}

    def configure_optimizers(self):
        optim = self.make_optimizer()
        # As fastMRI's modules: StepLR over epochs.
        scheduler = torch.optim.lr_scheduler.StepLR(optim, self.hparams.lr_step_size, self.hparams.lr_gamma)
        return [optim], [scheduler]


class UnetBaseline(BaselineModule):
    """fastMRI's U-Net baseline (Zbontar et al. 2018): RSS / magnitude zero-filled image in,
    instance-normalised; L1 loss on the normalised target; RMSprop (as UnetModule)."""

    kind = "unet"

    def __init__(self, in_chans: int = 1, out_chans: int = 1, chans: int = 32, num_pool_layers: int = 4,
                 drop_prob: float = 0.0, lr: float = 1e-3, lr_step_size: int = 40, lr_gamma: float = 0.1,
                 weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.unet = Unet(in_chans=in_chans, out_chans=out_chans, chans=chans, num_pool_layers=num_pool_layers,
                         drop_prob=drop_prob)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.unet(image.unsqueeze(1)).squeeze(1)

    def training_step(self, batch: UnetBatch, batch_idx):
        loss = F.l1_loss(self(batch.image), batch.target)
        self.log("train_loss", loss.detach(), batch_size=batch.image.shape[0], prog_bar=True)
        return loss

    def reconstruct(self, batch: UnetBatch):
        mean, std = batch.mean[:, None, None], batch.std[:, None, None]
        output = self(batch.image) * std + mean
        target = batch.raw_target if batch.raw_target.numel() else None
        return output, target

    def loss_on(self, batch: UnetBatch, output, target):
        return F.l1_loss(self(batch.image), batch.target)

    def make_optimizer(self):
        return torch.optim.RMSprop(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class VarNetBaseline(BaselineModule):
    """fastMRI's end-to-end VarNet (Sriram et al. 2020): SSIM loss (data range = ``max``
    attr) on the centre-cropped RSS output; Adam (as VarNetModule)."""

    kind = "varnet"

    def __init__(self, num_cascades: int = 12, pools: int = 4, chans: int = 18, sens_pools: int = 4,
                 sens_chans: int = 8, lr: float = 3e-4, lr_step_size: int = 40, lr_gamma: float = 0.1,
                 weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.varnet = VarNet(num_cascades=num_cascades, sens_chans=sens_chans, sens_pools=sens_pools, chans=chans,
                             pools=pools)
        self.loss = fastmri.SSIMLoss()

    def forward(self, masked_kspace, mask, num_low_frequencies=None):
        return self.varnet(masked_kspace, mask, _low_freqs(num_low_frequencies))

    def _ssim_loss(self, output, target, max_value):
        return self.loss(output.unsqueeze(1), target.unsqueeze(1), data_range=max_value)

    def training_step(self, batch, batch_idx):
        output = self(batch.masked_kspace, batch.mask, batch.num_low_frequencies)
        target, output = center_crop_to_smallest(batch.target, output)
        loss = self._ssim_loss(output, target, batch.max_value)
        self.log("train_loss", loss.detach(), batch_size=output.shape[0], prog_bar=True)
        return loss

    def reconstruct(self, batch):
        output = self(batch.masked_kspace, batch.mask, batch.num_low_frequencies)
        # The target size from the header (as VarNetModule.test_step, incl. its narrow-image rule).
        crop = (int(batch.crop_size[0][0]), int(batch.crop_size[1][0]))
        if output.shape[-1] < crop[1]:
            crop = (output.shape[-1], output.shape[-1])
        output = center_crop(output, crop)
        target = batch.target if batch.target.ndim == 3 else None
        if target is not None:
            target, output = center_crop_to_smallest(target, output)
        return output, target

    def loss_on(self, batch, output, target):
        return self._ssim_loss(output, target, batch.max_value)

    def make_optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


def _low_freqs(value) -> Optional[int]:
    # The collated batch holds one count per slice; VarNet takes one int (or None: from the mask).
    if value is None or isinstance(value, int):
        return value
    value = torch.as_tensor(value).reshape(-1)
    return int(value[0]) if bool((value == value[0]).all()) else None


MODULES = {"unet": UnetBaseline, "varnet": VarNetBaseline}


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]  # one line, one sentence
    return type(exc).__name__ + (f": {text}" if text else "")


def read_checkpoint(checkpoint: Path) -> dict:
    """``torch.load(weights_only=True)`` of a checkpoint file, any failure as one InputError line.

    weights_only never runs code from the file: a pickled Python object is refused, not built.
    """
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"WeightsUnpickler error: ([^\n]*?)(?:\. |\n|$)", str(exc))
        raise InputError(checkpoint, "refused: it holds Python objects that a weights-only load does not "
                                     "build" + (f" ({found.group(1)})" if found else "")) from None
    except Exception as exc:  # noqa: BLE001 -- torch.load's errors have no common type (text: KeyError)
        raise InputError(checkpoint, f"not a PyTorch checkpoint file ({_first_line(exc)})") from None
    if not isinstance(state, dict):
        raise InputError(checkpoint, f"not a Lightning checkpoint (it holds a {type(state).__name__})")
    return state


def load_baseline(checkpoint: Union[str, Path]) -> BaselineModule:
    """A baseline from a Lightning checkpoint written by ``train_baseline`` (kind detected)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise InputError(checkpoint, "checkpoint not found")
    keys = read_checkpoint(checkpoint).get("state_dict")
    keys = keys if isinstance(keys, dict) else {}
    kinds = [k for k in KINDS if any(str(key).startswith(k + ".") for key in keys)]
    if len(kinds) != 1:
        raise InputError(checkpoint, "not a UnetBaseline/VarNetBaseline checkpoint")
    try:
        return MODULES[kinds[0]].load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:  # e.g. weights of another size
        raise InputError(checkpoint, f"not a usable {kinds[0]} checkpoint ({_first_line(exc)})") from None


# ---------------------------------------------------------------------------------------
# Training and prediction


@dataclass
class TrainResult:
    """What ``train_baseline`` produced.

    Attributes:
        module: the trained module (weights of the last epoch).
        best_checkpoint: checkpoint with the best validation SSIM.
        last_checkpoint: checkpoint of the last epoch.
        val_metrics: the last validation's ``val_metrics/*`` and ``validation_loss``.
        log_dir: the CSV logs (metrics.csv).
    """

    module: BaselineModule
    best_checkpoint: Optional[Path]
    last_checkpoint: Optional[Path]
    val_metrics: dict = field(default_factory=dict)
    log_dir: Optional[Path] = None


def _trainer(out_dir: Path, max_epochs: int, accelerator: str, show_progress: bool, callbacks=(), logger=True,
             **trainer_kwargs) -> pl.Trainer:
    from pytorch_lightning.loggers import CSVLogger

    return pl.Trainer(
        default_root_dir=str(out_dir), max_epochs=max_epochs, accelerator=accelerator, devices=1,
        logger=CSVLogger(str(out_dir), name="logs") if logger else False, callbacks=list(callbacks),
        enable_progress_bar=show_progress, enable_model_summary=False, num_sanity_val_steps=0,
        **trainer_kwargs)


def train_baseline(kind: str, train_dir: Path, val_dir: Path, out_dir: Path, mask: MaskSpec,
                   max_epochs: int = 50, challenge: str = "multicoil", model: Optional[dict] = None,
                   batch_size: int = 1, accelerator: str = "auto", seed: int = 0, num_workers: int = 0,
                   show_progress: bool = True, callbacks: Sequence[pl.Callback] = (),
                   **trainer_kwargs: Any) -> TrainResult:
    """Train a U-Net or VarNet baseline with ``Trainer.fit`` and fastMRI validation.

    Args:
        kind: "unet" or "varnet".
        train_dir, val_dir: fastMRI h5 directories with targets (e.g. simulated splits).
        out_dir: checkpoints (``checkpoints/best.ckpt``, ``last.ckpt``) and CSV logs.
        mask: undersampling (random masks per step for training; fixed per file for validation).
        max_epochs: training epochs.
        challenge: "multicoil" or "singlecoil" (VarNet: multicoil only).
        model: keyword arguments of the module (e.g. chans, num_pool_layers, num_cascades, lr).
        batch_size: slices per step (1 in fastMRI; larger needs equal image sizes).
        accelerator: Lightning accelerator ("auto", "cpu", "gpu").
        seed: seeds weights and training masks.
        callbacks: extra Lightning callbacks.
        trainer_kwargs: passed to ``pl.Trainer`` (e.g. limit_train_batches).
    """
    from pytorch_lightning.callbacks import ModelCheckpoint

    _check_kind(kind, challenge)
    if max_epochs < 1:
        raise InputError("--max-epochs", f"must be >= 1, got {max_epochs}")
    out_dir = check_output_dir(out_dir)
    train_ds = make_dataset(train_dir, kind, challenge, mask, train=True, need_targets=True)
    val_ds = make_dataset(val_dir, kind, challenge, mask, train=False, need_targets=True)
    pl.seed_everything(seed, verbose=False)
    try:
        module = MODULES[kind](**(model or {}))
    except TypeError as exc:
        raise InputError("model", f"bad {kind} arguments: {exc}") from None
    ckpt = ModelCheckpoint(dirpath=str(out_dir / "checkpoints"), filename="best", monitor="val_metrics/ssim",
                           mode="max", save_last=True)
    train_loader = _loader(train_ds, batch_size, True, num_workers)
    # Log at least once per epoch on small data sets (Lightning's default is every 50 steps).
    trainer_kwargs.setdefault("log_every_n_steps", max(1, min(50, len(train_loader))))
    trainer = _trainer(out_dir, max_epochs, accelerator, show_progress, [ckpt, *callbacks], **trainer_kwargs)
    with warnings.catch_warnings():
        # Lightning suggests more workers; with h5 files and few cores 0 is often faster.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, train_loader, _loader(val_ds, 1, False, num_workers))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
               if k.startswith("val_metrics/") or k == "validation_loss"}
    return TrainResult(module=module, best_checkpoint=Path(ckpt.best_model_path) if ckpt.best_model_path else None,
                       last_checkpoint=Path(ckpt.last_model_path) if ckpt.last_model_path else None,
                       val_metrics=metrics, log_dir=Path(trainer.log_dir) if trainer.log_dir else None)


def validate_baseline(module_or_checkpoint, data_dir: Path, mask: MaskSpec, challenge: str = "multicoil",
                      accelerator: str = "auto", show_progress: bool = False) -> dict:
    """``Trainer.validate`` on ``data_dir``: the ``val_metrics/*`` (mean over volumes)."""
    module = _as_module(module_or_checkpoint)
    ds = make_dataset(data_dir, module.kind, challenge, mask, train=False, need_targets=True)
    trainer = _trainer(Path(data_dir), 1, accelerator, show_progress, logger=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        (metrics,) = trainer.validate(module, _loader(ds, 1, False), verbose=False)
    return {k: float(v) for k, v in metrics.items()}


def _as_module(module_or_checkpoint) -> BaselineModule:
    if isinstance(module_or_checkpoint, BaselineModule):
        return module_or_checkpoint
    return load_baseline(module_or_checkpoint)


class VolumeWriter(pl.callbacks.BasePredictionWriter):
    """Writes each predicted volume (:func:`pipeline.save_volume`, atomic) as soon as all its
    slices are in (:class:`pipeline.VolumeAssembler`), so only unfinished volumes are held."""

    def __init__(self, out_dir: Path, slices_per_file: dict):
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.volumes = VolumeAssembler(slices_per_file)
        self.written: list[Path] = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0):
        for i, (fname, s) in enumerate(zip(prediction["fname"], prediction["slice_num"])):
            slices = self.volumes.add(fname, s, prediction["output"][i])
            if slices is not None:
                self.written.append(save_volume(self.out_dir, fname, np.stack(slices)))


def predict_baseline(module_or_checkpoint, data_dir: Path, out_dir: Path, mask: Optional[MaskSpec],
                     challenge: str = "multicoil", accelerator: str = "auto",
                     show_progress: bool = False) -> list[Path]:
    """Reconstruct every volume of ``data_dir`` with ``predict_step`` into ``out_dir`` (one
    h5 per volume, key ``reconstruction``, target size). ``mask``: the retrospective
    undersampling (the same per-file masks as the un-trained pipeline); None for files that
    are already undersampled (test sets). Returns the files written, in order."""
    module = _as_module(module_or_checkpoint)
    _check_kind(module.kind, challenge)
    out_dir = check_output_dir(out_dir)
    ds = make_dataset(data_dir, module.kind, challenge, mask, train=False)
    counts = collections.Counter(Path(s.fname).name for s in ds.raw_samples)
    writer = VolumeWriter(out_dir, counts)
    trainer = _trainer(out_dir, 1, accelerator, show_progress, [writer], logger=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.predict(module, _loader(ds, 1, False), return_predictions=False)
    if writer.volumes.incomplete:  # cannot happen unless the loader dropped slices; never leave it silent
        raise RuntimeError(f"incomplete volumes not written: {writer.volumes.incomplete}")
    return sorted(writer.written)


# ---------------------------------------------------------------------------------------
# Command line (registered by cli.py: ``train-baseline``, ``predict-baseline``)


def _mask_args(p, required_help: str):
    from .operators.masks import FASTMRI_MASK_TYPES

    p.add_argument("--challenge", choices=("multicoil", "singlecoil"), default="multicoil",
                   help="fastMRI challenge: coil k-space with RSS targets, or single-coil k-space")
    p.add_argument("--mask-type", default="equispaced_fraction", help=f"one of: {', '.join(FASTMRI_MASK_TYPES)}")
    p.add_argument("--accelerations", type=float, nargs="+", default=[4],
                   help="undersampling factors (fastMRI's mask functions pick one at random per mask)")
    p.add_argument("--center-fractions", type=float, nargs="+", default=[0.08],
                   help=f"fully sampled centre fraction, {required_help}")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _accelerator(device: str) -> str:
    """Lightning's accelerator for ``--device`` (:func:`devices.parse_device`); the baselines run
    on one device, so a GPU index is chosen with CUDA_VISIBLE_DEVICES, not here."""
    parsed = parse_device(device)
    if parsed.index is not None:
        raise InputError("device", f"the baselines run on one GPU: choose it with CUDA_VISIBLE_DEVICES={parsed.index} "
                                   "and --device cuda")
    return parsed.accelerator


def _model_kwargs(args) -> dict:
    names = {"unet": {"chans": "chans", "pools": "num_pool_layers", "lr": "lr"},
             "varnet": {"chans": "chans", "pools": "pools", "lr": "lr", "num_cascades": "num_cascades",
                        "sens_chans": "sens_chans", "sens_pools": "sens_pools"}}[args.kind]
    given = {k: getattr(args, k) for k in ("chans", "pools", "lr", "num_cascades", "sens_chans", "sens_pools")
             if getattr(args, k) is not None}
    unused = sorted(set(given) - set(names))
    if unused:
        raise InputError("--" + unused[0].replace("_", "-"), f"does not apply to --kind {args.kind}")
    for k, v in given.items():
        if not v > 0:
            raise InputError("--" + k.replace("_", "-"), f"must be > 0, got {v}")
    return {names[k]: v for k, v in given.items()}


def add_train_baseline(subparsers) -> argparse.ArgumentParser:
    """Register ``train-baseline`` on a ``parser.add_subparsers()`` object."""
    p = subparsers.add_parser("train-baseline", help="train a fastMRI U-Net or VarNet baseline (Lightning)")
    p.add_argument("--kind", choices=KINDS, required=True, help="the fastMRI baseline network")
    p.add_argument("--train-path", type=Path, required=True, help="fastMRI h5 directory with targets")
    p.add_argument("--val-path", type=Path, required=True, help="fastMRI h5 directory with targets")
    p.add_argument("--out", type=Path, required=True, help="checkpoints/ and logs/ are written here")
    p.add_argument("--max-epochs", type=int, default=50, help="training epochs")
    p.add_argument("--batch-size", type=int, default=1, help="slices per step (larger needs equal image sizes)")
    p.add_argument("--chans", type=int, help="U-Net / VarNet cascade channels (default: fastMRI's 32 / 18)")
    p.add_argument("--pools", type=int, help="pooling layers (default: 4)")
    p.add_argument("--num-cascades", type=int, help="VarNet cascades (default: 12)")
    p.add_argument("--sens-chans", type=int, help="VarNet sensitivity U-Net channels (default: 8)")
    p.add_argument("--sens-pools", type=int, help="VarNet sensitivity U-Net pools (default: 4)")
    p.add_argument("--lr", type=float, help="learning rate (default: 1e-3 U-Net, 3e-4 VarNet)")
    p.add_argument("--seed", type=int, default=0, help="weights and training masks")
    _mask_args(p, "one per acceleration")
    p.set_defaults(func=cmd_train_baseline)
    return p


def cmd_train_baseline(args) -> int:
    if args.batch_size < 1:
        raise InputError("--batch-size", f"must be >= 1, got {args.batch_size}")
    _check_kind(args.kind, args.challenge)
    mask = MaskSpec(args.mask_type, tuple(args.accelerations), tuple(args.center_fractions))
    result = train_baseline(args.kind, args.train_path, args.val_path, args.out, mask, max_epochs=args.max_epochs,
                            challenge=args.challenge, model=_model_kwargs(args), batch_size=args.batch_size,
                            accelerator=_accelerator(args.device), seed=args.seed, show_progress=not args.no_progress)
    print(f"best checkpoint: {result.best_checkpoint}\nlast checkpoint: {result.last_checkpoint}")
    print(", ".join(f"{k} = {v:.4g}" for k, v in sorted(result.val_metrics.items())))
    return 0


def add_predict_baseline(subparsers) -> argparse.ArgumentParser:
    """Register ``predict-baseline`` on a ``parser.add_subparsers()`` object."""
    p = subparsers.add_parser("predict-baseline", help="reconstruct a fastMRI directory with a trained baseline")
    p.add_argument("--checkpoint", type=Path, required=True, help="a train-baseline checkpoint (.ckpt)")
    p.add_argument("--data-path", type=Path, required=True, help="fastMRI h5 directory")
    p.add_argument("--out", type=Path, required=True,
                   help="output directory (one h5 per volume); its name is the method name in the leaderboard")
    p.add_argument("--file-mask", action="store_true",
                   help="use each file's own 'mask' (already undersampled test-set data) instead of --mask-type")
    _mask_args(p, "one per acceleration")
    p.set_defaults(func=cmd_predict_baseline)
    return p


def cmd_predict_baseline(args) -> int:
    mask = None if args.file_mask else MaskSpec(args.mask_type, tuple(args.accelerations),
                                                tuple(args.center_fractions))
    module = load_baseline(args.checkpoint)
    _check_kind(module.kind, args.challenge)
    for path in predict_baseline(module, args.data_path, args.out, mask, challenge=args.challenge,
                                 accelerator=_accelerator(args.device), show_progress=not args.no_progress):
        print(path)
    return 0
