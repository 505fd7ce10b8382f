"""Early stopping without ground truth (held-out k-space) against the oracle stopping point.

    .venv/bin/python scripts/holdout_vs_oracle.py [--quick] [--out outputs/holdout]

On simulated multi-coil slices, a ConvDecoder is fitted for a long budget while the SSIM to the
target is tracked: the oracle stops at its best SSIM. The held-out rule (``--early-stop
holdout``) sees no target: it fits on all but 10% of the acquired lines outside the centre,
stops at the minimum of the residual on the held-out lines (with patience), then refits on all
lines for that many iterations. Reported per slice: both stopping iterations and the SSIMs,
with a PNG of the curves.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fastmri_untrained.evaluate import slice_ssim  # noqa: E402
from fastmri_untrained.fit import FitConfig  # noqa: E402
from fastmri_untrained.pipeline import MaskSpec, simulated_samples  # noqa: E402
from fastmri_untrained.recon import UntrainedConfig, UntrainedReconstructor  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=Path("outputs/holdout"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    shape, coils, slices, budget = ((128, 96), 4, 2, 1200) if args.quick else ((256, 192), 8, 4, 3000)
    net = dict(layers=4, channels=32, in_size=(4, 4)) if args.quick else dict(layers=6, channels=64, in_size=(8, 8))
    mask = MaskSpec("equispaced_fraction", (4,), (0.16 if args.quick else 0.08,))
    args.out.mkdir(parents=True, exist_ok=True)
    base = UntrainedConfig(method="conv-decoder", net=net, seed=args.seed,
                           fit=FitConfig(iterations=budget, lr=0.008, track_every=20, show_progress=False))
    rows, curves = [], []
    for s in simulated_samples(mask, shape, coils, slices=slices, seed=args.seed + 7):
        oracle = UntrainedReconstructor(base, show_progress=False)
        oracle(s, monitor=lambda img, s=s: {"ssim": slice_ssim(s.target, img)})
        hist = oracle.last_fit.history
        ssims, its = np.array(hist["ssim"]), np.array(hist["monitor_iteration"])
        holdout = UntrainedReconstructor(dataclasses.replace(base, early_stop="holdout"), show_progress=False)
        result = holdout(s)
        stop = result.info["holdout_stop_iteration"]
        row = {"slice": s.slice_num, "oracle_iteration": int(its[ssims.argmax()]), "oracle_ssim": float(ssims.max()),
               "holdout_iteration": int(stop), "holdout_ssim": slice_ssim(s.target, result.image),
               "budget_ssim": float(ssims[-1]), "budget": budget}
        rows.append(row)
        curves.append((its, ssims, result.info["holdout_history"], row))
        print(json.dumps(row), flush=True)
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.4), squeeze=False)
    for ax, (its, ssims, hh, row) in zip(axes[0], curves):
        ax.plot(its, ssims, label="SSIM to target (oracle)")
        ax.axvline(row["oracle_iteration"], color="C0", ls=":")
        ax.axvline(row["holdout_iteration"], color="C1", ls="--", label="held-out stop")
        ax2 = ax.twinx()
        ax2.semilogy(hh["validation_iteration"], hh["validation"], color="C1", alpha=0.6)
        ax2.set_ylabel("held-out k-space NMSE", color="C1")
        ax.set_xlabel("iteration")
        ax.set_title(f"slice {row['slice']}: oracle {row['oracle_ssim']:.3f}, held-out {row['holdout_ssim']:.3f}",
                     fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out / "holdout_vs_oracle.png", dpi=110)
    summary = {k: float(np.mean([r[k] for r in rows])) for k in
               ("oracle_iteration", "holdout_iteration", "oracle_ssim", "holdout_ssim", "budget_ssim")}
    (args.out / "holdout_vs_oracle.json").write_text(json.dumps({"rows": rows, "mean": summary}, indent=2))
    print("mean:", json.dumps(summary))


if __name__ == "__main__":
    main()
