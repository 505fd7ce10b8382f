"""simulate -> SliceDataset -> transform -> operators -> reconstruct -> fastMRI files, and bad input."""

import dataclasses
import json
from pathlib import Path

import fastmri
import h5py
import numpy as np
import pytest
import torch
from fastmri import evaluate as fm_eval
from fastmri.data import SliceDataset
from fastmri.data.transforms import VarNetDataTransform, center_crop

from fastmri_untrained.baselines import ZeroFilled
from fastmri_untrained.cli import main
from fastmri_untrained.data.simulate import simulate_dataset
from fastmri_untrained.fit import FitConfig
from fastmri_untrained.mri import sample_from_varnet
from fastmri_untrained.operators.masks import fastmri_mask_func
from fastmri_untrained.lightning import reconstruct_dataset
from fastmri_untrained.pipeline import MaskSpec, iterate_volumes, read_reconstruction
from fastmri_untrained.recon import UntrainedConfig, UntrainedReconstructor

SHAPE = (96, 64)  # small k-space; target 48x48
RECON_ARGS = ["--mask-type", "equispaced_fraction", "--accelerations", "4", "--center-fractions", "0.16",
              "--no-progress"]
EPS32 = float(np.finfo(np.float32).eps)


def fft_tol(n: int) -> float:
    """Rounding of a complex64 FFT over n points, relative to the largest entry: ~eps32 log2(n), 4x margin."""
    return 4 * EPS32 * np.log2(n)


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, challenge="multicoil", num_volumes=2, slices=2, coils=4, shape=SHAPE, seed=1,
                     show_progress=False)
    return out


def test_zero_filled_equals_rss_of_masked_kspace_with_and_without_readout_reduction(sim_dir):
    ds = SliceDataset(sim_dir, "multicoil",
                      transform=VarNetDataTransform(fastmri_mask_func("equispaced_fraction", [4], [0.16]),
                                                    use_seed=True))
    raw = ds[0]
    sample = sample_from_varnet(raw)
    assert sample.kspace.dtype == torch.complex64 and sample.kspace.shape == (4, *SHAPE)
    assert sample.mask.shape == (1, SHAPE[1]) and 0.2 < float(sample.mask.mean()) < 0.4
    expected = center_crop(fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(raw.masked_kspace)), dim=0),
                           sample.target_size).numpy()
    full = ZeroFilled(reduce_readout=False)(sample).image
    reduced = ZeroFilled(reduce_readout=True)(sample)
    assert reduced.info["grid_rows"] == SHAPE[0] // 2
    # magnitude and RSS: a few float32 roundings per pixel (1.7 eps32 measured); atol for FFT rounding,
    # which is relative to the largest entry (the reduction's extra readout IFFT/FFT: 1.5 eps32 of the peak)
    n = SHAPE[0] * SHAPE[1]
    np.testing.assert_allclose(full, expected, rtol=8 * EPS32, atol=fft_tol(n) * expected.max())
    np.testing.assert_allclose(reduced.image, expected, rtol=8 * EPS32, atol=fft_tol(n) * expected.max())


def test_reconstruct_writes_files_fastmri_evaluate_reads(sim_dir, tmp_path, capsys):
    out = tmp_path / "zf"
    assert main(["reconstruct", "--data-path", str(sim_dir), "--out", str(out), "--method", "zero-filled",
                 *RECON_ARGS]) == 0
    files = sorted(out.glob("*.h5"))
    assert [f.name for f in files] == sorted(p.name for p in sim_dir.glob("*.h5"))
    for f in files:
        with h5py.File(f, "r") as rec, h5py.File(sim_dir / f.name, "r") as tgt:
            assert list(rec.keys()) == ["reconstruction"]
            pred, target = rec["reconstruction"][()], tgt["reconstruction_rss"][()]
            assert pred.shape == target.shape == (2, 48, 48)
            assert 0.3 < float(fm_eval.ssim(target, pred, maxval=tgt.attrs["max"])[0]) < 1.0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"NMSE", "PSNR", "SSIM"} <= set(metrics["summary"]["zero-filled"])
    assert "zero-filled" in capsys.readouterr().out
    assert not list(out.glob(".*"))  # no temporary leftovers


