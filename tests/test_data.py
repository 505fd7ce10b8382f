"""Simulated fastMRI-schema data and the real MR ground-truth images."""


import fastmri
import h5py
import numpy as np
import pytest
import torch
from fastmri.data import SliceDataset
from fastmri.data.subsample import EquispacedMaskFractionFunc, RandomMaskFunc
from fastmri.data.transforms import UnetDataTransform, VarNetDataTransform, center_crop, to_tensor

from fastmri_untrained.data import simulate as sim
from fastmri_untrained.data.images import mr_images, source_slices
from fastmri_untrained.data.simulate import (
    SimulationConfig,
    coil_maps,
    simulate_dataset,
    simulate_slice,
)

SHAPE = (160, 128)  # small: H = 160 readout (2x oversampled), W = 128 phase encodes
RECON = (80, 80)
COILS = 3
EPS32 = float(np.finfo(np.float32).eps)


def fft_tol(n: int) -> float:
    """Rounding of a complex64 FFT over n points, relative to the largest entry: ~eps32 log2(n), 4x margin."""
    return 4 * EPS32 * np.log2(n)


@pytest.fixture(scope="module")
def multicoil_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("multicoil")
    simulate_dataset(d, "multicoil", num_volumes=2, slices=2, coils=COILS, shape=SHAPE,
                     seed=7, show_progress=False)
    return d


@pytest.fixture(scope="module")
def singlecoil_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("singlecoil")
    simulate_dataset(d, "singlecoil", num_volumes=1, slices=3, shape=SHAPE, seed=7,
                     show_progress=False)
    return d


# ----------------------------------------------------------------------------- images


def test_mr_images_shape_range_and_distinct_slices():
    imgs = mr_images(5, (48, 40), seed=3)
    assert imgs.shape == (5, 48, 40) and imgs.dtype == np.float32
    # each slice is divided by its own maximum (x / x = 1 exactly); allow one float32 rounding
    assert imgs.min() >= 0 and np.allclose(imgs.max(axis=(1, 2)), 1.0, rtol=0, atol=EPS32)
    for i in range(5):
        for j in range(i + 1, 5):
            assert not np.allclose(imgs[i], imgs[j], atol=0.05)  # differ by over 5% of the maximum somewhere
    # Real brain slices: substantial background and object, not a constant or a phantom.
    for im in imgs:
        assert 0.15 < (im > 0.1).mean() < 0.9
        assert len(np.unique(np.round(im, 2))) > 30


def test_mr_images_deterministic_and_seed_dependent():
    a = mr_images(3, (32, 32), seed=(1, 2))
    assert np.array_equal(a, mr_images(3, (32, 32), seed=(1, 2)))
    assert not np.allclose(a, mr_images(3, (32, 32), seed=(1, 3)))


def test_source_slices_come_from_dipy():
    srcs = source_slices()
    assert len(srcs) == 11 and all(s.name.startswith("dipy:") for s in srcs)
    assert srcs[0].image.shape == (256, 256)


# ----------------------------------------------------------------------------- schema


def test_multicoil_schema(multicoil_dir):
    files = sorted(multicoil_dir.glob("*.h5"))
    assert [f.name for f in files] == ["file_sim_7_0.h5", "file_sim_7_1.h5"]
    with h5py.File(files[0], "r") as hf:
        assert set(hf.keys()) == {"kspace", "reconstruction_rss", "ismrmrd_header"}
        assert hf["kspace"].dtype == np.complex64 and hf["kspace"].shape == (2, COILS, *SHAPE)
        t = hf["reconstruction_rss"]
        assert t.dtype == np.float32 and t.shape == (2, *RECON)
        assert hf.attrs["acquisition"] == "AXT1"
        assert hf.attrs["max"] == float(t[()].max())  # the same float32 maximum, stored as a float: exact
        # the attribute is a float64 norm; this one sums N = 12800 float32 squares (~eps32 log2 N, 4x margin)
        assert hf.attrs["norm"] == pytest.approx(float(np.linalg.norm(t[()])), rel=4 * EPS32 * np.log2(t.size))
        assert isinstance(hf.attrs["patient_id"], str) and hf.attrs["patient_id"]
        # Magnitudes in the range of real fastMRI data.
        assert 1e-4 < hf.attrs["max"] < 1e-3  # real fastMRI targets peak near 3e-4 (a scale, not a tolerance)
        assert 1e-5 < np.abs(hf["kspace"][()]).max() < 1e-2


