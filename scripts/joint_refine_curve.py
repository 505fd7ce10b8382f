"""How each slice's own steps after a joint network raise its SSIM: learning rate, schedule, steps.

    .venv/bin/python scripts/joint_refine_curve.py --bench outputs/bench_volume --fit-seed 1 \\
        --refine constant:0.0005:200 constant:0.001:200 cosine:0.0005:100
    .venv/bin/python scripts/joint_refine_curve.py --quick --bench outputs/joint_refine_q   # seconds (tests)

On the volume of ``scripts/bench_volume.py`` (its ``BENCH/data``; simulated there when empty),
one network is fitted to all slices at one acceleration (``recon.JointProblem``; ``--joint-iterations``
at the joint budget's learning rate, ``recon.JOINT_BUDGET``), then every slice is fitted alone
from its copy of it (``JointProblem.slice_net``) under each ``--refine SCHEDULE:LR:STEPS``
setting, from the same joint network, and the volume's mean SSIM to the targets (fastMRI's
``ssim``) is recorded every ``--every`` steps. Where ``scripts/bench_volume.py`` has reconstructed
the volume slice by slice from scratch (``BENCH/recon/METHOD_Ax_scratch``), its SSIM is printed
beside. The joint network is cached in ``BENCH/joint_refine/`` so that further settings reuse it.
One JSON line per setting, appended to ``--out``. Seconds are wall time on whatever else the
machine runs; ``scripts/bench_volume.py`` is the timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from fastmri.evaluate import ssim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_volume import CENTRE, QUICK_ITERATIONS, simulate  # noqa: E402

from fastmri_untrained.fit import SCHEDULES, FitConfig, Fitter, fit  # noqa: E402
from fastmri_untrained.pipeline import MaskSpec, iterate_volumes  # noqa: E402
from fastmri_untrained.recon import DEFAULT_FIT, JointProblem, MRIProblem, UntrainedConfig  # noqa: E402


def parse_setting(text: str) -> tuple[str, float, int]:
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in SCHEDULES:
        raise argparse.ArgumentTypeError(f"--refine: expected SCHEDULE:LR:STEPS with SCHEDULE in {SCHEDULES}, "
                                         f"got {text!r}")
    try:
        return parts[0], float(parts[1]), int(parts[2])
    except ValueError:
        raise argparse.ArgumentTypeError(f"--refine: LR must be a number and STEPS an integer, got {text!r}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bench", type=Path, required=True, help="a scripts/bench_volume.py output directory")
    p.add_argument("--method", default="conv-decoder", choices=("conv-decoder", "deep-decoder", "dip"))
    p.add_argument("--acceleration", type=int, default=4, choices=sorted(CENTRE))
    p.add_argument("--joint-iterations", type=int, default=None, help="default: the joint budget's")
    p.add_argument("--refine", type=parse_setting, nargs="+", default=[("constant", 0.0008, 150)],
                   metavar="SCHEDULE:LR:STEPS")
    p.add_argument("--every", type=int, default=50, help="SSIM every N refinement steps")
    p.add_argument("--fit-seed", type=int, default=0, help="the joint network's seed (initialisation, input)")
    p.add_argument("--slices", type=int, default=8)
    p.add_argument("--quick", action="store_true", help=f"tiny volume, {QUICK_ITERATIONS} iterations")
    p.add_argument("--out", type=Path, default=None, help="JSON lines (default: BENCH/joint_refine.jsonl)")
    args = p.parse_args(argv)

    simulate(args.bench, args.slices, args.quick, seed=0)
    mask = MaskSpec(accelerations=(args.acceleration,), center_fractions=(CENTRE[args.acceleration],))
    fname, samples = next(iterate_volumes(sorted((args.bench / "data").glob("*.h5")), "multicoil", mask))
    fit_defaults = dict(DEFAULT_FIT[args.method], **({"iterations": QUICK_ITERATIONS} if args.quick else {}))
    config = UntrainedConfig(method=args.method, fit=FitConfig(**fit_defaults, seed=args.fit_seed, show_progress=False),
                             seed=args.fit_seed, joint_slices=len(samples), joint_iterations=args.joint_iterations)
    problems = [MRIProblem(sample, config) for sample in samples]
    joint = JointProblem(problems)
    targets = np.stack([s.target for s in samples]).astype(np.float64)

    def volume_ssim(images) -> float:
        return float(np.mean(ssim(targets, np.stack(images).astype(np.float64))))

    joint_cfg = config.joint_fit_config()
    cache = (args.bench / "joint_refine" /
             f"{args.method}_{args.acceleration}x_seed{args.fit_seed}_{joint_cfg.iterations}it.pt")
    net = joint.build_net(args.fit_seed)
    if cache.exists():
        saved = torch.load(cache)
        net.load_state_dict(saved["state"])
        joint_ssim, joint_seconds = saved["ssim"], saved["seconds"]
    else:
        result = fit(net, joint.forward_model(), joint.kspace, joint_cfg, description="joint")
        joint_ssim = volume_ssim([pr.finish(out)[0] for pr, out in zip(problems, joint.split(result.output))])
        joint_seconds = result.seconds
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".partial")
        torch.save({"state": net.state_dict(), "ssim": joint_ssim, "seconds": joint_seconds}, partial)
        partial.replace(cache)
    scratch_file = args.bench / "recon" / f"{args.method}_{args.acceleration}x_scratch" / fname
    scratch = None
    if scratch_file.exists():
        with h5py.File(scratch_file, "r") as f:
            scratch = volume_ssim(list(f["reconstruction"][:]))
    print(f"{args.method} {args.acceleration}x, fit seed {args.fit_seed}: joint network ({joint_cfg.iterations} it., "
          f"lr {joint_cfg.lr:g}) SSIM {joint_ssim:.4f} in {joint_seconds:.0f} s"
          + (f"; slice by slice from scratch {scratch:.4f}" if scratch is not None else ""), flush=True)

    out = args.out or args.bench / "joint_refine.jsonl"
    for schedule, lr, steps in args.refine:
        # The package's refinement (UntrainedConfig.joint_refine_config), with the swept setting.
        refine_cfg = dataclasses.replace(config.joint_refine_config(), iterations=steps, lr=lr, lr_schedule=schedule)
        images: dict[int, list] = {}
        start = time.perf_counter()
        for index, problem in enumerate(problems):
            fitter = Fitter(joint.slice_net(net, index, args.fit_seed), problem.forward_model(problem.mask),
                            problem.kspace, refine_cfg)
            while not fitter.done():
                fitter.step()
                if fitter.iteration % args.every == 0 or fitter.done():
                    with torch.no_grad():
                        output = fitter.net().detach() / fitter.scale
                    images.setdefault(fitter.iteration, []).append(problem.finish(output)[0])
        curve = {step: volume_ssim(imgs) for step, imgs in sorted(images.items())}
        row = {"method": args.method, "acceleration": args.acceleration, "fit_seed": args.fit_seed,
               "joint_iterations": joint_cfg.iterations, "joint_lr": joint_cfg.lr, "joint_ssim": joint_ssim,
               "scratch_ssim": scratch, "schedule": schedule, "lr": lr, "steps": steps,
               "seconds": time.perf_counter() - start, "ssim_at_step": curve}
        print(f"  {schedule} lr {lr:g}: " + ", ".join(f"{s} steps {v:.4f}" for s, v in curve.items()), flush=True)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
