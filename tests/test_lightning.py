"""Lightning: dataset reconstruction in test/predict steps, and one fit as Trainer.fit."""

import csv
import dataclasses
import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from fastmri_untrained.baselines import ZeroFilled
from fastmri_untrained.cli import main
from fastmri_untrained.data.simulate import simulate_dataset
from fastmri_untrained.errors import InputError
from fastmri_untrained.evaluate import volume_metrics
from fastmri_untrained.fit import EarlyStopConfig, FitConfig, fit
from fastmri_untrained.lightning import (DataConfig, FastMRIDataModule, ReconConfig,
                                         SliceReconstructionModule, check_trainer_args, fit_with_trainer,
                                         reconstruct_dataset, slice_fit_module)
from fastmri_untrained.mri import sample_from_varnet
from fastmri_untrained.nets import build_net
from fastmri_untrained.operators.mri import SubsampledFourier
from fastmri_untrained.pipeline import (MaskSpec, for_slice, iterate_volumes, make_reconstructor,
                                        read_reconstruction, slice_seed)
from fastmri_untrained.recon import UntrainedConfig, UntrainedReconstructor

SHAPE = (96, 64)
MASK = MaskSpec("equispaced_fraction", (4,), (0.16,))
TINY = dict(method="deep-decoder", net={"channels": 8, "layers": 3},
            fit=FitConfig(iterations=5, lr=0.01, show_progress=False))
EPS32 = float(np.finfo(np.float32).eps)
# fastmri.evaluate's metrics of float32 volumes run in float32 (NMSE, SSIM): a few eps32 between routes
METRIC_RTOL = 8 * EPS32


def fit_tol(n: int, steps: int = 1) -> float:
    """Float32 rounding-order slack for a fit: a loss sums n terms (~eps32 log2 n), 4x margin, per step."""
    return 4 * steps * EPS32 * np.log2(n)


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, challenge="multicoil", num_volumes=2, slices=2, coils=3, shape=SHAPE, seed=3,
                     show_progress=False)
    return out


def plain_volumes(sim_dir, reconstructor) -> dict:
    """The reference, no Lightning: each slice reconstructed directly, stacked per volume (a volume
    that an un-trained configuration fits K slices at a time: reconstruct_volume with the
    driver's seeds per slice)."""
    volumes = {}
    for name, samples in iterate_volumes(sorted(sim_dir.glob("*.h5")), "multicoil", MASK):
        if isinstance(reconstructor, UntrainedReconstructor) and reconstructor.config.slices_per_pass > 1:
            seeds = [slice_seed(reconstructor.config.seed, s.fname, s.slice_num) for s in samples]
            volumes[name] = np.stack([r.image for r in reconstructor.reconstruct_volume(samples, seeds)])
        else:
            volumes[name] = np.stack([for_slice(reconstructor, s)(s).image for s in samples])
    return volumes


def trainer(tmp_path, **kwargs) -> pl.Trainer:
    from pytorch_lightning.loggers import CSVLogger

    kw = dict(accelerator="cpu", devices=1, logger=CSVLogger(tmp_path / "logs", name="t"),
              use_distributed_sampler=False, enable_progress_bar=False, enable_model_summary=False,
              enable_checkpointing=False)
    kw.update(kwargs)
    return pl.Trainer(**kw)


def run_module(sim_dir, out, method, untrained=None, stage="test", reconstructor=None, tmp_path=None, files=None):
    module = SliceReconstructionModule(ReconConfig(method=method, untrained=untrained, out_dir=out),
                                       reconstructor=reconstructor)
    data = FastMRIDataModule(DataConfig(sim_dir, "multicoil", MASK, files=files))
    t = trainer(tmp_path or out)
    result = getattr(t, stage)(module, datamodule=data)
    return module, t, result