def test_singlecoil_schema(singlecoil_dir):
    (f,) = sorted(singlecoil_dir.glob("*.h5"))
    with h5py.File(f, "r") as hf:
        assert set(hf.keys()) == {"kspace", "reconstruction_esc", "ismrmrd_header"}
        assert hf["kspace"].dtype == np.complex64 and hf["kspace"].shape == (3, *SHAPE)
        assert hf["reconstruction_esc"].dtype == np.float32
        assert hf["reconstruction_esc"].shape == (3, *RECON)
        assert hf.attrs["acquisition"] == "CORPD_FBK"


def test_header_sizes_parse_as_set(multicoil_dir):
    ds = SliceDataset(multicoil_dir, "multicoil")
    assert len(ds) == 4
    meta = ds.raw_samples[0].metadata
    assert meta["encoding_size"] == (*SHAPE, 1)
    assert meta["recon_size"] == (*RECON, 1)
    assert meta["padding_left"] == 0 and meta["padding_right"] == SHAPE[1]


def test_default_shape_header_and_crop():
    cfg = SimulationConfig()
    assert cfg.shape == (640, 368) and cfg.recon_size == (320, 320)
    xml = sim.ismrmrd_header(cfg)
    for s in ("<x>640</x><y>368</y>", "<x>320</x><y>320</y>",
              "<maximum>367</maximum><center>184</center>"):
        assert s in xml


# ----------------------------------------------------------------------------- fastMRI loading


def test_varnet_transform_loads_and_masks(multicoil_dir):
    tf = VarNetDataTransform(mask_func=EquispacedMaskFractionFunc([0.08], [4]))
    ds = SliceDataset(multicoil_dir, "multicoil", transform=tf)
    s = ds[1]
    assert s.masked_kspace.shape == (COILS, *SHAPE, 2)
    assert s.mask.shape == (1, 1, SHAPE[1], 1)
    assert s.target.shape == RECON and s.crop_size == RECON
    frac = s.mask.float().mean().item()
    assert 0.2 < frac < 0.35
    # Unsampled phase-encode columns (last dim) are exactly zero, sampled ones are not.
    cols = s.mask[0, 0, :, 0]
    assert torch.all(s.masked_kspace[:, :, ~cols] == 0)
    assert torch.all(s.masked_kspace[:, :, cols].abs().sum(dim=(0, 1, 3)) > 0)
    assert s.num_low_frequencies == round(0.08 * SHAPE[1])
    assert s.max_value == pytest.approx(s.target.max().item(), rel=0.5)  # the volume's max vs this slice's: same scale


@pytest.mark.parametrize("challenge", ["multicoil", "singlecoil"])
def test_unet_transform_loads(challenge, multicoil_dir, singlecoil_dir):
    root = multicoil_dir if challenge == "multicoil" else singlecoil_dir
    tf = UnetDataTransform(challenge, mask_func=RandomMaskFunc([0.08], [4]))
    s = SliceDataset(root, challenge, transform=tf)[0]
    assert s.image.shape == RECON and s.target.shape == RECON
    assert torch.isfinite(s.image).all() and torch.isfinite(s.target).all()
    # The zero-filled input correlates with the target (same object, right crop).
    c = np.corrcoef(s.image.flatten().numpy(), s.target.flatten().numpy())[0, 1]
    assert c > 0.6


@pytest.mark.parametrize("challenge", ["multicoil", "singlecoil"])
def test_target_is_rss_of_noisy_full_kspace(challenge, multicoil_dir, singlecoil_dir):
    root = multicoil_dir if challenge == "multicoil" else singlecoil_dir
    key = sim.TARGET_KEYS[challenge]
    for f in sorted(root.glob("*.h5")):
        with h5py.File(f, "r") as hf:
            k, target = hf["kspace"][()], hf[key][()]
        img = fastmri.complex_abs(fastmri.ifft2c(to_tensor(k)))
        if challenge == "multicoil":
            img = fastmri.rss(img, dim=1)
        expect = center_crop(img, RECON).numpy()
        # magnitude and RSS take a few float32 roundings (1.9 eps32 measured); atol covers an inverse FFT
        # implemented differently (its rounding is relative to the largest entry)
        np.testing.assert_allclose(target, expect, rtol=8 * EPS32, atol=fft_tol(SHAPE[0] * SHAPE[1]) * target.max())


