"""A real 2-process CPU DDP run (Lightning Trainer, gloo) writes the same files as 1 process
(with warm starts across the slices of a volume and the ensemble's uncertainty map)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from fastmri_untrained.data.simulate import simulate_dataset
from fastmri_untrained.pipeline import read_reconstruction

ARGS = ["--method", "deep-decoder", "--iterations", "5", "--channels", "8", "--layers", "3",
        "--mask-type", "equispaced_fraction", "--accelerations", "4", "--center-fractions", "0.16",
        "--device", "cpu", "--no-progress", "--warm-start", "2", "--save-uncertainty"]


def reconstruct(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    # A subprocess: Lightning's "ddp" launcher re-runs the command line once per extra rank,
    # which must be the CLI, not pytest. One thread per process, so both runs do the same
    # floating-point work whatever the machine (Lightning would otherwise split the cores).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "fastmri_untrained.cli", "reconstruct", "--data-path", str(data), "--out", str(out),
           *ARGS, *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_two_process_ddp_writes_identical_files_to_one_process(tmp_path):
    data = tmp_path / "sim"
    # 3 volumes over 2 ranks: rank 0 fits two volumes, rank 1 one; no slice may enter a volume twice.
    simulate_dataset(data, challenge="multicoil", num_volumes=3, slices=2, coils=2, shape=(96, 64), seed=5,
                     show_progress=False)
    one = tmp_path / "one"
    two = tmp_path / "two"
    reconstruct(data, one, "--devices", "1")
    proc = reconstruct(data, two, "--devices", "2", "--strategy", "ddp")
    assert "Starting with 2 processes" in proc.stdout + proc.stderr  # really distributed
    names = sorted(p.name for p in data.glob("*.h5"))
    assert sorted(p.name for p in one.glob("*.h5")) == sorted(p.name for p in two.glob("*.h5")) == names
    for name in names:
        a, b = read_reconstruction(one / name), read_reconstruction(two / name)
        assert a.shape == (2, 48, 48) and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)  # bit-identical
        with h5py.File(one / name, "r") as f1, h5py.File(two / name, "r") as f2:
            np.testing.assert_array_equal(f1["reconstruction_std"][()], f2["reconstruction_std"][()])
    # Metrics gathered from both ranks: every volume once, equal to the 1-process values.
    rows1 = json.loads((one / "metrics.json").read_text())["rows"]
    rows2 = json.loads((two / "metrics.json").read_text())["rows"]
    assert [r["file"] for r in rows2] == names
    for r1, r2 in zip(rows1, rows2):
        assert {k: r1[k] for k in ("NMSE", "PSNR", "SSIM")} == {k: r2[k] for k in ("NMSE", "PSNR", "SSIM")}
    # Each rank logged one image of a volume it owned: both ranks did part of the work.
    assert len(list((two / "logs").rglob("images/*.png"))) == 2
    assert not list(two.glob(".*"))  # no temporary leftovers


def test_resumed_ddp_run_with_fewer_volumes_than_processes_finishes_every_volume(tmp_path):
    # fastMRI's VolumeSampler divided by zero on the rank without a volume; the last volume was lost.
    data = tmp_path / "sim"
    simulate_dataset(data, challenge="multicoil", num_volumes=3, slices=1, coils=2, shape=(96, 64), seed=6,
                     show_progress=False)
    one, two = tmp_path / "one", tmp_path / "two"
    reconstruct(data, one, "--devices", "1")
    names = sorted(p.name for p in data.glob("*.h5"))
    two.mkdir()
    for name in names[:2]:  # an interrupted run that wrote 2 of 3 volumes
        (two / name).write_bytes((one / name).read_bytes())
    proc = reconstruct(data, two, "--devices", "2", "--strategy", "ddp")
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    assert sorted(p.name for p in two.glob("*.h5")) == names
    np.testing.assert_array_equal(read_reconstruction(two / names[2]), read_reconstruction(one / names[2]))
    # The reports cover all three volumes, the two of the earlier run included.
    assert [r["file"] for r in json.loads((two / "metrics.json").read_text())["rows"]] == names
