"""Trained U-Net / VarNet baselines on Lightning 2.x: fit, validate, predict, leaderboard."""

import shutil
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from fastmri.data.transforms import apply_mask, to_tensor

from fastmri_untrained import trained
from fastmri_untrained.data.simulate import simulate_dataset
from fastmri_untrained.errors import InputError
from fastmri_untrained.leaderboard import evaluate_predictions
from fastmri_untrained.lightning import reconstruct_dataset
from fastmri_untrained.pipeline import MaskSpec

SHAPE = (96, 64)  # targets 48x48
MASK = MaskSpec("equispaced_fraction", (4,), (0.16,))
TINY = {
    "unet": dict(chans=4, num_pool_layers=2),
    "varnet": dict(num_cascades=2, chans=4, pools=2, sens_chans=4, sens_pools=2, lr=1e-3),
}
CPU = dict(accelerator="cpu", show_progress=False)
EPS32 = float(np.finfo(np.float32).eps)
# Metrics of float32 images (NMSE, SSIM run in float32), logged as float32: a few eps32 between two routes
# over the same outputs (<= 1 eps32 measured)
METRIC_RTOL = 8 * EPS32
# The same weights on the same input: equal up to float32 rounding order, which a ~10-layer conv net
# could grow to ~eps32 log2(fan-in) per layer of the peak (bitwise equal measured)
NET_ATOL = 64 * EPS32


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny convolutions: on a shared 2-core machine a second thread costs more in
    # synchronisation than it gains (several times slower under load). Restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(one_thread, tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    simulate_dataset(root / "train", "multicoil", num_volumes=2, slices=2, coils=4, shape=SHAPE, seed=1,
                     show_progress=False)
    simulate_dataset(root / "val", "multicoil", num_volumes=2, slices=2, coils=4, shape=SHAPE, seed=2,
                     show_progress=False)
    results = {kind: trained.train_baseline(kind, root / "train", root / "val", root / kind, MASK, max_epochs=2,
                                            model=TINY[kind], **CPU)
               for kind in trained.KINDS}
    return SimpleNamespace(root=root, results=results)


class LossRecorder(pl.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


@pytest.mark.parametrize("kind", trained.KINDS)
def test_training_loss_decreases_on_a_fixed_batch(runs, kind):
    # One slice with its per-file fixed mask, repeated: the loss must go down.
    ds = trained.make_dataset(runs.root / "train", kind, "multicoil", MASK, train=False, need_targets=True)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, [0] * 8), batch_size=1)
    pl.seed_everything(0, verbose=False)
    module = trained.MODULES[kind](**TINY[kind])
    recorder = LossRecorder()
    pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, callbacks=[recorder]).fit(module, loader)
    assert len(recorder.losses) == 8 and np.isfinite(recorder.losses).all()
    assert np.mean(recorder.losses[-2:]) < 0.8 * recorder.losses[0]


@pytest.mark.parametrize("kind", trained.KINDS)
def test_fit_then_trainer_validate_and_predictions_match_the_leaderboard(runs, tmp_path, kind):
    result = runs.results[kind]
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()
    assert (result.log_dir / "metrics.csv").is_file()
    assert set(result.val_metrics) == {"validation_loss", "val_metrics/nmse", "val_metrics/psnr", "val_metrics/ssim"}

    # Trainer.validate works (fastmri 0.3.0's MriModule raises NotImplementedError here) and
    # reproduces fit's last validation with the last-epoch weights.
    metrics = trained.validate_baseline(result.module, runs.root / "val", MASK, accelerator="cpu")
    for key, value in result.val_metrics.items():
        assert metrics[key] == pytest.approx(value, rel=METRIC_RTOL)
    assert set(result.module.val_volume_metrics) == {"file_sim_2_0.h5", "file_sim_2_1.h5"}

    # predict_step -> one h5 per volume, target size, key 'reconstruction'
    out = tmp_path / kind
    files = trained.predict_baseline(result.module, runs.root / "val", out, MASK, accelerator="cpu")
    assert [f.name for f in files] == ["file_sim_2_0.h5", "file_sim_2_1.h5"]
    for f in files:
        with h5py.File(f, "r") as rec, h5py.File(runs.root / "val" / f.name, "r") as tgt:
            assert list(rec) == ["reconstruction"]
            assert rec["reconstruction"].shape == tgt["reconstruction_rss"].shape == (2, 48, 48)
    assert not list(out.glob(".*"))

    # The leaderboard on those files, with the files' max attribute (as validation), gives
    # validation's per-volume and mean metrics: the same numbers by two routes.
    board = evaluate_predictions(runs.root / "val", [out], "multicoil", maxval="attr")
    for row in board.rows:
        volume = result.module.val_volume_metrics[row["file"]]
        for metric in ("NMSE", "PSNR", "SSIM"):
            assert row[metric] == pytest.approx(volume[metric], rel=METRIC_RTOL)
    for metric in ("NMSE", "PSNR", "SSIM"):
        assert board.summary[kind][metric] == pytest.approx(metrics[f"val_metrics/{metric.lower()}"], rel=METRIC_RTOL)


