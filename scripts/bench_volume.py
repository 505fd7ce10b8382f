"""Time to a reconstructed volume: every slice from scratch vs warm starts, joint networks, the defaults.

    .venv/bin/python scripts/bench_volume.py --out outputs/bench_volume          # the documented table
    .venv/bin/python scripts/bench_volume.py --quick --out outputs/bench_volume_q  # seconds (tests)

One simulated volume of ``--slices`` contiguous slices (``SimulationConfig(contiguous=True)``: a slab
of dipy's 3-D b0 volume; the demo's size: k-space 256x192, 8 coils, target 128x128) is
reconstructed through the package's one driver (``reconstruct_dataset``) at each acceleration
(equispaced_fraction; centre 0.08 at 4x, 0.04 at 8x) by each network with its package defaults,
in these variants:

- ``scratch``: every slice fitted from scratch (``warm_start=0``);
- ``warm``: the first slice from scratch, every other from its fitted neighbour for
  ``--warm-fraction`` of the method's iterations (``UntrainedConfig.warm_start``);
- ``joint``: the slices fitted by one network per run of ``--joint-slices`` slices, then each
  alone from its copy of it (``UntrainedConfig.joint_slices``; iterations, learning rate and the
  per-slice steps after it ``JOINT_BUDGET[method]`` x the method's, or ``--joint-iterations`` and
  ``--joint-refine``);
- ``default``: the package's defaults, nothing chosen (``DEFAULT_JOINT_SLICES``);
- ``batched`` (not run by default on a CPU): all slices, and their ensemble members, from scratch
  in one pass (``UntrainedConfig.batch``; ``scripts/bench_batched.py`` times one step of it).

Each run is a separate process (so its peak resident memory is its own) and is written to
``OUT/runs/*.json`` as it finishes; a rerun skips finished runs. Reported per run: wall time per
volume, seconds per slice, mean SSIM / PSNR over the volume (fastMRI's volume metrics) and peak
memory; then ``results.json`` and ``results.md``. Timing belongs here, never in a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from fastmri_untrained.pipeline import write_json

CENTRE = {4: 0.08, 8: 0.04}
METHODS = ("conv-decoder", "deep-decoder")
VARIANTS = ("scratch", "warm", "joint", "batched", "default")
SHAPE, QUICK_SHAPE = (256, 192), (64, 48)
QUICK_ITERATIONS = 8


def run_one(args) -> dict:
    """One (method, acceleration, variant) run in this process; returns its row."""
    from fastmri_untrained.fit import FitConfig
    from fastmri_untrained.lightning import reconstruct_dataset
    from fastmri_untrained.pipeline import MaskSpec
    from fastmri_untrained.recon import DEFAULT_FIT, UntrainedConfig, UntrainedReconstructor

    method, accel, variant = args.one
    accel = int(accel)
    fit = dict(DEFAULT_FIT[method])
    if args.quick:
        fit["iterations"] = QUICK_ITERATIONS
    warm = max(1, round(args.warm_fraction * fit["iterations"])) if variant == "warm" else 0
    fit_seed = args.seed if args.fit_seed is None else args.fit_seed
    choices = {"scratch": dict(joint_slices=1), "warm": dict(warm_start=warm, joint_slices=1),
               "joint": dict(joint_slices=args.joint_slices, joint_iterations=args.joint_iterations,
                             joint_refine=args.joint_refine),
               "batched": dict(batch=args.slices, joint_slices=1), "default": {}}[variant]
    config = UntrainedConfig(method=method, fit=FitConfig(**fit, seed=fit_seed), seed=fit_seed, device=args.device,
                             **choices)
    joint = min(config.slices_per_network, args.slices)
    iterations = (config.joint_fit_config() if joint > 1 else config.fit_config()).iterations
    refine = config.joint_refine_config().iterations if joint > 1 else 0
    out = Path(args.out) / "recon" / f"{method}_{accel}x_{variant}"
    start = time.perf_counter()
    rows = reconstruct_dataset(Path(args.out) / "data", out, method,
                               mask=MaskSpec(accelerations=(accel,), center_fractions=(CENTRE[accel],)),
                               reconstructor=UntrainedReconstructor(config, show_progress=False), seed=fit_seed,
                               trainer={"accelerator": args.device, "devices": 1}, resume=False, log_images=0,
                               progress=False, log=lambda message: None)
    wall = time.perf_counter() - start
    row = rows[0]
    return {"method": method, "acceleration": accel, "variant": variant, "fit_seed": fit_seed, "warm_start": warm,
            "joint_slices": joint, "iterations": iterations, "refine_iterations": refine, "slices": args.slices, "wall_s": wall,
            "s_per_slice": wall / args.slices, "SSIM": row["SSIM"], "PSNR": row["PSNR"], "NMSE": row["NMSE"],
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def simulate(out: Path, slices: int, quick: bool, seed: int) -> None:
    from fastmri_untrained.data.simulate import SimulationConfig, simulate_dataset

    data = out / "data"
    if not list(data.glob("*.h5")):
        config = SimulationConfig(num_volumes=1, slices=slices, coils=8, shape=QUICK_SHAPE if quick else SHAPE,
                                  seed=seed, contiguous=True)
        simulate_dataset(data, config=config, show_progress=False)


def table(rows: list[dict]) -> str:
    lines = ["| network | accel. | variant | iterations per fit | wall s / volume | s / slice | SSIM | PSNR "
             "| time vs scratch | SSIM vs scratch | peak RSS MiB |", "|" + " --- |" * 11]
    scratch = {(r["method"], r["acceleration"]): r for r in rows if r["variant"] == "scratch"}
    for r in rows:
        base = scratch.get((r["method"], r["acceleration"]))
        ratio = f"{r['wall_s'] / base['wall_s']:.2f}" if base else "-"
        delta = f"{r['SSIM'] - base['SSIM']:+.4f}" if base else "-"
        variant = r["variant"] + (f" ({r['joint_slices']} slices)" if r.get("joint_slices", 1) > 1 else "")
        iterations = (f"{r['iterations']}" + (f", warm {r['warm_start']}" if r["warm_start"] else "")
                      + (f" + {r['refine_iterations']} per slice" if r.get("refine_iterations") else ""))
        lines.append(f"| {r['method']} | {r['acceleration']}x | {variant} | {iterations} | "
                     f"{r['wall_s']:.0f} | {r['s_per_slice']:.1f} | {r['SSIM']:.4f} | {r['PSNR']:.2f} | {ratio} | "
                     f"{delta} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output directory (data, runs, results)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--accelerations", nargs="+", type=int, choices=sorted(CENTRE), default=[4, 8])
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=["scratch", "default"])
    p.add_argument("--slices", type=int, default=8, help="contiguous slices in the volume (at most 10)")
    p.add_argument("--warm-fraction", type=float, default=0.2,
                   help="warm-started slices run this fraction of the method's iterations")
    p.add_argument("--joint-slices", type=int, default=8, help="slices per joint network (variant joint)")
    p.add_argument("--joint-iterations", type=int, default=None,
                   help="iterations of each joint network (variant joint; default: the package's JOINT_BUDGET)")
    p.add_argument("--joint-refine", type=int, default=None,
                   help="iterations of each slice alone after the joint network (variant joint; default: the "
                        "package's JOINT_BUDGET)")
    p.add_argument("--seed", type=int, default=0, help="the simulated volume (and the fits, unless --fit-seed)")
    p.add_argument("--fit-seed", type=int, default=None,
                   help="the networks' seed (initialisation, input) alone: the same volume, another draw of the fits")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SHAPE} k-space, {QUICK_ITERATIONS} iterations")
    p.add_argument("--one", nargs=3, metavar=("METHOD", "ACCEL", "VARIANT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not 0 < args.warm_fraction <= 1:
        p.error(f"--warm-fraction must be in (0, 1], got {args.warm_fraction}")
    if args.one:
        print(json.dumps(run_one(args)))
        return 0
    simulate(args.out, args.slices, args.quick, args.seed)
    runs = args.out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rows = []
    for accel in args.accelerations:
        for method in args.methods:
            for variant in args.variants:
                path = runs / f"{method}_{accel}x_{variant}.json"
                if not path.exists():
                    cmd = [sys.executable, __file__, "--out", str(args.out), "--slices", str(args.slices),
                           "--warm-fraction", str(args.warm_fraction), "--seed", str(args.seed),
                           "--joint-slices", str(args.joint_slices),
                           "--device", args.device, "--one", method, str(accel), variant]
                    if args.quick:
                        cmd.append("--quick")
                    if args.fit_seed is not None:
                        cmd += ["--fit-seed", str(args.fit_seed)]
                    if args.joint_iterations:
                        cmd += ["--joint-iterations", str(args.joint_iterations)]
                    if args.joint_refine is not None:
                        cmd += ["--joint-refine", str(args.joint_refine)]
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    if done.returncode != 0:
                        print(done.stderr[-3000:], file=sys.stderr)
                        return done.returncode
                    write_json(path, json.loads(done.stdout.strip().splitlines()[-1]))
                row = json.loads(path.read_text())
                rows.append(row)
                print(f"{method} {accel}x {variant}: {row['wall_s']:.0f} s, SSIM {row['SSIM']:.4f}", flush=True)
    write_json(args.out / "results.json", {"rows": rows, "slices": args.slices, "warm_fraction": args.warm_fraction,
                                           "device": args.device, "quick": args.quick})
    text = table(rows)
    (args.out / "results.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