def test_noise_level_and_object_placement():
    cfg = SimulationConfig(shape=SHAPE, coils=4, snr=30.0)
    sl = simulate_slice(mr_images(1, RECON, seed=0)[0], cfg, np.random.default_rng(0))
    H = SHAPE[0]
    coil_imgs = fastmri.ifft2c(to_tensor(sl.kspace))
    coil_imgs = torch.view_as_complex(coil_imgs).numpy()
    # Outside the central H/2 rows there is only noise, of the configured std.
    outside = np.concatenate([coil_imgs[:, : H // 4], coil_imgs[:, 3 * H // 4 :]], axis=1)
    measured = np.sqrt(np.mean(np.abs(outside) ** 2))
    # RMS of N complex Gaussian samples: relative standard error 1 / (2 sqrt N) = 0.0025; 5 of them
    assert measured == pytest.approx(sl.noise_std, rel=5 / (2 * np.sqrt(outside.size)))
    # The configured SNR: mean object magnitude over the foreground / noise std.
    mag = np.abs(sl.image)
    fg = mag > 0.1 * mag.max()
    # noise_std is this mean / snr, but from the float64 image: float32 magnitudes and mean, ~eps32 log2(N)
    assert mag[fg].mean() / sl.noise_std == pytest.approx(30.0, rel=4 * EPS32 * np.log2(fg.sum()))
    # The object itself lies inside the central rows and the target crop.
    assert np.abs(sl.image[: H // 4]).max() == 0 and np.abs(sl.image[3 * H // 4 :]).max() == 0
    # The target is noisy: it differs from the noise-free RSS by about the noise.
    clean = sim.center_crop_np(mag, RECON)
    err = np.sqrt(np.mean((sl.target - clean) ** 2))
    assert 0.3 * sl.noise_std < err < 3 * sl.noise_std


def test_coil_maps_unit_rss_and_varying():
    maps = coil_maps(8, (160, 128))
    assert maps.shape == (8, 160, 128) and maps.dtype == np.complex64
    assert np.isfinite(maps).all()
    # unit RSS in complex128, then cast to complex64 and summed over 8 coils in float32: a few eps32 (1.5 measured)
    np.testing.assert_allclose(np.sqrt((np.abs(maps) ** 2).sum(0)), 1.0, rtol=0, atol=8 * EPS32)
    # Each coil is brightest on its own side: the maps really differ.
    peaks = {np.unravel_index(np.abs(m).argmax(), m.shape) for m in maps}
    assert len(peaks) == 8


# ----------------------------------------------------------------------------- determinism, I/O


def _read_all(path):
    with h5py.File(path, "r") as hf:
        return {k: hf[k][()] for k in hf.keys()}, dict(hf.attrs)


def test_deterministic_under_seed(tmp_path):
    kw = dict(num_volumes=2, slices=1, coils=2, shape=(64, 48), show_progress=False)
    a = simulate_dataset(tmp_path / "a", seed=5, **kw)
    b = simulate_dataset(tmp_path / "b", seed=5, **kw)
    c = simulate_dataset(tmp_path / "c", seed=6, **kw)
    (da, aa), (db, ab), (dc, _) = _read_all(a[0]), _read_all(b[0]), _read_all(c[0])
    for k in da:
        assert np.array_equal(da[k], db[k])
    assert aa == ab
    assert not np.allclose(da["kspace"], dc["kspace"])
    # Different volumes of one dataset hold different images.
    d1, _ = _read_all(a[1])
    assert not np.allclose(da["reconstruction_rss"], d1["reconstruction_rss"], rtol=0.1)  # differ by > 10% somewhere


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = sim.simulate_slice

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(sim, "simulate_slice", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        simulate_dataset(tmp_path, num_volumes=1, slices=3, coils=2, shape=(64, 48),
                         show_progress=False)
    assert calls["n"] == 2  # it failed mid-volume, after one slice was written
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_counts_slices(tmp_path, capsys):
    simulate_dataset(tmp_path, num_volumes=2, slices=2, coils=2, shape=(32, 24),
                     show_progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err
