"""Bad input, for every subcommand: one line naming the file or argument and the problem, exit
code 2, and nothing half-written (no output h5, no NaN/inf on disk).

Each case is (id, argv builder, expected exit code, substring the error line must contain). The
argv builder takes the ``ctx`` fixture (small simulated data and scratch paths) so that cases stay
one line each. Cases that need a specially made file build it in their builder.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from fastmri_untrained.cli import main
from fastmri_untrained.data.simulate import simulate_dataset

SHAPE = (96, 64)  # small k-space; target 48x48


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad_input_sim")
    simulate_dataset(out, challenge="multicoil", num_volumes=1, slices=1, coils=4, shape=SHAPE, seed=3,
                     show_progress=False)
    return out


@pytest.fixture
def ctx(sim, tmp_path) -> SimpleNamespace:
    return SimpleNamespace(sim=sim, tmp=tmp_path, out=tmp_path / "out", h5=sorted(sim.glob("*.h5"))[0])


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """The exit code and stderr of ``fastmri-untrained ARGV`` (argparse's own errors exit via SystemExit)."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def recon(c, *extra, method="zero-filled"):
    return ["reconstruct", "--data-path", c.sim, "--out", c.out, "--method", method, "--no-progress",
            "--center-fractions", "0.16", *extra]


def assert_one_line(err: str, expected: str):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines, "no error message"
    assert "Traceback" not in err, err
    assert expected in lines[-1], (expected, err)
    # argparse prints its usage above the error; our own errors are one line.
    assert len(lines) == 1 or lines[-1].startswith(("fastmri-untrained", "usage")) or "error:" in lines[-1], err


def assert_nothing_half_written(out: Path):
    if not out.exists():
        return
    for f in out.rglob("*"):
        assert not f.name.startswith(".partial-") and not f.name.endswith(".part"), f
    for f in out.glob("*.h5"):
        with h5py.File(f, "r") as hf:
            if "reconstruction" in hf:
                assert np.isfinite(hf["reconstruction"][()]).all(), f


def altered_copy(c, name: str, change) -> Path:
    """A data directory with one copy of the simulated volume, modified by ``change(hf)``."""
    d = c.tmp / name
    d.mkdir()
    with h5py.File(c.h5, "r") as src, h5py.File(d / c.h5.name, "w") as hf:
        for key in src:
            src.copy(key, hf)
        hf.attrs.update(src.attrs)
        change(hf)
    return d


def scale_kspace(factor: float):
    def change(hf):
        k = hf["kspace"][()]
        del hf["kspace"]
        hf["kspace"] = (k.astype(np.complex128) / np.abs(k).max() * factor).astype(np.complex64)
    return change


def no_slices(hf):
    del hf["kspace"]
    hf["kspace"] = np.zeros((0, 4, *SHAPE), dtype=np.complex64)


def tall_recon_space(hf):
    header = hf["ismrmrd_header"][()].decode()
    start = header.index("<reconSpace>")
    x0 = header.index("<x>", start) + 3
    x1 = header.index("</x>", x0)
    del hf["ismrmrd_header"]
    hf["ismrmrd_header"] = (header[:x0] + str(SHAPE[0] + 8) + header[x1:]).encode()


def recon_data(c, data: Path, *extra, method="zero-filled"):
    return ["reconstruct", "--data-path", data, "--out", c.out, "--method", method, "--no-progress",
            "--center-fractions", "0.16", *extra]


def npy_file(c, factor: float) -> Path:
    k = (np.random.default_rng(0).standard_normal((2, 16, 16)) + 0j).astype(np.complex64) * factor
    np.save(c.tmp / "k.npy", k)
    return c.tmp / "k.npy"


def demo(c, *extra):
    return ["demo", "--out", c.out, *extra]


NARROW = ["--center-fractions", "0.05"]  # 64 lines: 3 centre lines, ESPIRiT needs 8

# (id, argv builder, exit code, message substring)
RECONSTRUCT_CASES = [
    ("unknown-method", lambda c: recon(c, method="wavelet-magic"), 2, "--method"),
    ("mask-type", lambda c: recon(c, "--mask-type", "spiral"), 2, "--mask-type"),
    ("acceleration-below-1", lambda c: recon(c, "--accelerations", "0.5"), 2, "--accelerations"),
    ("acceleration-1000", lambda c: recon(c, "--accelerations", "1000"), 2, "--center-fractions"),
    ("acceleration-inf", lambda c: recon(c, "--accelerations", "inf"), 2, "--accelerations"),
    ("acceleration-nan", lambda c: recon(c, "--accelerations", "nan"), 2, "--accelerations"),
    ("centre-fraction-1", lambda c: recon(c, "--center-fractions", "1"), 2, "--center-fractions"),
    ("centre-0.25-at-4x", lambda c: recon(c, "--center-fractions", "0.25"), 2, "--center-fractions: centre fraction 0.25 at 4x"),
    ("acceleration-1000-centre-0.01", lambda c: recon(c, "--accelerations", "1000", "--center-fractions", "0.01"),
     2, "--center-fractions"),
    ("centre-samples-no-line", lambda c: recon(c, "--accelerations", "40", "--center-fractions", "0.001",
                                               "--mask-type", "equispaced"), 2, "--accelerations"),
    ("lamda-nan", lambda c: recon(c, "--lamda", "nan", method="l1-wavelet"), 2, "--lamda"),
    ("lamda-negative", lambda c: recon(c, "--lamda", "-1", method="l1-wavelet"), 2, "--lamda"),
    ("lr-inf", lambda c: recon(c, "--lr", "inf", method="conv-decoder"), 2, "--lr"),
    ("lr-zero", lambda c: recon(c, "--lr", "0", method="dip"), 2, "--lr"),
    ("iterations-negative", lambda c: recon(c, "--iterations", "-3", method="dip"), 2, "--iterations"),
    ("out-is-data-path", lambda c: ["reconstruct", "--data-path", c.sim, "--out", c.sim, "--method", "zero-filled"],
     2, "--out: must not be the input data directory"),
    *[(f"narrow-centre-{m}", lambda c, m=m: recon(c, *NARROW, method=m), 2,
       "--center-fractions: the fully sampled centre is 3 lines wide; ESPIRiT maps need at least 8")
      for m in ("sense", "l1-wavelet", "tv")],
    ("narrow-centre-chosen-sense", lambda c: recon(c, *NARROW, "--forward-model", "sense", method="deep-decoder"),
     2, "ESPIRiT maps need at least 8"),
    ("kspace-1e30", lambda c: recon_data(c, altered_copy(c, "huge", scale_kspace(1e30))), 2, "rescale the data"),
    ("kspace-1e30-untrained", lambda c: recon_data(c, altered_copy(c, "huge", scale_kspace(1e30)),
                                                   method="deep-decoder"), 2, "rescale the data"),
    ("kspace-1e-40", lambda c: recon_data(c, altered_copy(c, "tiny", scale_kspace(1e-40))), 2, "rescale the data"),
    ("npy-1e30", lambda c: ["reconstruct", "--data-path", npy_file(c, 1e30), "--out", c.out, "--method", "zero-filled"],
     2, "k.npy: k-space magnitudes peak at"),
    ("zero-slices", lambda c: recon_data(c, altered_copy(c, "empty", no_slices)), 2, "has no slices"),
    ("recon-space-taller-than-kspace", lambda c: recon_data(c, altered_copy(c, "tall", tall_recon_space)),
     2, "reconSpace is 104 rows high"),
    ("demo-acceleration-0", lambda c: demo(c, "--acceleration", "0"), 2, "--acceleration: acceleration must be"),
    ("demo-unknown-method", lambda c: demo(c, "--methods", "zero-filled", "magic"), 2, "--methods: unknown method"),
]


@pytest.mark.parametrize("case", RECONSTRUCT_CASES, ids=[c[0] for c in RECONSTRUCT_CASES])
def test_reconstruct_bad_input(case, ctx, capsys):
    _, argv, code, message = case
    rc, err = run_cli(argv(ctx), capsys)
    assert rc == code, err
    assert_one_line(err, message)
    assert_nothing_half_written(ctx.out)
    assert not (ctx.out / "data").exists()  # the demo refuses before simulating


# --- evaluate, baselines, simulate, BART readers


def check_case(case, ctx, capsys) -> str:
    """Run one (id, argv builder, exit code, message) case; returns the error output."""
    _, argv, code, message = case
    rc, err = run_cli(argv(ctx), capsys)
    assert rc == code, err
    assert_one_line(err, message)
    assert_nothing_half_written(ctx.out)
    return err


def evaluate(c, predictions: Path, targets: Path = None):
    return ["evaluate", "--target-path", targets or c.sim, "--predictions-path", predictions,
            "--challenge", "multicoil", "--out", c.out]


def prediction(c, fill) -> Path:
    """A prediction directory whose file for the simulated volume is written by ``fill(hf, target)``."""
    d = c.tmp / "method"
    d.mkdir(exist_ok=True)
    with h5py.File(c.h5, "r") as hf:
        target = hf["reconstruction_rss"][()]
    with h5py.File(d / c.h5.name, "w") as hf:
        fill(hf, target)
    return d


def nan_targets(c) -> Path:
    d = c.tmp / "targets"
    d.mkdir()
    with h5py.File(c.h5, "r") as src, h5py.File(d / c.h5.name, "w") as hf:
        for key in src:
            src.copy(key, hf)
        hf.attrs.update(src.attrs)
        hf["reconstruction_rss"][0, 10, 10] = np.nan
    return d


def same_as_target(hf, target):
    hf.create_dataset("reconstruction", data=target)


EVALUATE_CASES = [
    ("evaluate-group", lambda c: evaluate(c, prediction(c, lambda hf, t: hf.create_group("reconstruction"))),
     2, "file_sim_3_0.h5: 'reconstruction' is an HDF5 group, not a dataset"),
    ("evaluate-complex", lambda c: evaluate(c, prediction(
        c, lambda hf, t: hf.create_dataset("reconstruction", data=t.astype(np.complex64)))),
     2, "file_sim_3_0.h5: 'reconstruction' must be a real-valued image volume, got dtype complex64"),
    ("evaluate-string", lambda c: evaluate(c, prediction(
        c, lambda hf, t: hf.create_dataset("reconstruction", data="an image"))),
     2, "file_sim_3_0.h5: 'reconstruction' must be a real-valued image volume, got strings"),
    ("evaluate-nan-target", lambda c: evaluate(c, prediction(c, same_as_target), nan_targets(c)),
     2, "file_sim_3_0.h5: the target 'reconstruction_rss' contains NaN or infinite values"),
]


@pytest.mark.parametrize("case", EVALUATE_CASES, ids=[c[0] for c in EVALUATE_CASES])
def test_evaluate_bad_input(case, ctx, capsys):
    check_case(case, ctx, capsys)
    assert not list(ctx.out.glob("*.csv")) and not list(ctx.out.glob("*.json")), "a report was written"


def text_file(c, name: str, text: str) -> Path:
    path = c.tmp / name
    path.write_text(text)
    return path


def predict(c, checkpoint: Path):
    return ["predict-baseline", "--checkpoint", checkpoint, "--data-path", c.sim, "--out", c.out,
            "--center-fractions", "0.16", "--device", "cpu", "--no-progress"]


BASELINE_CASES = [
    ("predict-text-checkpoint", lambda c: predict(c, text_file(c, "model.ckpt", "epoch=3 weights\n")),
     2, "model.ckpt: not a PyTorch checkpoint file"),
    ("predict-empty-checkpoint", lambda c: predict(c, text_file(c, "empty.ckpt", "")),
     2, "empty.ckpt: not a PyTorch checkpoint file"),
]


@pytest.mark.parametrize("case", BASELINE_CASES, ids=[c[0] for c in BASELINE_CASES])
def test_baseline_bad_input(case, ctx, capsys):
    check_case(case, ctx, capsys)
    assert not ctx.out.exists(), "the checkpoint is checked before the output directory is made"


def simulate(c, *extra, out=None, shape=(16, 8)):
    return ["simulate", "--out", out or c.out, "--num-volumes", 1, "--slices", 1, "--coils", 2,
            "--shape", *shape, *extra]


def unwritable(c) -> Path:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc (nothing can be created in it, even by root)")
    return Path("/proc/fastmri-untrained-test/out")


SIMULATE_CASES = [
    ("simulate-out-under-a-file", lambda c: simulate(c, out=text_file(c, "a_file", "x") / "out"),
     2, "a_file/out: output directory cannot be written"),
    ("simulate-out-is-a-file", lambda c: simulate(c, out=text_file(c, "a_file", "x")),
     2, "a_file: output directory cannot be written"),
    ("simulate-out-unwritable", lambda c: simulate(c, out=unwritable(c)), 2, "output directory cannot be written"),
    ("simulate-shape-too-small", lambda c: simulate(c, shape=(6, 4)),
     2, "--shape: must be H W with H even and >= 8 (2x oversampled readout) and W >= 4, got 6 4"),
    ("simulate-shape-odd", lambda c: simulate(c, shape=(17, 9)), 2, "--shape: must be H W with H even"),
    ("simulate-shape-narrow", lambda c: simulate(c, shape=(16, 3)), 2, "W >= 4, got 16 3"),
    ("simulate-shape-zero", lambda c: simulate(c, shape=(0, 8)), 2, "--shape"),
    ("simulate-seed-negative", lambda c: simulate(c, "--seed", -1), 2, "--seed: must be >= 0"),
]


@pytest.mark.parametrize("case", SIMULATE_CASES, ids=[c[0] for c in SIMULATE_CASES])
def test_simulate_bad_input(case, ctx, capsys):
    check_case(case, ctx, capsys)
    assert not ctx.out.exists(), "nothing is simulated (or created) before the arguments are checked"


def bart_pair(c, name: str, dims: str = None, drop: str = None) -> Path:
    """``name``.cfl/.hdr from the simulated slice's k-space (or ``dims`` over an 8-byte .cfl);
    ``drop``: a suffix whose file is then removed. Returns the .cfl."""
    from fastmri_untrained.data.readers import write_cfl

    with h5py.File(c.h5, "r") as hf:
        kspace = hf["kspace"][0]  # (coils, H, W)
    base = write_cfl(c.tmp / name, kspace.T[None])  # BART dims (1, W, H, coils)
    if dims is not None:
        (c.tmp / f"{name}.hdr").write_text(f"# Dimensions\n{dims}\n")
        (c.tmp / f"{name}.cfl").write_bytes(bytes(8))
    if drop:
        (c.tmp / f"{name}{drop}").unlink()
    return base.with_name(f"{name}.cfl")


def recon_file(c, path: Path):
    return ["reconstruct", "--data-path", path, "--out", c.out, "--method", "zero-filled", "--no-progress"]


READER_CASES = [
    ("bart-dotted-name-missing-hdr", lambda c: recon_file(c, bart_pair(c, "brain.v2", drop=".hdr")),
     2, "brain.v2.hdr: file not found"),
    ("bart-header-2^32-elements", lambda c: recon_file(c, bart_pair(c, "brain", dims="65536 65536 1 8")),
     2, "brain.hdr: dimensions [65536, 65536, 1, 8] give 34359738368 elements, 2^32 or more"),
    ("bart-header-int64-overflow", lambda c: recon_file(c, bart_pair(c, "big", dims="4294967296 4294967296 1")),
     2, "big.hdr: dimensions"),
]


@pytest.mark.parametrize("case", READER_CASES, ids=[c[0] for c in READER_CASES])
def test_reader_bad_input(case, ctx, capsys):
    check_case(case, ctx, capsys)
    assert not list(ctx.out.glob("*.h5"))


def test_bart_pair_with_a_dot_in_its_name(ctx, capsys):
    cfl = bart_pair(ctx, "brain.v2")
    assert cfl.is_file() and cfl.with_suffix(".hdr").is_file() and not (ctx.tmp / "brain.cfl").exists()
    rc, err = run_cli(recon_file(ctx, cfl), capsys)
    assert rc == 0, err
    assert [p.name for p in ctx.out.glob("*.h5")] == ["brain.v2.h5"]
    assert_nothing_half_written(ctx.out)