def test_untrained_reconstruction_runs_from_the_cli(sim_dir, tmp_path):
    out = tmp_path / "cd"
    assert main(["reconstruct", "--data-path", str(sim_dir), "--out", str(out), "--method", "conv-decoder",
                 "--iterations", "5", "--channels", "8", "--layers", "3", *RECON_ARGS]) == 0
    with h5py.File(sorted(out.glob("*.h5"))[0], "r") as hf:
        rec = hf["reconstruction"][()]
    assert rec.shape == (2, 48, 48) and np.isfinite(rec).all() and rec.max() > 0


def test_rerun_skips_finished_volumes_and_failures_leave_no_partial_file(sim_dir, tmp_path, flaky_zero_filled):
    out = tmp_path / "resume"
    mask = MaskSpec("equispaced_fraction", (4,), (0.16,))
    with pytest.raises(RuntimeError, match="boom"):
        reconstruct_dataset(sim_dir, out, "zero-filled", "multicoil", mask, flaky_zero_filled, log=lambda m: None)
    # The complete first volume only (beside Lightning's logs), no partial file.
    assert sorted(p.name for p in out.iterdir() if p.name != "logs") == ["file_sim_1_0.h5"]
    logs = []
    rows = reconstruct_dataset(sim_dir, out, "zero-filled", "multicoil", mask, ZeroFilled(), log=logs.append)
    assert any("skipped" in m for m in logs)
    # The rows (and metrics.json) score every finished volume, the skipped one from its file.
    assert [r["file"] for r in rows] == ["file_sim_1_0.h5", "file_sim_1_1.h5"] and all("SSIM" in r for r in rows)
    assert "seconds" not in rows[0] and "seconds" in rows[1]
    assert [r["file"] for r in json.loads((out / "metrics.json").read_text())["rows"]] == [r["file"] for r in rows]


@pytest.mark.parametrize("extra,message", [
    (["--method", "wavelet-magic"], "--method"),
    (["--method", "zero-filled", "--mask-type", "spiral"], "--mask-type"),
    (["--method", "zero-filled", "--accelerations", "0.5"], "acceleration"),
])
def test_bad_arguments_fail_before_any_work(sim_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    args = ["reconstruct", "--data-path", str(sim_dir), "--out", str(out), "--center-fractions", "0.16",
            "--no-progress", *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not list(out.glob("*.h5"))


def test_bad_paths_are_named(tmp_path, capsys, sim_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["reconstruct", "--data-path", str(empty), "--out", str(tmp_path / "o"), "--method",
                 "zero-filled"]) == 2
    assert "contains no .h5 files" in capsys.readouterr().err and str(empty) in ""+str(empty)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["reconstruct", "--data-path", str(sim_dir), "--out", str(blocker / "sub"), "--method",
                 "zero-filled"]) == 2
    err = capsys.readouterr().err
    assert "cannot be written" in err and "a_file" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.h5").write_bytes(b"not an hdf5 file")
    assert main(["reconstruct", "--data-path", str(bad), "--out", str(tmp_path / "o2"), "--method",
                 "zero-filled"]) == 2
    assert "broken.h5" in capsys.readouterr().err
    assert not list((tmp_path / "o2").glob("*.h5"))


def test_holdout_early_stopping_and_report(sim_dir, tmp_path):
    out = tmp_path / "ho"
    assert main(["reconstruct", "--data-path", str(sim_dir), "--out", str(out), "--method", "deep-decoder",
                 "--iterations", "30", "--channels", "8", "--layers", "3", "--early-stop", "holdout",
                 "--report-holdout", "0.2", *RECON_ARGS]) == 0
    report = json.loads((out / "holdout.json").read_text())
    assert report["holdout_fraction"] == 0.2
    values = list(report["volumes"].values())
    assert len(values) == 2 and all(0 < v < 10 for v in values)


def test_ensemble_averages_the_fits_of_consecutive_seeds(sim_dir):
    assert UntrainedConfig(method="deep-decoder").ensemble == 2
    assert UntrainedConfig(method="conv-decoder").ensemble == UntrainedConfig(method="dip").ensemble == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="ensemble"):
            UntrainedConfig(method="deep-decoder", ensemble=bad)
    _, samples = next(iterate_volumes(sorted(sim_dir.glob("*.h5"))[:1], "multicoil",
                                      MaskSpec("equispaced_fraction", (4,), (0.16,))))
    cfg = UntrainedConfig(method="deep-decoder", net={"channels": 8, "layers": 3}, seed=5, ensemble=2,
                          fit=FitConfig(iterations=10, lr=0.01, seed=5, show_progress=False))
    ensemble = UntrainedReconstructor(cfg, show_progress=False)
    both = ensemble(samples[0], monitor=lambda image: {"peak": float(image.max())})
    # The monitor follows the first fit, and last_fit is that fit (one value per iteration 0..10).
    assert len(ensemble.last_fit.history["peak"]) == 11
    first = UntrainedReconstructor(dataclasses.replace(cfg, ensemble=1), show_progress=False)(samples[0])
    second = UntrainedReconstructor(dataclasses.replace(cfg, ensemble=1, seed=6, fit=dataclasses.replace(cfg.fit, seed=6)),
                                    show_progress=False)(samples[0])
    assert both.info["ensemble"] == 2 and both.info["iterations"] == 10
    assert not torch.allclose(first.kspace, second.kspace, rtol=1e-3, atol=0)  # seeds differ by ~40% of the peak
    # The predicted k-space is linear in the network output: the ensemble's is the members' mean.
    mean = (first.kspace + second.kspace) / 2
    # A(mean) vs mean of A(.): FFT rounding relative to the peak (0.7 eps32 measured)
    n = both.kspace.shape[-2] * both.kspace.shape[-1]
    torch.testing.assert_close(both.kspace, mean, rtol=0, atol=fft_tol(n) * float(mean.abs().max()))