def test_checkpoints_reload_and_rank_beside_untrained_methods(runs, tmp_path):
    preds = {}
    for kind, result in runs.results.items():
        from_ckpt = trained.predict_baseline(result.last_checkpoint, runs.root / "val", tmp_path / "ckpt" / kind,
                                             MASK, accelerator="cpu")
        from_module = trained.predict_baseline(result.module, runs.root / "val", tmp_path / kind, MASK,
                                               accelerator="cpu")
        for a, b in zip(from_ckpt, from_module):  # last.ckpt holds the module's final weights
            with h5py.File(a, "r") as ha, h5py.File(b, "r") as hb:
                ref = hb["reconstruction"][()]
                np.testing.assert_allclose(ha["reconstruction"][()], ref, rtol=0, atol=NET_ATOL * np.abs(ref).max())
        assert isinstance(trained.load_baseline(result.best_checkpoint), trained.MODULES[kind])
        preds[kind] = tmp_path / kind
    zf = tmp_path / "zero-filled"
    reconstruct_dataset(runs.root / "val", zf, "zero-filled", "multicoil", MASK, log=lambda m: None)
    board = evaluate_predictions(runs.root / "val", [zf, preds["unet"], preds["varnet"]], "multicoil")
    assert sorted(board.ranking()) == ["unet", "varnet", "zero-filled"]
    assert all(np.isfinite(board.summary[m][k]) for m in board.summary for k in ("NMSE", "PSNR", "SSIM"))


def test_prediction_on_test_set_files_uses_their_own_mask(runs, tmp_path):
    """A test-set style file (masked k-space + 'mask', no target), predicted with mask=None,
    gives the same U-Net output as retrospective masking of the full file."""
    module = runs.results["unet"].module
    name = "file_sim_2_0.h5"
    full = runs.root / "val" / name
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    shutil.copy(full, test_dir / name)
    with h5py.File(test_dir / name, "r+") as hf:
        kspace = hf["kspace"][()]
        # The mask UnetDataTransform draws for this file (seeded by its name).
        _, mask, _ = apply_mask(to_tensor(kspace[0]), MASK.mask_func(), seed=tuple(map(ord, name)))
        mask = mask.reshape(-1).numpy().astype(bool)
        del hf["kspace"], hf["reconstruction_rss"]
        hf["kspace"] = kspace * mask[None, None, None, :]
        hf["mask"] = mask
    [own] = trained.predict_baseline(module, test_dir, tmp_path / "own", None, accelerator="cpu")
    [retro] = trained.predict_baseline(module, runs.root / "val", tmp_path / "retro", MASK, accelerator="cpu")[:1]
    with h5py.File(own, "r") as a, h5py.File(retro, "r") as b:  # the same masked k-space (k * 0/1 is exact)
        ref = b["reconstruction"][()]
        np.testing.assert_allclose(a["reconstruction"][()], ref, rtol=0, atol=NET_ATOL * np.abs(ref).max())
    assert 0.2 < mask.mean() < 0.4  # the mask really undersamples


def test_bad_inputs_are_named(runs, tmp_path):
    with pytest.raises(InputError, match="needs multicoil"):
        trained.train_baseline("varnet", runs.root / "train", runs.root / "val", tmp_path, MASK,
                               challenge="singlecoil")
    with pytest.raises(InputError, match="unknown baseline 'resnet'"):
        trained.train_baseline("resnet", runs.root / "train", runs.root / "val", tmp_path, MASK)
    no_targets = shutil.copytree(runs.root / "train", tmp_path / "no_targets")
    with h5py.File(Path(no_targets) / "file_sim_1_1.h5", "r+") as hf:
        del hf["reconstruction_rss"]
    with pytest.raises(InputError, match=r"file_sim_1_1.h5: no ground truth"):
        trained.train_baseline("unet", no_targets, runs.root / "val", tmp_path / "o", MASK, max_epochs=1,
                               model=TINY["unet"], **CPU)
    with pytest.raises(InputError, match="checkpoint not found"):
        trained.load_baseline(tmp_path / "missing.ckpt")


def test_command_line_train_predict_evaluate(runs, tmp_path, capsys):
    import argparse

    from fastmri_untrained.leaderboard import add_evaluate

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    trained.add_train_baseline(sub)
    trained.add_predict_baseline(sub)
    add_evaluate(sub)

    def run(*argv):
        args = parser.parse_args(list(map(str, argv)))
        return args.func(args)

    mask = ["--center-fractions", "0.16", "--device", "cpu", "--no-progress"]
    assert run("train-baseline", "--kind", "unet", "--train-path", runs.root / "train", "--val-path",
               runs.root / "val", "--out", tmp_path / "train", "--max-epochs", "1", "--chans", "4", "--pools", "2",
               *mask) == 0
    assert "val_metrics/ssim" in capsys.readouterr().out
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    assert run("predict-baseline", "--checkpoint", ckpt, "--data-path", runs.root / "val", "--out",
               tmp_path / "unet-cli", *mask) == 0
    assert run("evaluate", "--target-path", runs.root / "val", "--predictions-path", tmp_path / "unet-cli",
               "--challenge", "multicoil") == 0
    assert "unet-cli" in capsys.readouterr().out
    with pytest.raises(InputError, match="--num-cascades"):
        run("train-baseline", "--kind", "unet", "--train-path", runs.root / "train", "--val-path",
            runs.root / "val", "--out", tmp_path / "x", "--num-cascades", "2", *mask)
    with pytest.raises(InputError, match="needs multicoil"):
        run("predict-baseline", "--checkpoint", runs.results["varnet"].last_checkpoint, "--data-path",
            runs.root / "val", "--out", tmp_path / "y", "--challenge", "singlecoil", *mask)
