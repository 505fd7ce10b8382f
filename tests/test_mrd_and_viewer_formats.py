"""Scanner raw data in, viewer formats out.

MRD files are written with the ``ismrmrd`` package's own writer from simulated fastMRI data (fully
sampled, and undersampled with parallel-imaging calibration flags); their reconstructions must
equal those of the fastMRI twin of the same name. NIfTI and DICOM outputs are read back with
nibabel / pydicom and compared with the h5 reconstruction. Bad MRD input: one line naming the
file and the problem, exit 2, nothing written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import pytest

from fastmri_untrained.cli import main
from fastmri_untrained.data.mrd import center_lines, fastmri_layout, is_mrd, read_mrd, write_mrd
from fastmri_untrained.data.simulate import simulate_dataset
from fastmri_untrained.operators.masks import column_mask

SHAPE = (96, 64)  # k-space; target 48x48
CENTER = "0.16"  # 10 centre lines of 64: enough for ESPIRiT (8)


@pytest.fixture(scope="module")
def fm(tmp_path_factory) -> Path:
    """A fastMRI directory with one simulated volume (2 slices, 4 coils)."""
    out = tmp_path_factory.mktemp("fastmri")
    simulate_dataset(out, "multicoil", num_volumes=1, slices=2, coils=4, shape=SHAPE, seed=5, show_progress=False)
    return out


def h5(d: Path) -> Path:
    return sorted(d.glob("*.h5"))[0]


def undersampled_twins(fm: Path, tmp: Path, separate_calibration: bool) -> tuple[Path, Path]:
    """(fastMRI dir, MRD dir), each holding the 4x-undersampled volume under the same name: the
    fastMRI file as fastMRI's test files (zeroed lines and a ``mask``), the MRD file with only the
    acquired lines, the centre ones flagged as parallel-imaging calibration."""
    mask = column_mask("equispaced_fraction", SHAPE, 4, float(CENTER)).numpy().reshape(-1).astype(bool)
    src = h5(fm)
    fdir, mdir = tmp / "fastmri_us", tmp / "mrd_us"
    fdir.mkdir()
    with h5py.File(src, "r") as a, h5py.File(fdir / src.name, "w") as b:
        b["kspace"] = a["kspace"][()] * mask
        b["ismrmrd_header"] = a["ismrmrd_header"][()]
        b["mask"] = mask
    write_mrd(src, mdir / src.name, mask=mask, calibration=center_lines(mask), separate_calibration=separate_calibration)
    return fdir, mdir


def run(capsys, *argv) -> tuple[int, str]:
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def reconstruct(capsys, data: Path, out: Path, method: str, *extra) -> np.ndarray:
    rc, err = run(capsys, "reconstruct", "--data-path", data, "--out", out, "--method", method, "--no-progress",
                  "--center-fractions", CENTER, *extra)
    assert rc == 0, err
    with h5py.File(h5(out), "r") as hf:
        return hf["reconstruction"][()]


def assert_same(a: np.ndarray, b: np.ndarray):
    # Equal to float32 rounding: the iterative methods themselves differ by ~1e-5 of the peak run to run.
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * float(np.abs(a).max()))


# --------------------------------------------------------------------------- reading MRD


def test_read_mrd_fully_sampled_equals_fastmri_file(fm, tmp_path):
    src = h5(fm)
    mrd = write_mrd(src, tmp_path / src.name)
    assert is_mrd(mrd) and not is_mrd(src)
    vol = read_mrd(mrd)  # the noise scan that write_mrd puts first is skipped
    with h5py.File(src, "r") as hf:
        np.testing.assert_array_equal(vol.kspace, hf["kspace"][()])
    assert vol.fully_sampled and vol.mask.all() and vol.attrs["calibration_lines"] == 0
    assert vol.attrs["mrd_positions"].shape == (2, 3)
    twin = fastmri_layout(mrd)
    assert twin.name == src.name and twin != mrd and fastmri_layout(mrd) == twin  # converted once
    with h5py.File(twin, "r") as hf:
        assert "mask" not in hf  # fully sampled: the retrospective mask applies


@pytest.mark.parametrize("separate", [False, True], ids=["calibration-and-imaging", "separate-calibration"])
def test_read_mrd_undersampled_marks_calibration(fm, tmp_path, separate):
    fdir, mdir = undersampled_twins(fm, tmp_path, separate)
    vol = read_mrd(h5(mdir))
    with h5py.File(h5(fdir), "r") as hf:
        np.testing.assert_array_equal(vol.kspace, hf["kspace"][()])
        np.testing.assert_array_equal(vol.mask, hf["mask"][()])
    assert not vol.fully_sampled
    np.testing.assert_array_equal(vol.calibration, center_lines(vol.mask))
    assert vol.attrs["calibration_lines"] >= 8


@pytest.mark.parametrize("method", ["zero-filled", "l1-wavelet"])
def test_mrd_reconstructs_as_its_fastmri_twin(fm, tmp_path, capsys, method):
    mdir = tmp_path / "mrd"
    write_mrd(h5(fm), mdir / h5(fm).name)
    expected = reconstruct(capsys, fm, tmp_path / "out_fastmri", method)
    got = reconstruct(capsys, mdir, tmp_path / "out_mrd", method)  # same name: same retrospective mask
    assert_same(got, expected)


@pytest.mark.parametrize("method", ["zero-filled", "sense"])
def test_undersampled_mrd_uses_its_own_lines(fm, tmp_path, capsys, method):
    fdir, mdir = undersampled_twins(fm, tmp_path, separate_calibration=method == "sense")
    expected = reconstruct(capsys, fdir, tmp_path / "out_fastmri", method)
    rc, err = run(capsys, "reconstruct", "--data-path", h5(mdir), "--out", tmp_path / "out_mrd", "--method", method,
                  "--no-progress")
    assert rc == 0, err
    with h5py.File(tmp_path / "out_mrd" / h5(mdir).name, "r") as hf:
        assert_same(hf["reconstruction"][()], expected)


def test_directory_mixing_fastmri_and_mrd(fm, tmp_path, capsys):
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(h5(fm), d / "a_fastmri.h5")
    write_mrd(h5(fm), d / "b_mrd.h5")
    out = tmp_path / "out"
    rc, err = run(capsys, "reconstruct", "--data-path", d, "--out", out, "--method", "zero-filled", "--no-progress",
                  "--center-fractions", CENTER)
    assert rc == 0, err
    assert sorted(p.name for p in out.glob("*.h5")) == ["a_fastmri.h5", "b_mrd.h5"]


def test_simulate_format_mrd(tmp_path, capsys):
    common = ["--num-volumes", 1, "--slices", 1, "--coils", 4, "--shape", *SHAPE, "--seed", 2]
    rc, err = run(capsys, "simulate", "--out", tmp_path / "full", "--format", "mrd", *common)
    assert rc == 0, err
    assert is_mrd(h5(tmp_path / "full")) and read_mrd(h5(tmp_path / "full")).fully_sampled
    rc, err = run(capsys, "simulate", "--out", tmp_path / "us", "--format", "mrd", "--acceleration", 4,
                  "--center-fraction", CENTER, *common)
    assert rc == 0, err
    vol = read_mrd(h5(tmp_path / "us"))
    assert not vol.fully_sampled and vol.attrs["calibration_lines"] >= 8
    rc, err = run(capsys, "simulate", "--out", tmp_path / "x", "--acceleration", 4, *common)
    assert rc == 2 and "--acceleration" in err


# --------------------------------------------------------------------------- bad MRD input


def mrd_with(path: Path, xml: bytes, acquisitions) -> Path:
    """An MRD file with the given XML header and acquisitions (the ismrmrd writer)."""
    with ismrmrd.Dataset(str(path), "dataset", mode="w") as ds:
        ds.write_xml_header(xml)
        for acq in acquisitions:
            ds.append_acquisition(acq)
    return path


def acquisition(line: int, samples: int = SHAPE[0], coils: int = 4, flag: int = 0, traj: int = 0, e2: int = 0):
    acq = ismrmrd.Acquisition.from_array(np.ones((coils, samples), np.complex64),
                                         np.zeros((samples, traj), np.float32) if traj else None,
                                         center_sample=samples // 2)
    acq.idx.kspace_encode_step_1, acq.idx.kspace_encode_step_2 = line, e2
    if flag:
        acq.set_flag(flag)
    return acq


def good_xml(fm: Path, tmp_path: Path) -> bytes:
    with h5py.File(write_mrd(h5(fm), tmp_path / "good" / "g.h5"), "r") as hf:
        return bytes(hf["dataset/xml"][0])


def lines(n: int = SHAPE[1], **kw):
    return [acquisition(i, **kw) for i in range(n)]


BAD_MRD = [
    ("radial", lambda x: (x.replace(b">cartesian<", b">radial<"), lines()), "non-Cartesian acquisition (trajectory 'radial')"),
    ("trajectory-data", lambda x: (x, lines(traj=2)), "k-space trajectory (non-Cartesian)"),
    ("3d-header", lambda x: (x.replace(b"<z>1</z>", b"<z>8</z>", 1), lines()), "3-D acquisition (encoded matrix 96x64x8)"),
    ("3d-lines", lambda x: (x, lines() + [acquisition(0, e2=3)]), "3-D acquisition (acquisition 64 has kspace_encode_step_2"),
    ("mixed-sizes", lambda x: (x, lines() + [acquisition(1, samples=48)]), "mixed matrix sizes"),
    ("mixed-coils", lambda x: (x, lines() + [acquisition(1, coils=2)]), "mixed matrix sizes"),
    ("no-reconspace", lambda x: (x[:x.index(b"<reconSpace>")] + x[x.index(b"</reconSpace>") + 13:], lines()),
     "lacks reconSpace"),
    ("no-e1-limits", lambda x: (x.replace(b"kspace_encoding_step_1>", b"user_0>"), lines()),
     "lacks encodingLimits/kspace_encoding_step_1"),
    ("noise-only", lambda x: (x, [acquisition(0, flag=ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]),
     "holds no imaging data, only 1 noise measurement"),
    ("no-acquisitions", lambda x: (x, []), "without acquisitions (dataset/data)"),
    ("bad-xml", lambda x: (b"<ismrmrdHeader", lines()), "unreadable ISMRMRD XML header"),
]


@pytest.mark.parametrize("make,expected", [c[1:] for c in BAD_MRD], ids=[c[0] for c in BAD_MRD])
def test_bad_mrd_input(fm, tmp_path, capsys, make, expected):
    xml, acqs = make(good_xml(fm, tmp_path))
    d = tmp_path / "data"
    d.mkdir()
    path = mrd_with(d / "bad.h5", xml, acqs)
    out = tmp_path / "out"
    rc, err = run(capsys, "reconstruct", "--data-path", d, "--out", out, "--method", "zero-filled", "--no-progress")
    lines_ = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines_) == 1 and "Traceback" not in err, err
    assert str(path) in lines_[0] and expected in lines_[0], err
    assert not list(out.glob("*.h5")) and not list(out.glob("*.nii*")), list(out.iterdir())


# --------------------------------------------------------------------------- NIfTI / DICOM out


@pytest.fixture(scope="module")
def viewer_run(fm, tmp_path_factory):
    """An MRD volume reconstructed with all three output formats."""
    tmp = tmp_path_factory.mktemp("viewer")
    write_mrd(h5(fm), tmp / "mrd" / h5(fm).name)
    out = tmp / "out"
    rc = main(["reconstruct", "--data-path", str(tmp / "mrd"), "--out", str(out), "--method", "zero-filled",
               "--no-progress", "--center-fractions", CENTER, "--output-format", "nifti", "--output-format", "dicom"])
    assert rc == 0
    with h5py.File(out / h5(fm).name, "r") as hf:
        return out, Path(h5(fm).name).stem, hf["reconstruction"][()]


def test_nifti_reads_back_as_the_h5(viewer_run):
    import nibabel as nib

    out, stem, volume = viewer_run
    image = nib.load(out / f"{stem}.nii.gz")
    np.testing.assert_array_equal(np.asarray(image.dataobj).transpose(2, 0, 1), volume)
    spacing = np.linalg.norm(image.affine[:3, :3], axis=0)
    np.testing.assert_allclose(spacing, [0.7, 0.7, 5.0], rtol=1e-5)  # simulation: 0.7 mm voxels, 5 mm slices
    assert int(image.header["sform_code"]) == 1


def test_dicom_series_opens_as_the_volume(viewer_run):
    import nibabel as nib
    import pydicom

    out, stem, volume = viewer_run
    files = sorted((out / f"{stem}_dicom").glob("*.dcm"))
    assert len(files) == volume.shape[0]
    series = sorted((pydicom.dcmread(f) for f in files), key=lambda d: int(d.InstanceNumber))
    assert [int(d.InstanceNumber) for d in series] == list(range(1, len(files) + 1))
    assert len({d.SeriesInstanceUID for d in series}) == 1 and len({d.SOPInstanceUID for d in series}) == len(files)
    assert all(str(d.PatientName) == "Anonymous" and d.Modality == "MR" and d.BitsAllocated == 16 for d in series)
    slope = float(series[0].RescaleSlope)
    values = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in series])
    assert series[0].pixel_array.dtype == np.uint16
    assert np.abs(values - volume).max() <= slope  # within one quantisation step
    # Positions: along the normal of the orientation, one slice step apart, as the NIfTI affine says.
    iop = np.asarray(series[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    ipp = np.asarray([d.ImagePositionPatient for d in series], dtype=float)
    steps = np.diff(ipp @ normal)
    assert np.all(steps > 0) and np.allclose(steps, float(series[0].SliceThickness))
    affine = nib.load(out / f"{stem}.nii.gz").affine
    np.testing.assert_allclose(np.diag([-1, -1, 1]) @ ipp[0], affine[:3, 3], atol=1e-4)  # LPS -> RAS
    # Another run gets new UIDs.
    from fastmri_untrained.export import volume_geometry, write_dicom

    with pytest.warns(UserWarning, match="no field of view"):
        geometry = volume_geometry(None, "x")
    again = write_dicom(out / "again_dicom", volume, geometry)
    assert pydicom.dcmread(sorted(again.glob("*.dcm"))[0]).SeriesInstanceUID != series[0].SeriesInstanceUID


def test_rerun_adds_missing_formats(fm, tmp_path, capsys):
    out = tmp_path / "out"
    reconstruct(capsys, fm, out, "zero-filled")
    assert not list(out.glob("*.nii.gz"))
    reconstruct(capsys, fm, out, "zero-filled", "--output-format", "nifti")  # finished: written from the h5
    assert (out / f"{h5(fm).stem}.nii.gz").exists()


def test_npy_kspace_nifti_and_dicom_refused(fm, tmp_path, capsys):
    import nibabel as nib

    with h5py.File(h5(fm), "r") as hf:
        np.save(tmp_path / "k.npy", hf["kspace"][0])
    out = tmp_path / "out"
    rc, err = run(capsys, "reconstruct", "--data-path", tmp_path / "k.npy", "--out", out, "--method", "zero-filled",
                  "--no-progress", "--output-format", "dicom")
    assert rc == 2 and "--output-format" in err and "k.npy" in err, err
    assert not out.exists() or not any(out.iterdir())
    with pytest.warns(UserWarning, match="k.npy: no field of view in a header; NIfTI/DICOM written with 1 mm voxels"):
        rc, err = run(capsys, "reconstruct", "--data-path", tmp_path / "k.npy", "--out", out, "--method",
                      "zero-filled", "--no-progress", "--output-format", "nifti")
    assert rc == 0, err
    image = nib.load(out / "k.nii.gz")
    assert image.shape == (SHAPE[0], SHAPE[1], 1)
    np.testing.assert_allclose(np.linalg.norm(image.affine[:3, :3], axis=0), 1.0)