def test_real_kspace_file_reconstruction_and_holdout_report(shared_data, tmp_path):
    cfl = shared_data / "kspace" / "brain_8coil_bart.cfl"
    out = tmp_path / "real"
    assert main(["reconstruct", "--data-path", str(cfl), "--out", str(out), "--method", "sense",
                 "--lamda", "0.01", "--report-holdout", "0.1", "--no-progress"]) == 0
    with h5py.File(out / "brain_8coil_bart.h5", "r") as hf:
        rec = hf["reconstruction"][()]
    assert rec.shape == (1, 230, 180) and np.isfinite(rec).all()
    nmse = json.loads((out / "holdout.json").read_text())["volumes"]["brain_8coil_bart.h5"]
    # SENSE predicts unseen k-space far better than zero-filling (which predicts 0, NMSE 1).
    assert 0 < nmse < 0.5


def test_deep_decoder_input_size_follows_the_grid():
    from fastmri_untrained.recon import DEFAULT_NET, UntrainedConfig, default_net

    assert default_net("deep-decoder", (256, 256)) == DEFAULT_NET["deep-decoder"]  # the tuned 8x8
    assert default_net("deep-decoder", (320, 368))["in_size"] == (8, 8)
    assert default_net("deep-decoder", (128, 192))["in_size"] == (32, 32)  # the demo's grid
    assert default_net("deep-decoder", (64, 96))["in_size"] == (16, 24)
    assert default_net("conv-decoder", (64, 96)) == DEFAULT_NET["conv-decoder"]
    cfg = UntrainedConfig(method="deep-decoder", net={"in_size": (4, 4), "channels": 16})
    assert cfg.net_overrides((128, 192))["in_size"] == (4, 4)  # the user's choice wins


def test_reconstruction_info_default_is_not_a_shared_mutable_dict():
    from fastmri_untrained.mri import Reconstruction

    a, b = Reconstruction(np.zeros(1)), Reconstruction(np.zeros(1))
    with pytest.raises(TypeError):
        a.info["x"] = 1  # read-only: nothing can leak from one reconstruction into another
    assert dict(b.info) == {}


def test_deep_decoder_default_falls_back_to_coil_images_on_a_centre_too_narrow_for_espirit(sim_dir):
    # 64 lines at centre fraction 0.08: 5 centre lines, ESPIRiT needs 8.
    mask = MaskSpec("equispaced_fraction", (4,), (0.08,))
    _, samples = next(iterate_volumes(sorted(sim_dir.glob("*.h5"))[:1], "multicoil", mask))
    small = dict(iterations=3, lr=0.008)
    cfg = UntrainedConfig(method="deep-decoder", net=dict(layers=3, channels=8), ensemble=1, fit=FitConfig(**small))
    with pytest.warns(UserWarning, match="too narrow for ESPIRiT"):
        result = UntrainedReconstructor(cfg, show_progress=False)(samples[0])
    assert np.isfinite(result.image).all() and result.image.shape == (48, 48)
    # A SENSE model the user chose is not replaced: ESPIRiT's own error.
    chosen = dataclasses.replace(cfg, forward_model="sense")
    with pytest.raises(ValueError, match="ESPIRiT needs at least 8"):
        UntrainedReconstructor(chosen, show_progress=False)(samples[0])


