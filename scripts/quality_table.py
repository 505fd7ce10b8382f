"""Quality of the un-trained reconstructors against zero-filled and tuned SigPy L1-wavelet.

    .venv/bin/python scripts/quality_table.py            # the README table (minutes to hours)
    .venv/bin/python scripts/quality_table.py --quick    # seconds; used by the tests

Simulated multi-coil fastMRI data (real MR images as ground truth, birdcage coils, noise; the
target is the RSS of the noisy fully sampled coil images), 4x equispaced_fraction with centre
fraction 0.08 and 8x with 0.04, fastMRI metrics on the RSS target crop. L1-wavelet's weight is
swept on a separate slice (another seed) per acceleration, then fixed. Writes a JSON, a
markdown table and a PNG of one slice per acceleration into --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fastmri_untrained.baselines import SigPyRecon, ZeroFilled
from fastmri_untrained.data.simulate import simulate_dataset
from fastmri_untrained.evaluate import format_table, slice_ssim, summarise, volume_metrics
from fastmri_untrained.figures import comparison_figure
from fastmri_untrained.fit import FitConfig
from fastmri_untrained.pipeline import MaskSpec, iterate_volumes
from fastmri_untrained.recon import DEFAULT_FIT, UntrainedConfig, UntrainedReconstructor

LAMBDAS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


@dataclasses.dataclass
class Setting:
    shape: tuple = (512, 256)  # target 256x256, as the reference measurement
    coils: int = 8
    volumes: int = 2
    slices: int = 2
    methods: tuple = ("zero-filled", "l1-wavelet", "conv-decoder", "deep-decoder", "dip")
    untrained_overrides: dict = dataclasses.field(default_factory=dict)  # per method: UntrainedConfig fields
    iterations: int | None = None  # None: the package defaults
    protocols: tuple = ((4, 0.08), (8, 0.04))  # (acceleration, centre fraction)


# Quick: a small matrix needs larger centre fractions for ESPIRiT's calibration (>= 8 lines).
QUICK = Setting(shape=(128, 96), coils=4, volumes=1, slices=2, protocols=((4, 0.16), (8, 0.09)),
                methods=("zero-filled", "l1-wavelet", "conv-decoder", "deep-decoder"),
                untrained_overrides={"conv-decoder": dict(net=dict(layers=4, channels=32, in_size=(4, 4))),
                                     "deep-decoder": dict(net=dict(layers=4, channels=64, in_size=(4, 4)))},
                iterations=400)


def untrained(method: str, setting: Setting, seed: int) -> UntrainedReconstructor:
    overrides = dict(setting.untrained_overrides.get(method, {}))
    fit_kwargs = dict(DEFAULT_FIT[method], seed=seed)
    if setting.iterations is not None:
        fit_kwargs["iterations"] = setting.iterations
    cfg = UntrainedConfig(method=method, fit=FitConfig(**fit_kwargs), seed=seed, **overrides)
    return UntrainedReconstructor(cfg, show_progress=False)


def tune_l1(tune_dir: Path, mask: MaskSpec) -> tuple[float, dict]:
    """Sweep the L1-wavelet weight on a separate slice; return the best and all SSIMs."""
    _, samples = next(iterate_volumes(sorted(tune_dir.glob("*.h5"))[:1], "multicoil", mask))
    sample = samples[0]
    scores = {lam: slice_ssim(sample.target, SigPyRecon("l1-wavelet", lamda=lam)(sample).image) for lam in LAMBDAS}
    return max(scores, key=scores.get), scores


def run(setting: Setting, out: Path, seed: int = 0) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    results = {"setting": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(setting).items()},
               "protocols": []}
    with tempfile.TemporaryDirectory() as tmp:
        data, tune = Path(tmp) / "data", Path(tmp) / "tune"
        simulate_dataset(data, "multicoil", setting.volumes, setting.slices, setting.coils, setting.shape, seed=seed,
                         show_progress=False)
        simulate_dataset(tune, "multicoil", 1, 1, setting.coils, setting.shape, seed=seed + 1000,
                         show_progress=False)
        for accel, cf in setting.protocols:
            mask = MaskSpec("equispaced_fraction", (accel,), (cf,))
            lam, sweep = tune_l1(tune, mask)
            print(f"{accel}x: L1-wavelet weight {lam:g} (sweep on a separate slice: "
                  + ", ".join(f"{k:g}->{v:.3f}" for k, v in sweep.items()) + ")", flush=True)
            recons = {"zero-filled": ZeroFilled(), "l1-wavelet": SigPyRecon("l1-wavelet", lamda=lam)}
            for m in setting.methods:
                if m not in recons:
                    recons[m] = untrained(m, setting, seed)
            rows, first = [], {}
            for fname, samples in iterate_volumes(sorted(data.glob("*.h5")), "multicoil", mask):
                target = np.stack([s.target for s in samples])
                for m in setting.methods:
                    start = time.perf_counter()
                    images, iters = [], []
                    for s in samples:
                        r = recons[m](s)
                        images.append(r.image)
                        iters.append(r.info.get("iterations", 0))
                    volume = np.stack(images)
                    rows.append({"method": m, "file": fname, "seconds": (time.perf_counter() - start) / len(samples),
                                 "iterations": float(np.mean(iters)),
                                 **volume_metrics(target, volume, maxval=samples[0].max_value)})
                    first.setdefault(m, volume[0])
                    first.setdefault("_target", target[0])
                    print(f"  {accel}x {fname} {m}: SSIM {rows[-1]['SSIM']:.4f}", flush=True)
            summary = summarise(rows)
            print(f"\n{accel}x equispaced_fraction, centre {cf} (seconds per slice):")
            print(format_table(summary, columns=("NMSE", "PSNR", "SSIM", "iterations", "seconds")), flush=True)
            target0 = first.pop("_target")
            comparison_figure(target0, first, out / f"quality_{accel}x.png", metrics=summary,
                              title=f"{accel}x, {setting.coils} coils, target {target0.shape[0]}x{target0.shape[1]}")
            results["protocols"].append({"acceleration": accel, "center_fraction": cf, "l1_lambda": lam,
                                         "l1_sweep": {str(k): v for k, v in sweep.items()},
                                         "summary": summary, "rows": rows})
    (out / "quality.json").write_text(json.dumps(results, indent=2))
    (out / "quality.md").write_text(markdown(results))
    return results


def markdown(results: dict) -> str:
    lines = ["| method | accel. | SSIM | PSNR | NMSE | iterations | s / slice |", "|---|---|---|---|---|---|---|"]
    for p in results["protocols"]:
        for m, s in sorted(p["summary"].items(), key=lambda kv: -kv[1]["SSIM"]):
            lines.append(f"| {m} | {p['acceleration']}x | {s['SSIM']:.4f} | {s['PSNR']:.2f} | {s['NMSE']:.4f} | "
                         f"{int(s.get('iterations', 0))} | {s.get('seconds', 0):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny size (seconds), as the tests use")
    p.add_argument("--out", type=Path, default=Path("outputs/quality"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", nargs="+")
    p.add_argument("--iterations", type=int)
    p.add_argument("--shape", type=int, nargs=2)
    p.add_argument("--coils", type=int)
    p.add_argument("--volumes", type=int)
    p.add_argument("--slices", type=int)
    p.add_argument("--accelerations", type=float, nargs="+", help="run only these of the setting's protocols")
    args = p.parse_args(argv)
    setting = dataclasses.replace(QUICK if args.quick else Setting())
    for field in ("iterations", "coils", "volumes", "slices"):
        if getattr(args, field) is not None:
            setattr(setting, field, getattr(args, field))
    if args.shape:
        setting.shape = tuple(args.shape)
    if args.methods:
        setting.methods = tuple(args.methods)
    if args.accelerations:
        setting.protocols = tuple(p for p in setting.protocols if p[0] in args.accelerations)
        if not setting.protocols:
            p.error("--accelerations: none of the setting's protocols (4 and 8) selected")
    run(setting, args.out, args.seed)


if __name__ == "__main__":
    main()
