"""Readers for BART/numpy k-space, sampling masks, and validation of bad inputs."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from fastmri_untrained.operators.masks import calibration_width, num_center_lines
from fastmri_untrained.data.readers import (
    check_kspace_array,
    check_maps_match,
    load_kspace,
    read_cfl,
    read_npy_kspace,
    sampling_mask_from_kspace,
    validate_fastmri_file,
    write_cfl,
)
from fastmri_untrained.data.simulate import simulate_dataset
from fastmri_untrained.errors import InputError
from fastmri_untrained.operators.fourier import ifft2c

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KSPACE = SHARED / "kspace"
needs_shared = pytest.mark.skipif(
    not (KSPACE / "brain_8coil_sigpy.npy").is_file(),
    reason=f"shared real k-space not found at {KSPACE} (../shared/data is absent)",
)


def _rss(k: np.ndarray) -> np.ndarray:
    x = ifft2c(torch.from_numpy(k)).abs()
    return torch.sqrt((x**2).sum(0)).numpy()


# ----------------------------------------------------------------------------- cfl


def test_cfl_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 5, 4)) + 1j * rng.standard_normal((3, 5, 4))).astype(np.complex64)
    base = write_cfl(tmp_path / "x", a)
    assert (tmp_path / "x.cfl").stat().st_size == a.size * 8
    assert (tmp_path / "x.hdr").read_text().splitlines()[:2] == ["# Dimensions", "3 5 4 "]
    for p in ("x", "x.cfl", "x.hdr"):
        b = read_cfl(tmp_path / p)
        assert b.dtype == np.complex64 and np.array_equal(a, b)
    # Column-major on disk: the first dimension varies fastest.
    raw = np.fromfile(tmp_path / "x.cfl", dtype=np.complex64)
    assert raw[1] == a[1, 0, 0] and raw[3] == a[0, 1, 0]
    assert base == tmp_path / "x"


def test_load_kspace_cfl_reverses_to_c_order(tmp_path):
    rng = np.random.default_rng(1)
    k = (rng.standard_normal((4, 6, 5)) + 1j).astype(np.complex64)  # (coils, H, W)
    write_cfl(tmp_path / "k", k.T[None])  # BART dims (1, W, H, coils), like the shared file
    out = load_kspace(tmp_path / "k.cfl")
    assert out.shape == (4, 6, 5) and np.array_equal(out, k)


def test_read_cfl_truncated_names_file(tmp_path):
    write_cfl(tmp_path / "t", np.ones((4, 4), np.complex64))
    with open(tmp_path / "t.cfl", "r+b") as f:
        f.truncate(40)
    with pytest.raises(InputError, match="t.cfl") as e:
        read_cfl(tmp_path / "t")
    assert "truncated" in str(e.value)


def test_npy_real_pair_layout_and_bad_dtype(tmp_path):
    a = np.random.default_rng(2).standard_normal((2, 4, 3, 2)).astype(np.float32)
    np.save(tmp_path / "r.npy", a)
    # float32 pairs -> complex64 is a reinterpretation: exact
    np.testing.assert_array_equal(read_npy_kspace(tmp_path / "r.npy"), a[..., 0] + 1j * a[..., 1])
    np.save(tmp_path / "int.npy", np.ones((2, 4, 3), np.int16))
    with pytest.raises(InputError, match="int.npy"):
        read_npy_kspace(tmp_path / "int.npy")
    (tmp_path / "k.mat").write_bytes(b"x")
    with pytest.raises(InputError, match="k.mat"):
        load_kspace(tmp_path / "k.mat")


@needs_shared
def test_shared_files_shapes_and_images():
    bart = load_kspace(KSPACE / "brain_8coil_bart.cfl")
    npy = load_kspace(KSPACE / "brain_8coil_sigpy.npy")
    assert bart.shape == npy.shape == (8, 230, 180)
    assert bart.dtype == npy.dtype == np.complex64
    assert np.array_equal(load_kspace(KSPACE / "brain_8coil_bart.hdr"), bart)
    mb, mn = sampling_mask_from_kspace(bart), sampling_mask_from_kspace(npy)
    # About 8x undersampled each, different masks (~25% of samples coincide).
    for m in (mb, mn):
        assert 0.08 < m.mean() < 0.2
    overlap = (mb & mn).sum() / mb.sum()
    assert 0.1 < overlap < 0.5
    # A fully sampled calibration centre of about 20-24 lines in both.
    for m in (mb, mn):
        assert 16 <= calibration_width(torch.from_numpy(m)) <= 32
    # The ifft RSS is an image: bright object in the middle, dark border.
    for k in (bart, npy):
        r = _rss(k)
        r = r / r.max()
        centre = r[57:173, 45:135].mean()
        border = np.concatenate([r[:8].ravel(), r[-8:].ravel()]).mean()
        assert centre > 4 * border


# ----------------------------------------------------------------------------- masks


def test_mask_and_calibration_width_fastmri_style():
    H, W = 40, 30
    mask = np.zeros((H, W), bool)
    mask[:, ::4] = True
    mask[:, 13:19] = True  # with column 12 from the ::4 pattern: columns 12..18 sampled
    k = np.zeros((3, H, W), np.complex64)
    k[1][mask] = 1 + 1j  # sampled in one coil only still counts
    m = sampling_mask_from_kspace(k)
    assert m.shape == (H, W) and np.array_equal(m, mask)
    # The sampled run through the centre column 15 is 12..18 (11 is not sampled). Full-height
    # lines, as fastMRI's masks: 7 centre lines.
    assert num_center_lines(torch.from_numpy(m)) == 7
    assert calibration_width(torch.from_numpy(m)) == 7
    # Nothing sampled at the centre -> nothing to calibrate from.
    assert calibration_width(torch.zeros(8, 8, dtype=torch.bool)) == 0
    assert num_center_lines(torch.zeros(1, 8)) == 0


def test_calibration_width_square():
    m = np.zeros((64, 48), bool)
    m[32 - 10 : 32 + 10, 24 - 8 : 24 + 8] = True  # a 20 x 16 centred block: the square is 16 wide
    assert calibration_width(torch.from_numpy(m)) == 16


# ----------------------------------------------------------------------------- bad inputs


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    (p,) = simulate_dataset(d, num_volumes=1, slices=2, coils=2, shape=(32, 24),
                            show_progress=False)
    return p


def _copy_with(good: Path, dst: Path, edit) -> Path:
    dst.write_bytes(good.read_bytes())
    with h5py.File(dst, "r+") as hf:
        edit(hf)
    return dst


def test_validate_accepts_simulated_file(good_file):
    info = validate_fastmri_file(good_file, "multicoil")
    assert info.num_slices == 2 and info.kspace_shape == (2, 2, 32, 24)
    assert info.encoding_size == (32, 24, 1) and info.recon_size == (16, 16, 1)


def test_missing_kspace_key(good_file, tmp_path):
    p = _copy_with(good_file, tmp_path / "nokspace.h5", lambda hf: hf.__delitem__("kspace"))
    with pytest.raises(InputError, match="nokspace.h5") as e:
        validate_fastmri_file(p, "multicoil")
    assert "kspace" in e.value.problem


def test_wrong_rank_for_challenge(good_file):
    with pytest.raises(InputError, match=good_file.name) as e:
        validate_fastmri_file(good_file, "singlecoil")
    assert "rank 4" in e.value.problem
    with pytest.raises(InputError, match="arg"):
        check_kspace_array(np.ones((2, 2, 3, 3), np.complex64), "arg", ndim=3)


def test_nan_values_in_a_slice(good_file, tmp_path):
    def put_nan(hf):
        k = hf["kspace"][1]
        k[0, 3, 4] = np.nan
        hf["kspace"][1] = k

    p = _copy_with(good_file, tmp_path / "nan.h5", put_nan)
    with pytest.raises(InputError, match="nan.h5") as e:
        validate_fastmri_file(p, "multicoil")
    assert "slice 1" in e.value.problem and "non-finite" in e.value.problem
    arr = np.ones((2, 4, 4), np.complex64)
    arr[0, 0, 0] = np.inf
    with pytest.raises(InputError, match="myarray.npy"):
        check_kspace_array(arr, "myarray.npy")


def test_all_zero_kspace(good_file, tmp_path):
    with pytest.raises(InputError, match="zeros.npy") as e:
        check_kspace_array(np.zeros((2, 4, 4), np.complex64), "zeros.npy")
    assert "all zero" in e.value.problem
    np.save(tmp_path / "z.npy", np.zeros((2, 4, 4), np.complex64))
    with pytest.raises(InputError, match="z.npy"):
        load_kspace(tmp_path / "z.npy")
    p = _copy_with(good_file, tmp_path / "zero.h5",
                   lambda hf: hf["kspace"].__setitem__(0, np.zeros(hf["kspace"].shape[1:], np.complex64)))
    with pytest.raises(InputError, match="zero.h5"):
        validate_fastmri_file(p, "multicoil")


def test_check_kspace_array_accepts_torch_and_rejects_real():
    check_kspace_array(torch.ones(2, 4, 4, dtype=torch.complex64), "t")
    with pytest.raises(InputError, match="real.npy"):
        check_kspace_array(np.ones((2, 4, 4)), "real.npy")


def test_mismatched_maps():
    k = np.ones((4, 8, 6), np.complex64)
    check_maps_match(np.ones((4, 8, 6), np.complex64), k, "maps.npy")
    with pytest.raises(InputError, match="maps.npy") as e:
        check_maps_match(np.ones((4, 6, 8), np.complex64), k, "maps.npy")
    assert "(4, 6, 8)" in e.value.problem and "(4, 8, 6)" in e.value.problem
    with pytest.raises(InputError, match="maps.npy"):
        check_maps_match(np.ones((3, 8, 6), np.complex64), k, "maps.npy")


def test_truncated_h5(good_file, tmp_path):
    p = tmp_path / "truncated.h5"
    data = good_file.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated.h5"):
        validate_fastmri_file(p, "multicoil")


def test_not_h5_and_missing(tmp_path):
    p = tmp_path / "notes.h5"
    p.write_text("this is not HDF5\n")
    with pytest.raises(InputError, match="notes.h5") as e:
        validate_fastmri_file(p, "multicoil")
    assert "HDF5" in e.value.problem
    with pytest.raises(InputError, match="absent.h5"):
        validate_fastmri_file(tmp_path / "absent.h5", "multicoil")