def test_demo_seed_reaches_the_fits(tmp_path, monkeypatch, capsys):
    import fastmri_untrained.cli as cli
    import fastmri_untrained.recon as recon

    monkeypatch.setattr(cli, "DEMO_SHAPE", SHAPE)
    monkeypatch.setitem(recon.DEFAULT_FIT, "conv-decoder", dict(iterations=3, lr=0.008))
    monkeypatch.setitem(recon.DEFAULT_NET, "conv-decoder", dict(layers=3, channels=8, in_size=(4, 4)))

    def demo(seed, name):
        # One simulated data set for all runs, so only the fits' seed differs.
        data = tmp_path / name / "data"
        data.mkdir(parents=True)
        for f in (tmp_path / "data").glob("*.h5"):
            (data / f.name).symlink_to(f)
        assert main(["demo", "--out", str(tmp_path / name), "--methods", "conv-decoder", "--seed", str(seed),
                     "--center-fraction", "0.16"]) == 0
        return read_reconstruction(next((tmp_path / name / "conv-decoder").glob("*.h5")))

    simulate_dataset(tmp_path / "data", "multicoil", 1, 1, 4, SHAPE, seed=0, show_progress=False)
    a, b, c = demo(1, "a"), demo(1, "b"), demo(2, "c")
    np.testing.assert_array_equal(a, b)  # same seed, same fits
    assert not np.allclose(a, c)  # another --seed, other network initialisations


def test_demo_saves_and_shows_the_ensemble_uncertainty(tmp_path, monkeypatch):
    import fastmri_untrained.cli as cli
    import fastmri_untrained.recon as recon

    monkeypatch.setattr(cli, "DEMO_SHAPE", SHAPE)
    monkeypatch.setitem(recon.DEFAULT_FIT, "deep-decoder", dict(iterations=3, lr=0.008))
    monkeypatch.setitem(recon.DEFAULT_NET, "deep-decoder", dict(layers=3, channels=8, in_size=(4, 4)))
    assert main(["demo", "--out", str(tmp_path), "--methods", "zero-filled", "deep-decoder", "--save-uncertainty",
                 "--center-fraction", "0.16"]) == 0
    with h5py.File(next((tmp_path / "deep-decoder").glob("*.h5")), "r") as hf:
        assert hf["reconstruction_std"].shape == hf["reconstruction"].shape
    with h5py.File(next((tmp_path / "zero-filled").glob("*.h5")), "r") as hf:
        assert "reconstruction_std" not in hf  # no ensemble, no spread
    assert (tmp_path / "demo.png").stat().st_size > 1000


def test_non_h5_entries_and_the_output_directory_inside_the_data_are_ignored(tmp_path, capsys):
    data = tmp_path / "data"
    simulate_dataset(data, "multicoil", 1, 1, 4, SHAPE, seed=2, show_progress=False)
    (data / "README.txt").write_text("not k-space")
    (data / "subdir").mkdir()
    out = data / "recon"  # the run's own output inside --data-path
    for _ in range(2):  # the second run finds its own output there and still reads only the data
        assert main(["reconstruct", "--data-path", str(data), "--out", str(out), "--method", "zero-filled",
                     *RECON_ARGS]) == 0
    assert "ignoring 3 entries that are not .h5 files" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.h5")) == ["file_sim_2_0.h5"]
    assert main(["reconstruct", "--data-path", str(data), "--out", str(data), "--method", "zero-filled",
                 *RECON_ARGS]) == 2
    assert "--out: must not be the input data directory" in capsys.readouterr().err


def _test_layout_copy(src: Path, dst: Path, mask: np.ndarray) -> Path:
    """``src`` in fastMRI's test-set layout: undersampled k-space, its ``mask``, no target."""
    with h5py.File(src, "r") as a, h5py.File(dst, "w") as b:
        b["kspace"] = a["kspace"][()] * mask
        b["mask"] = mask
        b["ismrmrd_header"] = a["ismrmrd_header"][()]
        for k, v in a.attrs.items():
            b.attrs[k] = v
    return dst


