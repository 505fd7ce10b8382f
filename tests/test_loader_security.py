"""What holds today and must keep holding: no loader runs code from a file, and nothing read from
a file's contents becomes a path component.

- ``.npy`` k-space is read with ``np.load(allow_pickle=False)``: a pickled object array is refused;
- checkpoints are read with ``torch.load(weights_only=True)``: a pickled object is refused;
- output names come from file names only, never from h5 attributes or headers.

The payloads are harmless: unpickling them would create a marker file. Each test first shows, with
a separate marker, that its payload really runs when loaded unsafely, so a refusal is not vacuous.
"""

from __future__ import annotations

import pathlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from fastmri_untrained.cli import main
from fastmri_untrained.data.readers import read_npy_kspace
from fastmri_untrained.data.simulate import simulate_dataset
from fastmri_untrained.errors import InputError


class Payload:
    """Unpickles as ``Path(marker).touch()``: the stand-in for ``os.system(...)``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def pickled_npy(path: Path, marker: Path) -> Path:
    a = np.empty(2, dtype=object)
    a[0] = Payload(marker)
    np.save(path, a, allow_pickle=True)
    return path


def test_pickled_npy_is_refused_and_its_payload_never_runs(tmp_path, capsys):
    control = tmp_path / "control-ran"
    np.load(pickled_npy(tmp_path / "control.npy", control), allow_pickle=True)
    assert control.exists(), "the payload must be live for this test to mean anything"

    marker = tmp_path / "payload-ran"
    npy = pickled_npy(tmp_path / "kspace.npy", marker)
    with pytest.raises(InputError, match="not a readable .npy array.*allow_pickle"):
        read_npy_kspace(npy)
    out = tmp_path / "out"
    rc, err = run_cli(["reconstruct", "--data-path", npy, "--out", out, "--method", "zero-filled",
                       "--no-progress"], capsys)
    assert rc == 2
    assert f"{npy}: not a readable .npy array" in one_error_line(err)
    assert not marker.exists()
    assert not list(out.rglob("*.h5"))


def test_crafted_checkpoint_is_refused_and_its_payload_never_runs(tmp_path, capsys):
    def crafted(path: Path, marker: Path) -> Path:
        # Looks like a U-Net checkpoint, with the payload among its hyper-parameters.
        torch.save({"state_dict": {"unet.model.weight": torch.zeros(1)}, "pytorch-lightning_version": "2.0.0",
                    "hyper_parameters": {"chans": Payload(marker)}}, path)
        return path

    control = tmp_path / "control-ran"
    torch.load(crafted(tmp_path / "control.ckpt", control), weights_only=False)
    assert control.exists(), "the payload must be live for this test to mean anything"

    marker = tmp_path / "payload-ran"
    ckpt = crafted(tmp_path / "model.ckpt", marker)
    data = tmp_path / "data"
    simulate_dataset(data, "multicoil", 1, 1, 4, (96, 64), seed=0, show_progress=False)
    out = tmp_path / "out"
    rc, err = run_cli(["predict-baseline", "--checkpoint", ckpt, "--data-path", data, "--out", out,
                       "--center-fractions", "0.16", "--device", "cpu", "--no-progress"], capsys)
    assert rc == 2
    assert f"{ckpt}: refused: it holds Python objects" in one_error_line(err)
    assert not marker.exists()
    assert not out.exists()


EVIL = "../../evil"


def test_h5_contents_never_become_path_components(tmp_path, capsys):
    data = tmp_path / "data"
    (path,) = simulate_dataset(data, "multicoil", 1, 1, 4, (96, 64), seed=0, show_progress=False)
    with h5py.File(path, "r+") as hf:
        for key in ("acquisition", "patient_id", "fname", "filename"):
            hf.attrs[key] = EVIL + ".h5"
        header = hf["ismrmrd_header"][()].decode()
        header = header.replace("<protocolName>AXT1</protocolName>", f"<protocolName>{EVIL}</protocolName>")
        assert EVIL in header
        del hf["ismrmrd_header"]
        hf["ismrmrd_header"] = np.bytes_(header.encode())
    work = tmp_path / "a" / "b"  # OUT/../../evil would land in tmp_path/a
    out, report = work / "recon", work / "report"
    before = set(tmp_path.rglob("*"))

    rc, err = run_cli(["reconstruct", "--data-path", data, "--out", out, "--method", "zero-filled",
                       "--no-progress", "--center-fractions", "0.16", "--device", "cpu"], capsys)
    assert rc == 0, err
    rc, err = run_cli(["evaluate", "--target-path", data, "--predictions-path", out, "--challenge", "multicoil",
                       "--out", report], capsys)
    assert rc == 0, err

    new = set(tmp_path.rglob("*")) - before
    outside = [p for p in new if p not in (tmp_path / "a", work) and not p.is_relative_to(out)
               and not p.is_relative_to(report)]
    assert not outside, outside
    assert not any("evil" in p.name for p in new), sorted(new)
    assert not any("evil" in p.name for p in tmp_path.parent.iterdir())
    assert [p.name for p in out.glob("*.h5")] == [path.name]
