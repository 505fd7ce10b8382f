"""Every method on the real multi-coil k-space of ``../shared/data/kspace``, scored by how well it
predicts held-out acquired samples (no ground truth exists), with BART's ``pics`` beside it.

    .venv/bin/python scripts/bench_real.py --out outputs/bench_real            # package defaults
    .venv/bin/python scripts/bench_real.py --quick --out outputs/bench_real_q  # seconds (tests)

For each file: the acquired samples outside the calibration centre are split once
(``mri.holdout_split``, ``--holdout`` fraction, ``--seed``); every method reconstructs from the rest
with the package defaults a user gets (``pipeline.make_reconstructor``) and is scored by the
k-space NMSE of its prediction of the held-out samples (``pipeline.holdout_reconstruction``, the
tool's ``--report-holdout``). Zero-filled predicts zeros there and scores 1 by construction.

When the ``bart`` command is installed (``apt-get install bart``), BART's ESPIRiT
(``ecalib -m1``) and ``pics -S`` (L1-wavelet ``-l1 -r 0.005`` and TV ``-R T:6:0:0.005``) run on the
same kept samples; their coil k-space is predicted through their maps with our centred unitary FFT.
BART's image and our FFT convention can differ by a sign: the sign is the one that better fits the
*kept* samples (never the held-out ones). Writes ``results.json``, ``results.md`` and a PNG panel.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fastmri_untrained import bart
from fastmri_untrained.figures import comparison_figure
from fastmri_untrained.fit import FitConfig
from fastmri_untrained.mri import holdout_split, kspace_nmse
from fastmri_untrained.operators.fourier import fft2c
from fastmri_untrained.pipeline import holdout_reconstruction, kspace_file_sample, make_reconstructor, write_json
from fastmri_untrained.recon import DEFAULT_FIT, UNTRAINED_METHODS, UntrainedConfig

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kspace"
FILES = ("brain_8coil_sigpy.npy", "brain_8coil_bart.cfl")
METHODS = ("zero-filled", "l1-wavelet", "tv", "conv-decoder", "deep-decoder", "dip")
BART_RUNS = {"bart-l1 (pics -l1 -r 0.005)": ["-l1", "-r", "0.005"],
             "bart-tv (pics -R T:6:0:0.005)": ["-R", "T:6:0:0.005"]}
QUICK_ITERATIONS = 5  # --quick: the un-trained methods run a few steps (a smoke run, not a measurement)


def reconstructor(method: str, seed: int, quick: bool):
    if method in UNTRAINED_METHODS and quick:
        fit = FitConfig(**{**DEFAULT_FIT[method], "iterations": QUICK_ITERATIONS, "seed": seed})
        return make_reconstructor(method, untrained=UntrainedConfig(method=method, fit=fit, seed=seed),
                                  show_progress=False)
    return make_reconstructor(method, seed=seed, show_progress=True)


def bart_scores(sample, fraction: float, seed: int) -> dict:
    """BART's ESPIRiT + pics on the kept samples: {name: (held-out NMSE, RSS image, seconds)}."""
    fit_mask, held = holdout_split(sample.mask, fraction, seed=seed)
    kept = (sample.kspace * fit_mask).numpy()
    maps = bart.espirit(kept)
    out = {}
    for name, regularizer in BART_RUNS.items():
        start = time.perf_counter()
        image = bart.pics(kept, maps, regularizer)
        seconds = time.perf_counter() - start
        predictions = [fft2c(torch.from_numpy((maps * image[None] * sign).astype(np.complex64))) for sign in (1, -1)]
        # The sign that fits the kept samples (never chosen on the held-out ones).
        predicted = min(predictions, key=lambda k: kspace_nmse(k, sample.kspace, fit_mask))
        rss = np.sqrt((np.abs(maps * image[None]) ** 2).sum(0)).astype(np.float32)
        out[name] = (kspace_nmse(predicted, sample.kspace, held), rss, seconds)
    return out


def run(files, methods, fraction: float, seed: int, out: Path, quick: bool, with_bart: bool) -> dict:
    results: dict = {"holdout_fraction": fraction, "seed": seed, "quick": quick, "files": {}}
    for name in files:
        sample = kspace_file_sample(SHARED / name)
        rows, images = {}, {}
        for method in methods:
            start = time.perf_counter()
            nmse, rec = holdout_reconstruction(reconstructor(method, seed, quick), sample, fraction, seed)
            rows[method] = {"holdout_nmse": nmse, "seconds": time.perf_counter() - start}
            images[method] = rec.image
            print(f"{name} {method}: held-out NMSE {nmse:.4f} ({rows[method]['seconds']:.1f} s)", flush=True)
        if with_bart:
            for method, (nmse, image, seconds) in bart_scores(sample, fraction, seed).items():
                rows[method] = {"holdout_nmse": nmse, "seconds": seconds}
                images[method] = image
                print(f"{name} {method}: held-out NMSE {nmse:.4f} ({seconds:.1f} s)", flush=True)
        results["files"][name] = rows
        comparison_figure(None, images, out / f"{Path(name).stem}.png",
                          title=f"{name}: reconstructions from 90% of the acquired samples")
    write_json(out / "results.json", results)
    (out / "results.md").write_text(table(results))
    return results


def table(results: dict) -> str:
    files = list(results["files"])
    methods = list(dict.fromkeys(m for rows in results["files"].values() for m in rows))
    lines = ["| method | " + " | ".join(f"{f} held-out NMSE | s" for f in files) + " |",
             "|---|" + "---|---|" * len(files)]
    for m in methods:
        cells = []
        for f in files:
            row = results["files"][f].get(m)
            cells += [f"{row['holdout_nmse']:.4f}", f"{row['seconds']:.1f}"] if row else ["-", "-"]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("outputs/bench_real"))
    p.add_argument("--files", nargs="+", default=list(FILES), choices=FILES)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--holdout", type=float, default=0.1, help="fraction of the acquired samples held out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help=f"un-trained methods run {QUICK_ITERATIONS} steps")
    p.add_argument("--no-bart", action="store_true", help="skip BART even when installed")
    args = p.parse_args(argv)
    if not SHARED.is_dir():
        p.error(f"real k-space not found: {SHARED} (the ../shared checkout beside the repository)")
    if not 0 < args.holdout < 1:
        p.error(f"--holdout: must be in (0, 1), got {args.holdout}")
    with_bart = not args.no_bart and bart.available()
    if not with_bart and not args.no_bart:
        print("bart not installed (apt-get install bart): BART rows skipped", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    results = run(args.files, args.methods, args.holdout, args.seed, args.out, args.quick, with_bart)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