def test_classical_module_writes_the_pipeline_files_and_logs_fastmri_metrics(sim_dir, tmp_path):
    ref = plain_volumes(sim_dir, ZeroFilled())
    rows = reconstruct_dataset(sim_dir, tmp_path / "driver", "zero-filled", "multicoil", MASK, log=lambda m: None)
    out = tmp_path / "pl"
    module, t, _ = run_module(sim_dir, out, "zero-filled", tmp_path=tmp_path)
    names = sorted(p.name for p in sim_dir.glob("*.h5"))
    assert sorted(p.name for p in out.glob("*.h5")) == names
    for name in names:
        np.testing.assert_array_equal(read_reconstruction(out / name), ref[name])
        np.testing.assert_array_equal(read_reconstruction(tmp_path / "driver" / name), ref[name])
    # Per-volume metrics are fastmri.evaluate's, on the written volume and the file's target.
    for row, name in zip(module.rows, names):
        vols = dict(iterate_volumes([sim_dir / name], "multicoil", MASK))
        samples = vols[name]
        expected = volume_metrics(np.stack([s.target for s in samples]), read_reconstruction(out / name),
                                  maxval=samples[0].max_value)
        assert row["file"] == name
        for m in ("NMSE", "PSNR", "SSIM"):
            assert row[m] == pytest.approx(expected[m], rel=METRIC_RTOL)
            assert row[m] == pytest.approx(next(r for r in rows if r["file"] == name)[m], rel=METRIC_RTOL)
    logged = t.callback_metrics
    for m in ("NMSE", "PSNR", "SSIM"):  # logged as a float32 tensor: one more eps32 rounding
        assert float(logged[f"test/{m}"]) == pytest.approx(np.mean([r[m] for r in module.rows]), rel=METRIC_RTOL)
    # ... and reach the CSV logger, per volume and averaged; one comparison PNG was saved.
    with open(Path(t.logger.log_dir) / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    per_volume = [float(r["volume/SSIM"]) for r in table if r.get("volume/SSIM")]
    assert per_volume == pytest.approx([r["SSIM"] for r in module.rows], rel=METRIC_RTOL)  # float32 logging
    assert any(r.get("test/SSIM") for r in table)
    pngs = list((Path(t.logger.log_dir) / "images").glob("*.png"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 1000


def test_deep_decoder_fitted_inside_predict_step_matches_pipeline(sim_dir, tmp_path):
    cfg = UntrainedConfig(**TINY)
    ref = plain_volumes(sim_dir, make_reconstructor("deep-decoder", untrained=cfg, show_progress=False))
    out = tmp_path / "pl"
    # predict runs under torch.inference_mode: the fit must still get gradients (or it would raise,
    # or return the initial network output, which the reference run did not).
    module, _, predicted = run_module(sim_dir, out, "deep-decoder", untrained=cfg, stage="predict",
                                      tmp_path=tmp_path)
    # predict_step: the slices finished at each step (None while a joint run waits for its slices)
    predictions = [p for step in predicted if step for p in step]
    assert [(p["fname"], p["slice_num"]) for p in predictions] == [
        (n, k) for n in sorted(p.name for p in sim_dir.glob("*.h5")) for k in range(2)]
    for name in sorted(p.name for p in sim_dir.glob("*.h5")):
        np.testing.assert_array_equal(read_reconstruction(out / name), ref[name])
        stacked = np.stack([p["image"] for p in predictions if p["fname"] == name])
        np.testing.assert_array_equal(stacked, read_reconstruction(out / name))
    # And the fit really moved the network: zero iterations give a different image.
    out0 = tmp_path / "zero-iter"
    cfg0 = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, iterations=0))
    run_module(sim_dir, out0, "deep-decoder", untrained=cfg0, tmp_path=tmp_path)
    name = sorted(p.name for p in sim_dir.glob("*.h5"))[0]
    assert not np.allclose(read_reconstruction(out0 / name), read_reconstruction(out / name))  # far beyond rounding


def test_failure_keeps_finished_volumes_and_leaves_no_partial_file_then_resume(sim_dir, tmp_path, flaky_zero_filled):
    out = tmp_path / "flaky"
    with pytest.raises(RuntimeError, match="boom"):
        run_module(sim_dir, out, "zero-filled", reconstructor=flaky_zero_filled, tmp_path=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["file_sim_3_0.h5"]  # complete first volume only
    assert read_reconstruction(out / "file_sim_3_0.h5").shape == (2, 48, 48)
    # The CLI resumes: it skips the finished volume and writes the other one.
    before = (out / "file_sim_3_0.h5").stat().st_mtime_ns
    assert main(["reconstruct", "--data-path", str(sim_dir), "--out", str(out), "--method", "zero-filled",
                 "--center-fractions", "0.16", "--device", "cpu", "--no-progress"]) == 0
    assert (out / "file_sim_3_0.h5").stat().st_mtime_ns == before
    assert sorted(p.name for p in out.glob("*.h5")) == ["file_sim_3_0.h5", "file_sim_3_1.h5"]
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    # Every finished volume is scored, the one from the interrupted run too, as a run in one go would.
    full = tmp_path / "full"
    assert main(["reconstruct", "--data-path", str(sim_dir), "--out", str(full), "--method", "zero-filled",
                 "--center-fractions", "0.16", "--device", "cpu", "--no-progress"]) == 0
    expected = json.loads((full / "metrics.json").read_text())["rows"]
    assert [r["file"] for r in rows] == [r["file"] for r in expected] == ["file_sim_3_0.h5", "file_sim_3_1.h5"]
    for got, want in zip(rows, expected):
        for m in ("NMSE", "PSNR", "SSIM"):  # same float32 files, same fastmri.evaluate code: equal
            assert got[m] == want[m]
    assert not list(out.glob(".*"))


def test_cli_reconstruct_runs_through_the_module_with_holdout_report(sim_dir, tmp_path):
    out = tmp_path / "cli"
    assert main(["reconstruct", "--data-path", str(sim_dir), "--out", str(out), "--method", "deep-decoder",
                 "--iterations", "5", "--channels", "8", "--layers", "3", "--center-fractions", "0.16",
                 "--report-holdout", "0.2", "--device", "cpu", "--devices", "1", "--precision", "32-true",
                 "--no-progress"]) == 0
    holdout = json.loads((out / "holdout.json").read_text())
    assert sorted(holdout["volumes"]) == sorted(p.name for p in sim_dir.glob("*.h5"))
    assert all(0 < v < 10 for v in holdout["volumes"].values())
    assert list((out / "logs").rglob("metrics.csv"))


@pytest.mark.parametrize("flags,name", [
    (["--device", "gpu"], "--device"),
    (["--device", "cpu", "--devices", "0,1"], "--devices"),
    (["--device", "cpu", "--devices", "many"], "--devices"),
    (["--strategy", "horovod"], "--strategy"),
    (["--precision", "8-bit"], "--precision"),
    (["--num-nodes", "0"], "--num-nodes"),
])
def test_bad_devices_fail_before_any_work(sim_dir, tmp_path, capsys, flags, name, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "bad"
    assert main(["reconstruct", "--data-path", str(sim_dir), "--out", str(out), "--method", "zero-filled",
                 "--no-progress", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0]
    assert not out.exists()


def test_too_many_gpus_is_an_input_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InputError, match="64 GPUs requested but only 1"):
        check_trainer_args("gpu", "64")
    with pytest.raises(InputError, match="devices"):
        check_trainer_args("cuda", "0,3")
    assert check_trainer_args("gpu", "1")["devices"] == 1


# ---- one fit as a Lightning training loop ----------------------------------------------------

def _problem(seed=0):
    torch.manual_seed(seed)
    h, w = 16, 16
    x = torch.randn(2, h, w, dtype=torch.complex64)
    mask = (torch.rand(1, w) < 0.5).float()
    mask[..., w // 2 - 2:w // 2 + 2] = 1
    op = SubsampledFourier(mask)
    y = op(x) * 1e-3  # fastMRI-like scale: the data scaling matters

    def forward_model(output):
        return op(torch.complex(output[0, 0::2], output[0, 1::2]))

    def make_net():
        return build_net("deep-decoder", 4, (h, w), seed=7, channels=8, layers=3)

    return make_net, forward_model, y


@pytest.mark.parametrize("cfg", [
    FitConfig(iterations=12, lr=0.01, show_progress=False, lr_schedule="cosine", lr_min_factor=0.1),
    FitConfig(iterations=8, optimizer="sgd", lr=3e-4, show_progress=False, reg_noise_std=0.01, seed=3),
])
def test_trainer_fit_equals_the_plain_fitting_engine(cfg):
    make_net, forward_model, y = _problem()
    ref = fit(make_net(), forward_model, y, cfg)
    result, module = fit_with_trainer(make_net(), forward_model, y, cfg)
    assert result.iterations == cfg.iterations == len(module.losses)
    # the same float32 ops in the same order (bitwise equal measured): allow reduction-order rounding of
    # the n = y.numel() term sums, once for the scale and the losses, once per step for the output
    n = y.numel()
    assert module.scale == pytest.approx(ref.scale, rel=fit_tol(n))
    np.testing.assert_allclose(module.losses, ref.history["loss"][:cfg.iterations], rtol=fit_tol(n, cfg.iterations))
    assert module.losses[-1] < module.losses[0]  # it did fit
    torch.testing.assert_close(result.output, ref.output, rtol=0,
                               atol=fit_tol(n, cfg.iterations) * float(ref.output.abs().max()))


def test_trainer_fit_honours_compile():
    # FitConfig(compile=True) compiles the network in the Lightning path too, without a second
    # copy of its weights in the module's state_dict.
    make_net, forward_model, y = _problem()
    cfg = FitConfig(iterations=10, lr=0.01, show_progress=False)
    ref = fit(make_net(), forward_model, y, cfg)
    result, module = fit_with_trainer(make_net(), forward_model, y, dataclasses.replace(cfg, compile=True))
    assert type(module._step_net["net"]).__name__ == "OptimizedModule"
    assert all(key.startswith("net.") for key in module.state_dict())
    # fused kernels reorder float32 sums: ~eps32 log2(n) per step over 10 steps = 4.3e-5
    # (3 eps32 on the losses, 24 eps32 of the peak on the output measured)
    tol = fit_tol(y.numel(), steps=10)
    np.testing.assert_allclose(module.losses, ref.history["loss"][:10], rtol=tol)
    torch.testing.assert_close(result.output, ref.output, rtol=0, atol=tol * float(ref.output.abs().max()))


def _nan_after(forward_model, calls: int):
    count = {"n": 0}

    def exploding(output):
        count["n"] += 1
        return forward_model(output) * (float("nan") if count["n"] > calls else 1.0)

    return exploding


@pytest.mark.parametrize("case", ["early-stop", "non-finite"])
def test_trainer_fit_stops_where_the_plain_fitting_engine_stops(case):
    # FitModule drives fit.Fitter, so its checks are fit.fit's: early stopping on a validation
    # function, and a non-finite loss (a warning, no step on it, the best iterate returned).
    make_net, forward_model, y = _problem()
    target = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1)) * 1e-3

    def validation(output):  # falls, then rises once the fit leaves the random target behind
        return float(((output - target) ** 2).sum())

    kwargs = {}
    if case == "early-stop":
        cfg = FitConfig(iterations=200, lr=0.05, show_progress=False,
                        early_stop=EarlyStopConfig(check_every=3, patience=9))
        kwargs["validation"] = validation
        model = lambda: forward_model  # noqa: E731
    else:
        cfg = FitConfig(iterations=30, lr=0.01, show_progress=False)
        model = lambda: _nan_after(forward_model, 12)  # noqa: E731
    with pytest.warns(RuntimeWarning, match="non-finite") if case == "non-finite" else nullcontext():
        ref = fit(make_net(), model(), y, cfg, **kwargs)
    with pytest.warns(RuntimeWarning, match="non-finite") if case == "non-finite" else nullcontext():
        result, module = fit_with_trainer(make_net(), model(), y, cfg, **kwargs)
    assert ref.stop_reason == case and ref.iterations < cfg.iterations
    # Lightning runs the same float32 kernels in the same order (bitwise equal measured), so the
    # discrete outcomes are compared exactly; the output gets the reduction-order slack of the
    # test above, once per step taken.
    assert (result.stop_reason, result.iterations, result.returned_iteration) == (
        ref.stop_reason, ref.iterations, ref.returned_iteration)
    assert module.trainer.should_stop
    n = y.numel()
    np.testing.assert_allclose(result.history["loss"], ref.history["loss"], rtol=fit_tol(n, ref.iterations))
    torch.testing.assert_close(result.output, ref.output, rtol=0,
                               atol=fit_tol(n, ref.iterations) * float(ref.output.abs().max()))
    assert torch.isfinite(result.output).all()


def test_trainer_fit_early_stopping_on_heldout_kspace_with_lightning_callbacks(sim_dir, tmp_path):
    from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    ds = FastMRIDataModule(DataConfig(sim_dir, "multicoil", MASK)).dataset()
    sample = sample_from_varnet(ds[0])
    cfg = UntrainedConfig(method="deep-decoder", net={"channels": 8, "layers": 3}, early_stop="holdout",
                          holdout_fraction=0.2,
                          # A learning rate far too high: the held-out loss stops improving early.
                          fit=FitConfig(iterations=60, lr=0.5, show_progress=False,
                                        early_stop=EarlyStopConfig(check_every=5, patience=10)))
    module, problem = slice_fit_module(sample, cfg)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_holdout", save_top_k=1)
    t = pl.Trainer(accelerator="cpu", devices=1, logger=CSVLogger(tmp_path / "logs"), enable_progress_bar=False,
                   enable_model_summary=False, gradient_clip_val=1.0,
                   callbacks=[EarlyStopping("val_holdout", patience=2, check_on_train_epoch_end=True), ckpt,
                              LearningRateMonitor("step")],
                   **module.trainer_kwargs())
    t.fit(module)
    assert module.val_history and t.global_step < 60  # stopped early
    assert [s for s, _ in module.val_history] == list(range(0, t.global_step, 5))
    best_val = min(v for _, v in module.val_history)
    assert float(ckpt.best_model_score) == pytest.approx(best_val, rel=EPS32)  # stored as a float32 tensor
    image = problem.finish(module.best_output)[0]
    assert image.shape == (48, 48) and np.isfinite(image).all()
    with open(Path(t.logger.log_dir) / "metrics.csv") as f:
        header = next(csv.reader(f))
    assert "val_holdout" in header and any(h.startswith("lr-") for h in header)


def test_ctrl_c_keeps_finished_volumes(sim_dir, tmp_path):
    out = tmp_path / "ctrl-c"
    calls = {"n": 0}

    def interrupted(sample):
        calls["n"] += 1
        if calls["n"] > 3:  # Ctrl-C during the second volume's second slice
            raise KeyboardInterrupt
        return ZeroFilled()(sample)

    module = SliceReconstructionModule(ReconConfig(method="zero-filled", out_dir=out), reconstructor=interrupted)
    t = trainer(tmp_path)
    with pytest.raises(SystemExit):  # Lightning's graceful shutdown; the CLI turns it into exit code 130
        t.test(module, datamodule=FastMRIDataModule(DataConfig(sim_dir, "multicoil", MASK)))
    assert t.interrupted
    assert sorted(p.name for p in out.iterdir()) == ["file_sim_3_0.h5"]


def test_sigterm_stops_a_fit_under_way_like_ctrl_c(tmp_path):
    # A scheduler's SIGTERM, sent to the CLI while a fit runs (a budget it would take hours to
    # spend): the process ends within seconds (Lightning alone would go on to the end of the
    # volume), exits 143 with one line, and leaves no partial file.
    import os
    import signal
    import subprocess
    import sys
    import time

    data, out = tmp_path / "sim", tmp_path / "out"
    simulate_dataset(data, challenge="multicoil", num_volumes=2, slices=1, coils=2, shape=(64, 48), seed=3,
                     show_progress=False)
    cmd = [sys.executable, "-m", "fastmri_untrained.cli", "reconstruct", "--data-path", str(data), "--out", str(out),
           "--method", "conv-decoder", "--iterations", "10000000", "--channels", "8", "--layers", "3",
           "--mask-type", "equispaced_fraction", "--accelerations", "4", "--center-fractions", "0.16"]
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            deadline = time.monotonic() + 300  # start-up on a busy machine
            while not any(rate in (text := stderr.read_text()) for rate in ("it/s", "s/it")):  # the fit's progress bar
                assert proc.poll() is None and time.monotonic() < deadline, text[-2000:]
                time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=120)
        finally:
            proc.kill()
    text = stderr.read_text()
    assert rc == 143, text[-2000:]
    assert "terminated (SIGTERM); finished volumes are kept, no partial file was written" in text
    assert sorted(p.name for p in out.iterdir()) == ["logs"]


def test_volume_table_holds_every_processes_volumes_after_the_sum_reduction():
    """What torchmetrics' sum reduction does across processes, done by hand: each volume lives on
    one process, so the summed table is exact (adding zeros), in float64, NaN marking absent values."""
    from fastmri_untrained.evaluate import VolumeTable
    from fastmri_untrained.lightning import TABLE_COLUMNS

    names = ["a.h5", "b.h5", "c.h5"]
    rank0, rank1 = VolumeTable(names, TABLE_COLUMNS), VolumeTable(names, TABLE_COLUMNS)
    scored = {"file": "b.h5", "seconds": 2.5, "NMSE": 0.012345678901234, "PSNR": 31.123456789012, "SSIM": 0.9}
    unscored = {"file": "a.h5", "seconds": 1.25, "holdout_nmse": 0.5}
    rank0.update(scored)
    rank1.update(unscored)
    rows = rank0.rows(rank0.values + rank1.values, rank0.present + rank1.present)
    assert rows == [unscored, scored]  # c.h5 was reconstructed by no process: no row