def test_test_set_files_keep_their_own_mask(sim_dir, tmp_path, capsys):
    src = sorted(sim_dir.glob("*.h5"))[0]
    mask = np.zeros(SHAPE[1], dtype=bool)
    mask[::3] = True
    mask[SHAPE[1] // 2 - 5:SHAPE[1] // 2 + 5] = True
    data = tmp_path / "test_set"
    data.mkdir()
    _test_layout_copy(src, data / src.name, mask)
    out = tmp_path / "out"
    assert main(["reconstruct", "--data-path", str(data), "--out", str(out), "--method", "zero-filled",
                 *RECON_ARGS]) == 0
    assert "already undersampled (" in capsys.readouterr().out
    with h5py.File(data / src.name, "r") as hf:
        kspace = torch.from_numpy(hf["kspace"][()])
    expected = np.stack([ZeroFilled()(sample_from_varnet_like(kspace[s], mask)).image for s in range(kspace.shape[0])])
    np.testing.assert_array_equal(read_reconstruction(out / src.name), expected)  # not undersampled again
    # With --retrospective-mask it is undersampled a second time, on purpose.
    again = tmp_path / "again"
    assert main(["reconstruct", "--data-path", str(data), "--out", str(again), "--method", "zero-filled",
                 "--retrospective-mask", *RECON_ARGS]) == 0
    assert not np.allclose(read_reconstruction(again / src.name), expected)


def sample_from_varnet_like(kspace: torch.Tensor, mask: np.ndarray):
    from fastmri_untrained.mri import MRISample

    return MRISample(kspace=kspace.to(torch.complex64), mask=torch.from_numpy(mask.astype(np.float32))[None],
                     target_size=(48, 48))


def test_save_volume_refuses_non_finite_values(tmp_path):
    from fastmri_untrained.pipeline import save_volume

    vol = np.ones((1, 4, 4), np.float32)
    vol[0, 1, 1] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        save_volume(tmp_path, "v.h5", vol)
    assert not list(tmp_path.iterdir())


def test_a_253_character_volume_name_reconstructs_and_logs_its_image(tmp_path):
    data = tmp_path / "data"
    simulate_dataset(data, "multicoil", 1, 1, 4, SHAPE, seed=4, show_progress=False)
    long = data / ("v" * 250 + ".h5")  # 253 characters: file names stop at 255 bytes
    next(data.glob("file_sim_*.h5")).rename(long)
    out = tmp_path / "out"
    assert main(["reconstruct", "--data-path", str(data), "--out", str(out), "--method", "zero-filled",
                 "--device", "cpu", *RECON_ARGS]) == 0
    assert (out / long.name).exists() and len(list((out / "logs").rglob("images/*.png"))) == 1


@pytest.mark.parametrize("mask_kind", ["column", "2-D"])
def test_kspace_noise_std_recovers_the_noise_of_a_decaying_signal(mask_kind):
    """The noise level under the L1-wavelet weight rule: complex Gaussian noise of std 0.01 per
    part on a signal that decays from the centre (as MR k-space does), undersampled."""
    from fastmri_untrained.mri import kspace_noise_std
    from fastmri_untrained.operators.masks import column_mask, poisson_mask

    g = torch.Generator().manual_seed(0)
    coils, h, w, sigma = 4, 128, 96, 0.01
    ky, kx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    signal = 50 * torch.exp(-(ky ** 2 + kx ** 2) / (2 * 6.0 ** 2)).to(torch.complex64)
    noise = sigma * torch.complex(torch.randn(coils, h, w, generator=g), torch.randn(coils, h, w, generator=g))
    if mask_kind == "column":
        mask = column_mask("equispaced_fraction", (h, w), 4, 0.08)
    else:
        mask = poisson_mask((h, w), 4, seed=0)
    kspace = (signal + noise) * mask
    n = coils * int(0.05 * int(torch.broadcast_to(mask > 0, (h, w)).sum()))
    # The sample median of n Rayleigh magnitudes has a relative standard error of 0.72 / sqrt(n);
    # 4 standard errors (the signal has decayed to under 1e-20 of its peak where the estimate looks).
    assert kspace_noise_std(kspace, mask) == pytest.approx(sigma, rel=4 * 0.72 / np.sqrt(n))
