"""One command: the fastMRI leaderboard of every method on simulated data, at 4x and 8x.

    .venv/bin/python scripts/leaderboard_simulated.py                # the README table (about an hour, 2 CPU cores)
    .venv/bin/python scripts/leaderboard_simulated.py --size board   # 34 test slices (slabs of two 3-D sources)
    .venv/bin/python scripts/leaderboard_simulated.py --quick        # tiny sizes (a minute or two); used by the tests

What it does, with the project's own commands (each printed as it runs):

1. ``simulate`` train / val / test splits of multi-coil data, each from parts (:class:`Part`):
   unrelated bundled 2-D slices, or contiguous slabs of a 3-D source at fixed positions. No
   source slice of a test file is in a training or validation file (checked from the files'
   ``slice_sources`` before anything runs), so the trained baselines never see a test image
   (not even augmented). ``--snr 20`` simulates the noisier setting.
2. ``train-baseline`` the fastMRI U-Net and VarNet once, on masks drawn from both protocols
   (as fastMRI trains), with ``Trainer.fit`` and fastMRI validation.
3. Per protocol (4x, centre 0.08; 8x, centre 0.04; equispaced_fraction): ``reconstruct`` the
   test split with every classical and un-trained method through the Lightning module, and
   ``predict-baseline`` with the trained ones; each method's wall time gives seconds per slice
   and slices per hour (the process count and threads are recorded beside it).
4. ``evaluate`` ranks them with fastMRI's metrics (CSV, JSON, PNG per protocol), with 95%
   bootstrap intervals over slices and every method minus L1-wavelet (``report/``) and minus the
   U-Net (``report_vs_unet/``) on the same slices.
5. Throughput with more processes: the ConvDecoder at the first protocol again, as a
   ``--devices N --strategy ddp`` CPU job (a separate process tree, as a user would launch it),
   with its slices per hour and whether its files equal the 1-process ones bit for bit.

Package defaults throughout (no per-method tuning here; scripts/quality_table.py sweeps the
L1-wavelet weight). Output: OUT/{4x,8x}/<method>/*.h5, OUT/{4x,8x}/report/, OUT/leaderboard.json
and OUT/leaderboard.md. Rerunning resumes: finished methods and trained checkpoints are kept.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import h5py
import numpy as np
import torch

from fastmri_untrained import cli
from fastmri_untrained.data.images import SLAB_SOURCE
from fastmri_untrained.data.readers import read_slice_sources
from fastmri_untrained.data.simulate import SimulationConfig, simulate_dataset
from fastmri_untrained.pipeline import write_json

CLASSICAL = ("zero-filled", "sense", "l1-wavelet", "tv")
UNTRAINED = ("conv-decoder", "deep-decoder", "dip")
TRAINED = ("unet", "varnet")


@dataclasses.dataclass(frozen=True)
class Part:
    """Volumes of one split drawn from one kind of source: unrelated slices of the bundled 2-D
    source slices (``sources``: indices of ``images.source_slices``), or contiguous slabs of a
    3-D source (``slab_source``, each volume's first slice in ``slab_starts``)."""

    volumes: int
    slices: int
    sources: Optional[tuple] = None
    slab_source: Optional[str] = None
    slab_starts: Optional[tuple] = None

    def config(self, setting: "Setting", seed: int) -> SimulationConfig:
        return SimulationConfig(num_volumes=self.volumes, slices=self.slices, coils=setting.coils,
                                shape=setting.shape, seed=seed, snr=setting.snr, sources=self.sources,
                                contiguous=self.slab_source is not None,
                                slab_source=self.slab_source or SLAB_SOURCE, slab_starts=self.slab_starts)


# images.source_slices: 0 is dipy's T1 coronal slice, 1..10 the ten slices of dipy's b0 volume.
SMALL_TEST_SOURCES = (0, 4, 8)
SMALL_TRAIN_SOURCES = tuple(i for i in range(11) if i not in SMALL_TEST_SOURCES)
MNI, DIPY = "mni152:T1", "dipy:S0_10slices"


@dataclasses.dataclass
class Setting:
    shape: tuple = (256, 192)  # k-space (readout 2x oversampled): 128x128 targets, the demo's size
    coils: int = 8
    snr: float = 60.0  # SimulationConfig.snr; 20 is the harder, noisier setting
    # The documented board: 2 test slices from 3 of the 11 bundled 2-D slices, the rest train.
    train: tuple = (Part(12, 2, sources=SMALL_TRAIN_SOURCES),)
    val: tuple = (Part(1, 2, sources=SMALL_TRAIN_SOURCES),)
    test: tuple = (Part(2, 1, sources=SMALL_TEST_SOURCES),)
    methods: tuple = CLASSICAL + UNTRAINED
    trained: tuple = TRAINED
    protocols: tuple = ((4, 0.08), (8, 0.04))  # (acceleration, centre fraction)
    untrained_args: tuple = ()  # extra reconstruct flags for the un-trained methods (none: defaults)
    ddp_processes: int = 2  # the DDP throughput run (0: skip)
    ddp_method: str = "conv-decoder"
    epochs: dict = dataclasses.field(default_factory=lambda: {"unet": 30, "varnet": 15})
    model_args: dict = dataclasses.field(default_factory=lambda: {
        "unet": [],  # fastMRI's U-Net: 32 channels, 4 pools
        "varnet": ["--num-cascades", "4", "--chans", "12"],  # a reduced VarNet that trains on CPU
    })


# 34 test slices from two 3-D sources and a 2-D one: three 8-slice slabs of the MNI152 T1 template
# (its slices 0-7, 11-18, 22-29), one of dipy's b0 volume (0-7: source slices 1-8) and dipy's T1
# slice in two poses. Training and validation: what no test slice is, i.e. MNI slices 8-10 and
# 19-21 and b0 slices 8-9 (source slices 9-10); simulate_splits checks it.
BOARD = Setting(
    test=(Part(3, 8, slab_source=MNI, slab_starts=(0, 11, 22)), Part(1, 8, slab_source=DIPY, slab_starts=(0,)),
          Part(2, 1, sources=(0,))),
    train=(Part(12, 2, sources=(9, 10)), Part(4, 3, slab_source=MNI, slab_starts=(8, 19, 8, 19))),
    val=(Part(1, 2, sources=(9, 10)), Part(1, 3, slab_source=MNI, slab_starts=(8,))),
    ddp_processes=0)

QUICK = Setting(shape=(128, 96), coils=4, train=(Part(2, 2, sources=(9, 10)), Part(1, 3, slab_source=MNI,
                                                                                     slab_starts=(8,))),
                val=(Part(1, 1, sources=(9, 10)),),
                test=(Part(1, 2, slab_source=MNI, slab_starts=(0,)), Part(1, 1, sources=(0,))),
                protocols=((4, 0.16), (8, 0.09)),  # a small matrix needs >= 8 calibration lines
                untrained_args=("--iterations", "20", "--layers", "3", "--channels", "16"),
                epochs={"unet": 1, "varnet": 1}, ddp_processes=0,
                model_args={"unet": ["--chans", "4", "--pools", "2"],
                            "varnet": ["--num-cascades", "2", "--chans", "4", "--pools", "2",
                                       "--sens-chans", "4", "--sens-pools", "2"]})
SIZES = {"small": Setting(), "board": BOARD, "quick": QUICK}


def test_slices(setting: Setting) -> int:
    return sum(part.volumes * part.slices for part in setting.test)


def run_command(argv: list[str], log: Path | None = None) -> float:
    """Run ``fastmri-untrained ARGV`` in this process; print it; return its wall time.

    A non-zero exit (a bad input) stops the whole run with the command that failed."""
    print("$ fastmri-untrained " + shlex.join(argv), flush=True)
    start = time.perf_counter()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli.main(argv)
    seconds = time.perf_counter() - start
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(f"$ fastmri-untrained {shlex.join(argv)}\n{buffer.getvalue()}\n")
    if code != 0:
        print(buffer.getvalue())
        raise SystemExit(f"command failed with exit code {code}: fastmri-untrained {shlex.join(argv)}")
    return seconds


def simulate_splits(setting: Setting, root: Path, seed: int) -> dict:
    """Write the train / val / test splits (part j of a split with seed split_seed + 100 j) and
    check that no test slice's source slice is in a training or validation file."""
    split_seeds = {"train": seed + 1, "val": seed + 2, "test": seed}
    paths = {}
    for name, split_seed in split_seeds.items():
        paths[name] = root / "data" / name
        if not sorted(paths[name].glob("*.h5")):
            for j, part in enumerate(getattr(setting, name)):
                simulate_dataset(paths[name], config=part.config(setting, split_seed + 100 * j), show_progress=False)
    shared = source_overlap(paths["test"], [paths["train"], paths["val"]])
    if shared:
        raise SystemExit(f"test source slices also in the training or validation data: {', '.join(shared)}")
    return paths


def slice_sources(directory: Path) -> set[str]:
    """The source slices of every simulated file in ``directory`` (their ``slice_sources``)."""
    names = set()
    for path in sorted(directory.glob("*.h5")):
        with h5py.File(path, "r") as hf:
            names.update(read_slice_sources(hf) or ())
    return names


def source_overlap(test: Path, others: list[Path]) -> list[str]:
    """Source slices of the test files that also appear in any of ``others`` (sorted)."""
    seen = set().union(*(slice_sources(d) for d in others))
    return sorted(slice_sources(test) & seen)


def mask_args(protocols) -> list[str]:
    return (["--mask-type", "equispaced_fraction", "--accelerations", *(f"{a:g}" for a, _ in protocols),
             "--center-fractions", *(f"{c:g}" for _, c in protocols)])


def reconstruct_argv(data: Path, out: Path, method: str, protocol: tuple, extra: list[str], seed: int) -> list[str]:
    """``fastmri-untrained reconstruct`` of one method at one (acceleration, centre fraction), one CPU process."""
    return ["reconstruct", "--data-path", str(data), "--out", str(out), "--method", method, *mask_args([protocol]),
            *extra, "--seed", str(seed), "--device", "cpu", "--devices", "1", "--no-progress"]


def train_baselines(setting: Setting, paths: dict, root: Path, seed: int) -> dict:
    """Train each baseline once on both protocols' masks; returns {kind: best checkpoint}."""
    checkpoints = {}
    for kind in setting.trained:
        out = root / "trained" / kind
        best = out / "checkpoints" / "best.ckpt"
        if not best.exists():
            seconds = run_command(["train-baseline", "--kind", kind, "--train-path", str(paths["train"]),
                                   "--val-path", str(paths["val"]), "--out", str(out),
                                   "--max-epochs", str(setting.epochs[kind]), *setting.model_args[kind],
                                   *mask_args(setting.protocols), "--seed", str(seed), "--device", "cpu",
                                   "--no-progress"], log=root / "commands.log")
            write_json(out / "training_time.json", {"seconds": seconds})
        checkpoints[kind] = best
    return checkpoints


def reconstruct_protocol(setting: Setting, paths: dict, checkpoints: dict, root: Path, accel: float, cf: float,
                         seed: int) -> dict:
    """The setting's methods at one protocol (skipping finished ones); returns {method: timing}
    (timing from the run that wrote it) for every finished method, including those of earlier
    runs with other ``--methods``, so that a partial rerun refreshes rows without dropping any."""
    proto = root / f"{accel:g}x"
    slices = test_slices(setting)
    timings = {}
    for method in (*setting.methods, *setting.trained):
        out = proto / method
        timing_file = out / "timing.json"
        if not timing_file.exists():
            masks = mask_args([(accel, cf)])
            if method in setting.trained:
                argv = ["predict-baseline", "--checkpoint", str(checkpoints[method]), "--data-path", str(paths["test"]),
                        "--out", str(out), *masks, "--device", "cpu", "--no-progress"]
            else:
                extra = list(setting.untrained_args) if method in UNTRAINED else []
                argv = reconstruct_argv(paths["test"], out, method, (accel, cf), extra, seed)
            seconds = run_command(argv, log=root / "commands.log")
            write_json(timing_file, {"seconds": seconds, "slices": slices, "processes": 1,
                                     "threads": torch.get_num_threads(), "command": shlex.join(argv)})
    for method in (*CLASSICAL, *UNTRAINED, *TRAINED):
        if (proto / method / "timing.json").exists():
            timings[method] = json.loads((proto / method / "timing.json").read_text())
    return timings


#: Every method is compared slice by slice with these (when they ran): ``evaluate --paired-against``.
PAIRED_REFERENCES = ("l1-wavelet", "unet")


def evaluate_protocol(paths: dict, root: Path, accel: float, methods) -> dict:
    """``evaluate`` one protocol: report/ (paired against the first reference that ran) and one
    report_vs_REFERENCE/ per further reference; returns report/'s board with every reference's
    paired table under "paired_against_all"."""
    proto = root / f"{accel:g}x"
    references = [m for m in PAIRED_REFERENCES if m in methods] or [None]
    boards = {}
    for i, ref in enumerate(references):
        out = proto / ("report" if i == 0 else f"report_vs_{ref}")
        run_command(["evaluate", "--target-path", str(paths["test"]), "--challenge", "multicoil",
                     "--predictions-path", *(str(proto / m) for m in methods), "--out", str(out),
                     *(["--paired-against", ref] if ref else [])], log=root / "commands.log")
        boards[ref] = json.loads((out / "leaderboard.json").read_text())
    board = boards[references[0]]
    board["paired_against_all"] = {ref: b["paired"] for ref, b in boards.items() if ref}
    return board


def ddp_throughput(setting: Setting, paths: dict, root: Path, accel: float, cf: float, seed: int) -> dict:
    """The DDP run of ``setting.ddp_method`` at one protocol, launched as its own process tree."""
    n, method = setting.ddp_processes, setting.ddp_method
    proto = root / f"{accel:g}x"
    out = proto / f"{method}-ddp{n}"
    timing_file = out / "timing.json"
    if not timing_file.exists():
        extra = list(setting.untrained_args) if method in UNTRAINED else []
        argv = ["reconstruct", "--data-path", str(paths["test"]), "--out", str(out), "--method", method,
                *mask_args([(accel, cf)]), *extra, "--seed", str(seed), "--device", "cpu",
                "--devices", str(n), "--strategy", "ddp", "--no-progress"]
        print("$ fastmri-untrained " + shlex.join(argv), flush=True)
        # One thread per process, so N processes share the cores rather than oversubscribe them.
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // n))}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "fastmri_untrained.cli", *argv], env=env, capture_output=True,
                              text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"DDP run failed ({done.returncode}):\n{done.stderr[-3000:]}")
        # Same seeds per slice, so the files agree with the 1-process run up to the rounding of a
        # different thread count (bit for bit at equal threads: tests/test_ddp.py).
        diff = max(float(np.abs(_read(f) - _read(proto / method / f.name)).max() / np.abs(_read(f)).max())
                   for f in sorted(out.glob("*.h5")))
        write_json(timing_file, {"seconds": seconds, "slices": test_slices(setting), "processes": n,
                                 "threads": int(env["OMP_NUM_THREADS"]), "max_relative_difference": diff,
                                 "command": shlex.join(argv)})
    return json.loads(timing_file.read_text())


def _read(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as hf:
        return hf["reconstruction"][()]


def _ci(stats: dict, sign: str = "") -> str:
    return f"{stats['mean']:{sign}.4f} [{stats['ci_low']:{sign}.4f}, {stats['ci_high']:{sign}.4f}]"


def markdown(result: dict) -> str:
    lines = ["| accel. | rank | method | SSIM | SSIM per slice [95% CI] | PSNR (dB) | NMSE | s / slice | slices / hour |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in result["protocols"]:
        for method in p["ranking"]:
            s, t = p["summary"][method], p["timing"][method]
            per_slice = t["seconds"] / t["slices"]
            interval = p.get("intervals", {}).get(method, {}).get("SSIM")
            lines.append(f"| {p['acceleration']:g}x | {s['rank']} | {method} | {s['SSIM']:.4f} | "
                         f"{_ci(interval) if interval else '-'} | {s['PSNR']:.2f} | "
                         f"{s['NMSE']:.4f} | {per_slice:.1f} | {3600 / per_slice:.0f} |")
    references = sorted({ref for p in result["protocols"] for ref in p.get("paired", {})},
                        key=lambda r: PAIRED_REFERENCES.index(r))
    if references:
        lines += ["", "| accel. | method | " + " | ".join(f"SSIM minus {r} [95% CI] over slices / volumes (slices won)"
                                                        for r in references)
                  + " |", "|---|---|" + "---|" * len(references)]
        for p in result["protocols"]:
            for method in p["ranking"]:
                cells = []
                for ref in references:
                    d = p.get("paired", {}).get(ref, {}).get(method, {}).get("SSIM")
                    if not d:  # the reference itself
                        cells.append("-")
                        continue
                    volumes = f" / [{d['ci_low_volumes']:+.4f}, {d['ci_high_volumes']:+.4f}]" if "volumes" in d else ""
                    cells.append(f"{_ci(d, '+')}{volumes} ({d['win_fraction']:.2f})")
                lines.append(f"| {p['acceleration']:g}x | {method} | " + " | ".join(cells) + " |")
    ddp = result.get("ddp")
    if ddp:
        one = result["protocols"][0]["timing"][ddp["method"]]
        lines += ["", "| setting | processes x threads | s / slice | slices / hour |", "|---|---|---|---|"]
        for name, t in ((f"CPU, 1 process ({ddp['method']})", one),
                        (f"CPU, DDP ({ddp['method']}; files differ from 1 process by {ddp['max_relative_difference']:.1e})", ddp)):
            per_slice = t["seconds"] / t["slices"]
            lines.append(f"| {name} | {t['processes']} x {t['threads']} | {per_slice:.1f} | {3600 / per_slice:.0f} |")
    trained = result.get("training_seconds", {})
    if trained:
        lines.append("")
        lines.append("Training (once, both protocols' masks): " + ", ".join(
            f"{k} {v / 60:.1f} min" for k, v in trained.items()) + ".")
    return "\n".join(lines) + "\n"


def run(setting: Setting, root: Path, seed: int = 0) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    paths = simulate_splits(setting, root, seed)
    checkpoints = train_baselines(setting, paths, root, seed)
    result = {"setting": dataclasses.asdict(setting), "threads": torch.get_num_threads(),
              "training_seconds": {k: json.loads((root / "trained" / k / "training_time.json").read_text())["seconds"]
                                   for k in TRAINED if (root / "trained" / k / "training_time.json").exists()},
              "protocols": []}
    for accel, cf in setting.protocols:
        timing = reconstruct_protocol(setting, paths, checkpoints, root, accel, cf, seed)
        board = evaluate_protocol(paths, root, accel, list(timing))
        result["protocols"].append({"acceleration": accel, "center_fraction": cf, "ranking": board["ranking"],
                                    "summary": board["summary"], "intervals": board.get("intervals", {}),
                                    "paired": board["paired_against_all"], "timing": timing})
    if setting.ddp_processes > 1 and setting.ddp_method in setting.methods:
        accel, cf = setting.protocols[0]  # compared with this run's 1-process files of the method
        result["ddp"] = {"method": setting.ddp_method, **ddp_throughput(setting, paths, root, accel, cf, seed)}
    write_json(root / "leaderboard.json", result)
    table = markdown(result)
    (root / "leaderboard.md").write_text(table)
    print("\n" + table)
    return result


def parse_setting(argv=None) -> tuple[Setting, argparse.Namespace]:
    """The command line as a :class:`Setting` (a copy of the chosen size, changed by the flags) and
    the parsed arguments; a bad flag exits 2 naming it."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="small",
                   help="small: the documented 2-slice board; board: 34 test slices from 3-D slabs and 2-D "
                        "slices; quick: tiny, for the tests")
    p.add_argument("--quick", action="store_true", help="= --size quick")
    p.add_argument("--snr", type=float, help="simulated SNR (default 60; 20 is the noisier setting)")
    p.add_argument("--out", type=Path, default=Path("outputs/leaderboard_simulated"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", nargs="+", help=f"subset of {', '.join(CLASSICAL + UNTRAINED)}")
    p.add_argument("--trained", nargs="*", help="subset of unet varnet (none: skip the trained baselines)")
    p.add_argument("--accelerations", nargs="+", type=float, help="subset of the protocols' accelerations (4 8)")
    args = p.parse_args(argv)
    setting = dataclasses.replace(SIZES["quick" if args.quick else args.size])
    if args.snr is not None:
        if not args.snr > 0:
            p.error(f"--snr must be positive, got {args.snr}")
        setting.snr = args.snr
    if args.methods:
        setting.methods = tuple(args.methods)
    if args.accelerations:
        known = {a for a, _ in setting.protocols}
        if not set(args.accelerations) <= known:
            p.error(f"--accelerations must be among {sorted(known)}, got {args.accelerations}")
        setting.protocols = tuple(pc for pc in setting.protocols if pc[0] in args.accelerations)
    if args.trained is not None:
        setting.trained = tuple(args.trained)
    return setting, args


def main(argv=None) -> dict:
    setting, args = parse_setting(argv)
    return run(setting, args.out, args.seed)


if __name__ == "__main__":
    main()
